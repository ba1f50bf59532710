"""Scenario specifications: the one source of truth for a network, its agents and its scoring.

A spec is plain data (frozen dataclasses). `cagekit.scenarios.builder` turns it into the scenario
dict that the CybORG engine reads; the engine adapter, the wrappers and the twin read the same spec.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal, Protocol, TypeGuard

ValueLevel = Literal["None", "Low", "Medium", "High"]

#: Reward weight of each value level (CybORG's reward calculators use the same mapping).
VALUE_WEIGHTS: dict[str, float] = {"None": 0.0, "Low": 0.1, "Medium": 1.0, "High": 10.0}


class Image(Protocol):
    """What a host runs: operating system, processes, users. Written by us, see `images.py`."""

    @property
    def name(self) -> str:
        """The image's name, as written in CybORG's host files."""
        ...

    def to_cyborg(self) -> dict[str, Any]:
        """The host's content in CybORG's `Test_Host` schema (System info, Processes, User Info...)."""
        ...


#: the behaviours a scenario's `red_agents` and `green_agents` may name (cagekit.engine.red builds them)
RED_BEHAVIOURS = ("KillChainAgent", "ExplorerAgent", "SleepAgent", "B_lineAgent", "RedMeanderAgent")
GREEN_BEHAVIOURS = ("FalseAlarmGreen", "SleepAgent")
#: the red behaviours that go for the scenario's `red_target` (CAGE-2's B_line and Meander have their own targets)
TARGETING_REDS = ("KillChainAgent", "ExplorerAgent")
#: the service the paper's red stops on its target (Impact), and the process the reward finds it by
OT_SERVICE = "OTService"
#: the paper's OT server, `red_target` where a spec names none (as every spec before the field: their red's target)
DEFAULT_RED_TARGET = "Op_Server0"


@dataclass(frozen=True)
class HostSpec:
    """One host: its image, its value to the defenders, and what it reveals to whoever owns it."""

    name: str
    image: Image
    # CybORG's reward calculators count a host without a value as "Low"; we always write one.
    confidentiality: ValueLevel = "Low"
    availability: ValueLevel = "Low"
    #: hosts whose interfaces a session on this host can read (how red learns the next subnet)
    reveals: tuple[str, ...] = ()
    #: services the host's `info` block advertises (Op_Server0 advertises OTService)
    info_services: tuple[str, ...] = ()
    #: whether the host answers pings (the Defender does not, in CAGE-2)
    ping: bool = True


@dataclass(frozen=True)
class SubnetSpec:
    name: str
    hosts: tuple[str, ...]
    #: CybORG NACLs: {"all": {"in": "all", "out": "all"}, "User": {"in": "None", "out": "all"}}
    nacls: dict[str, dict[str, str]] = field(
        default_factory=lambda: {"all": {"in": "all", "out": "all"}}
    )
    #: address-space size hint for the engine's IP allocation (CybORG's `Size`); None: the smallest that fits the hosts
    size: int | None = None

    @property
    def engine_size(self) -> int:
        """The `Size` the builder gives the engine: the spec's, or else the smallest whose address block holds the
        hosts (the host count itself, except where its block is too small: 15 hosts get 14 addresses)."""
        return self.size if self.size is not None else fitting_size(len(self.hosts))


def _ot_service_missing(host: HostSpec) -> list[str]:
    """What `host` lacks of the OT service the paper's red impacts (none: it may be a `red_target`)."""
    image = host.image.to_cyborg()
    return [what for what, ok in (
        (f"its image runs no process {OT_SERVICE!r}",
         any(p.get("Process Name") == OT_SERVICE for p in image.get("Processes", ()))),
        (f"its image's services lack {OT_SERVICE!r}", OT_SERVICE in image.get("Services", {})),
        (f"its info_services lack {OT_SERVICE!r}", OT_SERVICE in host.info_services)) if not ok]


def _whole_size(size: Any) -> TypeGuard[int]:
    """Whether `size` is one the engine can take: a whole number >= 1, numpy's integers too (a bool is none)."""
    return isinstance(size, numbers.Integral) and not isinstance(size, bool) and int(size) >= 1


def _block_bits(size: int) -> int:
    """Host bits of the engine's block for a subnet of `size` (csle-cyborg's State: max(int(log2(size + 5)), 4));
    `int` first: numpy's integers have no `bit_length`."""
    return max((int(size) + 5).bit_length() - 1, 4)


def smallest_size(hosts: int) -> int:
    """The smallest size whose engine block addresses `hosts` hosts (blocks hold 2**k - 2 for k >= 4)."""
    bits = max((hosts + 1).bit_length(), 4)
    return 1 if bits == 4 else 2**bits - 5


