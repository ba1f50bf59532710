"""`CAGE2` builds a scenario equivalent to CybORG's published Scenario2 (checked against the reference
copy in shared/reference/cage2 when it is there), and the engine runs it."""

from __future__ import annotations

import copy
import random
from pathlib import Path
from typing import Any

import pytest

from cagekit.scenarios.builder import build_scenario_dict
from cagekit.scenarios.cage2 import CAGE2

REF = Path(__file__).resolve().parents[2] / "shared" / "reference" / "cage2"

needs_reference = pytest.mark.skipif(not REF.is_dir(), reason=f"no CAGE-2 reference data at {REF}")


def _reference() -> dict[str, Any]:
    """Scenario2 with each host's `image:` replaced by that image's Test_Host content."""
    yaml = pytest.importorskip("yaml")
    scenario = yaml.safe_load((REF / "Scenario2.yaml").read_text())
    index = yaml.safe_load((REF / "images" / "images.yaml").read_text())
    for host in scenario["Hosts"].values():
        image = host.pop("image")
        host.update(yaml.safe_load((REF / "images" / f"{index[image]['path']}.yaml").read_text())["Test_Host"])
    return scenario


@pytest.fixture(scope="module")
def reference() -> dict[str, Any]:
    if not REF.is_dir():
        pytest.skip(f"no CAGE-2 reference data at {REF}")
    return _reference()


@pytest.fixture(scope="module")
def built() -> dict[str, Any]:
    return build_scenario_dict(CAGE2, "classic")


def _process(p: dict[str, Any]) -> dict[str, Any]:
    """The engine reads `Properties` only with `in` ("rfi" in props): a bare string is a one-item list,
    and an empty value is no properties."""
    p = dict(p)
    props = p.pop("Properties", None)
    if isinstance(props, str):
        props = [props]
    if props:
        p["Properties"] = list(props)
    return p


def _host(h: dict[str, Any]) -> dict[str, Any]:
    h = dict(h)
    # CybORG's reward calculators count a host without a value as "Low"
    h.setdefault("ConfidentialityValue", "Low")
    h.setdefault("AvailabilityValue", "Low")
    h["Processes"] = [_process(p) for p in h["Processes"]]
    return h


# --- (1) network and host content -------------------------------------------------------------

@needs_reference
def test_same_hosts_in_same_order(reference, built):
    assert list(built["Hosts"]) == list(reference["Hosts"])


@needs_reference
@pytest.mark.parametrize("host", sorted(CAGE2.host_names))
def test_host_content_matches_reference(reference, built, host):
    ours, ref = _host(built["Hosts"][host]), _host(reference["Hosts"][host])
    assert ours.keys() == ref.keys()
    # processes in order: the engine walks them (and a process may appear once per port)
    assert ours["Processes"] == ref["Processes"]
    assert ours["User Info"] == ref["User Info"]
    assert ours["System info"] == ref["System info"]
    assert ours.get("Services") == ref.get("Services")
    assert ours.get("info") == ref.get("info")
    assert ours == ref


@needs_reference
def test_subnets_match_reference(reference, built):
    # same order: the engine draws each subnet's addresses in turn
    assert list(built["Subnets"]) == list(reference["Subnets"])
    for name, ref in reference["Subnets"].items():
        ours = built["Subnets"][name]
        assert ours["Hosts"] == ref["Hosts"]
        assert ours["NACLs"] == ref["NACLs"]
        assert ours["Size"] == ref["Size"]


# --- (2) agents -------------------------------------------------------------------------------

@needs_reference
def test_blue_agent_matches_reference(reference, built):
    ours, ref = built["Agents"]["Blue"], reference["Agents"]["Blue"]
    assert ours["actions"] == ref["actions"]
    assert ours["INT"] == ref["INT"]
    # in order (each session draws a random PID in turn), with CAGE-2's usernames: SYSTEM on
    # Enterprise1/2, ubuntu elsewhere (even on the Windows workstations User0-2)
    assert ours["starting_sessions"] == ref["starting_sessions"]
    assert ours == ref


@needs_reference
def test_red_and_green_agents_match_reference(reference, built):
    assert built["Agents"]["Red"]["actions"] == reference["Agents"]["Red"]["actions"]
    assert built["Agents"]["Red"] == reference["Agents"]["Red"]
    assert built["Agents"]["Green"] == reference["Agents"]["Green"]
    # The one intended difference: our builder lists red before green (Scenario2: Blue, Green, Red).
    assert set(built["Agents"]) == set(reference["Agents"])


def test_team_layout_agents():
    d = build_scenario_dict(CAGE2, "team")
    assert list(d["Agents"])[:3] == ["blue_user", "blue_enterprise", "blue_ops"]
    covered: set[str] = set()
    for name in ("blue_user", "blue_enterprise", "blue_ops"):
        agent = d["Agents"][name]
        clients = [s["hostname"] for s in agent["starting_sessions"] if s["type"] == "VelociraptorClient"]
        assert len(clients) == len(set(clients)) and "Defender" in clients
        assert set(agent["INT"]["Hosts"]) == set(clients)
        assert len(agent["actions"]) == 13
        covered |= set(clients)
    assert covered == set(CAGE2.host_names)


# --- (3) the engine runs it -------------------------------------------------------------------

def test_engine_constructs_and_resets():
    main = pytest.importorskip("csle_cyborg.main")
    env = main.Main(build_scenario_dict(CAGE2, "classic"), "sim")
    env.reset()
    assert set(env.get_ip_map()) == set(CAGE2.host_names)


@needs_reference
def test_same_seed_same_trace_as_reference(reference, built):
    """Same seed, same rewards and blue observations as Scenario2 (B_line, blue sleeping)."""
    main = pytest.importorskip("csle_cyborg.main")
    from csle_cyborg.agents import B_lineAgent
    from csle_cyborg.shared.actions import Sleep

    def trace(scenario: dict[str, Any]) -> list[tuple[float, str]]:
        random.seed(7)
        env = main.Main(copy.deepcopy(scenario), "sim", agents={"Red": B_lineAgent})
        out = []
        for _ in range(30):
            r = env.step(agent="Blue", action=Sleep())
            out.append((r.reward, str(r.observation)))
        return out

    assert trace(built) == trace(reference)
