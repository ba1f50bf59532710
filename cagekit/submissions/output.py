"""Where and how a package is written: the output path checked before anything is built, a reproducible zip
(sorted entries, fixed timestamps and permissions) written atomically, or a folder; and the refusal to write
over a zip that holds another submission."""

from __future__ import annotations

import io
import json
import zipfile
import zlib
from pathlib import Path

from cagekit.scenarios.data_files import write_bytes_whole
from cagekit.submissions.manifest import MANIFEST
from cagekit.submissions.safety import DEFAULT_LIMITS

_FIXED_TIME = (1980, 1, 1, 0, 0, 0)


def _zip_info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.create_system = 3
    info.external_attr = 0o100644 << 16
    return info


def zip_bytes(files: dict[str, bytes]) -> bytes:
    """`files` as a reproducible zip: sorted entries, fixed timestamps and permissions (same files, same bytes)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for rel in sorted(files):
            data = files[rel]
            # data that deflates to within half the validator's zip-bomb ratio (zeroed weights) is stored as
            # it is, so that the package passes its own validation
            bomb_like = len(data) > DEFAULT_LIMITS.ratio_floor_bytes and \
                len(zlib.compress(data, 9)) * DEFAULT_LIMITS.max_ratio / 2 < len(data)
            method = zipfile.ZIP_STORED if bomb_like else zipfile.ZIP_DEFLATED
            zf.writestr(_zip_info(rel), data, compress_type=method, compresslevel=9)
    return buffer.getvalue()


def write_zip(files: dict[str, bytes] | bytes, out: str | Path) -> Path:
    """Write `files` (or the zip `zip_bytes` made of them) as a reproducible zip at `out`, atomically: a reader
    never sees half a zip."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_whole(out, files if isinstance(files, bytes) else zip_bytes(files))
    return out


def check_replace(data: bytes, out: Path) -> None:
    """Refuse to write the zip `data` over an existing zip that holds another submission (FileExistsError
    naming both ways on): a typo in --out must not lose a packaged team. Packaging the same team again (same
    bytes, as when the shipped submissions are rebuilt to show they did not change) is allowed."""
    if not out.is_file() or out.read_bytes() == data:
        return
    try:
        with zipfile.ZipFile(out) as zf:
            held = json.loads(zf.read(MANIFEST))
            what = (f"a submission ({held.get('kind', '?')} on {held.get('scenario', '?')}, team "
                    f"{held.get('team', '?')!r})")
    except (zipfile.BadZipFile, KeyError, ValueError, AttributeError):
        what = "a file that is not a cagekit submission"
    raise FileExistsError(f"--out {out} already holds {what}, which differs from this one; give another path, "
                          f"or --replace to write over it")


def write_folder(files: dict[str, bytes], out: str | Path) -> Path:
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty")
    for rel in sorted(files):
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(files[rel])
    return out


def is_zip_path(out: str | Path) -> bool:
    """Whether `out` is written as a zip: its name ends in .zip, in any case (T.ZIP too, as zip tools read it)."""
    return Path(out).name.lower().endswith(".zip")


def check_out(out: str | Path) -> None:
    """Refuse an output path that cannot take the submission (ValueError naming it and what is valid), before
    any file is built: a zip path that is a folder, a folder path that is a file or a non-empty folder, or
    either under a file."""
    out = Path(out)
    zipped = is_zip_path(out)
    for place in out.parents:
        if place.exists():
            if not place.is_dir():
                raise ValueError(f"--out {out} lies under {place}, which is a file; give a path in a folder")
            break
    if zipped and out.is_dir():
        raise ValueError(f"--out {out} is a folder; a path ending in .zip is written as a zip file: give one that "
                         f"is not a folder")
    if not zipped and out.exists():
        if not out.is_dir():
            raise ValueError(f"--out {out} is an existing file, and a path not ending in .zip is written as a "
                             f"folder: give a new or empty folder, or a path ending in .zip")
        if any(out.iterdir()):
            raise ValueError(f"--out {out} is a folder that is not empty; give a new or empty folder, or a path "
                             f"ending in .zip")
