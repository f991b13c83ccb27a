"""Tests for annotator.review.dashboard: the dashboard's figures computed from a store (no Flask)."""

from __future__ import annotations

from datetime import datetime, timedelta, UTC

import pytest

from annotator.review.agreement import agreement_report
from annotator.review.disagreements import ANNOTATORS_DISAGREE, MODEL_DISAGREES
from annotator.review.dashboard import HOURS_SHOWN, agreement_for_store, dashboard_data, review_queue
from annotator.storage.store import Store, canonical_time
from annotator.types import Annotation, Clause

FISCAL, TAX, TALENT = "财政支持", "税收激励", "人才队伍"
LABELS = (FISCAL, TAX, TALENT)
NOW = datetime(2025, 11, 24, 12, 30, tzinfo=UTC)


def at(hours_ago: float) -> str:
    return (NOW - timedelta(hours=hours_ago)).isoformat()


def ann(cid, labels, name, hours_ago=1.0, source="label_studio"):
    stamp = at(hours_ago)
    return Annotation(cid, tuple(labels), name, source, created_at=stamp, updated_at=stamp)


@pytest.fixture
def store():
    with Store(":memory:") as s:
        s.add_clauses(Clause(f"c{i}", f"第{i}条 支持企业创新。") for i in range(6))
        yield s


def fill(store, annotations):
    for a in annotations:
        store.save_annotation(a)


def test_progress_rates_and_hourly_series(store):
    fill(
        store,
        [
            ann("c0", [FISCAL], "seed", source="seed"),
            ann("c1", [FISCAL], "amy", 0.2),
            ann("c1", [FISCAL], "bo", 0.3),
            ann("c2", [TAX], "amy", 0.4),
            ann("c3", [TAX], "amy", 5.1),  # another hour
            ann("c4", [], "bo", 30.0),  # more than 24 hours ago
        ],
    )
    store.record_push(1, [("c4", 1, 0), ("c5", 2, 1)], batch=1, model_version=None)
    data = dashboard_data(store, LABELS, now=NOW)
    p = data.progress
    assert (p.n_clauses, p.n_labeled, p.n_human_labeled, p.n_unlabeled) == (6, 5, 4, 1)
    assert (p.n_pushed, p.n_pending, p.n_annotations, p.n_seed, p.n_last_24h) == (2, 1, 5, 1, 4)
    assert p.labels_per_hour == pytest.approx(5 / 3)  # 5 annotations in 3 distinct clock hours
    assert len(data.hourly) == HOURS_SHOWN and data.hourly[-1].start == NOW.replace(minute=0)
    assert [h.count for h in data.hourly[-6:]] == [1, 0, 0, 0, 0, 3]
    by_name = {a.annotator: a for a in data.annotators}
    assert [a.annotator for a in data.annotators] == ["amy", "bo"]
    assert (by_name["amy"].n_annotations, by_name["amy"].active_hours, by_name["amy"].labels_per_hour) == (3, 2, 1.5)
    assert by_name["bo"].last_at == canonical_time(at(0.3))


def test_hourly_series_ends_at_the_last_activity_of_an_idle_project(store):
    fill(store, [ann("c1", [FISCAL], "amy", 100.0)])
    hourly = dashboard_data(store, LABELS, now=NOW).hourly
    assert hourly[-1].count == 1 and hourly[-1].start == (NOW - timedelta(hours=100)).replace(minute=0)


def test_label_counts_by_source(store):
    fill(
        store,
        [
            ann("c0", [FISCAL, TAX], "seed", source="seed"),
            ann("c1", [FISCAL], "amy"),
            ann("c1", [FISCAL, TALENT], "bo"),
        ],
    )
    store.adjudicate("c1", [FISCAL], "lead")
    counts = {
        c.label: (c.n_seed, c.n_human, c.n_adjudicated, c.total)
        for c in dashboard_data(store, LABELS, now=NOW).label_counts
    }
    assert counts == {FISCAL: (1, 2, 1, 3), TAX: (1, 0, 0, 1), TALENT: (0, 1, 0, 1)}


