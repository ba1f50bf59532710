"""Every registered scenario builds a fresh, self-contained CybORG scenario dict."""

from __future__ import annotations

import copy
import itertools
import re
from typing import Any

import pytest

from cagekit.scenarios import BlueAgentSpec, SubnetSpec, build_scenario_dict, get_scenario, scenario_names

CASES = [(name, layout) for name in scenario_names() for layout in get_scenario(name).blue_layouts]


def test_registry():
    assert set(scenario_names()) >= {"paper-small", "paper-large", "cage2"}
    for name in scenario_names():
        assert get_scenario(name).name == name
    with pytest.raises(ValueError, match="valid scenarios: " + ", ".join(scenario_names())):
        get_scenario("nope")


@pytest.mark.parametrize(("name", "layout"), CASES)
def test_hosts_carry_merged_images(name, layout):
    spec = get_scenario(name)
    built = build_scenario_dict(spec, layout)
    assert list(built["Hosts"]) == list(spec.host_names)
    for host, content in built["Hosts"].items():
        assert "image" not in content, host
        assert "System info" in content, host
        assert content["System info"]["OSType"] in ("LINUX", "WINDOWS"), host
        assert content["ConfidentialityValue"] == spec.host(host).confidentiality
        assert content["AvailabilityValue"] == spec.host(host).availability
    subnet_hosts = sorted(h for s in built["Subnets"].values() for h in s["Hosts"])
    assert subnet_hosts == sorted(spec.host_names)


def _containers(obj: Any, out: list) -> list:
    if isinstance(obj, dict):
        out.append(obj)
        for v in obj.values():
            _containers(v, out)
    elif isinstance(obj, (list, set)):
        out.append(obj)
        for v in obj:
            _containers(v, out)
    return out


@pytest.mark.parametrize(("name", "layout"), CASES)
def test_builds_are_equal_and_independent(name, layout):
    spec = get_scenario(name)
    a = build_scenario_dict(spec, layout)
    b = build_scenario_dict(spec, layout)
    assert a == b
    # no mutable container is shared between two builds, or between two places of one build
    ids_a = [id(c) for c in _containers(a, [])]
    ids_b = [id(c) for c in _containers(b, [])]
    assert not set(ids_a) & set(ids_b)
    assert len(set(ids_a)) == len(ids_a)
    # mutating everything in one leaves the other (and later builds) as they were
    snapshot = copy.deepcopy(b)
    for c in _containers(a, []):
        if isinstance(c, dict):
            c["mutated"] = True
        elif isinstance(c, list):
            c.append("mutated")
    a["Hosts"][spec.host_names[0]]["System info"]["Hostname"] = "changed"
    assert b == snapshot
    assert build_scenario_dict(spec, layout) == snapshot


@pytest.mark.parametrize(("name", "layout"), CASES)
def test_blue_agents_partition_defended_hosts(name, layout):
    spec = get_scenario(name)
    agents = spec.layout(layout)
    built = build_scenario_dict(spec, layout)
    for x, y in itertools.combinations(agents, 2):
        assert not set(x.hosts) & set(y.hosts), (x.name, y.name)
    union = {h for a in agents for h in a.hosts}
    assert sum(len(a.hosts) for a in agents) == len(union)
    assert union <= set(spec.host_names)
    # every host is defended but, in the paper networks, red's foothold and the monitoring server
    assert set(spec.host_names) - union <= {spec.red_foothold, spec.defender}
    if name == "cage2":
        assert union == set(spec.host_names)
    else:
        assert spec.red_foothold not in union
    # the dict's blue agents are the layout's, each monitoring its own hosts, then Red and Green
    assert list(built["Agents"]) == [a.name for a in agents] + ["Red", "Green"]
    for a in agents:
        entry = built["Agents"][a.name]
        clients = {s["hostname"] for s in entry["starting_sessions"] if s["type"] == "VelociraptorClient"}
        assert set(a.hosts) <= clients <= set(a.hosts) | {spec.defender}
        for subnet in a.block_subnets:
            assert subnet in built["Subnets"]


