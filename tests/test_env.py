"""`CageParallelEnv` on the real engine: PettingZoo API, determinism, SAU masks, the costed channel, bad input."""

from __future__ import annotations

import gc
import random
import warnings
import weakref

import numpy as np
import pytest
from pettingzoo.test import api_test, parallel_api_test
from pettingzoo.utils.conversions import parallel_to_aec

from cagekit.agents import make_team
from cagekit.engine import BlueActionCatalog
from cagekit.scenarios import get_scenario
from cagekit.wrappers import make_env
from cagekit.wrappers.parallel import encode_action
from cagekit.wrappers.sau import sau_mask

LAYOUTS = [("paper-small", None), ("paper-large", None), ("cage2", "team"), ("cage2", "classic")]


@pytest.mark.parametrize("channel", [True, False])
@pytest.mark.parametrize(("scenario", "layout"), LAYOUTS)
def test_parallel_api(scenario, layout, channel):
    if channel and layout == "classic":  # a channel for one agent: bits that cost and reach no one
        with pytest.raises(ValueError, match="the message channel needs two or more blue agents, and cage2's "
                                             "layout 'classic' has one \\(Blue\\)"):
            make_env(scenario, layout=layout, channel=channel, seed=0)
        return
    env = make_env(scenario, layout=layout, channel=channel, seed=0)
    parallel_api_test(env, num_cycles=100)


@pytest.mark.parametrize(("scenario", "layout"), LAYOUTS)
def test_spaces_match_observations(scenario, layout):
    env = make_env(scenario, layout=layout, seed=0)
    obs, infos = env.reset(seed=0)
    assert set(obs) == set(env.possible_agents) == set(infos)
    for a in env.possible_agents:
        assert env.observation_space(a).contains(obs[a])
        assert obs[a]["action_mask"].shape == (env.action_space(a).n,)


@pytest.mark.parametrize("simulator", ["engine", "twin"])
def test_pettingzoos_aec_conversion_passes_its_api_test_without_a_warning_of_ours(simulator):
    """parallel_to_aec (and PettingZoo's wrappers) read `render_mode`, which the envs lacked: a warning that the
    base environment 'does not have a render_mode defined' on every conversion."""
    env = make_env("paper-small", simulator=simulator, seed=0)
    assert env.render_mode is None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        aec = parallel_to_aec(env)
    assert not [w for w in caught if "render_mode" in str(w.message)]
    api_test(aec, num_cycles=40)


@pytest.mark.parametrize("simulator", ["engine", "twin"])
def test_spaces_are_the_same_objects_and_do_not_keep_the_env_alive(simulator):
    env = make_env("paper-small", simulator=simulator, seed=0)
    agent = env.possible_agents[0]
    assert env.observation_space(agent) is env.observation_space(agent)  # PettingZoo's rule: seeding sticks
    assert env.action_space(agent) is env.action_space(agent)
    other = make_env("paper-small", simulator=simulator, seed=0)
    assert other.action_space(agent) is not env.action_space(agent)  # each env its own
    alive = weakref.ref(env)
    del env
    gc.collect()
    assert alive() is None  # a functools.cache on the methods held every env (and its engine) for good


# --- determinism and RNG isolation -----------------------------------------------------------------

def _trajectory(env, team, steps: int, between=None, seed: int | None = None) -> list:
    """(observations, rewards, infos) per step for `steps` steps over consecutive episodes."""
    out = []
    obs, _ = env.reset(seed=seed)
    for _ in range(steps):
        if not env.agents:
            team.end_episode()
            obs, _ = env.reset()
        obs, rewards, _, _, infos = env.step(team.act(obs))
        out.append(({a: o["observation"].tolist() + o["action_mask"].tolist() for a, o in obs.items()},
                    rewards, infos))
        if between is not None:
            between()
    return out


@pytest.mark.parametrize(("scenario", "layout", "red"),
                         [("paper-small", None, "ExplorerAgent"), ("cage2", "classic", "RedMeanderAgent")])
