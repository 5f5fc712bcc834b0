"""Keys a hand can learn: one label -> key map per dataset (the dataset's label order by default, or a JSON file
per dataset), the same on every pair, shown on the page; the model's top label on Enter."""

from __future__ import annotations

import json

import pytest

from app.services.label_keys import LABEL_KEYS, RESERVED_KEYS, KeyMapError, label_keys, load_label_keys
from model.synthetic import MNRE_LABELS
from tests.app.conftest import no_exceptions
from tests.app.test_review import annotations, shown_pair

REVIEW = "views/review.py"


def test_the_default_map_follows_the_label_order_and_avoids_the_action_keys():
    keys = label_keys(MNRE_LABELS)
    assert list(keys) == list(MNRE_LABELS), "every MNRE label has a key"
    assert [keys[label] for label in MNRE_LABELS[:9]] == [str(k) for k in range(1, 10)]
    assert len(set(keys.values())) == len(keys), "no key on two labels"
    assert not set(keys.values()) & RESERVED_KEYS, "A S X U N P E T K, Streamlit's C and R: never a label key"
    assert label_keys(MNRE_LABELS) == keys, "stable"


def test_a_file_moves_labels_and_the_rest_keep_the_label_order():
    keys = label_keys(MNRE_LABELS, {"/per/per/parent": "1", "None": "0"})
    assert keys["/per/per/parent"] == "1" and keys["None"] == "0"
    rest = [label for label in MNRE_LABELS if label not in ("/per/per/parent", "None")]
    assert [keys[label] for label in rest[:3]] == ["2", "3", "4"]
    for bad in ({"/per/per/parent": "A"}, {"/per/per/parent": "1", "None": "1"}, {"not a label": "1"}):
        with pytest.raises(KeyMapError):
            label_keys(MNRE_LABELS, bad)


def test_load_reads_the_dataset_file(tmp_path, monkeypatch):
    monkeypatch.setenv("MRELENS_LABEL_KEYS_DIR", str(tmp_path))
    assert load_label_keys("synthetic", MNRE_LABELS) == label_keys(MNRE_LABELS)
    (tmp_path / "synthetic.json").write_text(json.dumps({"None": "9"}))
    assert load_label_keys("synthetic", MNRE_LABELS)["None"] == "9"
    assert set(LABEL_KEYS) >= set("123456789")


def shortcuts(at) -> dict[str, str]:
    """Label -> key of Review's label buttons; each button shows its key first ("B · /per/per/parent 4%")."""
    shown = {}
    for b in at.button:
        if b.key and b.key.startswith("review_label_"):
            key, rest = b.label.split(" · ")
            assert key.lower() == b.proto.shortcut.lower(), b.label
            # MNRE's "None" is shown as "None (no relation)" (app.ui.render.label_text)
            name = rest.rsplit(" ", 1)[0].replace("\\", "").removesuffix(" (no relation)")
            shown[name] = key.lower()
    return shown


def test_a_label_keeps_its_key_on_every_pair(make_app, seeded_url):
    at = make_app(seeded_url, REVIEW)
    no_exceptions(at)
    first = shortcuts(at)
    assert first == {label: key.lower() for label, key in label_keys(MNRE_LABELS).items()}
    at.button(key="review_next").click().run()
    at.button(key="review_next").click().run()
    assert shortcuts(at) == first, "the same key means the same label on the next pairs"


def test_enter_corrects_to_the_model_top_label(make_app, seeded_url):
    at = make_app(seeded_url, REVIEW)
    pair = shown_pair(at)
    top = at.button(key="review_top")
    assert top.proto.shortcut.lower() == "enter"
    predicted = next(m.value for m in at.markdown if "predicts" in m.value).split("**")[3].replace("\\", "")
    top.click().run()
    no_exceptions(at)
    assert annotations(seeded_url)[-1][0] == pair and annotations(seeded_url)[-1][3] == predicted