def test_cli_lists_scenarios_with_their_defaults(capsys, monkeypatch):
    from cagekit.cli import main

    monkeypatch.setenv("COLUMNS", "300")  # wide enough that no cell wraps
    assert main(["scenarios"]) == 0
    out = capsys.readouterr().out
    assert "KillChainAgent (default)" in out and "B_lineAgent (default)" in out
    assert "ExplorerAgent, SleepAgent; target: Op_Server0" in out  # the host the paper's red impacts
    assert "RedMeanderAgent, SleepAgent; target" not in out  # CAGE-2's reds go for their own
    assert "team (default): blue_user, blue_ops" in out and "classic (default): Blue; team: blue_user" in out


def _own_scenario(**changes: Any) -> Any:
    """A small network of our own, written as docs/scenarios.md shows: paper-small's images, other names."""
    import dataclasses

    from tiny_network import TINY

    return dataclasses.replace(TINY, **changes)


def test_a_scenario_of_our_own_plays_through_make_env():
    from cagekit import make_env
    from cagekit.agents import make_team

    env = make_env(_own_scenario(), red="KillChainAgent", seed=0)
    team = make_team("react", env, seed=0)
    obs, _ = env.reset(seed=0)
    assert env.possible_agents == ["front", "back"]
    while env.agents:
        obs, *_ = env.step(team.act(obs))


@pytest.mark.parametrize("change, message", [
    ({"blue_layouts": {"team": (BlueAgentSpec("front", ("Web",), block_subnets=("Mars",)),)}},
     "agent 'front' blocks 'Mars', which is not among the subnets (Front, Back)"),
    ({"blue_layouts": {"team": (BlueAgentSpec("front", ("Nope",)),)}},
     "agent 'front' defends 'Nope', which is not among the hosts"),
    ({"subnets": (SubnetSpec("Front", ("User0",)), SubnetSpec("Back", ("Gate", "Op_Server0", "Defender")))},
     "host 'Web' is in 0 subnets"),
    ({"red_foothold": "Zero"}, "red_foothold 'Zero' is not among the hosts"),
    ({"default_layout": "classic"}, "default_layout 'classic' is not one of team"),
    ({"green_hosts": ("Web", "Nope")}, "green_hosts 'Nope' is not among the hosts"),  # was a bare KeyError: 'Nope'
    # refused only once an environment was built, as "unknown red behaviour 'FooAgent'" naming nothing valid
    ({"red_agents": {"KillChainAgent": "KillChainAgent", "Foo": "FooAgent"}},
     "red_agents 'Foo': unknown red behaviour 'FooAgent'; valid: KillChainAgent, ExplorerAgent, SleepAgent, "
     "B_lineAgent, RedMeanderAgent"),
    ({"green_agents": {"alerts": "FalseAlarms", "none": "SleepAgent"}},
     "green_agents 'alerts': unknown green behaviour 'FalseAlarms'; valid: FalseAlarmGreen, SleepAgent"),
    ({"blue_layouts": {"team": (BlueAgentSpec("front", ("Web",)), BlueAgentSpec("front", ("Gate",)))}},
     "layout 'team': agent 'front' is named 2 times"),  # was refused by the team as a size mismatch
    ({"subnets": (SubnetSpec("Front", ("User0", "Web")), SubnetSpec("Front", ("Gate", "Op_Server0", "Defender")))},
     "subnet 'Front' is named 2 times"),
    # an agent that named a host or a subnet twice got a second copy of its row and of its actions
    ({"blue_layouts": {"team": (BlueAgentSpec("front", ("Web", "Web")),)}},
     "layout 'team': agent 'front' defends 'Web' 2 times"),
    ({"blue_layouts": {"team": (BlueAgentSpec("front", ("Web",), block_subnets=("Back", "Back")),)}},
     "layout 'team': agent 'front' blocks 'Back' 2 times"),
])
def test_a_spec_that_names_what_it_does_not_have_is_refused(change, message):
    """A hand-written spec's Block of a subnet that does not exist was accepted and played as a -2 no-op; a
    defended host outside the hosts failed later as 'in no subnet'."""
    with pytest.raises(ValueError, match=re.escape(message)):
        _own_scenario(**change)