def test_same_seed_same_trajectory(scenario, layout, red):
    def run(between=None) -> list:
        env = make_env(scenario, layout=layout, red=red, seed=42, episode_length=20)
        return _trajectory(env, make_team("random", env, seed=7), 50, between)

    first = run()
    assert first == run()

    other = make_env(scenario, layout=layout, red=red, seed=999, episode_length=20)
    other_team = make_team("random", other, seed=3)
    state = {"obs": other.reset(seed=999)[0]}

    def step_other() -> None:
        if not other.agents:
            state["obs"] = other.reset()[0]
        state["obs"] = other.step(other_team.act(state["obs"]))[0]

    assert first == run(step_other)  # a third environment stepped in between changes nothing


def test_seeds_differ():
    def run(seed: int) -> list:
        env = make_env("paper-large", red="ExplorerAgent", seed=seed, episode_length=30)
        return _trajectory(env, make_team("sleep", env), 30, seed=seed)

    assert run(1) != run(2)


def test_env_steps_leave_global_random_alone():
    random.seed(2024)
    before = random.getstate()
    env = make_env("paper-small", seed=1)
    team = make_team("random", env, seed=1)
    obs, _ = env.reset()
    while env.agents:
        obs, *_ = env.step(team.act(obs))
    env.reset(seed=5)
    assert random.getstate() == before


# --- SAU masks --------------------------------------------------------------------------------------

QUIET, SCAN, EXPLOIT_USER, PRIVILEGED = 0b0000, 0b1000, 0b1101, 0b0011


@pytest.fixture
def catalog() -> BlueActionCatalog:
    spec = get_scenario("paper-small")
    return BlueActionCatalog(spec, spec.layout()[0])  # blue_user: User1, User2, Block Operational


def _unmasked(catalog, mask) -> set[tuple[str, str | None]]:
    return {catalog.entries[i] for i in np.flatnonzero(mask)}


def test_sau_quiet_hosts_leave_sleep_and_block(catalog):
    for codes in ([QUIET, QUIET], [SCAN, QUIET], [SCAN, SCAN]):
        mask = sau_mask(catalog, np.array(codes), False)
        assert _unmasked(catalog, mask) == {("Sleep", None), ("Block", "Operational")}


@pytest.mark.parametrize("code", [EXPLOIT_USER, PRIVILEGED])
def test_sau_alarming_host_unmasks_its_actions(catalog, code):
    mask = sau_mask(catalog, np.array([code, QUIET]), False)
    assert _unmasked(catalog, mask) == {("Sleep", None), ("Block", "Operational"), ("Analyse", "User1"),
                                        ("Remove", "User1"), ("Restore", "User1")}


def test_sau_message_unmasks_analyse_only(catalog):
    mask = sau_mask(catalog, np.array([QUIET, QUIET]), True)
    assert _unmasked(catalog, mask) == {("Sleep", None), ("Block", "Operational"), ("Analyse", "User1"),
                                        ("Analyse", "User2")}


def test_sau_off_gives_all_ones():
    env = make_env("paper-small", sau=False, seed=0)
    obs, _ = env.reset()
    for _ in range(10):
        for a in env.possible_agents:
            assert obs[a]["action_mask"].all()
        obs, *_ = env.step({a: 0 for a in env.agents})


def test_sau_on_masks_restore_at_start():
    env = make_env("paper-small", seed=0)
    obs, _ = env.reset()
    for a in env.possible_agents:
        mask = obs[a]["action_mask"]
        assert mask[encode_action(0, 0)] and mask[encode_action(0, 1)]
        assert not mask.all()


# --- the costed channel -----------------------------------------------------------------------------

