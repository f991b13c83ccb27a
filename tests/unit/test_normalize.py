"""normalize: one canonical text per clause, so the same clause from two sources gets one id."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from annotator.text.normalize import cjk_ratio, clause_id, match_key, normalize_text
from tests.conftest import SEED_TSV


def seed_texts() -> list[str]:
    lines = SEED_TSV.read_text(encoding="utf-8").splitlines()
    return sorted({line.split("\t", 1)[1] for line in lines if "\t" in line})


@pytest.mark.parametrize(
    "raw, expected",
    [
        # the docstring example: PDF space inside a word, full-width letters and digits, ASCII comma
        ("科技资 源开放共享（ＣＭＯ）, 最高１０％", "科技资源开放共享（CMO），最高10%"),
        ("组织(CMO)和", "组织（CMO）和"),
        ("组织（CMO）和", "组织（CMO）和"),
        ("支持企业(含个人)。", "支持企业（含个人）。"),
        ("第一条;第二条:见附件!", "第一条；第二条：见附件！"),
        ("  前后空白\t被去掉  ", "前后空白被去掉"),
        ("跨\r\n行的条款", "跨行的条款"),
        ("零\u200b宽\ufeff字符", "零宽字符"),
        ("加强①支持", "加强（1）支持"),
    ],
)
def test_normalize_text_gives_the_canonical_chinese_form(raw, expected):
    assert normalize_text(raw) == expected


def test_ascii_text_keeps_ascii_punctuation_and_single_spaces():
    assert normalize_text("Hello,  world (test)!") == "Hello, world (test)!"
    assert normalize_text("a\u00a0\u00a0b") == "a b"


def test_only_white_space_is_dropped():
    raw = "对 符合条件的企业，给予 贷款贴息支持。"
    assert normalize_text(raw) == raw.replace(" ", "")


def test_pdf_spaced_seed_clause_matches_its_clean_copy():
    # A real seed clause with the spaces PDF extraction left inside words.
    spaced = (
        "创新中心应落实好科技成果转化奖励、科研自主权、科技资 源开放共享等政策措施，以及中央、"
        "地方支持企业、高校、科研 院所、新型研发机构等各类创新主体的优惠政策"
    )
    assert normalize_text(spaced) == spaced.replace(" ", "")
    assert clause_id(spaced) == clause_id(spaced.replace(" ", ""))


def test_normalize_is_idempotent_on_every_seed_text_without_item_markers():
    texts = [t for t in seed_texts() if not re.search("[\u2460-\u2473]", t)]
    assert len(texts) > 5000
    changed = [t for t in texts if normalize_text(normalize_text(t)) != normalize_text(t)]
    assert changed == []


@hsettings(max_examples=300, database=None, deadline=None)
@given(
    st.text(
        alphabet=st.sampled_from(list("中文企业支持ab1 ,;:()!?（），；：！？\u3000\u00a0\t\n\u200b.%ＡＢ１")),
        max_size=16,
    )
)
def test_normalize_is_idempotent(text):
    once = normalize_text(text)
    assert normalize_text(once) == once


@pytest.mark.parametrize("raw", ["①加强", "第一条①", "连续9年位居全国第一③"])
def test_item_marker_at_text_edge_is_stable(raw):
    once = normalize_text(raw)
    assert normalize_text(once) == once


def test_bracket_pair_is_converted_together():
    # a real seed clause
    assert normalize_text("积极发展特色IC制造、OLED(AMOLED)新型显示") in (
        "积极发展特色IC制造、OLED(AMOLED)新型显示",
        "积极发展特色IC制造、OLED（AMOLED）新型显示",
    )


def test_match_key_ignores_punctuation_spacing_and_case():
    assert match_key("组织（CMO）和，支持!") == match_key("组织 cmo 和支持") == "组织cmo和支持"
    assert match_key("对符合条件的企业，给予贷款贴息支持。") == match_key("对符合条件的企业给予贷款贴息支持")


def test_match_key_keeps_different_words_apart():
    assert match_key("支持企业") != match_key("支持高校")


def test_clause_id_is_16_hex_digits_of_the_normalized_text():
    cid = clause_id("对符合条件的企业给予贷款贴息支持。")
    assert re.fullmatch("[0-9a-f]{16}", cid)
    assert cid == clause_id("  对符合条件的企业给予贷款贴息支持。 ")
    assert cid == clause_id("对符合条件的企业给予贷款 贴息支持。")
    assert cid != clause_id("对符合条件的企业给予贷款贴息支持")  # punctuation is content


def test_clause_id_is_stable_across_releases():
    # Ids are stored in the database and in Label Studio tasks; changing them orphans every label.
    assert clause_id("科技资源开放共享") == "6ca3d06a0fb345dc"


def test_cjk_ratio():
    assert cjk_ratio("") == 0.0
    assert cjk_ratio("ab中文") == 0.5
    assert cjk_ratio("中文。") == 1.0


# Bidi controls (issue 16) ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "char",
    ["\u200e", "\u200f", "\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069"],
)
def test_bidi_controls_are_removed_so_the_text_and_its_id_are_the_plain_ones(char):
    text = "对符合条件的企业给予贷款贴息支持。"
    spoofed = f"{char}对符合条件的{char}企业给予贷款贴息支持。{char}"
    assert normalize_text(spoofed) == text
    assert clause_id(spoofed) == clause_id(text)
    assert normalize_text(char * 3 + "\u200b\ufeff") == ""
