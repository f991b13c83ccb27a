"""Cleaning rules on tiny fixtures: normalization, text rules, unknown labels, duplicates, overlap, noise check."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from annotator.dataset.cleaning import clean_and_resolve, clean_text, drop_unknown_labels, removal_reason
from annotator.dataset.label_issues import find_label_issues, label_issue_items
from annotator.text.near_duplicates import _shingle_matrix_loop, shingle_matrix, similar_pairs
from annotator.errors import InputError
from annotator.text.normalize import clause_id, match_key
from annotator.types import Annotation
from tests.conftest import seed_lines

LABELS = ("金融支持", "财政支持", "人才队伍", "高等院校", "企业")

A = "支持企业建设研发机构，对新认定的国家级企业技术中心给予一次性奖励五百万元。"
A_VARIANT = "支持企业建设研发机构,对新认定的国家级企业技术中心给予一次性奖励五百万元"  # punctuation only
B = "鼓励高校和科研院所开放共享大型科研仪器设备，对提供共享服务的单位按年度服务收入的百分之十给予补助。"
B_TRUNCATED = B[:-4]
B_EDITED = B.replace("百分之十", "百分之八")
C_SENTENCE = "对引进的高层次人才给予最高一百万元安家补贴。"
C_PARAGRAPH = (
    "实施人才强市战略，完善人才引进、培养、使用和评价机制。"
    + C_SENTENCE
    + "对其所在用人单位按实际支付薪酬给予适当补助。"
)
OTHER = "建立政府性融资担保体系，为中小微企业提供低费率的融资担保服务，降低企业综合融资成本。"


def ann(text, labels, annotator="seed", source="seed"):
    return Annotation(clause_id(text), tuple(labels), annotator, source)


def texts_of(*texts):
    return {clause_id(t): t for t in texts}


def by_text(result):
    return {e.text: e for e in result.examples}


def reasons(result):
    return [(item["reason"], item["exported"]) for item in result.review]


# Text rules ---------------------------------------------------------------------------------------


def test_clean_text_removes_literal_escapes_and_pdf_spaces():
    assert clean_text("科技资 源开放共享\\n\\n") == "科技资源开放共享"
    assert clean_text("提升市场\\n综合监管能力。") == "提升市场综合监管能力。"


@pytest.mark.parametrize(
    "text, reason",
    [
        ("", "empty"),
        ("。。 ——", "empty"),
        ("财税政策", "too_short"),
        ("第3页", "too_short"),
        ("本办法自2021年1月1日起施行，有效期5年。", "boilerplate"),
        ("本实施细则自印发之日起实施，原《科技计划管理办法》同时废止。", "boilerplate"),
        ("本办法由市科学技术局负责解释。", "boilerplate"),
        ("（此件公开发布）", "too_short"),
        ("特此通知，请各区县认真贯彻执行。", None),
        ("附件：1.高新技术企业认定申报书模板", "boilerplate"),
        ("本办法实施之日前已批复的项目，其配建的创新型产业用房按原规定执行。", None),
        (A, None),
    ],
)
def test_removal_reason(text, reason):
    assert removal_reason(clean_text(text)) == reason


def test_min_chars_is_configurable():
    assert removal_reason("支持企业研发创新", min_chars=8) is None
    assert removal_reason("支持企业研发创新", min_chars=9) == "too_short"


def test_drop_unknown_labels_reports_and_keeps_inputs():
    anns = [
        Annotation("c1", ("金融支持", "财政补助"), "li", "label_studio"),
        Annotation("c2", ("财政补助",), "li", "label_studio"),
        Annotation("c3", (), "li", "label_studio"),
    ]
    before = copy.deepcopy(anns)
    kept, unknown = drop_unknown_labels(anns, LABELS)
    assert anns == before
    assert [(a.clause_id, a.labels) for a in kept] == [("c1", ("金融支持",)), ("c3", ())]
    assert unknown == {"c1": ("财政补助",), "c2": ("财政补助",)}


# Similarity ---------------------------------------------------------------------------------------


def test_similar_pairs_finds_truncation_edits_and_containment():
    keys = [match_key(t) for t in (B, B_TRUNCATED, B_EDITED, C_SENTENCE, C_PARAGRAPH, OTHER)]
    rows, cols, jaccard, containment = similar_pairs(keys)
    found = {
        (int(r), int(c)): (round(float(j), 2), round(float(k), 2))
        for r, c, j, k in zip(rows, cols, jaccard, containment)
    }
    assert found[(0, 1)][0] >= 0.8  # truncated
    assert found[(0, 2)][0] >= 0.8  # two characters changed
    assert found[(3, 4)][0] < 0.5 and found[(3, 4)][1] == 1.0  # a sentence inside its paragraph
    assert not any(5 in pair for pair in found)


# clean_and_resolve ------------------------------------------------------------------------------


def test_exact_duplicates_merge_with_one_seed_vote():
    texts = texts_of(A, A_VARIANT, OTHER)
    anns = [ann(A, ["企业"]), ann(A_VARIANT, ["财政支持"]), ann(OTHER, ["金融支持"])]
    result = clean_and_resolve(anns, texts, LABELS, policy="majority")
    assert len(result.examples) == 2
    merged = by_text(result)[A]  # the longest copy is kept
    assert merged.labels == ("财政支持", "企业")  # the seed is one voter: its copies' labels unite
    assert merged.sources == ("seed",)
    assert set(merged.members) == {clause_id(A), clause_id(A_VARIANT)}
    assert result.steps["exact_duplicate"].count == 1
    assert reasons(result) == [("merged_conflict", True)]


def test_near_duplicates_merge_and_keep_provenance():
    texts = texts_of(B, B_TRUNCATED, B_EDITED)
    anns = [
        ann(B, ["高等院校"]),
        Annotation(clause_id(B_TRUNCATED), ("高等院校", "财政支持"), "li", "label_studio"),
        Annotation(clause_id(B_EDITED), ("高等院校",), "wang", "label_studio"),
    ]
    result = clean_and_resolve(anns, texts, LABELS, policy="majority")
    (example,) = result.examples
    assert example.text == B
    assert example.labels == ("高等院校",)  # 财政支持 has 1 of 3 votes
    assert example.sources == ("seed", "label_studio")
    assert example.annotators == ("li", "seed", "wang")
    assert result.steps["near_duplicate"].count == 2


@pytest.mark.parametrize("policy, exported", [("majority", False), ("unanimous", False), ("union", True)])
def test_conflicting_near_duplicates_follow_the_policy(policy, exported):
    texts = texts_of(B, B_TRUNCATED)
    anns = [
        Annotation(clause_id(B), ("金融支持",), "li", "label_studio"),
        Annotation(clause_id(B_TRUNCATED), ("高等院校",), "wang", "label_studio"),
    ]
    result = clean_and_resolve(anns, texts, LABELS, policy=policy)
    assert bool(result.examples) is exported
    if exported:
        assert result.examples[0].labels == ("金融支持", "高等院校")
    else:
        (item,) = result.review
        assert item["reason"] == "unresolved" and item["exported"] is False
        assert item["votes"] == {"li": ["金融支持"], "wang": ["高等院校"]}
        assert [m["id"] for m in item["members"]] == [clause_id(B), clause_id(B_TRUNCATED)]
        assert result.steps["unresolved"].count == 2


def test_adjudication_resolves_a_conflict():
    texts = texts_of(OTHER)
    anns = [
        Annotation(clause_id(OTHER), ("金融支持",), "li", "label_studio"),
        Annotation(clause_id(OTHER), ("企业",), "wang", "label_studio"),
    ]
    result = clean_and_resolve(anns, texts, LABELS, adjudications={clause_id(OTHER): ("金融支持", "企业")})
    (example,) = result.examples
    assert example.labels == ("金融支持", "企业")
    assert example.sources == ("adjudication",)
    assert example.status == "adjudicated"


def test_unknown_labels_are_dropped_and_label_less_clauses_go_to_review():
    texts = texts_of(A, OTHER)
    anns = [ann(A, ["企业", "科技金融"]), ann(OTHER, ["科技金融"])]
    result = clean_and_resolve(anns, texts, LABELS)
    assert [e.text for e in result.examples] == [A]
    assert result.examples[0].labels == ("企业",)
    assert sorted(reasons(result)) == [("unknown_label", False), ("unknown_label", True)]
    assert result.steps["unknown_label"].count == 2
    assert result.unknown_labels == {"科技金融": 2}


def test_text_rules_and_missing_text_are_counted():
    texts = texts_of(A, "财税政策", "本办法由市科学技术局负责解释。", "  ")
    anns = [ann(t, ["企业"]) for t in texts.values()] + [Annotation("no-such-clause", ("企业",), "li", "cli")]
    result = clean_and_resolve(anns, texts, LABELS)
    counts = {name: step.count for name, step in result.steps.items() if step.count}
    assert counts == {"missing_text": 1, "empty": 1, "too_short": 1, "boilerplate": 1}
    assert [e.text for e in result.examples] == [A]
    assert result.n_clauses == 5


def test_overlapping_clauses_keep_their_labels_but_share_a_group():
    texts = texts_of(C_SENTENCE, C_PARAGRAPH, OTHER)
    anns = [
        ann(C_SENTENCE, ["人才队伍"]),
        ann(C_PARAGRAPH, ["人才队伍", "财政支持"]),
        ann(OTHER, ["金融支持"]),
    ]
    result = clean_and_resolve(anns, texts, LABELS)
    assert len(result.examples) == 3
    group = dict(zip([e.text for e in result.examples], result.groups.tolist()))
    assert group[C_SENTENCE] == group[C_PARAGRAPH] != group[OTHER]
    assert by_text(result)[C_SENTENCE].labels == ("人才队伍",)


def test_inputs_are_not_modified():
    texts = texts_of(A, A_VARIANT, B, B_TRUNCATED)
    anns = [ann(t, ["企业", "未知"]) for t in texts.values()]
    adjudications = {clause_id(B): ["高等院校", "未知"]}
    snapshot = copy.deepcopy((anns, texts, adjudications))
    clean_and_resolve(anns, texts, LABELS, adjudications=adjudications)
    assert (anns, texts, adjudications) == snapshot


def test_bad_arguments():
    with pytest.raises(InputError, match="unknown agreement policy 'most'"):
        clean_and_resolve([], {}, LABELS, policy="most")
    with pytest.raises(InputError, match=r"near-duplicate threshold must be in \(0, 1\], got 1.5"):
        clean_and_resolve([], {}, LABELS, near_dup_threshold=1.5)


# Label-noise check ------------------------------------------------------------------------------

TOPICS = {
    "金融支持": ["银行贷款贴息", "融资担保费率", "创业投资基金", "科技信贷风险补偿"],
    "人才队伍": ["引进高层次人才", "人才安家补贴", "青年人才培养", "博士后工作站"],
    "高等院校": ["高校学科建设", "大学科技园", "高校毕业生就业", "高等院校实验室"],
}


def noisy_corpus(n_per_topic=30, seed=0):
    rng = np.random.default_rng(seed)
    labels = tuple(TOPICS) + ("企业",)
    texts, Y = [], []
    for j, phrases in enumerate(TOPICS.values()):
        for i in range(n_per_topic):
            texts.append(f"第{i}项：{phrases[i % 4]}，{phrases[(i + 1) % 4]}，按规定给予支持{rng.integers(100)}。")
            Y.append([int(k == j) for k in range(len(labels))])
    Y = np.array(Y)
    Y[:3, -1] = 1  # only 3 positives: too few for 5 folds
    Y[5] = [0, 1, 0, 0]  # a finance clause labeled as talent
    return texts, Y, labels


def test_noise_check_flags_a_flipped_label_and_skips_rare_labels():
    texts, Y, labels = noisy_corpus()
    issues = find_label_issues(texts, Y, labels, seed=0)
    assert issues.skipped is None
    assert issues.checked_labels == labels[:3]
    assert issues.skipped_labels == {"企业": "3 positive examples, fewer than 5 folds"}
    assert issues.issues[5]
    assert issues.issues.sum() <= 10
    from annotator.dataset.cleaning import CleanExample

    examples = [
        CleanExample(str(i), t, tuple(l for l, y in zip(labels, row) if y), ("seed",), ("seed",), (str(i),), "agreed")
        for i, (t, row) in enumerate(zip(texts, Y))
    ]
    items = label_issue_items(examples, issues, labels)
    flipped = next(item for item in items if item["id"] == "5")
    assert flipped["labels"] == ["人才队伍"]
    assert "金融支持" in flipped["suggested_labels"] and "人才队伍" not in flipped["suggested_labels"]
    assert flipped["suspect_labels"] == ["人才队伍"]
    assert 0 <= flipped["score"] < 0.5
    assert [item["rank"] for item in items] == list(range(1, len(items) + 1))


def test_noise_check_skips_gracefully():
    texts, Y, labels = noisy_corpus(n_per_topic=3)
    assert find_label_issues(texts, Y, labels).skipped == "9 examples; the 5-fold check needs at least 10"
    texts, Y, labels = noisy_corpus(n_per_topic=4)
    Y = np.zeros_like(Y)
    Y[:4, 0] = 1
    issues = find_label_issues(texts, Y, labels)
    assert issues.skipped == "no label has enough positive and negative examples for cross-validation"
    assert not issues.issues.any()


class ConstantModel:
    """A minimal estimator that breaks the contract: one column instead of one per label."""

    def get_params(self, deep=True):
        return {}

    def fit(self, X, Y):
        return self

    def predict_proba(self, X):
        return np.full((len(X), 1), 0.5)


def test_noise_check_estimator_contract():
    texts, Y, labels = noisy_corpus()
    with pytest.raises(InputError, match=r"estimator.predict_proba returned shape \(\d+, 1\), expected \(\d+, 3\)"):
        find_label_issues(texts, Y, labels, estimator=ConstantModel())


@pytest.mark.parametrize("k", [1, 2, 3])
def test_vectorized_shingles_match_the_set_definition_on_real_clauses(k):
    keys = [match_key(line.split("\t", 1)[1]) for line in seed_lines(400, seed=3)]
    keys += ["", "a", "ab", "中文", "𠀀𠀁", "𠀀𠀁𠀂𠀃"]  # empty, shorter than k, beyond the BMP
    fast, slow = shingle_matrix(keys, k), _shingle_matrix_loop(keys, k)
    # Column ids differ between the two; what near-duplicate detection uses does not.
    assert fast.shape[0] == slow.shape[0] == len(keys)
    np.testing.assert_array_equal(np.asarray(fast.sum(axis=1)), np.asarray(slow.sum(axis=1)))
    assert ((fast @ fast.T) != (slow @ slow.T)).nnz == 0
    assert fast.max() == 1
