"""Our scenarios, as data, and their builder into CybORG's scenario dict; a user's own scenarios, registered."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from cagekit.scenarios.builder import build_scenario_dict
from cagekit.scenarios.spec import BlueAgentSpec, HostSpec, ScenarioSpec, SubnetSpec


class ScenarioConflict(ValueError):
    """A scenario name that is already another network in this process (built in, or registered with another
    spec): what a record of it (a journal, a checkpoint) describes cannot be the scenario of that name here."""


#: scenarios registered in this process (`register`), by name; the built-in ones are never here
_REGISTERED: dict[str, ScenarioSpec] = {}


def builtin_specs() -> tuple[ScenarioSpec, ...]:
    from cagekit.scenarios.cage2 import CAGE2
    from cagekit.scenarios.paper import PAPER_LARGE, PAPER_SMALL

    return (PAPER_SMALL, PAPER_LARGE, CAGE2)


def _registry() -> dict[str, ScenarioSpec]:
    return {**{s.name: s for s in builtin_specs()}, **_REGISTERED}


def scenario_names() -> list[str]:
    """The built-in scenarios' names, then those registered in this process."""
    return list(_registry())


def is_builtin(name: str) -> bool:
    return any(s.name == name for s in builtin_specs())


def registered_specs() -> tuple[ScenarioSpec, ...]:
    """The scenarios registered in this process (not the built-in ones): what a worker process needs again."""
    return tuple(_REGISTERED.values())


def register(spec: ScenarioSpec) -> ScenarioSpec:
    """Make `spec.name` a scenario name in this process: `make_env`, `make_learner`/`train`, `load_team`,
    `make_team` and `evaluate` take it, checkpoints made on it record the spec (their meta.json) and load in
    a fresh process. Refused (ValueError): a built-in name, or a name registered with another spec
    (registering the same spec again does nothing); TypeError: not a ScenarioSpec, or a spec whose images
    cannot be recorded (not `HostImage`). Returns `spec`."""
    from cagekit.scenarios.records import spec_from_dict, spec_to_dict

    if not isinstance(spec, ScenarioSpec):
        raise TypeError(f"register takes a cagekit.scenarios.ScenarioSpec, got {type(spec).__name__} {spec!r}")
    if not isinstance(spec.name, str) or not spec.name.strip():
        raise ValueError(f"a registered scenario needs a name (a non-empty string), got {spec.name!r}")
    if is_builtin(spec.name):
        raise ScenarioConflict(f"scenario {spec.name!r} is built in and cannot be registered again; give your spec "
                               f"another name (dataclasses.replace(spec, name=...), or `name:` in a scenario file)")
    known = _REGISTERED.get(spec.name)
    if known is not None:
        if known == spec:
            return known
        raise _conflict(known, spec, "give this one another name")
    if spec_from_dict(spec_to_dict(spec), f"scenario {spec.name!r}") != spec:
        raise TypeError(f"scenario {spec.name!r} does not survive being recorded (spec_to_dict, spec_from_dict): "
                        f"its images or values are not plain data")
    _REGISTERED[spec.name] = spec
    return spec


def _conflict(known: ScenarioSpec, spec: ScenarioSpec, advice: str) -> ScenarioConflict:
    """The refusal of `spec` where `known`, another network, is registered under its name: what differs, and
    `advice`."""
    from cagekit.scenarios.records import describe_differences, spec_to_dict

    changed = describe_differences(spec_to_dict(known), spec_to_dict(spec), "registered", "this one")
    return ScenarioConflict(f"scenario {spec.name!r} is already registered with a different spec in this process "
                            f"({changed}); {advice}")


#: the key under which a checkpoint's meta.json, a run's run.json, a journal and a submission's manifest record a
#: registered scenario's spec in full (`recorded_spec`, read back by `register_recorded`)
SPEC_KEY = "scenario_spec"


def register_recorded(data: Any, where: str, scenario: str | None = None) -> ScenarioSpec:
    """Register the spec a checkpoint, run, journal or manifest recorded (`spec_to_dict`); `where` (the file)
    is named in the ValueError for a record that is not a spec, is not the spec of `scenario` (the name
    recorded beside it; checked before anything is registered), or conflicts with a spec registered under
    its name."""
    from cagekit.scenarios.records import spec_from_dict

    spec = spec_from_dict(data, f"{where}: {SPEC_KEY}", record=True)
    if scenario is not None and spec.name != scenario:
        raise ValueError(f"{where} records the spec of scenario {spec.name!r} for scenario {scenario!r}")
    known = _REGISTERED.get(spec.name)
    if known is not None and known != spec:  # the record cannot be renamed: the advice is about the one registered
        exc = _conflict(known, spec, "the record is another network of that name: give the one registered here "
                                     "another name (`name:` in its scenario file), or leave it unregistered (no "
                                     "--scenario file where a checkpoint or submission brings its own)")
        raise ScenarioConflict(f"{where} records scenario {spec.name!r}, which cannot be registered: {exc}")
    try:
        return register(spec)
    except (TypeError, ValueError) as exc:
        kind = ScenarioConflict if isinstance(exc, ScenarioConflict) else ValueError
        raise kind(f"{where} records scenario {spec.name!r}, which cannot be registered: {exc}") from None


@contextmanager
def registrations_undone() -> Iterator[None]:
    """Scenarios registered inside the block are unregistered after it: a check (`validate`) that registers
    what a submission records leaves the process as it found it, so its verdict on the next zip does not
    depend on the ones it checked before."""
    saved = dict(_REGISTERED)
    try:
        yield
    finally:
        _REGISTERED.clear()
        _REGISTERED.update(saved)


def recorded_spec(name: Any) -> dict[str, Any] | None:
    """What to record of scenario `name` beside it: None for a built-in (or unknown) name, the registered
    spec's dict otherwise (so that a fresh process can register it again: `register_recorded`)."""
    from cagekit.scenarios.records import spec_to_dict

    spec = _REGISTERED.get(name) if isinstance(name, str) else None
    return None if spec is None else spec_to_dict(spec)


def scenario_name(scenario: str | ScenarioSpec) -> str:
    """The name of `scenario`; a `ScenarioSpec` that is not a built-in one is registered (`register`)."""
    if not isinstance(scenario, ScenarioSpec):
        return scenario
    if is_builtin(scenario.name) and get_scenario(scenario.name) == scenario:
        return scenario.name
    return register(scenario).name


def get_scenario(name: str | ScenarioSpec) -> ScenarioSpec:
    """The spec called `name` (built in or registered); a `ValueError` naming the valid ones otherwise."""
    if isinstance(name, ScenarioSpec):
        return name
    registry = _registry()
    if not isinstance(name, str) or name not in registry:
        # the command line registers none: there a scenario of one's own is its file (--scenario my.yaml)
        hint = "" if _REGISTERED else (" (a scenario of your own: cagekit.scenarios.register(spec) first, or on the "
                                       "command line its file, --scenario FILE.yaml or .json)")
        raise ValueError(f"unknown scenario {name!r}; valid scenarios: {', '.join(registry)}{hint}")
    return registry[name]


__all__ = ["SPEC_KEY", "BlueAgentSpec", "HostSpec", "ScenarioConflict", "ScenarioSpec", "SubnetSpec",
           "build_scenario_dict", "builtin_specs", "get_scenario", "is_builtin", "recorded_spec", "register",
           "register_recorded", "registered_specs", "registrations_undone", "scenario_name", "scenario_names"]
