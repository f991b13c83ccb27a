"""Tests for annotator.review.agreement: hand-computed cases, library cross-checks, degenerate input, the queue."""

from __future__ import annotations

import json
import math
from itertools import combinations

import krippendorff
import numpy as np
import pytest
from nltk.metrics.agreement import AnnotationTask
from nltk.metrics.distance import binary_distance
from nltk.metrics.distance import masi_distance as nltk_masi
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

from annotator.review.agreement import agreement_report, masi_distance
from annotator.review.disagreements import ANNOTATORS_DISAGREE, MODEL_DISAGREES, disagreements
from annotator.errors import InputError, UnknownLabelError
from annotator.types import Annotation

FISCAL, TAX, TALENT = "财政支持", "税收激励", "人才队伍"
LABELS = (FISCAL, TAX, TALENT)


def ann(clause_id, labels, annotator, source="label_studio"):
    return Annotation(clause_id=clause_id, labels=tuple(labels), annotator=annotator, source=source)


def from_columns(columns, labels=(FISCAL,)):
    """Annotations from {annotator: [0/1 per clause]} for the first label; None = did not rate."""
    return [
        ann(f"c{i:02d}", labels[:1] if value else (), name)
        for name, values in columns.items()
        for i, value in enumerate(values)
        if value is not None
    ]


def label_row(report, label):
    return next(row for row in report.per_label if row.label == label)


# --------------------------------------------------------------------------- hand-computed cases


def test_two_annotators_ten_items_hand_computed():
    # alice: 1 1 1 1 1 0 0 0 0 0
    # bob:   1 1 1 1 0 1 0 0 0 0   -> they agree on 8 of 10 items
    # Cohen: p_o = 8/10 = 0.8; each chose the label 5 times, p_e = .5*.5 + .5*.5 = 0.5;
    #        kappa = (0.8 - 0.5) / (1 - 0.5) = 0.6
    # Fleiss (2 raters = Scott's pi, equal marginals): P_bar = 0.8, p = 10/20 = 0.5, P_e = 0.5 -> 0.6
    # Krippendorff: n = 20 values, 10 ones, 10 zeros; the 2 split items give o_01 = 2 * (1*1)/(2-1) = 2;
    #        alpha = 1 - (n - 1) * o_01 / (n_0 * n_1) = 1 - 19 * 2 / 100 = 0.62
    # Sets: items 1-4 {财政支持} twice, 5-6 {财政支持} vs {}, 7-10 {} twice:
    #        exact match 8/10, mean Jaccard (4*1 + 2*0 + 4*1) / 10 = 0.8 (two empty sets agree),
    #        MASI distance is 0 or 1 here, so the MASI alpha equals the binary alpha, 0.62.
    annotations = from_columns({"alice": [1, 1, 1, 1, 1, 0, 0, 0, 0, 0], "bob": [1, 1, 1, 1, 0, 1, 0, 0, 0, 0]})
    report = agreement_report(annotations, LABELS)
    row = label_row(report, FISCAL)
    assert report.n_items == 10 and report.n_annotators == 2 and report.annotators == ("alice", "bob")
    assert row.cohen_kappa == pytest.approx(0.6, abs=1e-12)
    assert row.cohen_kappa_pairs[0].annotators == ("alice", "bob")
    assert row.cohen_kappa_pairs[0].n_items == 10
    assert row.fleiss_kappa == pytest.approx(0.6, abs=1e-12)
    assert (row.fleiss_n_raters, row.fleiss_n_items) == (2, 10)
    assert row.krippendorff_alpha == pytest.approx(0.62, abs=1e-12)
    assert row.agreement == pytest.approx(0.8)
    assert row.positives == 10
    assert row.warning == "only 10 items: too few for this figure to mean anything"
    assert report.set_level.exact_match == pytest.approx(0.8)
    assert report.set_level.mean_jaccard == pytest.approx(0.8)
    assert report.set_level.krippendorff_alpha_masi == pytest.approx(0.62, abs=1e-12)
    (pair,) = report.pairs
    # Pooled over 3 labels = 30 cells: 28 agree; alice chose 5 cells, bob 5:
    # p_o = 28/30, p_e = (5*5 + 25*25) / 900 = 650/900; kappa = (840 - 650) / (900 - 650) = 0.76
    assert pair.cohen_kappa == pytest.approx(0.76, abs=1e-12)
    assert (pair.n_items, pair.exact_match, pair.mean_jaccard) == (10, 0.8, 0.8)


