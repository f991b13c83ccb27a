"""Every import of an optional package goes through annotator.optional.require: with the package
missing, each call path says in one line which extra to install, and the CLI exits 1 without a
traceback. A missing package is simulated by ``sys.modules[name] = None`` (what Python's import
system reads as "not installed")."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from annotator import Settings
from annotator.cli import main
from annotator.optional import EXTRAS, MissingExtraError

REPO = Path(__file__).resolve().parents[2]
SCALE = "needs the 'scale' extra: pip install 'annotator[scale]'"
HF = "needs the 'hf' extra: pip install 'annotator[hf]'"
REDIS_URL = "redis://127.0.0.1:1/0"  # never reached: the import fails first
# The CLI masks this password in the log for the rest of the process: a word no other test logs.
POSTGRES_URL = "postgresql://annotator:pw-of-test-optional@127.0.0.1:1/annotator"


def hide(monkeypatch, *packages: str) -> None:
    """Make ``packages`` (and their already imported submodules) look not installed for this test."""
    for name in list(sys.modules):
        if name.split(".")[0] in packages:
            monkeypatch.setitem(sys.modules, name, None)
    for package in packages:
        monkeypatch.setitem(sys.modules, package, None)


def run(home: Path, *args: str, env: dict | None = None):
    return CliRunner().invoke(main, ["--home", str(home), *args], env=env)


def test_no_module_imports_an_optional_package_directly():
    # Every import of an extra's package goes through require(), in every subpackage.
    direct = []
    for path in sorted((REPO / "annotator").rglob("*.py")) + sorted((REPO / "backend").rglob("*.py")):
        if path.name == "optional.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else ([node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else [])
            )
            direct += [f"{path.name}:{node.lineno} {n}" for n in names if n.split(".")[0] in EXTRAS]
    assert direct == []


# --------------------------------------------------------------------------- export (pyarrow, datasets)


def test_export_parquet_without_pyarrow_names_the_extra_before_any_work(tmp_path, monkeypatch):
    from annotator.dataset.export import export_dataset

    hide(monkeypatch, "pyarrow")
    out = tmp_path / "exports" / "p"
    with pytest.raises(MissingExtraError) as exc:
        # No annotations at all: the error must come before resolving, cleaning or the noise check.
        export_dataset([], {}, ("财政支持",), out, fmt="parquet", root=tmp_path / "exports")
    assert str(exc.value) == f"export --format parquet {HF}"
    assert not (tmp_path / "exports").exists()


def test_export_hf_without_datasets_names_the_extra(monkeypatch):
    from annotator.dataset.export import hf_features

    hide(monkeypatch, "datasets")
    with pytest.raises(MissingExtraError) as exc:
        hf_features(("财政支持",))
    assert str(exc.value) == f"export --format hf {HF}"


def test_the_cli_export_without_the_hf_extra_exits_1_in_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    hide(monkeypatch, "pyarrow")
    result = run(tmp_path / "home", "export", "--format", "parquet", "--out", "exports/p", "--no-noise-check")
    assert (result.exit_code, result.output) == (1, f"Error: export --format parquet {HF}\n")
    assert not (tmp_path / "exports" / "p").exists()


# --------------------------------------------------------------------------- the RQ job queue (redis, rq)


def test_the_job_queue_without_redis_names_the_extra(monkeypatch):
    from annotator.cycle.jobqueue import redis_connection

    hide(monkeypatch, "redis")
    with pytest.raises(MissingExtraError) as exc:
        redis_connection(REDIS_URL)
    assert str(exc.value) == f"the RQ job queue (ANNOTATOR_REDIS_URL) {SCALE}"


def test_the_worker_command_without_rq_exits_1_without_a_traceback(tmp_path, monkeypatch):
    hide(monkeypatch, "rq")
    result = run(tmp_path / "home", "worker", "--burst", env={"ANNOTATOR_REDIS_URL": REDIS_URL})
    assert result.exit_code == 1
    assert result.output.endswith(f"\nError: the RQ job queue (ANNOTATOR_REDIS_URL) {SCALE}\n")
    assert "Traceback" not in result.output


def test_the_backend_queue_without_redis_names_the_extra(tmp_path, monkeypatch):
    from backend.jobs import RedisTrainingQueue

    hide(monkeypatch, "redis", "rq")
    settings = Settings(home=tmp_path / "home", redis_url=REDIS_URL)
    with pytest.raises(MissingExtraError) as exc:
        RedisTrainingQueue(settings, every=5, delay=0.2)
    assert str(exc.value) == f"the RQ job queue (ANNOTATOR_REDIS_URL) {SCALE}"


# --------------------------------------------------------------------------- Dask (distributed)


def test_dask_featurization_without_distributed_names_the_extra(monkeypatch):
    from annotator.model.dask_features import dask_client

    hide(monkeypatch, "distributed")
    with pytest.raises(MissingExtraError) as exc, dask_client("local"):
        pass
    assert str(exc.value) == f"Dask featurization (ANNOTATOR_DASK_SCHEDULER) {SCALE}"


# --------------------------------------------------------------------------- PostgreSQL stores (psycopg)


def test_a_postgres_store_without_psycopg_names_the_extra(monkeypatch):
    from annotator.storage.dbengine import connect

    hide(monkeypatch, "psycopg")
    with pytest.raises(MissingExtraError) as exc:
        connect(POSTGRES_URL)
    assert str(exc.value) == f"PostgreSQL stores (ANNOTATOR_DATABASE_URL) {SCALE}"


def test_the_cli_on_a_postgres_store_without_psycopg_exits_1_in_one_line(tmp_path, monkeypatch):
    hide(monkeypatch, "psycopg")
    result = run(tmp_path / "home", "status", env={"ANNOTATOR_DATABASE_URL": POSTGRES_URL})
    assert (result.exit_code, result.output) == (1, f"Error: PostgreSQL stores (ANNOTATOR_DATABASE_URL) {SCALE}\n")
    assert "pw-of-test-optional" not in result.output
