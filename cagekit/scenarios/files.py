"""A scenario file: a user's own network as JSON or YAML of the `ScenarioSpec` fields (docs/scenarios.md),
read into a spec and registered, so that the command line's `--scenario FILE` runs on it."""

from __future__ import annotations

from pathlib import Path

from cagekit.scenarios.data_files import YAML_SUFFIXES, read_data_file
from cagekit.scenarios.spec import ScenarioSpec

SUFFIXES = (".json", *YAML_SUFFIXES)


def read_scenario_file(path: str | Path) -> ScenarioSpec:
    """The spec the file at `path` describes; a ValueError naming the file (and the field) otherwise."""
    from cagekit.scenarios.records import spec_from_dict

    file = Path(path)
    if file.suffix.lower() not in SUFFIXES:
        raise ValueError(f"scenario file {file}: expected a .json, .yaml or .yml file")
    data = read_data_file(file, "scenario file")
    return spec_from_dict(data, f"scenario file {file}")


def load_scenario_file(path: str | Path) -> ScenarioSpec:
    """Read the scenario file at `path` and register its spec (`cagekit.scenarios.register`); returns it."""
    from cagekit.scenarios import register

    spec = read_scenario_file(path)
    try:
        return register(spec)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"scenario file {path}: {exc}") from None


def scenario_option(value: str | None) -> str | None:
    """What a command line's `--scenario` names: a built-in or registered name as given, or the name of the
    scenario in the file it names (a path ending in .json, .yaml or .yml), registered here. None stays None;
    any other text is left for the scenario lookup to refuse, naming the valid scenarios."""
    if value is None:
        return None
    from cagekit.scenarios import scenario_names

    if value in scenario_names():
        return value
    if Path(value).suffix.lower() in SUFFIXES or Path(value).is_file():
        if not Path(value).exists():
            raise ValueError(f"--scenario {value}: no such scenario file")
        return load_scenario_file(value).name
    return value


__all__ = ["SUFFIXES", "load_scenario_file", "read_scenario_file", "scenario_option"]
