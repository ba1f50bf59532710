"""The command lines' options read one way: comma-separated lists (--reds, --lengths, --algos, --red,
--train-red) and output folders; here, in the lowest layer, so that every layer that reads one can import it."""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path
from typing import Any


def comma_list(text: str, what: str) -> list[str]:
    """The stripped items of `text`; a ValueError naming `what` where one is empty ("a,,b", "a,", " , b").

    Dropping an empty item silently would run on a list other than the one written: "a,,b" is most likely a
    name lost in editing, and the run would quietly score or train without it."""
    items = [item.strip() for item in str(text).split(",")]
    if not all(items):
        raise ValueError(f"{what} {text!r} has an empty item: separate the items by single commas, with none "
                         f"left empty (e.g. 'a,b')")
    return items


def check_folder_path(folder: Path, what: str, hint: str) -> None:
    """A ValueError where `folder` is a file or lies under one, or where it (or the folder it would be made in)
    cannot be written, naming it as `what` (the option the user gave) and what to give instead (`hint`): checked
    before anything is loaded or written, not met as 'File exists' or 'Permission denied: PATH' once a run has
    been set up (or, for an evaluation, with its team loaded and checked)."""
    for place in (folder, *folder.parents):
        if place.exists():
            if not place.is_dir():
                where = "is a file" if place == folder else f"lies under {place}, which is a file"
                raise ValueError(f"{what} {folder} {where}; {hint}")
            if not os.access(place, os.W_OK | os.X_OK):  # read-only: a mount, another user's folder
                where = "is" if place == folder else f"cannot be made: {place}, where it would be, is"
                raise ValueError(f"{what} {folder} {where} not writable (read-only, or another user's); {hint} "
                                 f"where you can write")
            return


class CommandParser(argparse.ArgumentParser):
    r"""An ArgumentParser that reads a word starting with '-' and a digit ('-5,abc', '-1e-3') as a value, as
    newer Pythons' argparse does (its negative-number pattern, r'-\.?\d'): `--lengths -5,abc` was refused as
    "argument --lengths: expected one argument", where the option's own check names what is wrong with the
    lengths. No option of ours starts with a digit, so none is lost. Subcommands' parsers are of this class
    too (argparse makes them of their parent's)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = re.compile(r"-\.?\d")
