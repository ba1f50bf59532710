"""Learner throughput: environment steps per second of ONE gradient update, learner only.

Each row builds a learner, prepares one batch of B episodes x T steps (collected from the environment
once, or synthetic with `--synthetic`), then times `learn(batch)` (forward unroll with gradients,
target-network unroll, backward, optimiser step) on one CPU thread. env-steps/s = B * T / seconds.

    python benchmarks/learner_throughput.py [--batch 32] [--steps 30] [--repeats 10] [--synthetic]

Other algorithms add rows in `rows_to_run` through `measure(label, scenario, factory, ...)`: a factory
returns an object with `prepare(batch, steps) -> batch_object`, `learn(batch_object)` and `n_agents`.
QMix rows appear when `cagekit.agents.qmix` exists (its `train_step` on a replay sample is timed).
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

TARGET = 5_000.0  # env-steps/s per update


@dataclass
class Row:
    label: str
    scenario: str
    n_agents: int
    batch: int
    steps: int
    best_s: float
    median_s: float

    @property
    def rate(self) -> float:
        return self.batch * self.steps / self.best_s

    @property
    def median_rate(self) -> float:
        return self.batch * self.steps / self.median_s


class DialBench:
    """DIAL learner wrapper for the benchmark (paper hyperparameters, batch of B episodes)."""

    def __init__(self, algo: str, scenario: str, batch: int, steps: int, synthetic: bool):
        from cagekit.agents.dial import DialLearner

        self.learner = DialLearner(algo, scenario, 0, {"batch_episodes": batch}, episode_length=steps)
        self.synthetic = synthetic
        self.n_agents = self.learner.layout.n_agents

    def prepare(self, batch: int, steps: int) -> Any:
        from cagekit.agents.dial import synthetic_batch

        if self.synthetic:
            return synthetic_batch(self.learner.layout, batch, steps, seed=0)
        return self.learner.collect(epsilon=0.5, update_index=0)

    def learn(self, data: Any) -> None:
        self.learner.forget_target_q()  # a whole gradient step, target unroll included, every time
        self.learner.learn(data)


def measure(label: str, scenario: str, factory: Callable[[], Any], batch: int, steps: int, repeats: int,
            warmup: int = 2) -> Row:
    """Time `learn` on one prepared batch `repeats` times (after `warmup` untimed calls)."""
    bench = factory()
    data = bench.prepare(batch, steps)
    for _ in range(warmup):
        bench.learn(data)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        bench.learn(data)
        times.append(time.perf_counter() - t0)
    return Row(label, scenario, getattr(bench, "n_agents", 0), batch, steps, min(times), statistics.median(times))


class _QmixBench:
    """QMix row: fill the replay buffer with B collected episodes, then time `train_step` on a sample."""

    def __init__(self, scenario: str, batch: int, steps: int):
        from cagekit.agents.qmix import QmixLearner

        self.learner = QmixLearner(scenario, 0, {"batch_episodes": batch}, episode_length=steps)
        self.n_agents = len(self.learner.slots)

    def prepare(self, batch: int, steps: int) -> Any:
        import numpy as np

        rng = np.random.default_rng(0)
        for k in range(batch):
            episode, _ = self.learner.collect_episode(k, rng, 0.5)
            self.learner.buffer.add(episode)
        return self.learner.buffer.sample(batch, rng)

    def learn(self, data: Any) -> None:
        self.learner.train_step(data)


def rows_to_run(batch: int, steps: int, synthetic: bool) -> list[tuple[str, str, Callable[[], Any]]]:
    rows: list[tuple[str, str, Callable[[], Any]]] = []
    for scenario in ("paper-small", "paper-large"):
        for algo in ("dial-sau", "nocomm"):
            rows.append((algo, scenario, functools.partial(DialBench, algo, scenario, batch, steps, synthetic)))
    if importlib.util.find_spec("cagekit.agents.qmix") is not None:
        for scenario in ("paper-small", "paper-large"):
            rows.append(("qmix", scenario, functools.partial(_QmixBench, scenario, batch, steps)))
    return rows


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32, help="episodes per update")
    parser.add_argument("--steps", type=int, default=30, help="steps per episode")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--synthetic", action="store_true", help="synthetic batch instead of collected episodes")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = []
    print(f"learner throughput, {args.threads} thread(s), batch {args.batch} episodes x {args.steps} steps, "
          f"target {TARGET:,.0f} env-steps/s")
    print(f"{'algo':10s} {'scenario':12s} {'agents':>6s} {'best ms':>8s} {'median ms':>9s} {'steps/s':>9s} "
          f"{'median/s':>9s} {'x target':>8s}")
    for label, scenario, factory in rows_to_run(args.batch, args.steps, args.synthetic):
        try:
            row = measure(label, scenario, factory, args.batch, args.steps, args.repeats)
        except Exception as exc:  # noqa: BLE001 - a row of another helper's learner must not stop the rest
            print(f"{label:10s} {scenario:12s} failed: {type(exc).__name__}: {exc}")
            continue
        out.append(row)
        print(f"{row.label:10s} {row.scenario:12s} {row.n_agents:6d} {row.best_s * 1e3:8.1f} {row.median_s * 1e3:9.1f} "
              f"{row.rate:9,.0f} {row.median_rate:9,.0f} {row.rate / TARGET:8.2f}")
    training_split(args.threads)
    return out


def training_split(threads: int, updates: int = 6) -> None:
    """Where a real DIAL training run spends its time: collecting episodes vs learning, twin vs engine.

    Uses the tested short-run configuration (configs/dial-sau-fast.yaml: 8 episodes per batch, 4 gradient
    steps per batch), so the split is the one `cagekit train --algo dial-sau --config ...` sees."""
    import time
    from pathlib import Path

    from cagekit.agents.dial import DialLearner

    config = Path(__file__).resolve().parents[1] / "configs" / "dial-sau-fast.yaml"
    print(f"\nDIAL + SAU training on paper-small ({config.name}), {updates} updates, {threads} thread(s):")
    print(f"{'simulator':10s} {'collect s':>10s} {'learn s':>8s} {'learner share':>14s} {'env-steps/s':>12s}")
    for simulator in ("twin", "engine"):
        learner = DialLearner("dial-sau", "paper-small", 0, str(config), simulator=simulator)
        learner.update()  # warm-up
        collect = learn = 0.0
        steps = 0
        for _ in range(updates):
            t0 = time.perf_counter()
            batch = learner.collect(learner.epsilon)
            t1 = time.perf_counter()
            for _ in range(learner.config.grad_steps):
                learner.learn(batch)
            t2 = time.perf_counter()
            collect += t1 - t0
            learn += t2 - t1
            steps += batch.env_steps()
        share = learn / (collect + learn)
        print(f"{simulator:10s} {collect:10.2f} {learn:8.2f} {share:14.0%} {steps / (collect + learn):12,.0f}")


if __name__ == "__main__":
    main()
