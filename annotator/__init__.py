"""annotator: active-learning annotation of Chinese policy clauses.

The names below are the library's public surface; ``backend/`` imports only these.
"""
from .agreement import AgreementReport, agreement_report
from .disagreements import Disagreement, disagreements
from .errors import (AnnotatorError, EmptyPoolError, InputError, LabelStudioError, NotFoundError,
                     NotTrainedError, PoolExhaustedError, QueryError, SchemaMismatchError, StoreError,
                     UnknownLabelError)
from .labels import LabelConfig, check_labels, load_label_config, parse_label_config
from .labelstudio import WEBHOOK_SECRET_HEADER, LabelStudioClient, choices_result
from .model import PolicyClassifier, at_least_one
from .normalize import clause_id, match_key, normalize_text
from .registry import ModelRegistry
from .review import HOURS_SHOWN, DashboardData, agreement_for_store, dashboard_data, review_queue
from .settings import Settings
from .store import Store
from .sync import record_annotation, record_deletions, sync_project
from .types import Annotation, Clause, Document, Example, ModelVersion, Segment

__version__ = "0.1.0"


def __getattr__(name: str):
    # The loop pulls in the query strategies (modAL); load it only when the backend asks for it.
    if name in ("run_cycle", "missing_api_key_problem"):
        from . import loop

        return getattr(loop, name)
    if name == "connect_project":
        from .connect import connect_project

        return connect_project
    raise AttributeError(f"module 'annotator' has no attribute {name!r}")

__all__ = [
    "AgreementReport", "Annotation", "DashboardData", "HOURS_SHOWN", "agreement_for_store",
    "dashboard_data", "review_queue", "AnnotatorError", "Clause", "Disagreement", "Document",
    "EmptyPoolError", "Example", "InputError", "LabelConfig", "LabelStudioClient", "LabelStudioError",
    "ModelRegistry", "ModelVersion", "NotFoundError", "NotTrainedError", "PolicyClassifier",
    "PoolExhaustedError", "QueryError", "SchemaMismatchError", "Segment", "Settings", "Store",
    "StoreError", "UnknownLabelError", "WEBHOOK_SECRET_HEADER", "__version__", "agreement_report",
    "at_least_one", "check_labels", "choices_result", "clause_id", "disagreements",
    "load_label_config", "match_key", "normalize_text", "parse_label_config", "record_annotation",
    "record_deletions", "run_cycle", "missing_api_key_problem", "connect_project", "sync_project",
]