@pytest.mark.parametrize("simulator", ["engine", "twin"])
def test_channel_cost_and_delivery(simulator):
    cost = 0.25
    env = make_env("paper-large", message_cost=cost, seed=3, simulator=simulator)
    agents = env.possible_agents  # blue_user, blue_enterprise, blue_ops
    env.reset()
    sender = agents[0]
    obs, rewards, _, _, infos = env.step({a: encode_action(0, 1 if a == sender else 0) for a in agents})
    assert infos[sender]["bits_sent"] == 1
    assert infos[sender]["channel_cost"] == pytest.approx(cost)
    for a in agents[1:]:
        assert infos[a]["bits_sent"] == 0 and infos[a]["channel_cost"] == 0
    for a in agents:
        assert rewards[a] == pytest.approx(infos[a]["env_reward"] - cost)
    # received bits are the last entries, teammates in team order (the agent itself left out)
    assert obs[sender]["observation"][-2:].tolist() == [0, 0]
    assert obs[agents[1]]["observation"][-2:].tolist() == [1, 0]
    assert obs[agents[2]]["observation"][-2:].tolist() == [1, 0]

    # two senders: the reward pays for both bits; the bits last one step only
    obs, rewards, _, _, infos = env.step({a: encode_action(0, 1 if a != sender else 0) for a in agents})
    total_bits = sum(infos[a]["bits_sent"] for a in agents)
    assert total_bits == 2
    for a in agents:
        assert rewards[a] == pytest.approx(infos[a]["env_reward"] - cost * total_bits)
    assert obs[sender]["observation"][-2:].tolist() == [1, 1]
    assert obs[agents[1]]["observation"][-2:].tolist() == [0, 1]
    obs, *_ = env.step({a: encode_action(0, 0) for a in agents})
    for a in agents:
        assert obs[a]["observation"][-2:].tolist() == [0, 0]


def test_channel_pair_actions():
    env = make_env("paper-small", message_cost=0.5, seed=3)
    env.reset()
    _, rewards, _, _, infos = env.step({"blue_user": (0, 1), "blue_ops": np.int64(0)})
    assert infos["blue_user"]["bits_sent"] == 1 and infos["blue_ops"]["bits_sent"] == 0
    assert rewards["blue_ops"] == pytest.approx(infos["blue_ops"]["env_reward"] - 0.5)


@pytest.mark.parametrize(("scenario", "layout"), [(s, lay) for s, lay in LAYOUTS if lay != "classic"])
def test_channel_off_removes_the_bit(scenario, layout):
    on = make_env(scenario, layout=layout, channel=True, seed=0)
    off = make_env(scenario, layout=layout, channel=False, seed=0)
    obs_on, _ = on.reset()
    obs_off, _ = off.reset()
    n = len(on.possible_agents)
    for a in on.possible_agents:
        assert on.action_space(a).n == 2 * off.action_space(a).n
        assert obs_off[a]["observation"].shape[0] == obs_on[a]["observation"].shape[0] - (n - 1)
        assert obs_off[a]["action_mask"].shape == (off.action_space(a).n,)
    _, rewards, _, _, infos = off.step({a: 0 for a in off.agents})
    for a in off.possible_agents:
        assert infos[a]["bits_sent"] == 0 and rewards[a] == infos[a]["env_reward"]


# --- bad input ---------------------------------------------------------------------------------------

def test_unknown_names_list_valid_ones():
    with pytest.raises(ValueError, match="paper-small.*paper-large.*cage2"):
        make_env("no-such-scenario")
    with pytest.raises(ValueError, match="KillChainAgent"):
        make_env("paper-small", red="B_lineAgent")
    with pytest.raises(ValueError, match="B_lineAgent"):
        make_env("cage2", red="KillChainAgent")
    with pytest.raises(ValueError, match="alerts"):
        make_env("paper-small", green="nobody")
    with pytest.raises(ValueError, match="team"):
        make_env("paper-small", layout="classic")


@pytest.mark.parametrize("channel", [True, False])
@pytest.mark.parametrize("bad", [-1, 16, 10_000, 1.5, "3", (0, 2)])
def test_action_outside_space(channel, bad):
    env = make_env("paper-small", channel=channel, seed=0)
    env.reset()
    size = env.action_space("blue_ops").n
    with pytest.raises(ValueError, match=rf"blue_ops.*0\.\.{size - 1}"):
        env.step({"blue_user": 0, "blue_ops": bad if bad != 16 else size})
    env.step({"blue_user": 0, "blue_ops": 0})  # the env is still usable


def test_missing_action_and_finished_episode():
    env = make_env("paper-small", episode_length=2, seed=0)
    env.reset()
    with pytest.raises(ValueError, match="blue_ops"):
        env.step({"blue_user": 0})
    env.step({"blue_user": 0, "blue_ops": 0})
    env.step({"blue_user": 0, "blue_ops": 0})
    assert env.agents == []
    with pytest.raises(RuntimeError):
        env.step({"blue_user": 0, "blue_ops": 0})


