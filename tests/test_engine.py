"""The CybORG engine adapter on the real engine: lean reward path, RNG isolation, red agents, CAGE-2's Sleep row."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from cagekit.engine import CyborgEngine
from cagekit.wrappers import make_env

# --- the lean step equals the engine's own step and calculators ------------------------------------

LEAN_CASES = [
    # (scenario, layout, red, episodes, steps)
    ("paper-small", None, "KillChainAgent", 30, 30),
    ("paper-small", None, "ExplorerAgent", 10, 30),
    ("paper-large", None, "KillChainAgent", 30, 30),
    ("paper-large", None, "ExplorerAgent", 10, 30),
    ("cage2", "classic", "B_lineAgent", 10, 50),
    ("cage2", "classic", "RedMeanderAgent", 5, 50),
    ("cage2", "team", "B_lineAgent", 5, 30),
]


@pytest.mark.parametrize(("scenario", "layout", "red", "episodes", "steps"), LEAN_CASES)
def test_lean_step_matches_engine_calculators(scenario, layout, red, episodes, steps):
    """Same seed, same random actions: the lean step's reward and observations equal the full step's."""
    lean = make_env(scenario, layout=layout, red=red, seed=11, lean=True, sau=False, channel=False,
                    episode_length=steps)
    full = make_env(scenario, layout=layout, red=red, seed=11, lean=False, sau=False, channel=False,
                    episode_length=steps)
    rng = np.random.default_rng(5)
    nonzero = impacted = 0
    for episode in range(episodes):
        obs_l, _ = lean.reset(seed=episode)
        obs_f, _ = full.reset(seed=episode)
        for t in range(steps):
            for a in lean.possible_agents:
                np.testing.assert_array_equal(obs_l[a]["observation"], obs_f[a]["observation"],
                                              err_msg=f"{scenario} episode {episode} step {t} agent {a}")
            # mostly Sleep, so that red gets deep; otherwise any action (SAU off: all are executed)
            actions = {a: int(rng.integers(lean.action_space(a).n)) if rng.random() < 0.4 else 0
                       for a in lean.agents}
            obs_l, rew_l, _, _, info_l = lean.step(actions)
            obs_f, rew_f, _, _, info_f = full.step(actions)
            for a in actions:
                assert abs(rew_l[a] - rew_f[a]) < 1e-9, (scenario, episode, t, a, rew_l[a], rew_f[a])
                assert info_l[a]["action"] == info_f[a]["action"]
                assert info_l[a]["impacted"] == info_f[a]["impacted"]
            assert lean.engine.red_access() == full.engine.red_access()
            nonzero += rew_l[lean.possible_agents[0]] != 0
            impacted += info_l[lean.possible_agents[0]]["impacted"]
    assert nonzero > 0  # the comparison saw something other than zeros
    if scenario == "cage2":
        assert impacted > 0  # and the availability term too


# --- randomness ------------------------------------------------------------------------------------

def test_engine_keeps_its_own_random_state():
    """Building, resetting and stepping an engine leaves the global `random` stream untouched."""
    random.seed(1234)
    before = random.getstate()
    engine = CyborgEngine("paper-small", seed=3)
    engine.reset(seed=3)
    for _ in range(20):
        engine.step({a.name: 0 for a in engine.agents})
    assert random.getstate() == before


def test_engine_seed_fixes_red():
    """Two engines with one seed give one trajectory of red's access; another seed can differ."""
    def trace(seed: int) -> list[dict[str, str]]:
        engine = CyborgEngine("paper-large", red="ExplorerAgent", seed=seed)
        engine.reset(seed=seed)
        out = []
        for _ in range(40):
            engine.step({a.name: 0 for a in engine.agents})
            out.append(engine.red_access())
        return out

    assert trace(7) == trace(7)
    assert any(trace(7) != trace(s) for s in (8, 9, 10))


def test_bad_agent_names():
    with pytest.raises(ValueError, match="KillChainAgent"):
        CyborgEngine("paper-small", red="NoSuchRed")
    with pytest.raises(ValueError, match="alerts"):
        CyborgEngine("paper-small", green="NoSuchGreen")
    with pytest.raises(ValueError, match="paper-small"):
        CyborgEngine("no-such-scenario")
    with pytest.raises(ValueError, match="classic"):
        CyborgEngine("cage2", layout="no-such-layout")
    engine = CyborgEngine("paper-small", seed=0)
    engine.reset()
    with pytest.raises(ValueError, match="blue_user"):
        engine.step({"blue_user": 999, "blue_ops": 0})


# --- the paper red agents --------------------------------------------------------------------------

def _root_runs(env, team_action, episodes: int) -> tuple[list[int], list[int]]:
    """Per episode: steps with red root on Op_Server0, and the longest run of such steps."""
    totals, longest = [], []
    for episode in range(episodes):
        env.reset(seed=100 + episode)
        t = total = run = best = 0
        while env.agents:
            env.step(team_action(t))
            t += 1
            if env.engine.red_access()["Op_Server0"] == "root":
                total += 1
                run += 1
                best = max(best, run)
            else:
                run = 0
        totals.append(total)
        longest.append(best)
    return totals, longest


