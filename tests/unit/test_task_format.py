"""The Label Studio task format, pinned: the task file `annotator ingest` writes and the task data the
loop pushes to Label Studio, keys, key order and values exactly as they were before the format got
its one home (issue #17)."""

from __future__ import annotations

import hashlib
import json

from annotator import task_format
from annotator.labels import load_label_config, parse_label_config
from annotator.labelstudio.client import task_data
from annotator.text.ingest import ingest_paths, write_ls_tasks
from annotator.types import Document, Segment
from tests.conftest import SEEDS, SOURCES

SEED_DOCUMENTS = sorted(SEEDS.glob("*.txt")) or sorted(SOURCES.glob("*.txt"))
CONFIG = load_label_config()
FIRST_TASK = {
    "data": {
        "text": "日前，上海市科委发布《关于支持外资企业高能级项目落地提升生物医药产业能级的若干措施（征求意见稿）》，"
        "提出多项措施促进生物医药外资企业高能级项目落地。",
        "section": "上海多措并举支持外资企业高能级项目落地提升生物医药产业能级",
        "clause_id": "d38815896344c605",
        "document": "上海多措并举支持外资企业高能级项目落地提升生物医药产业能级",
        "source": "000_bfb6d9dd505d3527.txt",
    }
}
LAST_TASK = {
    "data": {
        "text": "加强产业协同。支持龙头企业、高校、科研院所与孵化器建立战略合作，为在孵企业提供实验室、小试中试、"
        "检验检测、应用场景、供应链、市场渠道等专业技术服务及产业资源。",
        "section": "深圳多措并举促进科技型企业孵化器发展",
        "clause_id": "b2a52aaf0e6bcaa1",
        "document": "上海明确从三方面打造全球领先的高级别自动驾驶引领区",
        "source": "003_1ac979fa05646563.txt",
    }
}


def reference_task_file(documents: list[Document]) -> bytes:
    """The task file as `write_ls_tasks` wrote it before the refactor (its code, inlined)."""
    tasks = []
    written: set[str] = set()
    for doc in documents:
        source = doc.path.replace("\\", "/").rsplit("/", 1)[-1]
        for seg in doc.segments:
            if seg.id in written:
                continue
            written.add(seg.id)
            tasks.append(
                {
                    "data": {
                        "text": seg.text,
                        "section": seg.section,
                        "clause_id": seg.id,
                        "document": doc.title,
                        "source": source,
                    }
                }
            )
    return json.dumps(tasks, ensure_ascii=False, indent=1).encode("utf-8")


# The task file of `annotator ingest` ----------------------------------------------------------------
def test_the_seed_documents_task_file_is_byte_for_byte_todays(tmp_path):
    documents = ingest_paths(SEED_DOCUMENTS).documents
    out = tmp_path / "tasks.json"
    assert write_ls_tasks(documents, out) == 390
    data = out.read_bytes()
    assert data == reference_task_file(documents)
    # The file itself, as of the refactor (this also pins how the seed documents are segmented).
    assert (len(data), hashlib.sha256(data).hexdigest()) == (
        242422,
        "5c7f9e904b0e1b7787b26476c20a22de9f54221fb2efd26c24aafe9edc0db9e1",
    )
    tasks = json.loads(data)
    assert tasks[0] == FIRST_TASK and tasks[-1] == LAST_TASK
    assert all(list(t) == ["data"] for t in tasks)
    assert {tuple(t["data"]) for t in tasks} == {("text", "section", "clause_id", "document", "source")}


