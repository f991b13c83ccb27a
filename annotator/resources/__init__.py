"""Files the library reads at run time, shipped as package data: the labeling config
(``label_config.xml``, the source of the label set) and jieba's user dictionary (``policy_terms.txt``).

Read them through :func:`resource_path` or :func:`read_text` (``importlib.resources``), never relative
to a source checkout: a wheel install has no ``tasks/`` folder.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from ..errors import AnnotatorError


def resource_path(name: str) -> Path:
    """The file-system path of the bundled resource ``name`` (for readers that need a path, like jieba).

    Raises
    ------
    AnnotatorError
        If the package is not installed as plain files (e.g. imported from a zip archive).

    Examples
    --------
    >>> resource_path("label_config.xml").name
    'label_config.xml'
    """
    ref = files(__name__) / name
    if not isinstance(ref, Path):
        raise AnnotatorError(
            f"annotator's resource {name} is not a plain file ({ref}); install the package "
            "unzipped (pip install annotator does)"
        )
    return ref


def read_text(name: str) -> str:
    """The bundled resource ``name`` as UTF-8 text."""
    return (files(__name__) / name).read_text(encoding="utf-8")
