"""Text normalization shared by ingestion, label import and export.

One canonical form for every clause text: NFKC (full-width letters and digits become ASCII),
spaces that PDF extraction leaves between Chinese characters removed, runs of white space folded,
and ASCII punctuation next to Chinese turned back into the full-width Chinese form, so
``"组织(CMO)和"`` and ``"组织（CMO）和"`` normalize to the same string. Meaning is never changed:
no visible character other than white space is dropped (invisible zero-width characters and bidi
control characters, U+200E/F, U+202A–U+202E, U+2066–U+2069, are removed, so a text made only of
them normalizes to the empty string, which every entry point refuses).
"""

from __future__ import annotations

import functools
import hashlib
import re
import unicodedata

_CJK = r"\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uff00-\uffef\u2018-\u201d\u2026\u00b7"
_CJK_CHAR = re.compile(f"[{_CJK}]")
# White space with a CJK character (or CJK punctuation) on at least one side.
_SPACE_NEAR_CJK = re.compile(f"(?<=[{_CJK}])[ \t\u00a0]+|[ \t\u00a0]+(?=[{_CJK}])")
_WHITESPACE = re.compile(r"[ \t\u00a0\u3000]+")
_ZERO_WIDTH = re.compile("[\u200b\u200c\u200d\u2060\ufeff]")
# Bidi controls (LRM/RLM, embeddings and overrides, isolates): invisible, meaningless in Chinese
# clauses, and able to make stored text display as something else ("Trojan Source").
BIDI_CONTROLS = "\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_BIDI = re.compile(f"[{BIDI_CONTROLS}]")
_HALF_TO_FULL = {",": "，", ";": "；", ":": "：", "(": "（", ")": "）", "!": "！", "?": "？"}
_PUNCT_NEAR_CJK = re.compile(f"(?<=[{_CJK}])[,;:()!?]|[,;:()!?](?=[{_CJK}])")
# An innermost bracket pair with one character of context on each side: a pair is converted as a
# whole (both brackets full-width or neither), so "OLED(AMOLED)新型" can't end up half converted.
_PAIR = re.compile(r"(.?)\(([^()]*)\)(.?)")
_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)
# NFKC would turn ① into a bare "1" glued to the next word; keep it an item marker instead.
# Private-use marks carry it through NFKC; they become "（1）" at the end.
_CIRCLED = {chr(0x2460 + i): f"\ue000{i + 1}\ue001" for i in range(20)}
_CIRCLED_RE = re.compile(f"[{''.join(_CIRCLED)}]")


def normalize_text(text: str) -> str:
    """Return the canonical form of a clause text.

    Parameters
    ----------
    text : str
        Raw text, as read from a document or a labeled file.

    Returns
    -------
    str
        NFKC-normalized text without PDF spaces inside Chinese and with Chinese punctuation.

    Examples
    --------
    >>> normalize_text("科技资 源开放共享（ＣＭＯ）, 最高１０％")
    '科技资源开放共享（CMO），最高10%'
    """
    text = _CIRCLED_RE.sub(lambda m: _CIRCLED[m.group(0)], text)
    text = unicodedata.normalize("NFKC", text)
    text = _ZERO_WIDTH.sub("", text)
    text = _BIDI.sub("", text)
    text = text.replace("\r", " ").replace("\n", " ")
    text = _SPACE_NEAR_CJK.sub("", text)
    text = _WHITESPACE.sub(" ", text).strip()
    text = text.replace("\ue000", "(").replace("\ue001", ")")
    previous = None
    while previous != text:  # innermost pairs first, then the pairs around them
        previous = text
        text = _PAIR.sub(_convert_pair, text)
    text = text.replace("\ue002", "(").replace("\ue003", ")")
    # Converting one mark can put a CJK-context mark beside the next one ("(CMO),"): repeat.
    previous = None
    while previous != text:
        previous = text
        text = _PUNCT_NEAR_CJK.sub(lambda m: _HALF_TO_FULL[m.group(0)], text)
    return text.replace("\ue004", "（").replace("\ue005", "）")


def _convert_pair(m: re.Match) -> str:
    """A bracket pair becomes full-width when it or its neighbours hold Chinese, else stays ASCII.

    Private-use marks stand in for the brackets until every pair is decided, so the per-character
    rule that runs afterwards never sees them.
    """
    before, inside, after = m.group(1), m.group(2), m.group(3)
    full = bool(_CJK_CHAR.search(before + inside + after))
    left, right = ("\ue004", "\ue005") if full else ("\ue002", "\ue003")
    return f"{before}{left}{inside}{right}{after}"


@functools.lru_cache(maxsize=1 << 16)
def match_key(text: str) -> str:
    """Return a key that ignores punctuation, spacing and case, for duplicate detection.

    Memoized (a pure function of ``text``): every batch selection re-keys all labeled clauses,
    ~150 µs each.
    """
    return _NON_WORD.sub("", normalize_text(text)).lower()


def clause_id(text: str) -> str:
    """Return the stable id of a clause: 16 hex digits of the SHA-1 of its normalized text."""
    return hashlib.sha1(normalize_text(text).encode("utf-8")).hexdigest()[:16]


def cjk_ratio(text: str) -> float:
    """Share of characters in ``text`` that are Chinese (0.0 for an empty string)."""
    if not text:
        return 0.0
    return len(_CJK_CHAR.findall(text)) / len(text)
