"""One benchmark training run: trained (or continued) unless already finished, recorded as finished in its
folder, then (with `select_episodes`) its scored snapshot chosen."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any, NamedTuple

from cagekit.agents.training import SB3_ALGOS, deferred_interrupt
from cagekit.evaluation.benchmark_folder import TRAIN_RECORD, TRAIN_STARTED, check_finished_run, training_settings
from cagekit.scenarios.data_files import write_text_whole

SB3_STEPS_PER_ROLLOUT = 128


def train_one(algo: str, scenario: str, seed: int, steps: int, run_dir: str, config: str | None,
              env: dict[str, Any], snapshots: int = 0, select_episodes: int = 0, progress: bool = False) -> float:
    """Train one run unless it is already complete, then (with `select_episodes`) choose its snapshot;
    returns the run's training wall-clock in seconds, every try of it summed (`TrainingClock`; the choice is not
    training)."""
    run = Path(run_dir)
    done_file = run / TRAIN_RECORD
    settings = training_settings(config, env)
    check_finished_run(run, steps, settings, select_episodes, snapshots)
    if not done_file.exists():
        # what a rerun continues this run with, if it is interrupted (`check_finished_run` compares it)
        made = not run.exists()
        run.mkdir(parents=True, exist_ok=True)
        started = run / TRAIN_STARTED
        clock = TrainingClock(started, {"steps": steps, **settings, "snapshots": snapshots})
        try:
            with clock:
                resumed_at = _train(algo, scenario, seed, steps, run, config, env, snapshots, progress)
        except Exception:  # refused before training (SB3's own checks): no run folder left behind, as before
            if [p.name for p in run.iterdir()] == [TRAIN_STARTED]:  # (the folders above it: `train_many`)
                started.unlink()
                if made:
                    run.rmdir()
            raise
        resumed = {} if resumed_at is None else {"resumed_at": resumed_at}  # an SB3 resume is not bit-exact
        done_file.write_text(json.dumps({**clock.record(), "steps": steps, **settings, **resumed,
                                         "snapshots": snapshots, "select_episodes": select_episodes}) + "\n")
    if select_episodes:
        from cagekit.agents.torch_threads import limit_torch_threads
        from cagekit.evaluation.selection import select_snapshot

        limit_torch_threads()
        select_snapshot(run, scenario, select_episodes, seed, detection=env.get("detection"))
    return float(json.loads(done_file.read_text())["train_seconds"])


def _train(algo: str, scenario: str, seed: int, steps: int, run: Path, config: str | None, env: dict[str, Any],
           snapshots: int, progress: bool) -> int | None:
    """Train (or continue) one run to `steps`; returns, for an SB3 run continued from a checkpoint, the step it
    resumed at. A run cut short by Ctrl-C keeps its state (the trainers save it) and raises KeyboardInterrupt,
    so that it is never recorded as finished: a rerun continues it."""
    from cagekit.agents.torch_threads import limit_torch_threads
    from cagekit.agents.training import default_simulator

    limit_torch_threads()
    env = {"simulator": default_simulator(scenario), **env}
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
    return resumed_at


#: seconds between the saves of a try's running time into its run's TRAIN_STARTED: at most what a try killed
#: outright (kill -9, a crash of the machine) leaves uncounted
CLOCK_SAVE_EVERY = 5.0


class TrainingClock:
    """A benchmark run's training wall-clock over all its tries, kept in its TRAIN_STARTED record.

    A run interrupted (Ctrl-C) and continued by a rerun trains in several tries, and the run's time is their
    sum, not the last try's. The record holds the seconds of the tries so far (`train_seconds`), the tries
    (`train_tries`) and whether one is running; while a try runs its time is saved every `CLOCK_SAVE_EVERY`
    seconds and when it ends however it ends, short of a kill. A try that the next one finds still marked
    running was killed outright: it counts up to its last save, and the record says how many were
    (`train_tries_killed`), each at most `CLOCK_SAVE_EVERY` seconds short. A try made by a cagekit without
    this clock (a record without `train_tries`, or a run folder already holding files but no record) is not
    counted at all (`train_tries_uncounted`). Use as a context manager around one try; `record()` is what the
    finished run's TRAIN_RECORD keeps of it."""

    def __init__(self, file: Path, started: dict[str, Any]):
        self.file, self.started = file, started
        before = json.loads(file.read_text()) if file.exists() else {}
        self.before = float(before.get("train_seconds", 0.0))
        counted = "train_tries" in before
        # a try left files here before this one (the record's own half-written copy aside)
        earlier = counted or bool(before) or any(not p.name.startswith(file.name) for p in file.parent.iterdir())
        self.tries = int(before.get("train_tries", int(earlier))) + 1
        self.killed = int(before.get("train_tries_killed", 0)) + int(counted and bool(before.get("running")))
        self.uncounted = int(before.get("train_tries_uncounted", 0)) + int(earlier and not counted)
        self.start: float | None = None
        self.end: float | None = None
        self._stop = threading.Event()
        self._saver: threading.Thread | None = None

    @property
    def seconds(self) -> float:
        """The run's training seconds so far: the tries before, and this one up to now (or its end)."""
        if self.start is None:
            return self.before
        return self.before + ((self.end if self.end is not None else time.perf_counter()) - self.start)

    def record(self) -> dict[str, Any]:
        """The run's time as TRAIN_RECORD keeps it: its seconds, its tries, and the tries killed if any."""
        return {"train_seconds": self.seconds, "train_tries": self.tries,
                **({"train_tries_killed": self.killed} if self.killed else {}),
                **({"train_tries_uncounted": self.uncounted} if self.uncounted else {})}

    def _save(self, running: bool) -> None:
        # written whole or not at all: a kill mid-write leaves the previous record
        write_text_whole(self.file, json.dumps({**self.started, **self.record(), "running": running}) + "\n")

    def _save_often(self) -> None:
        while not self._stop.wait(CLOCK_SAVE_EVERY):
            self._save(running=True)

    def __enter__(self) -> TrainingClock:
        self.start = time.perf_counter()
        self._save(running=True)
        self._saver = threading.Thread(target=self._save_often, name="training-clock", daemon=True)
        self._saver.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.end = time.perf_counter()
        # a Ctrl-C here (waiting for the saver, or saving) waits until the record is saved: raised inside, it left
        # the try marked running, and the next try counted it as killed outright
        with deferred_interrupt():
            self._stop.set()
            if self._saver is not None:
                self._saver.join()
            self._save(running=False)


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
