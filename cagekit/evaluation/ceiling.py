"""A reference ceiling: how a defender scores that sees red's true access, which no real agent does.

The learned teams only see the monitor's host rows (stealthy steps are detected 10% of the time).
`OracleDefender` reads the simulator's ground truth instead and reacts at once: each agent restores the
most valuable of its hosts where red holds root, else removes a user-level foothold, else sleeps. It
obeys the same action masks and sends no bits. It is not a legitimate agent (it cannot be packaged or
scored by the harness, which hands agents observations only); it measures how much room a network leaves
above doing nothing, so that a gap between two learned teams can be read against it. It is a reactive
policy, not an optimum: a defender that blocks ahead of red's pivots could in principle do better.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from cagekit.evaluation.protocol import combination_stats, episode_seed, total_score

#: reward weight of red's root on a host, by the host's confidentiality (the paper reward)
_VALUE = {"None": 0.0, "Low": 0.1, "Medium": 1.0, "High": 10.0}


@dataclass(frozen=True)
class OracleDefender:
    """Chooses every blue agent's action from red's true access (`env.engine.red_access()`)."""

    env: Any

    def act(self, observations: dict[str, Any]) -> dict[str, int]:
        access = self.env.engine.red_access()
        step = 2 if self.env.channel else 1  # action = 2 * defence + bit when the channel is on
        return {name: step * self._defence(name, access, observations[name]["action_mask"], step)
                for name in self.env.agents}

    def _defence(self, name: str, access: dict[str, str], mask: np.ndarray, step: int) -> int:
        best, best_rank = 0, -1.0
        for index, (kind, host) in enumerate(self.env.engine.catalogs[name].entries):
            if host is None or not mask[step * index]:
                continue
            if kind == "Restore" and access.get(host) == "root":
                rank = 1.0 + _VALUE[self.env.spec.host(host).confidentiality]
            elif kind == "Remove" and access.get(host) == "user":
                rank = 0.5
            else:
                continue
            if rank > best_rank:
                best, best_rank = index, rank
        return best


def ceiling_returns(scenario: str, red: str, *, episodes: int, length: int = 30, seed: int = 0,
                    env_kwargs: dict[str, Any] | None = None, simulator: str = "engine") -> list[float]:
    """The oracle's episode returns against `red`, on the protocol's episodes of `seed` (as the harness plays
    them: the same per-episode seeds, so the rows it is read against faced the same episodes)."""
    from cagekit.wrappers import make_env

    env = make_env(scenario, red=red, episode_length=length, simulator=simulator, **(env_kwargs or {}))
    oracle = OracleDefender(env)
    returns = []
    try:
        for index in range(episodes):
            obs, _ = env.reset(seed=episode_seed(seed, length, red, index))
            total = 0.0
            while env.agents:
                obs, rewards, _, _, _ = env.step(oracle.act(obs))
                total += float(next(iter(rewards.values())))
            returns.append(total)
    finally:
        env.close()
    return returns


def ceiling_score(scenario: str, reds: list[str], *, episodes: int, length: int = 30, seed: int = 0,
                  env_kwargs: dict[str, Any] | None = None, simulator: str = "engine") -> dict[str, Any]:
    """Score (sum over reds of the mean return) with its 95% interval, as the harness computes a team's total,
    and the per-red means."""
    stats = []
    for red in reds:
        returns = ceiling_returns(scenario, red, episodes=episodes, length=length, seed=seed, env_kwargs=env_kwargs,
                                  simulator=simulator)
        zeros = [0.0] * len(returns)  # the oracle sends no bits and pays no channel cost
        stats.append(combination_stats(length, red, returns, zeros, zeros))
    total = total_score(stats)
    return {"score": total.score, "ci95": total.ci95, "per_red": {s.red: s.mean for s in stats}}
