"""Label Studio on PostgreSQL: first start (migrations), a project, 1,000 clause tasks imported.

Starts a private PostgreSQL server (tests/pgserver.py, durable settings) and Label Studio on a
new, empty database in it with a fresh data folder, then through the product's LabelStudioClient:
creates the project with the shipped labeling config, imports the tasks in batches as the queue
pushes them, and reads them all back. ``--sqlite`` runs the same against Label Studio's default
SQLite database, for comparison. Not part of the test suite (the first start alone takes minutes).

Usage: .venv/bin/python bench/ls_postgres.py [--tasks 1000] [--batch 100] [--sqlite]
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from annotator import LabelStudioClient, Settings  # noqa: E402
from annotator.labels import TASKS_DIR  # noqa: E402
from annotator.labelstudio.client import task_data  # noqa: E402
from annotator.text.normalize import clause_id  # noqa: E402
from tests.pgserver import PostgresServer  # noqa: E402
from annotator.cli.services import LabelStudioServer  # noqa: E402
from benchlib import percentile  # noqa: E402


def clause_tasks(n: int, config) -> list[dict]:
    """``n`` tasks of distinct real clauses from the shipped seed file (numbered repeats past its end)."""
    texts = list(
        dict.fromkeys(
            line.split("\t", 1)[1]
            for line in (TASKS_DIR / "seed_labels.tsv").read_text(encoding="utf-8").splitlines()
            if "\t" in line
        )
    )
    texts = [t if i < len(texts) else f"{t}（{i}）" for i, t in enumerate((texts * (n // len(texts) + 1))[:n])]
    return [{"data": task_data(clause_id(t), t, "", config)} for t in texts]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=100, help="tasks per import request")
    parser.add_argument("--sqlite", action="store_true", help="Label Studio's own SQLite instead")
    parser.add_argument("--start-timeout", type=float, default=900)
    args = parser.parse_args()
    config = Settings().labels_config()
    tasks = clause_tasks(args.tasks, config)
    engine = "SQLite" if args.sqlite else "PostgreSQL"
    with tempfile.TemporaryDirectory(prefix="annotator-ls-bench-") as tmp, contextlib.ExitStack() as stack:
        database_url = ""
        if not args.sqlite:
            t0 = time.monotonic()
            server = stack.enter_context(PostgresServer(durable=True))
            database_url = server.create_database("labelstudio")
            print(f"PostgreSQL server up, database created: {time.monotonic() - t0:.1f} s")
        ls = stack.enter_context(LabelStudioServer(Path(tmp) / "ls", database_url=database_url))
        t0 = time.monotonic()
        ls.start(timeout=args.start_timeout)
        print(f"Label Studio 1st start on {engine} (migrations, admin, token): {time.monotonic() - t0:.0f} s")
        with LabelStudioClient(ls.url, ls.token, timeout=300) as client:
            t0 = time.monotonic()
            project_id, _ = client.ensure_project("Policy clauses (bench)", config.xml)
            print(f"create project: {time.monotonic() - t0:.2f} s")
            seconds, ids = [], []
            t0 = time.monotonic()
            for start in range(0, len(tasks), args.batch):
                t1 = time.monotonic()
                ids += client.import_tasks(project_id, tasks[start : start + args.batch])
                seconds.append(time.monotonic() - t1)
            total = time.monotonic() - t0
            print(
                f"import {len(ids)} tasks in {len(seconds)} requests of {args.batch}: {total:.1f} s "
                f"({len(ids) / total:.0f} tasks/s; per request p50 {percentile(seconds, 50):.2f} s, "
                f"max {max(seconds):.2f} s)"
            )
            t0 = time.monotonic()
            listed = sum(1 for _ in client.tasks(project_id))
            print(f"read all {listed} tasks back: {time.monotonic() - t0:.1f} s")
            if listed != len(tasks) or len(set(ids)) != len(tasks):
                raise SystemExit(f"expected {len(tasks)} tasks, Label Studio holds {listed}")
        if database_url:
            import psycopg

            with psycopg.connect(database_url) as conn:
                n = conn.execute("SELECT COUNT(*) FROM task").fetchone()[0]
                size = conn.execute("SELECT pg_size_pretty(pg_database_size(current_database()))").fetchone()[0]
            print(f"in PostgreSQL: {n} rows in Label Studio's task table; database size {size}")


if __name__ == "__main__":
    main()
