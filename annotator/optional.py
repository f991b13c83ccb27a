"""Optional dependencies: the packages outside the core install, and the extra that provides each.

The core install (``pip install annotator``) runs a backend next to an existing Label Studio.
Features that need more import their package through :func:`require`, so a missing extra is one
clear line naming the fix, never an ImportError traceback::

    psycopg = require("psycopg", "PostgreSQL stores (ANNOTATOR_DATABASE_URL)")

=========  ======================================  ==============================================
extra      packages                                needed for
=========  ======================================  ==============================================
server     label-studio                            ``annotator demo``, the end-to-end tests
scale      psycopg, redis, rq, dask[distributed],  PostgreSQL, the RQ job queue, Dask pool
           gunicorn                                featurization, ``serve --workers N``
hf         pyarrow, datasets                       ``export --format parquet`` / ``hf``
plot       matplotlib                              ``simulate --plot``
=========  ======================================  ==============================================
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from .errors import AnnotatorError

# Top-level import name -> the extra that installs it.
EXTRAS: dict[str, str] = {
    "label_studio": "server",
    "psycopg": "scale",
    "redis": "scale",
    "rq": "scale",
    "dask": "scale",
    "distributed": "scale",
    "gunicorn": "scale",
    "pyarrow": "hf",
    "datasets": "hf",
    "matplotlib": "plot",
}


class MissingExtraError(AnnotatorError):
    """A feature needs a package from an extra that is not installed."""


def missing_message(feature: str, module: str) -> str:
    """The one-line message for ``feature`` lacking ``module``.

    Examples
    --------
    >>> missing_message("PostgreSQL stores", "psycopg")
    "PostgreSQL stores needs the 'scale' extra: pip install 'annotator[scale]'"
    """
    extra = EXTRAS[module.split(".")[0]]
    return f"{feature} needs the '{extra}' extra: pip install 'annotator[{extra}]'"


def require(module: str, feature: str) -> ModuleType:
    """Import ``module`` (a package of an extra, or a submodule of one) for ``feature``.

    Parameters
    ----------
    module : str
        Dotted import name whose top level is a key of ``EXTRAS`` (e.g. ``"pyarrow.parquet"``).
    feature : str
        What the user asked for, as the message should name it (e.g. ``"export --format parquet"``).

    Returns
    -------
    ModuleType

    Raises
    ------
    MissingExtraError
        When the package is not installed; the message names the extra and the pip command.
        An ImportError raised *inside* an installed package (a broken install) is not hidden.
    """
    top = module.split(".")[0]
    if top not in EXTRAS:
        raise ValueError(f"{top!r} is not an optional package; known: {', '.join(EXTRAS)}")
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] != top:
            raise
        raise MissingExtraError(missing_message(feature, top)) from exc


def check(module: str, feature: str) -> None:
    """Raise :class:`MissingExtraError` unless ``module`` is installed, without importing it (for
    packages another process runs, like gunicorn)."""
    top = module.split(".")[0]
    if importlib.util.find_spec(top) is None:
        raise MissingExtraError(missing_message(feature, top))
