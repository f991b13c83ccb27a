"""Clean resolved training data: text rules, duplicate merging, overlap groups (the detection is
:mod:`annotator.text.near_duplicates`; the label-noise check :mod:`annotator.dataset.label_issues`).

What each rule does and why:

- **Normalization.** :func:`clean_text` is :func:`annotator.text.normalize.normalize_text` after turning
  literal ``\\n``/``\\t``/``\\r`` escapes (left in the seed file by an extractor) into spaces.
- **Unknown labels.** A label outside the label set is dropped from its annotation and reported; an
  annotation left with no label is not a vote; a clause left with no vote goes to review.
- **Empty / too short / boilerplate.** Clauses with no word character, with fewer than ``min_chars``
  Chinese characters, or that are administrative boilerplate (effective date, interpretation
  clause, "特此通知", attachment and cc lines) are removed: they carry no policy-instrument label.
- **Exact duplicates.** Clauses with the same :func:`annotator.text.normalize.match_key` (same text up to
  punctuation, spacing and case) are one clause.
- **Near duplicates.** Clauses whose character 3-shingle sets (over the match key) have Jaccard
  similarity >= ``near_dup_threshold`` (0.8) are the same clause truncated or with a few characters
  changed. Exact and near duplicates are **merged**, not flagged: each becomes one example whose
  text is the longest copy and whose labels are resolved over all copies' votes by the export
  policy (an annotator's votes on different copies are united, see :mod:`annotator.review.resolve`).
  Merging is what the seed file needs: its copies of one clause usually carry *different* single
  labels (one label per line, each line extracted with different spaces or cut short), so flagging
  would send a hundred good clauses to review. When the policy leaves no label, the whole group is
  flagged ``unresolved``; merged copies whose label sets differed are listed in review as
  ``merged_conflict`` (exported, for information).
- **Overlap groups.** Clauses that are not duplicates but overlap heavily (Jaccard >= 0.5, or 80% of
  the shorter one's shingles inside the longer one: a sentence and the paragraph it was cut from)
  keep their own labels but form a group that :mod:`annotator.dataset.splits` keeps in one split (and
  one cross-validation fold), so no test clause is a substring of a training clause.
- **Label noise.** :func:`annotator.dataset.label_issues.find_label_issues` runs cleanlab's multi-label
  confident learning on out-of-fold probabilities; flagged clauses stay in the data and are listed for review.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..errors import InputError
from ..text.near_duplicates import SHINGLE_SIZE, connected_groups, similar_pairs
from ..text.normalize import match_key, normalize_text
from ..review.resolve import UNRESOLVED, check_policy, resolve_group
from ..types import Annotation

logger = logging.getLogger(__name__)

MIN_CHARS = 8
NEAR_DUP_THRESHOLD = 0.8

_LITERAL_ESCAPE = re.compile(r"\\[nrt]")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_DOCS = r"(?:办法|规定|细则|意见|通知|方案|措施|政策|条例|计划|规划|决定|规则|指引|若干措施|实施细则|实施方案|实施意见)"
BOILERPLATE_PATTERNS = tuple(
    re.compile(pattern)
    for pattern in (
        # "本办法自2021年1月1日起施行，有效期5年。" / "……，原《××办法》同时废止。"
        rf"本{_DOCS}(?:自|从|于)[^。；]{{0,40}}?(?:施行|实施|执行|生效)[^。；]{{0,60}}。?",
        # "本办法由市科技局负责解释。"
        rf"本{_DOCS}(?:由|具体由)[^。；]{{0,40}}负责(?:解释|组织实施)[^。；]{{0,20}}。?",
        r"[（(]?(?:特此(?:通知|公告|批复|函告)|此件(?:公开发布|不公开|主动公开)|此页无正文)[）)]?[。！]?",
        r"(?:附件\d*|附表\d*|抄送|抄报|主送|联系人|联系电话|联系方式|发布日期|印发日期|成文日期)[：:].*",
        r"[\u4e00-\u9fff]{1,12}〔\d{4}〕\d+号",  # a document number on its own line
    )
)

# The removal/flag steps in the order they run; stats.json reports them in this order.
STEPS = {
    "missing_text": ("removed", "annotated or adjudicated clause id has no text"),
    "unknown_label": ("flagged", "labels outside the label set dropped (clause kept if a label remained)"),
    "empty": ("removed", "no word character after normalization"),
    "too_short": ("removed", "fewer than {min_chars} Chinese characters"),
    "boilerplate": ("removed", "administrative boilerplate (effective date, interpretation, closing lines)"),
    "exact_duplicate": ("merged", "same text up to punctuation, spacing and case (match_key)"),
    "near_duplicate": ("merged", f"character {SHINGLE_SIZE}-shingle Jaccard >= {{near_dup_threshold}}"),
    "unresolved": ("flagged", "no agreed label set under the policy; sent to review, not exported"),
    "label_issue": ("flagged", "cleanlab: likely mislabeled (out-of-fold predictions); kept, sent to review"),
}


@dataclass(frozen=True)
class CleanExample:
    """One exportable clause: resolved labels plus provenance; ``members`` are the merged clause ids."""

    id: str
    text: str
    labels: tuple[str, ...]
    sources: tuple[str, ...]
    annotators: tuple[str, ...]
    members: tuple[str, ...]
    status: str


@dataclass
class StepCount:
    """How many clauses one cleaning step removed, merged or flagged, with a few examples."""

    name: str
    action: str
    why: str
    count: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, text: str, n: int = 1, keep: int = 5) -> None:
        """Count ``n`` clauses and remember the first few texts."""
        if n <= 0:
            return
        self.count += n
        if len(self.examples) < keep:
            self.examples.append(text[:120])

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "why": self.why, "count": self.count, "examples": list(self.examples)}


@dataclass
class CleanResult:
    """The output of :func:`clean_and_resolve`."""

    examples: list[CleanExample]
    review: list[dict[str, Any]]
    steps: dict[str, StepCount]
    groups: np.ndarray  # overlap group per example, for splits and CV folds
    unknown_labels: dict[str, int]  # unknown label -> occurrences dropped
    n_clauses: int
    n_annotations: int


def clean_text(text: str) -> str:
    """Normalize a clause text, also removing literal ``\\n``-style escapes left by extraction."""
    return normalize_text(_LITERAL_ESCAPE.sub(" ", text))


def count_han(text: str) -> int:
    """Number of Chinese (Han) characters in ``text``."""
    return len(_HAN.findall(text))


def removal_reason(text: str, *, min_chars: int = MIN_CHARS) -> str | None:
    """Why a normalized clause text is unfit for training (``empty``/``too_short``/``boilerplate``), or None.

    Examples
    --------
    >>> removal_reason("本办法自2021年1月1日起施行。")
    'boilerplate'
    >>> removal_reason("财税政策") is None
    False
    """
    if not match_key(text):
        return "empty"
    if count_han(text) < min_chars:
        return "too_short"
    if any(pattern.fullmatch(text) for pattern in BOILERPLATE_PATTERNS):
        return "boilerplate"
    return None


def drop_unknown_labels(
    annotations: Iterable[Annotation], labels: Sequence[str]
) -> tuple[list[Annotation], dict[str, tuple[str, ...]]]:
    """Remove labels outside ``labels`` from each annotation.

    Returns
    -------
    kept : list of Annotation
        Annotations with only known labels; one left with no label is dropped (it is not a vote).
        Annotations that had no label to begin with are kept (an explicit empty vote).
    unknown : dict
        clause id -> unknown labels found on it, in order of appearance.
    """
    known = set(labels)
    kept: list[Annotation] = []
    unknown: dict[str, dict[str, None]] = {}
    for annotation in annotations:
        bad = [label for label in annotation.labels if label not in known]
        if not bad:
            kept.append(annotation)
            continue
        unknown.setdefault(annotation.clause_id, {}).update(dict.fromkeys(bad))
        good = tuple(label for label in annotation.labels if label in known)
        if good:
            kept.append(_replace_labels(annotation, good))
    return kept, {clause: tuple(found) for clause, found in unknown.items()}


def _replace_labels(annotation: Annotation, labels: tuple[str, ...]) -> Annotation:
    """A copy of ``annotation`` with other labels (the input stays unchanged)."""
    return replace(annotation, labels=labels)


def _steps(min_chars: int, near_dup_threshold: float) -> dict[str, StepCount]:
    """Fresh counters for every step, with descriptions showing the thresholds used."""
    return {
        name: StepCount(name, action, why.format(min_chars=min_chars, near_dup_threshold=near_dup_threshold))
        for name, (action, why) in STEPS.items()
    }


def clean_and_resolve(
    annotations: Sequence[Annotation],
    texts: Mapping[str, str],
    labels: Sequence[str],
    *,
    adjudications: Mapping[str, Sequence[str]] | None = None,
    policy: str = "majority",
    min_chars: int = MIN_CHARS,
    near_dup_threshold: float = NEAR_DUP_THRESHOLD,
) -> CleanResult:
    """Apply every cleaning rule (see the module docstring) and resolve one label set per clause.

    Parameters
    ----------
    annotations : sequence of Annotation
        All annotations (seed, Label Studio, CLI); not modified.
    texts : mapping
        clause id -> clause text (raw or normalized).
    labels : sequence of str
        The label set, in order.
    adjudications : mapping, optional
        clause id -> the lead's label set; wins over votes.
    policy : {"unanimous", "majority", "union"}
        How annotators' votes combine (:func:`annotator.review.resolve.agreed_labels`).
    min_chars : int
        Fewer Chinese characters than this and a clause is removed as too short.
    near_dup_threshold : float
        Shingle-Jaccard similarity from which two clauses are merged as near duplicates.

    Returns
    -------
    CleanResult
        Examples (sorted by id), review items, per-step counts and overlap groups.

    Raises
    ------
    InputError
        On an unknown policy or a threshold outside (0, 1].
    """
    check_policy(policy)
    if not 0.0 < near_dup_threshold <= 1.0:
        raise InputError(f"near-duplicate threshold must be in (0, 1], got {near_dup_threshold!r}")
    if min_chars < 0:
        raise InputError(f"min_chars must be >= 0, got {min_chars!r}")
    labels = tuple(labels)
    steps = _steps(min_chars, near_dup_threshold)
    review: list[dict[str, Any]] = []
    kept, adjudicated, unknown, unknown_counts = _known_votes(annotations, adjudications or {}, labels)
    by_clause: dict[str, list[Annotation]] = {}
    for annotation in kept:
        by_clause.setdefault(annotation.clause_id, []).append(annotation)
    candidates = list(dict.fromkeys([a.clause_id for a in annotations] + list(adjudications or {})))

    # Text rules. A clause whose every vote was an unknown label is unlabeled: review, not training.
    clean: dict[str, str] = {}
    for clause in candidates:
        if clause not in texts:
            steps["missing_text"].add(clause)
            continue
        text = clean_text(texts[clause])
        if clause in unknown:
            steps["unknown_label"].add(text)
            review.append(
                {
                    "id": clause,
                    "text": text,
                    "reason": "unknown_label",
                    "exported": False,
                    "dropped_labels": list(unknown[clause]),
                }
            )
            if not (by_clause.get(clause) or clause in adjudicated):
                continue
        reason = removal_reason(text, min_chars=min_chars)
        if reason:
            steps[reason].add(text)
            continue
        clean[clause] = text

    examples: list[CleanExample] = []
    overlap: list[int] = []
    for members, n_exact, n_near, group in _duplicate_groups(clean, near_dup_threshold):
        # The copy a lead adjudicated, else the longest (the others are cut short), else the most annotated.
        first = max(members, key=lambda c: (c in adjudicated, len(clean[c]), len(by_clause.get(c, ())), c))
        members.sort(key=lambda c: (c != first, c))
        text = clean[first]
        steps["exact_duplicate"].add(text, n_exact)
        steps["near_duplicate"].add(text, n_near)
        resolution = resolve_group(
            [a for c in members for a in by_clause.get(c, ())],
            labels=labels,
            adjudications=[adjudicated[c] for c in members if c in adjudicated],
            policy=policy,
            clause_ids=members,
        )
        item: dict[str, Any] = {
            "id": first,
            "text": text,
            "labels": list(resolution.labels),
            "votes": {name: list(chosen) for name, chosen in resolution.votes},
            "members": _members(members, clean, by_clause),
        }
        if resolution.status == UNRESOLVED:
            steps["unresolved"].add(text, len(members))
            review.append(item | {"reason": "unresolved", "exported": False, "policy": policy})
            continue
        if len({tuple(m["labels"]) for m in item["members"]}) > 1:
            review.append(item | {"reason": "merged_conflict", "exported": True})
        examples.append(
            CleanExample(
                first,
                text,
                resolution.labels,
                resolution.sources,
                resolution.annotators,
                tuple(members),
                resolution.status,
            )
        )
        overlap.append(group)

    exported = {c for e in examples for c in e.members}
    for item in review:  # known only now: removed by a text rule, merged, or left unresolved
        if item["reason"] == "unknown_label":
            item["exported"] = item["id"] in exported
    order = sorted(range(len(examples)), key=lambda i: examples[i].id)
    logger.info(
        "cleaning: %d clauses -> %d examples (%s)",
        len(candidates),
        len(examples),
        ", ".join(f"{s.name}={s.count}" for s in steps.values() if s.count),
    )
    return CleanResult(
        examples=[examples[i] for i in order],
        review=review,
        steps=steps,
        groups=np.asarray([overlap[i] for i in order], dtype=np.int64),
        unknown_labels=unknown_counts,
        n_clauses=len(candidates),
        n_annotations=len(annotations),
    )


def _known_votes(
    annotations: Sequence[Annotation], adjudications: Mapping[str, Sequence[str]], labels: tuple[str, ...]
) -> tuple[list[Annotation], dict[str, tuple[str, ...]], dict[str, tuple[str, ...]], dict[str, int]]:
    """Annotations and adjudications without unknown labels, unknown labels per clause, and their counts."""
    kept, unknown = drop_unknown_labels(annotations, labels)
    known = set(labels)
    counts = Counter(label for a in annotations for label in a.labels if label not in known)
    adjudicated: dict[str, tuple[str, ...]] = {}
    for clause, decision in adjudications.items():
        bad = tuple(label for label in decision if label not in known)
        good = tuple(label for label in decision if label in known)
        counts.update(bad)
        if bad:
            unknown[clause] = tuple(dict.fromkeys(unknown.get(clause, ()) + bad))
        if good or not bad:  # an adjudication of only unknown labels decides nothing
            adjudicated[clause] = good
    return kept, adjudicated, unknown, dict(counts)


def _duplicate_groups(clean: Mapping[str, str], near_dup_threshold: float) -> list[tuple[list[str], int, int, int]]:
    """Copies of one clause: ``(member ids, exact copies merged, near copies merged, overlap group)``.

    Exact duplicates share a match key; near duplicates are connected by shingle Jaccard >=
    ``near_dup_threshold`` between match keys; overlap groups also connect weaker overlaps.
    """
    key_ids: dict[str, list[str]] = {}
    for clause, text in clean.items():
        key_ids.setdefault(match_key(text), []).append(clause)
    keys = list(key_ids)
    rows, cols, jaccard, _ = similar_pairs(keys)
    near = jaccard >= near_dup_threshold
    merged = connected_groups(len(keys), rows[near], cols[near])
    overlap = connected_groups(len(keys), rows, cols)
    components: dict[int, list[int]] = {}
    for index, component in enumerate(merged):
        components.setdefault(int(component), []).append(index)
    return [
        (
            [c for i in indices for c in key_ids[keys[i]]],
            sum(len(key_ids[keys[i]]) - 1 for i in indices),
            len(indices) - 1,
            int(overlap[indices[0]]),
        )
        for indices in components.values()
    ]


def _members(members: Sequence[str], clean: Mapping[str, str], by_clause: Mapping[str, list[Annotation]]) -> list:
    """Review detail: each merged copy with its own text and the labels voted on it."""
    return [
        {
            "id": c,
            "text": clean[c],
            "labels": sorted({label for a in by_clause.get(c, ()) for label in a.labels}),
        }
        for c in members
    ]
