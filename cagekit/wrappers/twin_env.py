"""`TwinParallelEnv`: the twin (`cagekit.twin`) behind the same PettingZoo interface as `CageParallelEnv`."""

from __future__ import annotations

from typing import Any

import numpy as np
from pettingzoo import ParallelEnv

from cagekit.scenarios import get_scenario
from cagekit.scenarios.spec import ScenarioSpec
from cagekit.twin.batch import ACCESS_LEVELS, TwinBatch
from cagekit.wrappers.parallel import (
    TeamSpaces,
    check_flag,
    check_length,
    decode_action,
    encode_action,
    seed_sequence,
)


class _EngineView:
    """What teams and tools read from `env.engine`: the spec, the blue agents and their catalogues."""

    def __init__(self, batch: TwinBatch):
        self.spec = batch.spec
        self.catalogs = {a.name: a.catalog for a in batch.model.agents}
        self.agents = tuple(a.catalog.agent for a in batch.model.agents)
        self.red_name = batch.red_name
        self.green_name = batch.green_name
        self._batch = batch

    def red_access(self) -> dict[str, str]:
        return self._batch.red_access(0)

    def host_codes(self, agent: str) -> np.ndarray:
        ai = self._batch.agent_names.index(agent)
        nh = len(self._batch.model.agents[ai].hosts)
        return self._batch.host_codes()[0, ai, :nh].astype(np.int64)


class TwinParallelEnv(TeamSpaces, ParallelEnv):
    """One twin environment (a `TwinBatch` of size 1) with `CageParallelEnv`'s spaces, obs and infos."""

    metadata = {"name": "cagekit_twin_v0", "render_modes": []}
    render_mode: str | None = None  # no rendering; PettingZoo's wrappers and conversions read it

    def __init__(self, scenario: str | ScenarioSpec = "paper-small", *, red: str | None = None,
                 green: str | None = None, episode_length: int = 30, message_cost: float | None = None,
                 sau: bool = True, channel: bool = True, seed: int | None = None, layout: str | None = None,
                 detection: float | None = None, green_rate: float | None = None, view: str = "own"):
        episode_length = check_length(episode_length)  # before the batch: text is named, not compared
        sau, channel = check_flag("sau", sau), check_flag("channel", channel)
        self.batch = TwinBatch(scenario, 1, None, red=red, green=green, episode_length=episode_length,
                               message_cost=message_cost, sau=sau, channel=channel, layout=layout,
                               detection=detection, green_rate=green_rate, view=view)
        self.spec = self.batch.spec
        self.engine = _EngineView(self.batch)
        self.episode_length = self.batch.episode_length
        self.message_cost = self.batch.message_cost
        self.sau = sau
        self.channel = channel
        self.view = view
        self.possible_agents = list(self.batch.agent_names)
        self.agents: list[str] = []
        self._seeds = seed_sequence(seed)
        self._obs: dict[str, np.ndarray] | None = None

    # spaces ---------------------------------------------------------------------------------------------
    def _index(self, agent: str) -> int:
        return self.possible_agents.index(agent)

    def obs_size(self, agent: str) -> int:
        return int(self.batch.obs_size[self._index(agent)])

    def own_obs_size(self, agent: str) -> int:
        return int(self.batch.own_obs_size[self._index(agent)])

    def n_actions(self, agent: str) -> int:
        return int(self.batch.model.n_defence[self._index(agent)])

    # episode --------------------------------------------------------------------------------------------
    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        if seed is not None:
            self._seeds = seed_sequence(seed)
        episode_seed = int(self._seeds.spawn(1)[0].generate_state(1)[0])
        self._obs = self.batch.reset(seed=episode_seed)
        self.agents = list(self.possible_agents)
        return self._split(self._obs), {a: {} for a in self.agents}

    def _split(self, obs: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
        out = {}
        for ai, a in enumerate(self.possible_agents):
            n_obs = int(self.batch.obs_size[ai])
            n_act = int(self.batch.n_actions[ai])
            out[a] = {"observation": obs["observation"][0, ai, :n_obs].copy(),
                      "action_mask": obs["action_mask"][0, ai, :n_act].copy()}
        return out

    def _encoded(self, agent: str, action: Any) -> int:
        """The batch's action integer (`parse_action`, then encoded when the channel is on)."""
        defence, bit = self.parse_action(agent, action)
        return encode_action(defence, bit) if self.channel else defence

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        self.check_step(actions)
        encoded = np.array([[self._encoded(a, actions[a]) for a in self.possible_agents]], dtype=np.int64)
        obs, reward, env_reward, done, info = self.batch.step(encoded)
        self._obs = obs
        team = float(reward[0])
        infos = {}
        for ai, a in enumerate(self.possible_agents):
            defence = int(info["action"][0, ai])
            bit = decode_action(int(encoded[0, ai]))[1] if self.channel else 0
            infos[a] = {"bits_sent": bit, "channel_cost": float(info["channel_cost"][0, ai]),
                        "env_reward": float(env_reward[0]), "action_cost": float(info["action_cost"][0, ai]),
                        "invalid_action": bool(info["invalid_action"][0, ai]),
                        "invalid_actions": int(info["invalid_actions"][0, ai]),
                        "impacted": bool(info["impacted"][0]), "action": self.action_label(a, defence)}
        out = self._split(obs)
        finished = bool(done[0])
        rewards = {a: team for a in self.agents}
        terminations = {a: False for a in self.agents}
        truncations = {a: finished for a in self.agents}
        if finished:
            self.agents = []
        return out, rewards, terminations, truncations, infos

    def state(self) -> np.ndarray:
        """Global state: every agent's observation plus red's true access (as `CageParallelEnv.state`)."""
        if self._obs is None:
            raise RuntimeError("call reset() first")
        parts = [o["observation"][:self.own_obs_size(a)] for a, o in self._split(self._obs).items()]
        return np.concatenate(parts + [self.batch.access_onehot()[0]]).astype(np.int8)

    def action_label(self, agent: str, action: int) -> str:
        return self.engine.catalogs[agent].label(action)

    def close(self) -> None:
        pass


def make_twin_env(scenario: str | ScenarioSpec = "paper-small", *, red: str | None = None, green: str | None = None,
                  episode_length: int = 30, message_cost: float | None = None, sau: bool = True,
                  channel: bool = True, seed: int | None = None, layout: str | None = None, lean: bool = True,
                  detection: float | None = None, green_rate: float | None = None, view: str = "own"
                  ) -> TwinParallelEnv:
    """The twin of `cagekit.make_env(...)` (same arguments; `lean` is accepted and has no effect)."""
    spec = get_scenario(scenario)
    return TwinParallelEnv(spec, red=red, green=green, episode_length=episode_length, message_cost=message_cost,
                           sau=sau, channel=channel, seed=seed, layout=layout, detection=detection,
                           green_rate=green_rate, view=view)


__all__ = ["ACCESS_LEVELS", "TwinParallelEnv", "make_twin_env"]
