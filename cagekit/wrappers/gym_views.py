"""Single-agent gymnasium views of the game, for Stable-Baselines3 / sb3-contrib baselines.

`CentralisedEnv` is a *centralised* view of any multi-agent scenario: one controller sees every
agent's observation vector (concatenated, in team order) and picks every agent's action at once
(`MultiDiscrete`, each entry the agent's full action, message bit included when the channel is on).
Its reward is the team reward (environment reward minus channel cost); `info["env_reward"]` holds the
environment reward alone. `action_masks()` gives the concatenated per-agent masks, the format
sb3-contrib's `MaskablePPO` expects for `MultiDiscrete`. With `flatten=True` the joint action is one
`Discrete` index (for DQN), allowed only while the joint action count stays under `MAX_FLAT_ACTIONS`.

`ClassicCage2Env` is the classic CAGE-2 single Blue agent: 52-bit observation, 145 actions, no channel.

`make_vec_env` builds SB3 vectorised copies seeded `seed + i`, so one seed gives one learning curve
whether the copies run in subprocesses or in-process.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

if TYPE_CHECKING:
    from stable_baselines3.common.vec_env import VecEnv

    from cagekit.wrappers.parallel import CageParallelEnv

#: the largest joint action count `CentralisedEnv(flatten=True)` accepts (paper-small with channel: 256)
MAX_FLAT_ACTIONS = 4096


def _build(kwargs: dict[str, Any]) -> CageParallelEnv:
    from cagekit.wrappers import make_env

    return make_env(**kwargs)


def integer_entries(action: Any, size: int, what: str) -> np.ndarray:
    """`action` as `size` integers; a float or a vector of the wrong length is refused rather than
    truncated to what `int()` makes of it (1.7 would silently play action 1)."""
    parts = np.asarray(action).reshape(-1)
    if parts.size != size or not np.issubdtype(parts.dtype, np.integer):
        raise ValueError(f"{what} {action!r}: expected {size} integer{'s' * (size > 1)}")
    return parts


class CentralisedEnv(gym.Env):
    """All blue agents as one gymnasium agent: concatenated observations, `MultiDiscrete` joint action.

    Takes the keyword arguments of `cagekit.wrappers.make_env` (`scenario`, `red`, `green`,
    `episode_length`, `message_cost`, `sau`, `channel`, `seed`, `layout`, ...), plus `flatten`.
    Episodes end by truncation after `episode_length` steps (never by termination).
    """

    metadata = {"render_modes": []}

    def __init__(self, scenario: str = "paper-small", *, flatten: bool = False, **env_kwargs: Any):
        self.env_kwargs = {"scenario": scenario, **env_kwargs}
        self.par = _build(self.env_kwargs)
        self.agent_names = list(self.par.possible_agents)
        self.obs_sizes = [int(self.par.obs_size(a)) for a in self.agent_names]
        self.nvec = np.array([int(self.par.action_space(a).n) for a in self.agent_names], dtype=np.int64)
        self.flatten = bool(flatten)
        self.observation_space = spaces.MultiBinary(int(sum(self.obs_sizes)))
        if self.flatten:
            n_joint = int(np.prod(self.nvec))
            if n_joint > MAX_FLAT_ACTIONS:
                raise ValueError(
                    f"scenario {scenario!r}: the joint action has {n_joint} values "
                    f"({' x '.join(str(int(n)) for n in self.nvec)}), above the limit of {MAX_FLAT_ACTIONS} "
                    f"for a flat Discrete action (needed by DQN); use PPO or MaskablePPO (MultiDiscrete) instead")
            self.action_space = spaces.Discrete(n_joint)
        else:
            self.action_space = spaces.MultiDiscrete(self.nvec)
        self._obs: dict[str, dict[str, np.ndarray]] = {}

    # joint action <-> per-agent actions ----------------------------------------------------------
    def split_action(self, action: Any) -> dict[str, int]:
        """Per-agent actions from a joint action (a MultiDiscrete vector, or a flat index)."""
        if self.flatten:
            index = int(integer_entries(action, 1, "flat joint action")[0])
            size = int(np.prod(self.nvec))
            if not 0 <= index < size:
                raise ValueError(f"flat joint action {index} outside 0..{size - 1}")
            parts = [int(p) for p in np.unravel_index(index, tuple(int(n) for n in self.nvec))]
        else:
            parts = [int(p) for p in integer_entries(action, len(self.agent_names), "joint action")]
        return dict(zip(self.agent_names, parts, strict=True))

    def join_action(self, actions: dict[str, int]) -> np.ndarray | int:
        """The joint action for a dict of per-agent actions (inverse of `split_action`)."""
        parts = [int(actions[a]) for a in self.agent_names]
        if self.flatten:
            return int(np.ravel_multi_index(parts, tuple(int(n) for n in self.nvec)))
        return np.array(parts, dtype=np.int64)

    def _vector(self) -> np.ndarray:
        return np.concatenate([self._obs[a]["observation"] for a in self.agent_names]).astype(np.int8)

    def agent_masks(self) -> list[np.ndarray]:
        return [np.asarray(self._obs[a]["action_mask"], dtype=bool) for a in self.agent_names]

    def action_masks(self) -> np.ndarray:
        """Valid actions: concatenated per-agent masks (MultiDiscrete) or the joint mask (flat)."""
        if not self._obs:
            return np.ones(int(np.prod(self.nvec)) if self.flatten else int(self.nvec.sum()), dtype=bool)
        masks = self.agent_masks()
        if not self.flatten:
            return np.concatenate(masks)
        joint = masks[0]
        for m in masks[1:]:
            joint = np.logical_and.outer(joint, m).reshape(-1)
        return joint

    # gymnasium API --------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._obs, _ = self.par.reset(seed=seed, options=options)
        return self._vector(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        obs, rewards, _, truncations, infos = self.par.step(self.split_action(action))
        self._obs = obs
        first = self.agent_names[0]
        info = {"env_reward": float(infos[first]["env_reward"]),
                "channel_cost": float(sum(i["channel_cost"] for i in infos.values())),
                "bits_sent": int(sum(i["bits_sent"] for i in infos.values())),
                "invalid_actions": int(sum(i["invalid_action"] for i in infos.values()))}
        return self._vector(), float(rewards[first]), False, bool(truncations[first]), info

    def close(self) -> None:
        self.par.close()


class ClassicCage2Env(gym.Env):
    """The classic CAGE-2 Blue agent: cage2 "classic" layout, 52-bit observation, 145 actions.

    No channel; SAU masking off by default (`action_masks()` is then all ones); reward is the
    environment reward; `red` is one of the scenario's red agents (B_lineAgent by default).
    `episode_length` defaults to 100, the longest CAGE-2 evaluation episode.
    """

    metadata = {"render_modes": []}
    action_space: spaces.Discrete

    def __init__(self, *, red: str = "B_lineAgent", episode_length: int = 100, sau: bool = False,
                 seed: int | None = None, **env_kwargs: Any):
        own = (("scenario", "cage2", "cage2"), ("layout", "classic", None), ("channel", False, None))
        for key, fixed, unset in own:
            given = env_kwargs.pop(key, fixed)
            if given not in (fixed, unset):  # once dropped without a word: another scenario, a channel...
                raise ValueError(f"ClassicCage2Env is cage2's classic layout, one Blue agent without a channel; "
                                 f"{key}={given!r} is not its {key} ({fixed!r}); for another scenario or layout "
                                 f"(a channel needs several agents: cage2's 'team') use CentralisedEnv, or "
                                 f"make_gym_env, which picks the view")
        self.env_kwargs = {"scenario": "cage2", "layout": "classic", "channel": False, "red": red,
                           "episode_length": episode_length, "sau": sau, "seed": seed, **env_kwargs}
        self.par = _build(self.env_kwargs)
        if self.par.possible_agents != ["Blue"]:
            raise RuntimeError(f"cage2 classic layout has agents {self.par.possible_agents}, expected ['Blue']")
        self.agent = "Blue"
        self.observation_space = spaces.MultiBinary(int(self.par.obs_size(self.agent)))
        self.action_space = spaces.Discrete(int(self.par.action_space(self.agent).n))
        self._obs: dict[str, dict[str, np.ndarray]] = {}

    def action_masks(self) -> np.ndarray:
        if not self._obs:
            return np.ones(self.action_space.n, dtype=bool)
        return np.asarray(self._obs[self.agent]["action_mask"], dtype=bool)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._obs, _ = self.par.reset(seed=seed, options=options)
        return self._obs[self.agent]["observation"].astype(np.int8), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        act = int(integer_entries(action, 1, "action")[0])
        obs, rewards, _, truncations, infos = self.par.step({self.agent: act})
        self._obs = obs
        info = infos[self.agent]
        out = {"env_reward": float(info["env_reward"]), "invalid_actions": int(info["invalid_action"]),
               "action": info["action"]}
        return (obs[self.agent]["observation"].astype(np.int8), float(info["env_reward"]), False,
                bool(truncations[self.agent]), out)

    def close(self) -> None:
        self.par.close()


def is_classic(scenario: str, layout: str | None) -> bool:
    return scenario == "cage2" and layout == "classic"


def make_gym_env(scenario: str = "paper-small", **kwargs: Any) -> CentralisedEnv | ClassicCage2Env:
    """`ClassicCage2Env` for cage2's classic layout, else `CentralisedEnv`."""
    if is_classic(scenario, kwargs.get("layout")):
        kwargs.pop("flatten", None)
        return ClassicCage2Env(**kwargs)
    return CentralisedEnv(scenario, **kwargs)


