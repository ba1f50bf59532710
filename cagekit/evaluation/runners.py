"""Runners: play a list of episodes serially, in a process pool, or as Ray tasks.

Each calls `on_result` in the calling process for every finished episode (in completion order; the
journal and the files do not depend on that order) and raises `EvaluationFailure` when an episode fails,
after handing over every episode that did finish: of several failures, the first task's in the protocol's
order, as a serial run raises it, whichever reached the evaluation first.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.util
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import closing
from typing import Any

from cagekit.evaluation.episode import EpisodeResult, EpisodeRunner, EvaluationFailure
from cagekit.evaluation.protocol import EvalConfig
from cagekit.evaluation.sources import TeamSource
from cagekit.submissions.lifeline import exit_with_parent
from cagekit.submissions.safety import remove_own_workdirs

Task = tuple[int, str, int]
OnResult = Callable[[EpisodeResult], None]
BACKENDS = ("serial", "processes", "ray")


def run_serial(config: EvalConfig, source: TeamSource, tasks: Sequence[Task], on_result: OnResult,
               step_timeout: float | None = None, **_: Any) -> None:
    with closing(EpisodeRunner(config, source, step_timeout)) as runner:
        for task in tasks:
            on_result(runner.run(*task))


# process pool ------------------------------------------------------------------------------------
_WORKER: EpisodeRunner | None = None


def _init_worker(config: EvalConfig, source: TeamSource, step_timeout: float | None) -> None:
    global _WORKER
    # Ctrl-C is the evaluation's to handle, not its workers': a terminal sends SIGINT to the whole process group,
    # and a worker interrupted as it sent a result back could leave the pool's result queue locked, so the
    # evaluation waited on it forever instead of exiting. The worker starts with SIGINT blocked (`_no_interrupts`
    # around the pool's starts), ignores it here, and only then unblocks it: one sent in between is dropped.
    # The evaluation ends its workers itself when interrupted (`_end_workers`).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:  # one thread per worker process: the workers are the parallelism
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass
    config.adopt_spec()  # a registered scenario, in a forkserver's or spawned worker too
    _WORKER = EpisodeRunner(config, source, step_timeout)
    # A pool worker ends with os._exit, so neither atexit nor __del__ runs there; multiprocessing's own
    # exit finalizers do. Without this, each worker left a submission's unpacked folder in the temp dir.
    multiprocessing.util.Finalize(None, _WORKER.close, exitpriority=10)
    # A parent killed outright (kill -9) left its workers waiting for work forever, submission workers and
    # their unpacked folders with them: end with it, releasing those first.
    owner = multiprocessing.parent_process()  # the evaluation, also where a forkserver is the parent
    exit_with_parent(_WORKER.close, owner.pid if owner is not None else None)
    # Ended by the evaluation (`_end_workers`), mid-episode: release what the runner holds (a submission's worker
    # and its unpacked folder), as a worker's normal exit does, then go.
    signal.signal(signal.SIGTERM, _end_worker)


def _end_worker(signum: int, frame: Any) -> None:
    # once: the pool's own manager terminates the workers left once one has ended, and a second SIGTERM landing
    # in this handler ended the process (os._exit) while it still waited on its submission's worker, its folder
    # left behind
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        if _WORKER is not None:
            _WORKER.close()
    finally:
        # and what it was still opening: a submission unpacked, its worker booting, not yet the runner's to close
        remove_own_workdirs()
        os._exit(128 + signum)


@contextlib.contextmanager
def _no_interrupts() -> Iterator[None]:
    """SIGINT blocked in this thread for the block: the worker processes a pool starts in it inherit the mask,
    so a Ctrl-C cannot land in one before `_init_worker` has it ignored (one sent to this process meanwhile is
    delivered when the block ends, or to another of its threads; either way it interrupts the evaluation)."""
    if not hasattr(signal, "pthread_sigmask"):  # pragma: no cover - Windows
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _end_workers(pool: ProcessPoolExecutor, grace: float = 10.0) -> None:
    """Stop `pool` now, for an interrupted evaluation: queued episodes are cancelled and the running ones
    abandoned (unjournaled, a rerun plays them), their workers ended (SIGTERM: each releases its runner, see
    `_end_worker`; SIGKILL after `grace` seconds). Waiting for them, as the pool's own shutdown does, kept a
    Ctrl-C waiting for up to three episodes per worker, or for ever on an episode that never ends."""
    processes = list((getattr(pool, "_processes", None) or {}).values())  # the pool has no public handle on them
    for process in processes:
        if process.is_alive():
            process.terminate()
    deadline = time.monotonic() + grace  # one grace period for them all, not one each in turn
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join()
    # then the pool's own shutdown, its workers gone: its manager thread ends and is joined (one left running,
    # `shutdown(wait=False)`, had Python 3.11's exit write to its closed pipe: "Exception ignored ... OSError")
    pool.shutdown(wait=True, cancel_futures=True)


def _work(task: Task) -> EpisodeResult:
    assert _WORKER is not None, "worker not initialised"
    return _WORKER.run(*task)


START_METHOD_ENV = "CAGEKIT_START_METHOD"


def _context() -> multiprocessing.context.BaseContext:
    """How worker processes start: `fork` where it is safe, since it costs no imports (a forkserver or a
    spawned worker imports the engine, which imports SB3 and torch: ~2 s, most of a short evaluation).

    Fork is used on Linux only while this process runs a single thread (forking a threaded process can
    deadlock the child); otherwise a forkserver, else spawn. `CAGEKIT_START_METHOD` overrides."""
    methods = multiprocessing.get_all_start_methods()
    chosen = os.environ.get(START_METHOD_ENV)
    if chosen:
        if chosen not in methods:
            raise ValueError(f"{START_METHOD_ENV}={chosen!r} is not available here; valid: {', '.join(methods)}")
        return multiprocessing.get_context(chosen)
    if sys.platform == "linux" and "fork" in methods and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    if "forkserver" in methods:  # no fork of a process with threads, and cheaper starts than spawn
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["cagekit.evaluation.runners", "cagekit.wrappers", "cagekit.agents"])
        return ctx
    return multiprocessing.get_context("spawn")


def usable_cpus() -> int:
    """The CPUs this process may run on: its affinity, where the OS keeps one (a container's CPU set, taskset),
    which `os.cpu_count()` ignores (it counts the machine's); else `os.cpu_count()`. Worker counts go by this."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # no affinity here (macOS, Windows)
        return os.cpu_count() or 1


def run_processes(config: EvalConfig, source: TeamSource, tasks: Sequence[Task], on_result: OnResult,
                  step_timeout: float | None = None, workers: int = 2, **_: Any) -> None:
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    # no more processes than episodes: a fork pool starts every one at once, so `--workers 100000` for three
    # episodes forked 100,000 evaluation processes (and the results do not depend on the count)
    workers = min(workers, max(1, len(tasks)))
    queue = list(tasks)
    queue.reverse()
    # every failure is kept, and the one of the first task in the protocol's order is raised: which finished
    # first, or came first out of a set of futures finished together, was chance, so the message was too
    failures: list[tuple[int, BaseException]] = []
    order: dict[Future, int] = {}  # the futures handed out and not yet finished: their task's place
    submitted = 0
    window = 3 * workers
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=_context(), initializer=_init_worker,
                               initargs=(config, source, step_timeout))
    try:
        pending: set[Future] = set()
        while queue or pending:
            while queue and not failures and len(pending) < window:
                with _no_interrupts():  # a submit may start worker processes
                    future = pool.submit(_work, queue.pop())
                order[future] = submitted
                submitted += 1
                pending.add(future)
            if not pending:
                break
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                index = order.pop(future)  # a finished one held no longer: each holds its episode's result
                try:
                    on_result(future.result())
                except EvaluationFailure as exc:
                    failures.append((index, exc))
                except Exception as exc:  # noqa: BLE001 - a crashed worker
                    failures.append((index, EvaluationFailure(
                        f"a worker process failed: {type(exc).__name__}: {exc}", transient=True)))
            if failures:
                queue.clear()
    except BaseException:  # Ctrl-C (or an error in on_result): end the workers now, without their episodes
        _end_workers(pool)
        raise
    pool.shutdown(wait=True)
    if failures:
        raise min(failures, key=lambda item: item[0])[1]


# Ray ---------------------------------------------------------------------------------------------
def _ray_chunk(config: EvalConfig, source: TeamSource, step_timeout: float | None,
               tasks: list[Task]) -> tuple[list[EpisodeResult], EvaluationFailure | None]:
    done: list[EpisodeResult] = []
    config.adopt_spec()
    with closing(EpisodeRunner(config, source, step_timeout)) as runner:
        for task in tasks:
            try:
                done.append(runner.run(*task))
            except EvaluationFailure as exc:
                return done, exc
    return done, None


def _chunks(tasks: Sequence[Task], size: int) -> list[list[Task]]:
    """Consecutive tasks of one combination, at most `size` per chunk (one environment per task)."""
    out: list[list[Task]] = []
    for task in tasks:
        if out and len(out[-1]) < size and out[-1][-1][:2] == task[:2]:
            out[-1].append(task)
        else:
            out.append([task])
    return out


def run_ray(config: EvalConfig, source: TeamSource, tasks: Sequence[Task], on_result: OnResult,
            step_timeout: float | None = None, workers: int | None = None, address: str | None = None,
            chunk: int = 10, **_: Any) -> None:
    try:
        import ray
    except ImportError as exc:
        raise RuntimeError("the ray backend needs Ray: pip install 'cagekit[ray]' (or pip install ray)") from exc
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True}
        if address:
            kwargs["address"] = address
        else:
            kwargs["num_cpus"] = workers or usable_cpus()
        ray.init(**kwargs)
    remote = ray.remote(num_cpus=1)(_ray_chunk)
    config_ref, source_ref = ray.put(config), ray.put(source)
    queue = _chunks(tasks, chunk)
    queue.reverse()
    window = 2 * int(ray.cluster_resources().get("CPU", workers or 1))
    pending: list[Any] = []
    # as `run_processes`: every failure is kept, and the first chunk's (its tasks the protocol's first: one failure
    # a chunk, which stops there) is raised, as a serial run raises it; the first to arrive was chance
    failures: list[tuple[int, EvaluationFailure]] = []
    order: dict[Any, int] = {}  # the tasks handed out and not yet finished: their chunk's place
    submitted = 0
    while queue or pending:
        while queue and not failures and len(pending) < window:
            ref = remote.remote(config_ref, source_ref, step_timeout, queue.pop())
            order[ref] = submitted
            submitted += 1
            pending.append(ref)
        if not pending:
            break
        ready, pending = ray.wait(pending, num_returns=1)
        for ref in ready:
            index = order.pop(ref)
            try:
                results, error = ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - a task or worker crashed
                results, error = [], EvaluationFailure(f"a Ray task failed: {type(exc).__name__}: {exc}",
                                                       transient=True)
            for result in results:
                on_result(result)
            if error is not None:
                failures.append((index, error))
                queue.clear()
    if failures:
        raise min(failures, key=lambda item: item[0])[1]


RUNNERS: dict[str, Callable[..., None]] = {"serial": run_serial, "processes": run_processes, "ray": run_ray}
