"""Stable-Baselines3 / sb3-contrib baselines: PPO, MaskablePPO and DQN on the gymnasium views.

Training (`train_sb3`) runs on `CentralisedEnv` (every agent's observation in, every agent's action
out) or, for cage2's classic layout, on `ClassicCage2Env` (the single CAGE-2 Blue agent). It writes to
`out_dir`: `model.zip` (the SB3 checkpoint), `meta.json` (algorithm, scenario, environment settings,
agent slots, versions), `progress.csv` and TensorBoard event files, `checkpoints/model_<N>_steps.zip`
every tenth of the run (DQN: with its replay buffer, the latest one kept, and `replay_buffer.pkl`
beside `model.zip`). `train_sb3(..., resume=True)` continues a run from its latest checkpoint, and
`ProgressCallback` gives SB3 runs the progress bar of our own learners.

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

import csv
import inspect
import json
import math
import os
import re
import sys
import time
import zipfile
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CheckpointCallback
from stable_baselines3.common.logger import CSVOutputFormat, Logger, TensorBoardOutputFormat
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm

from cagekit.agents.base import Agent, AgentSlot, Team, observation_parts, team_slots
from cagekit.agents.checkpoint import with_spec
from cagekit.agents.config_file import RANGES, check_value

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


#: the ranges of the numeric hyperparameters that have one (`config_file.RANGES`); SB3 checks few of them itself,
#: and a negative batch or a gamma of 5 otherwise fails in SB3's asserts or trains on nonsense
BOUNDS: dict[str, str] = {
    **dict.fromkeys(("n_steps", "batch_size", "n_epochs", "buffer_size", "train_freq", "target_update_interval",
                     "stats_window_size"), ">= 1"),
    **dict.fromkeys(("learning_rate", "clip_range", "max_grad_norm"), "> 0"),
    **dict.fromkeys(("learning_starts", "ent_coef", "vf_coef"), ">= 0"),
    **dict.fromkeys(("gamma", "gae_lambda", "tau", "exploration_fraction", "exploration_initial_eps",
                     "exploration_final_eps"), "in [0, 1]"),
}
#: the constructor arguments train_sb3 sets itself, not a config's to give
_FIXED = frozenset({"self", "policy", "env", "seed", "verbose", "device", "policy_kwargs", "_init_setup_model"})


def check_hyperparameters(algo: str, algo_kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    """`algo_kwargs` with whole floats made ints, or a ValueError naming the key, the value and what is valid.

    A value's type is its default's in the algorithm's signature (where that is a number, text or a flag) and
    its range `BOUNDS`': a config file's "x" for a learning rate would otherwise end in SB3's traceback
    after the run's folder was made."""
    params = inspect.signature(_algo_class(algo).__init__).parameters
    settable = sorted(set(params) - _FIXED)
    unknown = sorted(set(algo_kwargs or {}) - set(settable))
    if unknown:
        raise ValueError(f"unknown {algo} hyperparameter(s) {unknown}; valid: {', '.join(settable)}")
    checked = {}
    for key, value in (algo_kwargs or {}).items():
        hint, default = params[key].annotation, params[key].default
        kind = next((k for k in (hint, type(default)) if k in (bool, int, float, str)), None)
        if kind is not None:
            value = check_value(algo, key, value, kind)
        rule = BOUNDS.get(key)
        if rule is not None and not RANGES[rule](value):
            raise ValueError(f"{algo} config key {key!r} must be {rule}, got {value!r}")
        checked[key] = value
    return checked


def _algo_class(algo: str) -> type[BaseAlgorithm]:
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


# ---------------------------------------------------------------------------------------------------
# progress bar, checkpoints, logs

#: the logger key of the mean bits sent per episode (summed over agents), which `ProgressCallback` records
BITS_KEY = "rollout/ep_bits_mean"
MODEL_FILE = "model.zip"
REPLAY_BUFFER_FILE = "replay_buffer.pkl"
CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_PREFIX = "model"


