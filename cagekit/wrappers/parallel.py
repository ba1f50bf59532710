"""The multi-agent game: a PettingZoo `ParallelEnv` over the CybORG engine with a costed 1-bit channel.

Each blue agent observes only its own hosts' 4-bit rows, its block bits and the bits its teammates
sent last step. Its action is a defence action plus (when the channel is on) one message bit, encoded
as one integer `2 * defence + bit` (`encode_action`); a sent 1 costs `message_cost` and reaches every
teammate next step. All agents share the team reward.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from cagekit.engine import CyborgEngine
from cagekit.engine.table import ACTIVITY_BITS, CODE_BITS, COMPROMISE_BITS, check_view
from cagekit.scenarios import ScenarioSpec
from cagekit.wrappers.sau import sau_mask

ACCESS_LEVELS = ("none", "user", "root")
RENDER_MODES = ("ansi",)
_ACTIVITY = {bits: name for name, bits in ACTIVITY_BITS.items()}
_COMPROMISE = {bits: name for name, bits in COMPROMISE_BITS.items()}


def encode_action(defence: int, bit: int) -> int:
    """One integer for a defence action and a message bit (the channel-on action space)."""
    return 2 * int(defence) + int(bit)


def decode_action(action: int) -> tuple[int, int]:
    return int(action) // 2, int(action) % 2


class TeamSpaces:
    """The spaces of a team env, from its `obs_size(agent)`, `n_actions(agent)`, `channel` and `spec`.

    Shared by the engine-backed env and the twin, so that the two can never disagree on them."""

    spec: ScenarioSpec
    channel: bool
    possible_agents: list[str]
    agents: list[str]

    def obs_size(self, agent: str) -> int:
        raise NotImplementedError

    def own_obs_size(self, agent: str) -> int:
        raise NotImplementedError

    def n_actions(self, agent: str) -> int:
        """The number of defence actions (without the message bit)."""
        raise NotImplementedError

    def _known(self, agent: str) -> None:
        if agent not in self.possible_agents:
            raise ValueError(f"no agent {agent!r} in this env; its agents: {', '.join(self.possible_agents)}")

    def _cached_space(self, kind: str, agent: str) -> Any:
        """The same space object at every call (PettingZoo asks it: seeding a space must stick), kept by the env
        itself: a `functools.cache` on the method held every env ever asked (its engine too) for the process's
        life."""
        cache: dict[tuple[str, str], Any] = self.__dict__.setdefault("_spaces", {})
        space = cache.get((kind, agent))
        if space is None:
            self._known(agent)
            size = self.n_actions(agent) * (2 if self.channel else 1)
            space = spaces.Dict({"observation": spaces.MultiBinary(self.obs_size(agent)),
                                 "action_mask": spaces.MultiBinary(size)}) if kind == "observation" \
                else spaces.Discrete(size)
            cache[(kind, agent)] = space
        return space

    def observation_space(self, agent: str) -> spaces.Dict:
        return self._cached_space("observation", agent)

    def action_space(self, agent: str) -> spaces.Discrete:
        return self._cached_space("action", agent)

    @property
    def state_size(self) -> int:
        """Bits of the global state: every agent's own observation, then each host's access by red."""
        return sum(self.own_obs_size(a) for a in self.possible_agents) + 3 * len(self.spec.hosts)

    @property
    def state_space(self) -> spaces.MultiBinary:
        return spaces.MultiBinary(self.state_size)

    def parse_action(self, agent: str, action: Any) -> tuple[int, int]:
        """(defence, bit) from an encoded integer, or from a (defence, bit) pair."""
        n = self.n_actions(agent)
        arr = np.asarray(action).reshape(-1)
        size = n * 2 if self.channel else n
        integer = np.issubdtype(arr.dtype, np.integer)  # 1.9 is refused, not played as 1
        if arr.size == 2 and self.channel and integer and 0 <= arr[0] < n and arr[1] in (0, 1):
            return int(arr[0]), int(arr[1])
        if arr.size != 1 or not integer or not (0 <= arr[0] < size):
            pair = f" or a (defence 0..{n - 1}, bit 0..1) pair" if self.channel else ""
            raise ValueError(f"agent {agent!r}: action {action!r} outside its space: an integer 0..{size - 1}{pair}")
        return decode_action(int(arr[0])) if self.channel else (int(arr[0]), 0)

    def check_step(self, actions: dict[str, Any]) -> None:
        """Refuse a step on a finished episode or one that leaves a live agent without an action."""
        if not self.agents:
            raise RuntimeError("step() called on a finished episode; call reset() first")
        if not isinstance(actions, Mapping):
            raise TypeError(f"step() takes a dict of agent -> action, got {type(actions).__name__}; agents: "
                            f"{', '.join(self.agents)}")
        missing = [a for a in self.agents if a not in actions]
        if missing:
            raise ValueError(f"no action for agent(s) {missing}; every live agent acts each step")
        unknown = sorted(a for a in actions if a not in self.agents)
        if unknown:  # a misspelt agent's action would otherwise be dropped without a word
            raise ValueError(f"action(s) for {unknown}, not agents of this episode; its agents: "
                             f"{', '.join(self.agents)}")


def _whole(value: Any, least: int, wanted: str) -> int:
    """`value` as a plain int (numpy integers included) of at least `least`; floats, text and bools are
    refused with `wanted`, since numpy's and `random`'s own messages do not say which argument was wrong."""
    try:
        number = operator.index(value)
    except TypeError:
        raise ValueError(f"{wanted}, got {value!r}") from None
    if isinstance(value, bool | np.bool_) or number < least:
        raise ValueError(f"{wanted}, got {value!r}")
    return int(number)


def check_seed(seed: Any) -> int | None:
    """`seed` as a plain int or None (`_whole`)."""
    return None if seed is None else _whole(seed, 0, "seed must be an integer >= 0 (or None)")


def check_flag(name: str, value: Any) -> bool:
    """A true/false setting: the text "off" or "no" would otherwise count as on."""
    if not isinstance(value, bool | np.bool_):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_length(episode_length: Any) -> int:
    return _whole(episode_length, 1, "episode_length must be an integer >= 1")


def seed_sequence(seed: int | None) -> np.random.SeedSequence:
    """The episodes' seed stream (`check_seed`)."""
    return np.random.SeedSequence(check_seed(seed))


