"""labels: the label set is read from the packaged labeling config; unknown labels name the closest one."""

from __future__ import annotations

import pytest

from annotator import InputError, SchemaMismatchError, UnknownLabelError
from annotator import labels as labels_module
from annotator.labels import (
    DEFAULT_LABEL_CONFIG,
    check_labels,
    demo_files,
    load_label_config,
    parse_label_config,
    unknown_label_message,
)
from annotator.resources import read_text

CONFIG = load_label_config()
LABELS = CONFIG.labels


def test_default_config_has_the_27_labels_in_file_order():
    assert len(LABELS) == 27 and len(set(LABELS)) == 27
    assert LABELS[0] == "金融支持" and LABELS[-1] == "新能源汽车产业"
    assert "科技成果转移转化" in LABELS


def test_default_config_names():
    assert (CONFIG.from_name, CONFIG.to_name, CONFIG.value_key) == ("labels", "text", "text")
    assert CONFIG.xml == DEFAULT_LABEL_CONFIG.read_text(encoding="utf-8")


def test_the_default_config_is_package_data():
    # A wheel has no tasks/ folder: the config ships inside the package and is found through
    # importlib.resources, wherever the package is installed.
    assert DEFAULT_LABEL_CONFIG.parent.name == "resources"
    assert DEFAULT_LABEL_CONFIG.parent.parent.name == "annotator"
    assert read_text("label_config.xml") == CONFIG.xml


def test_demo_files_from_the_repository():
    sources, seeds = demo_files()
    assert sources.name == "sources" and seeds.name == "seed_labels.tsv"


def test_demo_files_missing_say_where_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setattr(labels_module, "TASKS_DIR", tmp_path / "tasks")
    with pytest.raises(InputError) as exc:
        demo_files()
    assert str(exc.value) == (
        "the demo's documents and seed labels come with the source repository, not with the installed package: "
        "git clone the repository and run `make demo` there (or ingest your own documents: annotator ingest DIR)"
    )


def test_parse_a_config_with_other_names():
    xml = (
        '<View><Text name="clause" value="$body"/><Choices name="cat" toName="clause" choice="multiple">'
        '<Choice value=" 甲 "/><Choice value="乙"/></Choices></View>'
    )
    config = parse_label_config(xml)
    assert (config.labels, config.from_name, config.to_name, config.value_key) == (
        ("甲", "乙"),
        "cat",
        "clause",
        "body",
    )


@pytest.mark.parametrize(
    "xml, message",
    [
        ("<View><Choices", "labeling config is not valid XML: "),
        ('<View><Text name="text" value="$text"/></View>', "labeling config has no <Choices> tag; add "),
        (
            '<View><Text name="text" value="$text"/><Choices name="l" toName="text"/></View>',
            "labeling config: every <Choice> needs a non-empty value attribute",
        ),
        (
            '<View><Text name="text" value="$text"/><Choices name="l" toName="text"><Choice value=""/></Choices></View>',
            "labeling config: every <Choice> needs a non-empty value attribute",
        ),
        (
            '<View><Text name="text" value="$text"/><Choices name="l" toName="text"><Choice value="a"/>'
            '<Choice value="a"/></Choices></View>',
            "labeling config lists a <Choice> value twice",
        ),
        (
            '<View><Text name="text" value="$text"/><Choices name="l"><Choice value="a"/></Choices></View>',
            "labeling config: <Choices> needs both name and toName attributes",
        ),
        (
            '<View><Text name="body" value="$text"/><Choices name="l" toName="text"><Choice value="a"/></Choices></View>',
            "labeling config: no tag named 'text' with value=\"$key\" for <Choices toName>",
        ),
    ],
)
def test_bad_config_is_a_schema_mismatch(xml, message):
    with pytest.raises(SchemaMismatchError) as info:
        parse_label_config(xml)
    assert str(info.value).startswith(message)


def test_missing_config_file(tmp_path):
    missing = tmp_path / "label_config.xml"
    with pytest.raises(InputError) as info:
        load_label_config(missing)
    assert str(info.value) == f"cannot read labeling config {missing}: No such file or directory"


def test_check_labels_returns_label_set_order_without_repeats():
    assert check_labels(["企业", "金融支持", "企业"], LABELS) == ("金融支持", "企业")
    assert check_labels([], LABELS) == ()


def test_unknown_label_names_the_closest_label_and_the_set():
    with pytest.raises(UnknownLabelError) as info:
        check_labels(["金融支持", "财政补助"], LABELS)
    assert str(info.value) == (
        "label '财政补助' is not in the label set; did you mean '财政支持'? known: " + ", ".join(LABELS)
    )
    assert isinstance(info.value, InputError) and isinstance(info.value, ValueError)


def test_unknown_label_without_a_close_match_still_reads_well():
    assert unknown_label_message("xyz", LABELS) == ("label 'xyz' is not in the label set; known: " + ", ".join(LABELS))
