"""Export: the seed-file bar (no duplicates or leaks, stratified splits, round trips) and safe writing."""

from __future__ import annotations

import copy
import json
import os
import re
from pathlib import Path

import datasets
import numpy as np
import pandas as pd
import pytest
from sklearn.feature_extraction.text import CountVectorizer

from annotator.dataset import export as export_module
from annotator.errors import InputError
from annotator.dataset.export import FORMATS, export_dataset, hf_features, prepare_dataset, write_dataset
from annotator.labels import load_label_config
from annotator.text.normalize import clause_id, match_key, normalize_text
from annotator.dataset.splits import SPLIT_NAMES
from annotator.types import Annotation

SEED_FILE = Path(__file__).resolve().parents[2] / "tasks" / "seed_labels.tsv"
LABELS = load_label_config().labels


def seed_annotations(path: Path = SEED_FILE) -> tuple[list[Annotation], dict[str, str]]:
    """One seed Annotation per normalized text, as the real importer groups the seed file."""
    grouped: dict[str, dict[str, None]] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            label, text = line.rstrip("\n").split("\t", 1)
            grouped.setdefault(normalize_text(text), {})[label] = None
    texts = {clause_id(text): text for text in grouped}
    annotations = [Annotation(clause_id(t), tuple(labels), "seed", "seed") for t, labels in grouped.items()]
    return annotations, texts


# Tests on the real seed file share one noise-checked dataset (~10-15 s): marked slow.
@pytest.fixture(scope="module")
def seed():
    annotations, texts = seed_annotations()
    dataset = prepare_dataset(annotations, texts, LABELS, seed=0)  # with the noise check: the slow part
    return annotations, texts, dataset


@pytest.fixture(scope="module")
def written(seed, tmp_path_factory):
    root = tmp_path_factory.mktemp("exports")
    _, _, dataset = seed
    reports = {
        fmt: write_dataset(
            dataset,
            root / fmt,
            fmt=fmt,
            root=root,
            agreement={"alpha": 0.71},
            model_version="v3",
            tool_version="0.1.0",
        )
        for fmt in FORMATS
    }
    return root, reports


def split_frames(folder: Path) -> dict[str, pd.DataFrame]:
    return {name: pd.read_json(folder / f"{name}.jsonl", lines=True, dtype={"id": str}) for name in SPLIT_NAMES}


# The seed-file bar --------------------------------------------------------------------------------


@pytest.mark.slow
def test_no_exact_duplicates(written):
    root, _ = written
    frames = split_frames(root / "jsonl")
    texts = pd.concat(frames.values())["text"]
    assert texts.map(match_key).is_unique
    assert pd.concat(frames.values())["id"].is_unique


@pytest.mark.slow
def test_no_near_duplicates_across_splits(written):
    root, _ = written
    frames = split_frames(root / "jsonl")
    keys = {name: frame["text"].map(match_key).tolist() for name, frame in frames.items()}
    vectorizer = CountVectorizer(analyzer="char", ngram_range=(3, 3), binary=True, lowercase=False)
    vectorizer.fit([k for ks in keys.values() for k in ks])
    X = {name: vectorizer.transform(ks) for name, ks in keys.items()}
    sizes = {name: np.asarray(m.sum(axis=1)).ravel() for name, m in X.items()}
    for a, b in (("train", "dev"), ("train", "test"), ("dev", "test")):
        shared = (X[a] @ X[b].T).tocoo()
        jaccard = shared.data / (sizes[a][shared.row] + sizes[b][shared.col] - shared.data)
        assert jaccard.max() < 0.8, f"{a}/{b} share a near duplicate"
        # Nor is a clause of one split contained in a clause of another (sentence vs its paragraph).
        smaller = np.minimum(sizes[a][shared.row], sizes[b][shared.col])
        assert not ((shared.data / smaller >= 0.8) & (smaller >= 10)).any()


