"""Reading a user's JSON or YAML file of plain data: scenario files here, hyperparameter configs in
`cagekit.agents.config_file`. One reader, so that both read `3e-4` as the same number and name a bad file
the same way. And writing a file whole (`write_text_whole`, `write_bytes_whole`, `written_whole`), so that a kill
mid-write leaves the one before."""

from __future__ import annotations

import io
import json
import os
import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

YAML_SUFFIXES = (".yaml", ".yml")


def _yaml_loader() -> Any:
    """PyYAML's safe loader, reading `3e-4` and `5e4` as numbers as YAML 1.2 does (YAML 1.1 wants `3.0e-4`,
    and a config saying `lr: 3e-4` was refused as text)."""
    import yaml

    class Loader(yaml.SafeLoader):
        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            # PyYAML keeps the last of a key given twice: a second `hosts:` silently dropped the first list. Keys
            # are compared as read, not as written: `1:` and `01:`, or `true:` and `True:`, are one key
            seen: dict[Any, Any] = {}
            for key_node, _ in node.value if isinstance(node, yaml.MappingNode) else ():
                if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                    key = self.construct_object(key_node)
                    try:
                        first = seen.get(key)
                    except TypeError:  # unhashable: refused by PyYAML itself
                        continue
                    if first is not None:
                        spelt = ("" if first.value == key_node.value else
                                 f", written {first.value!r} and {key_node.value!r}")
                        raise yaml.constructor.ConstructorError(
                            None, None, f"key {key!r} is given twice (lines {first.start_mark.line + 1} and "
                            f"{key_node.start_mark.line + 1}{spelt}); give each key once")
                    seen[key] = key_node
            return super().construct_mapping(node, deep=deep)

    Loader.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+$"),
                                 list("-+0123456789"))
    return Loader


class _NamedText(io.StringIO):
    """Text with the name of the file it was read from, which PyYAML's messages give as the place of an error
    (for a plain string they say "<unicode string>")."""

    def __init__(self, text: str, name: str) -> None:
        super().__init__(text)
        self.name = name


def read_yaml(text: str, name: str | None = None) -> Any:
    """YAML text as values, exponents without a dot (`3e-4`) read as numbers (`_yaml_loader`); `name`: the
    file it came from, named where an error is placed."""
    import yaml

    stream = text if name is None else _NamedText(text, name)
    return yaml.load(stream, Loader=_yaml_loader())  # noqa: S506 - a SafeLoader subclass


def _once_each(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are each given once: json keeps the last of a key given twice, silently."""
    twice = sorted(key for key, n in Counter(key for key, _ in pairs).items() if n > 1)
    if twice:
        raise ValueError(f"key(s) {', '.join(map(repr, twice))} given twice in one object; give each key once")
    return dict(pairs)


def read_data_file(path: str | Path, what: str) -> Any:
    """The values in the file at `path`: YAML for a .yaml or .yml file, JSON otherwise. A ValueError names
    `what` the file is ("scenario file", "config file"), the file, and why it cannot be read."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{what} {file} cannot be read: {exc}") from None
    is_yaml = file.suffix.lower() in YAML_SUFFIXES
    try:
        return read_yaml(text, str(file)) if is_yaml else json.loads(text, object_pairs_hook=_once_each)
    except Exception as exc:  # noqa: BLE001 - json's and yaml's parse errors
        raise ValueError(f"{what} {file} is not valid {'YAML' if is_yaml else 'JSON'}: {exc}") from None


#: the suffix of the sibling file a whole write goes to before it is renamed over its target: one left behind
#: (a kill mid-write) is no record, and a folder's readers pass over it
TEMPORARY_SUFFIX = ".tmp"


@contextmanager
def written_whole(path: Path) -> Iterator[Path]:
    """A sibling temporary path (`path` + `TEMPORARY_SUFFIX`) to write `path`'s new content to, renamed over
    `path` when the block ends: a kill mid-write leaves the file as it was, never cut short. An exception in the
    block removes the temporary file and leaves `path` as it was."""
    temporary = path.with_name(path.name + TEMPORARY_SUFFIX)
    try:
        yield temporary
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    os.replace(temporary, path)


def write_text_whole(path: Path, text: str) -> None:
    """Write `text` to `path` whole or not at all (`written_whole`)."""
    with written_whole(path) as temporary:
        temporary.write_text(text)


def write_bytes_whole(path: Path, data: bytes) -> None:
    """Write `data` to `path` whole or not at all (`written_whole`)."""
    with written_whole(path) as temporary:
        temporary.write_bytes(data)


__all__ = ["TEMPORARY_SUFFIX", "YAML_SUFFIXES", "read_data_file", "read_yaml", "write_bytes_whole",
           "write_text_whole", "written_whole"]
