"""Label Studio, both ways: the public entry to three modules that each hold one job.

db.label_studio_format   the labeling config (`db/label_studio_config.xml`) and the names, times and word offsets
                         its results use (what both directions share)
db.label_studio_export   tasks JSON out of the store: one task per curated pair, each annotator's decision in effect
                         as an annotation, the active model's output as a prediction
db.label_studio_import   Label Studio exports back in: parsed and checked whole, then written append-only; a repeat
                         import adds nothing, a decision older than the pair's current one is reported, not applied

Neither of the two directions imports the other; both import the format. Callers import from here.
"""

from __future__ import annotations

from db.label_studio_export import (
    DEFAULT_IMAGE_PREFIX,
    decisions_in_effect,
    export_label_studio,
    label_studio_pair_result,
    label_studio_tasks,
)
from db.label_studio_format import CONFIG_PATH, LABEL_STUDIO_FORMAT, config_relations
from db.label_studio_import import (
    DEFAULT_DATASET,
    DEFAULT_MAX_FILE_BYTES,
    DEFAULT_SPLIT,
    LabelStudioImportReport,
    ParsedExport,
    import_label_studio,
    read_label_studio,
)

__all__ = [
    "CONFIG_PATH",
    "DEFAULT_DATASET",
    "DEFAULT_IMAGE_PREFIX",
    "DEFAULT_MAX_FILE_BYTES",
    "DEFAULT_SPLIT",
    "LABEL_STUDIO_FORMAT",
    "LabelStudioImportReport",
    "ParsedExport",
    "config_relations",
    "decisions_in_effect",
    "export_label_studio",
    "import_label_studio",
    "label_studio_pair_result",
    "label_studio_tasks",
    "read_label_studio",
]
