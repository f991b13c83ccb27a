"""Tests written for mutants that mutmut found alive in annotator/labelstudio/client.py
(docs/mutation-testing.md): what Label Studio is sent and shown, checked key by key."""

from __future__ import annotations

from annotator.labels import load_label_config
from annotator.labelstudio.client import (
    COLD_START_VERSION,
    MAX_ID,
    annotation_from_ls,
    is_ls_id,
    ls_model_version,
    task_data,
)

CONFIG = load_label_config()
TEXT = "对符合条件的企业给予贷款贴息支持。"


def test_the_model_version_names_label_studio_shows():
    assert ls_model_version(None) == COLD_START_VERSION == "policy-clf-cold-start"
    assert ls_model_version(7) == "policy-clf-v7"
    assert ls_model_version(0) == "policy-clf-v0"


def test_a_task_carries_its_text_section_and_clause_id_under_the_names_the_config_reads():
    assert task_data("c1", TEXT, "第三章 金融支持", CONFIG) == {
        CONFIG.value_key: TEXT,
        "section": "第三章 金融支持",
        "clause_id": "c1",
    }
    assert CONFIG.value_key == "text"
    # No section: an empty string, never None or a placeholder.
    assert task_data("c1", TEXT, None, CONFIG)["section"] == ""
    assert task_data("c1", TEXT, "", CONFIG)["section"] == ""


def test_the_section_a_task_was_pushed_with_comes_back_with_its_annotation():
    task = {"id": 7, "project": 1, "data": task_data("c1", TEXT, "第三章 金融支持", CONFIG)}
    fields, _ = annotation_from_ls({"id": 11, "result": []}, task, CONFIG)
    assert fields["section"] == "第三章 金融支持"


def test_label_studio_ids_run_from_one_to_the_largest_the_store_holds():
    assert MAX_ID == 2**63 - 1
    assert [is_ls_id(v) for v in (1, MAX_ID)] == [True, True]
    assert [is_ls_id(v) for v in (0, -1, MAX_ID + 1, True, 1.0, "1", None)] == [False] * 7


def test_a_model_version_name_reads_back_to_its_number_and_other_names_to_none():
    from annotator.labelstudio.client import ls_model_version, version_from_ls

    assert [version_from_ls(ls_model_version(v)) for v in (1, 7, 120)] == [1, 7, 120]
    assert ls_model_version(7) == "policy-clf-v7"
    for other in (None, "", "policy-clf-v", "policy-clf-v7b", "xpolicy-clf-v7", ls_model_version(None), 7):
        assert version_from_ls(other) is None