@pytest.mark.slow
def test_every_label_in_every_split_within_two_points(seed, written):
    _, _, dataset = seed
    root, _ = written
    frames = split_frames(root / "jsonl")
    whole = pd.concat(frames.values())
    overall = {label: whole["labels"].map(lambda ls, label=label: label in ls).mean() for label in LABELS}
    for name, frame in frames.items():
        for label in LABELS:
            share = frame["labels"].map(lambda ls, label=label: label in ls).mean()
            assert share > 0, f"{label} missing from {name}"
            assert abs(share - overall[label]) <= 0.02, (name, label, share, overall[label])
    sizes = {name: len(frame) / len(whole) for name, frame in frames.items()}
    assert sizes == pytest.approx({"train": 0.8, "dev": 0.1, "test": 0.1}, abs=0.01)


@pytest.mark.slow
def test_cleaning_on_the_seed_file(seed):
    annotations, texts, dataset = seed
    steps = {name: step["count"] for name, step in dataset.stats["steps"].items()}
    assert steps["too_short"] >= 1 and steps["exact_duplicate"] > 0 and steps["near_duplicate"] > 0
    assert steps["unresolved"] == 0  # the seed alone is one voter: always agreed
    counts = dataset.stats["counts"]
    merged_away = steps["exact_duplicate"] + steps["near_duplicate"]
    removed = sum(steps[name] for name in ("missing_text", "empty", "too_short", "boilerplate"))
    assert counts["examples"] == len(texts) - merged_away - removed
    noise = dataset.stats["noise_check"]
    assert noise["ran"] and noise["n_flagged"] == steps["label_issue"] > 0
    assert noise["labels_checked"] == list(LABELS)


@pytest.mark.slow
def test_jsonl_contract(written, seed):
    root, _ = written
    _, _, dataset = seed
    raw = (root / "jsonl" / "train.jsonl").read_text(encoding="utf-8")
    assert "\\u" not in raw  # ensure_ascii=False
    order = {label: i for i, label in enumerate(LABELS)}
    for line in raw.splitlines():
        row = json.loads(line)
        assert list(row) == ["id", "text", "labels", "source", "annotators"]
        assert row["labels"] and [order[label] for label in row["labels"]] == sorted(order[l] for l in row["labels"])
        assert row["source"] == ["seed"] and row["annotators"] == ["seed"]


def expected(dataset) -> dict[str, dict[str, tuple[str, tuple[str, ...]]]]:
    return {name: {e.id: (e.text, e.labels) for e in dataset.split_examples(name)} for name in SPLIT_NAMES}


def as_set(df: pd.DataFrame, labels_of) -> dict[str, tuple[str, tuple[str, ...]]]:
    return {row["id"]: (row["text"], tuple(labels_of(row))) for _, row in df.iterrows()}


@pytest.mark.slow
@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_with_pandas(written, seed, fmt):
    root, _ = written
    _, _, dataset = seed
    folder = root / fmt
    for name, want in expected(dataset).items():
        if fmt == "jsonl":
            got = as_set(pd.read_json(folder / f"{name}.jsonl", lines=True, dtype={"id": str}), lambda r: r["labels"])
        elif fmt == "csv":
            df = pd.read_csv(folder / f"{name}.csv", dtype={"id": str})
            assert list(df.columns) == ["id", "text", "source", *LABELS]
            got = as_set(df, lambda r: [label for label in LABELS if r[label] == 1])
        elif fmt == "parquet":
            got = as_set(pd.read_parquet(folder / f"{name}.parquet"), lambda r: list(r["labels"]))
        else:
            df = datasets.load_from_disk(str(folder))[{"dev": "validation"}.get(name, name)].to_pandas()
            got = as_set(df, lambda r: [LABELS[i] for i in r["labels"]])
        assert got == want, f"{fmt}/{name}"


@pytest.mark.slow
@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_with_datasets(written, seed, fmt, tmp_path):
    root, _ = written
    _, _, dataset = seed
    loaded = datasets.load_dataset(str(root / fmt), cache_dir=str(tmp_path / "cache"))
    assert set(loaded) == {"train", "validation", "test"}
    for name, want in expected(dataset).items():
        split = loaded[{"dev": "validation"}.get(name, name)]
        if fmt == "csv":
            got = {r["id"]: (r["text"], tuple(l for l in LABELS if r[l] == 1)) for r in split}
        else:
            feature = split.features["labels"]
            assert feature == hf_features(LABELS)["labels"]
            assert feature.feature.names == list(LABELS)
            got = {r["id"]: (r["text"], tuple(feature.feature.int2str(i) for i in r["labels"])) for r in split}
        assert got == want, f"{fmt}/{name}"


