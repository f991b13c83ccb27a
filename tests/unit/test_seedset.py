"""seedset: labeled TSV/CSV/JSONL files become one multi-label example per clause, with a line-numbered report."""

from __future__ import annotations

import json

import pytest

from annotator import InputError
from annotator.labels import load_label_config
from annotator.text.normalize import clause_id
from annotator.text.seedset import MAX_TEXT_CHARS, read_labeled_file
from tests.conftest import seed_lines

LABELS = load_label_config().labels
LOAN = "对符合条件的企业给予贷款贴息支持。"
FUND = "设立专项资金支持科技成果转化。"


def write(path, text: str, encoding: str = "utf-8"):
    path.write_bytes(text.encode(encoding))
    return path


def test_tsv_groups_labels_of_one_text_in_label_set_order(tmp_path):
    path = write(tmp_path / "s.tsv", f"财政支持\t{LOAN}\n金融支持\t{LOAN}\n企业\t{FUND}\n")
    data = read_labeled_file(path, LABELS)
    assert [(e.text, e.labels) for e in data.examples] == [(LOAN, ("金融支持", "财政支持")), (FUND, ("企业",))]
    assert data.examples[0].id == clause_id(LOAN) and data.examples[0].sources == ("seed",)
    assert data.texts == [LOAN, FUND]
    r = data.report
    assert (r.n_lines, r.n_pairs, r.exact_duplicates, r.problems, r.conflicts) == (3, 3, 0, [], [])


def test_tiny_corpus_reads_300_clauses_cleanly(tiny_corpus):
    data = read_labeled_file(tiny_corpus, LABELS)
    assert len(data.examples) == 300
    assert data.report.problems == []
    n_lines = len(tiny_corpus.read_text(encoding="utf-8").splitlines())
    assert data.report.n_lines == n_lines
    assert data.report.n_pairs + data.report.exact_duplicates == n_lines  # the seed file repeats some lines
    assert all(e.labels and set(e.labels) <= set(LABELS) for e in data.examples)


def test_texts_equal_after_normalization_are_one_example(tmp_path):
    path = write(tmp_path / "s.tsv", f"财政支持\t对符合条件的企业给予贷款 贴息支持。\n金融支持\t{LOAN}\n")
    data = read_labeled_file(path, LABELS)
    assert [(e.text, e.labels) for e in data.examples] == [(LOAN, ("金融支持", "财政支持"))]


def test_problem_lines_are_reported_by_number_and_the_rest_loads(tmp_path):
    path = write(
        tmp_path / "s.tsv",
        "\n".join(
            [
                f"财政支持\t{LOAN}",
                f"财政支持\t{LOAN}",  # 2: exact duplicate
                "没有制表符的一行文字",  # 3
                f"财政补助\t{FUND}",  # 4: unknown label
                "\t空标签的一行文字",  # 5
                "企业\t短",  # 6
                "",  # 7: blank lines are fine
                f"企业\t{'长' * (MAX_TEXT_CHARS + 1)}",  # 8
                f"企业\t{FUND}",
            ]
        )
        + "\n",
    )
    data = read_labeled_file(path, LABELS)
    assert [(e.text, e.labels) for e in data.examples] == [(LOAN, ("财政支持",)), (FUND, ("企业",))]
    r = data.report
    assert r.n_lines == 9 and r.n_pairs == 2 and r.exact_duplicates == 1
    assert r.problems == [
        "line 3: no tab between label and text",
        f"line 4: label '财政补助' is not in the label set; did you mean '财政支持'? known: {', '.join(LABELS)}",
        "line 5: empty label",
        "line 6: text is blank or too short (1 characters)",
        "line 8: text has 5,001 characters (limit 5,000); split the document into clauses with `annotator ingest`",
    ]
    summary = r.to_dict()
    assert summary["n_problems"] == 5 and summary["n_conflicts"] == 0 and summary["path"] == str(path)


