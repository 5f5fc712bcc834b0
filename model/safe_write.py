"""The one way the project writes an output file: inside its folder, never onto a source, atomically, never onto a
special file.

- `check_target(path, inside=..., sources=...)`: the target (after resolving links and "..") stays inside `inside`
  when given, is not one of `sources` nor inside one (an imported dataset folder, the command's own input file),
  and is not a FIFO, device, socket or folder (those are refused, never replaced).
- `atomic_file(path, write)`: `write(tmp)` fills a temporary file beside the target; it is synced and renamed over the
  target, so readers see the old file or the whole new one.
- `atomic_files(folder, {relative name: write})`: a multi-file export. Every file is first written into a temporary
  folder beside `folder`; a failure while writing (disk full, an error in a writer) leaves the old export whole.
  A new folder is then renamed into place in one step; into an existing folder each file is renamed over its old
  version, and if one rename fails the ones already done are put back.

Errors are `UnsafeTargetError` (a `ValueError`) naming the option and the path. The module imports nothing from
the label store or torch: `python -m model.predict` writes through it too.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from model.images import file_kind

Writer = Callable[[Path], None]
# paths a command reads from, optionally each with what it is ("the folder dataset 'mnre' was imported from")
Sources = Iterable[str | Path] | Mapping[str | Path, str]
# one component of a file name an export derives from stored data (a split or dataset name)
SAFE_COMPONENT = re.compile(r"[A-Za-z0-9_.-]{1,100}")


class UnsafeTargetError(ValueError):
    """A target that cannot or must not be written: outside its folder, a source, a special file, unwritable."""


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_target(
    path: str | Path,
    *,
    inside: str | Path | None = None,
    sources: Sources = (),
    option: str = "--out",
    folder_ok: bool = False,
) -> Path:
    """`path` if it may be written (see the module doc), else UnsafeTargetError naming `option`. `folder_ok`: an
    existing folder is fine (the target of a multi-file export)."""
    path = Path(path)
    resolved = path.resolve()
    if inside is not None:
        folder = Path(inside).resolve()
        if resolved == folder or folder not in resolved.parents:
            raise UnsafeTargetError(f"{option} {path}: is outside {inside}, the folder it must be written in")
    described = sources.items() if isinstance(sources, Mapping) else ((source, None) for source in sources)
    for source, description in described:
        source_path = Path(source).resolve()
        if _inside(resolved, source_path):
            what = description or f"a source {'folder' if source_path.is_dir() else 'file'} of this command"
            raise UnsafeTargetError(
                f"{option} {path}: is {'inside ' if resolved != source_path else ''}{source_path}, {what}; "
                "write somewhere else"
            )
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return path
    except OSError as err:
        raise UnsafeTargetError(f"{option} {path}: cannot be written ({err.strerror})") from err
    if not stat.S_ISREG(info.st_mode) and not (folder_ok and stat.S_ISDIR(info.st_mode)):
        raise UnsafeTargetError(
            f"{option} {path}: is {file_kind(info.st_mode)}; refusing to replace it with a file"
        )
    return path


def _sync(path: Path) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def atomic_file(
    path: str | Path,
    write: Writer,
    *,
    inside: str | Path | None = None,
    sources: Sources = (),
    option: str = "--out",
) -> Path:
    """Write one file through a temporary file in the same folder, then rename it over `path`."""
    sources = sources if isinstance(sources, Mapping) else list(sources)
    path = check_target(path, inside=inside, sources=sources, option=option)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(tmp)
        _sync(tmp)
        check_target(path, inside=inside, sources=sources, option=option)  # again, right before the rename
        os.replace(tmp, path)
    except OSError as err:
        raise UnsafeTargetError(f"{option} {path}: cannot be written ({err.strerror or err})") from err
    finally:
        # the folder may not exist (it could not be made): then there is no temporary file to remove
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return path


def check_relative_name(name: str, option: str = "--out") -> Path:
    """A relative file name inside an export folder: components from SAFE_COMPONENT, none of them "." or ".."."""
    parts = name.split("/")
    if not parts or any(not SAFE_COMPONENT.fullmatch(part) or part in (".", "..") for part in parts):
        raise UnsafeTargetError(
            f"{option}: file name {name!r} (from stored data) is not made of letters, digits, '_', '.' and '-'; "
            "refusing to write it"
        )
    return Path(*parts)


def atomic_files(
    folder: str | Path,
    files: Mapping[str, Writer],
    *,
    sources: Sources = (),
    option: str = "--out",
) -> list[Path]:
    """Write several files under `folder` as one export (see the module doc); returns their paths in order."""
    folder = Path(folder)
    sources = sources if isinstance(sources, Mapping) else list(sources)
    check_target(folder, sources=sources, option=option, folder_ok=True)
    if folder.exists() and not folder.is_dir():
        raise UnsafeTargetError(f"{option} {folder}: is a file; an export of several files needs a folder")
    names = {name: check_relative_name(name, option) for name in files}
    targets = {
        name: check_target(folder / rel, inside=folder, sources=sources, option=option)
        for name, rel in names.items()
    }
    stage = folder.parent / f".{folder.name}.{uuid.uuid4().hex}.tmp"
    backup = folder.parent / f".{folder.name}.{uuid.uuid4().hex}.old"
    moved: list[tuple[Path, Path | None]] = []  # (target, its old version in backup, or None if it was new)
    try:
        try:
            stage.mkdir(parents=True)
            for name, write in files.items():
                staged = stage / names[name]
                staged.parent.mkdir(parents=True, exist_ok=True)
                write(staged)
                _sync(staged)
            if not folder.exists():
                os.rename(stage, folder)
                return [targets[name] for name in files]
            for name in files:
                target = check_target(targets[name], inside=folder, sources=sources, option=option)
                target.parent.mkdir(parents=True, exist_ok=True)
                old = None
                if target.exists():
                    old = backup / names[name]
                    old.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(target, old)
                moved.append((target, old))
                os.replace(stage / names[name], target)
        except OSError as err:
            for target, old in reversed(moved):  # put the old export back, file by file
                if old is not None:
                    os.replace(old, target)
                else:
                    target.unlink(missing_ok=True)
            raise UnsafeTargetError(
                f"{option} {folder}: cannot be written ({err.strerror or err}); the previous files are unchanged"
            ) from err
    finally:
        for leftover in (stage, backup):
            if leftover.exists():
                shutil.rmtree(leftover)
    return [targets[name] for name in files]
