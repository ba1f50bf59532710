"""Stable-Baselines3 / sb3-contrib baselines: PPO, MaskablePPO and DQN on the gymnasium views.

Training (`train_sb3`) runs on `CentralisedEnv` (every agent's observation in, every agent's action
out) or, for cage2's classic layout, on `ClassicCage2Env` (the single CAGE-2 Blue agent). It writes to
`out_dir`: `model.zip` (the SB3 checkpoint), `meta.json` (algorithm, scenario, environment settings,
agent slots, versions), `progress.csv` and TensorBoard event files.

Execution of these baselines is **centralised**: an `Sb3Team` still has one `Agent` per blue agent,
each exposing `get_action(observation, action_space)`, but they share one controller. `Sb3Team.act`
gathers all agents' observations, runs one forward pass per step, caches the joint action, and each
agent's `get_action` then returns its own part from that per-step cache. An agent called on its own
(outside `Sb3Team.act`) falls back to a forward pass with the latest observation it has seen from each
teammate (zeros before the first), i.e. it is then only approximately the trained policy.

Greedy actions are masked: the arg-max is taken over the actions the observation's `action_mask`
allows (for MaskablePPO this equals `predict(..., action_masks=...)`; for PPO and DQN it replaces
a masked-out choice, which the environment would run as Sleep, by the best allowed one).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cagekit.agents.base import Agent, AgentSlot, Team, observation_parts, team_slots

ALGOS = ("ppo", "maskable-ppo", "dqn")

#: per-algorithm defaults, overridable with `algo_kwargs`
DEFAULTS: dict[str, dict[str, Any]] = {
    "ppo": {"n_steps": 256, "batch_size": 256, "n_epochs": 10, "learning_rate": 3e-4, "gamma": 0.99,
            "gae_lambda": 0.95, "ent_coef": 0.01, "clip_range": 0.2},
    "maskable-ppo": {"n_steps": 256, "batch_size": 256, "n_epochs": 10, "learning_rate": 3e-4, "gamma": 0.99,
                     "gae_lambda": 0.95, "ent_coef": 0.01, "clip_range": 0.2},
    "dqn": {"learning_rate": 5e-4, "buffer_size": 100_000, "learning_starts": 2_000, "batch_size": 128,
            "gamma": 0.99, "train_freq": 4, "target_update_interval": 2_000, "exploration_fraction": 0.3,
            "exploration_final_eps": 0.05},
}


def _algo_class(algo: str):  # noqa: ANN202 - an SB3 algorithm class
    if algo == "ppo":
        from stable_baselines3 import PPO

        return PPO
    if algo == "maskable-ppo":
        from sb3_contrib import MaskablePPO

        return MaskablePPO
    if algo == "dqn":
        from stable_baselines3 import DQN

        return DQN
    raise ValueError(f"unknown SB3 algorithm {algo!r}; valid: {', '.join(ALGOS)}")


# ---------------------------------------------------------------------------------------------------
# greedy masked action of a trained model


def _greedy(model: Any, algo: str, vector: np.ndarray, mask: np.ndarray | None, nvec: list[int] | None) -> np.ndarray:
    """Arg-max action(s) of `model` on one observation vector, restricted to `mask` where given.

    `nvec` set: a MultiDiscrete policy (one arg-max per block of the concatenated mask); else Discrete.
    """
    import torch

    policy = model.policy
    obs_t, _ = policy.obs_to_tensor(np.asarray(vector, dtype=np.int8))
    with torch.no_grad():
        if algo == "dqn":
            scores = policy.q_net(obs_t)[0]
        else:
            dist = policy.get_distribution(obs_t)
            cats = getattr(dist, "distributions", None) or dist.distribution
            cats = cats if isinstance(cats, list | tuple) else [cats]
            scores = torch.cat([c.logits for c in cats], dim=-1)[0]
    scores = scores.cpu().numpy().astype(np.float64)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != scores.shape:
            raise ValueError(f"action mask of shape {mask.shape} for a policy with {scores.shape[0]} outputs")
    blocks = [scores.size] if nvec is None else list(nvec)
    out, start = [], 0
    for n in blocks:
        s = scores[start:start + n].copy()
        if mask is not None and mask[start:start + n].any():
            s[~mask[start:start + n]] = -np.inf
        out.append(int(np.argmax(s)))
        start += n
    return np.array(out, dtype=np.int64)


# ---------------------------------------------------------------------------------------------------
# the team and the classic agent


class _Controller:
    """The one centralised policy behind every agent of an `Sb3Team`, with its per-step cache."""

    def __init__(self, model: Any, algo: str, slots: list[AgentSlot], flatten: bool, mask_actions: bool = True):
        self.model, self.algo, self.slots = model, algo, slots
        self.names = [s.name for s in slots]
        self.nvec = [s.n_actions for s in slots]
        self.flatten = flatten
        self.mask_actions = mask_actions
        self._cache: dict[str, tuple[bytes, int]] = {}
        self._latest: dict[str, Any] = {}
        self.forward_passes = 0

    def _parts(self, name: str, observation: Any) -> tuple[np.ndarray, np.ndarray]:
        slot = self.slots[self.names.index(name)]
        if observation is None:
            return np.zeros(slot.obs_size, dtype=np.int8), np.ones(slot.n_actions, dtype=bool)
        vec, mask = observation_parts(observation)
        vec = np.asarray(vec, dtype=np.int8).reshape(-1)
        if vec.size != slot.obs_size:
            raise ValueError(f"agent {name!r}: observation of {vec.size} bits, expected {slot.obs_size}")
        mask = np.ones(slot.n_actions, dtype=bool) if mask is None else np.asarray(mask, dtype=bool).reshape(-1)
        return vec, mask

    def joint(self, observations: Mapping[str, Any]) -> dict[str, int]:
        """One forward pass: every agent's action from every agent's observation."""
        parts = [self._parts(n, observations.get(n)) for n in self.names]
        vector = np.concatenate([p[0] for p in parts])
        masks = [p[1] for p in parts]
        self.forward_passes += 1
        if self.flatten:
            joint_mask = masks[0]
            for m in masks[1:]:
                joint_mask = np.logical_and.outer(joint_mask, m).reshape(-1)
            index = _greedy(self.model, self.algo, vector, joint_mask if self.mask_actions else None, None)[0]
            actions = np.unravel_index(int(index), tuple(self.nvec))
        else:
            actions = _greedy(self.model, self.algo, vector,
                              np.concatenate(masks) if self.mask_actions else None, self.nvec)
        return {n: int(a) for n, a in zip(self.names, actions, strict=True)}

    def prime(self, observations: Mapping[str, Any]) -> None:
        """Compute this step's joint action from all observations and cache each agent's part."""
        self._latest.update(observations)
        actions = self.joint(self._latest)
        self._cache = {n: (self._parts(n, observations[n])[0].tobytes(), actions[n]) for n in observations}

    def action_for(self, name: str, observation: Any) -> int:
        entry = self._cache.pop(name, None)
        vec = self._parts(name, observation)[0]
        if entry is not None and entry[0] == vec.tobytes():
            return entry[1]
        self._latest[name] = observation  # called on its own: teammates' latest observations stand in
        return self.joint(self._latest)[name]

    def reset(self) -> None:
        self._cache.clear()
        self._latest.clear()


class Sb3Agent(Agent):
    """One agent of an `Sb3Team`: its part of the centralised policy's joint action (see module doc)."""

    def __init__(self, name: str, controller: _Controller):
        self.name = name
        self.controller = controller

    def get_action(self, observation: Any, action_space: Any = None) -> int:
        return self.controller.action_for(self.name, observation)

    def end_episode(self) -> None:
        self.controller.reset()


