"""Tests written for mutants that mutmut found alive in annotator/dataset/cleaning.py
(docs/mutation-testing.md): what ``annotator export`` writes, its review file and its datasheet."""

from __future__ import annotations

import pytest

from annotator.dataset.cleaning import clean_and_resolve
from annotator.errors import InputError
from annotator.text.normalize import clause_id
from annotator.types import Annotation

LABELS = ("金融支持", "财政支持", "人才队伍", "高等院校", "企业")
A = "支持企业建设研发机构，对新认定的国家级企业技术中心给予一次性奖励五百万元。"
B = "鼓励高校和科研院所开放共享大型科研仪器设备，对提供共享服务的单位按年度服务收入的百分之十给予补助。"
SHORT = "给予一次性奖励五万元。"  # 11 Chinese characters


def seed(text: str, labels) -> Annotation:
    return Annotation(clause_id(text), tuple(labels), "seed", "seed")


def test_the_thresholds_accepted_and_refused_are_the_documented_ones():
    anns = [seed(A, ["企业"]), seed(SHORT, ["企业"])]
    texts = {clause_id(t): t for t in (A, SHORT)}
    # (0, 1]: 1.0 merges exact copies only; 0 would merge everything and is refused.
    assert len(clean_and_resolve(anns, texts, LABELS, near_dup_threshold=1.0).examples) == 2
    with pytest.raises(InputError) as error:
        clean_and_resolve(anns, texts, LABELS, near_dup_threshold=0.0)
    assert str(error.value) == "near-duplicate threshold must be in (0, 1], got 0.0"
    # min_chars >= 0: 0 keeps every clause with a word character; -1 is refused by name.
    assert len(clean_and_resolve(anns, texts, LABELS, min_chars=0).examples) == 2
    assert [e.text for e in clean_and_resolve(anns, texts, LABELS, min_chars=12).examples] == [A]
    with pytest.raises(InputError) as error:
        clean_and_resolve(anns, texts, LABELS, min_chars=-1)
    assert str(error.value) == "min_chars must be >= 0, got -1"


def test_the_datasheet_steps_say_which_thresholds_were_used():
    result = clean_and_resolve([seed(A, ["企业"])], {clause_id(A): A}, LABELS, min_chars=12, near_dup_threshold=0.9)
    assert result.steps["too_short"].why == "fewer than 12 Chinese characters"
    assert result.steps["near_duplicate"].why == "character 3-shingle Jaccard >= 0.9"


def test_a_clause_without_text_does_not_stop_the_clauses_after_it():
    anns = [Annotation("no-such-clause", ("企业",), "li", "cli"), seed(A, ["企业"]), seed(B, ["高等院校"])]
    result = clean_and_resolve(anns, {clause_id(t): t for t in (A, B)}, LABELS)
    assert result.steps["missing_text"].count == 1
    assert sorted(e.text for e in result.examples) == sorted([A, B])


def test_the_review_item_for_an_unknown_label_names_the_clause_and_the_dropped_labels():
    anns = [seed(A, ["企业", "科技金融"]), seed(B, ["科技金融", "产学研"])]
    result = clean_and_resolve(anns, {clause_id(t): t for t in (A, B)}, LABELS)
    items = {i["id"]: i for i in result.review if i["reason"] == "unknown_label"}
    # A kept 企业, so it is exported; B had no known label left, so it is not. Labels as voted.
    assert items == {
        clause_id(A): {
            "id": clause_id(A),
            "text": A,
            "reason": "unknown_label",
            "exported": True,
            "dropped_labels": ["科技金融"],
        },
        clause_id(B): {
            "id": clause_id(B),
            "text": B,
            "reason": "unknown_label",
            "exported": False,
            "dropped_labels": ["科技金融", "产学研"],
        },
    }


def test_a_clause_left_without_a_known_label_does_not_stop_the_clauses_after_it():
    anns = [seed(B, ["科技金融"]), seed(A, ["企业"])]
    result = clean_and_resolve(anns, {clause_id(t): t for t in (A, B)}, LABELS)
    assert [(e.text, e.labels) for e in result.examples] == [(A, ("企业",))]