def test_three_annotators_fleiss_hand_computed():
    # Positives per item among 3 raters: 3, 0, 2, 1, 3.
    # P_i = (n1(n1-1) + n0(n0-1)) / (3*2): 1, 1, 1/3, 1/3, 1  -> P_bar = (3 + 2/3) / 5 = 11/15
    # p = 9/15 = 0.6, P_e = 0.36 + 0.16 = 0.52
    # kappa = (11/15 - 13/25) / (12/25) = (16/75) * (25/12) = 4/9
    annotations = from_columns({"x": [1, 0, 1, 1, 1], "y": [1, 0, 1, 0, 1], "z": [1, 0, 0, 0, 1]})
    row = label_row(agreement_report(annotations, LABELS), FISCAL)
    assert row.fleiss_kappa == pytest.approx(4 / 9, abs=1e-12)
    assert (row.fleiss_n_raters, row.fleiss_n_items) == (3, 5)
    assert row.agreement == pytest.approx(3 / 5)


def test_fleiss_uses_the_largest_group_with_one_rater_count():
    # Items 0-4 have 3 raters, items 5-6 only 2 (z missing): Fleiss uses items 0-4 only, as above.
    annotations = from_columns(
        {"x": [1, 0, 1, 1, 1, 1, 0], "y": [1, 0, 1, 0, 1, 0, 0], "z": [1, 0, 0, 0, 1, None, None]}
    )
    row = label_row(agreement_report(annotations, LABELS), FISCAL)
    assert (row.fleiss_n_raters, row.fleiss_n_items) == (3, 5)
    assert row.fleiss_kappa == pytest.approx(4 / 9, abs=1e-12)
    assert row.n_items == 7


def test_masi_distance_matches_nltk_and_defines_two_empty_sets():
    sets = [set(), {"a"}, {"b"}, {"a", "b"}, {"a", "b", "c"}, {"c", "d"}, {"a", "c", "d"}]
    for a, b in combinations(sets, 2):
        assert masi_distance(a, b) == pytest.approx(nltk_masi(a, b), abs=1e-15)
    assert masi_distance({"a", "b"}, {"a", "b", "c", "d"}) == pytest.approx(1 - 0.5 * 2 / 3)
    assert masi_distance({"a", "b"}, {"b", "c"}) == pytest.approx(1 - (1 / 3) * (1 / 3))
    assert masi_distance(set(), set()) == 0.0
    with pytest.raises(ZeroDivisionError):  # why we do not call nltk for this case
        nltk_masi(set(), set())


# --------------------------------------------------------------------------- library cross-checks


def random_annotations(rng, n_clauses, n_annotators, labels, rate_prob, noise=0.2):
    """Noisy copies of a hidden label set; each annotator rates a clause with probability rate_prob."""
    prevalence = rng.uniform(0.1, 0.6, len(labels))
    annotations = []
    for c in range(n_clauses):
        truth = rng.random(len(labels)) < prevalence
        for a in range(n_annotators):
            if rng.random() < rate_prob:
                chosen = truth ^ (rng.random(len(labels)) < noise)
                annotations.append(ann(f"c{c:03d}", [lab for lab, on in zip(labels, chosen) if on], f"a{a}"))
    return annotations


def latest_sets(annotations):
    latest = {}
    for a in annotations:
        if a.source != "seed":
            latest.setdefault(a.clause_id, {})[a.annotator] = frozenset(a.labels)
    return {cid: sets for cid, sets in latest.items() if len(sets) >= 2}


def safe_masi(a, b):
    return 0.0 if not a and not b else nltk_masi(a, b)


