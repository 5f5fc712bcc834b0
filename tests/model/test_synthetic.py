"""model.synthetic: the image-decided set is unchanged for a seed, and every record carries its evidence (the deciding
object's box, or the one trigger word of the text-decided variant) in rationales.jsonl."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from PIL import Image

from model.data import load_split
from model.synthetic import IMAGE_DECIDED, RATIONALES_FILE, TRIGGERS, generate, main, read_rationales

SIZES = {"train": 8, "val": 4, "test": 4}


def test_the_image_decided_set_is_the_same_for_a_seed_as_before_rationales(tmp_path):
    # digests of the files the generator wrote before rationales were added (seed 0, these sizes)
    expected = {
        "ours_test.txt": "75ccb220492a61c640caabe341b16bb52056064ac80462e02f8a4bac67028745",
        "ours_train.txt": "c0331b8e0e002557531ce280d372a5fa125fdc2726d03ac7d70f1e786aeb2fa4",
        "ours_val.txt": "01d50e141b4e295e8c07b94a02afe8a4b6a78d4c917943d45422add2b3979e51",
    }
    root = generate(tmp_path, SIZES, images_per_label=1, seed=0)
    found = {name: hashlib.sha256((root / "txt" / name).read_bytes()).hexdigest() for name in expected}
    assert found == expected


def test_image_decided_evidence_is_the_deciding_objects_box(tmp_path):
    root = generate(tmp_path, SIZES, images_per_label=2, seed=1)
    rationales = read_rationales(root)
    assert len(rationales) == sum(SIZES.values())
    for split in SIZES:
        records, _, _ = load_split(root, split)
        for record in records:
            rationale = rationales[(split, record.line)]
            assert rationale.source == "synthetic" and rationale.decided_by == "image"
            assert rationale.words == () and rationale.img_id == record.img_id
            image = np.asarray(Image.open(record.image_path).convert("RGB"))
            assert rationale.image_size == (image.shape[1], image.shape[0])
            # the box is the bounding box of the pixels of the relation's colour (right and bottom exclusive)
            colour = IMAGE_DECIDED[record.relation][1]
            ys, xs = np.nonzero((image == colour).all(axis=-1))
            assert rationale.box == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
            # the crop the model reads starts at the object's top left corner
            x0, y0, _, _ = rationale.box
            crop = np.asarray(Image.open(record.crop_paths[0]).convert("RGB"))
            assert np.array_equal(crop, image[y0 : y0 + crop.shape[0], x0 : x0 + crop.shape[1]])


def test_text_decided_evidence_is_the_one_trigger_word(tmp_path):
    root = generate(tmp_path, {"train": 40, "val": 8}, images_per_label=2, seed=0, decided_by="text")
    rationales = read_rationales(root, "train")
    assert {split for split, _ in rationales} == {"train"}
    records, _, _ = load_split(root, "train")
    triggers = {word: relation for relation, words in TRIGGERS.items() for word in words}
    images_of_label = {relation: set() for relation in TRIGGERS}
    for record in records:
        rationale = rationales[("train", record.line)]
        assert rationale.decided_by == "text" and rationale.box is None and len(rationale.words) == 1
        (index,) = rationale.words
        # the evidence word names the label, no other word of the post is a trigger, and it is not an entity
        assert triggers[record.tokens[index]] == record.relation
        assert [w for w in record.tokens if w in triggers] == [record.tokens[index]]
        assert index not in range(record.head.start, record.head.end)
        assert index not in range(record.tail.start, record.tail.end)
        images_of_label[record.relation].add(record.img_id.split("_")[1])
    # pictures are drawn independently of the label: each label meets objects of several relations
    assert all(len(kinds) > 1 for kinds in images_of_label.values())
    assert sorted(r.relation for r in records) == sorted(list(TRIGGERS) * 10)  # balanced


def test_read_rationales_names_the_bad_line(tmp_path):
    root = generate(tmp_path, {"train": 2}, images_per_label=1, seed=0)
    path = root / RATIONALES_FILE
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[1]["box"] = [10, 10, 5, 20]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    with pytest.raises(ValueError, match=r"rationales.jsonl:2: field 'box'"):
        read_rationales(root)
    path.write_text(json.dumps(rows[0]) + "\n{not json\n")
    with pytest.raises(ValueError, match=r"rationales.jsonl:2: not JSON"):
        read_rationales(root)


def test_cli_writes_the_text_decided_variant(tmp_path, capsys):
    out = tmp_path / "text"
    assert main([str(out), "--train", "4", "--val", "4", "--test", "0", "--decided-by", "text"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert {r.decided_by for r in read_rationales(out).values()} == {"text"}
    with pytest.raises(ValueError, match="decided_by"):
        generate(tmp_path / "x", {"train": 1}, decided_by="caption")
