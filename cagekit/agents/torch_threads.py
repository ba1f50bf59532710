"""Torch's CPU threads for training: CAGEKIT_TORCH_THREADS, 1 by default, set for the CLI's process or pinned
for one run. The count changes how torch splits its sums, and so a trained model's last bits: every way of
training (`cagekit train`, `train`, `train_sb3`, benchmark) takes it from here so that they agree. Here too
every way of training checks that torch runs the CPU kernels cagekit pins (`cagekit.KERNELS_ENV`): torch
picks them at its first operation, so a process that ran one before importing cagekit keeps its own."""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator

import cagekit

#: the thread counts of the training runs in progress in this process (`pinned_torch_threads`), innermost last
_RUNNING: list[int] = []

#: torch's x86 CPU kernels, narrowest first: asked for one, torch runs it or, on a CPU without it, a narrower one
_KERNEL_RANK = {"DEFAULT": 0, "AVX2": 1, "AVX512": 2}


def kernels_note() -> str | None:
    """Why this process trains with other CPU kernels than cagekit.KERNELS_ENV asks for, or None when it does not.

    torch reads the setting once, at its first operation: when that ran before cagekit was imported (torch
    used in a notebook first), torch keeps the widest kernels of the CPU, AVX-512 on such a machine, whose
    rounding trains a seed to other weights than `cagekit train` gives it. A CPU without the kernels asked
    for (torch then runs narrower ones) is the machine's, not the process's, and is not noted."""
    import torch

    asked = os.environ.get(cagekit.KERNELS_ENV, "").strip().upper()
    running = torch.backends.cpu.get_cpu_capability()
    if asked not in _KERNEL_RANK or running not in _KERNEL_RANK or _KERNEL_RANK[running] <= _KERNEL_RANK[asked]:
        return None
    return (f"torch runs its {running} CPU kernels although {cagekit.KERNELS_ENV}={asked.lower()} asks for "
            f"{asked}: torch chose them at an operation run before cagekit was imported. Their rounding trains "
            f"a seed to other weights than `cagekit train` gives it; import cagekit before using torch (or set "
            f"{cagekit.KERNELS_ENV}={running.lower()} before starting Python, to choose these kernels)")


def training_threads() -> int:
    """The torch threads a training run uses: CAGEKIT_TORCH_THREADS, 1 by default (also when it is empty).

    The networks are small: on this 2-core class of machine, extra intra-op threads only fight each other
    and any parallel job (measured: a PPO run took 762 s with default threads, 33 s with one)."""
    import os

    raw = os.environ.get("CAGEKIT_TORCH_THREADS", "")
    if not raw.strip():  # unset, or set to nothing (`CAGEKIT_TORCH_THREADS= cagekit train ...`): the default
        return 1
    try:
        threads = int(raw)
    except ValueError:
        threads = 0
    if threads < 1:
        raise ValueError(f"CAGEKIT_TORCH_THREADS must be an integer >= 1 (torch threads per training run), "
                         f"got {raw!r}")
    return threads


def running_threads() -> int | None:
    """The torch thread count the training run in progress pinned (a checkpoint records it: a resume must keep
    it), or None outside one."""
    return _RUNNING[-1] if _RUNNING else None


def limit_torch_threads() -> int:
    """Set torch to `training_threads()` for the rest of the process (the CLI's commands); returns the count."""
    import torch

    threads = training_threads()
    torch.set_num_threads(threads)
    return threads


@contextlib.contextmanager
def pinned_torch_threads(threads: int | None) -> Iterator[None]:
    """torch's CPU threads set to `threads` for the block (None: left alone), the caller's setting restored
    after it. The count changes how torch splits its sums, and so the trained weights' last bits: pinning it
    makes a run from Python give the CLI's result on any machine, without changing the caller's process.
    Warns (`kernels_note`) when torch runs other CPU kernels than cagekit pins: their weights differ too."""
    import torch

    note = kernels_note()
    if note is not None:
        warnings.warn(note, RuntimeWarning, stacklevel=4)  # the caller of train()/train_sb3()
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
        _RUNNING.append(threads)
    try:
        yield
    finally:
        if threads is not None:
            _RUNNING.pop()
        torch.set_num_threads(before)