@pytest.mark.parametrize(
    "seed, n_annotators, n_labels, rate_prob",
    [
        (0, 2, 4, 1.0),
        (1, 3, 5, 1.0),
        (2, 5, 6, 0.7),
        (3, 4, 3, 0.5),
        (4, 6, 27, 0.6),
    ],
)
def test_matches_sklearn_statsmodels_nltk_krippendorff(seed, n_annotators, n_labels, rate_prob):
    rng = np.random.default_rng(seed)
    labels = tuple(f"标签{i}" for i in range(n_labels))
    annotations = random_annotations(rng, 60, n_annotators, labels, rate_prob)
    report = agreement_report(annotations, labels)
    items = latest_sets(annotations)
    names = sorted({name for sets in items.values() for name in sets})
    assert report.n_items == len(items)
    checked = 0
    for row in report.per_label:
        lab = row.label
        # Cohen per pair: sklearn on the shared items
        defined = []
        for pair in row.cohen_kappa_pairs:
            a, b = pair.annotators
            shared = [s for s in items.values() if a in s and b in s]
            ya, yb = [int(lab in s[a]) for s in shared], [int(lab in s[b]) for s in shared]
            assert pair.n_items == len(shared)
            if len(set(ya) | set(yb)) < 2:  # both constant and equal: undefined
                assert pair.kappa is None
                continue
            expected = cohen_kappa_score(ya, yb, labels=[0, 1])
            assert pair.kappa == pytest.approx(expected, abs=1e-9)
            defined.append(expected)
            checked += 1
        assert row.cohen_kappa == pytest.approx(float(np.mean(defined)), abs=1e-9)
        # Fleiss: statsmodels on the items that have the chosen rater count
        subset = [
            [int(lab in chosen) for chosen in s.values()] for s in items.values() if len(s) == row.fleiss_n_raters
        ]
        assert len(subset) == row.fleiss_n_items
        table, _ = aggregate_raters(np.array(subset), n_cat=2)
        assert row.fleiss_kappa == pytest.approx(fleiss_kappa(table, method="fleiss"), abs=1e-9)
        # Krippendorff binary: nltk (handles missing ratings) and the krippendorff package
        task = AnnotationTask(
            [(name, cid, int(lab in chosen)) for cid, s in items.items() for name, chosen in s.items()],
            distance=binary_distance,
        )
        assert row.krippendorff_alpha == pytest.approx(task.alpha(), abs=1e-9)
        data = [[int(lab in items[cid][n]) if n in items[cid] else np.nan for cid in items] for n in names]
        assert row.krippendorff_alpha == pytest.approx(
            krippendorff.alpha(reliability_data=data, level_of_measurement="nominal"), abs=1e-9
        )
    assert checked > 0
    # Set level: MASI alpha against nltk and against krippendorff with a custom distance
    task = AnnotationTask(
        [(name, cid, chosen) for cid, s in items.items() for name, chosen in s.items()], distance=safe_masi
    )
    assert report.set_level.krippendorff_alpha_masi == pytest.approx(task.alpha(), abs=1e-9)
    domain = sorted({chosen for s in items.values() for chosen in s.values()}, key=sorted)
    index = {chosen: i for i, chosen in enumerate(domain)}
    dist = np.array([[safe_masi(a, b) for b in domain] for a in domain])
    counts = np.zeros((len(items), len(domain)))
    for u, s in enumerate(items.values()):
        for chosen in s.values():
            counts[u, index[chosen]] += 1
    expected = krippendorff.alpha(
        value_counts=counts,
        value_domain=np.arange(len(domain)),
        level_of_measurement=lambda v1, v2, i1, i2, n_v, dtype: dist[i1, i2],
    )
    assert report.set_level.krippendorff_alpha_masi == pytest.approx(expected, abs=1e-9)
    # Exact match, mean Jaccard, pairwise matrix
    jaccard = lambda a, b: len(a & b) / len(a | b) if a or b else 1.0  # noqa: E731
    exact = [len(set(s.values())) == 1 for s in items.values()]
    mean_j = [np.mean([jaccard(a, b) for a, b in combinations(s.values(), 2)]) for s in items.values()]
    assert report.set_level.exact_match == pytest.approx(np.mean(exact), abs=1e-12)
    assert report.set_level.mean_jaccard == pytest.approx(np.mean(mean_j), abs=1e-12)
    assert len(report.pairs) == len(names) * (len(names) - 1) // 2
    for pair in report.pairs:
        a, b = pair.annotators
        shared = [s for s in items.values() if a in s and b in s]
        ya = [int(lab in s[a]) for s in shared for lab in labels]
        yb = [int(lab in s[b]) for s in shared for lab in labels]
        assert pair.cohen_kappa == pytest.approx(cohen_kappa_score(ya, yb), abs=1e-9)
        assert pair.exact_match == pytest.approx(np.mean([s[a] == s[b] for s in shared]), abs=1e-12)
        assert pair.mean_jaccard == pytest.approx(np.mean([jaccard(s[a], s[b]) for s in shared]), abs=1e-12)


