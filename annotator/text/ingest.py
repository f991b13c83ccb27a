"""Read policy documents (.txt, .md, .html) into :class:`~annotator.types.Document` objects.

Files are decoded as UTF-8 (with or without BOM) or else GB18030, which covers GBK and GB2312.
Markdown and HTML markup is stripped with block boundaries kept as line breaks, then the text
goes through :func:`annotator.text.segment.segment_text`. Nothing here touches the database: the
caller stores the documents, or writes them as Label Studio tasks with :func:`write_ls_tasks`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import stat
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

from ..errors import InputError
from ..task_format import task, task_data
from .normalize import normalize_text
from .segment import DEFAULT_MAX_CHARS, DEFAULT_MIN_CHARS, segment_text
from ..types import Document

logger = logging.getLogger(__name__)

TEXT_SUFFIXES = (".txt",)
MARKDOWN_SUFFIXES = (".md", ".markdown")
HTML_SUFFIXES = (".html", ".htm")
SUPPORTED_SUFFIXES = TEXT_SUFFIXES + MARKDOWN_SUFFIXES + HTML_SUFFIXES

_UTF8_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class IngestResult:
    """What :func:`ingest_paths` read, and one message per file it could not read."""

    documents: list[Document] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def read_text_file(path: str | Path) -> str:
    """Return the plain text of a .txt, .md or .html file.

    Parameters
    ----------
    path : str or Path
        The file. Markdown (``.md``) loses its markup (``#``, emphasis, links keep their text);
        HTML (``.html``/``.htm``) loses tags, scripts and styles; block elements become line breaks.

    Returns
    -------
    str
        The decoded text with ``\\n`` line ends.

    Raises
    ------
    InputError
        If the file cannot be read, is empty, or is neither UTF-8 nor GB18030 text.

    Examples
    --------
    >>> read_text_file("tasks/sources/000_bfb6d9dd505d3527.txt")[:5]
    ' 科创聚焦'
    """
    return _read(Path(path))[0]


def load_document(
    path: str | Path, *, min_chars: int = DEFAULT_MIN_CHARS, max_chars: int = DEFAULT_MAX_CHARS
) -> Document:
    """Read and segment one file.

    Parameters
    ----------
    path : str or Path
        A .txt, .md or .html file.
    min_chars, max_chars : int
        Clause length bounds, passed to :func:`annotator.text.segment.segment_text`.

    Returns
    -------
    Document
        ``id`` is 16 hex digits of the SHA-1 of the file's bytes (the same file always gets
        the same id); ``title`` is the first heading (a Markdown ``#`` heading, an HTML ``<h1>``
        or ``<title>``, or the first title-like line), else the file name without extension.

    Raises
    ------
    InputError
        If the file cannot be read or decoded, or its type is not supported.

    Examples
    --------
    >>> doc = load_document("tasks/sources/002_29efa1d661e0c9cf.txt")
    >>> doc.title, len(doc.segments) > 50
    ('长三角每周要讯2025(9)', True)
    """
    path = Path(path)
    text, markup_title, data = _read(path)
    result = segment_text(text, min_chars=min_chars, max_chars=max_chars)
    title = markup_title or result.title or path.stem
    doc = Document(
        id=hashlib.sha1(data).hexdigest()[:16],
        path=str(path),
        title=title,
        segments=result.segments,
        dropped=len(result.dropped),
    )
    logger.info("%s: %d segments, %d lines dropped %s", path, len(doc.segments), doc.dropped, result.dropped_counts())
    return doc


def ingest_paths(
    paths: Iterable[str | Path],
    *,
    min_chars: int = DEFAULT_MIN_CHARS,
    max_chars: int = DEFAULT_MAX_CHARS,
) -> IngestResult:
    """Load every file named, expanding directories; a bad file is reported, not fatal.

    Parameters
    ----------
    paths : iterable of str or Path
        Files and directories. A directory contributes its .txt, .md and .html files (searched
        recursively, hidden files and folders skipped) in sorted order.
    min_chars, max_chars : int
        Clause length bounds, passed to :func:`annotator.text.segment.segment_text`.

    Returns
    -------
    IngestResult
        The documents in input order, and one message per file that could not be used (missing,
        unsupported type, undecodable, empty, or the same bytes as an earlier file).

    Examples
    --------
    >>> result = ingest_paths(["tasks/sources"])
    >>> len(result.documents), result.errors
    (4, [])
    """
    result = IngestResult()
    seen: dict[str, str] = {}  # document id -> path of the first file with those bytes
    for path in _expand(paths, result.errors):
        try:
            doc = load_document(path, min_chars=min_chars, max_chars=max_chars)
        except InputError as exc:
            result.errors.append(str(exc))
            logger.warning("%s", exc)
            continue
        if not doc.segments:
            message = f"{path}: no clauses found ({doc.dropped} lines dropped as boilerplate)"
            result.errors.append(message)
            logger.warning("%s", message)
            continue
        if doc.id in seen:
            message = f"{path}: same content as {seen[doc.id]}; skipped"
            result.errors.append(message)
            logger.warning("%s", message)
            continue
        seen[doc.id] = str(path)
        result.documents.append(doc)
    return result


def write_ls_tasks(documents: Sequence[Document], out_path: str | Path) -> int:
    """Write the documents' clauses as a Label Studio task list (JSON), atomically.

    Each task is ``{"data": {"text", "section", "clause_id", "document", "source"}}``
    (:func:`annotator.task_format.task_data`) where ``document`` is the document title and ``source``
    its file name. A clause that occurs in
    several documents is written once (first occurrence), so it is labeled once.

    Parameters
    ----------
    documents : sequence of Document
        Documents from :func:`load_document` or :func:`ingest_paths`.
    out_path : str or Path
        The JSON file; its folder is created if needed. The file is written to a temporary
        file in the same folder and moved into place, so readers never see half a file. Only a
        regular file is replaced (see :func:`check_tasks_out`).

    Returns
    -------
    int
        The number of tasks written.

    Examples
    --------
    >>> import os, tempfile
    >>> docs = ingest_paths(["tasks/sources"]).documents
    >>> write_ls_tasks(docs, os.path.join(tempfile.mkdtemp(), "tasks.json")) > 300
    True
    """
    tasks = []
    written: set[str] = set()
    for doc in documents:
        source = Path(doc.path).name
        for seg in doc.segments:
            if seg.id in written:
                continue
            written.add(seg.id)
            tasks.append(task(task_data(seg.id, seg.text, seg.section, document=doc.title, source=source)))
    out = check_tasks_out(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(tasks, fh, ensure_ascii=False, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        check_tasks_out(out)  # it may have been replaced by something else while we wrote
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    logger.info("wrote %d tasks to %s", len(tasks), out)
    return len(tasks)


# What a refused --tasks-out suggests instead: the default task file of `annotator ingest`.
_TASKS_OUT_EXAMPLE = "such as <home>/tasks.json (the default)"


def check_tasks_out(out_path: str | Path) -> Path:
    """``out_path`` as a Path if a task file may be written there: nothing there yet, or a regular file.

    A directory, a symlink, a device node, a FIFO or a socket is never replaced (as root, replacing
    ``/dev/sda`` with a JSON file is one typo away). Call it before the work starts.

    Raises
    ------
    InputError
        Naming the path and what it is.
    """
    out = Path(out_path)
    try:
        mode = os.lstat(out).st_mode
    except FileNotFoundError:
        return out
    except OSError as exc:
        raise InputError(f"--tasks-out {out}: cannot check it ({exc.strerror}); choose another path") from None
    if stat.S_ISREG(mode):
        return out
    kind = (
        "a folder"
        if stat.S_ISDIR(mode)
        else "a symlink"
        if stat.S_ISLNK(mode)
        else "a device"
        if stat.S_ISBLK(mode) or stat.S_ISCHR(mode)
        else "a FIFO"
        if stat.S_ISFIFO(mode)
        else "a socket"
        if stat.S_ISSOCK(mode)
        else "not a regular file"
    )
    raise InputError(
        f"--tasks-out {out} is {kind}; only a regular file is replaced; choose a file path {_TASKS_OUT_EXAMPLE}"
    )


def check_output_file(out_path: str | Path, option: str) -> Path:
    """``out_path`` as a Path if a command can write its output there; call it before the work starts.

    The path must be a regular file or not exist yet (:func:`check_tasks_out`'s rule), in a folder
    that exists and is writable, so a long run (``simulate --out/--plot``) never ends in an error
    about where to put its result.

    Raises
    ------
    InputError
        Naming ``option``, the path and what is wrong with it.
    """
    out = Path(out_path)
    try:
        check_tasks_out(out)
    except InputError as exc:
        raise InputError(
            str(exc).replace("--tasks-out", option, 1).replace(_TASKS_OUT_EXAMPLE, "in a folder that exists")
        ) from None
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        raise InputError(f"{option} {out}: the folder {folder} does not exist; create it or choose another path")
    if not os.access(folder, os.W_OK | os.X_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise InputError(f"{option} {out} cannot be written (permission denied); choose another path")
    return out


def _expand(paths: Iterable[str | Path], errors: list[str]) -> list[Path]:
    """Files to load, in order: files as given, directories expanded; problems go to ``errors``."""
    files: list[Path] = []
    for item in paths:
        path = Path(item)
        if path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and p.suffix.lower() in SUPPORTED_SUFFIXES
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            if not found:
                errors.append(f"{path}: no {', '.join(SUPPORTED_SUFFIXES)} files in this folder")
            files.extend(found)
        elif not path.exists():
            errors.append(f"{path}: no such file or folder")
        elif path.suffix.lower() not in SUPPORTED_SUFFIXES:
            errors.append(f"{path}: unsupported file type '{path.suffix}'; supported: {', '.join(SUPPORTED_SUFFIXES)}")
        else:
            files.append(path)
    return files


def _read(path: Path) -> tuple[str, str, bytes]:
    """Return (plain text, title from markup or "", raw bytes) of a supported file."""
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise InputError(f"{path}: unsupported file type '{path.suffix}'; supported: {', '.join(SUPPORTED_SUFFIXES)}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read file ({exc.strerror or exc})") from exc
    text = _decode(data, path)
    if suffix in MARKDOWN_SUFFIXES:
        text, title = _strip_markdown(text)
    elif suffix in HTML_SUFFIXES:
        text, title = _strip_html(text)
    else:
        title = ""
    return text, title, data


def _decode(data: bytes, path: Path) -> str:
    """Decode UTF-8 (BOM optional) or GB18030; raise InputError naming the first bad byte."""
    if not data.strip(b" \t\r\n" + _UTF8_BOM):
        raise InputError(f"{path}: file is empty")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InputError(f"{path}: UTF-16 text (byte order mark at offset 0) is not supported; save it as UTF-8")
    nul = data.find(b"\x00")
    if nul >= 0:
        raise InputError(f"{path}: not a text file (NUL byte at offset {nul}); save it as UTF-8")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as utf8_error:
        try:
            text = data.decode("gb18030")
        except UnicodeDecodeError:
            bad = data[utf8_error.start]
            raise InputError(
                f"{path}: not UTF-8 or GB18030 text (invalid byte 0x{bad:02x} at offset "
                f"{utf8_error.start}); save it as UTF-8"
            ) from None
        logger.debug("%s: decoded as GB18030", path)
    if not text.strip():
        raise InputError(f"{path}: file is empty")
    return text.replace("\r\n", "\n").replace("\r", "\n")


_MD_FENCE = re.compile(r"^\s*(```|~~~)")
_MD_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$")
_MD_SETEXT = re.compile(r"^\s{0,3}(=+|-+)\s*$")
_MD_RULE = re.compile(r"^\s{0,3}([-*_])(\s*\1){2,}\s*$")
_MD_LINK_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*\S+")
_MD_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")
_MD_PREFIX = re.compile(r"^\s{0,3}(?:>\s?)*(?:[-*+]\s+)?")
_MD_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_MD_LINK = re.compile(r"\[([^\]]+)\](?:\([^)]*\)|\[[^\]]*\])")
_MD_AUTOLINK = re.compile(r"<(?:https?://|mailto:)[^>]+>")
_MD_EMPHASIS = re.compile(r"(\*\*|__|\*|~~)(?=\S)(.+?)(?<=\S)\1")
_MD_CODE = re.compile(r"`([^`]*)`")
_MD_TAG = re.compile(r"</?[A-Za-z][^>]*>")


def _strip_markdown(text: str) -> tuple[str, str]:
    """Return Markdown as plain text, one block per line, and its first heading."""
    lines: list[str] = []
    title = ""
    for line in text.split("\n"):
        if _MD_FENCE.match(line) or _MD_RULE.match(line) or _MD_LINK_DEF.match(line) or _MD_TABLE_RULE.match(line):
            lines.append("")
            continue
        if _MD_SETEXT.match(line) and lines and lines[-1].strip():
            title = title or normalize_text(lines[-1])
            lines.append("")
            continue
        heading = _MD_HEADING.match(line)
        if heading:
            line = heading.group(1)
        line = _MD_PREFIX.sub("", line, count=1)
        line = _MD_IMAGE.sub(r"\1", line)
        line = _MD_LINK.sub(r"\1", line)
        line = _MD_AUTOLINK.sub("", line)
        line = _MD_CODE.sub(r"\1", line)
        previous = None
        while previous != line:
            previous, line = line, _MD_EMPHASIS.sub(r"\2", line)
        line = _MD_TAG.sub("", line)
        if "|" in line and line.strip().startswith("|"):
            line = " ".join(cell.strip() for cell in line.strip().strip("|").split("|"))
        if heading and not title:
            title = normalize_text(line)
        lines.append(line)
    return "\n".join(lines), title


class _HTMLText(HTMLParser):
    """Collect visible text; block elements and <br> end a line."""

    _SKIP = {"script", "style", "noscript", "template", "svg", "nav", "footer", "iframe"}
    _BLOCK = {
        "p",
        "div",
        "br",
        "li",
        "ul",
        "ol",
        "dl",
        "dt",
        "dd",
        "tr",
        "table",
        "section",
        "article",
        "header",
        "aside",
        "main",
        "blockquote",
        "pre",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "hr",
        "form",
        "figure",
        "figcaption",
        "address",
        "center",
        "title",
        "body",
        "html",
        "head",
    }

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip_depth = 0
        self.head_title: list[str] = []
        self.h1s: list[list[str]] = []
        self._in: str = ""  # "title" or "h1" while inside one

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self.skip_depth += 1
        elif tag in self._BLOCK:
            self.parts.append("\n")
        if tag in ("td", "th"):
            self.parts.append(" ")
        if tag in ("title", "h1") and not self._in:
            self._in = tag
            if tag == "h1":
                self.h1s.append([])

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self.skip_depth = max(0, self.skip_depth - 1)
        elif tag in self._BLOCK:
            self.parts.append("\n")
        if tag == self._in:
            self._in = ""

    def handle_data(self, data: str) -> None:
        if self.skip_depth:
            return
        if self._in == "title":
            self.head_title.append(data)
            return  # the <title> repeats the site name; it is not body text
        if self._in == "h1":
            self.h1s[-1].append(data)
        self.parts.append(re.sub(r"\s+", " ", data))


def _strip_html(text: str) -> tuple[str, str]:
    """Return the visible text of an HTML page and its title (first <h1>, else <title>)."""
    parser = _HTMLText()
    parser.feed(text)
    parser.close()
    h1 = next((normalize_text("".join(h)) for h in parser.h1s if "".join(h).strip()), "")
    title = h1 or normalize_text("".join(parser.head_title))
    body = "".join(parser.parts)
    return "\n".join(line.strip() for line in body.split("\n")), title
