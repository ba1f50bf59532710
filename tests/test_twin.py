"""The numpy twin: same interface as the engine-backed env, and statistically the same game.

Equivalence: the engine env (`cagekit.make_env`) and the twin run the same blue team (heuristic teams from
`cagekit.agents.make_team`, or a fixed script that cycles every action with SAU off) against the same red
agent for N episodes each; `cagekit.evaluation.twin_equivalence.compare` then tests, Bonferroni-corrected over all
tests of a pair (family-wise alpha 0.01): the episode-return distribution (KS), the mean team reward at
every step, the frequency of every observation bit at every step, and how often red has had root on each
host by each step; and the mean episode return within 3 standard errors.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from pettingzoo.test import parallel_api_test

from cagekit.agents import make_team
from cagekit.evaluation.twin_equivalence import compare, ks_2samp, rollout_engine, rollout_twin
from cagekit.scenarios import get_scenario
from cagekit.twin import TwinBatch
from cagekit.wrappers import make_env
from cagekit.wrappers.twin_env import make_twin_env

SCENARIOS = ["paper-small", "paper-large"]


# --- interface ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("channel", [True, False])
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_parallel_api(scenario, channel):
    parallel_api_test(make_twin_env(scenario, channel=channel, seed=0), num_cycles=100)


@pytest.mark.parametrize("view", ["own", "team"])
@pytest.mark.parametrize("sau", [True, False])
@pytest.mark.parametrize("channel", [True, False])
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_same_spaces_obs_and_infos_as_engine(scenario, channel, sau, view):
    engine = make_env(scenario, channel=channel, sau=sau, seed=0, view=view)
    twin = make_twin_env(scenario, channel=channel, sau=sau, seed=0, view=view)
    assert twin.possible_agents == engine.possible_agents
    assert twin.state_space == engine.state_space
    e_obs, _ = engine.reset(seed=1)
    t_obs, _ = twin.reset(seed=1)
    for a in engine.possible_agents:
        assert twin.observation_space(a) == engine.observation_space(a)
        assert twin.action_space(a) == engine.action_space(a)
        assert twin.observation_space(a).contains(t_obs[a])
        for key in ("observation", "action_mask"):  # the first observation is deterministic
            np.testing.assert_array_equal(t_obs[a][key], e_obs[a][key])
            assert t_obs[a][key].dtype == e_obs[a][key].dtype
    actions = {a: 0 for a in engine.possible_agents}
    _, e_rew, _, _, e_info = engine.step(actions)
    _, t_rew, _, _, t_info = twin.step(actions)
    for a in engine.possible_agents:
        assert set(t_info[a]) == set(e_info[a])
        assert type(t_rew[a]) is type(e_rew[a])
    assert twin.state().shape == engine.state().shape


def test_heuristic_teams_build_on_the_twin():
    env = make_twin_env("paper-large", seed=0)
    for kind in ("sleep", "random", "react"):
        team = make_team(kind, env, seed=0)
        obs, _ = env.reset(seed=0)
        while env.agents:
            obs, *_ = env.step(team.act(obs))


def test_same_seed_same_trajectory_and_seeds_differ():
    def run(seed: int) -> list:
        env = make_twin_env("paper-small", red="ExplorerAgent", seed=seed, episode_length=20)
        team = make_team("random", env, seed=3)
        obs, _ = env.reset()
        out = []
        for _ in range(3):
            while env.agents:
                obs, rew, _, _, infos = env.step(team.act(obs))
                out.append(([o["observation"].tolist() for o in obs.values()], rew, infos))
            obs, _ = env.reset()
        return out

    assert run(5) == run(5)
    assert run(5) != run(6)


def test_batch_shapes_and_bad_actions():
    b = TwinBatch("paper-large", 8, seed=0, red="ExplorerAgent")
    obs = b.reset()
    A = len(get_scenario("paper-large").layout())
    assert obs["observation"].shape == (8, A, b.model.obs_size_max)
    assert obs["action_mask"].shape == (8, A, b.model.n_actions_max)
    for ai in range(A):  # padding stays zero
        assert not obs["observation"][:, ai, b.obs_size[ai]:].any()
        assert not obs["action_mask"][:, ai, b.n_actions[ai]:].any()
    acts = np.zeros((8, A), dtype=np.int64)
    for _ in range(b.episode_length):
        obs, rew, env_rew, done, info = b.step(acts)
        assert rew.shape == env_rew.shape == done.shape == (8,)
        assert {"bits_sent", "channel_cost", "env_reward", "invalid_actions", "action"} <= set(info)
    assert done.all()
    with pytest.raises(RuntimeError):
        b.step(acts)
    b.reset()
    with pytest.raises(ValueError):
        b.step(np.full((8, A), 10_000))


def test_masked_action_runs_as_sleep_and_counts():
    env = make_twin_env("paper-small", seed=0, green="none", red="SleepAgent")
    obs, _ = env.reset(seed=0)
    a = env.possible_agents[0]
    masked = int(np.flatnonzero(obs[a]["action_mask"] == 0)[0])
    _, _, _, _, infos = env.step({a: masked, env.possible_agents[1]: 0})
    assert infos[a]["invalid_action"] and infos[a]["invalid_actions"] == 1
    assert infos[a]["action"] == "Sleep" and infos[a]["action_cost"] == 0.0


def test_numbers_come_from_the_spec():
    spec = get_scenario("paper-small")
    costs = dataclasses.replace(spec.costs, block=-7.0)
    custom = dataclasses.replace(spec, name="custom", costs=costs, message_cost=0.25, green_rate=0.0, detection=0.0)
    b = TwinBatch(custom, 64, seed=0, red="KillChainAgent", sau=False)
    b.reset()
    block = [i for i, (k, _) in enumerate(b.model.agents[0].catalog.entries) if k == "Block"][0]
    acts = np.zeros((64, b.A), dtype=np.int64)
    acts[:, 0] = 2 * block + 1  # block and send a 1
    _, rew, env_rew, _, info = b.step(acts)
    np.testing.assert_allclose(info["action_cost"][:, 0], -7.0)
    np.testing.assert_allclose(rew - env_rew, -0.25)
    for _ in range(b.episode_length - 1):  # no green, no detection: only scans and brute force are seen
        b.step(np.zeros_like(acts))
    assert not b.sus.any()


def test_ks_matches_known_values():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=500), rng.normal(size=500)
    assert ks_2samp(x, y)[1] > 0.01
    assert ks_2samp(x, y + 0.5)[1] < 1e-6


def test_compare_catches_a_wrong_twin():
    """A twin with a different detection rate must fail against the engine (the tests have power)."""
    eng = rollout_engine("paper-small", "react", 200, seed=3, red="KillChainAgent")
    wrong = rollout_twin("paper-small", "react", 200, seed=4, red="KillChainAgent", detection=0.5)
    assert not compare(eng, wrong).ok


@pytest.fixture(scope="module")
def engine_rollouts():
    return rollout_engine("paper-small", "react", 150, seed=5, red="KillChainAgent")


def _altered(r, fault: str):
    """A copy of engine rollouts that differs from them in one respect only."""
    out = dataclasses.replace(r, returns=r.returns.copy(), rewards=r.rewards.copy(), bits=r.bits.copy(),
                              root=r.root.copy())
    if fault == "bit":  # the (step, bit) seen closest to half the time, never seen
        t, i = np.unravel_index(np.argmin(np.abs(r.bits.mean(axis=0) - 0.5)), r.bits.shape[1:])
        out.bits[:, t, i] = 0
        return out, f"bit {r.bit_names[i]} at step {t}"
    if fault == "root":
        t, h = np.unravel_index(np.argmin(np.abs(r.root.mean(axis=0) - 0.5)), r.root.shape[1:])
        out.root[:, t, h] = False
        return out, f"root on {r.hosts[h]} by step {t}"
    if fault == "reward":  # one step's rewards shifted; the returns left as they were
        t = int(np.argmax(r.rewards.std(axis=0)))
        out.rewards[:, t] += 1.0 + 2.0 * r.rewards[:, t].std()
        return out, f"reward at step {t}:"
    # the returns spread three times as wide about the same mean: only their distribution differs
    out.returns = r.returns.mean() + 3.0 * (r.returns - r.returns.mean())
    return out, "returns: KS"


def test_compare_passes_rollouts_against_themselves(engine_rollouts):
    assert compare(engine_rollouts, engine_rollouts).ok


@pytest.mark.parametrize("fault", ["bit", "root", "reward", "returns"])
def test_compare_catches_each_kind_of_difference_on_its_own(engine_rollouts, fault):
    """Each test of the equivalence has power of its own (a wrong twin used to be caught by the mean return
    alone, so any one of the others could have been dropped unnoticed)."""
    twin, failure = _altered(engine_rollouts, fault)
    result = compare(engine_rollouts, twin)
    assert [f for f in result.failures if f.startswith(failure)], result.summary()


# --- equivalence ---------------------------------------------------------------------------------------------

def _check(scenario: str, team: str, red: str, episodes: int, **kwargs) -> None:
    eng = rollout_engine(scenario, team, episodes, seed=101, red=red, **kwargs)
    twin = rollout_twin(scenario, team, episodes, seed=202, red=red, **kwargs)
    result = compare(eng, twin)
    print(f"{scenario} {red} vs {team} ({episodes} episodes each): {result.summary()}")
    assert result.ok, result.summary()


@pytest.mark.parametrize(("scenario", "team", "red", "kwargs"), [
    ("paper-small", "sleep", "KillChainAgent", {}),
    ("paper-small", "script", "ExplorerAgent", {"sau": False}),
])
def test_equivalence_smoke(scenario, team, red, kwargs):
    _check(scenario, team, red, 200, **kwargs)


@pytest.mark.slow
@pytest.mark.parametrize(("scenario", "team", "red", "kwargs"), [
    ("paper-small", "sleep", "KillChainAgent", {}),
    ("paper-small", "random", "ExplorerAgent", {}),
    ("paper-small", "script", "KillChainAgent", {"sau": False}),
    ("paper-small", "react", "ExplorerAgent", {}),
    ("paper-large", "react", "KillChainAgent", {}),
    ("paper-large", "random", "ExplorerAgent", {}),
    ("paper-large", "script", "ExplorerAgent", {"sau": False}),
])
def test_equivalence(scenario, team, red, kwargs):
    _check(scenario, team, red, 2000, **kwargs)