def fitting_size(hosts: int) -> int:
    """The host count where its engine block holds them (every built-in network), else the smallest size that does."""
    return hosts if address_block(hosts) >= hosts else smallest_size(hosts)


def address_block(size: int) -> int:
    """How many hosts the engine can address in a subnet of `size`: it samples their addresses from the block, so
    more hosts than this fail when built, in the engine ("Sample larger than population")."""
    return 2 ** _block_bits(size) - 2


ActionSet = Literal["paper", "cage2"]


@dataclass(frozen=True)
class BlueAgentSpec:
    """One blue agent: the hosts it sees and acts on, and the subnets it may block."""

    name: str
    hosts: tuple[str, ...]
    block_subnets: tuple[str, ...] = ()
    #: "paper": Sleep, Analyse/Remove/Restore per host, Block per subnet;
    #: "cage2": Sleep, Monitor, Analyse/Remove/8 decoys/Restore per host (CAGE-2's 145 for 13 hosts)
    action_set: ActionSet = "paper"


@dataclass(frozen=True)
class ActionCosts:
    """Blue action costs (negative numbers are penalties), per the paper unless a scenario says so."""

    remove_unless_removed: float = -0.5
    analyse_unless_found: float = -0.5
    #: Restore costs the host's value weight, with "Low" (and "None") counted as this floor
    restore_floor: float = -1.0
    restore_by_value: bool = True
    block: float = -2.0

    def __post_init__(self) -> None:
        """Refuse a cost that is not a finite number <= 0: a NaN poisons every return, and a positive one (`block:
        2`, meaning a price of 2) would pay the defenders for the action."""
        wrong = [f"{f.name} {getattr(self, f.name)!r}" for f in fields(self) if f.type != "bool" and not (
            isinstance(v := getattr(self, f.name), numbers.Real) and not isinstance(v, bool)
            and math.isfinite(v) and v <= 0)]
        if wrong:
            raise ValueError(f"action costs are the rewards the actions add: each a finite number <= 0 (-2.0 for a "
                             f"price of 2); got {', '.join(wrong)}")


