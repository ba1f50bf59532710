"""Every kind of trained agent goes train -> checkpoint -> evaluate -> package -> validate -> evaluate.

The submission's score must equal the checkpoint's: the packaged team is the same team, run in a
separate process."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from cagekit.agents.sb3 import train_sb3
from cagekit.agents.training import make_learner, train
from cagekit.evaluation import cli_main
from cagekit.submissions import package, validate

EVAL = ["--episodes", "2", "--lengths", "8", "--reds", "KillChainAgent", "--no-progress", "--workers", "1"]


def _tiny_run(algo: str, out) -> None:
    if algo in ("ppo", "maskable-ppo", "dqn"):
        train_sb3(algo, "paper-small", steps=256, seed=0, out_dir=out, n_envs=1, progress_bar=False,
                  algo_kwargs={"n_steps": 128, "batch_size": 64, "n_epochs": 1} if "ppo" in algo else None)
    else:
        learner = make_learner(algo, "paper-small", seed=0, config={"batch_episodes": 2})
        train(learner, 120, out, progress=False)


@pytest.mark.parametrize("algo", ["dial-sau", "nocomm", "shared-obs", "qmix", "ppo"])
def test_trained_team_round_trip(algo, tmp_path):
    run = tmp_path / "run"
    _tiny_run(algo, run)
    assert cli_main([str(run), str(tmp_path / "eval-ckpt"), *EVAL]) == 0
    zip_path = package(run, name="tester", team="t", technique=algo, out=tmp_path / "team.zip")
    report = validate(zip_path, check_wrap=False)
    assert report.ok, report.text()
    assert cli_main([str(zip_path), str(tmp_path / "eval-zip"), *EVAL]) == 0
    ckpt = pd.read_csv(tmp_path / "eval-ckpt" / "results.csv")
    sub = pd.read_csv(tmp_path / "eval-zip" / "results.csv")
    assert len(ckpt) == 2
    assert sub["reward"].tolist() == ckpt["reward"].tolist()
    assert sub["bits_sent"].tolist() == ckpt["bits_sent"].tolist()
    labels = {d: json.loads((tmp_path / d / "summary.json").read_text())["submission"]["technique"]
              for d in ("eval-ckpt", "eval-zip")}
    assert labels == {"eval-ckpt": f"checkpoint {algo}", "eval-zip": algo}  # the technique the package declares