@pytest.mark.parametrize("change, message", [
    ({"detection": 1.5}, "scenario 'tiny': detection is a probability in [0, 1], got 1.5"),
    ({"green_rate": float("nan")}, "green rate is a probability in [0, 1], got nan"),
    ({"message_cost": -0.1}, "message cost must be a finite number >= 0 (the reward a sent 1 costs), got -0.1"),
    ({"message_cost": float("inf")}, "got inf"),
])
def test_a_spec_whose_settings_are_out_of_range_is_refused_when_made(change, message):
    """A scenario file's `detection: 1.5` was registered, then every environment built on it was refused with
    "detection is a probability in [0, 1], got None"; a NaN was refused as values that "are not plain data"."""
    with pytest.raises(ValueError, match=re.escape(message)):
        _own_scenario(**change)
    assert _own_scenario(detection=1.0, green_rate=0.0, message_cost=0.0).detection == 1.0  # the ends are valid


@pytest.mark.parametrize("costs, wrong", [
    ({"block": 2.0}, "block 2.0"),  # meant a price of 2: it paid the defenders 2 per Block
    ({"restore_floor": float("nan")}, "restore_floor nan"),
    ({"analyse_unless_found": "-0.5"}, "analyse_unless_found '-0.5'"),
])
def test_action_costs_are_finite_and_not_positive(costs, wrong):
    from cagekit.scenarios.spec import ActionCosts

    with pytest.raises(ValueError, match=re.escape(f"each a finite number <= 0 (-2.0 for a price of 2); got {wrong}")):
        ActionCosts(**costs)
    assert ActionCosts(block=0.0, restore_by_value=False).block == 0.0


def _renamed_target(name: str = "Plant") -> Any:
    """The tiny network with its OT server called `name` (Medium, not High: the twin's red went for the most
    valuable host where no host was called Op_Server0, the gateway here) and `red_target` naming it."""
    import dataclasses

    spec = _own_scenario()
    rename = {"Op_Server0": name}
    hosts = tuple(dataclasses.replace(h, name=rename.get(h.name, h.name), reveals=tuple(rename.get(r, r) for r in
                                                                                        h.reveals),
                                      **({"confidentiality": "Medium"} if h.name == "Op_Server0" else {}))
                  for h in spec.hosts)
    subnets = tuple(dataclasses.replace(s, hosts=tuple(rename.get(h, h) for h in s.hosts)) for s in spec.subnets)
    layout = tuple(dataclasses.replace(a, hosts=tuple(rename.get(h, h) for h in a.hosts)) for a in spec.layout())
    return _own_scenario(hosts=hosts, subnets=subnets, blue_layouts={"team": layout}, red_target=name)


@pytest.mark.parametrize("simulator", ["engine", "twin"])
def test_red_impacts_the_target_the_spec_names(simulator):
    """The paper's red went for a host called Op_Server0, whatever the spec: a network of one's own whose OT server
    had another name played, and red never took its last step (the twin's red went for another host)."""
    from cagekit import make_env

    env = make_env(_renamed_target(), red="KillChainAgent", seed=0, sau=False, channel=False, episode_length=100,
                   simulator=simulator)
    env.reset(seed=0)
    impacted = False
    while env.agents and not impacted:
        *_, infos = env.step({a: 0 for a in env.agents})  # the team sleeps
        impacted = infos["back"]["impacted"]
    assert impacted, "red never took the OT service down"
    if simulator == "engine":  # the service that is down is the target's
        assert not any(p.name == "OTService" for p in env.engine.state.hosts["Plant"].processes)


