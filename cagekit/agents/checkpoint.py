"""Checkpoints of learned teams: a directory with `model.pt`, `meta.json` and (for resuming) `trainer.pt`.

- `model.pt`: the network's `state_dict`, loadable with `torch.load(..., weights_only=True)`.
- `meta.json`: algorithm, scenario, environment settings (channel, sau, message_cost, ...), the agent
  slots (`AgentSlot.to_json`), observation/action sizes, network dimensions, hyperparameters and the
  cagekit version.
- `trainer.pt`: everything needed to continue training exactly (optimizer state, target network,
  counters, RNG states); plain tensors/lists/dicts only, so it also loads with `weights_only=True`.

Every loader turns torch/json/OS errors into a `ValueError` that names the offending file, and
`check_scenario` refuses a checkpoint made for another scenario.
"""

from __future__ import annotations

import json
import random
import sys
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch

import cagekit
from cagekit.agents.torch_threads import running_threads
from cagekit.scenarios import SPEC_KEY
from cagekit.scenarios.data_files import write_text_whole, written_whole

MODEL_FILE = "model.pt"
META_FILE = "meta.json"
TRAINER_FILE = "trainer.pt"


def _torch_save_whole(obj: Any, path: Path) -> None:
    """`torch.save` through `written_whole`: a kill mid-save leaves the checkpoint before it (torch names the
    archive's records after the file it writes, so the temporary name is fixed: the bytes are the same each time)."""
    with written_whole(path) as temporary:
        torch.save(obj, temporary)


def torch_settings() -> dict[str, Any]:
    """What of torch decides a training run's rounding, as meta.json records it: its CPU kernels
    (`torch_cpu_kernels`) and, inside a training run, the thread count it pinned (`torch_threads`: how it split
    torch's sums; none outside one). Our learners' resume must keep both (`training.train` refuses others)."""
    settings: dict[str, Any] = {"torch_cpu_kernels": torch.backends.cpu.get_cpu_capability()}
    threads = running_threads()
    if threads is not None:
        settings["torch_threads"] = threads
    return settings


def save_checkpoint(out_dir: str | Path, model_state: dict[str, torch.Tensor], meta: dict[str, Any],
                    trainer_state: dict[str, Any] | None = None) -> Path:
    """Write a checkpoint directory; `meta` gets `cagekit_version`, `torch_cpu_kernels` and `torch_threads` (the thread
    count of the training run in progress, `training.train`'s; none outside one) added if missing.
    Returns the directory."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta = dict(meta)
    meta.setdefault("cagekit_version", cagekit.__version__)
    for key, value in torch_settings().items():
        meta.setdefault(key, value)
    for key in ("algo", "scenario"):
        if key not in meta:
            raise ValueError(f"checkpoint meta needs {key!r}")
    with_spec(meta)
    _torch_save_whole(model_state, out / MODEL_FILE)
    if trainer_state is not None:
        _torch_save_whole(_interned(trainer_state), out / TRAINER_FILE)
    write_text_whole(out / META_FILE, json.dumps(meta, indent=2, sort_keys=True, default=json_default))
    return out


def _interned(obj: Any) -> Any:
    """`obj` with its dicts, lists and tuples rebuilt and every text in them interned (tensors and numbers as they
    are). pickle writes a text once and refers back to it where the same object recurs, so the bytes hung on
    which equal texts were one object: a resumed run's optimizer keys, read back from trainer.pt, were others
    than the config's equal ones, and its trainer.pt was not the uninterrupted run's byte for byte."""
    if isinstance(obj, str):
        return sys.intern(obj)
    if isinstance(obj, OrderedDict):  # a module's state dict: its type and torch's record of layer versions kept
        rebuilt = OrderedDict((_interned(k), _interned(v)) for k, v in obj.items())
        if hasattr(obj, "_metadata"):
            rebuilt._metadata = _interned(obj._metadata)  # type: ignore[attr-defined]
        return rebuilt
    if isinstance(obj, dict):
        return {_interned(k): _interned(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_interned(v) for v in obj]
    if isinstance(obj, tuple) and type(obj) is tuple:
        return tuple(_interned(v) for v in obj)
    return obj


def json_default(obj: Any) -> Any:
    """What meta.json holds for numpy numbers and arrays and paths (json.dumps' `default`)."""
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, (np.ndarray,)):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _dir(path: str | Path) -> Path:
    path = Path(path)
    return path if path.is_dir() or not path.suffix else path.parent


def load_meta(path: str | Path) -> dict[str, Any]:
    """The `meta.json` of a checkpoint directory (ValueError naming the file if missing or corrupt)."""
    file = _dir(path) / META_FILE
    if not file.exists():
        raise ValueError(f"no checkpoint metadata at {file}")
    try:
        meta = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as exc:
        raise ValueError(f"corrupt checkpoint metadata {file}: {exc}") from exc
    if not isinstance(meta, dict) or "algo" not in meta or "scenario" not in meta:
        raise ValueError(f"corrupt checkpoint metadata {file}: expected an object with 'algo' and 'scenario'")
    adopt_spec(meta, file)
    return meta



def with_spec(meta: dict[str, Any]) -> dict[str, Any]:
    """`meta` (changed in place) with the spec of its registered scenario recorded under `SPEC_KEY`, so
    that a fresh process loads the checkpoint (`adopt_spec`); a built-in scenario's name says enough."""
    from cagekit.scenarios import recorded_spec

    record = recorded_spec(meta.get("scenario"))
    if record is not None:
        meta[SPEC_KEY] = record
    return meta