def test_more_than_64_labels_takes_the_multi_word_path():
    rng = np.random.default_rng(7)
    labels = tuple(f"L{i}" for i in range(70))
    annotations = random_annotations(rng, 30, 3, labels, 0.8, noise=0.05)
    items = latest_sets(annotations)
    task = AnnotationTask(
        [(name, cid, chosen) for cid, s in items.items() for name, chosen in s.items()], distance=safe_masi
    )
    report = agreement_report(annotations, labels)
    assert report.set_level.krippendorff_alpha_masi == pytest.approx(task.alpha(), abs=1e-9)


# --------------------------------------------------------------------------- degenerate input


def test_label_nobody_chose_is_undefined_not_a_crash():
    annotations = from_columns({"alice": [1, 0, 1, 0], "bob": [1, 0, 0, 0]})
    row = label_row(agreement_report(annotations, LABELS), TAX)
    assert (row.cohen_kappa, row.fleiss_kappa, row.krippendorff_alpha) == (None, None, None)
    assert row.cohen_kappa_pairs[0].kappa is None
    assert row.positives == 0 and row.agreement == 1.0
    assert row.warning == (
        "only 4 items: too few for this figure to mean anything; nobody chose this label "
        "on a shared clause: kappa and alpha are undefined (no variation to agree on)"
    )


def test_partly_undefined_kappas_are_left_out_and_said():
    # Items 0-2 rated by x, y, z, nobody chose the label; items 3-4 by x and y only, x chose it on 3.
    # (x, y): 5 shared items, p_o = 4/5, x chose 1, y 0: chance = 1*0 + 4*5 = 20,
    #         kappa = (5*4 - 20) / (25 - 20) = 0. (x, z), (y, z): all zeros -> undefined, left out.
    # Fleiss: the 3-rater group (3 items) has no variation -> undefined.
    # Krippendorff: 13 values, one 1; o_01 = 1*1/(2-1) = 1 -> alpha = 1 - 12 * 1 / (12 * 1) = 0.
    annotations = from_columns({"x": [0, 0, 0, 1, 0], "y": [0, 0, 0, 0, 0], "z": [0, 0, 0, None, None]})
    row = label_row(agreement_report(annotations, LABELS), FISCAL)
    assert [p.kappa for p in row.cohen_kappa_pairs] == [0.0, None, None]
    assert (row.cohen_kappa, row.fleiss_kappa, row.krippendorff_alpha) == (0.0, None, 0.0)
    assert row.warning == (
        "only 5 items: too few for this figure to mean anything; Cohen's kappa is undefined for 2 of 3 "
        "annotator pairs (both rated this label one constant way); the mean leaves them out; "
        "Fleiss' kappa is undefined: no variation on the 3 clauses with 3 raters"
    )


def test_everyone_agrees_everywhere():
    columns = {name: [1, 0] * 15 for name in ("a", "b", "c")}
    report = agreement_report(from_columns(columns), LABELS)
    row = label_row(report, FISCAL)
    assert (row.cohen_kappa, row.fleiss_kappa, row.krippendorff_alpha, row.agreement) == (1.0, 1.0, 1.0, 1.0)
    assert row.warning is None
    assert report.set_level.krippendorff_alpha_masi == 1.0
    assert (report.set_level.exact_match, report.set_level.mean_jaccard) == (1.0, 1.0)
    assert all(p.cohen_kappa == 1.0 for p in report.pairs)


def test_same_set_everywhere_leaves_alpha_undefined():
    # Every rating is the same label set: there is no variation, so chance-corrected figures are None.
    annotations = [ann(f"c{i}", [FISCAL], name) for i in range(25) for name in ("a", "b")]
    report = agreement_report(annotations, LABELS)
    assert report.set_level.krippendorff_alpha_masi is None
    assert report.set_level.exact_match == 1.0
    assert report.set_level.warning == (
        "every annotator chose the same label set on every shared clause: alpha is undefined (no variation)"
    )
    row = label_row(report, FISCAL)
    assert row.cohen_kappa is None
    assert row.warning == "every rating chose this label: kappa and alpha are undefined (no variation)"
    # Pooled over labels the ratings do vary (财政支持 always 1, the others always 0): kappa 1.
    assert report.pairs[0].cohen_kappa == 1.0
    nothing = agreement_report([ann(f"c{i}", [], name) for i in range(25) for name in ("a", "b")], LABELS)
    assert nothing.pairs[0].cohen_kappa is None
    assert nothing.pairs[0].warning == (
        "kappa is undefined: both annotators chose no label anywhere (or every label everywhere)"
    )
    assert nothing.set_level.mean_jaccard == 1.0  # two empty sets agree


