"""A scenario spec as plain data (JSON-able dicts and lists) and back, for a user's scenario file and for what
a checkpoint, a run or an evaluation journal records of a registered scenario.

`spec_to_dict` writes every field (images in full), so a record rebuilds the same spec on any checkout;
`spec_from_dict` checks each field's type and values and names the one it refuses (`hosts[2].image.os`). A
user's file may give an image by the name of one the built-in scenarios use (`"image": "linux_web"`) and may
leave out the red and green agents, their defaults and the reward, which then are the paper scenarios'.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from typing import Any, Literal

from cagekit.scenarios.images import OS, Conn, HostImage, Proc, User
from cagekit.scenarios.spec import (
    DEFAULT_RED_TARGET,
    ActionCosts,
    BlueAgentSpec,
    HostSpec,
    Image,
    ScenarioSpec,
    SubnetSpec,
)

#: what a user's file may leave out: the paper scenarios' agents and reward (docs/scenarios.md)
PAPER_DEFAULTS: dict[str, Any] = {
    "red_agents": {"KillChainAgent": "KillChainAgent", "ExplorerAgent": "ExplorerAgent", "SleepAgent": "SleepAgent"},
    "green_agents": {"alerts": "FalseAlarmGreen", "none": "SleepAgent"},
    "default_red": "KillChainAgent",
    "default_green": "alerts",
    "reward": "paper",
}


def library_images() -> dict[str, HostImage]:
    """The images the built-in scenarios use, by name: what a scenario file may name instead of writing one."""
    from cagekit.scenarios import builtin_specs

    return {h.image.name: h.image for s in builtin_specs() for h in s.hosts if isinstance(h.image, HostImage)}


def spec_to_dict(spec: ScenarioSpec) -> dict[str, Any]:
    """Every field of `spec` as JSON values; a TypeError where an image is not a `HostImage` (no record of it
    could rebuild it)."""
    for host in spec.hosts:
        if not isinstance(host.image, HostImage):
            raise TypeError(f"scenario {spec.name!r}: host {host.name!r} has an image of type "
                            f"{type(host.image).__name__}; only cagekit.scenarios.images.HostImage images can be "
                            f"recorded (and so registered)")
    result: dict[str, Any] = json.loads(json.dumps(_plain(spec)))
    return result


def _plain(value: Any) -> Any:
    """A spec's value as JSON data; a mapping field (red_agents, blue_layouts, nacls, an image's services) as a
    list of [key, value] pairs, because its order is part of the spec (the red agents' order is the reports'),
    and the files that record a spec (meta.json, manifest.json) are written with their objects' keys sorted."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return [[_plain(k), _plain(v)] for k, v in value.items()]
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def spec_from_dict(data: Any, where: str = "scenario", record: bool = False) -> ScenarioSpec:
    """The spec `data` describes (as `spec_to_dict` writes it, or a user's file); a ValueError naming the field
    (`where` prefixes it: the file's name) otherwise. `record`: `data` is what a checkpoint, run, journal or
    manifest recorded, maybe before specs named red's target (`_legacy_target`)."""
    if isinstance(data, dict):
        data = {**{k: v for k, v in PAPER_DEFAULTS.items() if k not in data}, **data}
        if record:
            data = _legacy_target(data)
    try:
        spec = _coerce(data, ScenarioSpec, "")
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    assert isinstance(spec, ScenarioSpec)
    return spec


def _legacy_target(data: dict[str, Any]) -> dict[str, Any]:
    """A record written before specs named red's target (no `red_target`) on a network without a host called
    `Op_Server0`: its red went for that name and impacted nothing, which `red_target` None plays, so the record
    still loads as the network it was (its checkpoint, journal or submission with it)."""
    if "red_target" in data or not isinstance(data.get("hosts"), list):
        return data
    names = [h.get("name") for h in data["hosts"] if isinstance(h, dict)]
    return data if DEFAULT_RED_TARGET in names else {**data, "red_target": None}


def record_differences(old: Any, new: Any, where: str = "") -> list[tuple[str, Any, Any]]:
    """Where two records (`spec_to_dict`'s plain data) differ: (path, old value, new value) for each leaf that
    differs (`hosts[3].confidentiality`), so that a message names what changed instead of printing both specs."""
    old_map, new_map = _mapping(old), _mapping(new)
    if old_map is not None and new_map is not None:  # a mapping's pairs: named by key, not by position
        by_key = record_differences(old_map, new_map, where)
        if not by_key and list(old_map) != list(new_map):
            return [(f"{where} (order)", list(old_map), list(new_map))]
        return by_key
    if isinstance(old, dict) and isinstance(new, dict):
        keys = [*old, *(k for k in new if k not in old)]
        return [d for k in keys for d in record_differences(old.get(k, "<absent>"), new.get(k, "<absent>"),
                                                              _join(where, k))]
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [d for i, (a, b) in enumerate(zip(old, new, strict=True))
                for d in record_differences(a, b, f"{where}[{i}]")]
    return [] if old == new else [(where, old, new)]


