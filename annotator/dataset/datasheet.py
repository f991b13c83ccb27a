"""The datasheet written beside every export (README.md): YAML metadata ``datasets`` reads (data
files per split and the features), then what a person needs before training on the data: counts,
label distribution per split, where the examples came from, what cleaning did and why, agreement.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .cleaning import CleanExample
from .splits import SPLIT_NAMES

HF_SPLIT = {"train": "train", "dev": "validation", "test": "test"}  # datasets' names for our splits
REVIEW_FILE = "review.jsonl"


@dataclass
class PreparedDataset:
    """Resolved, cleaned, checked and split examples, ready to be written in any format."""

    labels: tuple[str, ...]
    examples: list[CleanExample]
    Y: np.ndarray
    splits: dict[str, np.ndarray]
    review: list[dict[str, Any]]
    stats: dict[str, Any]

    def split_examples(self, name: str) -> list[CleanExample]:
        """The examples of one split, in id order."""
        return [self.examples[i] for i in self.splits[name]]


def _card_metadata(dataset: PreparedDataset, fmt: str) -> dict[str, Any]:
    """The README's YAML header: what ``datasets.load_dataset(folder)`` reads (files and features)."""
    pattern = {"jsonl": "{}.jsonl", "csv": "{}.csv", "parquet": "{}.parquet", "hf": "{}/*.arrow"}[fmt]
    data_files = [
        {"split": HF_SPLIT[name], "path": pattern.format(HF_SPLIT[name] if fmt == "hf" else name)}
        for name in SPLIT_NAMES
        if len(dataset.splits[name])  # datasets cannot read an empty split file
    ]
    features: list[dict[str, Any]]
    if fmt == "csv":
        features = [
            {"name": "id", "dtype": "string"},
            {"name": "text", "dtype": "string"},
            {"name": "source", "dtype": "string"},
        ]
        features += [{"name": label, "dtype": "int64"} for label in dataset.labels]
    else:
        features = [
            {"name": "id", "dtype": "string"},
            {"name": "text", "dtype": "string"},
            {
                "name": "labels",
                "sequence": {"class_label": {"names": {str(i): label for i, label in enumerate(dataset.labels)}}},
            },
            {"name": "source", "sequence": "string"},
            {"name": "annotators", "sequence": "string"},
        ]
    return {
        "language": ["zh"],
        "task_categories": ["text-classification"],
        "task_ids": ["multi-label-classification"],
        "configs": [{"config_name": "default", "data_files": data_files}],
        "dataset_info": {"features": features},
    }


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell).replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Nested dicts and lists of dicts (agreement figures) as ``(dotted.name, value)`` rows."""
    if isinstance(value, Mapping):
        return [row for key, item in value.items() for row in _flatten(item, f"{prefix}{key}.")]
    if isinstance(value, (list, tuple)) and value and all(isinstance(item, Mapping) for item in value):
        rows = []
        for i, item in enumerate(value):
            name = item.get("label") or item.get("annotator") or "-".join(item.get("annotators") or ()) or i
            rest = {k: v for k, v in item.items() if k not in ("label", "annotator", "annotators")}
            rows += _flatten(rest, f"{prefix}{name}.")
        return rows
    return [(prefix.rstrip("."), round(value, 4) if isinstance(value, float) else value)]


def render_datasheet(dataset: PreparedDataset, stats: Mapping[str, Any], fmt: str) -> str:
    """README.md: YAML metadata for ``datasets`` plus a datasheet a person can read."""
    import yaml

    counts = stats["counts"]
    header = yaml.safe_dump(_card_metadata(dataset, fmt), allow_unicode=True, sort_keys=False)
    names = list(SPLIT_NAMES)
    dist, props = stats["label_distribution"], stats["label_proportions"]
    label_rows = [
        [label, dist["all"][label], *(f"{dist[n][label]} ({100 * props[n][label]:.1f}%)" for n in names)]
        for label in dataset.labels
    ]
    step_rows = [[name, s["action"], s["count"], s["why"]] for name, s in stats["steps"].items()]
    noise = stats["noise_check"]
    issues = [item for item in dataset.review if item["reason"] == "label_issue"][:10]
    parts = [
        f"---\n{header}---",
        "# Datasheet: policy-clause multi-label dataset",
        f"Created {stats['created_at']} by annotator {stats['tool_version'] or '(version not given)'}; "
        f"model version: {stats['model_version'] if stats['model_version'] is not None else '(not given)'}. "
        f"Format: `{fmt}`.",
        "## Composition",
        f"{counts['examples']} examples from {counts['clauses']} annotated clauses "
        f"({counts['annotations']} annotations), {len(dataset.labels)} labels; "
        f"{len(dataset.review)} items in `{REVIEW_FILE}`"
        + "".join(f"; {reason}: {n}" for reason, n in stats["review"].items())
        + ".",
        _table(["split", "examples", "share"], [[n, counts[n], f"{stats['split_ratios'][n]:.2f}"] for n in names]),
        "Splits: iterative stratification for multi-label data (Sechidis et al. 2011) over groups of "
        "near-duplicate or overlapping clauses, which never cross splits. Largest deviation of a label's "
        "share of a split from its share of the whole: "
        + ", ".join(f"{n} {100 * v:.2f} points" for n, v in stats["max_proportion_deviation"].items())
        + ".",
        "## Labels",
        _table(["label", "all", *names], label_rows),
        "## Provenance and label resolution",
        f"Policy `{stats['policy']}`: a lead's adjudication wins; otherwise a label needs "
        + {
            "unanimous": "every annotator",
            "majority": "more than half of the annotators",
            "union": "one annotator",
        }[stats["policy"]]
        + " (the seed file counts as one annotator). Clauses with no agreed set are in the review file.",
        _table(["source", "examples"], sorted(stats["sources"].items())),
        "## Cleaning",
        _table(["step", "action", "clauses", "why"], step_rows),
        "## Label-noise check",
        (
            f"cleanlab multi-label `find_label_issues` on {noise['n_folds']}-fold out-of-fold probabilities "
            f"of `{noise['estimator']}`: {noise['n_flagged']} examples flagged (kept in the data, listed in "
            f"`{REVIEW_FILE}` by label quality score). Labels not checked: "
            f"{', '.join(noise['labels_skipped']) or 'none'}."
            if noise.get("ran")
            else f"Not run: {noise.get('skipped')}."
        ),
    ]
    if issues:
        parts.append(
            _table(
                ["score", "text", "given", "cleanlab suggests"],
                [
                    [
                        item["score"],
                        item["text"][:60],
                        "、".join(item["labels"]),
                        "、".join(item["suggested_labels"]),
                    ]
                    for item in issues
                ],
            )
        )
    parts.append("## Agreement")
    agreement = stats.get("agreement")
    parts.append(_table(["figure", "value"], _flatten(agreement)) if agreement else "No agreement figures given.")
    parts += [
        "## Files and loading",
        ", ".join(f"`{name}`" for name in stats["files"] if "/" not in name) + ".",
        "```python\nimport datasets\nds = datasets.load_dataset(\"path/to/this/folder\")  # dev -> 'validation'\n```",
    ]
    return "\n\n".join(parts) + "\n"