def test_two_empty_label_sets_agree_under_masi():
    # Items c0-c3: both chose nothing (distance 0, not nltk's ZeroDivisionError); c4: {财政支持} vs {}.
    annotations = [ann(f"c{i}", [], name) for i in range(4) for name in ("a", "b")]
    annotations += [ann("c4", [FISCAL], "a"), ann("c4", [], "b")]
    report = agreement_report(annotations, LABELS)
    # n = 10 values: 9 empty sets, 1 {财政支持}; D_o = 2 * 1 / 10 (one split item, m_u - 1 = 1);
    # D_e = 2 * 9 * 1 * 1 / (10 * 9) = 0.2 -> alpha = 1 - 0.2 / 0.2 = 0
    assert report.set_level.krippendorff_alpha_masi == pytest.approx(0.0, abs=1e-12)
    assert report.set_level.exact_match == pytest.approx(0.8)
    assert report.set_level.mean_jaccard == pytest.approx(0.8)


def test_single_annotator_gives_no_items_and_no_crash():
    annotations = [ann(f"c{i}", [FISCAL], "alice") for i in range(5)]
    report = agreement_report(annotations, LABELS)
    assert (report.n_items, report.n_annotators, report.pairs) == (0, 1, ())
    assert report.warning == "no clause has two or more annotators yet: nothing to compare"
    row = label_row(report, FISCAL)
    assert (row.n_items, row.cohen_kappa, row.fleiss_kappa, row.krippendorff_alpha, row.agreement) == (
        0,
        None,
        None,
        None,
        None,
    )
    assert row.warning == "no clause has two or more annotators yet: nothing to compare"
    assert report.set_level.krippendorff_alpha_masi is None
    assert report.per_annotator[0].n_annotations == 5 and report.per_annotator[0].n_items == 0
    json.dumps(report.to_dict(), allow_nan=False)


def test_no_annotations_at_all():
    report = agreement_report([], LABELS)
    assert (report.n_items, report.n_annotators, report.annotators) == (0, 0, ())
    assert disagreements([], LABELS) == []
    json.dumps(report.to_dict(), allow_nan=False)


def test_pair_without_shared_clauses_is_listed_with_none():
    annotations = [ann("c1", [FISCAL], "a"), ann("c1", [], "b"), ann("c2", [TAX], "b"), ann("c2", [TAX], "c")]
    report = agreement_report(annotations, LABELS)
    pair = next(p for p in report.pairs if p.annotators == ("a", "c"))
    assert (pair.n_items, pair.exact_match, pair.mean_jaccard, pair.cohen_kappa) == (0, None, None, None)
    assert pair.warning == "no clause has two or more annotators yet: nothing to compare"


def test_seed_annotations_are_ignored():
    human = from_columns({"alice": [1, 0, 1, 1], "bob": [1, 0, 0, 1]})
    seeds = [
        ann("c00", [TAX], "seed-import", source="seed"),
        ann("c01", [TALENT], "alice", source="seed"),
        ann("c09", [TAX], "seed-import", source="seed"),
    ]
    with_seeds = agreement_report(seeds + human + seeds, LABELS)
    without = agreement_report(human, LABELS)
    assert with_seeds.n_seed_ignored == 6
    assert with_seeds.to_dict() == {**without.to_dict(), "n_seed_ignored": 6}
    assert disagreements(seeds + human, LABELS) == disagreements(human, LABELS)


def test_last_annotation_of_an_annotator_wins():
    first = [ann("c1", [FISCAL], "alice"), ann("c1", [TAX], "bob")]
    report = agreement_report(first + [ann("c1", [TAX], "alice")], LABELS)
    assert report.set_level.exact_match == 1.0
    assert report.per_annotator[0].n_annotations == 1
    assert disagreements(first + [ann("c1", [TAX], "alice")], LABELS) == []
    assert [d.clause_id for d in disagreements(first, LABELS)] == ["c1"]


def test_unknown_label_and_bad_arguments_are_named():
    with pytest.raises(UnknownLabelError) as exc:
        agreement_report([ann("c7", ["财政补助"], "alice")], LABELS)
    assert str(exc.value) == (
        "clause c7, annotator alice: label '财政补助' is not in the label set; "
        "did you mean '财政支持'? known: 财政支持, 税收激励, 人才队伍"
    )
    with pytest.raises(UnknownLabelError, match="^adjudicated set of clause c1: label 'x'"):
        agreement_report([], LABELS, adjudicated={"c1": ["x"]})
    with pytest.raises(InputError, match=r"^the label set is empty; pass the project's labels"):
        agreement_report([], ())
    with pytest.raises(InputError, match=r"^min_confidence must be between 0 and 1, got 1.5$"):
        disagreements([], LABELS, min_confidence=1.5)


