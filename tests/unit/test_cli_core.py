"""The core CLI commands through CliRunner: exit codes 0/1/2, exact error texts, the --json contracts."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from annotator.cli import main
from annotator.labels import load_label_config, parse_label_config
from annotator.text.normalize import clause_id, normalize_text
from tests.conftest import SOURCES, seed_lines

LABELS = load_label_config().labels
NO_MODEL = "Error: no model has been trained yet; run `annotator train` or label more clauses"
LOAN = "对符合条件的企业给予贷款贴息支持。"

# BUG features.py:47: jieba's load_userdict(path) opens the user dictionary and never closes it.
pytestmark = pytest.mark.filterwarnings(
    r"ignore:Exception ignored in.*policy_terms\.txt:pytest.PytestUnraisableExceptionWarning"
)


def clean_environment(mp: pytest.MonkeyPatch) -> None:
    """The developer's own ANNOTATOR_* / Label Studio variables must not leak into a test project."""
    import os

    for key in list(os.environ):
        if key.startswith(("ANNOTATOR_", "LABEL_STUDIO_", "BASIC_AUTH_")):
            mp.delenv(key)


@pytest.fixture(autouse=True)
def _isolated(monkeypatch):
    clean_environment(monkeypatch)


def run(home, *args, input=None):
    """``annotator --home HOME ARGS`` in-process."""
    return CliRunner().invoke(main, ["--home", str(home), *map(str, args)], input=input)


