"""Heuristic blue agents: `sleep`, `random` (uniform over unmasked actions) and `react`."""

from __future__ import annotations

from typing import Any

import numpy as np

from cagekit.agents.base import Agent, AgentSlot, slot_observation

#: compromise bits (low two bits of a host code): 1 = User, 3 = Privileged (2 = Unknown, left alone)
_USER, _PRIVILEGED = 0b01, 0b11


class SleepAgent(Agent):
    def __init__(self, slot: AgentSlot):
        self.slot = slot

    def get_action(self, observation: Any, action_space: Any = None) -> int:
        return self.slot.encode(0, 0)


class RandomAgent(Agent):
    """Uniform over the unmasked actions (message bit included).

    With a seed it draws from its own generator; without one it draws from numpy's global generator,
    so that whoever runs it (the evaluation harness, a submission worker) fixes it by seeding numpy.
    `reseed(episode_seed)` restarts its own generator from (seed, episode seed): a submission worker calls
    it before every episode, so that an episode's actions do not depend on which episodes the worker
    played before (one process or several give the same scores).

    `sau`: the environment sends SAU masks, so a bare vector (CAGE's `get_action` form, no mask) gets the mask the
    environment would have sent with it; drawn among every action instead, most draws were actions the
    environment refuses and plays as Sleep. (`make_team` sets it from the environment; a packaged random team
    keeps the old draw, its generated code builds the agent without it.)"""

    def __init__(self, slot: AgentSlot, seed: int | None = None, sau: bool = False):
        self.slot = slot
        self.seed = seed
        self.sau = sau
        self.rng: Any = np.random.default_rng(seed) if seed is not None else np.random

    def reseed(self, episode_seed: int) -> None:
        if self.seed is not None:
            self.rng = np.random.default_rng([self.seed, episode_seed])

    def get_action(self, observation: Any, action_space: Any = None) -> int:
        _, mask = slot_observation(self.slot, observation, sau=self.sau)
        if mask is None:
            mask = np.ones(self.slot.n_actions, dtype=np.int8)
        valid = np.flatnonzero(mask)
        return int(self.rng.choice(valid))


class ReactAgent(Agent):
    """Restore a host its rows show privileged, Remove one they show user-level; bit on any exploit seen."""

    def __init__(self, slot: AgentSlot):
        self.slot = slot
        self._index = {entry: i for i, entry in enumerate(slot.actions)}

    def get_action(self, observation: Any, action_space: Any = None) -> int:
        vector, mask = slot_observation(self.slot, observation)
        codes, _, _ = self.slot.split(vector)
        exploit_seen = bool(np.any((codes >> 2) == 0b11))
        bit = int(exploit_seen and self.slot.channel)
        defence = 0
        for host, code in zip(self.slot.hosts, codes, strict=True):
            compromise = int(code) & 0b11
            if compromise == _PRIVILEGED:
                defence = self._index.get(("Restore", host), 0)
                break
            if compromise == _USER and defence == 0:
                defence = self._index.get(("Remove", host), 0)
        action = self.slot.encode(defence, bit)
        if mask is not None and not mask[action]:
            action = self.slot.encode(0, bit)
        return action


HEURISTICS = {"sleep": SleepAgent, "random": RandomAgent, "react": ReactAgent}