# --------------------------------------------------------------------------- per annotator


def test_agreement_with_adjudicated_and_model():
    annotations = [
        ann("c1", [FISCAL], "a"),
        ann("c1", [FISCAL, TAX], "b"),
        ann("c2", [TAX], "a"),
        ann("c3", [], "a"),
    ]
    report = agreement_report(
        annotations, LABELS, adjudicated={"c1": [FISCAL], "c2": [TAX, TALENT]}, model={"c1": [TAX], "c3": []}
    )
    a, b = report.per_annotator
    # a vs adjudicated: c1 equal (J 1), c2 {税收} vs {税收, 人才} (J 1/2): exact 1/2, Jaccard 3/4
    assert (a.adjudicated.n_items, a.adjudicated.exact_match, a.adjudicated.mean_jaccard) == (2, 0.5, 0.75)
    # a vs model: c1 {财政} vs {税收} (J 0), c3 {} vs {} (J 1)
    assert (a.model.n_items, a.model.exact_match, a.model.mean_jaccard) == (2, 0.5, 0.5)
    assert (b.adjudicated.n_items, b.adjudicated.exact_match, b.adjudicated.mean_jaccard) == (1, 0.0, 0.5)
    assert (a.n_annotations, a.n_items, b.n_annotations, b.n_items) == (3, 1, 1, 1)
    assert report.to_dict()["per_annotator"][1]["model"] == {
        "n_items": 1,
        "exact_match": 0.0,
        "mean_jaccard": 0.5,
    }


# --------------------------------------------------------------------------- disagreement queue


def queue_example():
    a, b, c = LABELS
    annotations = [
        ann("c1", [a], "x"),
        ann("c1", [a, b], "y"),  # dispute {b}, Jaccard 1/2
        ann("c2", [a], "x"),
        ann("c2", [c], "y"),  # dispute {a, c}, Jaccard 0
        ann("c0", [a], "x"),
        ann("c0", [a], "y"),  # unanimous {a}; model {a, b} at 0.95
        ann("c4", [b], "x"),
        ann("c4", [c], "y"),  # adjudicated {b}; model {b}
        ann("c5", [a], "x"),
        ann("c5", [a], "y"),  # unanimous; model {c} but only 0.5 confident
        ann("c6", [a], "x"),  # one annotator: no reference set
    ]
    model = {"c0": [a, b], "c4": [b], "c5": [c], "c6": [b]}
    confidence = {"c0": 0.95, "c4": 0.99, "c5": 0.5, "c6": 0.99}
    return annotations, {"c4": [b]}, model, confidence


def test_disagreement_ranking():
    annotations, adjudicated, model, confidence = queue_example()
    queue = disagreements(annotations, LABELS, adjudicated=adjudicated, model=model, model_confidence=confidence)
    # 11 human judgements; 财政支持 chosen 8 times, 税收激励 2, 人才队伍 2.
    # weights: -log2((8+1)/13) = 0.531, -log2((2+1)/13) = 2.115 for both others.
    w_fiscal, w_rare = -math.log2(9 / 13), -math.log2(3 / 13)
    # c2: (w_fiscal + w_rare) * (1 - 0) = 2.646; c1: w_rare * (1 - 1/2) = 1.058;
    # c0 (model vs unanimous {a}): w_rare * (1 - 1/2) = 1.058, a tie that the human case wins
    # even though "c0" sorts before "c1".
    assert [(d.clause_id, d.reason) for d in queue] == [
        ("c2", ANNOTATORS_DISAGREE),
        ("c1", ANNOTATORS_DISAGREE),
        ("c0", MODEL_DISAGREES),
    ]
    assert [d.score for d in queue] == pytest.approx([w_fiscal + w_rare, w_rare / 2, w_rare / 2], abs=1e-12)
    c2, c1, c0 = queue
    assert c2.annotations == (("x", (FISCAL,)), ("y", (TALENT,)))
    assert (c2.union, c2.intersection, c2.disputed) == ((FISCAL, TALENT), (), (FISCAL, TALENT))
    assert (c1.union, c1.intersection, c1.disputed) == ((FISCAL, TAX), (FISCAL,), (TAX,))
    assert (c0.model, c0.model_confidence, c0.adjudicated, c0.disputed) == ((FISCAL, TAX), 0.95, None, (TAX,))
    assert c0.to_dict() == {
        "clause_id": "c0",
        "reason": "model disagrees",
        "score": c0.score,
        "annotations": {"x": [FISCAL], "y": [FISCAL]},
        "union": [FISCAL, TAX],
        "intersection": [FISCAL],
        "disputed": [TAX],
        "adjudicated": None,
        "model": [FISCAL, TAX],
        "model_confidence": 0.95,
    }
    json.dumps([d.to_dict() for d in queue], allow_nan=False)