def test_masked_action_runs_as_sleep():
    env = make_env("paper-small", seed=0)
    obs, _ = env.reset()
    entries = env.engine.catalogs["blue_ops"].entries
    restore = encode_action(entries.index(("Restore", "Op_Server0")), 0)
    assert not obs["blue_ops"]["action_mask"][restore]
    for t in range(1, 4):
        _, rewards, _, _, infos = env.step({"blue_user": 0, "blue_ops": restore})
        assert infos["blue_ops"]["action"] == "Sleep"
        assert infos["blue_ops"]["invalid_action"] is True
        assert infos["blue_ops"]["invalid_actions"] == t
        assert infos["blue_ops"]["action_cost"] == 0
        assert infos["blue_user"]["invalid_actions"] == 0
    env.reset()
    _, _, _, _, infos = env.step({"blue_user": 0, "blue_ops": 0})
    assert infos["blue_ops"]["invalid_actions"] == 0


def test_random_masked_actions_never_crash():
    """Every action of the space, masked or not, over whole episodes, on each scenario."""
    for scenario, layout in LAYOUTS:
        env = make_env(scenario, layout=layout, seed=1, episode_length=15)
        rng = np.random.default_rng(0)
        for _ in range(2):
            env.reset()
            while env.agents:
                _, rewards, _, _, infos = env.step({a: int(rng.integers(env.action_space(a).n)) for a in env.agents})
                for a, info in infos.items():
                    assert np.isfinite(rewards[a])
                    if info["invalid_action"]:
                        assert info["action"] == "Sleep"


def test_state_vector():
    env = make_env("paper-small", seed=0)
    env.reset()
    state = env.state()
    assert env.state_space.contains(state)


@pytest.mark.parametrize("simulator", ["engine", "twin"])
@pytest.mark.parametrize("scenario", ["paper-small", "paper-large"])
def test_team_view_appends_the_teammates_rows_and_changes_nothing_else(scenario, simulator):
    """view="team": each agent's own observation, then every teammate's rows and block bits of the same step,
    in team order; masks, rewards and the global state are those of the own view."""
    own = make_env(scenario, channel=False, seed=3, simulator=simulator)
    team = make_env(scenario, channel=False, seed=3, simulator=simulator, view="team")
    o_own, _ = own.reset(seed=5)
    o_team, _ = team.reset(seed=5)
    rng = np.random.default_rng(0)
    seen_alarm = False
    for _ in range(30):
        for a in own.possible_agents:
            mates = [o_own[b]["observation"] for b in own.possible_agents if b != a]
            np.testing.assert_array_equal(o_team[a]["observation"], np.concatenate([o_own[a]["observation"], *mates]))
            np.testing.assert_array_equal(o_team[a]["action_mask"], o_own[a]["action_mask"])
            assert team.observation_space(a).contains(o_team[a])
            seen_alarm |= bool(np.concatenate(mates).any())
        actions = {a: int(rng.choice(np.flatnonzero(o_own[a]["action_mask"]))) for a in own.possible_agents}
        o_own, r_own, *_ = own.step(actions)
        o_team, r_team, *_ = team.step(actions)
        assert r_team == r_own
    assert seen_alarm  # the teammates' part carried something
    np.testing.assert_array_equal(team.state(), own.state())
    assert team.state_space == own.state_space


def test_unknown_view_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown observation view 'all'; valid: own, team"):
        make_env("paper-small", view="all")
    with pytest.raises(ValueError, match="unknown observation view 'all'; valid: own, team"):
        make_env("paper-small", view="all", simulator="twin")


@pytest.mark.parametrize("simulator", ["engine", "twin"])
@pytest.mark.parametrize(("setting", "value", "message"), [
    ("message_cost", float("nan"), "message cost must be a finite number >= 0"),
    ("message_cost", -1.0, "message cost must be a finite number >= 0"),
    ("message_cost", float("inf"), "message cost must be a finite number >= 0"),
    ("detection", 1.5, r"detection is a probability in \[0, 1\], got 1.5"),
    ("green_rate", float("nan"), r"green rate is a probability in \[0, 1\], got nan"),
])
def test_out_of_range_settings_are_refused_on_both_simulators(simulator, setting, value, message):
    """A NaN price trains NaN weights and a negative one pays agents to talk: refused where the env is made."""
    with pytest.raises(ValueError, match=message):
        make_env("paper-small", simulator=simulator, **{setting: value})
    assert make_env("paper-small", simulator=simulator, **{setting: 0.0}).reset(seed=0)