def test_the_copy_a_lead_adjudicated_is_the_one_exported_and_listed_first():
    variant = A.replace("，", ",").rstrip("。")  # the same clause, punctuation only: an exact duplicate
    texts = {clause_id(t): t for t in (A, variant)}
    anns = [seed(A, ["企业"]), Annotation(clause_id(variant), ("企业",), "li", "label_studio")]
    # Without an adjudication the longest copy (A, with its punctuation) stands for the group.
    (example,) = clean_and_resolve(anns, texts, LABELS).examples
    assert (example.id, example.text, example.members) == (clause_id(A), A, (clause_id(A), clause_id(variant)))
    # The adjudicated copy wins over length, and comes first among the members.
    (example,) = clean_and_resolve(
        anns, texts, LABELS, adjudications={clause_id(variant): ("企业", "金融支持")}
    ).examples
    # (its text as cleaned: the ASCII comma is made full-width again)
    assert (example.id, example.text, example.labels) == (clause_id(variant), A.rstrip("。"), ("金融支持", "企业"))
    assert example.members == (clause_id(variant), clause_id(A))


def test_the_review_item_for_an_unresolved_group_is_pinned_key_by_key():
    truncated = B[:-4]  # a PDF cut: a near duplicate of B
    anns = [
        Annotation(clause_id(B), ("金融支持",), "li", "label_studio"),
        Annotation(clause_id(truncated), ("高等院校",), "wang", "label_studio"),
    ]
    result = clean_and_resolve(anns, {clause_id(B): B, clause_id(truncated): truncated}, LABELS)
    assert result.examples == []
    assert result.review == [
        {
            "id": clause_id(B),
            "text": B,
            "labels": [],
            "votes": {"li": ["金融支持"], "wang": ["高等院校"]},
            "members": [
                {"id": clause_id(B), "labels": ["金融支持"], "text": B},
                {"id": clause_id(truncated), "labels": ["高等院校"], "text": truncated},
            ],
            "reason": "unresolved",
            "exported": False,
            "policy": "majority",
        }
    ]


def test_a_clause_a_lead_adjudicated_without_any_annotation_is_exported():
    result = clean_and_resolve([], {clause_id(B): B}, LABELS, adjudications={clause_id(B): ("企业",)})
    (example,) = result.examples
    assert (example.id, example.labels, example.sources, example.status) == (
        clause_id(B),
        ("企业",),
        ("adjudication",),
        "adjudicated",
    )


def test_an_unresolved_clause_does_not_stop_the_clauses_after_it_and_examples_come_sorted_by_id():
    disputed = [Annotation(clause_id(B), ("金融支持",), "li", "label_studio")]
    disputed.append(Annotation(clause_id(B), ("高等院校",), "wang", "label_studio"))
    others = [seed(A, ["企业"]), seed(SHORT + "对企业给予补贴。", ["财政支持"])]
    texts = {clause_id(t): t for t in (A, B, SHORT + "对企业给予补贴。")}
    for anns in (disputed + others, others + disputed):
        result = clean_and_resolve(anns, texts, LABELS)
        assert [e.id for e in result.examples] == sorted(clause_id(t) for t in (A, SHORT + "对企业给予补贴。"))
        assert [(i["id"], i["reason"]) for i in result.review] == [(clause_id(B), "unresolved")]


def test_the_log_line_and_counts_say_what_cleaning_did(caplog):
    copy = A.rstrip("。")
    anns = [
        seed(A, ["企业"]),
        seed(B, ["高等院校"]),
        seed(SHORT[:5], ["企业"]),
        seed(A, ["财政支持"]),
        seed(copy, ["企业"]),
    ]
    texts = {clause_id(t): t for t in (A, B, SHORT[:5], copy)}
    with caplog.at_level("INFO", logger="annotator.dataset.cleaning"):
        result = clean_and_resolve(anns, texts, LABELS)
    assert (result.n_clauses, result.n_annotations, len(result.examples)) == (4, 5, 2)
    assert [r.getMessage() for r in caplog.records if r.name == "annotator.dataset.cleaning"] == [
        "cleaning: 4 clauses -> 2 examples (too_short=1, exact_duplicate=1)"
    ]