@dataclass
class Sb3Team(Team):
    """A team run by one centralised SB3 policy: one forward pass per step, split per agent."""

    controller: _Controller | None = None

    def act(self, observations: Mapping[str, Any], action_spaces: Mapping[str, Any] | None = None) -> dict[str, int]:
        if self.controller is not None:
            missing = [name for name in observations if name not in self.agents]
            if missing:
                raise ValueError(f"team {self.kind!r} has no agent for {missing}; it has {sorted(self.agents)}")
            self.controller.prime(observations)
        return super().act(observations, action_spaces)

    def end_episode(self) -> None:
        if self.controller is not None:
            self.controller.reset()
        super().end_episode()


class Sb3ClassicAgent(Agent):
    """A classic CAGE-2 Blue agent from an SB3 model: `get_action` on the 52-bit observation vector.

    Accepts the bare vector or the `{"observation", "action_mask"}` dict (the mask, if any, is applied).
    """

    def __init__(self, model: Any, algo: str, mask_actions: bool = True):
        self.model, self.algo, self.mask_actions = model, algo, mask_actions

    def get_action(self, observation: Any, action_space: Any = None) -> int:
        vec, mask = observation_parts(observation)
        return int(_greedy(self.model, self.algo, np.asarray(vec).reshape(-1),
                           mask if self.mask_actions else None, None)[0])