@pytest.mark.parametrize("simulator", ["engine", "twin"])
def test_a_network_without_a_target_plays_with_red_impacting_nothing(simulator):
    """`red_target` None: a network whose red climbs and holds root but impacts nothing (before the field, what a
    network without a host called Op_Server0 played, silently). Red does gain root: the team loses by host values."""
    import dataclasses

    from cagekit import make_env

    env = make_env(dataclasses.replace(_renamed_target(), red_target=None), red="KillChainAgent", seed=0, sau=False,
                   channel=False, episode_length=100, simulator=simulator)
    env.reset(seed=0)
    total = 0.0
    while env.agents:
        _, rewards, _, _, infos = env.step({a: 0 for a in env.agents})  # the team sleeps
        assert not infos["back"]["impacted"]
        total += rewards["back"]
    assert total < 0  # red held root on valued hosts


def test_a_red_target_the_paper_s_red_cannot_impact_is_refused_when_made():
    """A target that is not a host, or one without the OT service Impact stops, was accepted and played: red
    never impacted. Only where a red of the scenario goes for it (CAGE-2's reds have their own targets)."""
    import dataclasses

    with pytest.raises(ValueError, match=re.escape("scenario 'tiny': red_target 'Plant' is not among the hosts; "
                                                   "name the host red impacts, one that runs the OT service (here: "
                                                   "Op_Server0), or give red_target None (null in a file) for a "
                                                   "network whose red impacts nothing (hosts: User0, Web, Gate, "
                                                   "Op_Server0, Defender)")):
        _own_scenario(red_target="Plant")
    with pytest.raises(ValueError, match=re.escape("red_target 'Gate' does not run the OT service that red's Impact "
                                                   "stops (its image runs no process 'OTService', its image's "
                                                   "services lack 'OTService', its info_services lack "
                                                   "'OTService'): give it an image that runs it (ot_server, paper.py's "
                                                   "OT_SERVER) and info_services ('OTService',), or name another host "
                                                   "that runs it (here: Op_Server0)")):
        _own_scenario(red_target="Gate")
    plant = _renamed_target()
    silent = tuple(dataclasses.replace(h, info_services=()) if h.name == "Plant" else h for h in plant.hosts)
    with pytest.raises(ValueError, match=re.escape("(its info_services lack 'OTService')")):  # red never learns of it
        dataclasses.replace(plant, hosts=silent)
    # reds that do not go for it: any name is taken, and cage2 (B_line, Meander) is valid as it is
    sleeping = _own_scenario(red_agents={"SleepAgent": "SleepAgent", "bline": "B_lineAgent"},
                             default_red="SleepAgent", red_target="Nope")
    assert sleeping.red_target == "Nope"
    assert get_scenario("cage2").red_target == "Op_Server0"


def test_a_spec_that_names_no_target_and_has_no_op_server0_is_told_the_default_and_the_candidates():
    """A scenario file (or a record written before the field) that leaves red_target out, on a network whose OT
    server has another name, was refused as "red_target 'Op_Server0' is not among the hosts": a field it never
    named, and not which host to name."""
    import dataclasses

    from cagekit.scenarios.records import spec_from_dict, spec_to_dict

    plant = spec_to_dict(_renamed_target())
    del plant["red_target"]
    with pytest.raises(ValueError, match=re.escape("tiny.json: scenario 'tiny': red_target 'Op_Server0' (the "
                                                   "default) is not among the hosts; name the host red impacts, one "
                                                   "that runs the OT service (here: Plant)")):
        spec_from_dict(plant, "tiny.json")
    sleeping = _own_scenario(red_agents={"SleepAgent": "SleepAgent"}, default_red="SleepAgent")
    silent = tuple(dataclasses.replace(h, info_services=()) for h in sleeping.hosts)
    with pytest.raises(ValueError, match=re.escape("or name another host that runs it (here: none)")):
        dataclasses.replace(sleeping, hosts=silent, red_agents={"KillChainAgent": "KillChainAgent"},
                            default_red="KillChainAgent")


