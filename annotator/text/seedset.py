"""Read labeled files (the seed ``label<TAB>text`` TSV, CSV, JSONL) into cleaned multi-label examples.

Lines are grouped by normalized text into one example per clause. The report says what was noisy:
exact duplicate lines, near-duplicates (same text up to punctuation/spacing) whose label sets
conflict, unknown labels, and malformed lines, each with its line number and reason. Bad lines are
skipped; the rest of the file still loads.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from ..labels import unknown_label_message
from .normalize import clause_id, match_key, normalize_text
from ..types import Example

log = logging.getLogger(__name__)

MAX_TEXT_CHARS = 5000  # a clause longer than this is a whole document pasted by mistake
MIN_TEXT_CHARS = 4
_SURROGATE = re.compile("[\ud800-\udfff]")  # only a JSON escape such as "\\ud800" can produce one


@dataclass
class LoadReport:
    """What reading a labeled file found, line by line."""

    path: str
    n_lines: int = 0
    n_pairs: int = 0  # (label, text) pairs accepted
    exact_duplicates: int = 0  # lines repeating an earlier (label, text) pair
    problems: list[str] = field(default_factory=list)  # "line 12: reason"
    conflicts: list[dict] = field(default_factory=list)  # near-duplicates with different labels

    def to_dict(self) -> dict:
        return {
            "path": self.path,
            "n_lines": self.n_lines,
            "n_pairs": self.n_pairs,
            "exact_duplicates": self.exact_duplicates,
            "n_problems": len(self.problems),
            "problems": self.problems,
            "n_conflicts": len(self.conflicts),
            "conflicts": self.conflicts,
        }


@dataclass
class LabeledData:
    """Examples (one per normalized clause text) and the report of how they were read."""

    examples: list[Example]
    report: LoadReport

    @property
    def texts(self) -> list[str]:
        return [e.text for e in self.examples]


def read_labeled_file(path: str | Path, labels: tuple[str, ...]) -> LabeledData:
    """Read a labeled file and group it into multi-label examples.

    Parameters
    ----------
    path : path to ``.tsv`` (``label<TAB>text``), ``.csv`` (columns ``text`` and ``label`` or
        ``labels`` with ``|``/``;``-separated names) or ``.jsonl`` (``{"text": ..., "labels": [...]}``).
    labels : the project's label set; other labels are reported and skipped.

    Raises
    ------
    InputError
        If the file cannot be read at all (missing, not UTF-8/GB18030, empty, no usable line).
    """
    path = Path(path)
    text = _read_text(path)
    report = LoadReport(str(path))
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        rows = _jsonl_rows(text, report)
    elif suffix == ".csv":
        rows = _csv_rows(text, report)
    else:
        rows = _tsv_rows(text, report)
    known = set(labels)
    by_text: dict[str, set[str]] = defaultdict(set)
    first_line: dict[str, int] = {}
    seen_pairs: set[tuple[str, str]] = set()
    for line_no, raw_labels, raw_text in rows:
        norm = normalize_text(raw_text)
        if len(norm) < MIN_TEXT_CHARS:
            report.problems.append(f"line {line_no}: text is blank or too short ({len(norm)} characters)")
            continue
        if len(norm) > MAX_TEXT_CHARS:
            report.problems.append(
                f"line {line_no}: text has {len(norm):,} characters (limit {MAX_TEXT_CHARS:,}); "
                "split the document into clauses with `annotator ingest`"
            )
            continue
        accepted = []
        for label in raw_labels:
            label = normalize_text(label)
            if label not in known:
                report.problems.append(f"line {line_no}: {unknown_label_message(label, labels)}")
            else:
                accepted.append(label)
        for label in accepted:
            if (label, norm) in seen_pairs:
                report.exact_duplicates += 1
                continue
            seen_pairs.add((label, norm))
            report.n_pairs += 1
            by_text[norm].add(label)
            first_line.setdefault(norm, line_no)
    if not by_text:
        raise InputError(
            f"{path}: no usable labeled line ({len(report.problems)} problems: {'; '.join(report.problems[:3])})"
        )
    examples = [
        Example(clause_id(t), t, tuple(label for label in labels if label in by_text[t]), ("seed",))
        for t in sorted(by_text, key=first_line.__getitem__)
    ]
    report.conflicts = _conflicts(examples, first_line)
    log.info(
        "%s: %d examples from %d lines (%d duplicate pairs, %d problems, %d conflicts)",
        path,
        len(examples),
        report.n_lines,
        report.exact_duplicates,
        len(report.problems),
        len(report.conflicts),
    )
    return LabeledData(examples, report)


def _conflicts(examples: list[Example], first_line: dict[str, int]) -> list[dict]:
    """Near-duplicates: texts equal up to punctuation/spacing/case whose label sets differ."""
    groups: dict[str, list[Example]] = defaultdict(list)
    for ex in examples:
        groups[match_key(ex.text)].append(ex)
    out = []
    for group in groups.values():
        if len(group) > 1 and len({ex.labels for ex in group}) > 1:
            out.append(
                {
                    "lines": [first_line[ex.text] for ex in group],
                    "texts": [ex.text for ex in group],
                    "labels": [list(ex.labels) for ex in group],
                }
            )
    return out


def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from exc
    if not data.strip():
        raise InputError(f"{path}: file is empty")
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError as exc:
            error = exc
    raise InputError(
        f"{path}: not UTF-8 or GB18030 text (invalid byte 0x{data[error.start]:02x} at offset "
        f"{error.start}); save it as UTF-8"
    )


def _lines(text: str):
    """``(line_no, line)`` counting ``\\n`` only, like editors, ``grep -n`` and the csv module.

    ``str.splitlines`` would also break at form feeds, U+2028 and lone CRs, so the reported line
    numbers would not match what a person sees in the file.
    """
    lines = text.split("\n")
    if lines[-1] == "":  # the newline ending the last line does not start another
        lines.pop()
    for line_no, line in enumerate(lines, start=1):
        yield line_no, line.removesuffix("\r")


def _tsv_rows(text: str, report: LoadReport):
    for line_no, line in _lines(text):
        report.n_lines += 1
        if not line.strip():
            continue
        if "\t" not in line:
            report.problems.append(f"line {line_no}: no tab between label and text")
            continue
        label, _, body = line.partition("\t")
        if not label.strip():
            report.problems.append(f"line {line_no}: empty label")
            continue
        yield line_no, [label.strip()], body


def _split_labels(value) -> list[str]:
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    parts = str(value or "").translate({ord(c): "|" for c in ";；,，、"}).split("|")
    return [p.strip() for p in parts if p.strip()]


def _csv_rows(text: str, report: LoadReport):
    reader = csv.DictReader(io.StringIO(text))
    columns = set(reader.fieldnames or ())
    label_col = "labels" if "labels" in columns else "label" if "label" in columns else None
    if "text" not in columns or label_col is None:
        raise InputError(
            f"{report.path}: CSV needs a 'text' column and a 'label' or 'labels' column; "
            f"found {', '.join(sorted(columns)) or 'none'}"
        )
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:  # e.g. an unclosed quote that turns the rest of the file into one cell
            raise InputError(
                f"{report.path}: line {reader.reader.line_num}: unreadable CSV ({exc}); look for an "
                'unclosed " quote before this line'
            ) from None
        line_no = reader.line_num  # a quoted multi-line cell spans several lines
        report.n_lines += 1
        labels = _split_labels(row.get(label_col))
        if not labels:
            report.problems.append(f"line {line_no}: no label")
            continue
        yield line_no, labels, row.get("text") or ""


def _jsonl_rows(text: str, report: LoadReport):
    for line_no, line in _lines(text):
        report.n_lines += 1
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            report.problems.append(f"line {line_no}: invalid JSON ({exc.msg})")
            continue
        except RecursionError:
            report.problems.append(f"line {line_no}: invalid JSON (nested too deeply)")
            continue
        except ValueError:  # Python refuses to read an integer of more than 4300 digits
            report.problems.append(f"line {line_no}: invalid JSON (a number with more than 4300 digits)")
            continue
        if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
            report.problems.append(f"line {line_no}: expected an object with a string 'text'")
            continue
        labels = _split_labels(obj.get("labels", obj.get("label")))
        if not labels:
            report.problems.append(f"line {line_no}: no label")
            continue
        bad = next((m for v in (obj["text"], *labels) if (m := _SURROGATE.search(v))), None)
        if bad:
            report.problems.append(
                f"line {line_no}: unpaired UTF-16 surrogate \\u{ord(bad.group()):04x} "
                "(not a character); fix the escape in the file"
            )
            continue
        yield line_no, labels, obj["text"]