class ProgressCallback(BaseCallback):
    """The progress bar of our own learners (`training._progress`) for an SB3 run, and bits in its log.

    The bar counts environment steps up to `total`; its stats column is `training._stats_text` of the
    mean episode return over SB3's stats window (`model.ep_info_buffer`, the team reward), the mean bits
    sent per episode over the same window (summed over agents, from the `CentralisedEnv` step infos'
    `bits_sent`; nan for the classic view, which has no channel), DQN's exploration rate (left out for PPO)
    and environment steps per second (over the last ~10 seconds). It is refreshed every `refresh_s`
    seconds. `enabled=False` shows no bar; the mean bits per episode is recorded to the SB3 logger as
    `BITS_KEY` either way, so that `progress.csv` and `cagekit plot` have it.
    Call `close()` if `learn` may end by an exception (`_on_training_end` is then skipped).
    """

    def __init__(self, total: int, enabled: bool = True, refresh_s: float = 0.5, label: str = "train"):
        super().__init__()
        self.total, self.enabled, self.refresh_s = int(total), bool(enabled), float(refresh_s)
        self.label = label  # the bar's name for the run (algorithm and seed)
        self.progress: Any = None  # the rich Progress while training with the bar on
        self.stats_text = ""
        self._episode_bits: deque[float] = deque(maxlen=100)
        self._bits = np.zeros(0)
        self._has_bits = False
        self._marks: deque[tuple[float, int]] = deque(maxlen=20)
        self._last_refresh = -math.inf
        self._closed = False

    def _on_training_start(self) -> None:
        from cagekit.agents.training import _progress

        self._episode_bits = deque(maxlen=int(getattr(self.model, "_stats_window_size", 100)))
        self._bits = np.zeros(self.training_env.num_envs)
        self._marks.clear()
        self._marks.append((time.perf_counter(), int(self.model.num_timesteps)))
        self._closed = False
        self.progress = _progress(self.enabled, self.total, min(int(self.model.num_timesteps), self.total),
                                  label=self.label)

    def _on_step(self) -> bool:
        infos = self.locals.get("infos") or ()
        dones = self.locals.get("dones")
        ended = False
        for i, info in enumerate(infos):
            if "bits_sent" in info:
                self._has_bits = True
                self._bits[i] += info["bits_sent"]
            if dones is not None and dones[i]:
                if self._has_bits:
                    self._episode_bits.append(float(self._bits[i]))
                self._bits[i] = 0.0
                ended = True
        if ended:
            self._record_bits()
        if self.progress is not None and time.perf_counter() - self._last_refresh >= self.refresh_s:
            self._refresh()
        return True

    def _on_rollout_end(self) -> None:
        self._record_bits()  # PPO logs once per rollout, after it ends

    def _on_training_end(self) -> None:
        self.close()

    def _record_bits(self) -> None:
        if self._episode_bits:
            self.logger.record(BITS_KEY, float(np.mean(self._episode_bits)))

    def stats(self) -> dict[str, float]:
        """The figures the bar shows: return, bits (per episode), epsilon, steps_per_s."""
        buffer = self.model.ep_info_buffer
        rate = math.nan
        if len(self._marks) > 1 and self._marks[-1][0] > self._marks[0][0]:
            rate = (self._marks[-1][1] - self._marks[0][1]) / (self._marks[-1][0] - self._marks[0][0])
        return {"return": float(np.mean([e["r"] for e in buffer])) if buffer else math.nan,
                "bits": float(np.mean(self._episode_bits)) if self._episode_bits else math.nan,
                "epsilon": float(getattr(self.model, "exploration_rate", math.nan)),
                "steps_per_s": rate}

    def _refresh(self) -> None:
        from cagekit.agents.training import _stats_text

        now = time.perf_counter()
        self._last_refresh = now
        steps = int(self.model.num_timesteps)
        self._marks.append((now, steps))
        s = self.stats()
        self.stats_text = _stats_text(s["return"], s["bits"], s["epsilon"], s["steps_per_s"])
        if self.progress is not None:
            self.progress.update(self.progress.task_ids[0], completed=min(steps, self.total), stats=self.stats_text)

    def close(self) -> None:
        """Show the final figures and stop the bar (idempotent)."""
        if self.progress is not None and not self._closed:
            self._closed = True
            self._refresh()
            self.progress.stop()