def adopt_spec(meta: dict[str, Any], file: str | Path) -> None:
    """Register the scenario spec a meta.json (or a run's run.json) records (a ValueError naming `file` where
    it is not one, is not its scenario's, or conflicts with the spec registered under its name here)."""
    if meta.get(SPEC_KEY) is None:
        return
    from cagekit.scenarios import register_recorded

    register_recorded(meta[SPEC_KEY], str(file), meta.get("scenario"))


def _torch_load(file: Path) -> Any:
    if not file.exists():
        raise ValueError(f"checkpoint file missing: {file}")
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds (RuntimeError, EOFError, UnpicklingError)
        text = str(exc).strip()
        # torch's message for a pickle of more than tensors advises weights_only=False: never for an untrusted file
        reason = (text.splitlines() or [type(exc).__name__])[0]
        if file.stat().st_size == 0:
            reason = "the file is empty (0 bytes: a save cut short?)"
        elif "eights only" in text:
            reason = "not a tensors-only torch file (and it is not unpickled: that could run code)"
        raise ValueError(f"corrupt or unreadable checkpoint file {file}: {reason}") from exc


def load_model_state(path: str | Path) -> dict[str, torch.Tensor]:
    state = _torch_load(_dir(path) / MODEL_FILE)
    if not isinstance(state, dict):
        raise ValueError(f"corrupt checkpoint file {_dir(path) / MODEL_FILE}: expected a state_dict")
    return state


def load_trainer_state(path: str | Path) -> dict[str, Any]:
    state = _torch_load(_dir(path) / TRAINER_FILE)
    if not isinstance(state, dict):
        raise ValueError(f"corrupt checkpoint file {_dir(path) / TRAINER_FILE}: expected a dict")
    return state


def has_trainer_state(path: str | Path) -> bool:
    return (_dir(path) / TRAINER_FILE).exists()


def check_scenario(meta: dict[str, Any], scenario: str, path: str | Path | None = None) -> None:
    """ValueError naming both scenarios when a checkpoint is loaded for another scenario."""
    if meta.get("scenario") != scenario:
        where = f" at {path}" if path is not None else ""
        raise ValueError(f"checkpoint{where} was trained on scenario {meta.get('scenario')!r}, "
                         f"cannot load it for scenario {scenario!r}")


def check_algo(meta: dict[str, Any], algo: str, path: str | Path | None = None) -> None:
    if meta.get("algo") != algo:
        where = f" at {path}" if path is not None else ""
        raise ValueError(f"checkpoint{where} holds algorithm {meta.get('algo')!r}, not {algo!r}")


# RNG states, in a form `torch.load(weights_only=True)` accepts ------------------------------------
def rng_state() -> dict[str, Any]:
    """torch, numpy (legacy global) and python `random` states as tensors, ints and lists."""
    np_state: Any = np.random.get_state()  # the legacy tuple ("MT19937", key, pos, has_gauss, cached)
    py_version, py_internal, py_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "numpy": {"key": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": {"version": int(py_version), "internal": torch.tensor(py_internal, dtype=torch.int64),
                   "gauss_next": None if py_gauss is None else float(py_gauss)},
    }


def seed_global_rngs(seed: int) -> None:
    """Seed python's `random` and numpy's legacy global generator from a run's seed (a learner does, when built).

    `rng_state` saves them in trainer.pt and a resume restores them; left as each process starts them (from the
    OS's entropy), they made two runs of one seed write trainer.pt in other bytes, though nothing in training
    draws from them (the engine swaps its own `random` state in). Seeded, the same run writes the same bytes,
    and anything that did draw from them would draw the seed's numbers, in one process or many."""
    random.seed(int(seed))
    np.random.seed(int(seed) % 2**32)


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), int(n["pos"]), int(n["has_gauss"]),
                         float(n["cached_gaussian"])))
    p = state["python"]
    random.setstate((int(p["version"]), tuple(int(x) for x in p["internal"].tolist()), p["gauss_next"]))


__all__ = ["META_FILE", "MODEL_FILE", "SPEC_KEY", "TRAINER_FILE", "adopt_spec", "check_algo", "check_scenario",
           "has_trainer_state",
           "load_meta", "load_model_state", "load_trainer_state", "rng_state", "save_checkpoint",
           "seed_global_rngs", "set_rng_state", "torch_settings", "with_spec"]


ENV_SETTING_KEYS = ("scenario", "layout", "channel", "sau", "message_cost", "view")


def env_settings(meta: dict[str, Any]) -> dict[str, Any]:
    """The environment a checkpoint was trained for: scenario, layout, channel, sau, message_cost, view.

    Learners record these at the top of meta.json or under its "env" key; unset ones are left out."""
    env = meta.get("env")
    if not isinstance(env, dict):
        env = {}
    out = {}
    for key in ENV_SETTING_KEYS:
        # an SB3 meta's top-level "view" is how it executes ("centralised"), not the observation view
        value = env.get(key) if key == "view" else meta.get(key, env.get(key))
        if value is not None:
            out[key] = value
    if meta.get("view") == "classic":  # an SB3 run on ClassicCage2Env records only the settings it was given:
        out.setdefault("sau", False)  # its SAU default is off, make_env's on
    return out
