"""Reading files into Documents: encodings, markup, directories, bad files, Label Studio tasks."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pytest

from annotator.errors import InputError
from annotator.text.ingest import ingest_paths, load_document, read_text_file, write_ls_tasks

SOURCES = Path(__file__).resolve().parents[2] / "tasks" / "sources"
NEWSLETTER = SOURCES / "000_bfb6d9dd505d3527.txt"


def segment_tuples(doc):
    return [(s.id, s.text, s.section, s.position) for s in doc.segments]


@pytest.fixture(scope="module")
def utf8_doc():
    return load_document(NEWSLETTER)


def test_load_document_fields(utf8_doc):
    assert utf8_doc.id == hashlib.sha1(NEWSLETTER.read_bytes()).hexdigest()[:16]
    assert utf8_doc.path == str(NEWSLETTER)
    assert utf8_doc.title == "上海多措并举支持外资企业高能级项目落地提升生物医药产业能级"
    assert len(utf8_doc.segments) == 87
    assert utf8_doc.dropped == 23


def test_gb18030_copy_gives_the_same_segments(tmp_path, utf8_doc):
    copy = tmp_path / NEWSLETTER.name
    copy.write_bytes(NEWSLETTER.read_text(encoding="utf-8").encode("gb18030"))
    doc = load_document(copy)
    assert segment_tuples(doc) == segment_tuples(utf8_doc)
    assert doc.title == utf8_doc.title
    assert doc.id != utf8_doc.id  # the id is of the bytes, which differ


def test_utf8_bom_and_crlf_give_the_same_segments(tmp_path, utf8_doc):
    copy = tmp_path / "bom.txt"
    text = NEWSLETTER.read_text(encoding="utf-8").replace("\n", "\r\n")
    copy.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    assert segment_tuples(load_document(copy)) == segment_tuples(utf8_doc)


def test_invalid_bytes_give_an_exact_error(tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_bytes("政策文本".encode() + b"\xff\xfe\xfd")
    with pytest.raises(InputError) as info:
        read_text_file(bad)
    assert str(info.value) == (f"{bad}: not UTF-8 or GB18030 text (invalid byte 0xff at offset 12); save it as UTF-8")


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("\ufeff政策文本".encode("utf-16-le"), "UTF-16 text (byte order mark at offset 0) is not supported"),
        ("policy 政策".encode("utf-16-le"), "not a text file (NUL byte at offset 1)"),
    ],
)
def test_utf16_and_binary_files_give_an_exact_error(tmp_path, content, problem):
    bad = tmp_path / "utf16.txt"
    bad.write_bytes(content)
    with pytest.raises(InputError) as info:
        read_text_file(bad)
    assert str(info.value) == f"{bad}: {problem}; save it as UTF-8"


@pytest.mark.parametrize("content", [b"", b"\xef\xbb\xbf", b" \r\n\n\t"])
def test_empty_file_error(tmp_path, content):
    empty = tmp_path / "empty.txt"
    empty.write_bytes(content)
    with pytest.raises(InputError) as info:
        read_text_file(empty)
    assert str(info.value) == f"{empty}: file is empty"


def test_directory_expansion_is_sorted_recursive_and_skips_hidden(tmp_path):
    text = NEWSLETTER.read_text(encoding="utf-8")
    blocks = text.split("江苏明确从")
    (tmp_path / "b.txt").write_text(blocks[0], encoding="utf-8")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.md").write_text("# 标题\n\n" + "江苏明确从" + blocks[1], encoding="utf-8")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "c.txt").write_text(text, encoding="utf-8")
    (tmp_path / "notes.csv").write_text("a,b\n", encoding="utf-8")
    result = ingest_paths([tmp_path])
    assert result.errors == []
    assert [Path(d.path).relative_to(tmp_path).as_posix() for d in result.documents] == [
        "b.txt",
        "sub/a.md",
    ]


def test_real_sources_directory():
    result = ingest_paths([SOURCES])
    assert result.errors == []
    names = [Path(d.path).name for d in result.documents]
    assert names == sorted(p.name for p in SOURCES.glob("*.txt"))
    assert all(d.segments for d in result.documents)


def test_bad_files_are_reported_and_the_rest_still_ingests(tmp_path):
    good = tmp_path / "good.txt"
    good.write_text(NEWSLETTER.read_text(encoding="utf-8"), encoding="utf-8")
    docx = tmp_path / "policy.docx"
    docx.write_bytes(b"PK\x03\x04")
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    missing = tmp_path / "missing.txt"
    duplicate = tmp_path / "copy.txt"
    duplicate.write_bytes(good.read_bytes())
    only_boilerplate = tmp_path / "nav.txt"
    only_boilerplate.write_text("您当前所在位置：首页 > 通知\n2025年1月1日\n", encoding="utf-8")
    result = ingest_paths([docx, good, empty, missing, duplicate, only_boilerplate])
    assert [Path(d.path).name for d in result.documents] == ["good.txt"]
    assert result.errors == [
        f"{docx}: unsupported file type '.docx'; supported: .txt, .md, .markdown, .html, .htm",
        f"{missing}: no such file or folder",
        f"{empty}: file is empty",
        f"{duplicate}: same content as {good}; skipped",
        f"{only_boilerplate}: no clauses found (2 lines dropped as boilerplate)",
    ]


@pytest.mark.timeout(120)  # a hang guard (catastrophic backtracking), not a speed goal: see bench/
def test_100k_characters_without_punctuation(tmp_path):
    rng = random.Random(0)
    text = "".join(rng.choice("科技创新产业金融人才园区政策支持企业研发平台转化基金") for _ in range(100_000))
    big = tmp_path / "big.txt"
    big.write_text(text, encoding="utf-8")
    doc = load_document(big, max_chars=250)
    assert "".join(s.text for s in doc.segments) == text
    assert all(len(s.text) <= 250 for s in doc.segments)
    assert len(doc.segments) == 400


def test_markdown_markup_is_stripped(tmp_path):
    md = tmp_path / "plan.md"
    md.write_text(
        "# 上海市促进创业投资行动方案\n\n"
        "## 一、主要任务\n\n"
        "- **加大财政支持**：对符合条件的创业投资机构给予最高500万元[奖励](http://example.com/a)。\n"
        "- 支持银行开展*投贷联动*业务，为科技型企业提供`信用贷款`。\n\n"
        "---\n\n"
        "![图片](img.png)\n",
        encoding="utf-8",
    )
    doc = load_document(md)
    assert doc.title == "上海市促进创业投资行动方案"
    assert [(s.section, s.text) for s in doc.segments] == [
        ("主要任务", "加大财政支持：对符合条件的创业投资机构给予最高500万元奖励。"),
        ("主要任务", "支持银行开展投贷联动业务，为科技型企业提供信用贷款。"),
    ]


def test_html_tags_scripts_and_styles_are_stripped(tmp_path):
    page = tmp_path / "page.html"
    page.write_text(
        "<html><head><title>政策 - 某市政府网站</title><style>p {color: red}</style>"
        "<script>var a = '支持企业';</script></head><body>"
        "<nav>首页 &gt; 政策</nav><h1>某市支持集成电路产业发展若干措施</h1>"
        "<div class='meta'>来源：市经信委</div>"
        "<p>一是加大研发支持。对企业研发投入给予最高&nbsp;1000万元补助。</p>"
        "<p>二是强化人才保障。<br>对引进的高层次人才给予安家补贴和住房保障。</p>"
        "<footer>版权所有 联系我们</footer></body></html>",
        encoding="gb18030",
    )
    doc = load_document(page)
    assert doc.title == "某市支持集成电路产业发展若干措施"
    assert [(s.section, s.text) for s in doc.segments] == [
        ("某市支持集成电路产业发展若干措施", "加大研发支持。对企业研发投入给予最高1000万元补助。"),
        ("某市支持集成电路产业发展若干措施", "强化人才保障。对引进的高层次人才给予安家补贴和住房保障。"),
    ]


def test_write_ls_tasks(tmp_path, utf8_doc):
    second = tmp_path / "second.txt"
    second.write_text(
        NEWSLETTER.read_text(encoding="utf-8") + "\n附加一段新的政策文本，支持企业开展研发活动。\n",
        encoding="utf-8",
    )
    docs = [utf8_doc, load_document(second)]
    out = tmp_path / "out" / "tasks.json"
    n = write_ls_tasks(docs, out)
    assert n == len(utf8_doc.segments) + 1  # clauses already written are not repeated
    raw = out.read_text(encoding="utf-8")
    assert "上海多措并举" in raw  # ensure_ascii=False: Chinese is stored as is
    tasks = json.loads(raw)
    assert len(tasks) == n
    first = utf8_doc.segments[0]
    assert tasks[0] == {
        "data": {
            "text": first.text,
            "section": first.section,
            "clause_id": first.id,
            "document": utf8_doc.title,
            "source": NEWSLETTER.name,
        }
    }
    assert tasks[-1]["data"]["source"] == "second.txt"
    assert sorted(p.name for p in out.parent.iterdir()) == ["tasks.json"]  # no temp file left


# --------------------------------------------------------------------------- --tasks-out replaces only files (issue 16)


@pytest.mark.parametrize("kind", ["folder", "symlink", "fifo", "socket", "device"])
def test_tasks_out_never_replaces_what_is_not_a_regular_file(tmp_path, utf8_doc, kind):
    import os
    import socket
    import stat as stat_module

    target = tmp_path / "tasks.json"
    expected_kind = {
        "folder": "a folder",
        "symlink": "a symlink",
        "fifo": "a FIFO",
        "socket": "a socket",
        "device": "a device",
    }[kind]
    if kind == "folder":
        target.mkdir()
    elif kind == "symlink":
        (tmp_path / "real.json").write_text("[]")
        target.symlink_to(tmp_path / "real.json")
    elif kind == "fifo":
        os.mkfifo(target)
    elif kind == "socket":
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(target))
        sock.close()
    else:
        target = Path("/dev/null")
    before = os.lstat(target)
    with pytest.raises(InputError) as err:
        write_ls_tasks([utf8_doc], target)
    assert str(err.value) == (
        f"--tasks-out {target} is {expected_kind}; only a regular file is replaced; choose a "
        "file path such as <home>/tasks.json (the default)"
    )
    after = os.lstat(target)
    assert (stat_module.S_IFMT(after.st_mode), after.st_ino) == (stat_module.S_IFMT(before.st_mode), before.st_ino)
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".tasks.json.")]  # no temp file left


def test_tasks_out_replaces_an_existing_regular_file(tmp_path, utf8_doc):
    out = tmp_path / "tasks.json"
    out.write_text("old")
    assert write_ls_tasks([utf8_doc], out) == len(utf8_doc.segments)
    assert json.loads(out.read_text(encoding="utf-8"))[0]["data"]["clause_id"] == utf8_doc.segments[0].id


def test_output_files_are_checked_before_the_work(tmp_path):
    from annotator.text.ingest import check_output_file

    assert check_output_file(tmp_path / "out.json", "--out") == tmp_path / "out.json"
    with pytest.raises(InputError) as err:
        check_output_file(tmp_path / "missing" / "out.json", "--out")
    assert str(err.value) == (
        f"--out {tmp_path / 'missing' / 'out.json'}: the folder {tmp_path / 'missing'} does "
        "not exist; create it or choose another path"
    )
    with pytest.raises(InputError) as err:
        check_output_file(tmp_path, "--plot")
    assert str(err.value) == (
        f"--plot {tmp_path} is a folder; only a regular file is replaced; choose a file path in a folder that exists"
    )
