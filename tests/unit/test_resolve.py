"""Resolving one label set per clause: policies, seed as one voter, latest edit, adjudication, provenance."""

from __future__ import annotations

import pytest

from annotator.errors import InputError, UnknownLabelError
from annotator.review.resolve import (
    POLICIES,
    agreed_labels,
    order_sources,
    resolve_annotations,
    resolve_group,
    votes_by_annotator,
)
from annotator.types import Annotation

LABELS = ("金融支持", "财政支持", "税收激励", "人才队伍")


def ann(clause, labels, annotator, source="label_studio", **kw):
    return Annotation(clause, tuple(labels), annotator, source, **kw)


THREE_VOTERS = [{"金融支持", "财政支持"}, {"财政支持"}, {"财政支持", "税收激励", "金融支持"}]


@pytest.mark.parametrize(
    "policy, expected",
    [
        ("unanimous", ("财政支持",)),
        ("majority", ("金融支持", "财政支持")),
        ("union", ("金融支持", "财政支持", "税收激励")),
    ],
)
def test_each_policy_on_three_voters(policy, expected):
    assert agreed_labels(THREE_VOTERS, policy, LABELS) == expected


def test_majority_needs_more_than_half():
    # Two voters: a label needs both, so a 1-1 split is no agreement.
    assert agreed_labels([{"金融支持"}, {"财政支持"}], "majority", LABELS) == ()
    assert agreed_labels([{"金融支持"}, {"金融支持", "财政支持"}], "majority", LABELS) == ("金融支持",)
    # Four voters: 2 of 4 is not a majority, 3 of 4 is.
    votes = [{"人才队伍"}, {"人才队伍"}, {"人才队伍", "税收激励"}, {"税收激励"}]
    assert agreed_labels(votes, "majority", LABELS) == ("人才队伍",)


def test_result_follows_label_set_order_and_empty_without_voters():
    assert agreed_labels([["人才队伍", "金融支持"]], "union", LABELS) == ("金融支持", "人才队伍")
    assert agreed_labels([], "union", LABELS) == ()


def test_unknown_policy_and_label_are_errors():
    with pytest.raises(InputError) as err:
        agreed_labels([{"金融支持"}], "plurality", LABELS)
    assert str(err.value) == "unknown agreement policy 'plurality'; choose one of: unanimous, majority, union"
    with pytest.raises(UnknownLabelError, match="label '财政补助' is not in the label set; did you mean '财政支持'"):
        agreed_labels([{"财政补助"}], "union", LABELS)
    assert POLICIES == ("unanimous", "majority", "union")


def test_seed_is_one_voter_even_when_split_over_annotations():
    anns = [ann("c", ["金融支持"], "seed", "seed"), ann("c", ["财政支持"], "seed", "seed")]
    assert votes_by_annotator(anns) == {"seed": frozenset({"金融支持", "财政支持"})}


def test_latest_annotation_of_an_annotator_wins():
    anns = [
        ann("c", ["金融支持"], "li", updated_at="2024-05-02T10:00:00"),
        ann("c", ["税收激励"], "li", updated_at="2024-05-01T10:00:00"),
    ]
    assert votes_by_annotator(anns) == {"li": frozenset({"金融支持"})}
    # Without timestamps, the later id (then the later position) wins.
    anns = [ann("c", ["税收激励"], "li", id=7), ann("c", ["金融支持"], "li", id=3)]
    assert votes_by_annotator(anns) == {"li": frozenset({"税收激励"})}


def test_an_annotators_votes_on_copies_of_a_clause_are_united():
    anns = [ann("c1", ["金融支持"], "li"), ann("c2", ["财政支持"], "li")]
    assert votes_by_annotator(anns) == {"li": frozenset({"金融支持", "财政支持"})}


def test_seed_and_label_studio_combine_with_provenance():
    anns = [ann("c", ["金融支持", "财政支持"], "seed", "seed"), ann("c", ["金融支持"], "li")]
    result = resolve_group(anns, labels=LABELS, policy="majority")
    assert result.labels == ("金融支持",)
    assert result.status == "agreed"
    assert result.sources == ("seed", "label_studio")
    assert result.annotators == ("li", "seed")
    assert result.disputed == ("财政支持",)
    assert dict(result.votes) == {"li": ("金融支持",), "seed": ("金融支持", "财政支持")}


def test_no_agreed_set_is_unresolved():
    anns = [ann("c", ["金融支持"], "li"), ann("c", ["税收激励"], "wang")]
    result = resolve_group(anns, labels=LABELS, policy="unanimous")
    assert result.status == "unresolved"
    assert result.labels == ()
    assert result.disputed == ("金融支持", "税收激励")


def test_adjudication_wins_and_is_the_source():
    anns = [ann("c", ["金融支持"], "li"), ann("c", ["税收激励"], "wang")]
    result = resolve_group(anns, labels=LABELS, adjudications=[("人才队伍", "金融支持")])
    assert result.labels == ("金融支持", "人才队伍")
    assert result.status == "adjudicated"
    assert result.sources == ("adjudication",)
    assert result.annotators == ("li", "wang")


def test_resolve_annotations_per_clause_including_adjudication_only():
    anns = [
        ann("a", ["金融支持"], "seed", "seed"),
        ann("b", ["金融支持"], "li"),
        ann("b", ["财政支持"], "wang", "cli"),
    ]
    result = resolve_annotations(anns, labels=LABELS, adjudications={"z": ["税收激励"]}, policy="union")
    assert list(result) == ["a", "b", "z"]
    assert result["a"].labels == ("金融支持",) and result["a"].sources == ("seed",)
    assert result["b"].labels == ("金融支持", "财政支持") and result["b"].sources == ("label_studio", "cli")
    assert result["z"].labels == ("税收激励",) and result["z"].status == "adjudicated"


def test_order_sources_puts_known_ones_first():
    assert order_sources(["cli", "zzz", "seed", "cli", "label_studio"]) == (
        "seed",
        "label_studio",
        "cli",
        "zzz",
    )
