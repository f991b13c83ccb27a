"""A wheel installed outside the repository works end to end, with the core dependencies only.

The wheel is built from the working tree and installed (not editable) into a fresh venv. The venv
gets the core install's dependencies, and nothing else, by a ``.pth`` file pointing at a folder of
links to exactly the distributions a plain ``pip install annotator`` pulls in (taken from this
environment, so the test runs offline and in about half a minute). Every command runs through the
installed console script from a temporary folder, never from the repository.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from importlib.metadata import distribution
from pathlib import Path

import pytest

from ..unit.test_licences import runtime_closure

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
SEED_LINES = 1500  # about a thousand labeled clauses: a real model in a few seconds


def link_core_dependencies(target: Path) -> list[str]:
    """Link every file tree of the core runtime distributions into ``target``; their names."""
    target.mkdir()
    names = sorted(runtime_closure())
    for name in names:
        dist = distribution(name)
        site = Path(dist.locate_file(""))
        for top in {f.parts[0] for f in dist.files or [] if f.parts[0] != ".."}:
            link = target / top
            if not link.exists() and (site / top).exists():
                link.symlink_to(site / top)
    return names


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(bin folder of the fresh venv, a working folder outside the repo, a clean environment)."""
    root = tmp_path_factory.mktemp("wheel")
    # Build from a copy of what a source distribution holds: no stale build/ folder of the working
    # tree can slip into the wheel, and the repository is left untouched.
    source = root / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(REPO / name, source / name)
    for package in ("annotator", "backend"):
        shutil.copytree(REPO / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    wheels = root / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(wheels),
            str(source),
        ],
        check=True,
        cwd=root,
        timeout=300,
    )
    (wheel,) = wheels.glob("annotator-*.whl")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True, timeout=300
    )
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    link_core_dependencies(root / "core-deps")
    Path(purelib, "annotator_core_deps.pth").write_text(f"{root / 'core-deps'}\n", encoding="utf-8")
    work = root / "work"
    work.mkdir()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("ANNOTATOR_", "LABEL_STUDIO_", "PYTHON")) and key not in ("LOG_LEVEL", "PORT")
    }
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return venv / "bin", work, env


def run(installed, *args, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    bin_dir, work, env = installed
    out = subprocess.run(
        [str(bin_dir / "annotator"), "--home", "project", *args],
        cwd=work,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check:
        assert out.returncode == 0, out.stderr[-3000:]
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    return out


def test_the_wheel_is_what_runs(installed):
    bin_dir, work, env = installed
    where = subprocess.run(
        [str(bin_dir / "python"), "-c", "import annotator, sklearn; print(annotator.__file__)"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(where).is_relative_to(bin_dir.parent) and "site-packages" in where
    # The extras are really absent: this is the lean core.
    missing = subprocess.run(
        [
            str(bin_dir / "python"),
            "-c",
            "import importlib.util as u; print([m for m in ('label_studio', 'rq', 'psycopg', "
            "'dask', 'pyarrow', 'datasets', 'matplotlib', 'gunicorn', 'krippendorff') "
            "if u.find_spec(m)])",
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert missing == "[]"
    version = subprocess.run(
        [str(bin_dir / "python"), "-m", "annotator", "--version"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert version.startswith("annotator, version ")


def test_ingest_import_train_predict_from_outside_the_repo(installed):
    bin_dir, work, env = installed
    seeds = (REPO / "tasks" / "seed_labels.tsv").read_text(encoding="utf-8").splitlines()[:SEED_LINES]
    (work / "seed.tsv").write_text("\n".join(seeds) + "\n", encoding="utf-8")

    out = run(installed, "ingest", str(REPO / "tasks" / "sources"))
    assert (work / "project" / "tasks.json").is_file()  # under the project home, not the install tree
    assert "tasks written to project/tasks.json" in out.stderr

    out = run(installed, "import-labels", "seed.tsv", "--json")
    assert '"examples"' in out.stdout

    report = json.loads(run(installed, "train", "--json").stdout)
    assert report["n_train"] > 800
    assert [p.parent for p in (work / "project" / "models").rglob("*.pkl")] != []

    clause = "对新认定的国家级专精特新“小巨人”企业，给予一次性奖励50万元。"
    out = run(installed, "predict", "--json", stdin=clause + "\n")
    assert clause in out.stdout and '"labels"' in out.stdout


def test_a_missing_extra_is_named_not_a_traceback(installed):
    with socket.socket() as sock:  # serve checks it can listen before it looks for gunicorn
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = run(installed, "serve", "--workers", "2", "--port", str(port), check=False)
    assert out.returncode == 1
    assert out.stderr.endswith(
        "Error: serve --workers N (several processes, gunicorn) needs the 'scale' extra: "
        "pip install 'annotator[scale]'\n"
    )


def test_export_parquet_without_the_hf_extra_names_it(installed):
    out = run(installed, "export", "--format", "parquet", "--out", "exports/p", "--no-noise-check", check=False)
    assert out.returncode == 1
    assert out.stderr == "Error: export --format parquet needs the 'hf' extra: pip install 'annotator[hf]'\n"
    assert not (installed[1] / "exports" / "p").exists()


def test_the_demo_says_where_its_documents_are(installed):
    # The newsletters and seed labels are not package data: the demo fails before any port or folder.
    out = run(installed, "demo", "--exit-after-setup", check=False)
    assert out.returncode == 1
    assert out.stderr == (
        "Error: the demo's documents and seed labels come with the source repository, not with "
        "the installed package: git clone the repository and run `make demo` there (or ingest "
        "your own documents: annotator ingest DIR)\n"
    )
    assert not (installed[1] / "project" / "labelstudio").exists()