def test_a_clause_in_two_documents_is_written_once_in_order(tmp_path):
    shared = Segment("c1", "对符合条件的企业给予贷款贴息支持。", "")
    documents = [
        Document("d1", "in/a.txt", "甲", [shared, Segment("c2", "支持人才引进。", "二、人才")], 0),
        Document("d2", "in/sub/b.md", "乙", [Segment("c3", "加大研发投入。", "三、研发"), shared], 1),
    ]
    out = tmp_path / "nested" / "tasks.json"
    assert write_ls_tasks(documents, out) == 3
    data = out.read_bytes()
    assert data == reference_task_file(documents)
    assert data.decode("utf-8") == (
        "[\n"
        ' {\n  "data": {\n   "text": "对符合条件的企业给予贷款贴息支持。",\n   "section": "",\n'
        '   "clause_id": "c1",\n   "document": "甲",\n   "source": "a.txt"\n  }\n },\n'
        ' {\n  "data": {\n   "text": "支持人才引进。",\n   "section": "二、人才",\n'
        '   "clause_id": "c2",\n   "document": "甲",\n   "source": "a.txt"\n  }\n },\n'
        ' {\n  "data": {\n   "text": "加大研发投入。",\n   "section": "三、研发",\n'
        '   "clause_id": "c3",\n   "document": "乙",\n   "source": "b.md"\n  }\n }\n'
        "]"
    )


# The task data pushed to Label Studio ---------------------------------------------------------------
def test_pushed_task_data_keys_in_order():
    data = task_data("d38815896344c605", "对符合条件的企业给予贷款贴息支持。", "一、财政", CONFIG)
    assert list(data.items()) == [
        ("text", "对符合条件的企业给予贷款贴息支持。"),
        ("section", "一、财政"),
        ("clause_id", "d38815896344c605"),
    ]
    assert json.dumps(data, ensure_ascii=False) == (
        '{"text": "对符合条件的企业给予贷款贴息支持。", "section": "一、财政", "clause_id": "d38815896344c605"}'
    )


def test_pushed_task_data_without_a_section_has_an_empty_one():
    assert task_data("c1", "支持人才引进。", "", CONFIG) == {"text": "支持人才引进。", "section": "", "clause_id": "c1"}
    assert task_data("c1", "支持人才引进。", None, CONFIG)["section"] == ""  # a NULL section


def test_pushed_task_data_uses_the_labeling_configs_text_key():
    config = parse_label_config(CONFIG.xml.replace('value="$text"', 'value="$clause"'))
    assert config.value_key == "clause"
    data = task_data("c1", "支持人才引进。", "二、人才", config)
    assert list(data.items()) == [("clause", "支持人才引进。"), ("section", "二、人才"), ("clause_id", "c1")]


# The one home -------------------------------------------------------------------------------------------
def test_both_writers_build_the_data_in_task_format():
    """The task file's data is the pushed data plus the document and source, from the same function."""
    pushed = task_data("c1", "支持人才引进。", "二、人才", CONFIG)
    assert task_format.task_data("c1", "支持人才引进。", "二、人才") == pushed
    written = task_format.task_data("c1", "支持人才引进。", "二、人才", document="甲", source="a.txt")
    assert list(written.items()) == [*pushed.items(), ("document", "甲"), ("source", "a.txt")]
    assert list(task_format.task_data("c1", "x", "", source="a.txt")) == ["text", "section", "clause_id", "source"]


def test_task_wraps_data_then_predictions_in_order():
    data = task_format.task_data("c1", "支持人才引进。", "")
    assert task_format.task(data) == {"data": data}
    prediction = {"model_version": "policy-clf-v1", "score": 0.5, "result": []}
    assert list(task_format.task(data, (prediction,)).items()) == [("data", data), ("predictions", [prediction])]


def test_readers_use_the_same_keys():
    assert (
        task_format.TEXT_KEY,
        task_format.SECTION_KEY,
        task_format.CLAUSE_ID_KEY,
        task_format.DOCUMENT_KEY,
        task_format.SOURCE_KEY,
    ) == ("text", "section", "clause_id", "document", "source")


def test_data_of_reads_a_tasks_data_or_nothing():
    data = {"text": "支持人才引进。", "clause_id": "c1"}
    assert task_format.data_of({"id": 1, "data": data}) is data
    assert task_format.data_of({"id": 1}) == {} and task_format.data_of({"data": ["x"]}) == {}
    assert task_format.data_of({"data": None}) == {}