def test_adjudicated_clauses_leave_the_queue():
    annotations, adjudicated, model, confidence = queue_example()
    queue = disagreements(
        annotations,
        LABELS,
        adjudicated={**adjudicated, "c1": [FISCAL], "c2": []},
        model=model,
        model_confidence=confidence,
    )
    assert [d.clause_id for d in queue] == ["c0"]


def test_confident_model_against_adjudicated_set_is_queued():
    annotations, adjudicated, model, confidence = queue_example()
    queue = disagreements(
        annotations,
        LABELS,
        adjudicated=adjudicated,
        model={**model, "c4": [TALENT]},
        model_confidence={**confidence, "c4": 0.9},
    )  # 0.9 counts: >= min_confidence
    c4 = next(d for d in queue if d.clause_id == "c4")
    assert (c4.reason, c4.adjudicated, c4.model, c4.disputed) == (
        MODEL_DISAGREES,
        (TAX,),
        (TALENT,),
        (TAX, TALENT),
    )
    # Without confidences the model is never taken as confident.
    assert [d.reason for d in disagreements(annotations, LABELS, adjudicated=adjudicated, model=model)] == [
        ANNOTATORS_DISAGREE,
        ANNOTATORS_DISAGREE,
    ]


# --------------------------------------------------------------------------- output


def test_to_dict_is_json_with_stable_keys():
    rng = np.random.default_rng(11)
    annotations = random_annotations(rng, 12, 3, LABELS, 0.8)
    report = agreement_report(annotations, LABELS, adjudicated={"c000": [FISCAL]}, model={"c001": []})
    out = report.to_dict()
    text = json.dumps(out, allow_nan=False, ensure_ascii=False)
    assert json.loads(text) == out
    assert list(out) == [
        "n_items",
        "n_annotators",
        "annotators",
        "n_annotators_not_shown",
        "n_seed_ignored",
        "per_label",
        "set_level",
        "pairs",
        "per_annotator",
        "warning",
        "min_items",
        "max_annotators_shown",
    ]
    assert list(out["per_label"][0]) == [
        "label",
        "n_items",
        "positives",
        "agreement",
        "cohen_kappa",
        "cohen_kappa_pairs",
        "fleiss_kappa",
        "fleiss_n_raters",
        "fleiss_n_items",
        "krippendorff_alpha",
        "warning",
    ]
    assert list(out["per_label"][0]["cohen_kappa_pairs"][0]) == ["annotators", "n_items", "kappa"]
    assert list(out["set_level"]) == [
        "n_items",
        "krippendorff_alpha_masi",
        "exact_match",
        "mean_jaccard",
        "warning",
    ]
    assert list(out["pairs"][0]) == [
        "annotators",
        "n_items",
        "exact_match",
        "mean_jaccard",
        "cohen_kappa",
        "warning",
    ]
    assert list(out["per_annotator"][0]) == ["annotator", "n_annotations", "n_items", "adjudicated", "model"]
    assert [row["label"] for row in out["per_label"]] == list(LABELS)


def test_ten_thousand_annotations_from_ten_annotators():
    # Realistic shape: 1-3 labels per clause with skewed label frequencies; 5,000 clauses with 2 of
    # 10 annotators each. Speed is measured by bench/agreement_speed.py, not asserted here.
    annotations, labels = synthetic_annotations(5000, 10, seed=0)
    report = agreement_report(annotations, labels)
    queue = disagreements(annotations, labels)
    assert report.n_items == 5000 and report.n_annotators == 10 and queue


