"""The habits (STYLE.md, issue 17): ``ruff check`` and ``ruff format --check`` are clean over the
whole tree and mypy over the packages pyproject's ``[tool.mypy] files`` lists. Configured in pyproject.toml; skipped, saying
why, where the tools are not installed (they come with the ``test`` extra)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _run(module: str, *args: str) -> subprocess.CompletedProcess:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed (pip install -c constraints.txt -e '.[test]')")
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=REPO, capture_output=True, text=True, timeout=600, check=False
    )


def test_ruff_check_is_clean():
    out = _run("ruff", "check", "--no-cache", "annotator", "backend", "tests", "bench")
    assert out.returncode == 0, out.stdout + out.stderr


def test_ruff_format_leaves_the_tree_as_it_is():
    out = _run("ruff", "format", "--check", "--no-cache", "annotator", "backend", "tests", "bench")
    assert out.returncode == 0, "run `ruff format annotator backend tests bench`:\n" + out.stdout + out.stderr


@pytest.mark.slow
def test_mypy_is_clean_on_the_typed_packages(tmp_path):
    out = _run("mypy", "--cache-dir", str(tmp_path / "mypy"))
    assert out.returncode == 0, out.stdout + out.stderr
