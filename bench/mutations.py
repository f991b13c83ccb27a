"""Would the unit tests notice? Each mutant changes one thing users would notice if it broke.

A small, deterministic mutation check over the outputs users see (the prediction rule, the queue's
order, the webhook's notification of the training queue, the data-checked clause, the retrain
debounce, the store settling by data, adjudication's checks). Each mutant is applied to a copy of
the tree and the unit tests that should catch it run against the copy; a mutant whose tests still
pass "survived" and is a hole in the tests. The mutations the issue on tests listed as unnoticed
are the first ones. mutmut would generate mutants blindly; here each is chosen for what a user
would see, so the whole check runs in minutes on two cores.

Usage: .venv/bin/python bench/mutations.py [--only NAME ...]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# name: (file, original text, mutated text, test files that should catch it)
MUTANTS: dict[str, tuple[str, str, str, tuple[str, ...]]] = {
    "every label pre-filled": (
        "annotator/model/classifier.py",
        "chosen = self.decide(proba).astype(bool)",
        "chosen = np.ones_like(proba, dtype=bool)",
        ("tests/unit/test_loop.py", "tests/unit/test_ls_api.py"),
    ),
    "confidence fixed at 0.5": (
        "annotator/model/classifier.py",
        "round(float(p[row].min()), 4)",
        "0.5",
        ("tests/unit/test_ls_api.py", "tests/unit/test_model.py"),
    ),
    "confidence = the max probability": (
        "annotator/model/classifier.py",
        "round(float(p[row].min()), 4)",
        "round(float(p.max()), 4)",
        ("tests/unit/test_ls_api.py", "tests/unit/test_model.py"),
    ),
    "webhook no longer notifies the training queue": (
        "backend/ls_api.py",
        "            queue.notify(changed)",
        "            pass",
        ("tests/unit/test_ls_api.py", "tests/unit/test_jobs.py"),
    ),
    "queue served in reverse order": (
        "annotator/cycle/ls_queue.py",
        "scores = {row: i / max(len(ranked), 1)",
        "scores = {row: 1 - i / max(len(ranked), 1)",
        ("tests/unit/test_loop.py",),
    ),
    "label attached by the task's clause_id": (
        "annotator/labelstudio/client.py",
        '"clause_id": make_clause_id(text),',
        '"clause_id": given_id if isinstance(given_id, str) and given_id else make_clause_id(text),',
        ("tests/unit/test_sync.py", "tests/unit/test_loop.py"),
    ),
    "annotation forgets the pre-fill it saw": (
        "annotator/cycle/sync.py",
        "prefill_version=pushed.prefill_version if pushed else None",
        "prefill_version=None",
        ("tests/unit/test_sync.py", "tests/unit/test_dashboard.py", "tests/unit/test_loop.py"),
    ),
    "one retrain per label": (
        "backend/jobs.py",
        "if self._forced or self._pending >= self.every:",
        "if self._forced or self._pending >= 1:",
        ("tests/unit/test_jobs.py",),
    ),
    "a push record never returned to the pool": (
        "annotator/cycle/ls_queue.py",
        "lost = [cid for cid in records if cid not in live]",
        "lost = []",
        ("tests/unit/test_loop.py",),
    ),
    "an empty resolver accepted": (
        "annotator/review/resolve.py",
        "    if not resolver:\n",
        "    if False:\n",
        ("tests/unit/test_cli_core.py", "tests/unit/test_dashboard.py"),
    ),
}


def run_mutant(name: str, root: Path) -> tuple[str, float]:
    path, original, mutated, tests = MUTANTS[name]
    copy = root / name.replace(" ", "-").replace("'", "")
    shutil.copytree(
        REPO,
        copy,
        ignore=shutil.ignore_patterns(".venv", ".git", "__pycache__", "bench", "docs", ".annotator", "exports"),
    )
    target = copy / path
    text = target.read_text(encoding="utf-8")
    if text.count(original) != 1:
        return f"not applied (the original text occurs {text.count(original)} times in {path})", 0.0
    target.write_text(text.replace(original, mutated), encoding="utf-8")
    started = time.monotonic()
    env = dict(os.environ, PYTHONPATH=str(copy))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    seconds = time.monotonic() - started
    return ("caught" if done.returncode != 0 else "SURVIVED"), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="mutant names to run (default: all)")
    args = parser.parse_args()
    names = args.only or list(MUTANTS)
    with tempfile.TemporaryDirectory(prefix="annotator-mutants-") as tmp:
        for name in names:
            outcome, seconds = run_mutant(name, Path(tmp))
            print(f"{outcome:>9}  {name}  ({seconds:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