class _Checkpoints(CheckpointCallback):
    """SB3's `CheckpointCallback`, its saves never cut in half by Ctrl-C, keeping only the latest replay buffer."""

    def _on_step(self) -> bool:
        if self.n_calls % self.save_freq != 0:
            return True
        from cagekit.agents.training import deferred_interrupt

        with deferred_interrupt():
            super()._on_step()
            latest = Path(self._checkpoint_path("replay_buffer_", extension="pkl")).name
            for old in Path(self.save_path).glob(f"{self.name_prefix}_replay_buffer_*_steps.pkl"):
                if old.name != latest:
                    old.unlink()
        return True


class _Snapshots(BaseCallback):
    """The policy each time the run passes another K-th of its steps, as `snapshot_dir(out, N)/model.zip`
    (meta.json is added when training ends, `_finish_snapshots`): what our learners' `train(snapshots=K)` keeps."""

    def __init__(self, out: Path, total: int, count: int, start: int):
        super().__init__()
        from cagekit.agents.snapshots import SnapshotSchedule

        self.out = out
        self.schedule = SnapshotSchedule(total, count, start)

    def _on_step(self) -> bool:
        from cagekit.agents.snapshots import snapshot_dir
        from cagekit.agents.training import deferred_interrupt

        if self.schedule.due(self.num_timesteps):
            folder = snapshot_dir(self.out, self.num_timesteps)
            folder.mkdir(parents=True, exist_ok=True)
            with deferred_interrupt():
                self.model.save(folder / MODEL_FILE)
        return True


def _finish_snapshots(out: Path, meta: dict[str, Any]) -> None:
    """Give each snapshot without one the run's meta.json, with its own step count."""
    from cagekit.agents.snapshots import SNAPSHOT_DIR, snapshot_steps

    for folder in sorted((out / SNAPSHOT_DIR).glob("step*")):
        if (folder / MODEL_FILE).exists() and not (folder / "meta.json").exists():
            (folder / "meta.json").write_text(json.dumps({**meta, "num_timesteps": snapshot_steps(folder)}, indent=2,
                                                         default=str))


def _saved_steps(model_file: Path) -> int | None:
    """`num_timesteps` of an SB3 model zip, read from its JSON "data" entry; None if unreadable."""
    try:
        with zipfile.ZipFile(model_file) as zf:
            return int(json.loads(zf.read("data"))["num_timesteps"])
    except (OSError, zipfile.BadZipFile, KeyError, ValueError, TypeError):
        return None


def _load_model(cls: Any, model_file: Path, **kwargs: Any) -> Any:
    """`cls.load` on CPU; a truncated or foreign zip is a ValueError naming the file, not SB3's bare
    AssertionError ("No data found in the saved file")."""
    try:
        return cls.load(model_file, device="cpu", **kwargs)
    except (AssertionError, zipfile.BadZipFile, EOFError, KeyError, ValueError, RuntimeError) as exc:
        raise ValueError(f"cannot load the SB3 model {model_file}: corrupt, truncated or not a {cls.__name__} model "
                         f"({type(exc).__name__}: {exc})") from exc


def stopped_short(model: Any, steps: int) -> bool:
    """Whether `train_sb3` returned before `steps` env steps, i.e. on Ctrl-C: SB3 otherwise stops at or
    past the target (PPO trains whole rollouts), so this is how its callers tell an interrupted run."""
    return int(model.num_timesteps) < int(steps)


def refuse_trained_folder(out: Path) -> None:
    """A new run must not write into a folder holding a run (its model.zip, meta.json or checkpoints): it
    would overwrite them and pile its TensorBoard events beside the old ones."""
    found = [name for name in (MODEL_FILE, "meta.json") if (out / name).exists()]
    if (out / CHECKPOINT_DIR).is_dir() and any((out / CHECKPOINT_DIR).iterdir()):
        found.append(f"{CHECKPOINT_DIR}/")
    if found:
        raise ValueError(f"{out} already holds a trained run ({', '.join(found)}); training a new one there would "
                         f"overwrite it: pass resume=True to continue it, or another out_dir")