def test_a_spec_whose_reveals_or_nacls_point_nowhere_is_refused():
    """A host revealing one that is not there failed when an environment was built, with a traceback of the
    engine's builder ("KeyError: host 'Nope' is in no subnet"); a NACL rule for a subnet that is not there was
    played as if absent (CybORG's own parser refuses it), and one without its "in" failed mid-episode
    (KeyError: 'in'); no layout at all was refused as "is not one of " and nothing."""
    import dataclasses

    spec = _own_scenario()
    hosts = tuple(dataclasses.replace(h, reveals=(*h.reveals, "Nope")) if h.name == "Web" else h for h in spec.hosts)
    with pytest.raises(ValueError, match=re.escape("host 'Web' reveals 'Nope', which is not among the hosts")):
        _own_scenario(hosts=hosts)
    front, back = spec.subnets
    for nacls, message in (({"Mars": {"in": "None", "out": "all"}},
                            "subnet 'Front': NACL rule for 'Mars', which is not among the subnets (Front, Back) "
                            "nor 'all'"),
                           ({"Back": {"out": "all"}}, "subnet 'Front': NACL rule for 'Back' is {'out': 'all'}; it "
                                                      "must be {'in': V, 'out': V}, each V 'all' or 'None'"),
                           ({"all": {"in": "Nonee", "out": "all"}}, "NACL rule for 'all' is {'in': 'Nonee'")):
        with pytest.raises(ValueError, match=re.escape(message)):
            _own_scenario(subnets=(dataclasses.replace(front, nacls=nacls), back))
    assert _own_scenario(subnets=(dataclasses.replace(front, nacls={"Back": {"in": "None", "out": "all"}}), back))
    with pytest.raises(ValueError, match=re.escape("default_layout 'team': the scenario has no blue_layouts")):
        _own_scenario(blue_layouts={})


def test_a_spec_that_names_a_host_twice_is_refused():
    """Two hosts of one name were accepted and played another game (-22.5 where the spec's own gives -119.6)."""
    from cagekit.scenarios import HostSpec
    from cagekit.scenarios.paper import LINUX_WEB

    spec = _own_scenario()
    with pytest.raises(ValueError, match=re.escape("host 'Web' is named 2 times")):
        _own_scenario(hosts=(*spec.hosts, HostSpec("Web", LINUX_WEB)))


def test_the_twin_refuses_a_red_it_does_not_model():
    """A scenario of one's own may name CAGE-2's red agents, which the engine plays and the twin does not: the twin
    failed with a bare KeyError traceback ('B_lineAgent'); it says so and where to run it instead."""
    from cagekit import make_env

    spec = _own_scenario(red_agents={"KillChainAgent": "KillChainAgent", "bline": "B_lineAgent"})
    with pytest.raises(ValueError, match=re.escape("the twin models the red behaviours KillChainAgent, ExplorerAgent, "
                                                   "SleepAgent; red 'bline' of scenario 'tiny' is 'B_lineAgent': run "
                                                   "it on the engine")):
        make_env(spec, red="bline", simulator="twin")
    make_env(spec, red="KillChainAgent", simulator="twin")


@pytest.mark.parametrize("size", [-3, 0, 2.5, True])
def test_a_subnet_size_below_one_or_not_whole_is_refused_when_made(size):
    """A subnet's `size: -3` (or 0) was taken and the engine reserved some address block anyway; refused now,
    naming the subnet and what a size may be. A size below the number of hosts stays valid (cage2's Enterprise
    has 3 for its 4 hosts, as CAGE-2's Scenario2)."""
    import dataclasses

    front, back = _own_scenario().subnets
    with pytest.raises(ValueError, match=re.escape(f"subnet 'Front': size {size!r}; it must be a whole number >= 1 "
                                                   f"(the addresses the engine reserves for it), or left out")):
        _own_scenario(subnets=(dataclasses.replace(front, size=size), back))
    assert _own_scenario(subnets=(dataclasses.replace(front, size=1), back)).subnets[0].size == 1


