"""Workers end with the process that started them: after a kill -9 of an evaluation none is left running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
linux_only = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")


def _running(pid: int) -> bool:
    """There and not a zombie (an orphan that exited stays one until init reaps it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    return found


def _wait_for(condition, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def _kill_and_reap(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)  # reaped: not a zombie that still looks alive to its children


@linux_only
def test_an_orphaned_process_runs_its_cleanup_and_exits(tmp_path):
    marker = tmp_path / "cleaned"
    child = (f"import time, pathlib; from cagekit.submissions.lifeline import exit_with_parent; "
             f"exit_with_parent(lambda: pathlib.Path({str(marker)!r}).write_text('done'), poll=0.1); "
             f"print('ready', flush=True); time.sleep(60)")
    parent = ("import subprocess, sys, time; "
              f"c = subprocess.Popen([sys.executable, '-c', {child!r}], stdout=sys.stdout); "
              "print(c.pid, flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", parent], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert proc.stdout is not None
        pid = int(proc.stdout.readline())
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.3)
        assert _running(pid) and not marker.exists()  # a living parent is no reason to exit
        _kill_and_reap(proc)
        assert _wait_for(lambda: not _running(pid), 5), "the orphan kept running"
        assert marker.read_text() == "done"
    finally:
        if proc.poll() is None:
            _kill_and_reap(proc)


@linux_only
@pytest.mark.parametrize("method", ["fork", "forkserver"])
def test_a_killed_evaluation_leaves_no_pool_worker(tmp_path, method):
    """kill -9 of `evaluation.py --workers 2` left both pool workers waiting forever under pid 1 (a forkserver,
    their parent, outlives the evaluation: they watch the evaluation itself)."""
    env = {**os.environ, "CAGEKIT_START_METHOD": method}
    proc = subprocess.Popen([sys.executable, "evaluation.py", "react", str(tmp_path / "out"), "--episodes", "400",
                             "--lengths", "30", "--workers", "2", "--no-progress"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started: list[int] = []
    try:
        def descendants() -> list[int]:
            found, todo = [], [proc.pid]
            while todo:
                kids = _children(todo.pop())
                found += kids
                todo += kids
            return found

        def playing() -> bool:  # an episode journaled: the pool workers are at work
            journal = tmp_path / "out" / "journal.jsonl"
            return journal.exists() and len(journal.read_bytes().splitlines()) >= 2

        assert _wait_for(playing, 60)
        started = descendants()
        assert len(started) >= 2  # the workers (and a forkserver)
        _kill_and_reap(proc)
        assert _wait_for(lambda: not any(_running(p) for p in started), 5), \
            f"still running after the evaluation was killed: {[p for p in started if _running(p)]}"
    finally:
        if proc.poll() is None:
            _kill_and_reap(proc)
        for pid in started:  # a failed check leaves none behind
            if _running(pid):
                os.kill(pid, signal.SIGKILL)


@linux_only
def test_a_killed_benchmark_stops_its_training_runs_with_their_state_saved(tmp_path):
    """kill -9 of `cagekit benchmark --jobs 2` left its training workers training on, unseen, into the run
    folders a rerun would train into too; they now stop as Ctrl-C stops them (state saved) and exit."""
    out = tmp_path / "bm"
    proc = subprocess.Popen([sys.executable, "-m", "cagekit.cli", "benchmark", "--algos", "qmix,nocomm", "--seeds",
                             "1", "--steps", "1000000", "--jobs", "2", "--episodes", "1", "--lengths", "5", "--reds",
                             "SleepAgent", "--out", str(out), "--no-progress"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: list[int] = []
    try:
        logs = [out / "runs" / run / "log.csv" for run in ("qmix-s0", "nocomm-s0")]
        assert _wait_for(lambda: all(log.exists() and log.stat().st_size > 0 for log in logs), 120)
        workers = _children(proc.pid)
        assert len(workers) >= 2
        _kill_and_reap(proc)
        assert _wait_for(lambda: not any(_running(p) for p in workers), 30), "training went on without its benchmark"
        for run in ("qmix-s0", "nocomm-s0"):
            assert (out / "runs" / run / "trainer.pt").exists(), f"{run} stopped without saving its state"
            assert not (out / "runs" / run / "benchmark-train.json").exists()  # unfinished: a rerun continues it
    finally:
        if proc.poll() is None:
            _kill_and_reap(proc)
        for pid in workers:
            if _running(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.skipif(os.name != "posix", reason="the sweep is POSIX only")
def test_a_killed_processs_unpacked_folder_is_removed_by_the_next_one(tmp_path, monkeypatch):
    """A serial evaluation killed with -9 leaves its submission's unpacked folder (its worker may not delete
    outside it); the next unpack removes folders whose process is gone, and no other."""
    import tempfile

    from cagekit.submissions.safety import make_workdir

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # reaped: its pid names no process now
    orphan = tmp_path / f"cagekit-submission-{gone.pid}-abc"
    (orphan / "team").mkdir(parents=True)
    (orphan / "team" / "model.pt").write_bytes(b"x")
    os.chmod(orphan / "team", 0o500)  # read-only parts, as an unpacked submission may have
    alive = tmp_path / f"cagekit-submission-{os.getpid()}-def"
    alive.mkdir()
    legacy = tmp_path / "cagekit-submission-x1y2z3"  # named before pids were: its owner is unknown, kept
    legacy.mkdir()
    other = tmp_path / f"something-{gone.pid}-else"
    other.mkdir()
    made = make_workdir()
    assert made.parent == tmp_path and made.name.startswith(f"cagekit-submission-{os.getpid()}-")
    assert not orphan.exists() and alive.exists() and legacy.exists() and other.exists()
