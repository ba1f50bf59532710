"""Hyperparameter files: one reader for every algorithm's `--config FILE` (JSON or YAML), and the base of the
learners' config dataclasses."""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Self

from cagekit.scenarios.data_files import YAML_SUFFIXES, read_data_file

#: the ranges a numeric config field may be held to, by the words its error message uses
RANGES: dict[str, Callable[[float], bool]] = {
    ">= 1": lambda v: v >= 1,
    ">= 0": lambda v: v >= 0,
    "> 0": lambda v: v > 0,
    "in [0, 1]": lambda v: 0 <= v <= 1,
    "in [0, 1)": lambda v: 0 <= v < 1,
    ">= 1, or -1 (as many as the rollout's steps)": lambda v: v >= 1 or v == -1,
}


def load_mapping(path: str | Path) -> dict[str, Any]:
    """The mapping of field -> value in a JSON or YAML file; a `ValueError` naming the file otherwise."""
    data = read_data_file(path, "config file")
    if data is None and Path(path).suffix.lower() in YAML_SUFFIXES:
        data = {}  # an empty YAML file: every default
    if not isinstance(data, dict):
        raise ValueError(f"config file {path} must hold a mapping of hyperparameters, got {type(data).__name__}")
    return data


def check_value(learner: str, key: str, value: Any, kind: Any) -> Any:
    """`value` if it suits the field's type (an int for a float, a whole float for an int); else a ValueError.

    A quoted "5e4" is text, and Python takes the text "false" as true: without this a config could
    train silently on a setting it does not say, or fail deep in torch."""
    ok = True
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    elif kind is str:
        ok = isinstance(value, str)
    elif typing.get_origin(kind) is dict:
        ok = isinstance(value, dict)
    if not ok:
        expected = {bool: "true or false", int: "a whole number", float: "a finite number", str: "text"}.get(
            kind, "a mapping")
        raise ValueError(f"{learner} config key {key!r} must be {expected}, got {value!r} "
                         f"({type(value).__name__})")
    return value


class HyperparameterConfig:
    """What a learner's hyperparameter dataclass shares: conversion to and from a mapping or a file, refusing
    unknown keys (a misspelt field would otherwise train silently with its default)."""

    #: the learner's name in error messages ("DIAL", "QMix")
    LEARNER: ClassVar[str] = "learner"
    #: field -> its range, a key of `RANGES`
    BOUNDS: ClassVar[dict[str, str]] = {}

    def check_bounds(self) -> None:
        """A ValueError naming the first field out of its range: a zero-sized network or an epsilon of 2 would
        otherwise fail deep in torch mid-run, or train on a schedule that means nothing."""
        for key, rule in self.BOUNDS.items():
            value = getattr(self, key)
            if not RANGES[rule](value):
                raise ValueError(f"{self.LEARNER} config key {key!r} must be {rule}, got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Self:
        data = dict(data or {})
        known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - known, key=str)  # by text: a YAML key may be a number (`1:`) beside a word
        if unknown:
            raise ValueError(f"unknown {cls.LEARNER} config key(s) {unknown}; valid: {sorted(known)}")
        hints = typing.get_type_hints(cls)
        return cls(**{key: check_value(cls.LEARNER, key, value, hints[key]) for key, value in data.items()})

    @classmethod
    def from_file(cls, path: str | Path) -> Self:
        """From a JSON or YAML file holding a mapping of field -> value."""
        return cls.from_dict(load_mapping(path))

    @classmethod
    def coerce(cls, config: Self | dict[str, Any] | str | Path | None) -> Self:
        """The config itself, the defaults (None), or one built from a mapping or a file's path."""
        if config is None or isinstance(config, dict):
            return cls.from_dict(config)
        if isinstance(config, str | Path):
            return cls.from_file(config)
        if isinstance(config, cls):
            return config
        raise TypeError(f"a {cls.LEARNER} config must be a {cls.__name__}, a mapping, a file's path or None, "
                        f"got {type(config).__name__}")