# ---------------------------------------------------------------------------------------------------
# training, checkpoints


def _env_settings(scenario: str, env_kwargs: dict[str, Any]) -> dict[str, Any]:
    from cagekit.wrappers.gym_views import is_classic

    settings = {k: v for k, v in env_kwargs.items() if k != "seed"}
    if is_classic(scenario, settings.get("layout")):
        settings.pop("flatten", None)
        return settings
    return settings


def train_sb3(algo: str, scenario: str = "paper-small", steps: int = 100_000, seed: int = 0,
              out_dir: str | Path = "runs/sb3", n_envs: int = 4, *, vec: str = "dummy", progress_bar: bool = True,
              algo_kwargs: dict[str, Any] | None = None, policy_kwargs: dict[str, Any] | None = None,
              verbose: int = 0, torch_threads: int | None = 1, **env_kwargs: Any) -> Any:
    """Train `algo` ("ppo", "maskable-ppo", "dqn") on `scenario` for `steps` environment steps.

    `env_kwargs` go to the gymnasium view (`make_env`'s keywords: `red`, `episode_length`, `channel`,
    `sau`, `message_cost`, `layout`, ...); `layout="classic"` on cage2 trains the single CAGE-2 Blue
    agent. DQN needs a flat Discrete action: multi-agent scenarios get the joint action flattened when
    it has at most `MAX_FLAT_ACTIONS` values (paper-small) and are refused otherwise.
    Copies are seeded `seed + i`, so one seed gives one learning curve (`vec` "dummy" or "subproc").
    Writes model.zip, meta.json, progress.csv and TensorBoard logs to `out_dir`; returns the model.
    `torch_threads` caps torch's CPU threads while training (1 by default: these MLPs are tiny and extra
    threads only contend, badly so on a busy machine); None leaves torch's setting alone.
    """
    import sb3_contrib
    import stable_baselines3
    import torch
    from stable_baselines3.common.logger import configure

    import cagekit
    from cagekit.wrappers.gym_views import CentralisedEnv, is_classic, make_gym_env, make_vec_env

    cls = _algo_class(algo)
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    classic = is_classic(scenario, env_kwargs.get("layout"))
    if not classic:
        env_kwargs["flatten"] = algo == "dqn"
    probe = make_gym_env(scenario, **env_kwargs)  # raises here (not in a worker) on a bad setting
    slots = team_slots(probe.par)
    nvec = [int(n) for n in probe.nvec] if isinstance(probe, CentralisedEnv) else [int(probe.action_space.n)]
    probe.close()

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    venv = make_vec_env(n_envs, seed, vec=vec, scenario=scenario, **env_kwargs)
    kwargs = {**DEFAULTS[algo], **(algo_kwargs or {})}
    if algo != "dqn":
        kwargs["batch_size"] = min(kwargs["batch_size"], kwargs["n_steps"] * n_envs)
    model = cls("MlpPolicy", venv, seed=seed, verbose=verbose, device="cpu", policy_kwargs=policy_kwargs, **kwargs)
    model.set_logger(configure(str(out), ["csv", "tensorboard"]))
    threads = torch.get_num_threads()
    if torch_threads is not None:
        torch.set_num_threads(torch_threads)
    from stable_baselines3.common.callbacks import CheckpointCallback

    # checkpoints every tenth of the run (as our learners do every K updates), and the model on Ctrl-C
    every = max(int(steps) // 10 // max(n_envs, 1), 1)
    checkpoints = CheckpointCallback(save_freq=every, save_path=str(out / "checkpoints"), name_prefix="model")
    try:
        model.learn(total_timesteps=int(steps), progress_bar=progress_bar, callback=checkpoints)
    except KeyboardInterrupt:
        print(f"interrupted at {model.num_timesteps:,} steps: saving the model so far")
    finally:
        torch.set_num_threads(threads)
        venv.close()
    model.save(out / "model.zip")
    meta = {"algo": algo, "scenario": scenario, "view": "classic" if classic else "centralised",
            "execution": "centralised", "flatten": bool(env_kwargs.get("flatten", False)),
            "env": _env_settings(scenario, env_kwargs), "nvec": nvec,
            "agents": [s.name for s in slots], "slots": [s.to_json() for s in slots],
            "mask_actions": True, "steps": int(steps), "seed": seed, "n_envs": n_envs,
            "hyperparameters": {k: v for k, v in kwargs.items() if isinstance(v, int | float | str | bool)},
            "policy_kwargs": policy_kwargs or {}, "model": "model.zip",
            "versions": {"cagekit": cagekit.__version__, "stable_baselines3": stable_baselines3.__version__,
                         "sb3_contrib": sb3_contrib.__version__}}
    (out / "meta.json").write_text(json.dumps(meta, indent=2, default=str))
    return model


def load_team(path: str | Path, meta: Mapping[str, Any]) -> Team:
    """A `Team` from an SB3 checkpoint directory (model.zip + meta.json); classic: one agent "Blue"."""
    path = Path(path)
    model_file = (path if path.is_dir() else path.parent) / meta.get("model", "model.zip")
    if not model_file.exists():
        raise FileNotFoundError(f"no SB3 model at {model_file}")
    algo = meta["algo"]
    model = _algo_class(algo).load(model_file, device="cpu")
    mask_actions = bool(meta.get("mask_actions", True))
    slots = [AgentSlot.from_json(s) for s in meta["slots"]]
    if meta.get("view") == "classic":
        agent = Sb3ClassicAgent(model, algo, mask_actions=mask_actions)
        return Team(agents={"Blue": agent}, scenario=meta["scenario"], kind=algo, meta=dict(meta))
    controller = _Controller(model, algo, slots, flatten=bool(meta.get("flatten", False)), mask_actions=mask_actions)
    agents: dict[str, Agent] = {s.name: Sb3Agent(s.name, controller) for s in slots}
    return Sb3Team(agents=agents, scenario=meta["scenario"], kind=algo, meta=dict(meta), controller=controller)


def team_from_model(model: Any, algo: str, env: Any, mask_actions: bool = True) -> Team:
    """A `Team` straight from an in-memory model and its gymnasium view (`CentralisedEnv`/`ClassicCage2Env`)."""
    from cagekit.wrappers.gym_views import ClassicCage2Env

    slots = team_slots(env.par)
    if isinstance(env, ClassicCage2Env):
        return Team(agents={"Blue": Sb3ClassicAgent(model, algo, mask_actions)}, scenario="cage2", kind=algo)
    controller = _Controller(model, algo, slots, flatten=env.flatten, mask_actions=mask_actions)
    return Sb3Team(agents={s.name: Sb3Agent(s.name, controller) for s in slots}, scenario=env.par.spec.name,
                   kind=algo, controller=controller)


__all__ = ["ALGOS", "DEFAULTS", "Sb3Agent", "Sb3ClassicAgent", "Sb3Team", "load_team", "team_from_model",
           "train_sb3"]
