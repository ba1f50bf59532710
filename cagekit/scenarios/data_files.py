"""Reading a user's JSON or YAML file of plain data: scenario files here, hyperparameter configs in
`cagekit.agents.config_file`. One reader, so that both read `3e-4` as the same number and name a bad file
the same way. And writing a file whole (`write_text_whole`, `write_bytes_whole`, `written_whole`), so that a kill
mid-write leaves the one before."""

from __future__ import annotations

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
            # PyYAML keeps the last of a key given twice: a second `hosts:` silently dropped the first list
            seen: dict[tuple[str, str], Any] = {}
            for key_node, _ in node.value if isinstance(node, yaml.MappingNode) else ():
                if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                    key = (key_node.tag, key_node.value)
                    if key in seen:
                        raise yaml.constructor.ConstructorError(
                            None, None, f"key {key_node.value!r} is given twice (lines {seen[key].line + 1} and "
                            f"{key_node.start_mark.line + 1}); give each key once")
                    seen[key] = key_node.start_mark
            return super().construct_mapping(node, deep=deep)

    Loader.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+$"),
                                 list("-+0123456789"))
    return Loader


def read_yaml(text: str) -> Any:
    """YAML text as values, exponents without a dot (`3e-4`) read as numbers (`_yaml_loader`)."""
    import yaml

    return yaml.load(text, Loader=_yaml_loader())  # noqa: S506 - a SafeLoader subclass


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
        return read_yaml(text) if is_yaml else json.loads(text, object_pairs_hook=_once_each)
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
