"""Fuzzing the labeled-file importer (``read_labeled_file`` and ``annotator import-labels``).

Files are built from real seed lines in the three formats (TSV, CSV, JSONL), then broken: tabs
dropped, unknown labels, wrong JSON types, junk bytes, deep nesting, huge numbers, unpaired
surrogates, over-long cells, GBK/GB18030/UTF-16 encodings. The property: the file loads with every
bad line reported as ``line N: reason`` (N a real line of the file), or it is refused with an
InputError naming the file; never another exception, and a refused file leaves the store unchanged.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections import Counter

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from annotator import InputError, Settings, Store
from annotator.cli import main
from annotator.cycle.project import import_labels

from ..conftest import report_line, seed_lines

FUZZ = hsettings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
LABELS = Settings().labels
TABLES = ("clauses", "annotations", "annotation_history")
PAIRS = [tuple(line.split("\t", 1)) for line in seed_lines(30, seed=5)]
PROBLEM = re.compile(r"^line (\d+): \S")
RUN = Counter()


@pytest.fixture(scope="module", autouse=True)
def report_case_count(request):
    yield
    report_line(request.config, f"\nfuzz_import cases: {sum(RUN.values())} {dict(RUN)}")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz_import")


@pytest.fixture(scope="module")
def store(workdir):
    with Store(workdir / "annotator.db") as s:
        seed = workdir / "seed.tsv"
        seed.write_text("\n".join(seed_lines(20)) + "\n", encoding="utf-8")
        import_labels(s, seed, LABELS)
        yield s


def snapshot(db_path) -> dict:
    con = sqlite3.connect(db_path)
    try:
        return {t: con.execute(f"SELECT * FROM {t} ORDER BY id").fetchall() for t in TABLES}
    finally:
        con.close()


# Strategies ------------------------------------------------------------------------------------
any_text = st.text(
    st.characters(blacklist_categories=())
    | st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
    | st.sampled_from("\t\n\r,\"'|;；、\x00\x0b\x0c\u2028\ufeff"),
    max_size=16,
)
scalars = st.none() | st.booleans() | st.integers() | st.floats() | any_text
json_values = st.recursive(
    scalars, lambda kids: st.lists(kids, max_size=3) | st.dictionaries(any_text, kids, max_size=3), max_leaves=6
)
label = st.sampled_from(LABELS) | st.sampled_from(["财政补助", "", " 企业 ", "企业|园区", "企业；园区"]) | any_text
text = st.sampled_from([t for _, t in PAIRS]) | any_text | st.sampled_from(["短", "长" * 5001, "  "])


@st.composite
def tsv_line(draw):
    kind = draw(st.sampled_from(["real", "real", "label", "text", "no tab", "junk"]))
    real_label, real_text = draw(st.sampled_from(PAIRS))
    if kind == "real":
        return f"{real_label}\t{real_text}"
    if kind == "label":
        return f"{draw(label)}\t{real_text}"
    if kind == "text":
        return f"{real_label}\t{draw(text)}"
    if kind == "no tab":
        return real_text
    return draw(any_text)


def csv_cell(value: str) -> str:
    return '"' + value.replace('"', '""') + '"' if any(c in value for c in ',"\n\r') else value


@st.composite
def csv_file(draw):
    header = draw(st.sampled_from(["text,labels", "label,text", "text,label,extra", "content,category", "text", ""]))
    rows = []
    for _ in range(draw(st.integers(0, 6))):
        real_label, real_text = draw(st.sampled_from(PAIRS))
        cells = [
            csv_cell(draw(st.sampled_from([real_text, real_text]) | text)),
            csv_cell(draw(st.sampled_from([real_label]) | label)),
        ]
        if "label,text" in header:
            cells.reverse()
        if draw(st.integers(0, 9)) == 0:
            cells = [draw(any_text)]  # a row with the wrong number of cells (or raw junk)
        rows.append(",".join(cells))
    if draw(st.integers(0, 9)) == 0:
        rows.append('"' + "字" * 140_000 + '",企业')  # a cell beyond the csv module's field limit
    return "\n".join([header, *rows])


@st.composite
def jsonl_line(draw):
    kind = draw(st.sampled_from(["real", "real", "mutated", "junk", "nested", "huge int", "surrogate"]))
    real_label, real_text = draw(st.sampled_from(PAIRS))
    obj = {"text": real_text, draw(st.sampled_from(["labels", "label"])): [real_label]}
    if kind == "mutated":
        key = draw(st.sampled_from(["text", "labels", "label", "extra"]))
        if draw(st.booleans()):
            obj.pop(key, None)
        else:
            obj[key] = draw(json_values | label | st.lists(label, max_size=3))
        if draw(st.integers(0, 4)) == 0:
            obj = draw(json_values)
    elif kind == "junk":
        return draw(any_text).replace("\n", " ")
    elif kind == "nested":
        depth = draw(st.sampled_from([10, 2000, 100_000]))
        return "[" * depth + "]" * depth
    elif kind == "huge int":
        return '{"text": "%s", "labels": %s}' % (real_text, "9" * draw(st.integers(4301, 6000)))
    elif kind == "surrogate":
        return '{"text": "\\ud800%s", "labels": ["%s"]}' % (real_text, real_label)
    return json.dumps(obj)


@st.composite
def labeled_file(draw):
    """``(suffix, bytes)`` of a labeled file in one of the formats, possibly broken."""
    suffix = draw(st.sampled_from([".tsv", ".csv", ".jsonl", ".txt"]))
    if suffix == ".csv":
        content = draw(csv_file())
    else:
        lines = draw(st.lists(jsonl_line() if suffix == ".jsonl" else tsv_line(), max_size=6))
        content = draw(st.sampled_from(["\n", "\r\n"])).join(lines)
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8-sig", "gbk", "gb18030", "utf-16", "junk"]))
    if encoding == "junk":
        return suffix, draw(st.binary(max_size=80))
    return suffix, content.encode(encoding, "surrogatepass" if encoding.startswith("utf") else "replace")


def n_physical_lines(data: bytes) -> int:
    return data.count(b"\n") + 1


# The tests -------------------------------------------------------------------------------------
@FUZZ
@given(case=labeled_file())
def test_files_load_with_line_numbered_problems_or_are_refused_cleanly(workdir, store, case):
    suffix, data = case
    path = workdir / f"labels{suffix}"
    path.write_bytes(data)
    before = snapshot(store.path)
    try:
        report = import_labels(store, path, LABELS)
    except InputError as exc:
        assert str(exc).startswith((f"{path}: ", f"cannot read {path}")), str(exc)
        assert snapshot(store.path) == before
        RUN["refused"] += 1
        return
    assert report.examples >= 1 and report.n_problems == len(report.problems)
    for problem in report.problems:
        match = PROBLEM.match(problem)
        assert match, problem
        assert 1 <= int(match.group(1)) <= n_physical_lines(data.replace(b"\r\n", b"\n")), problem
    RUN["loaded"] += 1


@hsettings(FUZZ, max_examples=40)
@given(case=labeled_file())
def test_the_cli_answers_a_summary_or_a_one_line_error(workdir, case):
    suffix, data = case
    path = workdir / f"cli{suffix}"
    path.write_bytes(data)
    home = workdir / "cli-home"
    before = snapshot(home / "annotator.db") if (home / "annotator.db").exists() else None
    result = CliRunner().invoke(main, ["--home", str(home), "import-labels", str(path)])
    assert result.exit_code in (0, 1), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    if result.exit_code == 1:
        assert result.output.startswith(("Error: " + str(path), "Error: cannot read " + str(path))), result.output
        if before is not None:
            assert snapshot(home / "annotator.db") == before
    RUN[f"cli exit {result.exit_code}"] += 1