@pytest.mark.parametrize("simulator", ["engine", "twin"])
def test_a_negative_seed_is_named(simulator):
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        make_env("paper-small", simulator=simulator, seed=-1)
    env = make_env("paper-small", simulator=simulator)
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        env.reset(seed=-3)


@pytest.mark.parametrize("simulator", ["engine", "twin"])
def test_numpy_integers_are_seeds_and_text_is_not_a_flag(simulator):
    """A seed drawn from numpy crashed the engine deep in `random`; "off" counted as on."""
    a = make_env("paper-small", simulator=simulator, seed=np.int64(3), episode_length=np.int32(5))
    b = make_env("paper-small", simulator=simulator, seed=3, episode_length=5)
    assert all(np.array_equal(a.reset()[0][n]["observation"], b.reset()[0][n]["observation"]) for n in a.agents)
    for kwargs, message in [({"seed": "3"}, "seed must be an integer >= 0"), ({"seed": 1.5}, "seed must be an"),
                            ({"episode_length": "30"}, "episode_length must be an integer >= 1"),
                            ({"episode_length": 2.5}, "episode_length must be an integer"),
                            ({"sau": "no"}, "sau must be True or False"),
                            ({"channel": "off"}, "channel must be True or False")]:
        with pytest.raises(ValueError, match=message):
            make_env("paper-small", simulator=simulator, **kwargs)


@pytest.mark.parametrize("simulator", ["engine", "twin"])
def test_a_float_pair_and_a_misspelt_agent_are_refused_not_guessed(simulator):
    env = make_env("paper-small", simulator=simulator, seed=0)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"action \(1.9, 1.0\) outside its space"):
        env.step({a: (1.9, 1.0) for a in env.agents})  # was played as (1, 1)
    with pytest.raises(ValueError, match=r"action\(s\) for \['blue_usr'\], not agents of this episode"):
        env.step({**{a: 0 for a in env.agents}, "blue_usr": 3})
    with pytest.raises(ValueError, match="no agent 'blue_x' in this env; its agents: blue_user, blue_ops"):
        env.observation_space("blue_x")
    env.step({a: (1, 1) for a in env.agents})  # an integer pair is fine


def _rows_and_received(env, agent, observation) -> tuple[np.ndarray, np.ndarray]:
    """An agent's own host codes (0-15) read back from its observation, and the bits it received."""
    spec = next(a for a in env.engine.agents if a.name == agent)
    nh, nb = len(spec.hosts), len(spec.block_subnets)
    bits = observation[:4 * nh].reshape(nh, 4).astype(np.int64)
    codes = (bits[:, 0] << 3) | (bits[:, 1] << 2) | (bits[:, 2] << 1) | bits[:, 3]
    return codes, observation[4 * nh + nb: 4 * nh + nb + len(env.possible_agents) - 1]


@pytest.mark.parametrize("simulator", ["engine", "twin"])
def test_masks_follow_the_shown_rows_and_the_bits_that_arrived(simulator):
    """In play, each mask is `sau_mask` of the rows the agent is shown and whether any teammate's bit arrived
    (three agents: one bit of two is enough). The unit tests of `sau_mask` alone missed an env that never
    passed the arrival on, and a twin that unmasked Remove on a host showing only a scan."""
    env = make_env("paper-large", red="ExplorerAgent", seed=4, simulator=simulator, episode_length=40)
    obs, _ = env.reset(seed=4)
    rng = np.random.default_rng(1)
    seen = {"quiet host, bit arrived": 0, "one of two bits": 0, "scan only": 0}
    while env.agents:
        for a in env.possible_agents:
            codes, received = _rows_and_received(env, a, obs[a]["observation"])
            expected = sau_mask(env.engine.catalogs[a], codes, bool(received.any()))
            np.testing.assert_array_equal(obs[a]["action_mask"], np.repeat(expected, 2))
            seen["quiet host, bit arrived"] += bool(received.any() and (codes == QUIET).any())
            seen["one of two bits"] += int(received.sum()) == 1
            seen["scan only"] += bool((codes == SCAN).any())
        actions = {a: encode_action(int(rng.choice(np.flatnonzero(obs[a]["action_mask"][::2]))),
                                    int(rng.random() < 0.5)) for a in env.agents}
        obs, *_ = env.step(actions)
    assert all(seen.values()), seen  # every case the masks must get right came up


