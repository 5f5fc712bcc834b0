"""The Label Studio format both directions share: the labeling config (`db/label_studio_config.xml`), the names its
results refer to, times and word offsets as Label Studio writes them.

The config has an `Image`, a `Text` with word-granular `Labels` ("head", "tail"), `Relations` with the 23 MNRE
relations, a "reject pair" `Choices` and a note `TextArea`. Results follow Label Studio's task format: span regions
`{"id", "from_name": "entity", "to_name": "text", "type": "labels", "value": {"start", "end", "text", "labels"}}`
(character offsets into `data.text`) and one relation `{"type": "relation", "from_id": <head region>, "to_id": <tail
region>, "direction": "right", "labels": [<relation>]}`. A decision's rationale (db.rationales) is word-granular
`labels` regions from "evidence" labelled ["evidence"] and one `rectanglelabels` region from "evidence_box" on the
image, in percent of the image (`original_width` / `original_height` give its pixels). db.label_studio_export writes tasks, db.label_studio_import
reads them back; db.label_studio is the public entry to both.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

CONFIG_PATH = Path(__file__).with_name("label_studio_config.xml")
# names of the config's tags that results refer to (from_name / to_name)
SPAN_CONTROL, TEXT_OBJECT, REJECT_CONTROL, NOTE_CONTROL = "entity", "text", "pair", "note"
HEAD, TAIL, REJECT_CHOICE = "head", "tail", "reject pair"
EVIDENCE_CONTROL, EVIDENCE_BOX_CONTROL, IMAGE_OBJECT, EVIDENCE = (
    "evidence",
    "evidence_box",
    "image",
    "evidence",
)
LABEL_STUDIO_FORMAT = "labelstudio"  # the `python -m db export --format` name


def config_relations(path: str | Path = CONFIG_PATH) -> list[str]:
    """The relation labels of the labeling config, in order (the 23 MNRE relations for the shipped config)."""
    root = ET.parse(path).getroot()
    return [rel.attrib["value"] for rel in root.iter("Relation")]


def iso_time(value: datetime) -> str:
    """A time as Label Studio writes it (UTC, ISO 8601, a Z suffix)."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def word_offsets(tokens: list[str]) -> list[tuple[int, int]]:
    """Character [start, end) of each word in " ".join(tokens)."""
    offsets, pos = [], 0
    for tok in tokens:
        offsets.append((pos, pos + len(tok)))
        pos += len(tok) + 1
    return offsets


def word_runs(indices) -> list[tuple[int, int]]:
    """Sorted word indices as maximal runs of consecutive words, [start, end)."""
    runs: list[tuple[int, int]] = []
    for i in sorted(indices):
        if runs and runs[-1][1] == i:
            runs[-1] = (runs[-1][0], i + 1)
        else:
            runs.append((i, i + 1))
    return runs