@pytest.mark.parametrize("scenario", ["paper-small", "paper-large"])
@pytest.mark.parametrize("red", ["KillChainAgent", "ExplorerAgent"])
def test_paper_red_reaches_root_and_restoring_team_stops_it(scenario, red):
    env = make_env(scenario, red=red, episode_length=60, sau=False, channel=False, seed=0)
    ops = "blue_ops"
    entries = env.engine.catalogs[ops].entries
    restore_server = entries.index(("Restore", "Op_Server0"))
    restore_gateway = entries.index(("Restore", "Op_Host0"))

    def sleeping(t: int) -> dict[str, int]:
        return {a: 0 for a in env.possible_agents}

    def restoring(t: int) -> dict[str, int]:
        actions = sleeping(t)
        actions[ops] = restore_server if t % 2 == 0 else restore_gateway
        return actions

    episodes = 12
    sleep_totals, _ = _root_runs(env, sleeping, episodes)
    reached = sum(total > 0 for total in sleep_totals)
    assert reached >= episodes - 1, f"{red} reached root on Op_Server0 in only {reached}/{episodes} episodes"
    assert np.mean(sleep_totals) >= 15, sleep_totals

    restore_totals, restore_longest = _root_runs(env, restoring, episodes)
    assert max(restore_longest) <= 2, restore_longest
    assert np.mean(restore_totals) <= 0.1 * np.mean(sleep_totals), (restore_totals, sleep_totals)


# --- CAGE-2: the published Sleep row --------------------------------------------------------------

#: (red, episode length, episodes, published mean for a sleeping blue agent)
SLEEP_ROW = [
    ("B_lineAgent", 30, 100, -218.65),
    ("RedMeanderAgent", 30, 100, -39.31),
    ("B_lineAgent", 50, 100, -480.17),
    ("RedMeanderAgent", 50, 100, -267.6),
]


@pytest.mark.parametrize(("red", "length", "episodes", "published"), SLEEP_ROW)
def test_cage2_sleep_row(red, length, episodes, published):
    env = make_env("cage2", layout="classic", red=red, episode_length=length, sau=False, channel=False, seed=2024)
    totals = []
    for _ in range(episodes):
        env.reset()
        total = 0.0
        while env.agents:
            _, _, _, _, infos = env.step({"Blue": 0})
            total += infos["Blue"]["env_reward"]
        totals.append(total)
    mean = float(np.mean(totals))
    se = float(np.std(totals, ddof=1)) / math.sqrt(episodes)
    tolerance = 4 * se + 0.01 * abs(published)
    assert abs(mean - published) <= tolerance, f"{red} {length}: mean {mean:.2f} (se {se:.2f}) vs {published}"


def test_episode_depends_only_on_its_seed_not_on_earlier_episodes():
    """What our actions keep on the engine's State (captured credentials, malware already found, blocks)
    must not leak from one episode into the next: workers and resumed runs play episodes in any order.
    (Before the fix, 4 of these 10 seeds differed after one earlier episode.)"""
    from cagekit import make_env
    from cagekit.agents import make_team

    def play(env, seed):
        team = make_team("random", env, seed=seed)
        obs, _ = env.reset(seed=seed)
        rewards = []
        while env.agents:
            obs, r, *_ = env.step(team.act(obs))
            rewards.append(r[env.possible_agents[0]])
        return rewards

    used = make_env("paper-small", red="KillChainAgent", episode_length=30, seed=0)
    for s in range(10):
        reference = play(make_env("paper-small", red="KillChainAgent", episode_length=30, seed=0), 1000 + s)
        play(used, 5000 + s)  # an earlier, different episode in the same environment
        assert play(used, 1000 + s) == reference, f"seed {1000 + s} depends on the episode before it"


@pytest.mark.parametrize("scenario", ["paper-small", "cage2"])
def test_cached_subnet_reset_equals_engine_reset(scenario):
    """The cached-subnet reset draws the same addresses and then the same episode as the engine's own."""
    fast = CyborgEngine(scenario, seed=4, fast_reset=True)
    slow = CyborgEngine(scenario, seed=4, fast_reset=False)
    rng = np.random.default_rng(2)
    rewards = []
    for episode in range(6):
        fast.reset(seed=episode)
        slow.reset(seed=episode)
        assert {str(ip): h for ip, h in fast.state.ip_addresses.items()} == \
            {str(ip): h for ip, h in slow.state.ip_addresses.items()}
        assert {n: str(s.cidr) for n, s in fast.state.subnets.items()} == \
            {n: str(s.cidr) for n, s in slow.state.subnets.items()}
        for _ in range(20):
            actions = {a.name: int(rng.integers(len(fast.catalogs[a.name]))) if rng.random() < 0.3 else 0
                       for a in fast.agents}
            r_fast, r_slow = fast.step(actions).reward, slow.step(actions).reward
            assert r_fast == r_slow
            assert fast.red_access() == slow.red_access()
            rewards.append(r_fast)
    assert any(r != 0 for r in rewards)  # red got somewhere, so the comparison saw more than zeros


def test_red_access_counts_system_on_windows_as_root_as_the_reward_does():
    """CAGE-2's Windows hosts give red SYSTEM, not root: `red_access` (the global state, the twin comparison)
    must call that root, as the reward's confidentiality term does."""
    from cagekit.scenarios.spec import VALUE_WEIGHTS

    env = make_env("cage2", layout="classic", red="B_lineAgent", seed=0, sau=False, channel=False, episode_length=30)
    env.reset(seed=0)
    weight = {h.name: VALUE_WEIGHTS[h.confidentiality] for h in env.spec.hosts}
    roots = set()
    while env.agents:
        *_, infos = env.step({"Blue": 0})
        if infos["Blue"]["impacted"]:
            break  # the availability term joins in: the comparison below is for confidentiality alone
        access = env.engine.red_access()
        charged = -round(sum(weight[h] for h, level in access.items() if level == "root"), 1)
        assert infos["Blue"]["env_reward"] == pytest.approx(charged)
        roots |= {h for h, level in access.items() if level == "root"}
    assert {"User0", "Enterprise1"} <= roots  # Windows hosts
