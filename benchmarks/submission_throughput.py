"""Submission throughput: the shipped default team scored in-process (its checkpoint) and as a submission
(its zip, agents in a separate worker process, as `evaluation.py` runs it), serially, on the same episodes.

Prints episodes/s for both and the ratio (target: submission >= 0.6x in-process; the worker's cost is one
start, ~2.5 s of importing torch, plus a pipe round trip per step), and checks that both give the same returns
(they must: the worker runs the same agents on the same observations). Each timing includes opening the team
as evaluation.py does (for the submission: unpacking, checking and starting its worker). Then the time of one
agent's step (`get_action`, batch 1, in-process) over the observations of a few episodes: the part of every
step that the agents' own code takes.

    python benchmarks/submission_throughput.py [--episodes 10] [--lengths 30,50,100]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from cagekit.evaluation import CheckpointSource, EvalConfig, TeamSource, evaluate
from cagekit.evaluation.cli import build_parser, config_from_args
from cagekit.evaluation.sources import DEFAULT_SUBMISSION, SubmissionSource


def timed(source: Callable[[], TeamSource], cfg: EvalConfig, out: Path) -> tuple[float, pd.DataFrame]:
    """Open the team (`source()`, as evaluation.py does before any episode) and score it serially."""
    start = time.perf_counter()
    team = source()
    evaluate(dataclasses.replace(cfg, team=team.identity()), team, out, backend="serial", workers=1, progress=False)
    return time.perf_counter() - start, pd.read_csv(out / "results.csv")


def agent_step(checkpoint: str, episodes: int = 6, length: int = 100, repeats: int = 5) -> tuple[float, int]:
    """(best seconds per agent step, agent steps timed): the team's `get_action` on recorded observations."""
    import numpy as np
    import torch

    from cagekit import make_env
    from cagekit.agents import load_team

    torch.set_num_threads(1)  # as the worker runs it
    team = load_team(checkpoint)
    env = make_env(**team.env_settings(), episode_length=length, seed=0)
    steps = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=episode)
        team.end_episode()
        while env.agents:  # the worker's form of each observation (int8 arrays)
            steps.append({n: {"observation": np.asarray(o["observation"], dtype=np.int8),
                              "action_mask": np.asarray(o["action_mask"], dtype=np.int8)} for n, o in obs.items()})
            obs, *_ = env.step(team.act(obs))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for t, step in enumerate(steps):
            if t % length == 0:
                team.end_episode()
            for name, observation in step.items():
                team.agents[name].get_action(observation, None)
        best = min(best, time.perf_counter() - start)
    n = sum(len(step) for step in steps)
    return best / n, n


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
        checkpoint = str(tmp_path / "unzipped" / "team")
        # the configuration evaluation.py would build for the submission (its settings, every red, seed 0)
        cfg, submission, _ = config_from_args(build_parser().parse_args(
            [args.submission, "--episodes", str(args.episodes), "--lengths", args.lengths]))
        submission.close()  # opened again in the timing
        n = len(cfg.tasks())
        in_process, a = timed(lambda: CheckpointSource(checkpoint), cfg, tmp_path / "checkpoint")
        out_of_process, b = timed(lambda: SubmissionSource(args.submission), cfg, tmp_path / "submission")
        per_step, steps = agent_step(checkpoint)
    same = a["team_reward"].equals(b["team_reward"])
    ratio = in_process / out_of_process
    print(f"{Path(args.submission).name} on {cfg.scenario}, {n} episodes (lengths {args.lengths}, "
          f"{args.episodes} per combination), serial, wall time including opening the team (a submission's "
          f"unpacking, checks and worker start):")
    print(f"  in-process checkpoint: {in_process:7.2f} s  {n / in_process:6.2f} episodes/s")
    print(f"  submission worker:     {out_of_process:7.2f} s  {n / out_of_process:6.2f} episodes/s")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"  ratio: {ratio:.2f}x (target >= 0.6x: {'met' if ratio >= 0.6 else 'NOT met'}; load {load})")
    print(f"  same returns: {'yes' if same else 'NO'}")
    print(f"  agent step (get_action in-process, batch 1): {per_step * 1e6:.1f} us per agent, best of 5 over {steps} "
          f"agent steps")


if __name__ == "__main__":
    main()
