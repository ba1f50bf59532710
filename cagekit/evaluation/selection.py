"""Which weights of a training run to score: the snapshot with the best objective on held-out twin episodes.

A short run's greedy policy can swing between checkpoints (docs/dial.md), so scoring only its last weights
measures the luck of where training stopped as much as the method. Every learner (DIAL, QMix, SB3) keeps its
policy at each K-th of the run (`train(snapshots=K)`, `train_sb3(snapshots=K)`); here each of those and the
final weights are scored by the evaluation harness (on the twin where it models the scenario, else on the
engine) at the episode length the run trained on, with a protocol seed the engine evaluation never uses
(`SELECTION_SEED_OFFSET + seed`), and the best one is recorded in `selection.json` (which
`cagekit.agents.snapshots.chosen_weights` reads). The reported score then comes from fresh engine episodes, so
the choice does not inflate it. The criterion is the training objective: return minus channel cost, summed
over the reds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cagekit.agents.snapshots import SELECTION_DIR, SELECTION_FILE, SNAPSHOT_DIR, read_selection
from cagekit.agents.training import default_simulator
from cagekit.scenarios.data_files import write_text_whole

SELECTION_SEED_OFFSET = 1_000_000


def candidates(run_dir: str | Path) -> list[Path]:
    """The run's snapshots by step, then the run's own final weights."""
    run = Path(run_dir)
    snaps = sorted(p for p in (run / SNAPSHOT_DIR).glob("step*") if (p / "meta.json").is_file())
    return [*snaps, run]


def _name(run: Path, candidate: Path) -> str:
    return "final" if candidate == run else candidate.name


def objective(summary: dict[str, Any]) -> float:
    """Sum over the red agents of (mean return - mean channel cost per episode): what the team was trained for."""
    return sum(c["mean"] - c["channel_cost_per_episode"] for c in summary["combinations"])


def trained_length(run_dir: str | Path) -> int:
    """The episode length a run trained on (its meta.json; else `make_env`'s default)."""
    meta = json.loads((Path(run_dir) / "meta.json").read_text())
    length = (meta.get("env") or {}).get("episode_length")
    if length is None:
        import inspect

        from cagekit.wrappers import make_env

        length = inspect.signature(make_env).parameters["episode_length"].default
    return int(length)


def select_snapshot(run_dir: str | Path, scenario: str, episodes: int, seed: int, length: int | None = None,
                    detection: float | None = None) -> Path:
    """Score every candidate on `episodes` held-out episodes per red of `length` steps (default: the length
    the run trained on); record and return the best (ties: the later).

    Reuses `selection.json` when it was made with the same settings and candidates."""
    from cagekit.evaluation.cli import build_parser, config_from_args
    from cagekit.evaluation.harness import evaluate

    run = Path(run_dir)
    cands = candidates(run)
    simulator = default_simulator(scenario)  # the twin where it models the scenario, as for training
    settings = {"scenario": scenario, "episodes": episodes, "seed": SELECTION_SEED_OFFSET + seed,
                "length": length or trained_length(run), "detection": detection, "simulator": simulator,
                "candidates": [_name(run, c) for c in cands]}
    file = run / SELECTION_FILE
    previous: bytes | None = None  # an earlier choice, put back if this one is not made
    if file.exists():
        try:
            old = read_selection(file)
        except ValueError:
            old = {}  # cut short (a kill while it was written): chosen again below
        if old.get("settings") == settings:
            return run / old["chosen"]
        # chosen again: a run folder stands for its chosen weights (`evaluation.sources.checkpoint_source`), so
        # the old choice goes first, or the "final" candidate scored below would be that choice again
        previous = file.read_bytes()
        file.unlink()
    scores: dict[str, dict[str, float]] = {}
    try:
        for cand in cands:
            argv = [str(cand), str(run / SELECTION_DIR / _name(run, cand)), "--scenario", scenario, "--episodes",
                    str(episodes), "--lengths", str(settings["length"]), "--seed", str(settings["seed"]),
                    "--workers", "1", "--no-progress"] + (["--backend", "twin"] if simulator == "twin" else [])
            if detection is not None:
                argv += ["--detection", str(detection)]
            config, source, out = config_from_args(build_parser().parse_args(argv))
            _, summary = evaluate(config, source, out, backend="serial", progress=False, chart=False)
            scores[_name(run, cand)] = {"objective": objective(summary), "score": summary["total"]["score"],
                                        "bits_per_episode": summary["bits_per_episode"]}
    except BaseException:
        # a choice made again and cut short (Ctrl-C, a failed candidate) leaves the old one, which the run's
        # evaluations were of: without it the folder stood for its final weights, and a benchmark rerun refused
        # its own journals before it could choose again
        if previous is not None and not file.exists():
            file.write_bytes(previous)
        raise
    best = max(range(len(cands)), key=lambda i: (scores[_name(run, cands[i])]["objective"], i))
    chosen = cands[best].relative_to(run).as_posix() if cands[best] != run else "."
    # whole or not at all: a kill mid-write leaves no half choice
    write_text_whole(file, json.dumps({"settings": settings, "scores": scores, "chosen": chosen}, indent=2) + "\n")
    return cands[best]