def latest_checkpoint(out_dir: str | Path) -> tuple[Path, Path | None, int] | None:
    """The most advanced SB3 model in a run folder: (model zip, its replay buffer or None, its step count).

    Candidates: `model.zip` (written at the end and on Ctrl-C; its replay buffer `replay_buffer.pkl`)
    and `checkpoints/model_<N>_steps.zip` (with `model_replay_buffer_<N>_steps.pkl`); the most steps
    wins, `model.zip` on a tie. None if there is none.
    """
    out = Path(out_dir)
    found: list[tuple[int, int, Path, Path]] = []
    steps = _saved_steps(out / MODEL_FILE) if (out / MODEL_FILE).exists() else None
    if steps is not None:
        found.append((steps, 1, out / MODEL_FILE, out / REPLAY_BUFFER_FILE))
    for path in (out / CHECKPOINT_DIR).glob(f"{CHECKPOINT_PREFIX}_*_steps.zip"):
        match = re.fullmatch(rf"{CHECKPOINT_PREFIX}_(\d+)_steps\.zip", path.name)
        if match:
            buffer = path.with_name(f"{CHECKPOINT_PREFIX}_replay_buffer_{match[1]}_steps.pkl")
            found.append((int(match[1]), 0, path, buffer))
    if not found:
        return None
    steps, _, model_file, buffer = max(found)
    return model_file, (buffer if buffer.exists() else None), steps


class _AppendingCSV(CSVOutputFormat):
    """SB3's CSV log format continuing an existing file (SB3's own truncates it): header and rows kept."""

    def __init__(self, filename: str):
        path = Path(filename)
        if not path.exists() or path.stat().st_size == 0:
            super().__init__(filename)
            return
        self.file = open(filename, "r+")  # closed by Logger.close, as SB3's own
        header = self.file.readline().rstrip("\n")
        self.keys = header.split(",") if header else []
        self.separator, self.quotechar = ",", '"'
        self.file.seek(0, os.SEEK_END)


class _TensorBoard(TensorBoardOutputFormat):
    """SB3's TensorBoard format, hiding earlier events past `purge_step` (as `training.train` does on resume)."""

    def __init__(self, folder: str, purge_step: int | None):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=folder, purge_step=purge_step)
        self._is_closed = False


def _keep_progress_rows(path: Path, upto: int) -> None:
    """Drop the rows of an SB3 progress.csv logged after step `upto` (a run resumed from an earlier checkpoint)."""
    if not path.exists():
        return
    lines = path.read_text().splitlines()
    if len(lines) < 2:
        return
    header = lines[0].split(",")
    if "time/total_timesteps" not in header:
        return
    column = header.index("time/total_timesteps")
    kept = [lines[0]]
    for line, row in zip(lines[1:], csv.reader(lines[1:]), strict=True):
        value = row[column] if column < len(row) else ""
        if not value or float(value) <= upto:
            kept.append(line)
    path.write_text("\n".join(kept) + "\n")


def _run_logger(out: Path, resume_at: int | None) -> Logger:
    """progress.csv and TensorBoard events in `out`; continued (not overwritten) when resuming at a step."""
    if resume_at is None:
        from stable_baselines3.common.logger import configure

        return configure(str(out), ["csv", "tensorboard"])
    _keep_progress_rows(out / "progress.csv", resume_at)
    return Logger(str(out), [_AppendingCSV(str(out / "progress.csv")), _TensorBoard(str(out), resume_at + 1)])


# ---------------------------------------------------------------------------------------------------
# training


def _env_settings(scenario: str, env_kwargs: dict[str, Any]) -> dict[str, Any]:
    from cagekit.wrappers.gym_views import is_classic

    settings = {k: v for k, v in env_kwargs.items() if k != "seed"}
    if is_classic(scenario, settings.get("layout")):
        settings.pop("flatten", None)
        return settings
    return settings


