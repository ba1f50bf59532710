"""Blue agents behind one interface: heuristics, DIAL (+SAU), no-comms, QMix, SB3 adapters; checkpoints."""

from __future__ import annotations

import importlib
import json
import zipfile
from pathlib import Path
from typing import Any

from cagekit.agents.base import Agent, AgentSlot, Team, team_slots
from cagekit.agents.heuristics import HEURISTICS

#: learned algorithms -> the module that trains them and loads their checkpoints (`load_team(path, meta)`)
LEARNED: dict[str, str] = {
    "dial-sau": "cagekit.agents.dial",
    "dial": "cagekit.agents.dial",
    "nocomm": "cagekit.agents.dial",
    "shared-obs": "cagekit.agents.dial",
    "qmix": "cagekit.agents.qmix",
    "ppo": "cagekit.agents.sb3",
    "maskable-ppo": "cagekit.agents.sb3",
    "dqn": "cagekit.agents.sb3",
}


def make_team(kind: str, env: Any, seed: int | None = None) -> Team:
    """A heuristic team for the agents of `env` (a `CageParallelEnv`)."""
    if kind not in HEURISTICS:
        raise ValueError(f"unknown heuristic team {kind!r}; valid: {', '.join(HEURISTICS)} "
                         f"(learned teams load from a checkpoint: {', '.join(LEARNED)})")
    from cagekit.wrappers.parallel import check_seed

    seed = check_seed(seed)  # named here: numpy's message for a negative seed does not say which
    slots = team_slots(env)
    agents: dict[str, Agent] = {}
    for slot in slots:
        cls = HEURISTICS[kind]
        agents[slot.name] = cls(slot, seed=None if seed is None else seed + slot.index, sau=env.sau) \
            if kind == "random" else cls(slot)
    # the environment it was made for, as `Team.env_settings()` gives it to make_env (its layout and view too)
    layout = next((name for name, specs in env.spec.blue_layouts.items() if tuple(specs) == env.engine.agents), None)
    return Team(agents=agents, scenario=env.spec.name, kind=kind,
                meta={"slots": [s.to_json() for s in slots], **({"layout": layout} if layout else {}),
                      "channel": env.channel, "sau": env.sau, "message_cost": env.message_cost,
                      **({"env": {"view": env.view}} if env.view != "own" else {})})


def load_team(path: str | Path) -> Team:
    """A trained team from a checkpoint directory (model weights + meta.json)."""
    path = Path(path)
    if not path.exists():  # named as given: its ".json" sibling below would name a file nobody gave
        raise FileNotFoundError(f"no checkpoint at {path}: it does not exist (expected a checkpoint directory "
                                f"holding meta.json and the weights, such as a `cagekit train --out` folder)")
    if (path.is_file() and zipfile.is_zipfile(path)) or (path.is_dir() and (path / "manifest.json").is_file()
                                                          and not (path / "meta.json").exists()):
        # a submission: its ".json" sibling or missing meta.json would name a file that was never its part
        raise ValueError(f"{path} is a submission (a packaged team), not a checkpoint: open it with "
                         f"cagekit.submissions.open_submission({str(path)!r}), whose agents run in a worker process, "
                         f"or score it with `python evaluation.py {path} OUT_DIR`")
    meta_file = path / "meta.json" if path.is_dir() else path.with_suffix(".json")
    if not meta_file.exists():
        raise FileNotFoundError(f"no checkpoint metadata at {meta_file}: expected a checkpoint directory "
                                f"holding meta.json and the weights")
    try:
        meta = json.loads(meta_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"corrupt checkpoint metadata {meta_file}: {exc}") from exc
    if not isinstance(meta, dict):
        raise ValueError(f"corrupt checkpoint metadata {meta_file}: expected a JSON object, got {type(meta).__name__}")
    from cagekit.agents.checkpoint import adopt_spec

    adopt_spec(meta, meta_file)  # a scenario of the user's own, recorded there: registered in this process
    algo = meta.get("algo")
    if algo not in LEARNED:
        raise ValueError(f"checkpoint {path} has algorithm {algo!r}; known: {', '.join(LEARNED)}")
    module = importlib.import_module(LEARNED[algo])
    return module.load_team(path, meta)


__all__ = ["Agent", "AgentSlot", "HEURISTICS", "LEARNED", "Team", "load_team", "make_team", "team_slots"]