@pytest.mark.parametrize("simulator", ["engine", "twin"])
def test_state_ends_with_reds_true_access_one_hot(simulator):
    """The global state (QMix's mixer input) ends with red's access to every host, one-hot (none, user, root)."""
    env = make_env("paper-small", red="KillChainAgent", seed=2, simulator=simulator, episode_length=25)
    env.reset(seed=2)
    hosts = env.spec.host_names
    levels = set()
    while env.agents:
        env.step({a: 0 for a in env.agents})
        tail = env.state()[-3 * len(hosts):].reshape(len(hosts), 3)
        access = env.engine.red_access()
        assert (tail.sum(axis=1) == 1).all()
        assert [("none", "user", "root")[i] for i in tail.argmax(axis=1)] == [access[h] for h in hosts]
        levels |= set(access.values())
    assert levels == {"none", "user", "root"}


def test_reset_clears_the_block_bits():
    env = make_env("paper-small", red="SleepAgent", seed=0)
    env.reset(seed=0)
    entries = env.engine.catalogs["blue_user"].entries
    block = encode_action(entries.index(("Block", "Operational")), 0)
    obs, *_ = env.step({"blue_user": block, "blue_ops": 0})
    nh = len(env.engine.agents[0].hosts)
    assert obs["blue_user"]["observation"][4 * nh] == 1  # the block bit shows this step's block
    obs, _ = env.reset(seed=0)
    assert obs["blue_user"]["observation"][4 * nh] == 0


@pytest.mark.parametrize("simulator", ["engine", "twin"])
def test_restoring_the_ot_server_brings_its_service_back(simulator):
    env = make_env("paper-small", red="KillChainAgent", seed=0, sau=False, channel=False, episode_length=60,
                   simulator=simulator)
    restore = env.engine.catalogs["blue_ops"].entries.index(("Restore", "Op_Server0"))
    env.reset(seed=0)
    for _ in range(40):
        *_, infos = env.step({a: 0 for a in env.agents})
        if infos["blue_ops"]["impacted"]:
            break
    assert infos["blue_ops"]["impacted"], "red never took the OT service down"
    *_, infos = env.step({"blue_user": 0, "blue_ops": restore})
    assert infos["blue_ops"]["action"] == "Restore Op_Server0"
    assert not infos["blue_ops"]["impacted"]


def test_the_python_apis_wrong_kinds_of_argument_are_named():
    """From a library user's audit: each gave a bare TypeError/IndexError from deep inside (unhashable list,
    a str read letter by letter, numpy's index error) or, for a one-agent channel, nothing at all."""
    import inspect

    import cagekit
    from cagekit.agents import make_team
    from cagekit.agents.rollout import training_reds
    from cagekit.wrappers.gym_views import CentralisedEnv, make_vec_env

    env = make_env("paper-small", seed=1)
    env.reset(seed=1)
    with pytest.raises(TypeError, match="step\\(\\) takes a dict of agent -> action, got NoneType"):
        env.step(None)
    with pytest.raises(ValueError, match="agent 'blue_user': action 99 outside 0..7"):
        env.action_label("blue_user", 99)
    with pytest.raises(TypeError, match="red is one red agent's name, got list"):
        make_env("paper-small", red=["KillChainAgent"])
    with pytest.raises(ValueError, match="has no blue layout \\['team'\\]; valid: team"):
        make_env("paper-small", layout=["team"])
    with pytest.raises(TypeError, match="red is a str: a red agent's name, several in one comma-separated str"):
        training_reds("paper-small", ["KillChainAgent", "SleepAgent"])
    with pytest.raises(TypeError, match="expected an environment from cagekit.make_env"):
        make_team("react", "paper-small")
    with pytest.raises(TypeError, match="reds is a list of red agent names.*got the str 'KillChainAgent'"):
        make_vec_env(2, vec="dummy", reds="KillChainAgent")
    flat = CentralisedEnv(flatten=True)
    flat.reset(seed=0)
    with pytest.raises(ValueError, match="flat joint action 1000000 outside 0..255"):
        flat.step(10**6)
    # cagekit.make_env is the wrappers' function itself: help() shows its parameters, not (*args, **kwargs)
    assert "episode_length" in inspect.signature(cagekit.make_env).parameters


