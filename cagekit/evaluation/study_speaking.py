"""When a trained team's agents speak: how often each sends a 1, by what its own observation rows show at that
step (the study's section "When agents speak")."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def speaking_profile(run_dir: Path, episodes: int, seed: int = 12345) -> dict[str, tuple[int, int]]:
    """How often a trained team's agents send a 1, by what the sender's own rows show at that step.

    Categories by the most alarming own row: quiet, scan, exploit (activity) or user/privileged/unknown
    (compromise). Returns category -> (ones sent, steps)."""
    from cagekit.agents import load_team
    from cagekit.wrappers import make_env

    team = load_team(run_dir)
    env = make_env(**team.env_settings(), seed=seed)  # as trained: layout and view too
    counts: dict[str, list[int]] = {}
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed + ep)
        while env.agents:
            actions = team.act(obs)
            for name, action in actions.items():
                vector = obs[name]["observation"]
                rows = np.asarray(vector[: 4 * len(env.engine.catalogs[name].agent.hosts)]).reshape(-1, 4)
                category = _category(rows)
                c = counts.setdefault(category, [0, 0])
                c[0] += int(action) % 2 if env.channel else 0
                c[1] += 1
            obs, *_ = env.step(actions)
        team.end_episode()
    return {k: (v[0], v[1]) for k, v in counts.items()}


def _category(rows: np.ndarray) -> str:
    compromise = {(0, 1): "user", (1, 1): "privileged", (1, 0): "unknown"}
    found = [compromise.get((int(r[2]), int(r[3]))) for r in rows]
    for level in ("privileged", "user", "unknown"):
        if level in found:
            return level
    activity = [(int(r[0]), int(r[1])) for r in rows]
    if (1, 1) in activity:
        return "exploit"
    if (1, 0) in activity:
        return "scan"
    return "quiet"
