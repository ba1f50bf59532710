"""A submission unpacked (or its folder copied) safely into a fresh private folder, and its files checked
against its manifest (required files, SHA-256 hashes) before any of its code runs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cagekit.submissions.errors import SubmissionError
from cagekit.submissions.manifest import REQUIRED_FILES, adopt_spec, check_hashes, load_manifest
from cagekit.submissions.safety import DEFAULT_LIMITS, Limits, make_workdir, remove_workdir, safe_extract, sha256_file


@dataclass
class Unpacked:
    root: Path  # private work folder (removed on cleanup)
    folder: Path  # the submission's files, inside root
    files: list[str]
    sha256: str  # of the zip (or "" for a folder)

    def cleanup(self) -> None:
        remove_workdir(self.root)


def unpack(path: str | Path, limits: Limits = DEFAULT_LIMITS) -> Unpacked:
    """Safely unpack into a fresh private folder (`UnsafeSubmission` if refused; nothing left behind)."""
    path = Path(path)
    root = make_workdir()
    try:
        folder = root / "submission"
        folder.mkdir()
        files = safe_extract(path, folder, limits)
        digest = sha256_file(path) if path.is_file() else ""
    except BaseException:
        remove_workdir(root)
        raise
    return Unpacked(root, folder, files, digest)


def one_level_down(unpacked: Unpacked, missing: list[str]) -> str:
    """What to add to "missing at the root" when the missing files all sit one folder down (a zip of the folder
    `myteam/` rather than of its contents): where they are and how to fix it; "" otherwise."""
    folders = {f.split("/")[0] for f in unpacked.files if f.count("/") == 1}
    down = sorted(d for d in folders if all(f"{d}/{f}" in unpacked.files for f in missing))
    if len(down) != 1:
        return ""
    folder = down[0]
    if unpacked.sha256:  # a zip ("" for a folder)
        fix = (f"the zip holds the folder rather than its contents: zip the folder's contents "
               f"(cd {folder} && zip -r ../{folder}.zip .), or build it with `cagekit package`")
        where = "zip's"
    else:
        fix = f"give the folder {folder}/ itself, or build the submission with `cagekit package`"
        where = "submission's"
    return f"; found one level down, under {folder}/, but they must be at the {where} root ({fix})"


def check_files(unpacked: Unpacked) -> dict[str, Any]:
    """Required files present and hashes matching: the manifest, or `SubmissionError` saying what is wrong."""
    missing = [f for f in REQUIRED_FILES if f not in unpacked.files]
    if missing:
        raise SubmissionError(f"missing required file(s) at the submission root: {', '.join(missing)}"
                              + one_level_down(unpacked, missing))
    try:
        manifest = load_manifest(unpacked.folder)
    except ValueError as exc:
        raise SubmissionError(str(exc)) from exc
    problems = check_hashes(unpacked.folder, manifest, unpacked.files)
    if problems:
        raise SubmissionError("hash check failed: " + "; ".join(problems))
    try:
        adopt_spec(manifest)  # a scenario of the packager's own, recorded in full: its name known from here on
    except ValueError as exc:
        raise SubmissionError(str(exc)) from exc
    return manifest
