"""`CyborgEngine`: one small class over csle-cyborg that hides its quirks.

- builds the scenario dict from our spec, fresh for every construction (the engine mutates it);
- steps several blue agents in one simulator step (blue first, then red, then green);
- keeps its own `random` state and swaps it in around every engine call, so environments in one
  process do not perturb each other;
- offers a lean step that skips the engine's full true-state collection and computes the team
  reward from the few host facts it needs (`lean=False` runs the engine's own step and calculators);
- resets with cached subnet lists (`fast_reset`, identical results, tested) in both modes.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from cagekit.engine.actions import blocked_subnets, register, reset_project_state
from cagekit.engine.catalog import BlueActionCatalog
from cagekit.engine.fast_reset import cached_subnets
from cagekit.engine.red import green_agent_factory, red_agent_factory
from cagekit.engine.table import BlueTable
from cagekit.scenarios import build_scenario_dict, get_scenario
from cagekit.scenarios.builder import GREEN_AGENT, RED_AGENT
from cagekit.scenarios.spec import VALUE_WEIGHTS, ScenarioSpec


def _import_engine() -> Any:
    # csle_cyborg.main imports stable_baselines3 on the way in; keep that cost off module import.
    from csle_cyborg.main import Main

    return Main


class ExternalAgent:
    """An engine agent whose action is chosen outside the engine, set before each step."""

    def __init__(self) -> None:
        self.next_action: Any = None

    def get_action(self, observation: Any, action_space: Any = None) -> Any:
        return self.next_action

    def train(self, results: Any) -> None:
        pass

    def end_episode(self) -> None:
        pass

    def set_initial_values(self, action_space: Any, observation: Any) -> None:
        pass


@dataclass
class EngineStep:
    """What one simulator step produced for the blue team."""

    reward: float  # team reward: minus host values under red's root, plus blue action costs
    action_costs: dict[str, float]
    impacted: bool  # whether the target's OT service is down


class CyborgEngine:
    """A CybORG simulation of one scenario with a team of externally driven blue agents."""

    def __init__(self, scenario: str | ScenarioSpec, *, layout: str | None = None, red: str | None = None,
                 green: str | None = None, seed: int | None = None, lean: bool = True,
                 detection: float | None = None, green_rate: float | None = None, fast_reset: bool = True):
        self.spec = get_scenario(scenario)
        self.fast_reset = fast_reset  # False: the engine's own reset (tests compare the two)
        self.agents = self.spec.layout(layout)
        self.layout = layout
        self.lean = lean
        self.detection = self.spec.setting("detection", detection)
        self.green_rate = self.spec.setting("green_rate", green_rate)
        self.red_name = red if red is not None else self.spec.default_red
        red_behaviour = self.spec.behaviour("red", red)
        self.green_name = green if green is not None else self.spec.default_green
        green_behaviour = self.spec.behaviour("green", green)
        self.catalogs = {a.name: BlueActionCatalog(self.spec, a) for a in self.agents}
        self.tables = {a.name: BlueTable(a.hosts) for a in self.agents}
        self._rng_state = random.Random(None if seed is None else int(seed)).getstate()
        register()
        scenario_dict = build_scenario_dict(self.spec, layout)
        green_hosts = tuple(scenario_dict["Agents"][GREEN_AGENT]["starting_sessions"][i]["hostname"]
                            for i in range(len(scenario_dict["Agents"][GREEN_AGENT]["starting_sessions"])))
        agents: dict[str, Any] = {a.name: ExternalAgent for a in self.agents}
        agents[RED_AGENT] = red_agent_factory(red_behaviour, detection=self.detection,
                                              target=self.spec.red_target)
        agents[GREEN_AGENT] = green_agent_factory(green_behaviour, hostnames=green_hosts, rate=self.green_rate)
        with self.rng():
            self.cyborg = _import_engine()(scenario_dict, "sim", agents=agents)
        self.controller = self.cyborg.environment_controller
        self._weights = {h.name: (VALUE_WEIGHTS[h.confidentiality], VALUE_WEIGHTS[h.availability])
                         for h in self.spec.hosts}
        self._ot_hosts: list[str] = []
        self.blocked: dict[str, tuple[str, ...]] = {a.name: () for a in self.agents}
        # the engine's address maps and their text (`_filter_text`)
        self._filter_held: tuple[dict, dict, tuple[list[str], dict[str, list[str]]]] | None = None

    # randomness -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def rng(self) -> Iterator[None]:
        """Swap this environment's `random` state in for the duration of an engine call."""
        outer = random.getstate()
        random.setstate(self._rng_state)
        try:
            yield
        finally:
            self._rng_state = random.getstate()
            random.setstate(outer)

    # episode ----------------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> None:
        if seed is not None:
            self._rng_state = random.Random(int(seed)).getstate()
        with self.rng(), (cached_subnets() if self.fast_reset else contextlib.nullcontext()):
            self.cyborg.reset()
        reset_project_state(self.state)
        ctl = self.controller
        ctl.actions = {name: [] for name in ctl.agent_interfaces}
        ctl.action = {}
        for table in self.tables.values():
            table.reset()
        self.blocked = {a.name: () for a in self.agents}
        self._ot_hosts = [h for h, host in self.state.hosts.items()
                          if any(p.name == "OTService" for p in host.processes)]

    @property
    def state(self) -> Any:
        return self.controller.state

    def step(self, actions: dict[str, int]) -> EngineStep:
        """Advance one simulator step with each blue agent's enumerated action."""
        ctl = self.controller
        blue_actions = {}
        for agent in self.agents:
            action = self.catalogs[agent.name].build(int(actions[agent.name]))
            ctl.agent_interfaces[agent.name].agent.next_action = action
            blue_actions[agent.name] = action
        with self.rng():
            blocked_subnets(self.state).clear()
            if self.lean:
                self._lean_step()
            else:
                ctl.step()
            monitor_obs = self._monitor()
        costs = {name: float(ctl.action[name].cost) for name in blue_actions}
        for agent in self.agents:
            obs = [ctl.observation[agent.name].data]
            if agent.name in monitor_obs:
                obs.append(monitor_obs[agent.name])
            self.tables[agent.name].update(ctl.action[agent.name], obs)
            self.blocked[agent.name] = tuple(self.catalogs[agent.name].blocks(ctl.action[agent.name]))
        if self.lean:
            reward = self.lean_reward(costs)
        else:
            reward = self.engine_reward(costs)
        return EngineStep(reward=reward, action_costs=costs, impacted=self._impacted())

    def _lean_step(self) -> None:
        """The engine's step without the true-state collection and the reward calculators."""
        ctl = self.controller
        from csle_cyborg.shared.actions.action import InvalidAction

        ips, cidrs = self._filter_text()
        next_obs = {}
        for name, iface in ctl.agent_interfaces.items():
            action = iface.get_action(ctl.observation[name])
            if not ctl.test_valid_action(action, iface):
                action = InvalidAction(action)
            ctl.action[name] = action
            obs = ctl.execute_action(action)  # filtered as the engine's `_filter_obs` does, with the text ready
            obs.filter_addresses(ips=ips, cidrs=cidrs[name], include_localhost=False)
            next_obs[name] = obs
        for name, iface in ctl.agent_interfaces.items():
            ctl.observation[name] = next_obs[name]
            iface.update(next_obs[name])

    def _filter_text(self) -> tuple[list[str], dict[str, list[str]]]:
        """What the engine's `_filter_obs` filters an agent's observation by, as the text it compares: the hosts'
        addresses and, by agent, its allowed subnets. The engine makes both maps anew at every reset and never
        changes them between resets; the text is kept with the maps it came from, and made again for new ones, so
        converted once an episode rather than at every agent's every step."""
        ctl = self.controller
        ips, subnets = ctl.hostname_ip_map, ctl.subnet_cidr_map
        held = self._filter_held
        if held is None or held[0] is not ips or held[1] is not subnets:
            cidrs = {name: [str(subnets[s]) for s in ctl.scenario.get_agent_info(name).allowed_subnets]
                     for name in ctl.agent_interfaces}
            held = self._filter_held = (ips, subnets, ([str(ip) for ip in ips.values()], cidrs))
        return held[2]

    def _monitor(self) -> dict[str, dict]:
        """Each blue agent's monitoring report (the engine does this itself only for an agent named Blue)."""
        from csle_cyborg.shared.actions.abstract_actions.monitor import Monitor

        out = {}
        for agent in self.agents:
            if agent.name == "Blue" and not self.lean:
                continue  # the engine's own step already ran Blue's monitor into its observation
            obs = self.controller.execute_action(Monitor(session=0, agent=agent.name))
            out[agent.name] = obs.data
        return out

    # rewards ----------------------------------------------------------------------------------
    def lean_reward(self, costs: dict[str, float]) -> float:
        """Team reward from only what it needs: red's privileged sessions and the OT service."""
        from csle_cyborg.shared.enums import OperatingSystemType

        state = self.state
        red_sessions = state.sessions.get(RED_AGENT, {})
        confidentiality = 0.0
        for hostname, host in state.hosts.items():
            for ident in host.sessions.get(RED_AGENT, []):
                user = red_sessions[ident].username
                if (user == "root" and host.os_type == OperatingSystemType.LINUX) or \
                        (user == "SYSTEM" and host.os_type == OperatingSystemType.WINDOWS):
                    confidentiality += self._weights[hostname][0]
                    break
        availability = sum(self._weights[h][1] for h in self._ot_hosts
                           if not any(p.name == "OTService" for p in state.hosts[h].processes))
        return -round(availability, 1) - round(confidentiality, 1) + sum(costs.values())

    def engine_reward(self, costs: dict[str, float]) -> float:
        """Team reward from the engine's own calculator (valid after a full, non-lean step)."""
        first = self.agents[0].name
        own = self.controller.reward[first] - costs[first]
        return own + sum(costs.values())

    def _impacted(self) -> bool:
        return any(not any(p.name == "OTService" for p in self.state.hosts[h].processes) for h in self._ot_hosts)

    # introspection used by tests and the twin ---------------------------------------------------
    def red_access(self) -> dict[str, str]:
        """Per host, red's true access: "none", "user" or "root"."""
        out = {}
        red_sessions = self.state.sessions.get(RED_AGENT, {})
        for hostname, host in self.state.hosts.items():
            users = [red_sessions[i].username for i in host.sessions.get(RED_AGENT, [])]
            out[hostname] = "root" if any(u in ("root", "SYSTEM") for u in users) else ("user" if users else "none")
        return out

    def host_codes(self, agent: str) -> np.ndarray:
        return self.tables[agent].codes()
