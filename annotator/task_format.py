"""The Label Studio task format: the one home of a clause task's ``data``.

Two writers build it: the task file ``annotator ingest`` writes (:func:`annotator.text.ingest.write_ls_tasks`,
for importing by hand into a project with the default labeling config) and the tasks the loop imports
into Label Studio (:func:`annotator.labelstudio.client.task_data`, the text under the project's own
``<Text value="$…">`` key). Readers of a task's data use the same keys. A leaf, because ``text/`` sits
below ``labelstudio/`` and both need it.

The keys and their order are a contract: a task file written before and after a release must be the
same bytes, and Label Studio shows ``$section`` in the default config's header.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

TEXT_KEY = "text"  # the default labeling config's <Text value="$text">
SECTION_KEY = "section"  # the heading the clause sits under ("" when none)
CLAUSE_ID_KEY = "clause_id"  # the hash of the normalized text (annotator.text.normalize.clause_id)
DOCUMENT_KEY = "document"  # task files only: the title of the document the clause came from
SOURCE_KEY = "source"  # task files only: the document's file name


def task_data(
    clause_id: str,
    text: str,
    section: str | None,
    *,
    value_key: str = TEXT_KEY,
    document: str | None = None,
    source: str | None = None,
) -> dict[str, str]:
    """The ``data`` of one clause's Label Studio task.

    Parameters
    ----------
    clause_id : str
        The clause's id.
    text : str
        The clause text, under ``value_key``.
    section : str or None
        Its section heading; None is written as ``""``.
    value_key : str
        The data key the labeling config's ``<Text>`` reads (``LabelConfig.value_key``).
    document, source : str, optional
        The document title and file name, added (in that order) when given.

    Returns
    -------
    dict
        ``{value_key, "section", "clause_id"[, "document"][, "source"]}`` in that order.

    Examples
    --------
    >>> task_data("d38815896344c605", "支持人才引进。", "二、人才")
    {'text': '支持人才引进。', 'section': '二、人才', 'clause_id': 'd38815896344c605'}
    >>> list(task_data("c1", "支持人才引进。", None, document="甲", source="a.txt"))
    ['text', 'section', 'clause_id', 'document', 'source']
    """
    data = {value_key: text, SECTION_KEY: section or "", CLAUSE_ID_KEY: clause_id}
    if document is not None:
        data[DOCUMENT_KEY] = document
    if source is not None:
        data[SOURCE_KEY] = source
    return data


def data_of(task: Mapping[str, Any]) -> dict[str, Any]:
    """A task's ``data`` as Label Studio returns it (``{}`` when it has none, or not a dict)."""
    data = task.get("data")
    return data if isinstance(data, dict) else {}


def task(data: dict[str, str], predictions: Sequence[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A Label Studio task: ``{"data": data}``, with ``"predictions"`` after it when given."""
    out: dict[str, Any] = {"data": data}
    if predictions is not None:
        out["predictions"] = list(predictions)
    return out