def test_near_duplicates_with_different_labels_are_conflicts(tmp_path):
    path = write(tmp_path / "s.tsv", f"财政支持\t{LOAN}\n金融支持\t{LOAN}\n企业\t对符合条件的企业, 给予贷款贴息支持\n")
    data = read_labeled_file(path, LABELS)
    assert data.report.conflicts == [
        {
            "lines": [1, 3],
            "texts": [LOAN, "对符合条件的企业，给予贷款贴息支持"],
            "labels": [["金融支持", "财政支持"], ["企业"]],
        }
    ]
    assert len(data.examples) == 2  # both kept; the report says which lines to look at


def test_near_duplicates_with_the_same_labels_are_not_conflicts(tmp_path):
    path = write(tmp_path / "s.tsv", f"企业\t{LOAN}\n企业\t对符合条件的企业给予贷款贴息支持\n")
    assert read_labeled_file(path, LABELS).report.conflicts == []


@pytest.mark.parametrize("encoding", ["gbk", "gb18030", "utf-8-sig"])
def test_chinese_legacy_encodings_and_bom_are_read(tmp_path, encoding):
    path = write(tmp_path / "s.tsv", f"财政支持\t{LOAN}\r\n企业\t{FUND}\r\n", encoding)
    data = read_labeled_file(path, LABELS)
    assert [(e.text, e.labels) for e in data.examples] == [(LOAN, ("财政支持",)), (FUND, ("企业",))]


def test_csv_with_labels_column(tmp_path):
    path = write(tmp_path / "s.csv", f'text,labels\n{LOAN},财政支持|金融支持\n"{FUND}",企业；\n{FUND},\n')
    data = read_labeled_file(path, LABELS)
    assert [(e.text, e.labels) for e in data.examples] == [(LOAN, ("金融支持", "财政支持")), (FUND, ("企业",))]
    assert data.report.problems == ["line 4: no label"]


@pytest.mark.parametrize(
    "cell", ["财政支持;金融支持", "财政支持；金融支持", "财政支持、金融支持", '"财政支持，金融支持"']
)
def test_csv_label_separators_typed_in_chinese_or_english(tmp_path, cell):
    path = write(tmp_path / "s.csv", f"label,text\n{cell},{LOAN}\n")
    data = read_labeled_file(path, LABELS)
    assert data.examples[0].labels == ("金融支持", "财政支持") and data.report.problems == []


def test_csv_without_the_needed_columns(tmp_path):
    path = write(tmp_path / "s.csv", f"content,category\n{LOAN},企业\n")
    with pytest.raises(InputError) as info:
        read_labeled_file(path, LABELS)
    assert str(info.value) == (
        f"{path}: CSV needs a 'text' column and a 'label' or 'labels' column; found category, content"
    )


def test_jsonl_rows_and_their_problems(tmp_path):
    path = write(
        tmp_path / "s.jsonl",
        "\n".join(
            [
                json.dumps({"text": LOAN, "labels": ["财政支持", "金融支持"]}, ensure_ascii=False),
                "not json",
                "[1, 2]",
                json.dumps({"text": FUND}, ensure_ascii=False),
                json.dumps({"text": FUND, "label": "企业"}, ensure_ascii=False),
            ]
        )
        + "\n",
    )
    data = read_labeled_file(path, LABELS)
    assert [(e.text, e.labels) for e in data.examples] == [(LOAN, ("金融支持", "财政支持")), (FUND, ("企业",))]
    assert data.report.problems == [
        "line 2: invalid JSON (Expecting value)",
        "line 3: expected an object with a string 'text'",
        "line 4: no label",
    ]


def test_missing_file(tmp_path):
    missing = tmp_path / "none.tsv"
    with pytest.raises(InputError) as info:
        read_labeled_file(missing, LABELS)
    assert str(info.value) == f"cannot read {missing}: No such file or directory"


@pytest.mark.parametrize("content", [b"", b"  \n\n"])
def test_empty_file(tmp_path, content):
    path = tmp_path / "empty.tsv"
    path.write_bytes(content)
    with pytest.raises(InputError) as info:
        read_labeled_file(path, LABELS)
    assert str(info.value) == f"{path}: file is empty"


