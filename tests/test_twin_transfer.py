"""A team trained on the twin scores on the CybORG engine within the confidence interval of its twin score."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cagekit.agents.training import make_learner, train
from cagekit.evaluation import cli_main

FAST = Path(__file__).resolve().parents[1] / "configs" / "dial-sau-fast.yaml"


@pytest.mark.slow
def test_dial_sau_trained_on_twin_scores_the_same_on_the_engine(tmp_path):
    learner = make_learner("dial-sau", "paper-small", seed=0, config=str(FAST), simulator="twin")
    train(learner, 6_000, tmp_path / "run", progress=False)
    common = ["--episodes", "200", "--lengths", "30", "--reds", "KillChainAgent", "--no-progress", "--workers", "1"]
    assert cli_main([str(tmp_path / "run"), str(tmp_path / "engine"), *common]) == 0
    assert cli_main([str(tmp_path / "run"), str(tmp_path / "twin"), "--backend", "twin", *common]) == 0
    engine = json.loads((tmp_path / "engine" / "summary.json").read_text())["combinations"][0]
    twin = json.loads((tmp_path / "twin" / "summary.json").read_text())["combinations"][0]
    # the engine's mean lies within the twin's 95% interval (and vice versa, both being estimates)
    assert abs(engine["mean"] - twin["mean"]) <= max(twin["ci95"], engine["ci95"]), (engine, twin)