def _env_fn(seed: int | None, monitor: bool, kwargs: dict[str, Any]) -> Callable[[], gym.Env]:
    def build() -> gym.Env:
        env: gym.Env = make_gym_env(**{**kwargs, "seed": seed})
        if monitor:
            from stable_baselines3.common.monitor import Monitor

            env = Monitor(env)
        return env

    return build


def make_vec_env(n_envs: int = 4, seed: int | None = 0, vec: str = "subproc", monitor: bool = True,
                 start_method: str | None = None, reds: Sequence[str | None] | None = None,
                 **kwargs: Any) -> VecEnv:
    """`n_envs` copies of `make_gym_env(**kwargs)` in an SB3 `SubprocVecEnv` or `DummyVecEnv`.

    Copy `i` is built and first reset with seed `seed + i`; later episodes follow each copy's own
    seed sequence, so one seed gives the same rollouts (and learning curve) with either backend.
    `reds` (red agent names, None for the scenario's default): copy `i` plays `reds[i % len(reds)]`
    (exclusive with a `red` keyword; `cagekit.agents.rollout.training_reds` resolves "all" and lists).
    `kwargs` go to `make_gym_env`; `start_method` to `SubprocVecEnv` (SB3's default: forkserver).
    """
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    if n_envs < 1:
        raise ValueError(f"n_envs must be >= 1, got {n_envs}")
    if vec not in ("subproc", "dummy"):
        raise ValueError(f"vec must be 'subproc' or 'dummy', got {vec!r}")
    if reds is not None:
        if isinstance(reds, str):  # a name is a sequence of letters: 'K' would be refused as no red
            raise TypeError(f"reds is a list of red agent names, one per copy in turn, got the str {reds!r}; "
                            f"give [{reds!r}], or red={reds!r} for every copy")
        if "red" in kwargs:
            raise ValueError("give either red (every copy) or reds (per copy), not both")
        if not reds:
            raise ValueError("reds must name at least one red agent (None: the scenario's default)")
    copy_kwargs = [kwargs if reds is None or reds[i % len(reds)] is None else {**kwargs, "red": reds[i % len(reds)]}
                   for i in range(n_envs)]
    fns = [_env_fn(None if seed is None else seed + i, monitor, copy_kwargs[i]) for i in range(n_envs)]
    venv = SubprocVecEnv(fns, start_method=start_method) if vec == "subproc" else DummyVecEnv(fns)
    if seed is not None:
        venv.seed(seed)  # the next reset of copy i uses seed + i
    return venv


__all__ = ["MAX_FLAT_ACTIONS", "CentralisedEnv", "ClassicCage2Env", "is_classic", "make_gym_env", "make_vec_env"]
