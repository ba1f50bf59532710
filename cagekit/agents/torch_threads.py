"""Torch's CPU threads for training: CAGEKIT_TORCH_THREADS, 1 by default, set for the CLI's process or pinned
for one run. The count changes how torch splits its sums, and so a trained model's last bits: every way of
training (`cagekit train`, `train`, `train_sb3`, benchmark) takes it from here so that they agree."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


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
    makes a run from Python give the CLI's result on any machine, without changing the caller's process."""
    import torch

    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