def copies_for_reds(n_envs: int, n_reds: int) -> int:
    """The number of environment copies to train on for `n_envs` requested and `n_reds` red agents: with
    several reds, the nearest multiple of `n_reds` (at least `n_reds`), so that each red gets as many copies."""
    if n_envs < 1:
        raise ValueError(f"n_envs must be >= 1, got {n_envs}")
    if n_reds <= 1:
        return int(n_envs)
    return max(n_reds, (n_envs + n_reds // 2) // n_reds * n_reds)


def train_sb3(algo: str, scenario: str = "paper-small", steps: int = 100_000, seed: int = 0,
              out_dir: str | Path = "runs/sb3", n_envs: int = 4, *, vec: str = "dummy", progress_bar: bool = True,
              algo_kwargs: dict[str, Any] | None = None, policy_kwargs: dict[str, Any] | None = None,
              verbose: int = 0, torch_threads: int | str | None = "env", resume: bool = False, snapshots: int = 0,
              progress: bool | None = None, **env_kwargs: Any) -> Any:
    """Train `algo` ("ppo", "maskable-ppo", "dqn") on `scenario` for `steps` environment steps.

    `env_kwargs` go to the gymnasium view (`make_env`'s keywords: `red`, `episode_length`, `channel`,
    `sau`, `message_cost`, `layout`, ...); `layout="classic"` on cage2 trains the single CAGE-2 Blue
    agent. `red` may also be a comma-separated list or "all" (`rollout.training_reds`): copy `i` then
    plays `reds[i % len(reds)]`, and `n_envs` becomes a multiple of the number of reds
    (`copies_for_reds`: 1 or 4 copies against 3 reds give 3; meta.json records the copies used).
    DQN needs a flat Discrete action: multi-agent scenarios get the joint action flattened when
    it has at most `MAX_FLAT_ACTIONS` values (paper-small) and are refused otherwise.
    Copies are seeded `seed + i`, so one seed gives one learning curve (`vec` "dummy" or "subproc").
    Writes model.zip, meta.json, progress.csv and TensorBoard logs to `out_dir`, checkpoints every tenth
    of the run and the model on Ctrl-C (which returns the model so far); returns the model.
    `progress_bar` shows our learners' live bar (`ProgressCallback`), not SB3's; `progress`, the name
    `train()` and `evaluate()` use, sets it too. `snapshots=K` keeps the
    policy at every K-th of the run in `snapshots/step<N>/` (as `cagekit.agents.training.train` does).
    `torch_threads` sets torch's CPU threads while training, the caller's restored after: "env" (the
    default) takes CAGEKIT_TORCH_THREADS, 1 when unset, as our learners and the CLI do (these MLPs are
    tiny and extra threads only contend, badly so on a busy machine); None leaves torch's setting alone.

    `resume=True` continues the run in `out_dir` from its latest checkpoint (`latest_checkpoint`; a
    ValueError if there is none) until `steps` in all, appending to its progress.csv and TensorBoard log;
    a run already at `steps` is left as it is (the loaded model is returned). The hyperparameters are the
    checkpoint's (`algo_kwargs`/`policy_kwargs` are ignored); DQN reloads the replay buffer saved with
    the checkpoint. Unlike our learners' resume this is not bit-exact: the environment copies are
    reseeded with `seed + resumed step`, torch's random state is not restored, PPO drops the rollout cut
    by Ctrl-C (its steps still count) and DQN may lose the transition of the interrupted step.
    """
    from cagekit.agents.threads import pinned_torch_threads, training_threads
    from cagekit.agents.training import check_count

    if progress is not None:
        progress_bar = progress
    if torch_threads == "env":
        torch_threads = training_threads()
    elif torch_threads is not None:
        torch_threads = check_count("torch_threads", torch_threads, 1,
                                    "(or \"env\": CAGEKIT_TORCH_THREADS; or None: torch's own setting)")
    with pinned_torch_threads(torch_threads):  # from the model's construction on: its initial weights depend on it
        return _train_sb3(algo, scenario, steps, seed, out_dir, n_envs, vec=vec, progress_bar=progress_bar,
                          algo_kwargs=algo_kwargs, policy_kwargs=policy_kwargs, verbose=verbose, resume=resume,
                          snapshots=snapshots, **env_kwargs)


def _train_sb3(algo: str, scenario: str, steps: int, seed: int, out_dir: str | Path, n_envs: int, *, vec: str,
               progress_bar: bool, algo_kwargs: dict[str, Any] | None, policy_kwargs: dict[str, Any] | None,
               verbose: int, resume: bool, snapshots: int, **env_kwargs: Any) -> Any:
    """`train_sb3` with torch's threads set."""
    import sb3_contrib
    import stable_baselines3

    import cagekit
    from cagekit.agents.rollout import training_reds
    from cagekit.agents.training import check_count, deferred_interrupt
    from cagekit.wrappers.gym_views import CentralisedEnv, is_classic, make_gym_env, make_vec_env
    from cagekit.wrappers.parallel import check_seed

    cls = _algo_class(algo)
    steps = check_count("steps", steps, 1, "(environment steps to train)")
    snapshots = check_count("snapshots", snapshots, 0, "(0: none)")
    seed = check_seed(seed) or 0  # as make_learner: str + int fails later saying nothing of the seed
    algo_kwargs = check_hyperparameters(algo, algo_kwargs)
    out = Path(out_dir)
    if not resume:
        refuse_trained_folder(out)
    checkpoint = None
    if resume:
        checkpoint = latest_checkpoint(out)
        unreadable = (out / MODEL_FILE).exists() and _saved_steps(out / MODEL_FILE) is None
        if checkpoint is None:
            raise ValueError(f"cannot resume {out}: no SB3 checkpoint there ({MODEL_FILE} or "
                             f"{CHECKPOINT_DIR}/{CHECKPOINT_PREFIX}_<N>_steps.zip)" +
                             (f"; its {MODEL_FILE} is unreadable (corrupt or cut short)" if unreadable else ""))
        if unreadable:  # said, not silently passed over: the steps after that checkpoint are trained again
            print(f"{out / MODEL_FILE} is unreadable (corrupt or cut short): continuing from {checkpoint[0]} at "
                  f"{checkpoint[2]:,} steps", file=sys.stderr)
        if checkpoint[2] >= steps:
            print(f"{out}: already trained for {checkpoint[2]:,} of {steps:,} steps; nothing to do")
            return _load_model(cls, checkpoint[0])
    reds = training_reds(scenario, env_kwargs.get("red"))  # raises on an unknown red, naming the valid ones
    n_envs = copies_for_reds(n_envs, len(reds))
    classic = is_classic(scenario, env_kwargs.get("layout"))
    if not classic:
        env_kwargs["flatten"] = algo == "dqn"
    copy_kwargs = {k: v for k, v in env_kwargs.items() if k != "red"}  # red="all" etc.: per copy, via `reds`
    first = {} if reds[0] is None else {"red": reds[0]}
    probe = make_gym_env(scenario, **copy_kwargs, **first)  # raises here (not in a worker) on a bad setting
    slots = team_slots(probe.par)
    nvec = [int(n) for n in probe.nvec] if isinstance(probe, CentralisedEnv) else [int(probe.action_space.n)]
    probe.close()

    venv = make_vec_env(n_envs, seed, vec=vec, scenario=scenario, reds=reds, **copy_kwargs)
    kwargs = {**DEFAULTS[algo], **algo_kwargs}
    if algo != "dqn":
        kwargs["batch_size"] = min(kwargs["batch_size"], kwargs["n_steps"] * n_envs)
    previous_meta: dict[str, Any] = {}
    start = 0
    if checkpoint is None:
        try:  # before the run's folder: what `check_hyperparameters` cannot see, SB3 refuses here
            model = cls("MlpPolicy", venv, seed=seed, verbose=verbose, device="cpu", policy_kwargs=policy_kwargs,
                        **kwargs)
        except (AssertionError, TypeError, ValueError) as exc:
            venv.close()
            given = f"hyperparameters {algo_kwargs or kwargs}" + (f" and policy_kwargs {policy_kwargs}"
                                                                  if policy_kwargs else "")
            raise ValueError(f"{algo} refuses its {given}: {exc}") from exc
    else:
        model_file, buffer_file, _ = checkpoint
        model = _load_model(cls, model_file, env=venv)
        start = int(model.num_timesteps)
        model.set_random_seed(seed + start)  # the copies' next resets: seed + start + i
        model._last_obs = None  # the saved last observation is not the new copies': learn() resets them
        if hasattr(model, "load_replay_buffer"):
            if buffer_file is None:
                print(f"warning: no replay buffer saved with {model_file}; {algo} continues with an empty one")
            else:
                model.load_replay_buffer(buffer_file)
                if model.replay_buffer.n_envs != venv.num_envs:
                    venv.close()
                    raise ValueError(f"the replay buffer of {buffer_file} holds {model.replay_buffer.n_envs} "
                                     f"environment copies, this run has {venv.num_envs}")
        if (out / "meta.json").exists():
            previous_meta = json.loads((out / "meta.json").read_text())
        print(f"resuming {out} from {model_file.name} at {start:,} of {steps:,} steps")
    out.mkdir(parents=True, exist_ok=True)
    model.set_logger(_run_logger(out, start if checkpoint is not None else None))

    # PPO collects whole rollouts of n_steps per copy, so it trains past a --steps that is not a multiple of one
    rollout = int(model.n_steps) * n_envs if isinstance(model, OnPolicyAlgorithm) else 1
    planned = -(-int(steps) // rollout) * rollout
    if planned != int(steps) and checkpoint is None:
        print(f"note: {algo} trains in rollouts of {rollout:,} env steps, so {int(steps):,} steps become {planned:,}")
    # checkpoints every tenth of the run (as our learners do every K updates), and the model on Ctrl-C
    every = max(planned // 10 // max(n_envs, 1), 1)
    checkpoints = _Checkpoints(save_freq=every, save_path=str(out / CHECKPOINT_DIR), name_prefix=CHECKPOINT_PREFIX,
                               save_replay_buffer=True)
    progress = ProgressCallback(int(steps), enabled=progress_bar, label=f"{algo} seed {seed}")
    callbacks = [checkpoints, progress] + ([_Snapshots(out, int(steps), snapshots, start)] if snapshots else [])
    try:
        model.learn(total_timesteps=int(steps) - start, reset_num_timesteps=checkpoint is None,
                    progress_bar=False, callback=callbacks)
    except KeyboardInterrupt:
        progress.close()  # the bar's last figures above the message
        print(f"interrupted at {model.num_timesteps:,} steps: saving the model so far "
              f"(continue with `cagekit train --resume {out}`)")
    finally:
        progress.close()
        venv.close()
        model.logger.close()
    meta = {"algo": algo, "scenario": scenario, "view": "classic" if classic else "centralised",
            "execution": "centralised", "flatten": bool(env_kwargs.get("flatten", False)),
            "env": _env_settings(scenario, env_kwargs), "nvec": nvec,
            "agents": [s.name for s in slots], "slots": [s.to_json() for s in slots],
            "mask_actions": True, "steps": int(steps), "num_timesteps": int(model.num_timesteps), "seed": seed,
            "n_envs": n_envs,
            "hyperparameters": previous_meta.get("hyperparameters", {
                k: v for k, v in kwargs.items() if isinstance(v, int | float | str | bool)}),
            "policy_kwargs": previous_meta.get("policy_kwargs", policy_kwargs or {}), "model": MODEL_FILE,
            "versions": {"cagekit": cagekit.__version__, "stable_baselines3": stable_baselines3.__version__,
                         "sb3_contrib": sb3_contrib.__version__}}
    with deferred_interrupt():  # a second Ctrl-C waits for these files
        if hasattr(model, "save_replay_buffer"):
            model.save_replay_buffer(out / REPLAY_BUFFER_FILE)
            meta["replay_buffer"] = REPLAY_BUFFER_FILE
        model.save(out / MODEL_FILE)
        with_spec(meta)  # a registered scenario's spec, for a fresh process to load the run (snapshots too)
        (out / "meta.json").write_text(json.dumps(meta, indent=2, default=str))
        _finish_snapshots(out, meta)
    return model


def load_team(path: str | Path, meta: Mapping[str, Any]) -> Team:
    """A `Team` from an SB3 checkpoint directory (model.zip + meta.json); classic: one agent "Blue"."""
    path = Path(path)
    model_file = (path if path.is_dir() else path.parent) / meta.get("model", "model.zip")
    if not model_file.exists():
        raise FileNotFoundError(f"no SB3 model at {model_file}")
    algo = meta["algo"]
    model = _load_model(_algo_class(algo), model_file)
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


__all__ = ["ALGOS", "DEFAULTS", "ProgressCallback", "Sb3Agent", "Sb3ClassicAgent", "Sb3Team", "copies_for_reds",
           "latest_checkpoint", "load_team", "stopped_short", "team_from_model", "train_sb3"]