class CageParallelEnv(TeamSpaces, ParallelEnv):
    metadata = {"name": "cagekit_v0", "render_modes": list(RENDER_MODES)}
    render_mode: str | None = None  # PettingZoo's wrappers and conversions read it

    def __init__(self, engine: CyborgEngine, *, episode_length: int = 30, message_cost: float | None = None,
                 sau: bool = True, channel: bool = True, seed: int | None = None, view: str = "own",
                 render_mode: str | None = None):
        if render_mode is not None and render_mode not in RENDER_MODES:
            raise ValueError(f"render_mode must be None or one of {', '.join(map(repr, RENDER_MODES))}, "
                             f"got {render_mode!r}")
        self.render_mode = render_mode
        self.view = check_view(view)
        self.engine = engine
        self.spec = engine.spec
        self.episode_length = check_length(episode_length)
        self.message_cost = self.spec.setting("message_cost", message_cost)
        self.sau = check_flag("sau", sau)
        self.channel = check_flag("channel", channel)
        self.possible_agents = [a.name for a in engine.agents]
        if self.channel and len(self.possible_agents) < 2:  # its bits would cost and reach no one
            layout = engine.layout or self.spec.default_layout
            raise ValueError(f"the message channel needs two or more blue agents, and {self.spec.name}'s layout "
                             f"{layout!r} has one ({self.possible_agents[0]}); leave channel out (off for one "
                             f"agent) or choose a layout of several")
        self.agents: list[str] = []
        self._specs = {a.name: a for a in engine.agents}
        self._seeds = seed_sequence(seed)
        self._t = 0
        self._received = {a: np.zeros(self._n_received(a), dtype=np.int8) for a in self.possible_agents}
        self._invalid = {a: 0 for a in self.possible_agents}
        self._masks: dict[str, np.ndarray] = {}
        self._last_actions: dict[str, tuple[int, int]] = {}
        self._last_obs: dict[str, dict[str, np.ndarray]] = {}  # what `render` shows

    # spaces -----------------------------------------------------------------------------------
    def _n_received(self, agent: str) -> int:
        return len(self.possible_agents) - 1 if self.channel else 0

    def _n_rows_and_blocks(self, agent: str) -> int:
        spec = self._specs[agent]
        return 4 * len(spec.hosts) + len(spec.block_subnets)

    def own_obs_size(self, agent: str) -> int:
        """Its own rows, block bits and received bits: the observation without the team view's part."""
        return self._n_rows_and_blocks(agent) + self._n_received(agent)

    def obs_size(self, agent: str) -> int:
        team = sum(self._n_rows_and_blocks(b) for b in self.possible_agents if b != agent) if self.view == "team" else 0
        return self.own_obs_size(agent) + team

    def n_actions(self, agent: str) -> int:
        return len(self.engine.catalogs[agent])

    # episode ----------------------------------------------------------------------------------
    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        if seed is not None:
            self._seeds = seed_sequence(seed)
        episode_seed = int(self._seeds.spawn(1)[0].generate_state(1)[0])
        self.engine.reset(seed=episode_seed)
        self.agents = list(self.possible_agents)
        self._t = 0
        self._received = {a: np.zeros(self._n_received(a), dtype=np.int8) for a in self.possible_agents}
        self._invalid = {a: 0 for a in self.possible_agents}
        self._last_actions = {}
        obs = self._observe()
        return obs, {a: {} for a in self.agents}

    def _observe(self) -> dict[str, dict[str, np.ndarray]]:
        out = {}
        codes_of = {a: self.engine.host_codes(a) for a in self.possible_agents}
        seen = {}  # each agent's rows and block bits
        for a in self.possible_agents:
            blocked = self.engine.blocked[a]
            block_bits = np.array([s in blocked for s in self._specs[a].block_subnets], dtype=np.int8)
            seen[a] = np.concatenate([CODE_BITS[codes_of[a]].reshape(-1), block_bits]).astype(np.int8)
        for a in self.possible_agents:
            codes = codes_of[a]
            team = [seen[b] for b in self.possible_agents if b != a] if self.view == "team" else []
            vec = np.concatenate([seen[a], self._received[a], *team]).astype(np.int8)
            arrived = bool(self._received[a].any())
            mask = sau_mask(self.engine.catalogs[a], codes, arrived) if self.sau \
                else np.ones(self.n_actions(a), dtype=np.int8)
            self._masks[a] = mask
            out[a] = {"observation": vec, "action_mask": np.repeat(mask, 2) if self.channel else mask}
        self._last_obs = out
        return out

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        self.check_step(actions)
        chosen: dict[str, int] = {}
        bits: dict[str, int] = {}
        invalid: dict[str, bool] = {}
        for a in self.agents:
            act, bit = self.parse_action(a, actions[a])
            invalid[a] = not bool(self._masks[a][act])
            if invalid[a]:
                self._invalid[a] += 1
                act = 0  # a masked action is executed as Sleep
            chosen[a], bits[a] = act, bit
        result = self.engine.step(chosen)
        self._last_actions = {a: (chosen[a], bits[a]) for a in self.agents}
        channel_cost = {a: self.message_cost * bits[a] for a in self.agents}
        team = result.reward - sum(channel_cost.values())
        for a in self.possible_agents:
            if self.channel:
                self._received[a] = np.array([bits[b] for b in self.possible_agents if b != a], dtype=np.int8)
        self._t += 1
        obs = self._observe()
        done = self._t >= self.episode_length
        rewards = {a: team for a in self.agents}
        terminations = {a: False for a in self.agents}
        truncations = {a: done for a in self.agents}
        infos = {a: {"bits_sent": bits[a], "channel_cost": channel_cost[a], "env_reward": result.reward,
                     "action_cost": result.action_costs[a], "invalid_action": invalid[a],
                     "invalid_actions": self._invalid[a], "impacted": result.impacted,
                     "action": self.engine.catalogs[a].label(chosen[a])} for a in self.agents}
        if done:
            self.agents = []
        return obs, rewards, terminations, truncations, infos

    def state(self) -> np.ndarray:
        """Global state for centralised training: every agent's observation plus red's true access."""
        parts = [self._observe_one(a) for a in self.possible_agents]
        access = self.engine.red_access()
        onehot = np.zeros(3 * len(self.spec.hosts), dtype=np.int8)
        for i, h in enumerate(self.spec.host_names):
            onehot[3 * i + ACCESS_LEVELS.index(access[h])] = 1
        return np.concatenate(parts + [onehot]).astype(np.int8)

    def _observe_one(self, agent: str) -> np.ndarray:
        spec = self._specs[agent]
        blocked = self.engine.blocked[agent]
        block_bits = np.array([s in blocked for s in spec.block_subnets], dtype=np.int8)
        return np.concatenate([self.engine.tables[agent].bits(), block_bits, self._received[agent]])

    def action_label(self, agent: str, action: int) -> str:
        return self.engine.catalogs[agent].label(action)

    def render(self) -> str:
        """With `render_mode="ansi"`: the last observation as each blue agent sees it, decoded (its hosts' activity
        and compromise, its block bits, the bits it received) with its last action, as text."""
        if self.render_mode != "ansi":
            raise ValueError(f"render() needs render_mode='ansi' (make_env(..., render_mode='ansi')); this "
                             f"environment has render_mode={self.render_mode!r}")
        if not self._last_obs:
            raise RuntimeError("render() before reset(): there is no state to show yet")
        lines = [f"step {self._t}/{self.episode_length}"]
        for a in self.possible_agents:
            spec, vec = self._specs[a], self._last_obs[a]["observation"]
            rows = vec[:4 * len(spec.hosts)].reshape(-1, 4)
            blocks = vec[4 * len(spec.hosts):self._n_rows_and_blocks(a)]
            received = vec[self._n_rows_and_blocks(a):self.own_obs_size(a)]
            did = ""
            if a in self._last_actions:
                act, bit = self._last_actions[a]
                did = f"; last action {self.action_label(a, act)}" + (f", sent {bit}" if self.channel else "")
            lines.append(f"{a}{did}")
            width = max((len(h) for h in spec.hosts), default=0)  # an agent may only block: it has no host
            for host, row in zip(spec.hosts, rows, strict=True):
                activity = _ACTIVITY.get((int(row[0]), int(row[1])), "?")
                compromise = _COMPROMISE[(int(row[2]), int(row[3]))]
                lines.append(f"  {host:<{width}}  activity {activity:<7}  compromised {compromise}")
            if spec.block_subnets:
                lines.append("  blocked: " + ", ".join(f"{s} {int(b)}" for s, b in
                                                        zip(spec.block_subnets, blocks, strict=True)))
            if self.channel:
                lines.append("  received: " + " ".join(str(int(b)) for b in received))
        return "\n".join(lines)

    def close(self) -> None:
        pass
