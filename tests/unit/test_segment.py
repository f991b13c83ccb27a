"""segment_text on the four real newsletters and on one small fixture per structure."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from annotator.errors import InputError
from annotator.text.normalize import clause_id, normalize_text
from annotator.text.segment import DEFAULT_MAX_CHARS, DEFAULT_MIN_CHARS, segment_text

SOURCES = sorted((Path(__file__).resolve().parents[2] / "tasks" / "sources").glob("*.txt"))
ENDS_SENTENCE = re.compile(r"[。；！？：…][”’」』）》]*$")
STARTS_WITH_MARKER = re.compile(
    r"^(第[一二三四五六七八九十百\d]+[条章节]|[一二三四五六七八九十]+[是、]|（[一二三四五六七八九十\d]+）|\d+[.、．](?!\d)|[①-⑳])"
)
BOILERPLATE = (
    "当前所在位置",
    "首页>",
    "主页>",
    "来源：",
    "发布时间",
    "责任编辑",
    "http",
    "www.",
    "附件一",
    "附件：",
    "第294期",
    "2025年第9期",
    "进入测试",
    "进入投票",
    "按职责分工负责",
    "科创聚焦",
    "浙江省人民政府驻上海办事处",
)


def content_len(text: str) -> int:
    return len(re.findall(r"\w", text))


@pytest.fixture(scope="module")
def results():
    return {path.name: segment_text(path.read_text(encoding="utf-8")) for path in SOURCES}


def test_four_newsletters_are_present():
    assert len(SOURCES) == 4


@pytest.mark.parametrize("name", [p.name for p in SOURCES])
class TestNewsletter:
    def test_no_boilerplate_in_any_segment(self, results, name):
        for seg in results[name].segments:
            for marker in BOILERPLATE:
                assert marker not in seg.text, (marker, seg.text)

    def test_no_segment_starts_with_a_marker_or_a_heading(self, results, name):
        result = results[name]
        headings = {
            STARTS_WITH_MARKER.sub("", normalize_text(line)).rstrip("：")
            for line, reason in result.dropped
            if reason == "heading"
        }
        for seg in result.segments:
            assert not STARTS_WITH_MARKER.match(seg.text), seg.text
            for heading in headings:
                assert not seg.text.startswith(heading), (heading, seg.text)

    def test_every_segment_ends_like_a_sentence(self, results, name):
        for seg in results[name].segments:
            assert ENDS_SENTENCE.search(seg.text), seg.text

    def test_lengths_within_bounds(self, results, name):
        for seg in results[name].segments:
            assert content_len(seg.text) >= DEFAULT_MIN_CHARS, seg.text
            assert len(seg.text) <= DEFAULT_MAX_CHARS, seg.text

    def test_ids_positions_and_sections(self, results, name):
        segments = results[name].segments
        assert [s.position for s in segments] == list(range(len(segments)))
        assert all(s.id == clause_id(s.text) and s.text == normalize_text(s.text) for s in segments)
        assert len({s.id for s in segments}) == len(segments)
        assert all(s.section for s in segments)

    def test_deterministic_and_idempotent(self, results, name):
        path = next(p for p in SOURCES if p.name == name)
        again = segment_text(path.read_text(encoding="utf-8"))
        assert again == results[name]
        texts = [s.text for s in results[name].segments]
        assert [s.text for s in segment_text("\n".join(texts)).segments] == texts


def test_newsletter_000_items_keep_their_lead_phrase_under_the_article_title(results):
    segments = results["000_bfb6d9dd505d3527.txt"].segments
    first_item = segments[1]
    assert first_item.section == "上海多措并举支持外资企业高能级项目落地提升生物医药产业能级"
    assert first_item.text.startswith("推动高端产业类项目落地。将投资规模大、带动效应强的产业类项目")
    assert segments[0].text.startswith("日前，上海市科委发布《关于支持外资企业高能级项目落地提升生物医药")
    counts = results["000_bfb6d9dd505d3527.txt"].dropped_counts()
    assert counts == {"heading": 17, "issue header": 6}


def test_newsletter_001_regulation_articles_and_boilerplate(results):
    result = results["001_82c496b701662624.txt"]
    texts = [s.text for s in result.segments]
    # 第六条 with its list items and the paragraph that closes it is one clause.
    article_6 = next(t for t in texts if t.startswith("政府投资基金不得有以下投资行为："))
    assert "（一）通过名股实债等方式变相增加地方政府隐性债务；" in article_6
    assert article_6.endswith("财政部门、基金监管部门另有规定的从其规定。")
    counts = result.dropped_counts()
    for reason in (
        "navigation",
        "document number",
        "addressee",
        "signature",
        "date",
        "source",
        "attachment",
        "responsibility note",
    ):
        assert counts.get(reason, 0) > 0, reason
    assert result.title == "简报·第294期（下）"
    sections = {s.section for s in result.segments}
    assert {"重点区域", "实施科技金融强基工程", "央行发布多项金融政策"} <= sections
    assert "具体内容：" not in sections


def test_newsletter_002_table_of_contents_is_dropped(results):
    result = results["002_29efa1d661e0c9cf.txt"]
    assert result.dropped_counts()["table of contents"] == 23
    assert result.segments[0].section == "上海多项措施支持专精特新中小企业发展壮大"
    assert result.title == "长三角每周要讯2025(9)"


def test_yi_shi_items():
    text = (
        "上海多措并举支持外资企业高能级项目落地\n\n"
        "日前，上海市科委发布若干措施，提出多项措施促进外资企业高能级项目落地。\n\n"
        "一是推动高端产业类项目落地。将投资规模大、带动效应强的产业类项目纳入市重大外资项目清单。\n"
        "二是推动制造类项目迭代升级。鼓励总部及其投资管理的制造业企业加快产线改造升级。\n"
    )
    result = segment_text(text)
    assert [s.text for s in result.segments] == [
        "日前，上海市科委发布若干措施，提出多项措施促进外资企业高能级项目落地。",
        "推动高端产业类项目落地。将投资规模大、带动效应强的产业类项目纳入市重大外资项目清单。",
        "推动制造类项目迭代升级。鼓励总部及其投资管理的制造业企业加快产线改造升级。",
    ]
    assert {s.section for s in result.segments} == {"上海多措并举支持外资企业高能级项目落地"}


def test_articles_keep_paragraphs_and_list_items_together():
    text = (
        "第一章 总则\n"
        "第一条 为了促进科技成果转化，制定本办法。\n"
        "第二条 本办法适用于本市行政区域内的科技成果转化活动。\n"
        "前款所称科技成果，是指通过科学研究与技术开发所产生的具有实用价值的成果。\n"
        "第三条 市财政对下列事项给予支持：\n"
        "（一）科技成果转化平台建设；\n"
        "（二）技术转移机构运营；\n"
        "（三）中试熟化项目。\n"
        "第二章 支持措施\n"
        "第十二条 市科技部门负责组织实施本办法的各项支持措施。\n"
    )
    result = segment_text(text)
    assert [(s.section, s.text) for s in result.segments] == [
        ("总则", "为了促进科技成果转化，制定本办法。"),
        (
            "总则",
            "本办法适用于本市行政区域内的科技成果转化活动。前款所称科技成果，是指通过科学研究与技术开发所产生的具有实用价值的成果。",
        ),
        (
            "总则",
            "市财政对下列事项给予支持：（一）科技成果转化平台建设；（二）技术转移机构运营；（三）中试熟化项目。",
        ),
        ("支持措施", "市科技部门负责组织实施本办法的各项支持措施。"),
    ]
    assert result.dropped == (("第一章 总则", "heading"), ("第二章 支持措施", "heading"))


def test_numbered_headings_items_and_glued_heading():
    text = (
        "一、总体要求 坚持创新驱动发展战略，完善科技政策体系，推动高质量发展。\n"
        "二、主要任务\n"
        "（一）加强应用性基础研究。\n"
        "建立企业共同参与的多元投入机制，支持企业组织产学研力量开展研究。\n"
        "（二）加快关键共性技术协同攻关。完善企业出题机制，定期发布攻关项目需求榜单。\n"
        "1. 支持企业建设研发机构，对新认定的市级企业技术中心给予奖励。\n"
        "2、鼓励高校院所开放共享科研仪器设备，提高使用效率。\n"
        "（1）对首台套装备给予保险补偿支持。\n"
        "① 对首批次新材料应用给予不超过保费80%的补贴。\n"
    )
    result = segment_text(text)
    assert [(s.section, s.text) for s in result.segments] == [
        ("总体要求", "坚持创新驱动发展战略，完善科技政策体系，推动高质量发展。"),
        ("主要任务", "加强应用性基础研究。建立企业共同参与的多元投入机制，支持企业组织产学研力量开展研究。"),
        ("主要任务", "加快关键共性技术协同攻关。完善企业出题机制，定期发布攻关项目需求榜单。"),
        ("主要任务", "支持企业建设研发机构，对新认定的市级企业技术中心给予奖励。"),
        ("主要任务", "鼓励高校院所开放共享科研仪器设备，提高使用效率。"),
        ("主要任务", "对首台套装备给予保险补偿支持。"),
        ("主要任务", "对首批次新材料应用给予不超过保费80%的补贴。"),
    ]
    assert result.dropped == (("一、总体要求", "heading"), ("二、主要任务", "heading"))


def test_long_paragraph_is_split_at_sentence_ends_then_semicolons():
    rng = random.Random(0)
    topics = ["集成电路", "生物医药", "人工智能", "新能源汽车", "航空航天", "高端装备", "新材料"]
    sentences = [
        f"支持{rng.choice(topics)}企业开展第{i}批关键核心技术攻关，给予最高{i}百万元支持。" for i in range(1, 13)
    ]
    result = segment_text("".join(sentences), max_chars=120)
    texts = [s.text for s in result.segments]
    assert "".join(texts) == "".join(sentences)
    assert all(len(t) <= 120 and t.endswith("。") for t in texts)
    assert max(len(t) for t in texts) - min(len(t) for t in texts) < 40  # balanced, no tiny tail

    clauses = [f"对符合条件的第{i}类企业给予最高{i}百万元的资金支持" for i in range(1, 15)]
    result = segment_text("；".join(clauses) + "。", max_chars=100)
    assert all(s.text[-1] in "；。" and len(s.text) <= 100 for s in result.segments)
    assert "".join(s.text for s in result.segments) == "；".join(clauses) + "。"


def test_pdf_spaces_and_hard_wrapped_lines():
    text = (
        "关于推动科技创新的若干措施\n"
        "一、加强基础研究\n"
        "创新中心应落实好科技成果转化奖励、科研自主权、科技资 源开放共享\n"
        "等政策措施，以及中央、地方支持企业、高校、科研院所、新型研发机\n"
        "构等各类创新主体的优惠政策，按有关政策规定享受研发费用加计扣除\n"
        "、高新技术企业税收优惠等税收优惠政策。\n"
        "二、完善人才政策\n"
        "支持高校院所引进高层次人才，对引进的领军人才给予最高一百万元的\n"
        "安家补贴，并在住房、子女入学等方面给予保障。\n"
    )
    result = segment_text(text)
    assert [(s.section, s.text) for s in result.segments] == [
        (
            "加强基础研究",
            "创新中心应落实好科技成果转化奖励、科研自主权、科技资源开放共享等政策措施，以及中央、"
            "地方支持企业、高校、科研院所、新型研发机构等各类创新主体的优惠政策，按有关政策规定享受研发费用"
            "加计扣除、高新技术企业税收优惠等税收优惠政策。",
        ),
        (
            "完善人才政策",
            "支持高校院所引进高层次人才，对引进的领军人才给予最高一百万元的安家补贴，并在住房、"
            "子女入学等方面给予保障。",
        ),
    ]


def test_boilerplate_lines_are_dropped_with_reasons():
    text = (
        "您当前所在位置：首页 > 政策文件 > 通知\n"
        "发布时间：2025-01-10  来源：市科委\n"
        "2025年1月10日\n"
        "支持企业加大研发投入，对研发费用增长较快的企业给予奖励。\n"
        "来源：新华社\n"
        "责任编辑：张三\n"
        "作者：李四\n"
        "- 3 -\n"
        "http://www.example.gov.cn/a.html\n"
        "【打印】【关闭窗口】\n"
        "附件：1.申报指南\n"
        "科技\n"
        "支持企业加大研发投入，对研发费用增长较快的企业给予奖励。\n"
    )
    result = segment_text(text)
    assert [s.text for s in result.segments] == ["支持企业加大研发投入，对研发费用增长较快的企业给予奖励。"]
    assert [reason for _, reason in result.dropped] == [
        "navigation",
        "source",
        "date",
        "source",
        "source",
        "source",
        "page number",
        "url",
        "button",
        "attachment",
        "heading",
        "duplicate",
    ]


def test_half_sentence_tail_and_short_fragments_are_dropped():
    result = segment_text("加大科技金融支持力度，完善风险补偿机制。同时还要\n好的。\n")
    assert [s.text for s in result.segments] == ["加大科技金融支持力度，完善风险补偿机制。"]
    assert result.dropped == (("同时还要", "half sentence"), ("好的。", "too short"))


def test_text_without_punctuation_is_cut_hard_at_max_chars():
    rng = random.Random(0)
    text = "".join(rng.choice("科技创新产业金融人才园区政策支持企业") for _ in range(1000))
    result = segment_text(text, max_chars=200)
    assert "".join(s.text for s in result.segments) == text
    assert all(len(s.text) <= 200 for s in result.segments)


def test_empty_text_gives_no_segments():
    assert segment_text("") == segment_text("\n \n") == segment_text("", min_chars=5)
    assert segment_text("").segments == ()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_chars": -1}, "min_chars must be 0 or more, got -1"),
        ({"max_chars": 10}, "max_chars must be at least 20 and above min_chars (12), got 10"),
        (
            {"min_chars": 50, "max_chars": 40},
            "max_chars must be at least 20 and above min_chars (50), got 40",
        ),
    ],
)
def test_bad_bounds_raise_input_error(kwargs, message):
    with pytest.raises(InputError) as info:
        segment_text("文本", **kwargs)
    assert str(info.value) == message
