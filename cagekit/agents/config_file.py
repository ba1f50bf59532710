"""Hyperparameter files: one reader for every algorithm's `--config FILE` (JSON or YAML)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def load_mapping(path: str | Path) -> dict[str, Any]:
    """The mapping of field -> value in a JSON or YAML file; a `ValueError` naming the file otherwise."""
    path = Path(path)
    try:
        text = path.read_text()
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            data = json.loads(text)
    except Exception as exc:  # noqa: BLE001 - OS / json / yaml errors
        raise ValueError(f"cannot read config file {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"config file {path} must hold a mapping of hyperparameters, got {type(data).__name__}")
    return data
