"""Package a team as a CAGE-4 style submission: a reproducible zip with `submission.py`, `metadata`,
the weights under `team/`, and `manifest.json` (scenario, agents, spaces, channel, files' SHA-256).

`package` checks the output path (output.py), builds the files (build.py, from the source sources.py resolves),
and writes them, staged and validated first when the caller asks.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from cagekit.submissions.build import build_files
from cagekit.submissions.output import check_out, check_replace, is_zip_path, write_folder, write_zip, zip_bytes


class PackageRejected(ValueError):
    """The built package failed the caller's check (its validation); nothing was written at `out`."""


def _move_into(staged: Path, out: Path, staging: Path) -> None:
    """Move the staged package's entries into the empty folder `out` (which holds the `staging` folder); if that
    stops part way, the entries moved go back, so that `out` is left empty, as it was."""
    if any(entry != staging for entry in out.iterdir()):
        raise ValueError(f"--out {out} is no longer empty; give a new or empty folder, or a path ending in .zip")
    moved: list[str] = []
    try:
        for entry in sorted(staged.iterdir()):
            os.replace(entry, out / entry.name)
            moved.append(entry.name)
    except BaseException:
        for name in reversed(moved):
            os.replace(out / name, staged / name)
        raise


def package(source: str | Path, name: str, team: str, technique: str, out: str | Path, *,
            scenario: str | None = None, layout: str | None = None, channel: bool | None = None,
            sau: bool | None = None, message_cost: float | None = None, seed: int | None = None,
            replace: bool = False, include: str | os.PathLike[str] | Iterable[str | os.PathLike[str]] = (),
            accept: Callable[[Path], bool] | None = None) -> Path:
    """Package `source` (a heuristic name, a checkpoint directory, a training run folder or a Python team,
    FILE.py:NAME) at `out`.

    `out` ending in `.zip` gets a reproducible zip (same inputs, same bytes); anything else a folder.
    An existing zip holding another submission is written over only with `replace`.
    With `accept` (the command line's validation), the package is built in a staging folder beside `out`
    and moved to `out` only if `accept(staged_path)` is true; otherwise PackageRejected, and `out` (a good
    submission `--replace` was about to write over, say) is left as it was.
    Environment settings come from the checkpoint; for heuristic and Python teams from the arguments (defaults:
    scenario paper-small, its default layout, channel and SAU on, the scenario's message cost)."""
    check_out(out)
    files = build_files(source, name=name, team=team, technique=technique, scenario=scenario, layout=layout,
                        channel=channel, sau=sau, message_cost=message_cost, seed=seed, include=include)
    out = Path(out)
    data = None
    if is_zip_path(out):
        data = zip_bytes(files)  # compressed once, for the check and the file
        if not replace:
            check_replace(data, out)
    if accept is None:
        return write_zip(data, out) if data is not None else write_folder(files, out)
    # an existing folder (empty: check_out refused any other) is filled, not replaced, so that it keeps what the
    # user gave it (mode, owner, group, ACLs; a link stays one); it is staged in, on the folder's own file system
    fill = out.is_dir()
    made = [p for p in (out.parent, *out.parent.parents) if not p.exists()]  # the staging folder's, new
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        try:  # made here: its own error named the staging folder, a path the user never gave
            staging_folder = tempfile.TemporaryDirectory(dir=out if fill else out.parent, prefix=f".{out.name}.staged-")
        except OSError as exc:
            raise OSError(f"--out {out}: cannot write in {out if fill else out.parent} ({exc.strerror or exc})") \
                from None
        with staging_folder as staging:
            staged = Path(staging) / (out.name or "package")  # `--out .` has no name
            write_zip(data, staged) if data is not None else write_folder(files, staged)
            if not accept(staged):
                raise PackageRejected(f"{out} not written (what was there is untouched): the package failed its "
                                      f"validation (above); fix the team, or --no-validate to write it anyway")
            if fill:
                _move_into(staged, out, Path(staging))
            else:
                os.replace(staged, out)
    except BaseException:  # rejected, failed or interrupted: no folder made for it is left either
        for folder in made:  # deepest first
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        raise
    return out
