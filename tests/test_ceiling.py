"""The reference ceiling (a defender that reads red's true access) on the real engine."""

from __future__ import annotations

import numpy as np

from cagekit import make_env
from cagekit.agents import make_team
from cagekit.agents.base import team_returns
from cagekit.evaluation.ceiling import OracleDefender, ceiling_returns, ceiling_score
from cagekit.evaluation.protocol import episode_seed


def test_oracle_restores_root_hosts_and_never_picks_a_masked_action():
    env = make_env("paper-small", red="KillChainAgent")
    oracle = OracleDefender(env)
    obs, _ = env.reset(seed=3)
    restores = 0
    while env.agents:
        access = env.engine.red_access()
        actions = oracle.act(obs)
        for name, action in actions.items():
            assert obs[name]["action_mask"][action], f"{name} chose masked action {action}"
            label = env.action_label(name, action // 2)
            own_roots = [h for h in env.engine.catalogs[name].agent.hosts if access[h] == "root"]
            if label.startswith("Restore"):
                restores += 1
                assert access[label.split()[-1]] == "root", label
            elif own_roots and label == "Sleep":
                # root it cannot restore is root its mask hides (the host's row shows nothing yet)
                catalog = env.engine.catalogs[name]
                for host in own_roots:
                    assert not obs[name]["action_mask"][2 * catalog.entries.index(("Restore", host))]
        obs, _, _, _, infos = env.step(actions)
        assert not any(i["invalid_action"] for i in infos.values())
        assert all(i["bits_sent"] == 0 for i in infos.values())
    assert restores > 0  # red reaches root within 30 steps of this episode


def test_oracle_scores_above_sleep_on_the_same_episodes():
    episodes = 4
    oracle = ceiling_returns("paper-small", "KillChainAgent", episodes=episodes, seed=0)
    env = make_env("paper-small", red="KillChainAgent")
    sleep = []
    for index in range(episodes):
        sleep += team_returns(make_team("sleep", env), env, 1, episode_seed(0, 30, "KillChainAgent", index))
    assert np.mean(oracle) > np.mean(sleep) + 20


def test_ceiling_score_sums_reds_and_is_deterministic():
    first = ceiling_score("paper-small", ["KillChainAgent", "SleepAgent"], episodes=2)
    again = ceiling_score("paper-small", ["KillChainAgent", "SleepAgent"], episodes=2)
    assert first == again
    assert first["per_red"]["SleepAgent"] == 0.0  # nothing to undo, nothing spent
    assert first["score"] == sum(first["per_red"].values())