def test_binary_file_names_the_bad_byte(tmp_path):
    path = tmp_path / "bin.tsv"
    path.write_bytes(b"\xff\xfe\xff\x00")
    with pytest.raises(InputError) as info:
        read_labeled_file(path, LABELS)
    assert str(info.value) == f"{path}: not UTF-8 or GB18030 text (invalid byte 0xff at offset 0); save it as UTF-8"


def test_file_without_a_usable_line_says_why(tmp_path):
    path = write(tmp_path / "s.tsv", "只有文字没有标签\n财政补助\t" + LOAN + "\n")
    with pytest.raises(InputError) as info:
        read_labeled_file(path, LABELS)
    assert str(info.value).startswith(
        f"{path}: no usable labeled line (2 problems: line 1: no tab between label and text; "
        "line 2: label '财政补助' is not in the label set; did you mean '财政支持'?"
    )


def test_label_outside_a_smaller_label_set_is_reported(tmp_path):
    path = write(tmp_path / "s.tsv", "\n".join(seed_lines(5)) + "\n")
    data = read_labeled_file(path, ("企业", "园区"))
    assert all(set(e.labels) <= {"企业", "园区"} for e in data.examples)
    assert all(p.split(": ", 1)[1].startswith("label '") for p in data.report.problems)


def test_csv_line_numbers_count_lines_inside_quoted_text(tmp_path):
    path = write(tmp_path / "s.csv", f'text,label\n"{LOAN}\n第二行",企业\n{FUND},\n')
    assert read_labeled_file(path, LABELS).report.problems == ["line 4: no label"]


# Regressions found by tests/unit/test_fuzz_import.py ------------------------------------------
def test_a_csv_cell_beyond_the_csv_field_limit_is_an_input_error(tmp_path):
    # Was an unhandled _csv.Error; an unclosed quote makes the rest of a file one giant cell.
    path = write(tmp_path / "s.csv", f'text,label\n{LOAN},企业\n"{"字" * 140_000},企业\n')
    with pytest.raises(InputError) as info:
        read_labeled_file(path, LABELS)
    assert str(info.value) == (
        f"{path}: line 3: unreadable CSV (field larger than field limit (131072)); "
        'look for an unclosed " quote before this line'
    )


@pytest.mark.parametrize(
    "line, problem",
    [
        ("[" * 100_000 + "]" * 100_000, "line 1: invalid JSON (nested too deeply)"),  # was RecursionError
        (
            '{"text": "x", "labels": ' + "9" * 5000 + "}",  # was ValueError (int max str digits)
            "line 1: invalid JSON (a number with more than 4300 digits)",
        ),
        (
            json.dumps({"text": "\ud800" + LOAN, "labels": ["企业"]}),  # was UnicodeEncodeError in clause_id
            "line 1: unpaired UTF-16 surrogate \\ud800 (not a character); fix the escape in the file",
        ),
        (
            json.dumps({"text": LOAN, "labels": ["企\udc00业"]}),
            "line 1: unpaired UTF-16 surrogate \\udc00 (not a character); fix the escape in the file",
        ),
    ],
)
def test_hostile_jsonl_lines_are_reported_and_the_rest_loads(tmp_path, line, problem):
    good = json.dumps({"text": FUND, "labels": ["企业"]}, ensure_ascii=False)
    data = read_labeled_file(write(tmp_path / "s.jsonl", f"{line}\n{good}\n"), LABELS)
    assert data.report.problems == [problem]
    assert [(e.text, e.labels) for e in data.examples] == [(FUND, ("企业",))]


@pytest.mark.parametrize("separator", ["\x0c", "\x0b", "\u2028", "\x1c", "\r"])
def test_line_numbers_count_newlines_only(tmp_path, separator):
    # str.splitlines() also broke lines at these characters, so "line N" pointed past the real line.
    path = write(tmp_path / "s.tsv", f"企业\t{LOAN}{separator}第二句\n没有制表符的一行文字\n企业\t{FUND}\n")
    data = read_labeled_file(path, LABELS)
    assert data.report.problems == ["line 2: no tab between label and text"]
    assert data.report.n_lines == 3 and len(data.examples) == 2
