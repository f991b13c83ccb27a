"""The reports `annotator ingest`, `import-labels` and `export` print: their ``--json`` documents are a
contract other tools read, so the keys, their order and the values over the real seed data are pinned
here (issue #17: the reports became typed records; what they print did not change)."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest
from click.testing import CliRunner

from annotator import Store
from annotator.cli import main
from annotator.dataset.export import ExportReport
from annotator.types import Annotation, ImportLabelsReport, IngestedDocument, IngestReport, NotPolicyReport
from tests.conftest import SEED_TSV, SEEDS, SOURCES

from .test_cli_core import clean_environment

SEED_DOCUMENTS = sorted(SEEDS.glob("*.txt")) or sorted(SOURCES.glob("*.txt"))
FIRST_CLAUSE = (
    "日前，上海市科委发布《关于支持外资企业高能级项目落地提升生物医药产业能级的若干措施（征求意见稿）》，"
    "提出多项措施促进生物医药外资企业高能级项目落地。"
)
INGEST_KEYS = ["documents", "new_clauses", "errors", "tasks_file", "tasks", "total_clauses", "not_policy"]
DOCUMENT_KEYS = ["path", "title", "clauses", "new", "dropped"]
NOT_POLICY_KEYS = ["n", "openings", "examples"]
IMPORT_KEYS = [
    "path",
    "n_lines",
    "n_pairs",
    "exact_duplicates",
    "n_problems",
    "problems",
    "n_conflicts",
    "conflicts",
    "examples",
    "annotations",
]
EXPORT_KEYS = [
    "out",
    "fmt",
    "files",
    "n_clauses",
    "n_examples",
    "n_review",
    "split_sizes",
    "steps",
    "label_issues",
    "max_deviation",
]
STEPS = {
    "missing_text": 0,
    "unknown_label": 0,
    "empty": 0,
    "too_short": 1,
    "boilerplate": 0,
    "exact_duplicate": 71,
    "near_duplicate": 42,
    "unresolved": 0,
    "label_issue": 0,
}

# BUG features.py:47: jieba's load_userdict(path) opens the user dictionary and never closes it.
pytestmark = pytest.mark.filterwarnings(
    r"ignore:Exception ignored in.*policy_terms\.txt:pytest.PytestUnraisableExceptionWarning"
)


def run(home, *args):
    """``annotator --home HOME ARGS`` in-process; asserts success."""
    result = CliRunner().invoke(main, ["--home", str(home), *map(str, args)])
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """One project over the seed data: the seed documents ingested, the seed labels imported, one export;
    each command run with ``--json`` and again for its human summary."""
    root = tmp_path_factory.mktemp("reports")
    home, tasks = root / "home", root / "tasks.json"
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        clean_environment(mp)
        mp.chdir(root)  # export --root defaults to ./exports
        out["ingest"] = run(home, "ingest", *SEED_DOCUMENTS, "--tasks-out", tasks, "--json")
        out["ingest_human"] = run(home, "ingest", *SEED_DOCUMENTS, "--tasks-out", tasks)
        out["import"] = run(home, "import-labels", SEED_TSV, "--json")
        out["import_human"] = run(home, "import-labels", SEED_TSV)
        out["export"] = run(home, "export", "--out", "exports/v1", "--no-noise-check", "--json")
        out["export_human"] = run(home, "export", "--out", "exports/v2", "--no-noise-check")
    out["root"], out["tasks"] = root, tasks
    return out


# ingest -----------------------------------------------------------------------------------------------
def test_ingest_json_over_the_seed_documents(project):
    report = json.loads(project["ingest"].stdout)
    assert list(report) == INGEST_KEYS
    assert [list(d) for d in report["documents"]] == [DOCUMENT_KEYS] * 4
    assert list(report["not_policy"]) == NOT_POLICY_KEYS
    assert report == {
        "documents": [
            {
                "path": str(SEED_DOCUMENTS[0]),
                "title": "上海多措并举支持外资企业高能级项目落地提升生物医药产业能级",
                "clauses": 87,
                "new": 87,
                "dropped": 23,
            },
            {"path": str(SEED_DOCUMENTS[1]), "title": "简报·第294期（下）", "clauses": 131, "new": 131, "dropped": 73},
            {"path": str(SEED_DOCUMENTS[2]), "title": "长三角每周要讯2025(9)", "clauses": 70, "new": 70, "dropped": 57},
            {
                "path": str(SEED_DOCUMENTS[3]),
                "title": "上海明确从三方面打造全球领先的高级别自动驾驶引领区",
                "clauses": 102,
                "new": 102,
                "dropped": 26,
            },
        ],
        "new_clauses": 390,
        "errors": [],
        "tasks_file": str(project["tasks"]),
        "tasks": 390,
        "total_clauses": 390,
        "not_policy": {"n": 0, "openings": [], "examples": []},
    }


def test_ingest_human_summary(project):
    assert project["ingest_human"].stdout == ""
    assert project["ingest_human"].stderr == (
        f"{SEED_DOCUMENTS[0]}: 87 clauses (0 new, 23 lines dropped)\n"
        f"{SEED_DOCUMENTS[1]}: 131 clauses (0 new, 73 lines dropped)\n"
        f"{SEED_DOCUMENTS[2]}: 70 clauses (0 new, 57 lines dropped)\n"
        f"{SEED_DOCUMENTS[3]}: 102 clauses (0 new, 26 lines dropped)\n"
        f"0 new clauses; 390 in the project; tasks written to {project['tasks']}\n"
    )


def test_ingest_json_with_not_policy_answers_and_a_bad_file(tmp_path, monkeypatch):
    clean_environment(monkeypatch)
    home, tasks, missing = tmp_path / "home", tmp_path / "tasks.json", tmp_path / "missing.txt"
    run(home, "ingest", SEED_DOCUMENTS[0], "--tasks-out", tasks)
    with Store(home / "annotator.db") as store:
        first, second = store.clauses()[:2]
        for n, clause in enumerate((second, first), start=1):
            store.save_annotation(
                Annotation(
                    clause.id,
                    (),
                    "amy",
                    "label_studio",
                    ls_annotation_id=n,
                    created_at=f"2025-01-0{n}",
                    not_policy=True,
                )
            )
    result = run(home, "ingest", SEED_DOCUMENTS[0], missing, "--tasks-out", tasks, "--json")
    report = json.loads(result.stdout)
    assert list(report) == INGEST_KEYS and list(report["not_policy"]) == NOT_POLICY_KEYS
    assert report["documents"] == [
        {
            "path": str(SEED_DOCUMENTS[0]),
            "title": "上海多措并举支持外资企业高能级项目落地提升生物医药产业能级",
            "clauses": 87,
            "new": 0,
            "dropped": 23,
        }
    ]
    assert report["errors"] == [f"{missing}: no such file or folder"]
    assert (report["new_clauses"], report["tasks_file"], report["tasks"], report["total_clauses"]) == (
        0,
        str(tasks),
        87,
        87,
    )
    assert report["not_policy"] == {
        "n": 2,
        "openings": [["日前，", 1], [second.text[:3], 1]],
        "examples": [FIRST_CLAUSE, second.text],
    }
    human = run(home, "ingest", SEED_DOCUMENTS[0], "--tasks-out", tasks).stderr
    assert human.splitlines()[-1] == (
        f"annotators marked 2 earlier line(s) 'not a policy measure'; most open with 日前，… (1), "
        f"{second.text[:3]}… (1) (lines like these are worth dropping at ingestion)"
    )


def test_ingest_json_without_a_tasks_file(tmp_path, monkeypatch):
    """No document read: no task file, ``tasks_file`` is null (and the command fails)."""
    clean_environment(monkeypatch)
    result = CliRunner().invoke(
        main, ["--home", str(tmp_path / "home"), "ingest", str(tmp_path / "none.txt"), "--json"]
    )
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert list(report) == INGEST_KEYS
    assert report == {
        "documents": [],
        "new_clauses": 0,
        "errors": [f"{tmp_path / 'none.txt'}: no such file or folder"],
        "tasks_file": None,
        "tasks": 0,
        "total_clauses": 0,
        "not_policy": {"n": 0, "openings": [], "examples": []},
    }


# import-labels ----------------------------------------------------------------------------------------
def test_import_labels_json_over_the_seed_labels(project):
    report = json.loads(project["import"].stdout)
    assert list(report) == IMPORT_KEYS
    assert {k: v for k, v in report.items() if k != "conflicts"} == {
        "path": str(SEED_TSV),
        "n_lines": 6996,
        "n_pairs": 6662,
        "exact_duplicates": 334,
        "n_problems": 0,
        "problems": [],
        "n_conflicts": 37,
        "examples": 5602,
        "annotations": {"created": 5602, "updated": 0, "unchanged": 0, "stale": 0},
    }
    assert list(report["annotations"]) == ["created", "updated", "unchanged", "stale"]
    assert [list(c) for c in report["conflicts"]] == [["lines", "texts", "labels"]] * 37
    assert report["conflicts"][0] == {
        "lines": [5, 6818],
        "texts": [
            "创新中心应落实好科技成果转化奖励、科研自主权、科技资源开放共享等政策措施，以及中央、地方支持企业、高校、"
            "科研院所、新型研发机构等各类创新主体的优惠政策，按有关政策规定享受研发费用加计扣除、高新技术企业税收优惠等税收优惠政策。",
            "创新中心应落实好科技成果转化奖励、科研自主权、科技资源开放共享等政策措施，以及中央、地方支持企业、高校、"
            "科研院所、新型研发机构等各类创新主体的优惠政策，按有关政策规定享受研发费用加计扣除、高新技术企业税收优惠等税收优惠政策",
        ],
        "labels": [["税收激励", "高等院校"], ["科技成果转移转化"]],
    }
    conflicts = json.dumps(report["conflicts"], ensure_ascii=False).encode("utf-8")
    assert hashlib.sha256(conflicts).hexdigest() == "02666b9f5db4699062e97ad33b20796b0646f4b43619e2b93d7e62b020b5daeb"


def test_import_labels_human_summary(project):
    assert project["import_human"].stderr == (
        "5602 labeled clauses from 6996 lines (334 duplicate lines, 37 near-duplicates with conflicting labels, "
        "0 problem lines)\n"
        "annotations: {'created': 0, 'updated': 0, 'unchanged': 5602, 'stale': 0}\n"
    )


def test_import_labels_json_with_problem_lines(tmp_path, monkeypatch):
    clean_environment(monkeypatch)
    labeled = tmp_path / "labels.tsv"
    lines = SEED_TSV.read_text(encoding="utf-8").splitlines()[:3]
    labeled.write_text(
        "\n".join([lines[0], "no tab here", "\t" + lines[1].split("\t", 1)[1], *lines[1:]]) + "\n", encoding="utf-8"
    )
    report = json.loads(run(tmp_path / "home", "import-labels", labeled, "--json").stdout)
    assert list(report) == IMPORT_KEYS
    assert report["n_problems"] == 2 and report["problems"] == [
        "line 2: no tab between label and text",
        "line 3: empty label",
    ]
    assert (report["n_lines"], report["n_conflicts"], report["conflicts"]) == (5, 0, [])


# export -----------------------------------------------------------------------------------------------
def test_export_json_over_the_seed_labels(project):
    report = json.loads(project["export"].stdout)
    assert list(report) == EXPORT_KEYS
    assert report == {
        "out": str((project["root"] / "exports" / "v1").resolve()),
        "fmt": "jsonl",
        "files": ["README.md", "dev.jsonl", "review.jsonl", "stats.json", "test.jsonl", "train.jsonl"],
        "n_clauses": 5602,
        "n_examples": 5488,
        "n_review": 74,
        "split_sizes": {"train": 4363, "dev": 561, "test": 564},
        "steps": STEPS,
        "label_issues": 0,
        "max_deviation": 0.0025,
    }
    assert list(report["split_sizes"]) == ["train", "dev", "test"] and list(report["steps"]) == list(STEPS)


def test_export_human_summary(project):
    out = (project["root"] / "exports" / "v2").resolve()
    assert project["export_human"].stderr == (
        f"wrote {out} (jsonl): 5488 examples, 74 for review\n"
        "  train: 4363 clauses\n  dev: 561 clauses\n  test: 564 clauses\n"
        + "".join(f"  removed/flagged by {step}: {n}\n" for step, n in STEPS.items())
    )


# The records ---------------------------------------------------------------------------------------------
def printed(document: dict) -> str:
    """What ``--json`` prints for ``document`` (annotator.cli.commands.emit)."""
    return json.dumps(document, ensure_ascii=False, indent=None, default=str) + "\n"


def test_each_record_gives_back_the_printed_document_exactly(project):
    for name, record in (("ingest", IngestReport), ("import", ImportLabelsReport)):
        stdout = project[name].stdout
        assert printed(record.from_dict(json.loads(stdout)).to_dict()) == stdout


def test_the_reports_are_frozen_and_typed(project):
    ingest = IngestReport.from_dict(json.loads(project["ingest"].stdout))
    assert ingest.documents[1] == IngestedDocument(str(SEED_DOCUMENTS[1]), "简报·第294期（下）", 131, 131, 73)
    assert ingest.not_policy == NotPolicyReport(0, (), ())
    imported = ImportLabelsReport.from_dict(json.loads(project["import"].stdout))
    assert (imported.n_problems, imported.n_conflicts, imported.annotations["created"]) == (0, 37, 5602)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ingest.tasks = 0  # type: ignore[misc]


def test_export_project_returns_the_record(project, tmp_path, monkeypatch):
    from annotator import Settings
    from annotator.dataset.reports import export_project

    monkeypatch.chdir(project["root"])
    settings = Settings(home=project["root"] / "home")
    with Store(settings.db_path) as store:
        report = export_project(store, settings, "exports/v3", noise_check=False)
    assert isinstance(report, ExportReport)
    expected = json.loads(project["export"].stdout) | {"out": str((project["root"] / "exports" / "v3").resolve())}
    assert printed(report.to_dict()) == printed(expected)


def test_not_policy_openings_print_as_pairs():
    report = IngestReport((), 0, (), None, 0, 0, NotPolicyReport(2, (("日前，", 1), ("近日，", 1)), ("甲", "乙")))
    assert report.to_dict()["not_policy"] == {
        "n": 2,
        "openings": [["日前，", 1], ["近日，", 1]],
        "examples": ["甲", "乙"],
    }
    assert IngestReport.from_dict(report.to_dict()) == report


def test_the_demo_reads_the_reports(settings, monkeypatch):
    """`annotator demo`'s preparation prints from the ingest and import-labels records (training stubbed)."""
    from annotator.cli import demo

    class Trained(Exception):
        pass

    def train_project(*args, **kwargs):
        raise Trained

    monkeypatch.setattr(demo, "demo_files", lambda: (SEED_DOCUMENTS[0].parent, SEED_TSV))
    monkeypatch.setattr(demo, "train_project", train_project)
    lines: list[str] = []
    with Store(settings.db_path) as store, pytest.raises(Trained):
        demo.prepare_project(settings, store, lines.append)
    assert lines == [
        "ingested 4 documents: 390 new clauses (390 in the project)",
        "seed labels: 5602 labeled clauses (5602 new)",
        "training the first model on the seed set ...",
    ]
