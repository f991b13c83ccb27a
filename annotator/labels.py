"""The label set and the Label Studio labeling config: one file is the source of both.

The labels are the ``<Choice value=...>`` entries of the ``<Choices>`` tag in the labeling config,
by default the one shipped as package data (``annotator/resources/label_config.xml``); the same
parser reads a project's config back from Label Studio, so names are never hard-coded.
"""

from __future__ import annotations

import difflib
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError, SchemaMismatchError, UnknownLabelError
from .resources import resource_path

DEFAULT_LABEL_CONFIG = resource_path("label_config.xml")
# The demo's documents (sources/) and seed labels (seed_labels.tsv) stay in the source repository's
# tasks/ folder: they are not package data, so a wheel install has no TASKS_DIR (see demo_files()).
TASKS_DIR = Path(__file__).resolve().parent.parent / "tasks"


def demo_files() -> tuple[Path, Path]:
    """The demo's document folder and seed-label file, from the source repository.

    Raises
    ------
    InputError
        If they are missing (a wheel install): the message says where to get them.
    """
    sources, seeds = TASKS_DIR / "sources", TASKS_DIR / "seed_labels.tsv"
    if not (sources.is_dir() and seeds.is_file()):
        raise InputError(
            "the demo's documents and seed labels come with the source repository, not with the "
            "installed package: git clone the repository and run `make demo` there (or ingest "
            "your own documents: annotator ingest DIR)"
        )
    return sources, seeds


@dataclass(frozen=True)
class LabelConfig:
    """What the backend and the importers need from a labeling config."""

    xml: str
    labels: tuple[str, ...]
    from_name: str  # the <Choices name=...>
    to_name: str  # the <Choices toName=...>
    value_key: str  # the task data key the <Text> tag reads ("text" for value="$text")
    not_policy: str | None = None  # the <Choice> that answers "not a policy measure" (not a label)


# A <Choice> with this value (or marked not_policy="true") is the answer "this line is not a policy
# measure" (news intros, 近日…发布…): stored and counted, never a label, never trained on or exported.
NOT_POLICY_CHOICE = "不是政策措施"


def parse_label_config(xml: str) -> LabelConfig:
    """Parse a Label Studio labeling config with one multiple-choice ``<Choices>`` tag.

    Raises
    ------
    SchemaMismatchError
        If the XML is invalid or has no ``<Choices>`` with ``<Choice>`` children.
    """
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise SchemaMismatchError(f"labeling config is not valid XML: {exc}") from exc
    choices = root.find(".//Choices")
    if choices is None:
        raise SchemaMismatchError(
            'labeling config has no <Choices> tag; add <Choices name="labels" toName="text" '
            'choice="multiple"> with one <Choice value=...> per label'
        )
    values = [(c.get("value", "").strip(), c.get("not_policy", "").lower() == "true") for c in choices.iter("Choice")]
    not_policy = next((v for v, marked in values if marked or v == NOT_POLICY_CHOICE), None)
    labels = tuple(v for v, _ in values if v != not_policy)
    if not labels or any(not label for label in labels):
        raise SchemaMismatchError("labeling config: every <Choice> needs a non-empty value attribute")
    if len(set(labels)) != len(labels):
        raise SchemaMismatchError("labeling config lists a <Choice> value twice")
    from_name, to_name = choices.get("name"), choices.get("toName")
    if not from_name or not to_name:
        raise SchemaMismatchError("labeling config: <Choices> needs both name and toName attributes")
    text_tag = next((t for t in root.iter() if t.get("name") == to_name), None)
    if text_tag is None or not text_tag.get("value", "").startswith("$"):
        raise SchemaMismatchError(f"labeling config: no tag named '{to_name}' with value=\"$key\" for <Choices toName>")
    return LabelConfig(xml, labels, from_name, to_name, text_tag.get("value", "")[1:], not_policy)


def load_label_config(path: str | Path = DEFAULT_LABEL_CONFIG) -> LabelConfig:
    """Read and parse a labeling config file."""
    path = Path(path)
    try:
        return parse_label_config(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"cannot read labeling config {path}: {exc.strerror}") from exc


def unknown_label_message(label: str, known: tuple[str, ...]) -> str:
    """A message naming an unknown label, the closest known one, and the label set."""
    close = difflib.get_close_matches(label, known, n=1, cutoff=0.4)
    hint = f"; did you mean '{close[0]}'?" if close else ";"
    return f"label '{label}' is not in the label set{hint} known: {', '.join(known)}"


def check_labels(labels, known: tuple[str, ...]) -> tuple[str, ...]:
    """Return ``labels`` in label-set order, raising UnknownLabelError on the first unknown one."""
    known_set = set(known)
    for label in labels:
        if label not in known_set:
            raise UnknownLabelError(unknown_label_message(label, known))
    chosen = set(labels)
    return tuple(label for label in known if label in chosen)
