"""Import arrows (STYLE.md section 1, ARCHITECTURE.md): every library module belongs to one package,
packages only import down the layers, no flask in the library, and the backend sees only what
``annotator/__init__.py`` re-exports. Read with ast, nothing imported."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ANNOTATOR = sorted((REPO / "annotator").rglob("*.py"))
BACKEND = sorted((REPO / "backend").glob("*.py"))

# The layers, bottom first (ARCHITECTURE.md). A module may import its own package and the packages
# of lower layers, never a higher one. "leaves" are the shared top-level modules of annotator/.
PACKAGES = ("leaves", "text", "storage", "model", "query", "labelstudio", "review", "dataset", "cycle", "cli")
LEAVES = ("errors", "types", "labels", "settings", "redaction", "optional", "lifecycle", "task_format", "resources")
FACE = ("__init__", "__main__")  # annotator's own face: the lazy public table and `python -m annotator`
RANK = {name: rank for rank, name in enumerate(PACKAGES)}


def module_name(path: Path, root: Path = REPO) -> str:
    """Dotted module name of a file under ``root`` (a package's ``__init__.py`` is the package)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, root: Path = REPO) -> list[tuple[int, str]]:
    """``(line, dotted name)`` of every import in the file, relative ones resolved, incl. function bodies."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module
            out.append((node.lineno, base))
            if base.split(".")[0] == "annotator":
                # `from . import x` / `from annotator.text import x` may name a submodule: record both.
                out += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return out


def package_of(dotted: str) -> str | None:
    """The layer of ``annotator.…`` module ``dotted``; "face" for the package itself; None outside every one."""
    parts = dotted.split(".")
    if parts[0] != "annotator":
        return None
    if len(parts) == 1 or parts[1] in FACE:
        return "face"
    if parts[1] in LEAVES:
        return "leaves"
    return parts[1] if parts[1] in RANK and parts[1] != "leaves" else None


def broken_arrows(root: Path = REPO) -> list[str]:
    """Every import of a module of a higher layer, and every module that belongs to no layer."""
    bad = []
    for path in sorted((root / "annotator").rglob("*.py")):
        name = module_name(path, root)
        own = package_of(name)
        if own is None:
            bad.append(f"{name} belongs to no package of {PACKAGES}")
            continue
        if own == "face":
            continue
        if own == "leaves" and name.count(".") > 1:
            bad.append(f"{name}: a leaf is one top-level module, not a package")
        seen = set()
        for line, target in imports(path, root):
            other = package_of(target)
            if other in (None, "face") or (line, other) in seen:
                continue  # a third-party name, the package's face, or an arrow of this line already named
            seen.add((line, other))
            if RANK[other] > RANK[own]:
                bad.append(f"{name}:{line} imports {target} ({own} -> {other}, which is higher up)")
    return bad


def local_modules(path: Path) -> set[str]:
    """Dotted names of the annotator modules ``path`` imports (that exist as files)."""
    found = set()
    for _, name in imports(path):
        if name.split(".")[0] == "annotator" and (
            (REPO / name.replace(".", "/")).with_suffix(".py").exists()
            or (REPO / name.replace(".", "/") / "__init__.py").exists()
        ):
            found.add(name)
    return found - {module_name(path)}


def test_the_walker_sees_every_import_form(tmp_path):
    pkg = tmp_path / "annotator" / "text"
    pkg.mkdir(parents=True)
    module = pkg / "ingest.py"
    module.write_text(
        "import flask\nfrom ..storage.store import Store\nfrom . import segment\n"
        "def f():\n    from annotator.storage.registry import ModelRegistry\n    import annotator.cycle.loop\n",
        encoding="utf-8",
    )
    names = {name for _, name in imports(module, tmp_path)}
    assert {
        "flask",
        "annotator.storage.store",
        "annotator.text.segment",
        "annotator.storage.registry",
        "annotator.cycle.loop",
    } <= names


def test_the_layering_check_fails_on_a_broken_arrow_and_a_stray_module(tmp_path):
    for rel, code in [
        ("annotator/__init__.py", ""),
        ("annotator/errors.py", ""),
        ("annotator/text/__init__.py", ""),
        ("annotator/text/ingest.py", "from ..errors import X\n"),
        ("annotator/cycle/__init__.py", ""),
        ("annotator/cycle/loop.py", "from ..text import ingest\n"),
    ]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(code, encoding="utf-8")
    assert broken_arrows(tmp_path) == []
    (tmp_path / "annotator/text/ingest.py").write_text("def f():\n    from ..cycle.loop import run\n", encoding="utf-8")
    (tmp_path / "annotator/helpers.py").write_text("", encoding="utf-8")
    assert broken_arrows(tmp_path) == [
        f"annotator.helpers belongs to no package of {PACKAGES}",
        "annotator.text.ingest:2 imports annotator.cycle.loop (text -> cycle, which is higher up)",
    ]


def test_every_module_belongs_to_one_package_and_imports_point_down():
    assert broken_arrows() == [], "move the shared code down, or the import up (ARCHITECTURE.md)"


def test_every_package_of_the_table_exists():
    assert {p.name for p in (REPO / "annotator").iterdir() if (p / "__init__.py").exists()} == (
        set(PACKAGES[1:]) | {"resources"}
    )
    assert {p.stem for p in (REPO / "annotator").glob("*.py")} == set(LEAVES) - {"resources"} | set(FACE)


def test_the_files_are_found():
    assert {
        "annotator/errors.py",
        "annotator/settings.py",
        "annotator/storage/store.py",
        "annotator/cli/commands.py",
    } <= {str(p.relative_to(REPO)) for p in ANNOTATOR}
    assert {"ls_format", "jobs", "errors"} <= {p.stem for p in BACKEND}


def _rel(path: Path) -> str:
    return str(path.relative_to(REPO))


@pytest.mark.parametrize("path", ANNOTATOR, ids=_rel)
def test_no_flask_in_the_library(path):
    web = [
        f"{path.name}:{line} imports {name}"
        for line, name in imports(path)
        if name.split(".")[0] in ("flask", "werkzeug")
    ]
    assert web == []


@pytest.mark.parametrize("path", ANNOTATOR, ids=_rel)
def test_click_only_in_the_cli(path):
    if package_of(module_name(path)) == "cli":
        return
    assert [name for _, name in imports(path) if name.split(".")[0] == "click"] == []


@pytest.mark.parametrize("path", BACKEND, ids=lambda p: p.name)
def test_backend_imports_only_the_annotator_package(path):
    bad = [
        f"{path.name}:{line} imports {name}"
        for line, name in imports(path)
        if name.startswith("annotator.") and not _is_reexported(name)
    ]
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


def test_errors_imports_nothing_local():
    assert local_modules(REPO / "annotator" / "errors.py") == set()


@pytest.mark.parametrize("path", ANNOTATOR + BACKEND, ids=_rel)
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
        assert (REPO / "annotator" / f"{module.replace('.', '/')}.py").exists(), module
        assert getattr(annotator, name) is getattr(importlib.import_module(f"annotator.{module}"), name)
    assert set(annotator.__all__) == ANNOTATOR_ALL
    with pytest.raises(AttributeError, match="module 'annotator' has no attribute 'nothing_here'"):
        annotator.nothing_here


def test_no_public_name_is_a_submodule_name():
    # Importing annotator.X binds annotator.X to the module, hiding a lazily exported X.
    # Packages and modules alike (annotator.review is a package, review_queue a public name).
    assert set(_annotator_exports()) & {part for p in ANNOTATOR for part in module_name(p).split(".")} == set()


def test_importing_annotator_and_its_cli_loads_no_heavy_library():
    # `annotator --help` must start at once: the package and the CLI module import the heavy
    # libraries only inside the commands that use them.
    import subprocess
    import sys

    heavy = [
        "sklearn",
        "pandas",
        "jieba",
        "label_studio_sdk",
        "scipy",
        "numpy",
        "modAL",
        "flask",
        "requests",
        "httpx",
        "cleanlab",
    ]
    code = f"import sys, annotator, annotator.cli; print(','.join(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