def _mapping(value: Any) -> dict[str, Any] | None:
    """A record's mapping (`_plain`'s [key, value] pairs with text keys) as a dict; None for anything else."""
    if isinstance(value, list) and value and all(isinstance(p, list) and len(p) == 2 and isinstance(p[0], str)
                                                 for p in value):
        return dict(value)
    return None


def describe_differences(old: Any, new: Any, old_label: str, new_label: str, most: int = 3) -> str:
    """The first `most` of `record_differences(old, new)` in words ("hosts[3].confidentiality: journal has
    'High', this run has 'Medium'"), with how many more there are."""
    diffs = record_differences(old, new)
    text = "; ".join(f"{path or 'the spec'}: {old_label} {a!r}, {new_label} {b!r}" for path, a, b in diffs[:most])
    return text + (f" (and {len(diffs) - most} more)" if len(diffs) > most else "")


def _at(where: str) -> str:
    """The field path that starts a message ("hosts[1].image: "); none for the spec itself."""
    return f"{where}: " if where else ""


def _join(where: str, key: Any) -> str:
    return f"{where}.{key}" if where else str(key)


_CLASSES = (ScenarioSpec, HostSpec, SubnetSpec, BlueAgentSpec, ActionCosts, HostImage, OS, Proc, Conn, User)


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {value!r}" if not isinstance(value, (dict, list)) else type(value).__name__


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if hint is Image:
        if isinstance(value, str):
            images = library_images()
            if value not in images:
                raise ValueError(f"{_at(where)}unknown image {value!r}; give one of {', '.join(sorted(images))} "
                                 f"or write the image out (name, os, processes, users)")
            return images[value]
        return _coerce(value, HostImage, where)
    if hint in _CLASSES:
        return _dataclass(hint, value, where)
    if origin is Literal:
        if value not in args:
            raise ValueError(f"{_at(where)}must be one of {', '.join(map(repr, args))}, got {_describe(value)}")
        return value
    if origin in (typing.Union, types.UnionType):
        errors = []
        for option in args:
            if option is type(None):
                if value is None:
                    return None
                continue
            try:
                return _coerce(value, option, where)
            except ValueError as exc:
                errors.append(str(exc))
        raise ValueError(errors[0] if len(errors) == 1 else
                         f"{_at(where)}got {_describe(value)}, which is none of {' | '.join(_name(a) for a in args)}")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{_at(where)}must be a list, got {_describe(value)}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ValueError(f"{_at(where)}must be a list of {len(args)} items, got {len(value)}")
        return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True)))
    if origin is dict:
        if isinstance(value, list) and all(isinstance(p, list) and len(p) == 2 for p in value):
            value = dict(value)  # a record's [key, value] pairs, in the spec's order (`_plain`)
        if not isinstance(value, dict):
            raise ValueError(f"{_at(where)}must be a mapping, got {_describe(value)}")
        return {_coerce(k, args[0], _join(where, "key")): _coerce(v, args[1], _join(where, k))
                for k, v in value.items()}
    if hint is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{_at(where)}must be true or false, got {_describe(value)}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{_at(where)}must be an integer, got {_describe(value)}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{_at(where)}must be a number, got {_describe(value)}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ValueError(f"{_at(where)}must be a string, got {_describe(value)}")
        return value
    raise TypeError(f"{_at(where)}no reader for type {hint!r}")  # a field type added to the spec without one


def _name(hint: Any) -> str:
    return "null" if hint is type(None) else getattr(hint, "__name__", str(hint))


def _dataclass(cls: type, value: Any, where: str) -> Any:
    if not isinstance(value, dict):
        raise ValueError(f"{_at(where)}must be a mapping of {cls.__name__}'s fields, got {_describe(value)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in value if k not in fields]
    if unknown:
        raise ValueError(f"{_at(where)}unknown field(s) {', '.join(map(repr, unknown))} for {cls.__name__}; "
                         f"valid: {', '.join(fields)}")
    missing = [n for n, f in fields.items() if n not in value and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ValueError(f"{_at(where)}missing field(s) {', '.join(map(repr, missing))} of {cls.__name__}")
    hints = typing.get_type_hints(cls)
    kwargs = {k: _coerce(v, hints[k], _join(where, k)) for k, v in value.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{_at(where)}{exc}") from None


__all__ = ["PAPER_DEFAULTS", "describe_differences", "library_images", "record_differences", "spec_from_dict",
           "spec_to_dict"]