def synthetic_annotations(n_clauses: int, n_annotators: int, *, seed: int):
    rng = np.random.default_rng(seed)
    labels = tuple(f"L{i}" for i in range(27))
    p = 1 / np.arange(1, 28)
    p /= p.sum()
    annotations = []
    for c in range(n_clauses):
        truth = set(rng.choice(27, rng.integers(1, 4), replace=False, p=p))
        for a in rng.choice(n_annotators, 2, replace=False):
            chosen = set(truth)
            if rng.random() < 0.15:
                chosen.discard(rng.choice(sorted(chosen)))
            if rng.random() < 0.15:
                chosen.add(rng.choice(27, p=p))
            annotations.append(ann(f"c{c}", [labels[i] for i in sorted(chosen)], f"a{a}"))
    return annotations, labels


# --------------------------------------------------------------------------- numpy alpha vs the reference


def test_binary_alpha_matches_krippendorff_on_the_seed_set():
    # Real label sets (the shipped seed set) copied by four annotators who each skip some clauses and
    # slip on some labels: every label's alpha equals the reference package's (a test dependency only).
    from annotator.labels import TASKS_DIR, load_label_config
    from annotator.text.seedset import read_labeled_file

    labels = load_label_config().labels
    data = read_labeled_file(TASKS_DIR / "seed_labels.tsv", labels)
    rng = np.random.default_rng(5)
    names = ("ann1", "ann2", "ann3", "ann4")
    annotations = []
    for cid, example in enumerate(data.examples[:400]):
        chosen = example.labels
        for name in names:
            if rng.random() < 0.75:
                kept = [lab for lab in chosen if rng.random() > 0.15]
                extra = [labels[rng.integers(len(labels))]] if rng.random() < 0.1 else []
                annotations.append(ann(f"c{cid:04d}", set(kept + extra), name))
    report = agreement_report(annotations, labels)
    items = latest_sets(annotations)
    checked = 0
    for row in report.per_label:
        data_matrix = [[int(row.label in items[cid][n]) if n in items[cid] else np.nan for cid in items] for n in names]
        if row.krippendorff_alpha is None:
            continue
        expected = krippendorff.alpha(reliability_data=data_matrix, value_domain=[0, 1], level_of_measurement="nominal")
        assert row.krippendorff_alpha == pytest.approx(expected, abs=1e-12), row.label
        checked += 1
    assert checked >= 20


# --------------------------------------------------------------------------- bounded output


def test_hundreds_of_annotators_keep_the_report_small():
    # 300 annotators, each clause labeled by three of them; five annotators label far more than the rest.
    rng = np.random.default_rng(3)
    annotators = [f"annotator{a:03d}@example.com" for a in range(300)]
    busy = annotators[100:105]
    annotations = []
    for c in range(1500):
        raters = set(rng.choice(annotators, 3, replace=False)) | {busy[c % 5]}
        for name in sorted(raters):
            chosen = [lab for lab in LABELS if rng.random() < 0.4]
            annotations.append(ann(f"c{c:04d}", chosen, name))
    report = agreement_report(annotations, LABELS)
    out = report.to_dict()
    size = len(json.dumps(out, ensure_ascii=False))
    assert (out["n_annotators"], len(out["annotators"]), out["n_annotators_not_shown"]) == (300, 20, 280)
    assert out["max_annotators_shown"] == 20
    assert set(busy) <= set(out["annotators"])
    assert out["annotators"] == sorted(out["annotators"])
    assert len(out["pairs"]) == 190
    assert [p["annotator"] for p in out["per_annotator"]] == out["annotators"]
    assert all(len(row["cohen_kappa_pairs"]) == 190 for row in out["per_label"])
    assert all(set(p["annotators"]) <= set(out["annotators"]) for p in out["pairs"])
    assert size < 120_000, size
    # The aggregates still use every annotator: alpha equals the reference on all 300.
    items = latest_sets(annotations)
    data = [[int(FISCAL in items[cid][n]) if n in items[cid] else np.nan for cid in items] for n in annotators]
    assert report.per_label[0].krippendorff_alpha == pytest.approx(
        krippendorff.alpha(reliability_data=data, value_domain=[0, 1], level_of_measurement="nominal"), abs=1e-12
    )


def test_a_few_annotators_are_all_shown():
    annotations = random_annotations(np.random.default_rng(2), 30, 4, LABELS, 0.9)
    out = agreement_report(annotations, LABELS).to_dict()
    assert (out["n_annotators"], len(out["annotators"]), out["n_annotators_not_shown"]) == (4, 4, 0)
    assert len(out["pairs"]) == 6