@pytest.mark.slow
def test_datasheet_and_review(written, seed):
    root, reports = written
    _, _, dataset = seed
    folder = root / "jsonl"
    stats = json.loads((folder / "stats.json").read_text(encoding="utf-8"))
    assert stats["agreement"] == {"alpha": 0.71}
    assert stats["model_version"] == "v3" and stats["tool_version"] == "0.1.0"
    assert stats["counts"]["train"] == reports["jsonl"].split_sizes["train"]
    assert set(stats["label_distribution"]) == {"all", *SPLIT_NAMES}
    assert list(stats["steps"]) == [
        "missing_text",
        "unknown_label",
        "empty",
        "too_short",
        "boilerplate",
        "exact_duplicate",
        "near_duplicate",
        "unresolved",
        "label_issue",
    ]
    assert stats["files"] == [
        "README.md",
        "dev.jsonl",
        "review.jsonl",
        "stats.json",
        "test.jsonl",
        "train.jsonl",
    ]
    readme = (folder / "README.md").read_text(encoding="utf-8")
    assert readme.startswith("---\n") and "## Cleaning" in readme and "alpha" in readme and "v3" in readme
    review = [json.loads(line) for line in (folder / "review.jsonl").read_text(encoding="utf-8").splitlines()]
    issues = [r for r in review if r["reason"] == "label_issue"]
    assert len(issues) == stats["steps"]["label_issue"]["count"]
    assert [r["rank"] for r in issues[:3]] == [1, 2, 3]
    assert issues[0]["score"] <= issues[-1]["score"]
    assert {"labels", "suggested_labels", "probabilities", "text"} <= set(issues[0])
    assert reports["jsonl"].to_dict()["n_review"] == len(review)


# Safe writing -------------------------------------------------------------------------------------

TEXT = "支持企业建设研发机构，对新认定的国家级企业技术中心给予一次性奖励五百万元。"
OTHER = "建立政府性融资担保体系，为中小微企业提供低费率的融资担保服务，降低企业综合融资成本。"


@pytest.fixture
def tiny():
    texts = {clause_id(TEXT): TEXT, clause_id(OTHER): OTHER}
    annotations = [
        Annotation(clause_id(TEXT), ("企业",), "seed", "seed"),
        Annotation(clause_id(TEXT), ("企业", "财政支持"), "li", "label_studio"),
        Annotation(clause_id(OTHER), ("金融支持",), "li", "label_studio"),
        Annotation(clause_id(OTHER), ("企业",), "wang", "label_studio"),
    ]
    return annotations, texts


def run(tiny, out, **kw):
    annotations, texts = tiny
    return export_dataset(annotations, texts, LABELS, out, noise_check=False, **kw)


def test_tiny_export_resolves_and_reviews(tiny, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    report = run(tiny, "exports/v1", splits=(1.0, 0.0, 0.0))
    assert report.split_sizes == {"train": 1, "dev": 0, "test": 0}
    assert report.steps["unresolved"] == 1
    (row,) = [json.loads(x) for x in Path("exports/v1/train.jsonl").read_text(encoding="utf-8").splitlines()]
    assert row == {
        "id": clause_id(TEXT),
        "text": TEXT,
        "labels": ["企业"],
        "source": ["seed", "label_studio"],
        "annotators": ["li", "seed"],
    }
    (item,) = [json.loads(x) for x in Path("exports/v1/review.jsonl").read_text(encoding="utf-8").splitlines()]
    assert item["reason"] == "unresolved" and item["id"] == clause_id(OTHER)
    assert report.out == str((tmp_path / "exports" / "v1").resolve())


@pytest.mark.parametrize("out", ["../x", "exports/../x", "/tmp/annotator-export-outside", "exports"])
def test_refuses_paths_outside_the_root(tiny, tmp_path, monkeypatch, out):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "exports").mkdir()
    with pytest.raises(InputError) as err:
        run(tiny, out)
    assert str(err.value).startswith(f"output path '{out}' resolves to '")
    assert "not inside the export root" in str(err.value)
    assert not Path("/tmp/annotator-export-outside").exists() and not (tmp_path / "x").exists()