def _wide_front(webs: int, size: int | None = None) -> Any:
    """TINY with `webs` web hosts in its front subnet (and the foothold), all defended by `front`."""
    import dataclasses

    from cagekit.scenarios import HostSpec
    from cagekit.scenarios.paper import LINUX_WEB

    tiny = _own_scenario()
    names = tuple(f"Web{i}" for i in range(webs))
    hosts = (tiny.hosts[0], *(HostSpec(n, LINUX_WEB, availability="None", reveals=("Gate",)) for n in names),
             *tiny.hosts[2:])
    front, back = tiny.subnets
    layout = (dataclasses.replace(tiny.layout()[0], hosts=names), tiny.layout()[1])
    return _own_scenario(hosts=hosts, subnets=(SubnetSpec("Front", ("User0", *names), size=size), back),
                         blue_layouts={"team": layout})


@pytest.mark.parametrize("webs", [14, 30])
def test_a_subnet_the_engine_s_block_for_its_host_count_cannot_hold_plays(webs):
    """The engine gives a subnet of Size n a block of 2**max(int(log2(n + 5)), 4) addresses: 15 hosts got 14 and
    31 got 30 (less network and broadcast), failing in the engine with "Sample larger than population". A subnet
    without a size now gets the smallest that holds its hosts; every host has its own address."""
    from cagekit import make_env

    spec = _wide_front(webs)
    assert build_scenario_dict(spec)["Subnets"]["Front"]["Size"] == {14: 27, 30: 59}[webs]
    env = make_env(spec, red="KillChainAgent", seed=0)
    env.reset(seed=0)
    addresses = env.unwrapped.engine.state.ip_addresses
    assert sorted(addresses.values()) == sorted(spec.host_names)


def test_a_size_whose_engine_block_cannot_hold_the_hosts_is_refused_with_the_smallest_that_can():
    with pytest.raises(ValueError, match=re.escape("subnet 'Front': size 20 gives 14 addresses in the engine, fewer "
                                                   "than its 21 hosts; give a size of at least 27, or leave it out")):
        _wide_front(20, size=20)
    assert _wide_front(20, size=27).subnets[0].size == 27
    assert _wide_front(12, size=1).subnets[0].size == 1  # 13 hosts fit the smallest block (14 addresses)


def test_subnets_that_do_not_fit_the_engine_s_network_are_refused():
    """The engine cuts 10.0.0.0/16 into blocks of the widest subnet's size, one per subnet."""
    with pytest.raises(ValueError, match=re.escape("the engine places every subnet in a block of the widest one's "
                                                   "(65536 addresses) within 10.0.0.0/16: 2 subnets do not fit")):
        _wide_front(12, size=70000)


def test_a_numpy_integer_size_is_checked_as_an_int_is():
    """A spec written in Python may size a subnet with numpy's integers, taken before sizes were checked: the
    engine-block checks failed on one with an AttributeError traceback ('numpy.int64' object has no attribute
    'bit_length'), and a numpy size too small for the hosts was not refused, as an int's is."""
    import numpy as np

    with pytest.raises(ValueError, match=re.escape("subnet 'Front': size 20 gives 14 addresses in the engine, fewer "
                                                   "than its 21 hosts; give a size of at least 27")):
        _wide_front(20, size=np.int64(20))
    assert _wide_front(20, size=np.int64(27)).subnets[0].engine_size == 27
    assert build_scenario_dict(_wide_front(12, size=np.int32(1)))["Subnets"]["Front"]["Size"] == 1