def test_a_setting_given_as_text_is_refused_as_the_seed_is():
    """make_env took message_cost="0.1" and detection="0.5" (float() reads text) while refusing seed="1"."""
    for key in ("message_cost", "detection"):
        with pytest.raises(TypeError, match=f"{key} is a number, got str"):
            make_env("paper-small", **{key: "0.5"})
    assert make_env("paper-small", message_cost=np.float32(0.5)).message_cost == 0.5  # numpy numbers are numbers


# --- rendering --------------------------------------------------------------------------------------

def test_ansi_render_shows_what_each_agent_sees_decoded():
    """render() raised PettingZoo's NotImplementedError; with render_mode="ansi" it is each agent's own view as
    text: every host's row decoded as the engine's table holds it, the block bits and the bits received."""
    env = make_env("paper-small", red="KillChainAgent", render_mode="ansi", seed=0)
    assert env.metadata["render_modes"] == ["ansi"] and env.render_mode == "ansi"
    with pytest.raises(RuntimeError, match="before reset"):
        env.render()
    obs, _ = env.reset(seed=0)
    team = make_team("react", env, seed=0)
    seen = set()
    for _ in range(12):
        obs, *_ = env.step(team.act(obs))
        text = env.render()
        assert text.splitlines()[0] == f"step {env._t}/30"
        for a in env.possible_agents:
            table, spec = env.engine.tables[a], env._specs[a]
            section = text.split(f"\n{a}; last action ", 1)[1]
            for host, activity, compromised in zip(spec.hosts, table.activity, table.compromised, strict=True):
                assert f"  {host} " in section
                line = next(line for line in section.splitlines() if line.split()[0] == host)
                assert line.split()[1:] == ["activity", activity, "compromised", compromised]
                seen.add(compromised)
            bits = [str(int(b)) for b in obs[a]["observation"][-(len(env.possible_agents) - 1):]]
            assert f"  received: {' '.join(bits)}" in section
    assert seen - {"No"}, "the episode compromised nothing: the test showed only clean hosts"


def test_rendering_is_asked_for_and_the_default_is_none():
    env = make_env("paper-small", seed=0)
    assert env.render_mode is None
    env.reset(seed=0)
    with pytest.raises(ValueError, match="render_mode='ansi'"):
        env.render()
    with pytest.raises(ValueError, match="render_mode must be None or one of 'ansi', got 'human'"):
        make_env("paper-small", render_mode="human")
    with pytest.raises(ValueError, match="the twin has no rendering"):
        make_env("paper-small", simulator="twin", render_mode="ansi")
    parallel_api_test(make_env("paper-small", render_mode="ansi", seed=0), num_cycles=30)


def test_ansi_render_shows_an_agent_that_defends_no_host():
    """A spec may give an agent only subnets to block (no host of its own): make_env and step play it, and render()
    failed on it with "max() arg is an empty sequence"."""
    import dataclasses

    from cagekit.scenarios import BlueAgentSpec

    spec = get_scenario("paper-small")
    layout = (BlueAgentSpec("defender", ("User1", "User2", "Op_Host0", "Op_Server0"), ("Operational",)),
              BlueAgentSpec("blocker", (), ("User",)))
    env = make_env(dataclasses.replace(spec, name="render-blocker", blue_layouts={"team": layout},
                                       default_layout="team"), render_mode="ansi", seed=0)
    env.reset(seed=0)
    env.step({a: 0 for a in env.agents})
    section = env.render().split("\nblocker; last action ", 1)[1].splitlines()
    assert section[1:] == ["  blocked: User 0", "  received: 0"]
