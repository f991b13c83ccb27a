"""annotator: active-learning annotation of Chinese policy clauses.

The names in ``_EXPORTS`` are the library's public surface; ``backend/`` imports only these.

They are loaded on first use (PEP 562 module ``__getattr__``): ``import annotator`` itself imports
nothing heavy, so ``annotator --help`` starts at once, and ``from annotator import Store`` imports
only the store and what it needs, not scikit-learn or Label Studio's SDK. Each name maps to the
submodule that defines it; the table is the one place that lists them. A public name never equals
a submodule's name (importing ``annotator.x`` rebinds ``annotator.x`` to the module), which is why the
disagreement queue is ``annotator.review.disagreements.disagreements`` and not re-exported.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public name -> the submodule (dotted, under this package) that defines it.
_EXPORTS: dict[str, str] = {
    # errors
    "AnnotatorError": "errors",
    "EmptyPoolError": "errors",
    "InputError": "errors",
    "LabelStudioError": "errors",
    "NotFoundError": "errors",
    "NotTrainedError": "errors",
    "PoolExhaustedError": "errors",
    "QueryError": "errors",
    "SchemaMismatchError": "errors",
    "StoreError": "errors",
    "UnknownLabelError": "errors",
    "JobQueueError": "errors",
    "CycleJobError": "errors",
    # shared leaves
    "Settings": "settings",
    "Annotation": "types",
    "Clause": "types",
    "Document": "types",
    "Example": "types",
    "ModelVersion": "types",
    "TrainRun": "types",
    "Segment": "types",
    "LabelConfig": "labels",
    "check_labels": "labels",
    "load_label_config": "labels",
    "parse_label_config": "labels",
    "clause_id": "text.normalize",
    "match_key": "text.normalize",
    "normalize_text": "text.normalize",
    "redact": "redaction",
    "settings_secrets": "redaction",
    "install_log_redaction": "redaction",
    "parent_alive": "lifecycle",
    "exit_when_parent_dies": "lifecycle",
    "ParentDiedError": "lifecycle",
    "MissingExtraError": "optional",
    "require": "optional",
    # storage and model
    "Store": "storage.store",
    "ModelRegistry": "storage.registry",
    "PolicyClassifier": "model.classifier",
    "at_least_one": "model.classifier",
    # Label Studio
    "WEBHOOK_SECRET_HEADER": "labelstudio.client",
    "ANNOTATION_ACTIONS": "labelstudio.client",
    "DELETE_ACTION": "labelstudio.client",
    "TRAIN_ACTION": "labelstudio.client",
    "MAX_ID": "labelstudio.client",
    "is_ls_id": "labelstudio.client",
    "LabelStudioClient": "labelstudio.client",
    "choices_result": "labelstudio.client",
    "ls_model_version": "labelstudio.client",
    "prediction_payload": "labelstudio.client",
    "project_id_from_setup": "labelstudio.client",
    "record_annotation": "cycle.sync",
    "record_deletions": "cycle.sync",
    "sync_project": "cycle.sync",
    # review
    "AgreementReport": "review.agreement",
    "agreement_report": "review.agreement",
    "Disagreement": "review.disagreements",
    "HOURS_SHOWN": "review.dashboard",
    "DashboardData": "review.dashboard",
    "agreement_for_store": "review.dashboard",
    "dashboard_data": "review.dashboard",
    "adjudicate": "review.resolve",
    "review_queue": "review.dashboard",
    "stop_signal_for_store": "review.dashboard",
    # the live loop
    "run_cycle": "cycle.loop",
    "missing_api_key_problem": "cycle.loop",
    "PROJECT_KEY": "cycle.loop",
    "connect_project": "cycle.connect",
    "CycleQueue": "cycle.jobqueue",
    "CYCLE_JOB": "cycle.jobqueue",
    "CYCLE_TIMEOUT": "cycle.jobqueue",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    """Import the submodule that defines ``name`` on first access and cache the value here."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'annotator' has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # for type checkers and IDEs only; at run time the table above is used
    from .review.agreement import AgreementReport, agreement_report
    from .cycle.connect import connect_project
    from .cycle.jobqueue import CYCLE_JOB, CYCLE_TIMEOUT, CycleQueue
    from .review.disagreements import Disagreement
    from .review.resolve import adjudicate
    from .errors import (
        AnnotatorError,
        CycleJobError,
        EmptyPoolError,
        InputError,
        JobQueueError,
        LabelStudioError,
        NotFoundError,
        NotTrainedError,
        PoolExhaustedError,
        QueryError,
        SchemaMismatchError,
        StoreError,
        UnknownLabelError,
    )
    from .labels import LabelConfig, check_labels, load_label_config, parse_label_config
    from .labelstudio.client import (
        ANNOTATION_ACTIONS,
        DELETE_ACTION,
        MAX_ID,
        TRAIN_ACTION,
        WEBHOOK_SECRET_HEADER,
        LabelStudioClient,
        choices_result,
        is_ls_id,
        ls_model_version,
        prediction_payload,
        project_id_from_setup,
    )
    from .cycle.loop import PROJECT_KEY, missing_api_key_problem, run_cycle
    from .model.classifier import PolicyClassifier, at_least_one
    from .text.normalize import clause_id, match_key, normalize_text
    from .optional import MissingExtraError, require
    from .redaction import install_log_redaction, redact, settings_secrets
    from .storage.registry import ModelRegistry
    from .review.dashboard import (
        HOURS_SHOWN,
        DashboardData,
        agreement_for_store,
        dashboard_data,
        review_queue,
        stop_signal_for_store,
    )
    from .settings import Settings
    from .storage.store import Store
    from .cycle.sync import record_annotation, record_deletions, sync_project
    from .types import Annotation, Clause, Document, Example, ModelVersion, Segment, TrainRun
