"""The comma-separated list options of the command lines (--reds, --lengths, --algos, --red, --train-red), read
one way; here, in the lowest layer, so that every layer that reads one can import it."""

from __future__ import annotations


def comma_list(text: str, what: str) -> list[str]:
    """The stripped items of `text`; a ValueError naming `what` where one is empty ("a,,b", "a,", " , b").

    Dropping an empty item silently would run on a list other than the one written: "a,,b" is most likely a
    name lost in editing, and the run would quietly score or train without it."""
    items = [item.strip() for item in str(text).split(",")]
    if not all(items):
        raise ValueError(f"{what} {text!r} has an empty item: separate the items by single commas, with none "
                         f"left empty (e.g. 'a,b')")
    return items
