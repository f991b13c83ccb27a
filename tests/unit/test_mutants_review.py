"""Tests written for mutants that mutmut found alive in annotator/review/agreement.py and
annotator/review/resolve.py (docs/mutation-testing.md): the agreement figures the leads read on the
dashboard and in ``annotator agreement``, and the label set each clause is exported with."""

from __future__ import annotations

import krippendorff
import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

from annotator.review.agreement import agreement_report
from annotator.review.resolve import resolve_group
from annotator.types import Annotation

FISCAL, TAX = "财政支持", "税收激励"
LABELS = (FISCAL, TAX)


def rated(columns: dict[str, list[int]]) -> list[Annotation]:
    """Annotations from {annotator: [0/1 for 财政支持 per clause]}; 税收激励 never chosen."""
    return [
        Annotation(f"c{i:02d}", (FISCAL,) if value else (), name, "label_studio")
        for name, values in columns.items()
        for i, value in enumerate(values)
    ]


def references(columns: dict[str, list[int]]) -> tuple[float, float]:
    """statsmodels' Fleiss kappa and the krippendorff package's nominal alpha for the columns."""
    ratings = np.array(list(columns.values())).T  # (clauses, raters)
    table, _ = aggregate_raters(ratings, n_cat=2)
    alpha = krippendorff.alpha(reliability_data=ratings.T.astype(float), level_of_measurement="nominal")
    return fleiss_kappa(table, method="fleiss"), alpha


@pytest.mark.parametrize(
    "columns",
    [
        # The label chosen once in 12 ratings, and the label left out once in 12 ratings: rare but
        # real variation, so both figures are defined (and low), not "undefined".
        {"li": [1, 0, 0, 0, 0, 0], "wang": [0, 0, 0, 0, 0, 0]},
        {"li": [1, 1, 1, 1, 1, 1], "wang": [0, 1, 1, 1, 1, 1]},
    ],
)
def test_a_label_chosen_or_left_out_exactly_once_still_gets_its_figures(columns):
    row = next(r for r in agreement_report(rated(columns), LABELS).per_label if r.label == FISCAL)
    fleiss, alpha = references(columns)
    assert row.fleiss_kappa == pytest.approx(fleiss, abs=1e-12)
    assert row.krippendorff_alpha == pytest.approx(alpha, abs=1e-12)
    (pair,) = row.cohen_kappa_pairs
    assert pair.kappa == pytest.approx(cohen_kappa_score(columns["li"], columns["wang"], labels=[0, 1]), abs=1e-12)


def test_two_annotators_who_share_one_clause_and_disagree_have_kappa_zero():
    # sklearn: p_o = 0, p_e = 0, kappa = 0; not "undefined" (both did not rate one constant way).
    report = agreement_report(rated({"li": [1], "wang": [0]}), LABELS)
    (pair,) = next(r for r in report.per_label if r.label == FISCAL).cohen_kappa_pairs
    assert (pair.n_items, pair.kappa) == (1, cohen_kappa_score([1], [0], labels=[0, 1])) == (1, 0.0)


def test_a_report_without_shared_clauses_says_fleiss_used_no_clause_and_no_rater():
    annotations = [
        Annotation("c01", (FISCAL,), "li", "label_studio"),
        Annotation("c02", (TAX,), "wang", "label_studio"),
    ]
    for row in agreement_report(annotations, LABELS).per_label:
        assert (row.fleiss_kappa, row.fleiss_n_raters, row.fleiss_n_items) == (None, 0, 0)


def test_a_lead_deciding_a_clause_carries_no_label_leaves_it_out_as_training_does():
    # adjudicate() allows an empty set; like training (chosen_labels keeps non-empty sets only), the
    # export then leaves the clause out: a row with no label would teach every label "absent".
    votes = [Annotation("c01", (FISCAL,), "li", "label_studio"), Annotation("c02", (TAX,), "wang", "label_studio")]
    resolution = resolve_group(votes, labels=LABELS, adjudications=[()], clause_ids=["c01", "c02"])
    assert (resolution.status, resolution.labels, resolution.sources) == ("unresolved", (), ("adjudication",))
    assert resolution.clause_ids == ("c01", "c02")
    assert resolution.disputed == (FISCAL, TAX)
