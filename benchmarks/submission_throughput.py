"""Submission throughput: the shipped default team scored in-process (its checkpoint) and as a submission
(its zip, agents in a separate worker process, as `evaluation.py` runs it), serially, on the same episodes.

Prints episodes/s for both and the ratio (target: submission >= 0.6x in-process; the worker's cost is one
start, ~2.5 s of importing torch, plus a pipe round trip per agent per step), and checks that both give the
same returns (they must: the worker runs the same agents on the same observations).

    python benchmarks/submission_throughput.py [--episodes 10] [--lengths 30,50,100]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
import zipfile
from pathlib import Path

import pandas as pd

from cagekit.evaluation import CheckpointSource, EvalConfig, TeamSource, evaluate
from cagekit.evaluation.cli import build_parser, config_from_args
from cagekit.evaluation.sources import DEFAULT_SUBMISSION


def timed(source: TeamSource, cfg: EvalConfig, out: Path) -> tuple[float, pd.DataFrame]:
    cfg = dataclasses.replace(cfg, team=source.identity())
    start = time.perf_counter()
    evaluate(cfg, source, out, backend="serial", workers=1, progress=False)
    return time.perf_counter() - start, pd.read_csv(out / "results.csv")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--episodes", type=int, default=10, help="episodes per combination (default: 10)")
    p.add_argument("--lengths", default="30,50,100", help="episode lengths (default: the protocol's 30,50,100)")
    p.add_argument("--submission", default=str(DEFAULT_SUBMISSION), help="a submission zip with a checkpoint team")
    args = p.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        with zipfile.ZipFile(args.submission) as archive:
            archive.extractall(tmp_path / "unzipped")
        checkpoint = CheckpointSource(str(tmp_path / "unzipped" / "team"))
        # the configuration evaluation.py would build for the submission (its settings, every red, seed 0)
        cfg, submission, _ = config_from_args(build_parser().parse_args(
            [args.submission, "--episodes", str(args.episodes), "--lengths", args.lengths]))
        n = len(cfg.tasks())
        in_process, a = timed(checkpoint, cfg, tmp_path / "checkpoint")
        out_of_process, b = timed(submission, cfg, tmp_path / "submission")
    same = a["team_reward"].equals(b["team_reward"])
    ratio = in_process / out_of_process
    print(f"{Path(args.submission).name} on {cfg.scenario}, {n} episodes (lengths {args.lengths}, "
          f"{args.episodes} per combination), serial, wall time including the worker's start:")
    print(f"  in-process checkpoint: {in_process:7.2f} s  {n / in_process:6.2f} episodes/s")
    print(f"  submission worker:     {out_of_process:7.2f} s  {n / out_of_process:6.2f} episodes/s")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"  ratio: {ratio:.2f}x (target >= 0.6x: {'met' if ratio >= 0.6 else 'NOT met'}; load {load})")
    print(f"  same returns: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
