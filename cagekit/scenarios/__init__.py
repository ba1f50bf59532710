"""Our scenarios, as data, and their builder into CybORG's scenario dict."""

from __future__ import annotations

from cagekit.scenarios.builder import build_scenario_dict
from cagekit.scenarios.spec import BlueAgentSpec, HostSpec, ScenarioSpec, SubnetSpec


def _registry() -> dict[str, ScenarioSpec]:
    from cagekit.scenarios.cage2 import CAGE2
    from cagekit.scenarios.paper import PAPER_LARGE, PAPER_SMALL

    return {s.name: s for s in (PAPER_SMALL, PAPER_LARGE, CAGE2)}


def scenario_names() -> list[str]:
    return list(_registry())


def get_scenario(name: str | ScenarioSpec) -> ScenarioSpec:
    """The spec called `name`; a `ValueError` naming the valid ones otherwise."""
    if isinstance(name, ScenarioSpec):
        return name
    registry = _registry()
    if name not in registry:
        raise ValueError(f"unknown scenario {name!r}; valid scenarios: {', '.join(registry)}")
    return registry[name]


__all__ = ["BlueAgentSpec", "HostSpec", "ScenarioSpec", "SubnetSpec", "build_scenario_dict", "get_scenario",
           "scenario_names"]
