"""Split a Chinese policy document into the clauses a person labels: pure ``str -> SegmentResult``.

A document is read line by line. Each line is either boilerplate (navigation, dates, sources,
issue headers, page numbers, ...), a heading, or a unit of body text; a unit may start with an
enumeration marker (第一条, 一、, （一）, 一是, 1., （1）, ①). Headings are never clauses: the
nearest heading above a clause becomes its ``section``. Units become clauses:

- an item's enumeration marker is removed, its lead phrase is kept (``一是推动高端产业类项目落地。
  将投资规模大…`` -> ``推动高端产业类项目落地。将投资规模大…``), because the lead phrase is the
  clause's own topic sentence and often the most telling part for a label;
- a 第X条 article keeps its unmarked paragraphs and sub-items together (an article is one rule);
- a lead-in ending with ``：`` keeps the short ``；``-terminated list items that complete it;
- a short lead line such as ``（一）加强应用性基础研究。`` is joined to the paragraph under it;
- a paragraph inside ``max_chars`` stays whole, inline ``一是…；二是…`` included (split apart, the
  items lose their subject); anything longer is cut at 。！？, then ；, then ，、：, and only
  text without any punctuation is cut hard at ``max_chars``.

Every clause is normalized with :func:`annotator.text.normalize.normalize_text`; its id is
:func:`annotator.text.normalize.clause_id`. What is left out is listed with a reason.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from ..errors import InputError
from .normalize import clause_id, match_key, normalize_text
from ..types import Segment

DEFAULT_MIN_CHARS = 12
DEFAULT_MAX_CHARS = 300
_MIN_MAX_CHARS = 20

_HEADING_MAX = 60  # a line without sentence punctuation up to this long is a heading
_LEAD_MAX = 30  # "（一）加强应用性基础研究。" up to this long is a lead line
_LIST_ITEM_MAX = 150  # a "；"-terminated item longer than this stands on its own
_HALF_SENTENCE = 30  # an unfinished tail with fewer content characters is dropped
_SHORT_COLON_LINE = 12  # "具体内容：" (fewer content characters) is a lead-in, not a sentence

_CLOSERS = "”’」』）)】》"
_SENT_PUNCT = re.compile(r"[。！？；!?;]")
_ENDS_SENTENCE = re.compile(rf"(?:[。！？；!?;…：:][{_CLOSERS}]*)$")
_CONTENT = re.compile(r"\w", re.UNICODE)
_CN_NUM = "一二三四五六七八九十百零〇两"

# Enumeration markers, matched on the NFKC form of a line (circled numbers are matched before NFKC,
# which would turn ① into a bare "1").
_CIRCLED = re.compile(r"^\s*([\u2460-\u2473])\s*")
_MARKERS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("tiao", re.compile(rf"^第[{_CN_NUM}\d]{{1,5}}条(?![件例])[\s、.:：]*")),
    ("zhang", re.compile(rf"^第[{_CN_NUM}\d]{{1,5}}(?:章|节|编|部分)[\s、.:：]*")),
    ("shi", re.compile(rf"^(?:[{_CN_NUM}]{{1,3}}是|[其第][{_CN_NUM}]{{1,3}}[，,、])\s*")),
    ("paren_cn", re.compile(rf"^[（(][{_CN_NUM}]{{1,4}}[）)][\s、.:：]*")),
    ("cn", re.compile(rf"^[{_CN_NUM}]{{1,4}}[、.．](?!\d)\s*")),
    ("paren_ar", re.compile(r"^[（(]\d{1,2}[）)][\s、.:：]*")),
    ("arabic", re.compile(r"^\d{1,2}(?:[、．]|\.(?!\d))\s*")),
)
_HEADING_FAMILIES = {"zhang", "cn", "paren_cn", "paren_ar", "arabic"}
# "一、总体要求 坚持…": a short marked heading glued to its first paragraph by white space.
_GLUED = re.compile(r"^([\u4e00-\u9fffA-Za-z0-9]{2,25})\s+(\S.*)$")
# A marker left at the start of a packed, normalized clause; removed so no clause starts with one.
_LEADING_MARKER = re.compile(
    rf"^(?:第[{_CN_NUM}\d]{{1,5}}条(?![件例])|[{_CN_NUM}]{{1,3}}是|[其第][{_CN_NUM}]{{1,3}}[，、]"
    rf"|（[{_CN_NUM}]{{1,4}}）|[{_CN_NUM}]{{1,4}}[、．]|（\d{{1,2}}）|\d{{1,2}}(?:[、．]|\.(?!\d)))[、：]?"
)
_RESPONSIBILITY = re.compile(r"(?<=[。；！？])（[^（）]{2,400}?(?:负责|牵头|配合)[^（）]{0,12}）$")

_DATE = (
    r"(?:\d{4}\s*[年./-]\s*\d{1,2}\s*[月./-]\s*\d{1,2}\s*日?(?:\s*\d{1,2}:\d{2}(?::\d{2})?)?"
    r"|\d{4}\s*年\s*\d{1,2}\s*月"
    r"|[〇零○一二三四五六七八九]{4}年[一二三四五六七八九十]{1,2}月[一二三四五六七八九十]{1,3}日)"
)
_DATE_ONLY = re.compile(rf"^[（(]?{_DATE}[）)]?$")
_ENDS_WITH_DATE = re.compile(rf"{_DATE}[）)]?$")
_NAVIGATION = re.compile(r"(?:[您你]?(?:当前|现在)(?:所在)?的?位置\s*[:：])|^(?:首页|主页|网站首页)\s*[>＞»›/]")
_SOURCE = re.compile(
    r"^[【\[]?(?:来源|信息来源|文章来源|稿件来源|出处|发布时间|发布日期|发文日期|成文日期|印发日期|"
    r"时间|日期|发布机构|发文机关|责任编辑|编辑|编审|审核|校对|作者|记者|摄影|通讯员|"
    r"浏览次数|浏览量|点击数|点击量|阅读数|访问量|字号|字体)[】\]]?\s*[:：]"
)
_URL = re.compile(r"(?:https?://|www\.)\S+")
_URL_LABEL = re.compile(r"^(?:原文)?(?:链接|网址|地址)")
_PAGE_NUMBER = re.compile(
    r"^(?:[-—–_\s]*\d{1,4}[-—–_\s]*|\d{1,4}\s*/\s*\d{1,4}"
    r"|第\s*\d{1,4}\s*页(?:\s*[/,，]?\s*共\s*\d{1,4}\s*页)?"
    r"|共\s*\d{1,4}\s*页)$"
)
_DOC_NUMBER = re.compile(r"[〔\[［]\s*\d{4}")
_ATTACHMENT = re.compile(rf"^附\s*件\s*[\d{_CN_NUM}]*\s*(?:[:：.、]|$)")
_ISSUE = re.compile(r"第\s*\d{1,4}\s*期|\d{4}\s*年\s*第\s*\d{1,3}\s*期")
_COLUMNS = frozenset(
    "科创聚焦 经济热点 产业动向 政策举措 经验交流 域外动态 政策速递 行业创新动态 政策解读 "
    "要闻 要闻速递 工作动态 图片新闻 专题 综合信息 信息简报".split()
)
_BUTTON = re.compile(
    r"^[【\[]?(?:打印|关闭|分享|收藏|返回|上一篇|下一篇|上一条|下一条|扫一扫|进入测试|进入投票|"
    r"微信|微博|QQ空间|加入收藏|设为首页|相关链接|相关文章|推荐阅读)"
)
_TOC_TITLE = re.compile(r"^目\s*录$")
_TOC_LEADER = re.compile(r"(?:\.{3,}|…{2,}|·{3,})\s*\d+$")
_ADDRESSEE = re.compile(r"^各|人民政府|各有关单位|有关部门|各部门|各直属机构|各单位")
_ORG_SUFFIX = re.compile(r"[部委局厅行办会院府处室署司]$")
_NEWS_OPENING = re.compile(r"^(?:近日|日前|目前|近期|此前|据悉|据了解|\d{1,2}月\d{1,2}日)")


@dataclass(frozen=True)
class SegmentResult:
    """The clauses of one document and what was left out.

    Attributes
    ----------
    segments : tuple of Segment
        Clauses in document order; ``position`` counts from 0 without gaps.
    dropped : tuple of (str, str)
        Each line or fragment left out, with the reason ("navigation", "date", "source",
        "issue header", "table of contents", "page number", "url", "button", "attachment",
        "document number", "addressee", "signature", "heading", "lead-in", "responsibility note",
        "half sentence", "too short", "duplicate").
    title : str
        The first title-like line (an issue header or a heading), or "" if there is none.
    """

    segments: tuple[Segment, ...]
    dropped: tuple[tuple[str, str], ...] = ()
    title: str = ""

    def dropped_counts(self) -> dict[str, int]:
        """Return how many lines were dropped for each reason, most frequent first."""
        return dict(Counter(reason for _, reason in self.dropped).most_common())


@dataclass
class _Unit:
    """One line of body text, normalized, with its enumeration marker split off."""

    text: str
    marker: str = ""  # normalized marker, re-inserted when the unit is not first in its clause
    family: str | None = None


@dataclass(frozen=True)
class _Token:
    """One classified line: a dropped line or fragment, a heading, or a unit of body text."""

    kind: str  # "drop", "heading" or "unit"
    raw: str  # the line as read, or the dropped fragment
    value: str = ""  # the drop reason, or the heading's section name
    unit: _Unit | None = None


@dataclass
class _Block:
    """Units that belong in the same clause when they fit: one article, a lead-in and its list."""

    section: str
    units: list[_Unit] = field(default_factory=list)
    # "tiao" absorbs the rest of an article, "list" its ；-items, "lead" one paragraph.
    kind: str = ""


def segment_text(text: str, *, min_chars: int = DEFAULT_MIN_CHARS, max_chars: int = DEFAULT_MAX_CHARS) -> SegmentResult:
    """Split a policy document into labelable clauses.

    Parameters
    ----------
    text : str
        The whole document as plain text, one paragraph or item per line.
    min_chars : int, default 12
        Clauses with fewer letters, digits and Chinese characters (punctuation not counted)
        are dropped as "too short".
    max_chars : int, default 300
        No clause is longer than this many characters; longer paragraphs are cut at sentence
        ends (。！？), then at ；, then at ，、：, and only unpunctuated text is cut hard.

    Returns
    -------
    SegmentResult
        The clauses, with ``section`` (the nearest heading above) and ``position`` set, the
        dropped lines with their reasons, and the document's title line.

    Raises
    ------
    InputError
        If ``min_chars`` is negative or ``max_chars`` is below 20 or not above ``min_chars``.

    Examples
    --------
    >>> result = segment_text("一、总体要求 坚持创新驱动发展，完善政策体系。\\n来源：新华社")
    >>> [(s.section, s.text) for s in result.segments]
    [('总体要求', '坚持创新驱动发展，完善政策体系。')]
    >>> result.dropped
    (('一、总体要求', 'heading'), ('来源：新华社', 'source'))
    """
    _check_bounds(min_chars, max_chars)
    dropped: list[tuple[str, str]] = []
    title = ""
    blocks: list[_Block] = []
    block: _Block | None = None
    section = ""
    for token in _tokens(_logical_lines(text)):
        unit = token.unit
        if unit is None:
            if token.kind == "heading":
                dropped.append((token.raw, "heading"))
                title = title or token.value
                section = token.value
                block = None
                continue
            dropped.append((token.raw, token.value))
            line = normalize_text(token.raw)
            is_title = token.value == "issue header" and line not in _COLUMNS and len(line) >= 6
            if is_title and not title:
                title = line
            continue
        if block is not None and _continues(block, unit):
            block.units.append(unit)
            if block.kind == "lead" or (block.kind == "list" and not unit.text.endswith("；")):
                block = None
            continue
        block = _Block(section, [unit], _block_kind(unit))
        blocks.append(block)

    segments: list[Segment] = []
    seen: set[str] = set()
    for blk in blocks:
        for clause in _pack(blk.units, min_chars, max_chars):
            if _content_len(clause) < min_chars:
                dropped.append((clause, "too short"))
                continue
            key = match_key(clause)
            if key in seen:
                dropped.append((clause, "duplicate"))
                continue
            seen.add(key)
            segments.append(Segment(clause_id(clause), clause, blk.section, len(segments)))
    return SegmentResult(tuple(segments), tuple(dropped), title)


def _check_bounds(min_chars: int, max_chars: int) -> None:
    """Raise InputError for unusable length bounds."""
    if min_chars < 0:
        raise InputError(f"min_chars must be 0 or more, got {min_chars}")
    if max_chars < _MIN_MAX_CHARS or max_chars <= min_chars:
        raise InputError(
            f"max_chars must be at least {_MIN_MAX_CHARS} and above min_chars ({min_chars}), got {max_chars}"
        )


def _content_len(text: str) -> int:
    """Number of letters, digits and Chinese characters."""
    return len(_CONTENT.findall(text))


def _logical_lines(text: str) -> list[str]:
    """Split into stripped lines; re-join lines of hard-wrapped (PDF) text into paragraphs."""
    lines = [line.strip() for line in text.splitlines()]
    widths = Counter(len(line) for line in lines if len(line) >= 15)
    n_long = sum(widths.values())
    if not widths:
        return lines
    width = max(widths, key=lambda w: (sum(widths[w + d] for d in (-2, -1, 0, 1, 2)), w))
    near = [line for line in lines if abs(len(line) - width) <= 2]
    open_ended = sum(1 for line in near if not _ENDS_SENTENCE.search(line))
    if len(near) < 4 or len(near) < 0.5 * n_long or open_ended < 0.5 * len(near):
        return lines
    joined: list[str] = []
    for line in lines:
        previous = joined[-1] if joined else ""
        if (
            previous
            and line
            and len(previous) >= width - 2
            and not _ENDS_SENTENCE.search(previous)
            and _marker(line) is None
        ):
            joined[-1] = previous + line
        else:
            joined.append(line)
    return joined


def _marker(line: str) -> tuple[str, str, str] | None:
    """Return (family, marker, rest) for a line that starts with an enumeration marker."""
    circled = _CIRCLED.match(line)
    if circled:
        number = unicodedata.normalize("NFKC", circled.group(1))
        return "circled", f"（{number}）", unicodedata.normalize("NFKC", line[circled.end() :])
    nfkc = unicodedata.normalize("NFKC", line)
    for family, pattern in _MARKERS:
        match = pattern.match(nfkc)
        if match and match.end() < len(nfkc):
            return family, normalize_text(match.group(0)), nfkc[match.end() :]
    return None


def _tokens(lines: list[str]) -> Iterator[_Token]:
    """Classify each line as dropped, a heading, or body text."""
    toc: set[str] | None = None  # headings listed in a table of contents, while inside it
    for raw in lines:
        if not raw:
            continue
        line = normalize_text(raw)
        if not line:
            continue
        if toc is not None:
            if _is_heading_like(line) and line not in toc:
                toc.add(line)
                yield _Token("drop", raw, "table of contents")
                continue
            toc = None
        reason = _boilerplate(line, raw)
        if reason:
            if reason == "table of contents" and _TOC_TITLE.match(line):
                toc = set()
            yield _Token("drop", raw, reason)
            continue
        yield from _structure(raw, line)


def _boilerplate(line: str, raw: str) -> str:
    """Return why a normalized line is boilerplate, or "" if it is not."""
    unpunctuated = not _SENT_PUNCT.search(line)
    short = unpunctuated and len(line) <= 40
    if _TOC_TITLE.match(line) or _TOC_LEADER.search(line):
        return "table of contents"
    if _NAVIGATION.search(line) or (line.count(">") >= 2 and len(line) <= _HEADING_MAX):
        return "navigation"
    if _URL.search(line):
        rest = _URL.sub("", line)
        if _content_len(rest) < 8 or _URL_LABEL.match(rest):
            return "url"
    if _SOURCE.match(line):
        return "source"
    if _DATE_ONLY.match(line) or (short and _ENDS_WITH_DATE.search(line)):
        return "date"
    if _PAGE_NUMBER.match(line):
        return "page number"
    if short and _DOC_NUMBER.search(line):
        return "document number"
    if _ATTACHMENT.match(line) or (unpunctuated and line.startswith("附件") and len(line) <= _HEADING_MAX):
        return "attachment"
    if line in _COLUMNS or (short and len(line) <= 30 and _ISSUE.search(line)):
        return "issue header"
    if unpunctuated and len(line) <= 30 and _BUTTON.match(line):
        return "button"
    if line.endswith("：") and unpunctuated and len(line) <= 120 and _ADDRESSEE.search(line[:-1]):
        return "addressee"
    names = raw.split()  # "省科技厅 省发展改革委": issuing bodies under a notice
    if (
        unpunctuated
        and _ORG_SUFFIX.search(line)
        and _marker(raw) is None
        and (len(line) <= 10 or (len(names) >= 2 and all(_ORG_SUFFIX.search(n) for n in names)))
    ):
        return "signature"
    return ""


def _is_heading_like(line: str) -> bool:
    """A short line without sentence punctuation that does not read like an unfinished sentence."""
    if _SENT_PUNCT.search(line) or len(line) > _HEADING_MAX or line.endswith(("，", "、")):
        return False
    if line.count("，") >= 2 or (_NEWS_OPENING.match(line) and "，" in line):
        return False
    return not line.endswith("：") or _content_len(line) < _SHORT_COLON_LINE


def _structure(raw: str, line: str) -> Iterator[_Token]:
    """Yield the heading and/or unit a content line holds."""
    parsed = _marker(raw)
    if parsed is None:
        if not _is_heading_like(line):
            yield from _unit(line, "", None, raw)
        elif line.endswith("："):
            # "具体内容：" introduces what follows; it is no section name.
            yield _Token("drop", raw, "lead-in")
        else:
            yield _Token("heading", raw, line)
        return
    family, marker, rest = parsed
    body = normalize_text(rest)
    if family in _HEADING_FAMILIES:
        glued = _GLUED.match(rest.strip())
        if glued and _SENT_PUNCT.search(glued.group(2)):
            head = normalize_text(glued.group(1))
            yield _Token("heading", marker + head, head)
            yield from _unit(normalize_text(glued.group(2)), "", None, raw)
            return
    if family != "tiao" and _is_heading_like(body):
        yield _Token("heading", raw, body.rstrip("："))
        return
    yield from _unit(body, marker, family, raw)


def _unit(text: str, marker: str, family: str | None, raw: str) -> Iterator[_Token]:
    """Yield a unit, after dropping a trailing responsibility note and an unfinished tail."""
    note = _RESPONSIBILITY.search(text)
    if note:
        yield _Token("drop", note.group(0), "responsibility note")
        text = text[: note.start()]
    if not _ENDS_SENTENCE.search(text):
        ends = list(re.finditer(rf"[。！？；!?;][{_CLOSERS}]*", text))
        if ends and _content_len(text[ends[-1].end() :]) < _HALF_SENTENCE:
            yield _Token("drop", text[ends[-1].end() :], "half sentence")
            text = text[: ends[-1].end()]
    yield _Token("unit", raw, unit=_Unit(text, marker, family))


def _block_kind(unit: _Unit) -> str:
    """What a unit that starts a block may absorb."""
    if unit.family == "tiao":
        return "tiao"
    if unit.text.endswith("："):
        return "list"
    sentences = _SENT_PUNCT.findall(unit.text)
    short = unit.family and len(unit.text) <= _LEAD_MAX and "，" not in unit.text
    if short and sentences == ["。"] and unit.text.endswith("。"):
        return "lead"
    return ""


def _continues(block: _Block, unit: _Unit) -> bool:
    """Whether ``unit`` belongs to the open ``block``."""
    if block.kind == "tiao":
        return unit.family != "tiao"
    if block.kind == "lead":
        return unit.family is None
    if block.kind == "list":
        inner = unit.text[:-1]
        ends_item = unit.text.endswith("；") or (len(block.units) > 1 and unit.text.endswith("。"))
        return (
            unit.family is not None
            and unit.family != block.units[0].family
            and ends_item
            and "。" not in inner
            and len(unit.text) <= _LIST_ITEM_MAX
        )
    return False


def _pack(units: list[_Unit], min_chars: int, max_chars: int) -> Iterator[str]:
    """Yield the clause texts of one block, each at most ``max_chars`` long."""
    pieces: list[str] = []
    for i, unit in enumerate(units):
        text = unit.text if i == 0 else unit.marker + unit.text
        pieces.extend([text] if len(text) <= max_chars else _split_long(text, max_chars))
    chunks = _balance(pieces, max_chars)
    # A tiny chunk (a short final sentence) goes back to a neighbour when it fits.
    i = 0
    while i < len(chunks) and len(chunks) > 1:
        if _content_len(chunks[i]) < min_chars:
            if i > 0 and len(chunks[i - 1]) + len(chunks[i]) <= max_chars:
                chunks[i - 1] += chunks.pop(i)
                continue
            if i + 1 < len(chunks) and len(chunks[i]) + len(chunks[i + 1]) <= max_chars:
                chunks[i + 1] = chunks.pop(i) + chunks[i]
                continue
        i += 1
    for chunk in chunks:
        clause = normalize_text(chunk)
        clause = _LEADING_MARKER.sub("", clause, count=1).strip()
        if clause:
            yield clause


_SPLIT_LEVELS = ("。！？!?", "；;", "，,、：:")


def _split_long(text: str, max_chars: int, level: int = 0) -> list[str]:
    """Cut text into pieces of at most ``max_chars``, at the coarsest punctuation that works."""
    if len(text) <= max_chars:
        return [text]
    if level == len(_SPLIT_LEVELS):
        n = math.ceil(len(text) / max_chars)
        size = math.ceil(len(text) / n)
        return [text[i : i + size] for i in range(0, len(text), size)]
    enders = re.escape(_SPLIT_LEVELS[level])
    pattern = re.compile(rf"[^{enders}]*[{enders}]+[{_CLOSERS}]*|[^{enders}]+$")
    parts = [m.group(0) for m in pattern.finditer(text) if m.group(0)]
    if len(parts) == 1:
        return _split_long(text, max_chars, level + 1)
    out: list[str] = []
    for part in parts:
        out.extend(_split_long(part, max_chars, level + 1) if len(part) > max_chars else [part])
    return out


def _balance(pieces: list[str], max_chars: int) -> list[str]:
    """Join consecutive pieces into chunks of at most ``max_chars`` and of similar length."""
    chunks: list[str] = []
    remaining = sum(len(p) for p in pieces)
    current = ""
    for piece in pieces:
        if current:
            target = remaining / math.ceil(remaining / max_chars)
            grown = len(current) + len(piece)
            if grown > max_chars or abs(grown - target) > abs(len(current) - target):
                chunks.append(current)
                remaining -= len(current)
                current = ""
        current += piece
    if current:
        chunks.append(current)
    return chunks
