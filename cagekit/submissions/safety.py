"""Unpacking untrusted submissions without letting them touch anything outside a fresh folder.

A submission (a zip, or a folder) is copied into a new extraction folder only after every entry has
been checked: no absolute paths, no `..`, no backslashes or drive letters, no symlinks or other
special files, no duplicate names, at most `Limits.max_files` files, and no zip bomb. Sizes are never
taken from the zip headers alone: each entry is streamed with a byte cap, so a header that lies about
its size cannot push more than the limit onto disk; the compression ratio is checked too.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

_CHUNK = 1 << 20


class UnsafeSubmission(ValueError):
    """The submission was refused before any of its code ran (path tricks, symlinks, zip bombs...)."""


@dataclass(frozen=True)
class Limits:
    """What an unpacked submission may hold. Weights of the built-in algorithms are a few MB."""

    max_total_bytes: int = 200 * 1024 * 1024
    max_file_bytes: int = 100 * 1024 * 1024
    max_files: int = 2000
    #: uncompressed / compressed above this (for entries over `ratio_floor_bytes`) is a zip bomb
    max_ratio: float = 200.0
    ratio_floor_bytes: int = 1024 * 1024


DEFAULT_LIMITS = Limits()


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def check_member_name(name: str) -> PurePosixPath:
    """The relative path an archive entry may be written to, or `UnsafeSubmission` naming it."""
    if not name or "\x00" in name:
        raise UnsafeSubmission(f"entry {name!r}: empty name or NUL byte")
    if "\\" in name:
        raise UnsafeSubmission(f"entry {name!r}: backslash in path (refused: Windows-style paths can escape)")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise UnsafeSubmission(f"entry {name!r}: absolute path")
    path = PurePosixPath(name)
    if any(part == ".." for part in path.parts):
        raise UnsafeSubmission(f"entry {name!r}: '..' in path (would escape the extraction folder)")
    parts = [p for p in path.parts if p not in ("", ".")]
    if not parts:
        raise UnsafeSubmission(f"entry {name!r}: no file name")
    return PurePosixPath(*parts)


def _entry_kind(info: zipfile.ZipInfo) -> str:
    mode = (info.external_attr >> 16) & 0xFFFF
    fmt = stat.S_IFMT(mode)
    if fmt == stat.S_IFLNK:
        return "symlink"
    if info.is_dir() or fmt == stat.S_IFDIR:
        return "dir"
    if fmt not in (0, stat.S_IFREG):
        return "special"
    return "file"


def _inside(root: Path, rel: PurePosixPath) -> Path:
    target = (root / rel).resolve()
    if target != root and root not in target.parents:
        raise UnsafeSubmission(f"entry {str(rel)!r} resolves outside the extraction folder")
    return target


def _extract_zip(archive: Path, dest: Path, limits: Limits) -> list[str]:
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise UnsafeSubmission(f"{archive.name}: not a readable zip archive ({exc})") from exc
    with zf:
        infos = zf.infolist()
        files = [i for i in infos if _entry_kind(i) != "dir"]
        if len(files) > limits.max_files:
            raise UnsafeSubmission(f"too many files: {len(files)} > {limits.max_files}")
        seen: set[str] = set()
        plan: list[tuple[zipfile.ZipInfo, PurePosixPath]] = []
        for info in infos:  # check every entry before writing any
            rel = check_member_name(info.filename)
            kind = _entry_kind(info)
            if kind == "symlink":
                raise UnsafeSubmission(f"entry {info.filename!r}: symbolic link (refused)")
            if kind == "special":
                raise UnsafeSubmission(f"entry {info.filename!r}: not a regular file (refused)")
            if info.flag_bits & 0x1:
                raise UnsafeSubmission(f"entry {info.filename!r}: encrypted (refused)")
            key = str(rel)
            if kind == "file":
                if key in seen:
                    raise UnsafeSubmission(f"entry {info.filename!r}: duplicate name")
                seen.add(key)
                if info.file_size > limits.max_file_bytes:
                    raise UnsafeSubmission(f"entry {info.filename!r}: {info.file_size} bytes uncompressed is over "
                                           f"the per-file limit of {limits.max_file_bytes} (zip bomb?)")
                plan.append((info, rel))
            else:
                _inside(dest, rel).mkdir(parents=True, exist_ok=True)
        declared = sum(i.file_size for i, _ in plan)
        if declared > limits.max_total_bytes:
            raise UnsafeSubmission(f"{declared} bytes uncompressed in all is over the limit of "
                                   f"{limits.max_total_bytes} (zip bomb?)")
        for name in seen:  # a file and a folder of the same name
            for other in seen:
                if other.startswith(name + "/"):
                    raise UnsafeSubmission(f"entry {name!r} is both a file and a folder")
        total = 0
        for info, rel in sorted(plan, key=lambda p: str(p[1])):
            target = _inside(dest, rel)
            target.parent.mkdir(parents=True, exist_ok=True)
            written = 0
            try:
                with zf.open(info) as src, open(target, "xb") as out:
                    while True:
                        block = src.read(_CHUNK)
                        if not block:
                            break
                        written += len(block)
                        total += len(block)
                        if written > limits.max_file_bytes:
                            raise UnsafeSubmission(f"entry {info.filename!r}: more than {limits.max_file_bytes} "
                                                   f"bytes uncompressed (zip bomb)")
                        if total > limits.max_total_bytes:
                            raise UnsafeSubmission(f"more than {limits.max_total_bytes} bytes uncompressed in all "
                                                   f"(zip bomb)")
                        if written > limits.ratio_floor_bytes and \
                                written > limits.max_ratio * max(info.compress_size, 1):
                            raise UnsafeSubmission(
                                f"entry {info.filename!r}: compression ratio over {limits.max_ratio:g} "
                                f"({written} bytes from {info.compress_size} so far; zip bomb)")
                        out.write(block)
            except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, NotImplementedError) as exc:
                raise UnsafeSubmission(f"entry {info.filename!r}: corrupt or unsupported ({exc})") from exc
            except FileExistsError as exc:
                raise UnsafeSubmission(f"entry {info.filename!r}: written twice") from exc
        return sorted(seen)


def _copy_folder(source: Path, dest: Path, limits: Limits) -> list[str]:
    plan: list[tuple[Path, PurePosixPath]] = []
    total = 0
    for dirpath, dirnames, filenames in os.walk(source, followlinks=False):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            full = Path(dirpath) / name
            rel = check_member_name(full.relative_to(source).as_posix())
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                raise UnsafeSubmission(f"entry {str(rel)!r}: symbolic link (refused)")
            if stat.S_ISDIR(st.st_mode):
                if name == "__pycache__":
                    dirnames.remove(name)
                continue
            if not stat.S_ISREG(st.st_mode):
                raise UnsafeSubmission(f"entry {str(rel)!r}: not a regular file (refused)")
            if st.st_size > limits.max_file_bytes:
                raise UnsafeSubmission(f"entry {str(rel)!r}: {st.st_size} bytes is over the per-file limit of "
                                       f"{limits.max_file_bytes}")
            total += st.st_size
            if total > limits.max_total_bytes:
                raise UnsafeSubmission(f"more than {limits.max_total_bytes} bytes in all")
            plan.append((full, rel))
            if len(plan) > limits.max_files:
                raise UnsafeSubmission(f"too many files: more than {limits.max_files}")
    for full, rel in plan:
        target = _inside(dest, rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(full, "rb") as src, open(target, "xb") as out:
            copied = 0
            for block in iter(lambda s=src: s.read(_CHUNK), b""):  # type: ignore[misc]
                copied += len(block)
                if copied > limits.max_file_bytes:  # grew since it was listed
                    raise UnsafeSubmission(f"entry {str(rel)!r}: over the per-file limit")
                out.write(block)
    return sorted(str(rel) for _, rel in plan)


def safe_extract(source: str | Path, dest: str | Path, limits: Limits = DEFAULT_LIMITS) -> list[str]:
    """Unpack a submission zip (or copy a submission folder) into the empty folder `dest`.

    Returns the relative paths of the files written. Raises `UnsafeSubmission` (with what was wrong)
    on anything suspicious; the caller removes `dest` then.
    """
    source, dest = Path(source), Path(dest).resolve()
    if not dest.is_dir() or any(dest.iterdir()):
        raise ValueError(f"extraction folder {dest} must exist and be empty")
    if source.is_dir():
        return _copy_folder(source, dest, limits)
    if not source.is_file():
        raise UnsafeSubmission(f"{source}: no such submission (expected a .zip file or a folder)")
    return _extract_zip(source, dest, limits)


def make_workdir(prefix: str = "cagekit-submission-") -> Path:
    """A fresh private folder (mode 0700) in the system temporary directory, named with this process's id so
    that a later call can remove what a process killed outright (kill -9 runs no cleanup) left behind."""
    remove_orphaned_workdirs(prefix)
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-"))


def remove_orphaned_workdirs(prefix: str = "cagekit-submission-") -> list[Path]:
    """Remove this user's `make_workdir` folders whose process is gone; returns them. POSIX only (elsewhere
    asking whether a process exists is not harmless), and never a folder whose owner may still run."""
    from cagekit.submissions.lifeline import process_exists

    if os.name != "posix":
        return []
    removed = []
    for folder in Path(tempfile.gettempdir()).glob(f"{prefix}*-*"):
        pid = folder.name[len(prefix):].split("-", 1)[0]
        try:
            mine = folder.is_dir() and not folder.is_symlink() and folder.stat().st_uid == os.getuid()
        except OSError:
            continue
        if pid.isdigit() and mine and not process_exists(int(pid)):
            remove_workdir(folder)
            removed.append(folder)
    return removed


def remove_own_workdirs(prefix: str = "cagekit-submission-") -> None:
    """Remove this process's `make_workdir` folders: for a process ending at once (`os._exit`), whatever it was
    doing, where one was being made or filled and no cleanup of its own will run."""
    for folder in Path(tempfile.gettempdir()).glob(f"{prefix}{os.getpid()}-*"):
        if folder.is_dir() and not folder.is_symlink():
            remove_workdir(folder)


def remove_workdir(path: str | Path) -> None:
    """Remove a folder made by `make_workdir`, making read-only parts writable first."""
    path = Path(path)
    if not path.exists():
        return

    for dirpath, _dirs, _files in os.walk(path):
        try:
            os.chmod(dirpath, stat.S_IRWXU)
        except OSError:
            pass
    shutil.rmtree(path, ignore_errors=True)