@dataclass(frozen=True)
class ScenarioSpec:
    name: str
    description: str
    hosts: tuple[HostSpec, ...]
    subnets: tuple[SubnetSpec, ...]
    #: blue team layouts by name; "team" is the multi-agent default, cage2 also has "classic"
    blue_layouts: dict[str, tuple[BlueAgentSpec, ...]]
    #: red behaviours by public name -> engine behaviour id (see `cagekit.engine.red`)
    red_agents: dict[str, str]
    #: green behaviours by public name -> engine behaviour id (see `cagekit.engine.red`, home of the green too)
    green_agents: dict[str, str]
    default_red: str
    default_green: str
    #: "paper": per-step minus host values where red has root + action costs;
    #: "cage2": CybORG's HybridAvailabilityConfidentiality calculator (its Restore cost -1)
    reward: Literal["paper", "cage2"]
    red_foothold: str = "User0"
    #: the host the paper's red (KillChainAgent, ExplorerAgent) goes for and impacts: it must run the OT service
    #: (an image like ot_server's) and advertise it (`info_services=("OTService",)`); None: a network whose red
    #: impacts nothing (it climbs and holds root, scored by the hosts' values)
    red_target: str | None = DEFAULT_RED_TARGET
    defender: str = "Defender"
    default_layout: str = "team"
    #: hosts where green (benign users) work; empty means every host but the Defender and the foothold
    green_hosts: tuple[str, ...] = ()
    #: probability that a stealthy red step raises an alert the monitor sees
    detection: float = 0.1
    #: per-step probability that green raises a false-positive alert on each defended host
    green_rate: float = 0.05
    #: default cost of sending a 1 on the channel
    message_cost: float = 0.1
    costs: ActionCosts = field(default_factory=ActionCosts)

    def __post_init__(self) -> None:
        """Refuse a name that points nowhere (a spec written by hand: `make_env(spec)`), rather than build a
        network where an agent's Block of a subnet that does not exist costs -2 and does nothing; and a
        setting out of its range (a detection of 1.5), named here rather than when an environment is built."""
        hosts, subnets = self.host_names, tuple(s.name for s in self.subnets)
        problems = [f"host {h!r} is in subnet {s.name!r} but not among the hosts"
                    for s in self.subnets for h in s.hosts if h not in hosts]
        problems += [f"host {h!r} is in {n} subnets" for h in hosts
                     if (n := sum(h in s.hosts for s in self.subnets)) != 1]
        problems += [f"{what} {h!r} is not among the hosts" for what, h in
                     (("red_foothold", self.red_foothold), ("defender", self.defender)) if h not in hosts]
        problems += self._target_problems()
        problems += [f"green_hosts {h!r} is not among the hosts" for h in self.green_hosts if h not in hosts]
        # a host revealing one that is not there made the engine's builder fail with a bare KeyError
        problems += [f"host {host.name!r} reveals {h!r}, which is not among the hosts"
                     for host in self.hosts for h in host.reveals if h not in hosts]
        # CybORG's own scenario parser asserts this; its engine ignored such a rule, silently
        problems += [f"subnet {s.name!r}: NACL rule for {k!r}, which is not among the subnets ({', '.join(subnets)}) "
                     f"nor 'all'" for s in self.subnets for k in s.nacls if k != "all" and k not in subnets]
        # the engine reads a rule's "in" ("all" or "None") on every connection: one without it failed mid-episode
        problems += [f"subnet {s.name!r}: NACL rule for {k!r} is {rule!r}; it must be {{'in': V, 'out': V}}, each V "
                     f"'all' or 'None'" for s in self.subnets for k, rule in s.nacls.items()
                     if not isinstance(rule, Mapping) or set(rule) != {"in", "out"}
                     or any(v not in ("all", "None") for v in rule.values())]
        # the engine sizes the address block by it: -3 or 0 were taken (as some block), "4" failed in the engine
        problems += [f"subnet {s.name!r}: size {s.size!r}; it must be a whole number >= 1 (the addresses the engine "
                     f"reserves for it), or left out for its number of hosts" for s in self.subnets
                     if s.size is not None and not _whole_size(s.size)]
        problems += [f"subnet {s.name!r}: size {s.size} gives {address_block(s.size)} addresses in the engine, fewer "
                     f"than its {len(s.hosts)} hosts; give a size of at least {smallest_size(len(s.hosts))}, or leave "
                     f"it out" for s in self.subnets if _whole_size(s.size) and address_block(s.size) < len(s.hosts)]
        sizes = [s.engine_size for s in self.subnets if s.size is None or _whole_size(s.size)]
        if sizes and 2 ** (16 - _block_bits(max(sizes))) < len(self.subnets):
            # the engine cuts 10.0.0.0/16 into blocks of the widest subnet's and gives each subnet one
            problems.append(f"the engine places every subnet in a block of the widest one's "
                            f"({address_block(max(sizes)) + 2} addresses) within 10.0.0.0/16: {len(self.subnets)} "
                            f"subnets do not fit; give the widest fewer hosts or a smaller size")
        problems += [f"{what} {n!r} is named {k} times" for what, names in
                     (("host", hosts), ("subnet", subnets),
                      *((f"layout {layout!r}: agent", tuple(a.name for a in agents))
                        for layout, agents in self.blue_layouts.items()))
                     for n in dict.fromkeys(names) if (k := names.count(n)) > 1]
        for layout, agents in self.blue_layouts.items():
            for agent in agents:
                problems += [f"layout {layout!r}: agent {agent.name!r} defends {h!r}, which is not among the hosts"
                             for h in agent.hosts if h not in hosts]
                problems += [f"layout {layout!r}: agent {agent.name!r} blocks {b!r}, which is not among the subnets "
                             f"({', '.join(subnets)})" for b in agent.block_subnets if b not in subnets]
                # the same host or subnet twice gave the agent a second copy of its row and of its actions
                problems += [f"layout {layout!r}: agent {agent.name!r} {verb} {n!r} {k} times"
                             for verb, names in (("defends", agent.hosts), ("blocks", agent.block_subnets))
                             for n in dict.fromkeys(names) if (k := names.count(n)) > 1]
        for what, behaviours, known in (("red", self.red_agents, RED_BEHAVIOURS),
                                        ("green", self.green_agents, GREEN_BEHAVIOURS)):
            # was refused only once an environment was built, as "unknown red behaviour 'X'" and no more
            problems += [f"{what}_agents {name!r}: unknown {what} behaviour {b!r}; valid: {', '.join(known)}"
                         for name, b in behaviours.items() if b not in known]
        for what, key, options, listed in (("default_red", self.default_red, self.red_agents, "red_agents"),
                                           ("default_green", self.default_green, self.green_agents, "green_agents"),
                                           ("default_layout", self.default_layout, self.blue_layouts, "blue_layouts")):
            if key not in options:  # none at all was "is not one of " and nothing
                problems.append(f"{what} {key!r} is not one of {', '.join(options)}" if options else
                                f"{what} {key!r}: the scenario has no {listed} (give at least one)")
        hosts_named = f" (hosts: {', '.join(hosts)})" if problems else ""
        for setting in ("detection", "green_rate", "message_cost"):
            try:
                self.setting(setting, None)
            except (TypeError, ValueError) as exc:
                problems.append(str(exc))
        if problems:
            raise ValueError(f"scenario {self.name!r}: " + "; ".join(problems) + hosts_named)

    def _target_problems(self) -> list[str]:
        """Why the paper's red could not impact `red_target`, where a red of the scenario goes for it: a target
        that is not among the hosts, or one without the OT service, was played and red never took its last step
        (Impact stops the service red learned of when it escalated there, on a host that runs it)."""
        if self.red_target is None or not any(b in TARGETING_REDS for b in self.red_agents.values()):
            return []
        # a spec that names no target (a scenario file, a record written before the field) has the default: said
        # so, or the message named a field it never wrote
        target = f"red_target {self.red_target!r}" + (" (the default)" if self.red_target == DEFAULT_RED_TARGET
                                                      else "")
        if self.red_target not in self.host_names:
            return [f"{target} is not among the hosts; name the host red impacts, one that runs the OT service "
                    f"(here: {self._ot_hosts()}), or give red_target None (null in a file) for a network whose red "
                    f"impacts nothing"]
        missing = _ot_service_missing(self.host(self.red_target))
        if not missing:
            return []
        return [f"{target} does not run the OT service that red's Impact stops ({', '.join(missing)}): give it an "
                f"image that runs it (ot_server, paper.py's OT_SERVER) and info_services ({OT_SERVICE!r},), or name "
                f"another host that runs it (here: {self._ot_hosts()})"]

    def _ot_hosts(self) -> str:
        """The hosts that could be `red_target` (they run and advertise the OT service), for a message."""
        return ", ".join(h.name for h in self.hosts if not _ot_service_missing(h)) or "none"

    def setting(self, name: Literal["detection", "green_rate", "message_cost"], value: float | None) -> float:
        """`value` for the named setting, or the scenario's own when None; refused (ValueError) when out of
        range, so that no layer trains or scores on a NaN, a negative price or a probability above 1."""
        given = getattr(self, name) if value is None else value  # the scenario's own is checked when it is made
        if isinstance(given, bool) or not isinstance(given, numbers.Real):
            raise TypeError(f"{name} is a number, got {type(given).__name__} {given!r}")  # "0.1" was taken as 0.1
        resolved = float(given)
        if name == "message_cost":
            if not (math.isfinite(resolved) and resolved >= 0.0):
                raise ValueError(f"message cost must be a finite number >= 0 (the reward a sent 1 costs), got {given}")
        elif not 0.0 <= resolved <= 1.0:  # also False for NaN
            raise ValueError(f"{name.replace('_', ' ')} is a probability in [0, 1], got {given}")
        return resolved

    def host(self, name: str) -> HostSpec:
        for h in self.hosts:
            if h.name == name:
                return h
        raise KeyError(f"scenario {self.name!r} has no host {name!r}; hosts: {self.host_names}")

    @property
    def host_names(self) -> tuple[str, ...]:
        return tuple(h.name for h in self.hosts)

    def behaviour(self, kind: Literal["red", "green"], name: str | None) -> str:
        """The engine behaviour of the named red or green agent (None: the scenario's default)."""
        options = self.red_agents if kind == "red" else self.green_agents
        if name is not None and not isinstance(name, str):  # a list of reds: one environment plays one
            raise TypeError(f"{kind} is one {kind} agent's name, got {type(name).__name__} {name!r}; an environment "
                            f"plays one (valid: {', '.join(options)})" +
                            ("; to train against several, give the learner a comma-separated list or 'all'"
                             if kind == "red" else ""))
        key = (self.default_red if kind == "red" else self.default_green) if name is None else name
        if key not in options:
            raise ValueError(f"unknown {kind} agent {key!r} for scenario {self.name!r}; valid: {', '.join(options)}")
        return options[key]

    def subnet_of(self, host: str) -> str:
        for s in self.subnets:
            if host in s.hosts:
                return s.name
        raise KeyError(f"host {host!r} is in no subnet of scenario {self.name!r}")

    def layout(self, name: str | None = None) -> tuple[BlueAgentSpec, ...]:
        key = name or self.default_layout
        if not isinstance(key, str) or key not in self.blue_layouts:
            raise ValueError(
                f"scenario {self.name!r} has no blue layout {key!r}; valid: {', '.join(sorted(self.blue_layouts))}"
            )
        return self.blue_layouts[key]
