"""Licences: the package is Apache-2.0, and nothing it needs at run time is GPL or AGPL (LGPL is fine).

The runtime set is the core install: annotator's requirements without extras, followed through the
installed distributions' own requirements. Each licence is read from the installed metadata
(License-Expression, then the licence classifiers, then the License field, then the licence file).
"""

from __future__ import annotations

import ast
import re
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]

COPYLEFT = re.compile(r"\b(A?GPL|GNU (Affero )?General Public)", re.IGNORECASE)
LESSER = re.compile(r"\b(LGPL|Lesser|Library General Public)", re.IGNORECASE)


def runtime_closure(root: str = "annotator") -> dict[str, str]:
    """Canonical name -> version of every distribution the core install of ``root`` pulls in."""
    env = default_environment()
    seen: dict[str, str] = {}
    todo = [(root, frozenset())]
    while todo:
        name, extras = todo.pop()
        key = canonicalize_name(name)
        dist = distribution(name)
        if key in seen and not extras:
            continue
        seen[key] = dist.version
        for spec in dist.requires or []:
            req = Requirement(spec)
            wanted = [e for e in extras] or [""]
            if req.marker and not any(req.marker.evaluate({**env, "extra": e}) for e in wanted):
                continue
            try:
                distribution(req.name)
            except PackageNotFoundError:
                if key == canonicalize_name(root):
                    raise
                continue  # an optional dependency of a dependency, marker-free but not installed
            if canonicalize_name(req.name) not in seen or req.extras:
                todo.append((req.name, frozenset(req.extras)))
    seen.pop(canonicalize_name(root))
    return seen


def licence_of(name: str) -> str:
    """The licence the installed metadata of ``name`` states ('' when it states none)."""
    meta = distribution(name).metadata
    if meta.get("License-Expression"):
        return meta["License-Expression"]
    classifiers = [c.split(" :: ")[-1] for c in meta.get_all("Classifier") or [] if c.startswith("License ::")]
    classifiers = [c for c in classifiers if c != "OSI Approved"]
    if classifiers:
        return "; ".join(classifiers)
    field = (meta.get("License") or "").strip()
    if field and field.upper() not in ("UNKNOWN", "NONE"):
        return field.splitlines()[0][:120] if len(field) < 400 else _licence_file_kind(field)
    for path in distribution(name).files or []:
        if re.search(r"(LICEN[CS]E|COPYING)", path.name, re.IGNORECASE):
            return _licence_file_kind(Path(path.locate()).read_text(encoding="utf-8", errors="replace"))
    return ""


def _licence_file_kind(text: str) -> str:
    """Name the licence of a full licence text by its title."""
    head = " ".join(text[:3000].split())
    for title in (
        "GNU LESSER GENERAL PUBLIC LICENSE",
        "GNU AFFERO GENERAL PUBLIC LICENSE",
        "GNU GENERAL PUBLIC LICENSE",
        "Apache License",
        "MIT License",
        "BSD",
        "Mozilla Public License",
        "Python Software Foundation",
        "ISC License",
    ):
        if title.lower() in head.lower():
            return title
    return head[:120]


def is_copyleft(licence: str) -> bool:
    """GPL or AGPL (any version), but not LGPL."""
    return bool(COPYLEFT.search(licence)) and not LESSER.search(licence)


RUNTIME = runtime_closure()


def test_the_package_is_apache_2():
    meta = distribution("annotator").metadata
    assert meta["License-Expression"] == "Apache-2.0"
    text = (REPO / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text and "Version 2.0, January 2004" in text


def test_the_runtime_set_is_the_lean_core():
    # The heavy optional parts are not pulled in by a plain `pip install annotator`.
    for name in (
        "label-studio",
        "dask",
        "distributed",
        "rq",
        "redis",
        "psycopg",
        "datasets",
        "pyarrow",
        "matplotlib",
        "gunicorn",
        "krippendorff",
        "iterative-stratification",
    ):
        assert name not in RUNTIME, name
    assert {"flask", "label-studio-sdk", "scikit-learn", "modal-python", "jieba", "cleanlab"} <= set(RUNTIME)


@pytest.mark.parametrize("name", sorted(RUNTIME))
def test_no_runtime_dependency_is_gpl(name):
    licence = licence_of(name)
    assert licence, f"{name} states no licence in its metadata or files; check it by hand"
    assert not is_copyleft(licence), f"{name} {RUNTIME[name]} is {licence}: GPL/AGPL may not be a runtime dependency"


def test_the_classifier_reads_licences_right():
    assert is_copyleft("GPL-3.0-or-later") and is_copyleft("GNU Affero General Public License v3")
    assert is_copyleft("AGPL-3.0-only")
    assert not is_copyleft("LGPL-3.0-only") and not is_copyleft("GNU Lesser General Public License v3 (LGPLv3)")
    assert not is_copyleft("Apache-2.0") and not is_copyleft("BSD-3-Clause")
    assert is_copyleft(licence_of("krippendorff"))  # the reference the agreement tests compare against


def test_the_package_never_imports_a_test_only_gpl_package():
    found = []
    for path in [*(REPO / "annotator").rglob("*.py"), *(REPO / "backend").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            found += [f"{path.relative_to(REPO)}:{node.lineno}" for n in names if n.split(".")[0] == "krippendorff"]
    assert found == []
