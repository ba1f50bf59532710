"""Batched team rollouts: B environments stepped in lockstep behind one array interface.

Learners that collect whole batches of episodes (DIAL) read per-agent arrays, not per-env dicts:
`reset(seeds)` and `step(actions)` give, for each agent in team order, its observations (B, obs_size)
and action masks (B, n_actions). Two back ends:
  - `EnvListRollout`: a list of team environments (`cagekit.make_env`), stepped one after another;
  - `TwinRollout`: `TwinBatch`es of B environments in all (one per red agent), stepped as arrays (the
    paper scenarios' twin; docs/twin.md), one to two orders of magnitude faster at B >= 32.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

AgentArrays = list[tuple[np.ndarray, np.ndarray]]  # per agent: (observations (B, n), masks (B, m))

ALL_REDS = "all"


def training_reds(scenario: str, red: str | None) -> list[str | None]:
    """The red agents a learner trains against: None (the scenario's default), one name, a comma-separated
    list, or "all" (every red agent of the scenario, as the evaluation protocol scores them)."""
    if red is None:
        return [None]
    if not isinstance(red, str):  # str(['A', 'B']) read as a list of names gave "unknown red agent(s) ["['A'"..."
        raise TypeError(f"red is a str: a red agent's name, several in one comma-separated str ('A,B') or "
                        f"{ALL_REDS!r}; got {type(red).__name__} {red!r}")
    from cagekit.scenarios import get_scenario
    from cagekit.scenarios.options import comma_list

    valid = list(get_scenario(scenario).red_agents)
    names = valid if red == ALL_REDS else comma_list(red, "the red agent list")
    unknown = [r for r in names if r not in valid]
    if unknown or not names:
        raise ValueError(f"unknown red agent(s) {unknown or red!r} for scenario {scenario!r}; "
                         f"valid: {', '.join(valid)}, a comma-separated list of them, or {ALL_REDS!r}")
    return list(names)


def split(total: int, parts: int) -> list[int]:
    """`total` items over `parts` groups as evenly as possible (the first groups get the remainder)."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


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

    def state(self) -> np.ndarray:
        """(B, S) global states now (`env.state()`: every agent's observation and red's true access), for
        centralised training only."""
        return np.stack([env.state() for env in self.envs])

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
    """`TwinBatch`es of B environments in all, one per red agent trained against (`reds`, as
    `training_reds` resolves them; B split evenly between them); an episode's seeds seed them together."""

    def __init__(self, scenario: str, batch_size: int, reds: Sequence[str | None] = (None,), **env_kwargs: Any):
        from cagekit.twin.batch import TwinBatch

        env_kwargs = {k: v for k, v in env_kwargs.items() if k not in ("simulator", "lean", "seed")}
        if batch_size < len(reds):
            raise ValueError(f"batch of {batch_size} environments cannot cover {len(reds)} red agents")
        self.batches = [TwinBatch(scenario, n, red=r, **env_kwargs)
                        for r, n in zip(reds, split(batch_size, len(reds)), strict=True)]
        self.names = list(self.batches[0].agent_names)

    def __len__(self) -> int:
        return sum(b.B for b in self.batches)

    def _arrays(self, obs: list[dict[str, np.ndarray]]) -> AgentArrays:
        b = self.batches[0]
        out = []
        for a in range(len(self.names)):
            n_obs, n_act = int(b.obs_size[a]), int(b.n_actions[a])
            out.append((np.concatenate([o["observation"][:, a, :n_obs] for o in obs]),
                        np.concatenate([o["action_mask"][:, a, :n_act] for o in obs])))
        return out

    def reset(self, seeds: Sequence[int]) -> AgentArrays:
        root = np.random.SeedSequence([int(s) for s in seeds])
        self._last = self._arrays([b.reset(seed=int(child.generate_state(1)[0]))
                                   for b, child in zip(self.batches, root.spawn(len(self.batches)), strict=True)])
        return self._last

    def state(self) -> np.ndarray:
        """(B, S) global states now, laid out as `env.state()` of the twin and engine environments: every
        agent's observation, then red's access to each host one-hot (none, user, root); for centralised
        training only."""
        onehot = np.concatenate([b.access_onehot() for b in self.batches])
        own = self.batches[0].own_obs_size  # a team view's teammate part repeats what the others' parts hold
        return np.concatenate([obs[:, :own[a]] for a, (obs, _) in enumerate(self._last)] + [onehot],
                              axis=1).astype(np.int8)

    def step(self, actions: np.ndarray) -> tuple[AgentArrays, np.ndarray, np.ndarray]:
        actions = np.asarray(actions, dtype=np.int64)
        obs, rewards, env_rewards, start = [], [], [], 0
        for b in self.batches:
            o, r, e, _, _ = b.step(actions[start:start + b.B])
            obs.append(o)
            rewards.append(r)
            env_rewards.append(e)
            start += b.B
        self._last = self._arrays(obs)
        return self._last, np.concatenate(rewards), np.concatenate(env_rewards)
