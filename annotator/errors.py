"""The AnnotatorError hierarchy: every error the library raises on purpose.

Messages say what was wrong, the offending value, and how to fix it. Imports nothing local.
"""

from __future__ import annotations


class AnnotatorError(Exception):
    """Base class of every error the library raises on purpose."""


class InputError(AnnotatorError, ValueError):
    """The user's input (a file, a payload, an option) is wrong."""


class UnknownLabelError(InputError):
    """A label is not in the project's label set."""


class SchemaMismatchError(InputError):
    """A payload or file does not have the expected structure."""


class QueryError(AnnotatorError):
    """A query strategy cannot produce the batch asked for."""


class EmptyPoolError(QueryError):
    """The unlabeled pool is empty."""


class PoolExhaustedError(QueryError):
    """The unlabeled pool holds fewer items than the batch asks for."""


class NotTrainedError(AnnotatorError):
    """No model version exists yet."""


class NotFoundError(AnnotatorError):
    """A named object (clause, model version, project) does not exist."""


class StoreError(AnnotatorError):
    """The project store is unusable (corrupt, newer schema, locked)."""


class LabelStudioError(AnnotatorError):
    """Label Studio answered with an error or could not be reached."""


class JobQueueError(AnnotatorError):
    """The RQ job queue cannot be used: Redis is unreachable. The message names the URL, never its password."""


class CycleJobError(AnnotatorError):
    """A training cycle failed in an RQ worker, or its job vanished; the message is the worker's ``Type: message``."""
