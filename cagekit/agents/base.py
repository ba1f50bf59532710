"""The Agent interface every blue agent implements, and the `Team` that evaluation and submissions use.

Compatible with CAGE's convention: `get_action(observation, action_space)`, `end_episode()`,
`set_initial_values(action_space, observation)`. In our multi-agent environment an agent's
observation is its own dict `{"observation": bits, "action_mask": mask}` and its action is one
integer that carries its message bit when the channel is on (`2 * defence + bit`).
"""

from __future__ import annotations

import random
import sys
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class AgentSlot:
    """What an agent knows of its place in the team: fixed by the scenario and environment settings."""

    name: str
    index: int  # position in the team (the agent id the shared networks embed)
    hosts: tuple[str, ...]
    block_subnets: tuple[str, ...]
    actions: tuple[tuple[str, str | None], ...]  # the defence action catalogue: (kind, target)
    n_teammates: int
    channel: bool
    team_bits: int = 0  # teammates' rows and block bits after its own part (an env with view="team")

    @property
    def n_defence(self) -> int:
        return len(self.actions)

    @property
    def n_actions(self) -> int:
        return self.n_defence * (2 if self.channel else 1)

    @property
    def n_received(self) -> int:
        return self.n_teammates if self.channel else 0

    @property
    def obs_size(self) -> int:
        return 4 * len(self.hosts) + len(self.block_subnets) + self.n_received + self.team_bits

    def split(self, vector: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(host rows as codes 0-15, block bits, received bits) from an observation vector."""
        h, k = len(self.hosts), len(self.block_subnets)
        rows = np.asarray(vector[: 4 * h]).reshape(h, 4)
        codes = rows[:, 0] * 8 + rows[:, 1] * 4 + rows[:, 2] * 2 + rows[:, 3]
        blocks = np.asarray(vector[4 * h: 4 * h + k])
        received = np.asarray(vector[4 * h + k: 4 * h + k + self.n_received])
        return codes.astype(np.int64), blocks, received

    def encode(self, defence: int, bit: int = 0) -> int:
        return 2 * defence + bit if self.channel else defence

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "index": self.index, "hosts": list(self.hosts),
                "block_subnets": list(self.block_subnets), "actions": [list(a) for a in self.actions],
                "n_teammates": self.n_teammates, "channel": self.channel,
                **({"team_bits": self.team_bits} if self.team_bits else {})}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AgentSlot:
        return cls(name=data["name"], index=int(data["index"]), hosts=tuple(data["hosts"]),
                   block_subnets=tuple(data["block_subnets"]),
                   actions=tuple((a[0], a[1]) for a in data["actions"]),
                   n_teammates=int(data["n_teammates"]), channel=bool(data["channel"]),
                   team_bits=int(data.get("team_bits", 0)))


def team_slots(env: Any) -> list[AgentSlot]:
    """The slots of every agent of a `CageParallelEnv`, in team order."""
    if not hasattr(env, "possible_agents") or not hasattr(env, "engine"):  # make_team("react", "paper-small")
        raise TypeError(f"expected an environment from cagekit.make_env (a team is made for its agents), got "
                        f"{type(env).__name__} {env!r}")
    out = []
    for i, name in enumerate(env.possible_agents):
        spec = env.engine.catalogs[name].agent
        out.append(AgentSlot(name=name, index=i, hosts=spec.hosts, block_subnets=spec.block_subnets,
                             actions=env.engine.catalogs[name].entries, n_teammates=len(env.possible_agents) - 1,
                             channel=env.channel, team_bits=env.obs_size(name) - env.own_obs_size(name)))
    return out


def seed_everything(seed: int) -> None:
    """Seed the global generators a team may sample from (random, numpy, torch if loaded): the harness before
    each episode's team is built, and a packaged Python team's submission the same way."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(seed)


class Agent(ABC):
    """One blue agent. Decentralised: it sees only its own observation and keeps its own memory."""

    def set_initial_values(self, action_space: Any = None, observation: Any = None) -> None:
        """Called before each episode with its first observation (CAGE convention); stateless agents ignore it."""

    def begin_step(self, observations: Mapping[str, Any]) -> None:
        """Every agent's observation of this step, before any agent's `get_action`. A decentralised agent
        ignores it (the default); a centralised team's agents (`cagekit.agents.sb3`) compute their joint
        action from it, so that no agent acts on a teammate's stale observation."""

    @abstractmethod
    def get_action(self, observation: Any, action_space: Any = None) -> int:
        """The action for this step, from this agent's own observation."""

    def end_episode(self) -> None:
        """Forget per-episode memory (recurrent state, previous action)."""


class SilencedAgent(Agent):
    """Another agent with its message bit forced to 0 (channel on): its teammates hear nothing from it and
    it pays no channel cost. An intervention for asking what a trained team's channel is worth."""

    def __init__(self, inner: Agent):
        self.inner = inner

    def set_initial_values(self, action_space: Any = None, observation: Any = None) -> None:
        self.inner.set_initial_values(action_space, observation)

    def begin_step(self, observations: Mapping[str, Any]) -> None:
        begin = getattr(self.inner, "begin_step", None)  # a CAGE agent from elsewhere may not have it
        if begin is not None:
            begin(observations)

    def get_action(self, observation: Any, action_space: Any = None) -> int:
        return int(self.inner.get_action(observation, action_space)) & ~1  # action = 2 * defence + bit

    def end_episode(self) -> None:
        self.inner.end_episode()


def observation_parts(observation: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """(vector, mask) from the environment's per-agent dict, or (vector, None) from a bare vector."""
    if isinstance(observation, Mapping):
        return np.asarray(observation["observation"]), np.asarray(observation["action_mask"])
    return np.asarray(observation), None


def slot_observation(slot: AgentSlot, observation: Any, sau: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """`observation_parts` for the agent of `slot`, refusing a vector or mask of another size: an agent called on
    its own (CAGE's loop calls `get_action`, not `Team.act`) on an environment of another shape failed deep in numpy
    or torch, or silently read the wrong bits. `sau`: the agent was trained with SAU masks, so a bare vector gets
    the mask the environment would have sent with it (rebuilt from its rows and received bits); without it such
    an agent chose among actions it never chose in training, which the environment then plays as Sleep."""
    vector, mask = observation_parts(observation)
    if mask is None and sau and vector.size == slot.obs_size:
        from cagekit.wrappers.sau import sau_mask_of

        codes, _, received = slot.split(vector)
        rebuilt = sau_mask_of(slot.actions, slot.hosts, codes, bool(received.any()))
        mask = np.repeat(rebuilt, 2) if slot.channel else rebuilt
    wrong = []
    if vector.size != slot.obs_size:
        wrong.append(f"an observation of {vector.size} values, expected {slot.obs_size}")
    if mask is not None and mask.size != slot.n_actions:
        wrong.append(f"an action mask of {mask.size} values, expected {slot.n_actions}")
    if wrong:
        shape = f"channel {'on' if slot.channel else 'off'}, view={'team' if slot.team_bits else 'own'}"
        raise ValueError(f"agent {slot.name!r} got {' and '.join(wrong)} ({shape}): play it on the environment its "
                         f"team was made for, cagekit.make_env(**team.env_settings())")
    return vector, mask


def trained_with_sau(meta: dict[str, Any]) -> bool:
    """Whether a checkpoint's team was trained with SAU masks (its meta.json's environment settings)."""
    env = meta.get("env") if isinstance(meta, dict) else None
    return bool(env.get("sau")) if isinstance(env, dict) else False


@dataclass
class Team:
    """The named blue agents of one side, acting on the environment's dict of observations."""

    agents: dict[str, Agent]
    scenario: str
    kind: str
    #: the checkpoint's meta.json (spaces, hyperparameters, a registered scenario's whole spec): left out of the repr,
    #: which printed all of it (24 kB for a 19-host network of one's own) for a printed or echoed team
    meta: dict[str, Any] = field(default_factory=dict, repr=False)
    _slots: dict[str, AgentSlot] | None = field(default=None, init=False, repr=False, compare=False)

    def act(self, observations: Mapping[str, Any], action_spaces: Mapping[str, Any] | None = None) -> dict[str, int]:
        missing = [name for name in observations if name not in self.agents]
        if missing:
            raise ValueError(f"team {self.kind!r} has no agent for {missing}; it has {sorted(self.agents)}")
        self._check_sizes(observations)
        self._begin_step(observations)
        return {name: int(self.agents[name].get_action(obs, None if action_spaces is None else action_spaces[name]))
                for name, obs in observations.items()}

    def _begin_step(self, observations: Mapping[str, Any]) -> None:
        """After the observations are checked, before any agent acts: nothing for decentralised agents (a
        centralised team's computes its joint action here)."""

    def end_episode(self) -> None:
        for agent in self.agents.values():
            agent.end_episode()

    def env_settings(self) -> dict[str, Any]:
        """The environment a trained team was trained for (scenario, layout, channel, sau, message_cost, view),
        as `cagekit.make_env(**team.env_settings())` takes them; only the scenario for a team without a record."""
        from cagekit.agents.checkpoint import env_settings  # torch stays unloaded for heuristic teams

        return {"scenario": self.scenario, **env_settings(self.meta)}

    def _check_sizes(self, observations: Mapping[str, Any]) -> None:
        """A trained team's agents on an environment of another shape (channel off for a channel team,
        view="team" for an own-view team) would fail deep in numpy or torch; name the mismatch instead."""
        if self._slots is None:
            slots = self.meta.get("slots")
            self._slots = ({s["name"]: AgentSlot.from_json(s) for s in slots if isinstance(s, Mapping)}
                           if isinstance(slots, list) else {})
        for name, observation in observations.items():
            slot = self._slots.get(name)
            if slot is None:
                continue
            size = np.size(observation["observation"] if isinstance(observation, Mapping) else observation)
            if size != slot.obs_size:
                shape = f"channel {'on' if slot.channel else 'off'}, view={'team' if slot.team_bits else 'own'}"
                raise ValueError(
                    f"team {self.kind!r}: agent {name} was trained on observations of {slot.obs_size} values "
                    f"({shape}), but this environment gives it {size}; play it on "
                    f"the environment it was trained for: cagekit.make_env(**team.env_settings()) = "
                    f"make_env(**{self.env_settings()!r})")


def team_returns(team: Team, env: Any, episodes: int, seed: int) -> list[float]:
    """Team returns over `episodes` episodes of `env`, episode i reset with seed + i (a quick check while
    training; scores come from `cagekit.evaluation`)."""
    out = []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        team.end_episode()
        total = 0.0
        while env.agents:
            obs, rewards, _, _, _ = env.step(team.act(obs))
            total += float(next(iter(rewards.values())))
        out.append(total)
    team.end_episode()
    return out
