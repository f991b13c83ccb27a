"""Export training data: resolve, clean, check label noise, split, then write one folder atomically.

Every export folder holds the data (``train``/``dev``/``test`` in the chosen format), ``review.jsonl``
(clauses a person should look at), ``stats.json`` and ``README.md`` (a datasheet whose YAML header
also lets ``datasets.load_dataset(folder)`` read the data with ``labels`` as
``Sequence(ClassLabel(names=labels))``; the ``dev`` split loads as ``validation``; the datasheet is
:mod:`annotator.dataset.datasheet`).

The JSONL layout is a contract other tools read: one
``{"id", "text", "labels", "source", "annotators"}`` object per line, labels in label-set order.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
import tempfile
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, UTC
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from .cleaning import MIN_CHARS, NEAR_DUP_THRESHOLD, CleanExample, clean_and_resolve
from .label_issues import find_label_issues, label_issue_items
from ..redaction import redact
from ..errors import InputError
from ..optional import require
from .datasheet import HF_SPLIT, REVIEW_FILE, PreparedDataset, render_datasheet
from ..review.resolve import check_policy
from .splits import DEFAULT_RATIOS, SPLIT_NAMES, check_ratios, proportion_deviation, split_rows
from ..types import Annotation

logger = logging.getLogger(__name__)

FORMATS = ("jsonl", "csv", "parquet", "hf")
DEFAULT_ROOT = "exports"
STATS_FILE, README_FILE = "stats.json", "README.md"
# Written into every export folder; `--overwrite` replaces only a folder that has it.
EXPORT_MARKER = ".annotator-export"
# What makes a folder a project home (Settings.db_path, model_dir and the config file).
PROJECT_HOME_NAMES = ("annotator.db", "config.toml", "secret_key", "models")
_REVIEW_ORDER = {"unresolved": 0, "unknown_label": 1, "label_issue": 2, "merged_conflict": 3}
# The optional packages (the 'hf' extra) each format's writer imports.
_FORMAT_PACKAGES = {"parquet": ("pyarrow", "pyarrow.parquet"), "hf": ("datasets",)}


@dataclass(frozen=True)
class ExportReport:
    """What an export did: where it wrote, how many clauses each step removed or flagged, split sizes."""

    out: str
    fmt: str
    files: tuple[str, ...]
    n_clauses: int
    n_examples: int
    n_review: int
    split_sizes: dict[str, int] = field(default_factory=dict)
    steps: dict[str, int] = field(default_factory=dict)
    label_issues: int = 0
    max_deviation: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` document of ``annotator export``: the fields in order, ``files`` as a list
        (a contract other tools read; pinned by tests/unit/test_report_records.py)."""
        return asdict(self) | {"files": list(self.files)}