def held_out_lines(n: int = 40) -> list[str]:
    """Seed lines of ``n`` clauses that the 300-clause tiny corpus does not contain."""
    train = set(seed_lines(300))
    return [line for line in seed_lines(300 + n) if line not in train]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One project with one model trained on the tiny corpus (300 real clauses), and a held-out file."""
    root = tmp_path_factory.mktemp("cli")
    corpus = root / "tiny.tsv"
    corpus.write_text("\n".join(seed_lines(300)) + "\n", encoding="utf-8")  # what tiny_corpus holds
    held_out = root / "held_out.tsv"
    held_out.write_text("\n".join(held_out_lines()) + "\n", encoding="utf-8")
    with pytest.MonkeyPatch.context() as mp:
        clean_environment(mp)
        result = run(root / "home", "train", "--labeled", corpus, "--json")
    assert result.exit_code == 0, result.output
    return {"home": root / "home", "held_out": held_out, "train": json.loads(result.stdout)}


# ingest -------------------------------------------------------------------------------------------
def test_ingest_documents_then_again_adds_nothing(tmp_path):
    tasks = tmp_path / "tasks.json"
    first = run(tmp_path / "home", "ingest", SOURCES, "--tasks-out", tasks, "--json")
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)
    assert len(report["documents"]) == 4 and report["errors"] == []
    assert report["new_clauses"] == report["total_clauses"] > 100
    assert len(json.loads(tasks.read_text(encoding="utf-8"))) == report["tasks"] > 100

    again = run(tmp_path / "home", "ingest", SOURCES, "--tasks-out", tasks)
    assert again.exit_code == 0
    assert f"0 new clauses; {report['total_clauses']} in the project" in again.output


def test_ingest_a_gbk_document(tmp_path):
    source = next(SOURCES.glob("000_*.txt"))
    gbk = tmp_path / "policy_gbk.txt"
    gbk.write_bytes(source.read_text(encoding="utf-8").encode("gbk"))
    utf8 = run(tmp_path / "a", "ingest", source, "--tasks-out", tmp_path / "a.json", "--json")
    result = run(tmp_path / "b", "ingest", gbk, "--tasks-out", tmp_path / "b.json", "--json")
    assert result.exit_code == 0, result.output
    [doc] = json.loads(result.stdout)["documents"]
    assert doc["clauses"] == json.loads(utf8.stdout)["documents"][0]["clauses"] > 10


def test_ingest_nothing_usable_exits_1(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    result = run(tmp_path / "home", "ingest", tmp_path / "missing.txt", empty, "--tasks-out", tmp_path / "t.json")
    assert result.exit_code == 1
    assert f"error: {tmp_path / 'missing.txt'}: no such file or folder" in result.output
    assert f"error: {empty}: file is empty" in result.output
    assert result.output.rstrip().endswith("Error: no document could be ingested")
    assert not (tmp_path / "t.json").exists()


def test_ingest_needs_a_path(tmp_path):
    result = run(tmp_path / "home", "ingest")
    assert result.exit_code == 2
    assert "Error: Missing argument 'PATHS...'." in result.output


# import-labels ------------------------------------------------------------------------------------
def test_import_labels_then_status(tmp_path, tiny_corpus):
    home = tmp_path / "home"
    result = run(home, "import-labels", tiny_corpus, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["examples"] == 300 and report["n_problems"] == 0
    assert report["annotations"] == {"created": 300, "updated": 0, "unchanged": 0, "stale": 0}

    again = run(home, "import-labels", tiny_corpus, "--json")
    assert json.loads(again.stdout)["annotations"]["unchanged"] == 300

    status = run(home, "status", "--json")
    assert status.exit_code == 0
    assert json.loads(status.stdout) == {
        "home": str(home),
        "clauses": 300,
        "labeled_clauses": 300,
        "annotations": {"seed": 300, "label_studio": 0},
        "model_versions": 0,
        "latest_model": None,
        "pushed_pending": 0,
        "not_policy": 0,
    }


def test_import_labels_missing_file(tmp_path):
    missing = tmp_path / "labels.tsv"
    result = run(tmp_path / "home", "import-labels", missing)
    assert result.exit_code == 1
    assert result.output.strip() == f"Error: cannot read {missing}: No such file or directory"


def test_import_labels_empty_file(tmp_path):
    empty = tmp_path / "labels.tsv"
    empty.write_text("\n", encoding="utf-8")
    result = run(tmp_path / "home", "import-labels", empty)
    assert result.exit_code == 1
    assert result.output.strip() == f"Error: {empty}: file is empty"


def test_import_labels_gbk_file(tmp_path):
    lines = [line for line in seed_lines(20) if _encodes(line, "gbk")]
    path = tmp_path / "labels_gbk.tsv"
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("gbk"))
    result = run(tmp_path / "home", "import-labels", path, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["n_problems"] == 0 and report["examples"] == len({line.split("\t")[1] for line in lines})


def _encodes(text: str, encoding: str) -> bool:
    try:
        text.encode(encoding)
    except UnicodeEncodeError:
        return False
    return True


def test_import_labels_reports_bad_lines_and_imports_the_rest(tmp_path):
    path = tmp_path / "labels.tsv"
    path.write_text(
        f"财政支持\t{LOAN}\n这一行没有制表符\n财政补助\t设立专项资金支持科技成果转化。\n企业\t支持企业建设研发中心。\n",
        encoding="utf-8",
    )
    home = tmp_path / "home"
    result = run(home, "import-labels", path)
    assert result.exit_code == 0, result.output
    assert (
        "2 labeled clauses from 4 lines (0 duplicate lines, 0 near-duplicates with conflicting labels, "
        "2 problem lines)" in result.output
    )
    assert "  line 2: no tab between label and text" in result.output
    assert (
        "  line 3: label '财政补助' is not in the label set; did you mean '财政支持'? known: 金融支持, "
        in result.output
    )
    status = json.loads(run(home, "status", "--json").stdout)
    assert status["labeled_clauses"] == 2


# train / evaluate / predict -----------------------------------------------------------------------
def test_evaluate_before_any_training(tmp_path):
    held_out = tmp_path / "held_out.tsv"
    held_out.write_text("\n".join(held_out_lines(5)) + "\n", encoding="utf-8")
    result = run(tmp_path / "home", "evaluate", "--labeled", held_out, "--json")
    assert result.exit_code == 1
    assert result.output.strip() == NO_MODEL
    assert result.stdout == ""  # no half JSON document


def test_predict_before_any_training(tmp_path):
    result = run(tmp_path / "home", "predict", input=LOAN + "\n")
    assert result.exit_code == 1
    assert result.output.strip() == NO_MODEL


def test_train_without_labels(tmp_path):
    result = run(tmp_path / "home", "train")
    assert result.exit_code == 1
    assert result.output.strip() == (
        "Error: the project has 0 labeled clause(s), 20 are needed to train "
        "(ANNOTATOR_MIN_TRAIN_LABELS); import labels with "
        "`annotator import-labels FILE`"
    )


def test_train_on_a_missing_file(tmp_path):
    result = run(tmp_path / "home", "train", "--labeled", tmp_path / "nope.tsv")
    assert result.exit_code == 1
    assert result.output.strip() == f"Error: cannot read {tmp_path / 'nope.tsv'}: No such file or directory"


def test_train_reports_the_version_and_held_out_metrics(trained):
    out = trained["train"]
    assert out["model_version"] == 1 and out["n_train"] == 300
    assert out["path"].endswith("model-00001.pkl")
    assert out["metrics"]["n"] > 20 and 0.0 < out["metrics"]["macro_f1"] <= 1.0
    status = json.loads(run(trained["home"], "status", "--json").stdout)
    assert status["model_versions"] == 1
    assert status["latest_model"] == {"version": 1, "n_train": 300, "macro_f1": out["metrics"]["macro_f1"]}


def test_evaluate_json_contract(trained):
    result = run(trained["home"], "evaluate", "--labeled", trained["held_out"], "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert {"n", "micro_f1", "macro_f1", "samples_f1", "subset_accuracy", "per_label"} <= set(report)
    assert report["n"] == 40 and report["model_version"] == 1
    assert list(report["per_label"]) == list(LABELS)
    assert all(set(v) == {"f1", "support"} for v in report["per_label"].values())
    for key in ("micro_f1", "macro_f1", "samples_f1", "subset_accuracy"):
        assert 0.0 <= report[key] <= 1.0
    assert report["micro_f1"] > 0.2  # a real model, not noise


def test_evaluate_human_summary(trained):
    result = run(trained["home"], "evaluate", "--labeled", trained["held_out"])
    assert result.exit_code == 0
    assert result.output.startswith("model version 1 on 40 clauses: macro-F1 ")


def test_evaluate_unknown_version(trained):
    result = run(trained["home"], "evaluate", "--labeled", trained["held_out"], "--version", "9")
    assert result.exit_code == 1
    assert result.output.strip() == "Error: no model version 9; known: 1"


def test_predict_json(trained):
    result = run(
        trained["home"], "predict", "--json", "--top", "2", input=f"{LOAN}\n\n  支持高校院所建设 科技成果转化平台。\n"
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["model_version"] == 1
    assert [p["text"] for p in out["predictions"]] == [LOAN, normalize_text("支持高校院所建设 科技成果转化平台。")]
    for p in out["predictions"]:
        assert p["labels"] and set(p["labels"]) <= set(LABELS)  # always at least one label
        assert len(p["probabilities"]) == 2
    assert "财政支持" in out["predictions"][0]["labels"] or "金融支持" in out["predictions"][0]["labels"]


def test_predict_human_lines(trained):
    result = run(trained["home"], "predict", input=LOAN + "\n")
    assert result.exit_code == 0
    [line] = result.output.strip().splitlines()
    labels, probabilities, text = line.split("\t")
    assert text == LOAN and set(labels.split("|")) <= set(LABELS) and probabilities.count(",") == 2


def test_predict_without_text(trained):
    result = run(trained["home"], "predict", input="\n  \n")
    assert result.exit_code == 2
    assert "Error: no text on stdin; give one clause per line" in result.output


# resolve ------------------------------------------------------------------------------------------
@pytest.fixture
def labeled_home(tmp_path):
    path = tmp_path / "labels.tsv"
    path.write_text(f"财政支持\t{LOAN}\n", encoding="utf-8")
    home = tmp_path / "home"
    assert run(home, "import-labels", path).exit_code == 0
    return home


def test_resolve_stores_the_final_labels(labeled_home):
    cid = clause_id(LOAN)
    result = run(labeled_home, "resolve", cid, "企业", "金融支持", "--resolver", "lead@example.com", "--note", "准则3")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"{cid}: 金融支持 | 企业 (by lead@example.com)"


def test_resolve_with_an_unknown_label(labeled_home):
    result = run(labeled_home, "resolve", clause_id(LOAN), "财政补助", "--resolver", "lead")
    assert result.exit_code == 1
    assert result.output.strip() == (
        "Error: label '财政补助' is not in the label set; did you mean '财政支持'? known: " + ", ".join(LABELS)
    )


def test_resolve_an_unknown_clause(labeled_home):
    result = run(labeled_home, "resolve", "0000000000000000", "企业", "--resolver", "lead")
    assert result.exit_code == 1
    assert result.output.strip() == (
        "Error: unknown clause '0000000000000000': it is not in this project's store; "
        "pick one from the disagreement queue (the dashboard, or `annotator agreement`)"
    )


def test_resolve_needs_a_resolver(labeled_home):
    result = run(labeled_home, "resolve", clause_id(LOAN), "企业")
    assert result.exit_code == 2
    assert "Error: Missing option '--resolver'." in result.output


# usage errors -------------------------------------------------------------------------------------
@pytest.mark.parametrize("split", ["abc", "0.8;0.1;0.1"])
def test_invalid_split(tmp_path, split):
    result = run(tmp_path / "home", "export", "--out", tmp_path / "exports" / "v1", "--split", split)
    assert result.exit_code == 2
    assert f"Error: Invalid value for --split: expected three numbers like 0.8,0.1,0.1, got '{split}'" in result.output


def test_invalid_settings_from_the_environment_exit_1(tmp_path, monkeypatch):
    monkeypatch.setenv("ANNOTATOR_BATCH_SIZE", "0")
    result = run(tmp_path / "home", "status")
    assert result.exit_code == 1
    assert result.output.strip() == "Error: ANNOTATOR_BATCH_SIZE must be a positive integer, got 0"


def test_unknown_command(tmp_path):
    result = run(tmp_path / "home", "trian")
    assert result.exit_code == 2
    assert "No such command 'trian'" in result.output


def test_label_config_prints_the_config_a_ui_made_project_needs(tmp_path):
    result = run(tmp_path / "home", "label-config")
    assert result.exit_code == 0
    config = parse_label_config(result.stdout)
    assert len(config.labels) == 27 and config.not_policy == "不是政策措施"
    assert result.stdout.startswith("<View>") and (config.from_name, config.value_key) == ("labels", "text")


def test_resolve_from_the_cli_is_validated_like_the_dashboard(labeled_home):
    """One adjudicate(): the CLI refuses what the dashboard refuses, with the same message."""
    result = run(labeled_home, "resolve", clause_id(LOAN), "企业", "--resolver", "  ")
    assert result.exit_code == 1
    assert result.output.strip() == (
        "Error: resolver is empty: type your name in the 'resolved by' field so the decision can be traced"
    )
    result = run(labeled_home, "resolve", clause_id(LOAN), "企业", "--resolver", "lead", "--note", "x" * 2001)
    assert result.exit_code == 1
    assert result.output.strip() == "Error: note has 2001 characters (limit 2000); shorten it"
