"""Shared fixtures: settings in a temporary home, a real SQLite store, real clauses from the seed data."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from annotator import Settings, Store
from annotator.labels import TASKS_DIR

REPO = Path(__file__).resolve().parent.parent
SEEDS = REPO.parent / "shared" / "seeds"
SEED_TSV = (
    SEEDS / "labeled_policy_clauses.tsv"
    if (SEEDS / "labeled_policy_clauses.tsv").exists()
    else TASKS_DIR / "seed_labels.tsv"
)
SOURCES = TASKS_DIR / "sources"


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(
        home=tmp_path / "home", retrain_delay=0.2, retrain_every=5, min_train_labels=20, batch_size=10, low_water=5
    )


@pytest.fixture
def store(settings):
    with Store(settings.db_path) as s:
        yield s


def seed_lines(n: int, seed: int = 0) -> list[str]:
    """``n`` random distinct-text lines of the seed TSV (all labels of each chosen text)."""
    by_text: dict[str, list[str]] = {}
    for line in SEED_TSV.read_text(encoding="utf-8").splitlines():
        if "\t" in line:
            by_text.setdefault(line.split("\t", 1)[1], []).append(line)
    texts = sorted(by_text)
    random.Random(seed).shuffle(texts)
    return [line for text in texts[:n] for line in by_text[text]]


@pytest.fixture
def tiny_corpus(tmp_path) -> Path:
    """A seed-format TSV of 300 real labeled clauses."""
    path = tmp_path / "tiny.tsv"
    path.write_text("\n".join(seed_lines(300)) + "\n", encoding="utf-8")
    return path


def report_line(config, line: str) -> None:
    """Write ``line`` to pytest's terminal output, past output capturing (e.g. a fuzz case count)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(line)
