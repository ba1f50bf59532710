"""Evaluation throughput: episodes/s serial and with 2 worker processes (target ratio >= 1.7), and the wall
time of the full CAGE-2 protocol (3 lengths x 3 reds x 100 episodes) for `react` (target <= 3 minutes).

    python benchmarks/evaluation_throughput.py [--layout team|classic] [--episodes 20] [--workers N] [--skip-full]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import cagekit
from cagekit.evaluation import EvalConfig, HeuristicSource, evaluate
from cagekit.evaluation.runners import usable_cpus

REDS = ("B_lineAgent", "RedMeanderAgent", "SleepAgent")


def config(layout: str, episodes: int, lengths: tuple[int, ...]) -> EvalConfig:
    classic = layout == "classic"
    return EvalConfig(scenario="cage2", layout=layout, team=HeuristicSource("react").identity(), episodes=episodes,
                      lengths=lengths, reds=REDS, seed=0, message_cost=0.1, sau=not classic, channel=not classic,
                      cagekit_version=cagekit.__version__)


def timed(cfg: EvalConfig, backend: str, workers: int) -> float:
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        evaluate(cfg, HeuristicSource("react"), Path(out), backend=backend, workers=workers, progress=False)
        return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layout", default="team", choices=("team", "classic"))
    p.add_argument("--episodes", type=int, default=100,
                   help="episodes per combination for the ratio (length 50; default: the protocol's 100)")
    p.add_argument("--workers", type=int, default=usable_cpus(),
                   help="workers for the full protocol (default: the CPUs this process may use)")
    p.add_argument("--skip-full", action="store_true", help="only the serial / 2-worker ratio")
    args = p.parse_args()

    cfg = config(args.layout, args.episodes, (50,))
    n = len(cfg.tasks())
    serial = timed(cfg, "serial", 1)
    two = timed(cfg, "processes", 2)
    print(f"cage2 ({args.layout} layout), react, {n} episodes of 50 steps, wall time including pool start-up:")
    print(f"  serial:    {serial:7.2f} s  {n / serial:7.2f} episodes/s")
    print(f"  2 workers: {two:7.2f} s  {n / two:7.2f} episodes/s")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"  ratio: {serial / two:.2f}x (target >= 1.7x; this process may use {usable_cpus()} CPUs, load {load})")
    if args.skip_full:
        return
    full = config(args.layout, 100, (30, 50, 100))
    backend = "processes" if args.workers > 1 else "serial"
    wall = timed(full, backend, args.workers)
    print(f"full CAGE-2 protocol (9 combinations x 100 episodes, {len(full.tasks())} episodes), react, "
          f"{args.layout} layout, {backend} with {args.workers} worker(s): {wall:.1f} s "
          f"(target <= 180 s: {'met' if wall <= 180 else 'NOT met'})")


if __name__ == "__main__":
    main()
