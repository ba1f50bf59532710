"""One benchmark training run: trained (or continued) unless already finished, recorded as finished in its
folder, then (with `select_episodes`) its scored snapshot chosen."""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any, NamedTuple

from cagekit.agents.training import SB3_ALGOS
from cagekit.evaluation.benchmark_folder import TRAIN_RECORD, TRAIN_STARTED, check_finished_run, training_settings

SB3_STEPS_PER_ROLLOUT = 128


def train_one(algo: str, scenario: str, seed: int, steps: int, run_dir: str, config: str | None,
              env: dict[str, Any], snapshots: int = 0, select_episodes: int = 0, progress: bool = False) -> float:
    """Train one run unless it is already complete, then (with `select_episodes`) choose its snapshot;
    returns the training wall-clock in seconds (the choice is not training)."""
    run = Path(run_dir)
    done_file = run / TRAIN_RECORD
    settings = training_settings(config, env)
    check_finished_run(run, steps, settings, select_episodes, snapshots)
    if not done_file.exists():
        # what a rerun continues this run with, if it is interrupted (`check_finished_run` compares it)
        made = [folder for folder in (run, *run.parents) if not folder.exists()]
        run.mkdir(parents=True, exist_ok=True)
        started = run / TRAIN_STARTED
        started.write_text(json.dumps({"steps": steps, **settings, "snapshots": snapshots}) + "\n")
        try:
            seconds, resumed_at = _train(algo, scenario, seed, steps, run, config, env, snapshots, progress)
        except Exception:  # refused before training (SB3's own checks): no folder left behind, as before
            if [p.name for p in run.iterdir()] == [TRAIN_STARTED]:
                started.unlink()
                for folder in made:
                    with contextlib.suppress(OSError):  # another job's run may be beside it
                        folder.rmdir()
            raise
        resumed = {} if resumed_at is None else {"resumed_at": resumed_at}  # an SB3 resume is not bit-exact
        done_file.write_text(json.dumps({"train_seconds": seconds, "steps": steps, **settings, **resumed,
                                         "snapshots": snapshots, "select_episodes": select_episodes}) + "\n")
    if select_episodes:
        from cagekit.agents.torch_threads import limit_torch_threads
        from cagekit.evaluation.selection import select_snapshot

        limit_torch_threads()
        select_snapshot(run, scenario, select_episodes, seed, detection=env.get("detection"))
    return float(json.loads(done_file.read_text())["train_seconds"])


def _train(algo: str, scenario: str, seed: int, steps: int, run: Path, config: str | None, env: dict[str, Any],
           snapshots: int, progress: bool) -> tuple[float, int | None]:
    """Train (or continue) one run to `steps`; returns its seconds and, for an SB3 run continued from a
    checkpoint, the step it resumed at. A run cut short by Ctrl-C keeps its state (the trainers save it)
    and raises KeyboardInterrupt, so that it is never recorded as finished: a rerun continues it."""
    from cagekit.agents.torch_threads import limit_torch_threads
    from cagekit.agents.training import default_simulator

    limit_torch_threads()
    env = {"simulator": default_simulator(scenario), **env}
    start = time.perf_counter()
    resumed_at = None
    if algo in SB3_ALGOS:
        from cagekit.agents.config_file import load_mapping
        from cagekit.agents.sb3.checkpoints import latest_checkpoint
        from cagekit.agents.sb3.training import stopped_short, train_sb3

        hyper = load_mapping(config) if config else None
        checkpoint = latest_checkpoint(run)  # an earlier, interrupted try: continue it rather than start over
        resumed_at = None if checkpoint is None else checkpoint[2]
        model = train_sb3(algo, scenario, steps, seed, run, n_envs=1 if steps < 4 * SB3_STEPS_PER_ROLLOUT else 4,
                          progress_bar=progress, algo_kwargs=hyper, snapshots=snapshots, resume=checkpoint is not None,
                          **env)
        interrupted = stopped_short(model, steps)
    else:
        from cagekit.agents.training import make_learner, train

        learner = make_learner(algo, scenario, seed=seed, config=config, **env)
        interrupted = train(learner, steps, run, resume=True, progress=progress, snapshots=snapshots)["interrupted"]
    if interrupted:
        raise KeyboardInterrupt(f"{algo} seed {seed} interrupted; its state is kept in {run}")
    return time.perf_counter() - start, resumed_at


class TrainJob(NamedTuple):
    """One training run: `train_one`'s positional arguments."""

    algo: str
    scenario: str
    seed: int
    steps: int
    run_dir: str
    config: str | None
    env: dict[str, Any]
    snapshots: int = 0
    select_episodes: int = 0
