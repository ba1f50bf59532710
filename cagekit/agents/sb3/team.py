"""Teams and agents from a trained SB3 model.

Execution of these baselines is **centralised**: an `Sb3Team` still has one `Agent` per blue agent,
each exposing `get_action(observation, action_space)`, but they share one controller. `Sb3Team.act`
gathers all agents' observations, runs one forward pass per step, caches the joint action, and each
agent's `get_action` then returns its own part from that per-step cache. The evaluation harness and the
submission worker call each agent's `begin_step(observations)` with the whole step before any
`get_action`, which primes the same cache. An agent called on its own (no `act`, no `begin_step`) falls
back to a forward pass with the latest observation it has seen from each teammate (zeros before the
first), i.e. it is then only approximately the trained policy.

Greedy actions are masked: the arg-max is taken over the actions the observation's `action_mask`
allows (for MaskablePPO this equals `predict(..., action_masks=...)`; for PPO and DQN it replaces
a masked-out choice, which the environment would run as Sleep, by the best allowed one).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cagekit.agents.base import Agent, AgentSlot, Team, observation_parts, slot_observation, team_slots
from cagekit.agents.checkpoint import env_settings
from cagekit.agents.sb3.checkpoints import load_model
from cagekit.agents.sb3.hyperparameters import algo_class

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

    def __init__(self, model: Any, algo: str, slots: list[AgentSlot], flatten: bool, mask_actions: bool = True,
                 sau: bool = False):
        self.model, self.algo, self.slots, self.sau = model, algo, slots, sau  # sau: masks rebuilt from bare vectors
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
        # sizes checked per agent: two masks off by opposite amounts made a joint mask of the right size, misaligned
        vec, mask = slot_observation(slot, observation, sau=self.sau)
        vec = np.asarray(vec, dtype=np.int8).reshape(-1)
        if mask is None:
            return vec, np.ones(slot.n_actions, dtype=bool)
        return vec, np.asarray(mask, dtype=bool).reshape(-1)

    def _key(self, name: str, observation: Any) -> bytes:
        """What identifies an agent's observation in the per-step cache."""
        return self._parts(name, observation)[0].tobytes()

    def joint(self, observations: Mapping[str, Any]) -> dict[str, int]:
        """One forward pass: every agent's action from every agent's observation."""
        parts = [self._parts(n, observations.get(n)) for n in self.names]
        vector = np.concatenate([p[0] for p in parts])
        masks = [p[1] for p in parts]
        self.forward_passes += 1
        actions: tuple[Any, ...] | np.ndarray  # one index per agent
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
        """Compute this step's joint action from all observations and cache each agent's part (once: the
        agents of a team each pass on the same step; a fresh step has emptied or changed the cache)."""
        keys = {n: self._key(n, o) for n, o in observations.items()}
        if self._cache and all(n in self._cache and self._cache[n][0] == k for n, k in keys.items()):
            return
        self._latest.update(observations)
        actions = self.joint(self._latest)
        self._cache = {n: (k, actions[n]) for n, k in keys.items()}

    def action_for(self, name: str, observation: Any) -> int:
        entry = self._cache.pop(name, None)
        if entry is not None and entry[0] == self._key(name, observation):
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

    def begin_step(self, observations: Mapping[str, Any]) -> None:
        self.controller.prime(observations)

    def get_action(self, observation: Any, action_space: Any = None) -> int:
        return self.controller.action_for(self.name, observation)

    def end_episode(self) -> None:
        self.controller.reset()


@dataclass
class Sb3Team(Team):
    """A team run by one centralised SB3 policy: one forward pass per step, split per agent."""

    controller: _Controller | None = None

    def _begin_step(self, observations: Mapping[str, Any]) -> None:
        if self.controller is not None:  # the joint action of this step, once, for every agent's get_action
            self.controller.prime(observations)

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


def load_team(path: str | Path, meta: Mapping[str, Any]) -> Team:
    """A `Team` from an SB3 checkpoint directory (model.zip + meta.json); classic: one agent "Blue"."""
    path = Path(path)
    model_file = (path if path.is_dir() else path.parent) / meta.get("model", "model.zip")
    if not model_file.exists():
        raise FileNotFoundError(f"no SB3 model at {model_file}")
    algo = meta["algo"]
    model = load_model(algo_class(algo), model_file)
    mask_actions = bool(meta.get("mask_actions", True))
    slots = [AgentSlot.from_json(s) for s in meta["slots"]]
    if meta.get("view") == "classic":
        agent = Sb3ClassicAgent(model, algo, mask_actions=mask_actions)
        return Team(agents={"Blue": agent}, scenario=meta["scenario"], kind=algo, meta=dict(meta))
    controller = _Controller(model, algo, slots, flatten=bool(meta.get("flatten", False)), mask_actions=mask_actions,
                             sau=bool(env_settings(dict(meta)).get("sau", True)))  # unrecorded: make_env's default
    agents: dict[str, Agent] = {s.name: Sb3Agent(s.name, controller) for s in slots}
    return Sb3Team(agents=agents, scenario=meta["scenario"], kind=algo, meta=dict(meta), controller=controller)


def team_from_model(model: Any, algo: str, env: Any, mask_actions: bool = True) -> Team:
    """A `Team` straight from an in-memory model and its gymnasium view (`CentralisedEnv`/`ClassicCage2Env`)."""
    from cagekit.wrappers.gym_views import ClassicCage2Env

    slots = team_slots(env.par)
    if isinstance(env, ClassicCage2Env):
        return Team(agents={"Blue": Sb3ClassicAgent(model, algo, mask_actions)}, scenario="cage2", kind=algo)
    controller = _Controller(model, algo, slots, flatten=env.flatten, mask_actions=mask_actions, sau=env.par.sau)
    return Sb3Team(agents={s.name: Sb3Agent(s.name, controller) for s in slots}, scenario=env.par.spec.name,
                   kind=algo, controller=controller)
