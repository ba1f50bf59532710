"""Batched team rollouts: B environments stepped in lockstep behind one array interface.

Learners that collect whole batches of episodes (DIAL) read per-agent arrays, not per-env dicts:
`reset(seeds)` and `step(actions)` give, for each agent in team order, its observations (B, obs_size)
and action masks (B, n_actions). Two back ends:
  - `EnvListRollout`: a list of team environments (`cagekit.make_env`), stepped one after another;
  - `TwinRollout`: one `TwinBatch` of size B, stepped as arrays (the paper scenarios' twin; docs/twin.md),
    one to two orders of magnitude faster at B >= 32.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

AgentArrays = list[tuple[np.ndarray, np.ndarray]]  # per agent: (observations (B, n), masks (B, m))


class EnvListRollout:
    """B team environments, each stepped with its own dict of actions."""

    def __init__(self, envs: Sequence[Any]):
        self.envs = list(envs)
        self.names = list(self.envs[0].possible_agents)

    def __len__(self) -> int:
        return len(self.envs)

    def _arrays(self, obs: list[dict[str, Any]]) -> AgentArrays:
        return [(np.stack([o[n]["observation"] for o in obs]), np.stack([o[n]["action_mask"] for o in obs]))
                for n in self.names]

    def reset(self, seeds: Sequence[int]) -> AgentArrays:
        return self._arrays([env.reset(seed=int(s))[0] for env, s in zip(self.envs, seeds, strict=True)])

    def step(self, actions: np.ndarray) -> tuple[AgentArrays, np.ndarray, np.ndarray]:
        """actions (B, A) as the env encodes them -> (arrays, team reward (B,), env reward (B,))."""
        obs, rewards, env_rewards = [], np.zeros(len(self)), np.zeros(len(self))
        first = self.names[0]
        for b, env in enumerate(self.envs):
            o, r, _, _, info = env.step({n: int(actions[b, a]) for a, n in enumerate(self.names)})
            obs.append(o)
            rewards[b] = float(r[first])
            env_rewards[b] = float(info[first]["env_reward"])
        return self._arrays(obs), rewards, env_rewards


class TwinRollout:
    """One `TwinBatch` of B environments; an episode's seeds seed the whole batch together."""

    def __init__(self, scenario: str, batch_size: int, **env_kwargs: Any):
        from cagekit.twin.batch import TwinBatch

        env_kwargs = {k: v for k, v in env_kwargs.items() if k not in ("simulator", "lean", "seed")}
        self.batch = TwinBatch(scenario, batch_size, **env_kwargs)
        self.names = list(self.batch.agent_names)

    def __len__(self) -> int:
        return self.batch.B

    def _arrays(self, obs: dict[str, np.ndarray]) -> AgentArrays:
        b = self.batch
        return [(obs["observation"][:, a, :int(b.obs_size[a])], obs["action_mask"][:, a, :int(b.n_actions[a])])
                for a in range(len(self.names))]

    def reset(self, seeds: Sequence[int]) -> AgentArrays:
        seed = int(np.random.SeedSequence([int(s) for s in seeds]).generate_state(1)[0])
        return self._arrays(self.batch.reset(seed=seed))

    def step(self, actions: np.ndarray) -> tuple[AgentArrays, np.ndarray, np.ndarray]:
        obs, reward, env_reward, _, _ = self.batch.step(np.asarray(actions, dtype=np.int64))
        return self._arrays(obs), reward, env_reward
