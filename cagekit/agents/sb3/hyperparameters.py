"""The SB3 algorithms' hyperparameters: our defaults, and a config's values checked (keys, types, ranges) before
a run's folder is made, since SB3 itself checks few of them and fails late, in its asserts."""

from __future__ import annotations

import collections.abc
import inspect
import typing
from collections.abc import Mapping
from typing import Any

from stable_baselines3.common.base_class import BaseAlgorithm

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
    **dict.fromkeys(("learning_rate", "clip_range", "clip_range_vf", "target_kl", "max_grad_norm"), "> 0"),
    **dict.fromkeys(("learning_starts", "ent_coef", "vf_coef"), ">= 0"),
    **dict.fromkeys(("gamma", "gae_lambda", "tau", "exploration_fraction", "exploration_initial_eps",
                     "exploration_final_eps"), "in [0, 1]"),
    # SB3 takes -1 as "as many gradient steps as the rollout had steps", and any other negative alike; 0 never
    # trains (DQN collects, and learns nothing)
    "gradient_steps": ">= 1, or -1 (as many as the rollout's steps)",
}
_SCALARS = (bool, int, float, str)
#: the constructor arguments train_sb3 sets itself, not a config's to give
_FIXED = frozenset({"self", "policy", "env", "seed", "verbose", "device", "policy_kwargs", "_init_setup_model"})


def check_hyperparameters(algo: str, algo_kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    """`algo_kwargs` with whole floats made ints, or a ValueError naming the key, the value and what is valid.

    A value's type is its default's in the algorithm's signature (where that is a number, text or a flag) and
    its range `BOUNDS`': a config file's "x" for a learning rate would otherwise end in SB3's traceback
    after the run's folder was made. A callable passes where the signature takes a schedule (`learning_rate`,
    `clip_range`, `clip_range_vf`), and None where it is the default."""
    params = inspect.signature(algo_class(algo).__init__).parameters
    settable = sorted(set(params) - _FIXED)
    unknown = sorted(set(algo_kwargs or {}) - set(settable))
    if unknown:
        raise ValueError(f"unknown {algo} hyperparameter(s) {unknown}; valid: {', '.join(settable)}")
    checked = {}
    for key, value in (algo_kwargs or {}).items():
        hint, default = params[key].annotation, params[key].default
        if value is None and default is None or callable(value) and _takes_schedule(hint):  # off, or a schedule
            checked[key] = value
            continue
        kind = _value_kind(hint, default)
        if kind is not None:
            value = check_value(algo, key, value, kind)
        rule = BOUNDS.get(key)
        if rule is not None and not RANGES[rule](value):
            raise ValueError(f"{algo} config key {key!r} must be {rule}, got {value!r}")
        checked[key] = value
    return checked


def _value_kind(hint: Any, default: Any) -> Any:
    """The scalar type a hyperparameter takes: its annotation's or its default's, or for an option that is off by
    default (`target_kl: float | None = None`) the one scalar or mapping its union allows; else None (a class)."""
    kind = next((k for k in (hint, type(default)) if k in _SCALARS), None)
    if kind is None and default is None:
        kinds = [k for k in typing.get_args(hint) if k in _SCALARS or typing.get_origin(k) is dict]
        kind = kinds[0] if len(kinds) == 1 else None
    return kind


def _takes_schedule(hint: Any) -> bool:
    """Whether a hyperparameter's annotation allows a schedule, a callable (`clip_range_vf`): `target_kl`'s does
    not, and SB3 fails on a callable one in the first update, after the run's folder was made."""
    return any(typing.get_origin(k) is collections.abc.Callable for k in typing.get_args(hint) or (hint,))


def algo_class(algo: str) -> type[BaseAlgorithm]:
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
