"""Reading a user's JSON or YAML file of plain data: scenario files here, hyperparameter configs in
`cagekit.agents.config_file`. One reader, so that both read `3e-4` as the same number and name a bad file
the same way. And writing a record whole (`write_text_whole`), so that a kill mid-write leaves the one before."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

YAML_SUFFIXES = (".yaml", ".yml")


def _yaml_loader() -> Any:
    """PyYAML's safe loader, reading `3e-4` and `5e4` as numbers as YAML 1.2 does (YAML 1.1 wants `3.0e-4`,
    and a config saying `lr: 3e-4` was refused as text)."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+$"),
                                 list("-+0123456789"))
    return Loader


def read_yaml(text: str) -> Any:
    """YAML text as values, exponents without a dot (`3e-4`) read as numbers (`_yaml_loader`)."""
    import yaml

    return yaml.load(text, Loader=_yaml_loader())  # noqa: S506 - a SafeLoader subclass


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
        return read_yaml(text) if is_yaml else json.loads(text)
    except Exception as exc:  # noqa: BLE001 - json's and yaml's parse errors
        raise ValueError(f"{what} {file} is not valid {'YAML' if is_yaml else 'JSON'}: {exc}") from None


def write_text_whole(path: Path, text: str) -> None:
    """Write `text` to `path` whole or not at all (a sibling `.tmp` file renamed over it): a kill mid-write
    leaves the file as it was, never cut short."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


__all__ = ["YAML_SUFFIXES", "read_data_file", "read_yaml", "write_text_whole"]