def check_format(fmt: str) -> str:
    """Return ``fmt`` if it is a known export format, else raise InputError listing them."""
    if fmt not in FORMATS:
        raise InputError(f"unknown export format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    return fmt


def _format_package(fmt: str, module: str) -> ModuleType:
    """``module`` for writing ``fmt``; MissingExtraError naming the 'hf' extra if it is not installed."""
    return require(module, f"export --format {fmt}")


def _require_format_packages(fmt: str) -> None:
    """Import what writing ``fmt`` needs now, so a missing extra fails before the slow steps."""
    for module in _FORMAT_PACKAGES.get(fmt, ()):
        _format_package(fmt, module)


def resolve_output(out: str | os.PathLike, root: str | os.PathLike = DEFAULT_ROOT) -> Path:
    """The absolute export folder for ``out``, refusing any path that leaves ``root``.

    Symlinks and ``..`` are resolved first, so ``exports/../x``, ``/tmp/x`` and a symlink inside
    ``root`` that points elsewhere are all refused. A relative ``out`` is relative to the current
    directory (``--out exports/NAME``).

    Raises
    ------
    InputError
        Naming the path, when it resolves outside ``root`` or to ``root`` itself.
    """
    root_path = Path(root).resolve()
    target = Path(out).resolve()
    if target == root_path or not target.is_relative_to(root_path):
        raise InputError(
            f"output path '{out}' resolves to '{target}', which is not inside the export root "
            f"'{root_path}'; choose a folder under it, e.g. '{Path(root) / 'NAME'}'"
        )
    return target


def _check_free(target: Path, out: str | os.PathLike, overwrite: bool) -> None:
    """Refuse an existing output unless ``overwrite``, and with it anything but a previous export.

    A folder may be replaced only when it is a real directory holding :data:`EXPORT_MARKER` (which
    every export writes) and no project home anywhere inside it (:data:`PROJECT_HOME_NAMES`): a
    mistyped ``--out`` must never delete a database, model versions or a secret key.
    """
    if not (target.exists() or target.is_symlink()):
        return
    if not overwrite:
        raise InputError(f"output '{out}' already exists; pass overwrite=True (--overwrite) to replace it")
    if target.is_symlink() or not target.is_dir():
        raise InputError(
            f"output '{out}' exists and is not an export folder (a file or a symlink); "
            "--overwrite replaces only a folder a previous export made; choose another --out"
        )
    if not (target / EXPORT_MARKER).is_file():
        raise InputError(
            f"output '{out}' is not a folder a previous export made (no {EXPORT_MARKER} in it); "
            "--overwrite replaces only exports; choose another --out or delete it yourself"
        )
    home = _project_home_inside(target)
    if home is not None:
        raise InputError(
            f"output '{out}' holds a project home ({home}); --overwrite never replaces a "
            "folder with a database, model versions or a config file; choose another --out"
        )


def _project_home_inside(folder: Path) -> Path | None:
    """The first path under ``folder`` that belongs to a project home, if any (symlinks not followed)."""
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in PROJECT_HOME_NAMES:
            if name in filenames or name in dirnames:
                if name != "models" or any(Path(dirpath, name).glob("model-*.pkl")):
                    return Path(dirpath, name)
    return None


def prepare_dataset(
    annotations: Sequence[Annotation],
    texts: Mapping[str, str],
    labels: Sequence[str],
    *,
    adjudications: Mapping[str, Sequence[str]] | None = None,
    policy: str = "majority",
    splits: Sequence[float] = DEFAULT_RATIOS,
    seed: int = 0,
    noise_check: bool = True,
    estimator: Any = None,
    min_chars: int = MIN_CHARS,
    near_dup_threshold: float = NEAR_DUP_THRESHOLD,
) -> PreparedDataset:
    """Resolve, clean, check and split; everything :func:`export_dataset` does except writing.

    Parameters are those of :func:`export_dataset`. Inputs are not modified.
    """
    labels = tuple(labels)
    if not labels or len(set(labels)) != len(labels):
        raise InputError(f"labels must be a non-empty list of distinct names, got {labels!r}")
    check_policy(policy)
    ratios = check_ratios(splits, len(SPLIT_NAMES))
    cleaned = clean_and_resolve(
        annotations,
        texts,
        labels,
        adjudications=adjudications,
        policy=policy,
        min_chars=min_chars,
        near_dup_threshold=near_dup_threshold,
    )
    examples = cleaned.examples
    column = {label: j for j, label in enumerate(labels)}
    Y = np.zeros((len(examples), len(labels)), dtype=np.int64)
    for i, example in enumerate(examples):
        Y[i, [column[label] for label in example.labels]] = 1

    review = list(cleaned.review)
    noise: dict[str, Any] = {"ran": False, "skipped": "disabled (noise_check=False)"}
    if noise_check:
        issues = find_label_issues(
            [e.text for e in examples], Y, labels, estimator=estimator, groups=cleaned.groups, seed=seed
        )
        items = label_issue_items(examples, issues, labels)
        review.extend(items)
        cleaned.steps["label_issue"].count = len(items)
        cleaned.steps["label_issue"].examples = [item["text"][:120] for item in items[:5]]
        noise = issues.to_dict() | {
            "n_given_label_doubted": sum(1 for item in items if item["suspect_labels"]),
            "n_missing_label_only": sum(1 for item in items if not item["suspect_labels"]),
        }
    review.sort(key=lambda item: (_REVIEW_ORDER.get(item["reason"], 9), item.get("rank", 0), item["id"]))

    assignment = split_rows(Y, ratios, groups=cleaned.groups, seed=seed)
    stats = _data_stats(labels, Y, assignment, cleaned, ratios, policy, seed, noise)
    stats["review"] = dict(Counter(item["reason"] for item in review))
    logger.info(
        "prepared %d examples (%s), %d review items",
        len(examples),
        ", ".join(f"{name}={len(idx)}" for name, idx in assignment.items()),
        len(review),
    )
    return PreparedDataset(labels, examples, Y, assignment, review, stats)


def _data_stats(labels, Y, assignment, cleaned, ratios, policy, seed, noise) -> dict[str, Any]:
    """Counts, label distribution per split, steps, groups: everything stats.json says about the data."""
    deviation = proportion_deviation(Y, assignment)
    distribution = {"all": dict(zip(labels, Y.sum(axis=0).tolist()))}
    proportions = {"all": dict(zip(labels, np.round(Y.sum(axis=0) / max(len(Y), 1), 4).tolist()))}
    missing = {}
    for name, idx in assignment.items():
        counts = Y[idx].sum(axis=0)
        distribution[name] = dict(zip(labels, counts.tolist()))
        proportions[name] = dict(zip(labels, np.round(counts / max(len(idx), 1), 4).tolist()))
        absent = [label for label, n in zip(labels, counts) if n == 0]
        if absent and len(idx):
            missing[name] = absent
    group_sizes = np.bincount(np.unique(cleaned.groups, return_inverse=True)[1]) if len(Y) else np.zeros(0)
    sources: dict[str, int] = {}
    for example in cleaned.examples:
        key = "+".join(example.sources)
        sources[key] = sources.get(key, 0) + 1
    return {
        "labels": list(labels),
        "policy": policy,
        "seed": seed,
        "split_ratios": dict(zip(SPLIT_NAMES, ratios.tolist())),
        "counts": {
            "clauses": cleaned.n_clauses,
            "annotations": cleaned.n_annotations,
            "examples": int(len(Y)),
            **{name: int(len(idx)) for name, idx in assignment.items()},
        },
        "steps": {name: step.to_dict() for name, step in cleaned.steps.items()},
        "unknown_labels": dict(cleaned.unknown_labels),
        "sources": sources,
        "label_distribution": distribution,
        "label_proportions": proportions,
        "max_proportion_deviation": {
            name: round(float(np.abs(dev).max()) if dev.size else 0.0, 4) for name, dev in deviation.items()
        },
        "labels_missing_from_split": missing,
        "overlap_groups": {
            "groups_with_several_examples": int((group_sizes > 1).sum()),
            "examples_in_them": int(group_sizes[group_sizes > 1].sum()),
            "largest": int(group_sizes.max()) if group_sizes.size else 0,
        },
        "noise_check": noise,
    }


def write_dataset(
    dataset: PreparedDataset,
    out: str | os.PathLike,
    *,
    fmt: str = "jsonl",
    root: str | os.PathLike = DEFAULT_ROOT,
    overwrite: bool = False,
    agreement: Mapping[str, Any] | None = None,
    model_version: str | int | None = None,
    tool_version: str | None = None,
    secrets: Sequence[str] = (),
) -> ExportReport:
    """Write a prepared dataset to ``out`` atomically: build in a temp folder beside it, then rename.

    The metadata (``stats.json``, the datasheet) is redacted (:func:`annotator.redaction.redact`,
    with ``secrets``): agreement figures quote annotator names, which a client may have filled with
    anything. The folder gets :data:`EXPORT_MARKER`, so a later ``overwrite`` can recognise it.

    Raises
    ------
    InputError
        On an unknown format, a path outside ``root``, or an existing output without ``overwrite``
        or that is not a previous export.
    MissingExtraError
        For ``parquet`` or ``hf`` without the 'hf' extra (pyarrow, datasets).
    """
    check_format(fmt)
    _require_format_packages(fmt)
    target = resolve_output(out, root)
    _check_free(target, out, overwrite)
    stats = dict(dataset.stats)
    stats.update(
        format=fmt,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        tool_version=tool_version,
        model_version=model_version,
        agreement=dict(agreement) if agreement is not None else None,
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        files = _WRITERS[fmt](dataset, tmp)
        files.append(_write_jsonl(tmp / REVIEW_FILE, dataset.review))
        stats["files"] = sorted(files + [STATS_FILE, README_FILE])
        text = redact(json.dumps(stats, ensure_ascii=False, indent=2, default=_json_default), secrets)
        (tmp / STATS_FILE).write_text(text + "\n", encoding="utf-8")
        (tmp / README_FILE).write_text(redact(render_datasheet(dataset, stats, fmt), secrets), encoding="utf-8")
        (tmp / EXPORT_MARKER).write_text(
            json.dumps({"tool": "annotator", "created_at": stats["created_at"]}) + "\n", encoding="utf-8"
        )
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; an export is meant to be shared
        _swap_into_place(tmp, target, out, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("wrote %s export to %s", fmt, target)
    counts = stats["counts"]
    return ExportReport(
        out=str(target),
        fmt=fmt,
        files=tuple(stats["files"]),
        n_clauses=counts["clauses"],
        n_examples=counts["examples"],
        n_review=len(dataset.review),
        split_sizes={name: counts[name] for name in SPLIT_NAMES},
        steps={name: step["count"] for name, step in stats["steps"].items()},
        label_issues=stats["steps"]["label_issue"]["count"],
        max_deviation=max(stats["max_proportion_deviation"].values(), default=0.0),
    )


def _json_default(value: Any) -> Any:
    """numpy scalars and arrays (e.g. in agreement figures) as plain JSON values."""
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _swap_into_place(tmp: Path, target: Path, out: str | os.PathLike, overwrite: bool) -> None:
    """Rename ``tmp`` to ``target``; an old ``target`` is moved aside first and restored on failure."""
    _check_free(target, out, overwrite)  # it may have appeared while we were writing
    if not (target.exists() or target.is_symlink()):
        os.rename(tmp, target)
        return
    backup = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
    os.rename(target, backup)
    try:
        os.rename(tmp, target)
    except BaseException:
        os.rename(backup, target)
        raise
    # The new export is in place; failing to delete the old copy must not report the export as failed.
    if backup.is_dir() and not backup.is_symlink():
        shutil.rmtree(backup, ignore_errors=True)
    else:
        backup.unlink(missing_ok=True)
    if backup.exists():
        logger.warning("could not remove the replaced export, left at %s", backup)


def export_dataset(
    annotations: Sequence[Annotation],
    texts: Mapping[str, str],
    labels: Sequence[str],
    out: str | os.PathLike,
    *,
    fmt: str = "jsonl",
    root: str | os.PathLike = DEFAULT_ROOT,
    adjudications: Mapping[str, Sequence[str]] | None = None,
    policy: str = "majority",
    splits: Sequence[float] = DEFAULT_RATIOS,
    seed: int = 0,
    noise_check: bool = True,
    estimator: Any = None,
    agreement: Mapping[str, Any] | None = None,
    model_version: str | int | None = None,
    tool_version: str | None = None,
    overwrite: bool = False,
    min_chars: int = MIN_CHARS,
    near_dup_threshold: float = NEAR_DUP_THRESHOLD,
    secrets: Sequence[str] = (),
) -> ExportReport:
    """Resolve, clean, check, split and write a training dataset with its datasheet and review file.

    Parameters
    ----------
    annotations : sequence of Annotation
        Seed (one Annotation per clause, annotator ``"seed"``), Label Studio and CLI annotations.
    texts : mapping
        clause id -> text. Clauses without an annotation or adjudication are not exported.
    labels : sequence of str
        The label set in order (``load_label_config().labels``).
    out : path
        Export folder to create, inside ``root``.
    fmt : {"jsonl", "csv", "parquet", "hf"}
        Data format: ``train.jsonl``...; ``train.csv``... (id, text, source, one 0/1 column per
        label); ``train.parquet``... (labels as a list column); or a ``DatasetDict.save_to_disk``
        folder (``train/``, ``validation/``, ``test/``; an empty split is left out).
    root : path
        Folder every export must stay inside (symlinks and ``..`` resolved).
    adjudications : mapping, optional
        clause id -> the lead's label set; wins over annotators' votes.
    policy : {"unanimous", "majority", "union"}
        How annotators' votes combine when there is no adjudication.
    splits : (float, float, float)
        Train/dev/test shares, summing to 1.
    seed : int
        Seed of the split and of the noise check's folds.
    noise_check : bool
        Run the cleanlab label-noise check (5-fold CV; the slow step).
    estimator : scikit-learn estimator, optional
        Model for the noise check: fitted on (list of texts, 0/1 matrix), ``predict_proba`` ->
        (n, n_labels). Default: :func:`annotator.dataset.label_issues.default_noise_estimator`.
    agreement : mapping, optional
        Inter-annotator agreement figures to record in the datasheet.
    model_version, tool_version : optional
        Recorded in the datasheet.
    overwrite : bool
        Replace an existing ``out`` (atomically) that a previous export made (it holds
        :data:`EXPORT_MARKER` and no project home); otherwise an existing ``out`` is an error.
    min_chars, near_dup_threshold
        Cleaning thresholds (see :mod:`annotator.dataset.cleaning`).
    secrets : sequence of str
        Values to mask in the metadata (:func:`annotator.redaction.settings_secrets`).

    Returns
    -------
    ExportReport

    Raises
    ------
    InputError
        On a bad format, policy or split, an ``out`` outside ``root``, or an existing ``out``
        without ``overwrite`` (checked before any work is done).
    MissingExtraError
        For ``parquet`` or ``hf`` without the 'hf' extra (pyarrow, datasets), before any work is done.

    Examples
    --------
    >>> from annotator.labels import load_label_config
    >>> report = export_dataset(annotations, texts, load_label_config().labels,
    ...                         "exports/v1", fmt="jsonl")  # doctest: +SKIP
    >>> report.split_sizes  # doctest: +SKIP
    {'train': 4363, 'dev': 561, 'test': 564}
    """
    check_format(fmt)
    _require_format_packages(fmt)
    _check_free(resolve_output(out, root), out, overwrite)
    dataset = prepare_dataset(
        annotations,
        texts,
        labels,
        adjudications=adjudications,
        policy=policy,
        splits=splits,
        seed=seed,
        noise_check=noise_check,
        estimator=estimator,
        min_chars=min_chars,
        near_dup_threshold=near_dup_threshold,
    )
    return write_dataset(
        dataset,
        out,
        fmt=fmt,
        root=root,
        overwrite=overwrite,
        agreement=agreement,
        model_version=model_version,
        tool_version=tool_version,
        secrets=secrets,
    )


# Writers ------------------------------------------------------------------------------------------


def _record(example: CleanExample) -> dict[str, Any]:
    """The JSONL contract for one example."""
    return {
        "id": example.id,
        "text": example.text,
        "labels": list(example.labels),
        "source": list(example.sources),
        "annotators": list(example.annotators),
    }


def _write_jsonl(path: Path, rows: Sequence[Mapping[str, Any]]) -> str:
    """Write one JSON object per line; return the file name."""
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path.name


def _write_jsonl_splits(dataset: PreparedDataset, folder: Path) -> list[str]:
    return [
        _write_jsonl(folder / f"{name}.jsonl", [_record(e) for e in dataset.split_examples(name)])
        for name in SPLIT_NAMES
    ]


def _write_csv_splits(dataset: PreparedDataset, folder: Path) -> list[str]:
    files = []
    for name in SPLIT_NAMES:
        path = folder / f"{name}.csv"
        with open(path, "w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["id", "text", "source", *dataset.labels])
            for i in dataset.splits[name]:
                example = dataset.examples[i]
                writer.writerow([example.id, example.text, ";".join(example.sources), *dataset.Y[i].tolist()])
        files.append(path.name)
    return files


def _arrow_table(examples: Sequence[CleanExample]):
    """A pyarrow table with list columns for labels, source and annotators."""
    pa = _format_package("parquet", "pyarrow")

    schema = pa.schema(
        [
            ("id", pa.string()),
            ("text", pa.string()),
            ("labels", pa.list_(pa.string())),
            ("source", pa.list_(pa.string())),
            ("annotators", pa.list_(pa.string())),
        ]
    )
    return pa.Table.from_pylist([_record(e) for e in examples], schema=schema)


def _write_parquet_splits(dataset: PreparedDataset, folder: Path) -> list[str]:
    pq = _format_package("parquet", "pyarrow.parquet")

    files = []
    for name in SPLIT_NAMES:
        path = folder / f"{name}.parquet"
        pq.write_table(_arrow_table(dataset.split_examples(name)), path)
        files.append(path.name)
    return files


def hf_features(labels: Sequence[str]):
    """``datasets.Features`` of an export: ``labels`` is ``Sequence(ClassLabel(names=labels))``.

    Raises
    ------
    MissingExtraError
        Without the 'hf' extra (datasets).
    """
    datasets = _format_package("hf", "datasets")

    return datasets.Features(
        {
            "id": datasets.Value("string"),
            "text": datasets.Value("string"),
            "labels": datasets.Sequence(datasets.ClassLabel(names=list(labels))),
            "source": datasets.Sequence(datasets.Value("string")),
            "annotators": datasets.Sequence(datasets.Value("string")),
        }
    )


def _write_hf(dataset: PreparedDataset, folder: Path) -> list[str]:
    datasets = _format_package("hf", "datasets")

    features = hf_features(dataset.labels)
    splits = {}
    for name in SPLIT_NAMES:
        records = [_record(e) for e in dataset.split_examples(name)]
        if records:  # datasets saves an empty split as no shard at all and then cannot load it back
            splits[HF_SPLIT[name]] = datasets.Dataset.from_list(records, features=features)
    datasets.DatasetDict(splits).save_to_disk(str(folder))
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


_WRITERS = {
    "jsonl": _write_jsonl_splits,
    "csv": _write_csv_splits,
    "parquet": _write_parquet_splits,
    "hf": _write_hf,
}