def test_agreement_uses_adjudications_and_the_latest_model_version(store):
    fill(
        store,
        [ann("c1", [FISCAL], "amy"), ann("c1", [FISCAL], "bo"), ann("c2", [TAX], "amy"), ann("c2", [TALENT], "bo")],
    )
    store.adjudicate("c2", [TAX], "lead")
    store.add_model_version("m1.pkl", 10, {"macro_f1": 0.5})
    store.save_predictions(1, [("c1", (TAX,), 0.99)])
    store.add_model_version("m2.pkl", 20, {"macro_f1": 0.6})
    store.save_predictions(2, [("c1", (FISCAL,), 0.99)])
    report = agreement_for_store(store, LABELS)
    expected = agreement_report(store.annotations(), LABELS, adjudicated={"c2": (TAX,)}, model={"c1": (FISCAL,)})
    assert report == expected
    assert report.per_annotator[0].model.exact_match == 1.0


def test_queue_drops_model_disagreements_a_lead_already_decided(store):
    fill(
        store,
        [
            ann("c1", [FISCAL], "amy"),
            ann("c1", [TAX], "bo"),  # humans disagree
            ann("c2", [TAX], "amy"),
            ann("c2", [TAX], "bo"),  # unanimous, model confident otherwise
            ann("c3", [TAX], "amy"),
            ann("c3", [TALENT], "bo"),
        ],
    )
    store.add_model_version("m1.pkl", 10, {})
    store.save_predictions(1, [("c2", (TALENT,), 0.95)])
    queue = review_queue(store, LABELS)
    assert sorted((d.clause_id, d.reason) for d in queue) == [
        ("c1", ANNOTATORS_DISAGREE),
        ("c2", MODEL_DISAGREES),
        ("c3", ANNOTATORS_DISAGREE),
    ]
    store.adjudicate("c1", [FISCAL], "lead")
    store.adjudicate("c2", [TAX], "lead")
    assert [d.clause_id for d in review_queue(store, LABELS)] == ["c3"]
    data = dashboard_data(store, LABELS, now=NOW)
    assert (data.n_queue, data.n_queue_humans) == (1, 1)


def test_queue_items_carry_text_candidates_and_a_starting_point(store):
    fill(
        store,
        [ann("c1", [FISCAL, TAX], "amy"), ann("c1", [FISCAL], "bo"), ann("c2", [TAX], "amy"), ann("c2", [TAX], "bo")],
    )
    store.add_model_version("m1.pkl", 10, {})
    store.save_predictions(1, [("c1", (TALENT,), 0.5), ("c2", (TALENT,), 0.97)])
    items = {i.disagreement.clause_id: i for i in dashboard_data(store, LABELS, now=NOW).queue}
    assert items["c1"].text == "第1条 支持企业创新。"
    assert items["c1"].candidates == (FISCAL, TAX, TALENT)  # both annotators' labels and the model's
    assert items["c1"].preselected == (FISCAL,)  # what everyone agreed on
    assert items["c2"].preselected == (TAX,)  # the unanimous humans, not the model
    assert dashboard_data(store, LABELS, now=NOW, queue_limit=1).queue[0].disagreement.clause_id in items
    assert len(dashboard_data(store, LABELS, now=NOW, queue_limit=1).queue) == 1


def test_learning_curve_reads_metrics_and_tolerates_missing_ones(store):
    store.add_model_version("m1.pkl", 20, {"macro_f1": 0.41, "micro_f1": 0.5, "n": 30})
    store.add_model_version("m2.pkl", 40, {"macro_f1": "n/a", "micro_f1": float("nan")})
    curve = dashboard_data(store, LABELS, now=NOW).curve
    assert [(c.version, c.n_train, c.macro_f1, c.micro_f1, c.n_test) for c in curve] == [
        (1, 20, 0.41, 0.5, 30),
        (2, 40, None, None, None),
    ]


def test_empty_store():
    with Store(":memory:") as store:
        data = dashboard_data(store, LABELS, now=NOW)
    assert data.progress.labels_per_hour is None and data.annotators == () and data.curve == ()
    assert data.report.n_items == 0 and data.queue == () and sum(h.count for h in data.hourly) == 0
