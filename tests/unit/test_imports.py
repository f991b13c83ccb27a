"""Import arrows (STYLE.md section 1): library modules only import down, no flask in the library,
and the backend sees only what ``annotator/__init__.py`` re-exports. Read with ast, nothing imported."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ANNOTATOR = sorted((REPO / "annotator").glob("*.py"))
BACKEND = sorted((REPO / "backend").glob("*.py"))

# STYLE.md section 1: a module may import only from modules of a lower rank.
RANK = {"errors": 0, "settings": 1, "types": 1, "segment": 2, "ingest": 3, "store": 4, "features": 5,
        "model": 6, "registry": 7, "strategies": 8, "loop": 9, "agreement": 9, "export": 9, "cli": 10}
FOUNDATION = ("errors", "settings", "types", "labels", "normalize")
HIGHER_UP = {"store", "model", "registry", "loop", "cli"}


def imports(path: Path) -> list[tuple[int, str]]:
    """``(line, dotted name)`` of every import in the file, relative ones resolved, incl. function bodies."""
    package = path.parent.name
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = f"{package}.{node.module}" if node.level and node.module else (
                package if node.level else node.module)
            if node.level or base == "annotator":
                # `from . import x` / `from annotator import x` may name a submodule: record both.
                out.append((node.lineno, base))
                out += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
            else:
                out.append((node.lineno, base))
    return out


def local_modules(path: Path) -> set[str]:
    """Names of the annotator submodules ``path`` imports."""
    names = {p.stem for p in ANNOTATOR}
    found = set()
    for _, name in imports(path):
        parts = name.split(".")
        if parts[0] == "annotator" and len(parts) > 1 and parts[1] in names:
            found.add(parts[1])
    return found - {path.stem}


def test_the_walker_sees_every_import_form(tmp_path):
    pkg = tmp_path / "annotator"
    pkg.mkdir()
    module = pkg / "settings.py"
    module.write_text("import flask\nfrom .store import Store\nfrom . import model\n"
                      "def f():\n    from annotator.registry import ModelRegistry\n    import annotator.loop\n",
                      encoding="utf-8")
    assert "flask" in {name for _, name in imports(module)}
    assert local_modules(module) == {"store", "model", "registry", "loop"}


def test_the_files_are_found():
    assert {"errors", "settings", "store", "cli"} <= {p.stem for p in ANNOTATOR}
    assert {"ls_format", "jobs", "errors"} <= {p.stem for p in BACKEND}


@pytest.mark.parametrize("path", ANNOTATOR, ids=lambda p: p.name)
def test_no_flask_in_the_library(path):
    web = [f"{path.name}:{line} imports {name}" for line, name in imports(path)
           if name.split(".")[0] in ("flask", "werkzeug")]
    assert web == []


@pytest.mark.parametrize("path", ANNOTATOR, ids=lambda p: p.name)
def test_click_only_in_the_cli(path):
    if path.stem == "cli":
        return
    assert [name for _, name in imports(path) if name.split(".")[0] == "click"] == []


@pytest.mark.parametrize("path", BACKEND, ids=lambda p: p.name)
def test_backend_imports_only_the_annotator_package(path):
    bad = [f"{path.name}:{line} imports {name}" for line, name in imports(path)
           if name.startswith("annotator.") and not _is_reexported(name)]
    assert bad == [], "backend/ may use only `from annotator import <name>`"


def _is_reexported(name: str) -> bool:
    """``annotator.X`` recorded for ``from annotator import X`` where X is re-exported."""
    return name.count(".") == 1 and name.split(".")[1] in ANNOTATOR_ALL


def _annotator_exports() -> dict[str, str]:
    """The public name -> submodule table of annotator/__init__.py (its ``_EXPORTS`` literal)."""
    tree = ast.parse((REPO / "annotator" / "__init__.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) == "_EXPORTS":
            return ast.literal_eval(node.value)
    raise AssertionError("annotator/__init__.py has no _EXPORTS table")


def _annotator_all() -> set[str]:
    return set(_annotator_exports()) | {"__version__"}


ANNOTATOR_ALL = _annotator_all()


@pytest.mark.parametrize("path", BACKEND, ids=lambda p: p.name)
def test_backend_names_are_in_annotator_all(path):
    missing = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module == "annotator" and not node.level:
            missing += [f"{path.name}:{node.lineno} {a.name}" for a in node.names if a.name not in ANNOTATOR_ALL]
    assert missing == []


@pytest.mark.parametrize("name", FOUNDATION)
def test_foundation_modules_do_not_import_the_layers_above(name):
    path = REPO / "annotator" / f"{name}.py"
    if not path.exists():
        pytest.skip(f"annotator/{name}.py does not exist")
    assert local_modules(path) & HIGHER_UP == set()


def test_errors_imports_nothing_local():
    assert local_modules(REPO / "annotator" / "errors.py") == set()


@pytest.mark.parametrize("path", [p for p in ANNOTATOR if p.stem in RANK], ids=lambda p: p.name)
def test_imports_only_point_down(path):
    up = sorted(m for m in local_modules(path) if m in RANK and RANK[m] >= RANK[path.stem])
    assert up == [], f"{path.name} imports {up}: move the shared code down or the import up"


@pytest.mark.parametrize("path", ANNOTATOR + BACKEND, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_getenv(path):
    # Settings is the only reader of the environment (STYLE.md section 6).
    tree = ast.parse(path.read_text(encoding="utf-8"))
    calls = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr == "getenv"]
    assert calls == []


def test_the_export_table_names_real_definitions():
    # Every public name resolves through the lazy table to the submodule that defines it.
    import importlib

    import annotator

    for name, module in _annotator_exports().items():
        assert (REPO / "annotator" / f"{module}.py").exists(), module
        assert getattr(annotator, name) is getattr(importlib.import_module(f"annotator.{module}"), name)
    assert set(annotator.__all__) == ANNOTATOR_ALL
    with pytest.raises(AttributeError, match="module 'annotator' has no attribute 'nothing_here'"):
        annotator.nothing_here


def test_no_public_name_is_a_submodule_name():
    # Importing annotator.X binds annotator.X to the module, hiding a lazily exported X.
    assert set(_annotator_exports()) & {p.stem for p in ANNOTATOR} == set()


def test_importing_annotator_and_its_cli_loads_no_heavy_library():
    # `annotator --help` must start at once: the package and the CLI module import the heavy
    # libraries only inside the commands that use them.
    import subprocess
    import sys

    heavy = ["sklearn", "pandas", "jieba", "label_studio_sdk", "scipy", "numpy", "modAL", "flask", "requests",
             "httpx", "cleanlab"]
    code = ("import sys, annotator, annotator.cli; "
            f"print(','.join(m for m in {heavy!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