def test_refuses_a_symlink_that_leaves_the_root(tiny, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "exports").mkdir()
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", tmp_path / "exports" / "link")
    for out in ("exports/link", "exports/link/v1"):
        with pytest.raises(InputError, match=re.escape(f"output path '{out}' resolves to '{tmp_path / 'elsewhere'}")):
            run(tiny, out)
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_refuses_to_overwrite_unless_asked(tiny, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run(tiny, "exports/v1")
    (tmp_path / "exports" / "v1" / "marker").write_text("old")

    def fail(*args, **kwargs):
        raise AssertionError("the existing output must be refused before any work")

    with monkeypatch.context() as m:
        m.setattr(export_module, "prepare_dataset", fail)
        with pytest.raises(InputError) as err:
            run(tiny, "exports/v1")
    assert str(err.value) == "output 'exports/v1' already exists; pass overwrite=True (--overwrite) to replace it"
    run(tiny, "exports/v1", overwrite=True, fmt="csv")
    assert sorted(p.name for p in (tmp_path / "exports" / "v1").iterdir()) == [
        ".annotator-export",
        "README.md",
        "dev.csv",
        "review.jsonl",
        "stats.json",
        "test.csv",
        "train.csv",
    ]
    assert sorted(p.name for p in (tmp_path / "exports").iterdir()) == ["v1"]  # no temp or backup left


@pytest.mark.parametrize("existing", [False, True])
def test_failure_mid_write_leaves_nothing_behind(tiny, tmp_path, monkeypatch, existing):
    monkeypatch.chdir(tmp_path)
    if existing:
        run(tiny, "exports/v1")
    before = sorted(p.name for p in (tmp_path / "exports" / "v1").iterdir()) if existing else None

    def half_write(dataset, folder):
        (folder / "train.jsonl").write_text("{}\n")
        raise OSError("disk full")

    monkeypatch.setitem(export_module._WRITERS, "jsonl", half_write)
    with pytest.raises(OSError, match="disk full"):
        run(tiny, "exports/v1", overwrite=True)
    if existing:
        assert sorted(p.name for p in (tmp_path / "exports" / "v1").iterdir()) == before
        assert sorted(p.name for p in (tmp_path / "exports").iterdir()) == ["v1"]
    else:
        assert list((tmp_path / "exports").iterdir()) == []


def test_inputs_are_not_modified(tiny, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    annotations, texts = tiny
    adjudications = {clause_id(OTHER): ["金融支持"]}
    agreement = {"kappa": {"企业": 0.5}}
    snapshot = copy.deepcopy((annotations, texts, adjudications, agreement))
    export_dataset(
        annotations,
        texts,
        LABELS,
        "exports/v1",
        adjudications=adjudications,
        agreement=agreement,
        noise_check=False,
    )
    assert (annotations, texts, adjudications, agreement) == snapshot


def test_agreement_figures_in_the_datasheet(tiny, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    agreement = {
        "n_items": np.int64(2),
        "per_label": [{"label": "企业", "cohen_kappa": 0.41234, "n_items": 2}],
    }
    run(tiny, "exports/v1", agreement=agreement, model_version=7, tool_version="0.1.0")
    stats = json.loads(Path("exports/v1/stats.json").read_text(encoding="utf-8"))
    assert stats["agreement"] == {
        "n_items": 2,
        "per_label": [{"label": "企业", "cohen_kappa": 0.41234, "n_items": 2}],
    }
    assert stats["model_version"] == 7
    readme = Path("exports/v1/README.md").read_text(encoding="utf-8")
    assert "| per_label.企业.cohen_kappa | 0.4123 |" in readme


@pytest.mark.parametrize("fmt", FORMATS)
def test_empty_splits_still_load(tiny, tmp_path, monkeypatch, fmt):
    monkeypatch.chdir(tmp_path)
    run(tiny, "exports/v1", fmt=fmt, splits=(1.0, 0.0, 0.0))
    loaded = datasets.load_dataset("exports/v1", cache_dir=str(tmp_path / "cache"))
    assert list(loaded) == ["train"] and loaded["train"]["id"] == [clause_id(TEXT)]


def test_bad_format_and_splits(tiny, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError) as err:
        run(tiny, "exports/v1", fmt="xlsx")
    assert str(err.value) == "unknown export format 'xlsx'; choose one of: jsonl, csv, parquet, hf"
    with pytest.raises(InputError, match="summing to 1"):
        run(tiny, "exports/v1", splits=(0.5, 0.1, 0.1))
    assert not (tmp_path / "exports" / "v1").exists()


# --------------------------------------------------------------------------- --overwrite replaces only exports


@pytest.mark.parametrize("kind", ["plain folder", "project home", "home inside", "file"])
def test_overwrite_replaces_only_a_previous_export(tiny, tmp_path, monkeypatch, kind):
    monkeypatch.chdir(tmp_path)
    target = tmp_path / "exports" / "v1"
    if kind == "plain folder":
        target.mkdir(parents=True)
        (target / "notes.txt").write_text("mine")
        expected = (
            "output 'exports/v1' is not a folder a previous export made (no .annotator-export in it); "
            "--overwrite replaces only exports; choose another --out or delete it yourself"
        )
    elif kind == "project home":
        target.mkdir(parents=True)
        (target / "annotator.db").write_bytes(b"SQLite format 3\x00")
        (target / "models").mkdir()
        (target / "models" / "model-00001.pkl").write_bytes(b"x")
        (target / ".annotator-export").write_text("{}")  # even a planted marker does not help
        expected = (
            f"output 'exports/v1' holds a project home ({target / 'annotator.db'}); --overwrite never "
            "replaces a folder with a database, model versions or a config file; choose another --out"
        )
    elif kind == "home inside":
        run(tiny, "exports/v1")
        (target / "sub" / ".annotator").mkdir(parents=True)
        (target / "sub" / ".annotator" / "config.toml").write_text("seed = 1\n")
        expected = (
            f"output 'exports/v1' holds a project home ({target / 'sub' / '.annotator' / 'config.toml'}); "
            "--overwrite never replaces a folder with a database, model versions or a config file; "
            "choose another --out"
        )
    else:
        target.parent.mkdir(parents=True)
        target.write_text("precious")
        expected = (
            "output 'exports/v1' exists and is not an export folder (a file or a symlink); --overwrite "
            "replaces only a folder a previous export made; choose another --out"
        )
    before = sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "exports").rglob("*"))

    def fail(*args, **kwargs):
        raise AssertionError("the output must be refused before any work")

    monkeypatch.setattr(export_module, "prepare_dataset", fail)
    with pytest.raises(InputError) as err:
        run(tiny, "exports/v1", overwrite=True)
    assert str(err.value) == expected
    assert sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "exports").rglob("*")) == before


def test_every_export_carries_the_marker_and_can_be_replaced(tiny, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run(tiny, "exports/v1")
    marker = json.loads((tmp_path / "exports" / "v1" / ".annotator-export").read_text(encoding="utf-8"))
    assert marker["tool"] == "annotator"
    run(tiny, "exports/v1", overwrite=True)
    assert (tmp_path / "exports" / "v1" / ".annotator-export").is_file()


def test_export_metadata_is_redacted(tiny, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    secret = "planted-api-key-0123456789"
    agreement = {
        "annotators": [
            f"Authorization: Token {secret}",
            "http://ann:hunter22@ls:8080",
            "key=" + "x" * 3,
            "plain-" + secret,
        ]
    }
    run(tiny, "exports/v1", agreement=agreement, secrets=[secret])
    folder = tmp_path / "exports" / "v1"
    stats_text = (folder / "stats.json").read_text(encoding="utf-8")
    readme = (folder / "README.md").read_text(encoding="utf-8")
    for text in (stats_text, readme):
        assert secret not in text and "hunter22" not in text
    assert json.loads(stats_text)["agreement"]["annotators"] == [
        "Authorization: Token ***",
        "http://ann:***@ls:8080",
        "key=xxx",
        "plain-***",
    ]
