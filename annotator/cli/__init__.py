"""The ``annotator`` command line: click commands, thin wrappers over the packages below.

``annotator = "annotator.cli:main"`` (pyproject) and ``python -m annotator.cli`` both start
:func:`annotator.cli.commands.main`.
"""

from .commands import main

__all__ = ["main"]
