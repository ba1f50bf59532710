"""A benchmark's training runs, serially or in a pool of spawned processes (`train_many`): the workers stop
their runs on Ctrl-C or when the benchmark is killed, so that a rerun continues them, and a bar counts the
finished runs."""

from __future__ import annotations

import _thread
import multiprocessing
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from cagekit.evaluation.benchmark_folder import check_finished_run, training_settings
from cagekit.evaluation.benchmark_training import TrainJob, train_one
from cagekit.scenarios import registered_specs
from cagekit.submissions.lifeline import exit_with_parent


def train_many(jobs: list[TrainJob], processes: int, progress: bool = False) -> list[float]:
    """`train_one` for each job, in `processes` processes when there are several jobs; returns each job's
    training seconds, in order."""
    for job in jobs:  # before any process starts: a refused run should cost no training time
        check_finished_run(Path(job.run_dir), job.steps, training_settings(job.config, job.env),
                           job.select_episodes, job.snapshots)
    # the folders the runs' own go in (OUT/runs/, OUT) that do not exist yet: in a pool whichever job starts first
    # makes them, so a job that SB3 refuses cannot tell they are not its own and leaves them behind
    made = sorted({folder for job in jobs for folder in Path(job.run_dir).parents if not folder.exists()},
                  key=lambda folder: len(folder.parts), reverse=True)
    try:
        return _train_many(jobs, processes, progress)
    except Exception:  # refused runs leave no folder behind (`train_one`), nor these, when nothing else is in them
        for folder in made:
            with suppress(OSError):
                folder.rmdir()
        raise


def _train_many(jobs: list[TrainJob], processes: int, progress: bool) -> list[float]:
    if processes > 1 and len(jobs) > 1:
        # spawn, not fork: forking a process that already runs torch's thread pools can deadlock the child
        context = multiprocessing.get_context("spawn")
        stop = context.Event()
        with ProcessPoolExecutor(max_workers=processes, mp_context=context, initializer=_pool_worker,
                                 initargs=(stop, registered_specs())) as pool:
            futures = {pool.submit(_pool_job, job): job for job in jobs}
            try:
                with _runs_progress(progress, len(jobs)) as advance:
                    for done in as_completed(futures):
                        job = futures[done]
                        advance(f"{job.algo} {job.scenario} seed {job.seed}" + (" failed" if done.exception() else ""))
            except KeyboardInterrupt:  # Ctrl-C: the running runs save their state; the queued ones never start
                stop.set()
                pool.shutdown(wait=True, cancel_futures=True)
                raise
            return [future.result() for future in futures]  # the first failure, in job order, raises here
    return [train_one(*job, progress=progress) for job in jobs]


_STOP: Any = None  # in a training pool's worker: the event the parent sets on Ctrl-C


#: seconds a training worker whose benchmark was killed gives its run to save its state before it exits
SAVE_GRACE = 300.0
_IDLE = threading.Event()  # in a training pool's worker: set while no run trains


def _pool_worker(stop: Any, specs: tuple[Any, ...] = ()) -> None:
    global _STOP
    from cagekit.scenarios import register

    for spec in specs:  # the scenarios registered in the benchmark's process (a spawned worker has none)
        register(spec)
    _STOP = stop
    _IDLE.set()
    exit_with_parent(_stop_training)


def _stop_training() -> None:
    """The benchmark was killed outright (kill -9): stop the run as Ctrl-C does, so that it saves its state
    for the rerun to continue, instead of training on unseen, beside that rerun, into the same folder."""
    if not _IDLE.is_set():
        _thread.interrupt_main()  # the trainers' Ctrl-C path: the state is saved, then KeyboardInterrupt
        _IDLE.wait(SAVE_GRACE)


def _pool_job(job: TrainJob) -> float:
    """`train_one` in a pool worker, unless the pool was interrupted: the executor hands jobs to its workers
    ahead of time, so cancelling the futures alone would still start them after Ctrl-C."""
    if _STOP is not None and _STOP.is_set():
        raise KeyboardInterrupt(f"{job.algo} seed {job.seed} not started: interrupted")
    _IDLE.clear()
    try:
        return train_one(*job)
    finally:
        _IDLE.set()


@contextmanager
def _runs_progress(enabled: bool, total: int) -> Iterator[Callable[[str], None]]:
    """A bar of finished training runs (elapsed, time left) for the parallel pool, whose runs cannot draw
    their own: a full study trains for hours, and a silent terminal looks like a hung one."""
    if not enabled:
        yield lambda _label: None
        return
    from rich import progress as rp

    columns = (rp.TextColumn("[bold]training runs"), rp.BarColumn(), rp.MofNCompleteColumn(), rp.TimeElapsedColumn(),
               rp.TimeRemainingColumn(), rp.TextColumn("last: {task.fields[last]}"))
    with rp.Progress(*columns) as bar:
        task = bar.add_task("runs", total=total, last="-")
        yield lambda label: bar.update(task, advance=1, last=label)
