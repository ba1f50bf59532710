"""SB3 baselines: the gymnasium views, masks, vectorised seeding, training, checkpoints."""

from __future__ import annotations

import json
import re
import warnings

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from cagekit.agents import make_team
from cagekit.agents.sb3 import Sb3Team, check_hyperparameters, load_team, team_from_model, train_sb3
from cagekit.wrappers import make_env
from cagekit.wrappers.gym_views import CentralisedEnv, ClassicCage2Env, make_gym_env, make_vec_env


def _check(env) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # neither checker may even warn
        sb3_check_env(env)
        gym_check_env(env, skip_render_check=True)


def test_centralised_env_passes_checkers():
    env = CentralisedEnv("paper-small", channel=True, seed=0)
    assert env.observation_space.n == sum(env.obs_sizes) == 20
    assert list(env.action_space.nvec) == [16, 16]  # 8 defences x message bit, per agent
    _check(env)
    _check(CentralisedEnv("paper-small", channel=True, seed=0, flatten=True))


def test_classic_cage2_env_passes_checkers():
    env = ClassicCage2Env(seed=0)
    assert env.observation_space.n == 52 and env.action_space.n == 145
    _check(env)



@pytest.mark.parametrize(("setting", "value"), [("scenario", "paper-small"), ("layout", "team"), ("channel", True)])
def test_classic_cage2_env_refuses_a_setting_it_would_have_dropped(setting, value):
    """ClassicCage2Env dropped scenario, layout and channel without a word: ClassicCage2Env(scenario="paper-small")
    was cage2, and make_gym_env("cage2", layout="classic", channel=True) trained without a channel (make_env
    refuses a channel for one agent)."""
    with pytest.raises(ValueError, match=f"ClassicCage2Env is cage2's classic layout.*; {setting}={value!r} is not "
                                         f"its {setting}.* use CentralisedEnv"):
        ClassicCage2Env(seed=0, **{setting: value})
    if setting == "channel":  # make_gym_env gives cage2's classic layout to ClassicCage2Env
        with pytest.raises(ValueError, match="channel=True is not its channel"):
            make_gym_env("cage2", layout="classic", channel=True, seed=0)
    assert ClassicCage2Env(scenario="cage2", layout="classic", channel=False, seed=0).par.possible_agents == ["Blue"]

def test_centralised_step_matches_parallel_env():
    env = CentralisedEnv("paper-small", channel=True, seed=3)
    par = make_env("paper-small", channel=True, seed=3)
    obs, _ = env.reset(seed=11)
    pobs, _ = par.reset(seed=11)
    rng = np.random.default_rng(0)
    for _ in range(30):
        assert np.array_equal(obs, np.concatenate([pobs[a]["observation"] for a in par.possible_agents]))
        assert np.array_equal(env.action_masks(), np.concatenate([pobs[a]["action_mask"] for a in par.possible_agents]))
        action = env.action_space.sample(mask=tuple(m.astype(np.int8) for m in env.agent_masks()))
        action = np.array([rng.integers(n) for n in env.nvec]) if rng.random() < 0.2 else action
        obs, reward, terminated, truncated, info = env.step(action)
        pobs, prew, _, ptrunc, pinfo = par.step(env.split_action(action))
        a0 = par.possible_agents[0]
        assert reward == prew[a0] and info["env_reward"] == pinfo[a0]["env_reward"]
        assert reward == pytest.approx(info["env_reward"] - info["channel_cost"])
        assert info["bits_sent"] == sum(i["bits_sent"] for i in pinfo.values())
        assert info["invalid_actions"] == sum(i["invalid_action"] for i in pinfo.values())
        assert not terminated and truncated == ptrunc[a0]
    assert truncated
    # both agents on a masked action (Restore on a host that shows nothing, at the start): two invalid actions
    env.reset(seed=11)
    closed = [int(np.flatnonzero(m == 0)[0]) for m in env.agent_masks()]
    assert env.step(np.array(closed))[-1]["invalid_actions"] == 2


def test_flat_joint_action_limit():
    env = CentralisedEnv("paper-small", flatten=True, seed=0)
    assert env.action_space.n == 256
    joint = env.join_action({"blue_user": 5, "blue_ops": 9})
    assert env.split_action(joint) == {"blue_user": 5, "blue_ops": 9}
    env.reset(seed=0)
    mask = env.action_masks()
    assert mask.shape == (256,) and np.array_equal(mask.reshape(16, 16), np.logical_and.outer(*env.agent_masks()))
    with pytest.raises(ValueError, match="above the limit"):
        CentralisedEnv("paper-large", flatten=True)
    with pytest.raises(ValueError, match="above the limit"):
        train_sb3("dqn", "paper-large", steps=10, out_dir="unused-never-created")


def test_maskable_ppo_never_picks_masked_actions():
    from sb3_contrib import MaskablePPO
    from sb3_contrib.common.maskable.utils import get_action_masks
    from stable_baselines3.common.logger import Logger

    venv = make_vec_env(2, seed=0, vec="dummy", scenario="paper-small", channel=True)
    model = MaskablePPO("MlpPolicy", venv, n_steps=32, batch_size=64, seed=0, device="cpu")
    model.set_logger(Logger(folder=None, output_formats=[]))  # SB3's default makes an empty folder in /tmp
    model.learn(64)  # the rollout collection itself must pass masks (it asserts support)
    env = CentralisedEnv("paper-small", channel=True, seed=1)
    obs, _ = env.reset(seed=1)
    masked_out = 0
    for _ in range(300):
        mask = env.action_masks()
        masked_out += int((~mask).sum())
        action, _ = model.predict(obs, action_masks=mask, deterministic=False)
        starts = np.concatenate([[0], np.cumsum(env.nvec)[:-1]])
        assert all(mask[s + a] for s, a in zip(starts, action, strict=True)), (action, mask)
        obs, _, _, truncated, info = env.step(action)
        assert info["invalid_actions"] == 0
        if truncated:
            obs, _ = env.reset()
    assert masked_out > 0  # the SAU masks did rule actions out
    assert get_action_masks(venv).shape == (2, 32)
    venv.close()


def _rollout(vec: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    venv = make_vec_env(3, seed=seed, vec=vec, scenario="paper-small", channel=True)
    rng = np.random.default_rng(42)
    obs = [venv.reset()]
    rewards = []
    for _ in range(70):  # past the first episode end (auto-reset)
        actions = np.stack([rng.integers(0, 16, size=2) for _ in range(3)])
        o, r, _, _ = venv.step(actions)
        obs.append(o)
        rewards.append(np.asarray(r, dtype=np.float32))  # DummyVecEnv float32, SubprocVecEnv float64
    venv.close()
    return np.array(obs), np.array(rewards)


def test_vec_envs_same_seed_same_rollout():
    obs_d, rew_d = _rollout("dummy", 7)
    obs_s, rew_s = _rollout("subproc", 7)
    assert np.array_equal(obs_d, obs_s) and np.array_equal(rew_d, rew_s)
    obs_again, _ = _rollout("dummy", 7)
    assert np.array_equal(obs_d, obs_again)
    obs_other, rew_other = _rollout("dummy", 8)
    assert not (np.array_equal(obs_d, obs_other) and np.array_equal(rew_d, rew_other))
    assert not np.array_equal(obs_d[:, 0], obs_d[:, 1]) or not np.array_equal(rew_d[:, 0], rew_d[:, 1])


def test_train_and_load_round_trip(tmp_path):
    out = tmp_path / "ppo"
    model = train_sb3("maskable-ppo", "paper-small", steps=256, seed=0, out_dir=out, n_envs=2,
                      progress_bar=False, algo_kwargs={"n_steps": 64, "batch_size": 64})
    assert (out / "model.zip").exists() and (out / "progress.csv").exists()
    assert any(p.name.startswith("events.out.tfevents") for p in out.rglob("*"))
    meta = json.loads((out / "meta.json").read_text())
    assert meta["algo"] == "maskable-ppo" and meta["scenario"] == "paper-small" and meta["view"] == "centralised"
    assert [s["name"] for s in meta["slots"]] == ["blue_user", "blue_ops"] and meta["versions"]["cagekit"]

    team = load_team(out, meta)
    assert isinstance(team, Sb3Team) and sorted(team.agents) == ["blue_ops", "blue_user"]
    env = CentralisedEnv("paper-small", channel=True, seed=5)
    fresh = team_from_model(model, "maskable-ppo", env)
    par = make_env("paper-small", seed=5)
    obs, _ = par.reset(seed=5)
    while par.agents:
        acts = team.act(obs)
        assert acts == fresh.act(obs)
        # the agents alone (per-step cache primed by act) give the same actions, one forward pass per step
        passes = team.controller.forward_passes
        team.controller.prime(obs)
        assert {a: team.agents[a].get_action(obs[a]) for a in obs} == acts
        assert team.controller.forward_passes == passes + 1
        # a masked-out action is never returned
        assert all(obs[a]["action_mask"][acts[a]] for a in obs)
        obs, *_ = par.step(acts)
    team.end_episode()
    obs, _ = make_env("paper-small", view="team", seed=5).reset(seed=5)
    with pytest.raises(ValueError, match=r"maskable-ppo.*trained on observations of 10 values.*gives it 19"):
        team.act(obs)

    # a truncated model.zip is named, not SB3's bare "No data found in the saved file"
    data = (out / "model.zip").read_bytes()
    (out / "model.zip").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"cannot load the SB3 model .*model.zip: corrupt, truncated"):
        load_team(out, meta)


def test_the_harness_scores_the_joint_policy_on_each_steps_observations(tmp_path):
    """The evaluation harness calls each agent's `get_action` in turn (CAGE's interface); a centralised team
    first hears the whole step (`begin_step`), so every agent acts on its teammates' observations of this
    step (one forward pass per step), exactly as `Sb3Team.act` would, with or without muting."""
    from cagekit.evaluation.cli import build_parser, config_from_args
    from cagekit.evaluation.episode import EpisodeRunner
    from cagekit.evaluation.protocol import episode_seed

    out = tmp_path / "ppo"
    train_sb3("maskable-ppo", "paper-large", steps=128, seed=0, out_dir=out, n_envs=2, progress_bar=False,
              algo_kwargs={"n_steps": 64, "batch_size": 64})
    for mute in ([], ["--mute"]):
        argv = [str(out), str(tmp_path / "eval"), "--episodes", "1", "--lengths", "6", "--reds", "KillChainAgent",
                *mute]
        config, source, _ = config_from_args(build_parser().parse_args(argv))
        runner = EpisodeRunner(config, source)
        env = runner.env(6, "KillChainAgent")
        seed = episode_seed(config.seed, 6, "KillChainAgent", 0)
        controller = (source.inner if mute else source).team_for_episode(env, seed).controller  # the runner's
        passes = controller.forward_passes
        result = runner.run(6, "KillChainAgent", 0)
        assert controller.forward_passes - passes == 6
        if not mute:
            obs, _ = env.reset(seed=seed)
            team = source.team_for_episode(env, seed)
            labels = []
            while env.agents:
                acts = team.act(obs)
                obs, _, _, _, infos = env.step(acts)
                labels.append([[infos[a]["action"], int(infos[a]["bits_sent"])] for a in env.possible_agents])
            assert [step[0] for step in result.actions] == labels
        runner.close()


def test_classic_train_and_load(tmp_path):
    out = tmp_path / "dqn"
    model = train_sb3("dqn", "cage2", steps=200, seed=0, out_dir=out, n_envs=1, layout="classic",
                      progress_bar=False, algo_kwargs={"learning_starts": 50, "buffer_size": 1000},
                      episode_length=30)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["view"] == "classic" and meta["env"]["layout"] == "classic"
    team = load_team(out, meta)
    assert list(team.agents) == ["Blue"]
    env = ClassicCage2Env(seed=0, episode_length=30)
    obs, _ = env.reset(seed=0)
    for _ in range(10):
        a = team.agents["Blue"].get_action(obs)  # the bare 52-bit vector
        expected = int(model.predict(obs, deterministic=True)[0])  # sau off: nothing masked
        assert a == expected and 0 <= a < 145
        obs, *_ = env.step(a)
    # the environment it was trained on, as make_env takes it: ClassicCage2Env's, SAU masks off (make_env's
    # default is on, so settings without sau masked the classic agent's actions as it never trained with)
    assert team.env_settings() == {"scenario": "cage2", "layout": "classic", "sau": False}
    par = make_env(**team.env_settings(), seed=0, episode_length=30)
    obs, _ = par.reset(seed=0)
    assert not par.sau and team.act(obs)["Blue"] == int(model.predict(obs["Blue"]["observation"],
                                                                       deterministic=True)[0])


def test_dqn_flat_joint_action_on_paper_small(tmp_path):
    out = tmp_path / "dqn-small"
    train_sb3("dqn", "paper-small", steps=200, seed=0, out_dir=out, n_envs=2, progress_bar=False,
              algo_kwargs={"learning_starts": 50, "buffer_size": 1000})
    meta = json.loads((out / "meta.json").read_text())
    assert meta["flatten"] and meta["nvec"] == [16, 16]
    team = load_team(out, meta)
    par = make_env("paper-small", seed=0)
    obs, _ = par.reset(seed=0)
    acts = team.act(obs)
    assert set(acts) == {"blue_user", "blue_ops"} and all(obs[a]["action_mask"][acts[a]] for a in acts)


PAPER_REDS = ["KillChainAgent", "ExplorerAgent", "SleepAgent"]


def _copy_reds(venv) -> list[str]:
    return [e.unwrapped.par.engine.red_name for e in venv.envs]


def test_vec_env_copies_play_the_given_reds():
    venv = make_vec_env(4, seed=0, vec="dummy", scenario="paper-small", reds=PAPER_REDS)
    assert _copy_reds(venv) == [*PAPER_REDS, "KillChainAgent"]
    venv.close()
    venv = make_vec_env(2, seed=0, vec="dummy", scenario="paper-small", reds=[None])
    assert _copy_reds(venv) == ["KillChainAgent"] * 2  # None: the scenario's default
    venv.close()
    with pytest.raises(ValueError, match="not both"):
        make_vec_env(2, vec="dummy", scenario="paper-small", red="SleepAgent", reds=PAPER_REDS)


def test_copies_for_reds():
    from cagekit.agents.sb3 import copies_for_reds

    assert [copies_for_reds(n, 3) for n in (1, 2, 3, 4, 5, 6, 8)] == [3, 3, 3, 3, 6, 6, 9]
    assert [copies_for_reds(n, 1) for n in (1, 4)] == [1, 4]
    assert copies_for_reds(3, 2) == 4


def test_train_sb3_red_all_trains_on_every_red(tmp_path, monkeypatch):
    import cagekit.wrappers.gym_views as gym_views

    built = []
    make = gym_views.make_vec_env

    def spy(*args, **kwargs):
        built.append(make(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(gym_views, "make_vec_env", spy)
    out = tmp_path / "ppo-all"
    train_sb3("ppo", "paper-small", steps=48, seed=0, out_dir=out, n_envs=4, progress_bar=False, red="all",
              episode_length=5, algo_kwargs={"n_steps": 16, "batch_size": 16, "n_epochs": 1})
    assert _copy_reds(built[0]) == PAPER_REDS  # 4 copies asked, 3 (one per red) used
    meta = json.loads((out / "meta.json").read_text())
    assert meta["n_envs"] == 3 and meta["env"]["red"] == "all"
    from cagekit.agents.checkpoint import env_settings

    assert "red" not in env_settings(meta)  # the evaluation never builds an env with red="all"
    with pytest.raises(ValueError, match="unknown red agent.*valid: KillChainAgent, ExplorerAgent, SleepAgent"):
        train_sb3("ppo", "paper-small", steps=48, out_dir=tmp_path / "never", red="B_lineAgent")
    assert not (tmp_path / "never").exists()


def _mean_return(team, episodes: int = 20, seed: int = 1000) -> float:
    env = make_env("paper-small", seed=seed)
    total = []
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed + ep)
        ret = 0.0
        while env.agents:
            obs, _, _, _, infos = env.step(team.act(obs))
            ret += infos[env.possible_agents[0]]["env_reward"]
        total.append(ret)
        team.end_episode()
    return float(np.mean(total))


@pytest.mark.slow
def test_ppo_beats_random_on_paper_small(tmp_path):
    out = tmp_path / "ppo"
    train_sb3("ppo", "paper-small", steps=30_000, seed=0, out_dir=out, n_envs=8, progress_bar=False)
    team = load_team(out, json.loads((out / "meta.json").read_text()))
    learned = _mean_return(team)
    random = _mean_return(make_team("random", make_env("paper-small"), seed=0))
    assert learned > random + 10, (learned, random)


# ---------------------------------------------------------------------------------------------------
# our progress bar and resume for SB3 runs


@pytest.fixture
def progress_callbacks(monkeypatch):
    """Every `ProgressCallback` that `train_sb3` makes, for inspection after training."""
    import cagekit.agents.sb3.training as sb3_training

    made = []

    class Recorded(sb3_training.ProgressCallback):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(sb3_training, "ProgressCallback", Recorded)  # where train_sb3 looks it up
    return made


def test_sb3_progress_bar_reports_our_figures(tmp_path, progress_callbacks):
    import re

    from cagekit.agents.run_logs import read_log

    out = tmp_path / "ppo"
    model = train_sb3("ppo", "paper-small", steps=256, seed=0, out_dir=out, n_envs=2, progress_bar=True,
                      algo_kwargs={"n_steps": 32, "batch_size": 64, "n_epochs": 2})
    (callback,) = progress_callbacks
    task = callback.progress.tasks[0]
    assert task.total == 256 and task.completed == model.num_timesteps == 256
    assert callback.progress.live.is_started is False  # stopped at the end
    stats = callback.stats()
    assert stats["return"] == pytest.approx(np.mean([e["r"] for e in model.ep_info_buffer]))
    episodes = len(model.ep_info_buffer)
    assert episodes > 0 and np.isfinite(stats["bits"]) and 0 <= stats["bits"] <= 2 * model.ep_info_buffer[0]["l"]
    assert np.isnan(stats["epsilon"]) and stats["steps_per_s"] > 0  # PPO: no exploration rate
    assert task.fields["stats"] == callback.stats_text
    # PPO has no epsilon: the bar leaves it out rather than showing "eps nan"; it names the run
    assert re.fullmatch(r"return +-?\d+\.\d\d  bits/ep +\d+\.\d\d  [\d,]+ steps/s", callback.stats_text)
    assert task.description == "ppo seed 0"
    # the bits per episode reach the log, so `cagekit plot` draws them for SB3 runs too
    log = read_log(out)
    assert log["bits"].notna().all() and log["bits"].iloc[-1] == pytest.approx(stats["bits"])
    # PPO trains whole rollouts: 200 steps asked train 256, and its bar counted to 200 (full while 56 went on)
    model = train_sb3("ppo", "paper-small", steps=200, seed=0, out_dir=tmp_path / "ppo200", n_envs=2,
                      progress_bar=True, algo_kwargs={"n_steps": 32, "batch_size": 64, "n_epochs": 2})
    task = progress_callbacks[-1].progress.tasks[0]
    assert task.total == task.completed == model.num_timesteps == 256


def test_sb3_resume_needs_a_checkpoint(tmp_path):
    with pytest.raises(ValueError, match="no SB3 checkpoint"):
        train_sb3("ppo", "paper-small", steps=64, out_dir=tmp_path, resume=True)


@pytest.mark.parametrize(("algo", "data", "message"), [
    ("ppo", {"learning_rate": "x"}, "ppo config key 'learning_rate' must be a finite number, got 'x' (str)"),
    ("ppo", {"n_steps": "abc"}, "ppo config key 'n_steps' must be a whole number, got 'abc' (str)"),
    ("ppo", {"batch_size": -4}, "ppo config key 'batch_size' must be >= 1, got -4"),
    ("maskable-ppo", {"gamma": 5}, "maskable-ppo config key 'gamma' must be in [0, 1], got 5"),
    ("ppo", {"normalize_advantage": "no"}, "ppo config key 'normalize_advantage' must be true or false"),
    ("dqn", {"max_grad_norm": "1"}, "dqn config key 'max_grad_norm' must be a finite number"),
    ("dqn", {"exploration_final_eps": 1.5}, "dqn config key 'exploration_final_eps' must be in [0, 1], got 1.5"),
    ("dqn", {"lr": 0.1}, "unknown dqn hyperparameter(s) ['lr']; valid: batch_size"),
    # 0 trained nothing at all (SB3 skips the update); -1 is SB3's "as many as the rollout's steps", -2 the same
    ("dqn", {"gradient_steps": 0}, "dqn config key 'gradient_steps' must be >= 1, or -1 (as many as the rollout's "
                                   "steps), got 0"),
    ("dqn", {"gradient_steps": -2}, "dqn config key 'gradient_steps' must be >= 1, or -1"),
    # off by default (None): typed by what their union allows, once given
    ("ppo", {"target_kl": "x"}, "ppo config key 'target_kl' must be a finite number, got 'x' (str)"),
    ("maskable-ppo", {"target_kl": -0.01}, "maskable-ppo config key 'target_kl' must be > 0, got -0.01"),
    ("ppo", {"clip_range_vf": "0.2"}, "ppo config key 'clip_range_vf' must be a finite number, got '0.2' (str)"),
    ("dqn", {"replay_buffer_kwargs": 3}, "dqn config key 'replay_buffer_kwargs' must be a mapping, got 3 (int)"),
    # a schedule only where SB3 takes one (clip_range_vf): a callable target_kl failed in the first update
    ("ppo", {"target_kl": lambda progress: 0.01}, "ppo config key 'target_kl' must be a finite number, got <function"),
    ("dqn", {"replay_buffer_kwargs": dict}, "dqn config key 'replay_buffer_kwargs' must be a mapping, got <class"),
])
def test_sb3_hyperparameters_of_the_wrong_type_or_range_are_named(algo, data, message):
    """Each ended in SB3's AssertionError or TypeError traceback, after the run's folder was made."""
    with pytest.raises(ValueError, match=re.escape(message)):
        check_hyperparameters(algo, data)


def test_sb3_new_run_into_a_trained_folder_is_refused_and_it_is_left_as_it_was(tmp_path):
    """It silently overwrote model.zip, meta.json and the checkpoints (TensorBoard files piling up)."""
    out = tmp_path / "run"
    train_sb3("maskable-ppo", "paper-small", steps=64, seed=0, out_dir=out, n_envs=1, progress_bar=False)
    before = {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    with pytest.raises(ValueError, match=rf"{out} already holds a trained run \(model.zip, meta.json, "
                                         r"checkpoints/\).*pass resume=True .*or another out_dir"):
        train_sb3("ppo", "paper-small", steps=64, seed=7, out_dir=out, n_envs=1, progress_bar=False)
    assert {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()} == before
    (out / "model.zip").unlink()
    (out / "meta.json").unlink()
    with pytest.raises(ValueError, match=r"already holds a trained run \(checkpoints/\)"):
        train_sb3("ppo", "paper-small", steps=64, seed=7, out_dir=out, n_envs=1, progress_bar=False)


@pytest.mark.parametrize("what", ["model", "replay buffer"])
def test_sb3_files_are_written_whole_a_failed_save_leaves_the_one_before(tmp_path, monkeypatch, what):
    """`save_model` (model.zip, each checkpoint and snapshot) wrote its zip over the file in place, and SB3's
    replay buffer was pickled into its file in place: a kill or a full disk mid-write left the run's model cut
    short. They now go to a sibling `.tmp` renamed over the file: a save that fails leaves the file before it
    (and no `.tmp`)."""
    import pathlib
    import pickle

    from stable_baselines3 import DQN
    from stable_baselines3.common import save_util

    from cagekit.agents.sb3.checkpoints import save_model, save_replay_buffer

    model = DQN("MlpPolicy", "CartPole-v1", buffer_size=64, learning_starts=8, seed=0, device="cpu")
    model.learn(16)
    path = tmp_path / ("model.zip" if what == "model" else "replay_buffer.pkl")
    save = save_model if what == "model" else save_replay_buffer
    save(model, path)
    before = path.read_bytes()
    model.learn(16)  # other weights and transitions: another file

    def cut_short(self, data):  # the disk fills halfway through the zip
        with open(self, "wb") as stream:
            stream.write(data[:len(data) // 2])
        raise OSError(28, "No space left on device")

    def pickled_short(obj, stream, protocol=None):  # ... or through the replay buffer's pickle
        stream.write(pickle.dumps(obj, protocol=protocol)[:100])
        raise OSError(28, "No space left on device")

    if what == "model":
        monkeypatch.setattr(pathlib.Path, "write_bytes", cut_short)
    else:
        monkeypatch.setattr(save_util.pickle, "dump", pickled_short)
    with pytest.raises(OSError, match="No space left"):
        save(model, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_sb3_a_temporary_file_in_checkpoints_is_no_trained_run(tmp_path):
    """A checkpoint is written whole, through a `.tmp` beside it: one left by a kill mid-save is no trained run
    (a new run, or a resume that starts over, refused the folder: "already holds a trained run (checkpoints/)").
    A checkpoint itself still is one."""
    from cagekit.agents.sb3.checkpoints import latest_checkpoint, refuse_trained_folder

    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    (checkpoints / "model_48_steps.zip.tmp").write_bytes(b"PK\x03\x04 cut short")
    (checkpoints / "model_replay_buffer_48_steps.pkl.tmp").write_bytes(b"\x80\x05 cut short")
    refuse_trained_folder(tmp_path)
    assert latest_checkpoint(tmp_path) is None
    (checkpoints / "notes.txt").write_text("not ours")
    with pytest.raises(ValueError, match=r"already holds a trained run \(checkpoints/\)"):
        refuse_trained_folder(tmp_path)


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"seed": "0"}, ValueError, "seed must be an integer >= 0 (or None), got '0'"),
    ({"seed": -1}, ValueError, "seed must be an integer >= 0 (or None), got -1"),
    ({"steps": "64"}, TypeError, "steps must be an integer >= 1 (environment steps to train), got '64' (str)"),
    ({"snapshots": -1}, ValueError, "snapshots must be >= 0"),
    ({"torch_threads": 0}, ValueError, "torch_threads must be >= 1"),
])
def test_sb3_bad_arguments_are_named_before_the_run_folder(tmp_path, kwargs, error, message):
    out = tmp_path / "run"
    with pytest.raises(error, match=re.escape(message)):
        train_sb3("ppo", "paper-small", **{"steps": 64, **kwargs}, out_dir=out, n_envs=1, progress_bar=False)
    assert not out.exists()


def test_sb3_training_threads_follow_the_environment_variable_as_our_learners_do(monkeypatch):
    """train_sb3 trained with 1 thread whatever CAGEKIT_TORCH_THREADS said (train() followed it)."""
    import torch

    import cagekit.agents.sb3.training as sb3_training

    monkeypatch.setattr(sb3_training, "_train_sb3",
                        lambda *args, **kwargs: (torch.get_num_threads(), kwargs["progress_bar"]))
    before = torch.get_num_threads()
    monkeypatch.setenv("CAGEKIT_TORCH_THREADS", "3")
    assert train_sb3("ppo", "paper-small", steps=64, progress_bar=False) == (3, False)
    assert train_sb3("ppo", "paper-small", steps=64, torch_threads=2) == (2, True)
    # `progress`, as train() and evaluate() name it, is the bar's switch too (it went to make_env before)
    assert train_sb3("ppo", "paper-small", steps=64, progress=False, torch_threads=None) == (before, False)
    assert torch.get_num_threads() == before
    monkeypatch.setenv("CAGEKIT_TORCH_THREADS", "0")
    with pytest.raises(ValueError, match="CAGEKIT_TORCH_THREADS must be an integer >= 1"):
        train_sb3("ppo", "paper-small", steps=64, progress_bar=False)


def test_sb3_weights_do_not_depend_on_the_callers_threads_and_their_setting_is_restored(tmp_path):
    """The threads were set after the model was built, so its initial weights followed the caller's setting."""
    import torch

    before = torch.get_num_threads()
    weights = []
    try:
        for threads in (2, 1):
            torch.set_num_threads(threads)
            model = train_sb3("ppo", "paper-small", steps=64, seed=3, out_dir=tmp_path / str(threads), n_envs=1,
                              progress_bar=False)
            assert torch.get_num_threads() == threads
            weights.append(model.policy.state_dict())
    finally:
        torch.set_num_threads(before)
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_sb3_meta_records_torch_settings_and_a_resume_under_others_is_noted_not_refused(tmp_path, capsys):
    """meta.json records the torch threads and CPU kernels an SB3 run trained with, as our learners' does (a fresh
    run's last bits depend on them). Our learners refuse a resume under others, theirs being bit-exact; an SB3
    resume is not (its copies reseeded, torch's random state not restored), so it goes on and says so."""
    import torch

    out = tmp_path / "run"
    kw = dict(seed=0, out_dir=out, n_envs=1, progress_bar=False, episode_length=10,
              algo_kwargs={"n_steps": 32, "batch_size": 32, "n_epochs": 1})
    train_sb3("maskable-ppo", "paper-small", steps=32, torch_threads=1, **kw)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["torch_threads"] == 1 and meta["torch_cpu_kernels"] == torch.backends.cpu.get_cpu_capability()
    capsys.readouterr()
    model = train_sb3("maskable-ppo", "paper-small", steps=64, torch_threads=2, resume=True, **kw)
    assert model.num_timesteps == 64
    assert "continues under other torch settings than it trained with (torch_threads 1 -> 2;" in \
        capsys.readouterr().err
    assert json.loads((out / "meta.json").read_text())["torch_threads"] == 2
    train_sb3("maskable-ppo", "paper-small", steps=96, torch_threads=2, resume=True, **kw)
    assert "other torch settings" not in capsys.readouterr().err


def test_sb3_hyperparameters_keep_what_sb3_takes():
    checked = check_hyperparameters("dqn", {"n_steps": 3.0, "max_grad_norm": 10, "learning_rate": 1})
    assert checked == {"n_steps": 3, "max_grad_norm": 10, "learning_rate": 1} and type(checked["n_steps"]) is int
    assert check_hyperparameters("ppo", None) == {}
    assert check_hyperparameters("ppo", {"target_kl": 0.02, "clip_range_vf": None}) == {"target_kl": 0.02,
                                                                                         "clip_range_vf": None}
    schedule = lambda progress: 0.2 * progress  # noqa: E731 - SB3 takes a schedule where the union allows one
    assert check_hyperparameters("ppo", {"clip_range_vf": schedule, "target_kl": 1}) == {"clip_range_vf": schedule,
                                                                                          "target_kl": 1}
    # learning_rate and clip_range have a number for default, but take a schedule as well (SB3's documented use)
    for algo, key in (("ppo", "learning_rate"), ("maskable-ppo", "clip_range"), ("dqn", "learning_rate")):
        assert check_hyperparameters(algo, {key: schedule}) == {key: schedule}
    for steps in (-1, 1, 4):  # -1: as many gradient steps as the rollout had steps (SB3's documented use)
        assert check_hyperparameters("dqn", {"gradient_steps": steps}) == {"gradient_steps": steps}


def test_what_sb3_itself_refuses_is_named_before_the_run_folder(tmp_path):
    """PPO's batch of 1 passes the ranges (DQN may take it) but not SB3's own check: a ValueError, no folder."""
    out = tmp_path / "run"
    with pytest.raises(ValueError, match=re.escape("ppo refuses its hyperparameters {'batch_size': 1}: `batch_size` "
                                                   "must be greater than 1")):
        train_sb3("ppo", "paper-small", steps=64, out_dir=out, algo_kwargs={"batch_size": 1}, progress_bar=False)
    assert not out.exists()


def test_cli_resume_of_an_interrupted_ppo_run(tmp_path, monkeypatch, capsys):
    import pandas as pd
    from stable_baselines3 import PPO

    import cagekit.agents.sb3 as sb3
    from cagekit.agents.run_logs import read_log
    from cagekit.cli import main

    out = tmp_path / "run"
    config = tmp_path / "ppo.json"
    config.write_text(json.dumps({"n_steps": 32, "batch_size": 64, "n_epochs": 2}))  # 4 copies: 128 steps/rollout
    stepped = sb3.ProgressCallback._on_step

    def ctrl_c_at_256(self):  # Ctrl-C as the second rollout completes, before its update
        if self.model.num_timesteps >= 256:
            raise KeyboardInterrupt
        return stepped(self)

    monkeypatch.setattr(sb3.ProgressCallback, "_on_step", ctrl_c_at_256)
    train = ["train", "--algo", "ppo", "--steps", "512", "--out", str(out), "--config", str(config), "--no-progress",
             "--red", "KillChainAgent"]  # one red: 4 copies (all three reds would make it 3)
    assert main(train) == 130
    assert "interrupted" in capsys.readouterr().out
    assert PPO.load(out / "model.zip").num_timesteps == 256
    first = pd.read_csv(out / "progress.csv")["time/total_timesteps"].tolist()
    assert first == [128]
    monkeypatch.undo()

    assert main(["train", "--resume", str(out), "--no-progress"]) == 0
    assert "resuming" in capsys.readouterr().out
    model = PPO.load(out / "model.zip")
    assert model.num_timesteps == 512
    assert json.loads((out / "meta.json").read_text())["num_timesteps"] == 512
    log = pd.read_csv(out / "progress.csv")
    assert log["time/total_timesteps"].tolist() == [128, 384, 512]  # both parts, in order
    # SB3 logs an update with the next rollout: only the last row has train/ columns, which the resumed
    # part added to the first part's header, the earlier rows padded
    assert log["train/loss"].notna().tolist() == [False, False, True]
    assert log["rollout/ep_rew_mean"].notna().all() and log["time/fps"].notna().all()
    assert read_log(out)["env_steps"].tolist() == [128, 384, 512]
    assert sorted(p.name for p in (out / "checkpoints").glob("model_*_steps.zip"))  # the tenths were saved
    assert any(p.name.startswith("events.out.tfevents") for p in out.iterdir())

    # a finished run is left alone; a larger --steps continues it
    before = (out / "model.zip").read_bytes()
    assert main(["train", "--resume", str(out), "--no-progress"]) == 0
    assert "nothing to do" in capsys.readouterr().out and (out / "model.zip").read_bytes() == before
    assert main(["train", "--resume", str(out), "--steps", "640", "--no-progress"]) == 0
    assert PPO.load(out / "model.zip").num_timesteps == 640
    # a model.zip cut short: the resume says it goes on from the latest tenth instead, not silently
    (out / "model.zip").write_bytes((out / "model.zip").read_bytes()[:100])
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--steps", "768", "--no-progress"]) == 0
    assert (f"model.zip is unreadable (corrupt or cut short): continuing from {out / 'checkpoints'}"
            f"/model_640_steps.zip at 640 steps") in capsys.readouterr().err
    assert PPO.load(out / "model.zip").num_timesteps == 768


def test_cli_resume_of_a_ppo_run_killed_before_its_first_checkpoint_trains_it_from_the_start(tmp_path, monkeypatch,
                                                                                              capsys):
    """A run killed (SIGTERM, kill -9: no Ctrl-C save) before its first tenth left run.json, progress.csv and
    TensorBoard events but no model: --resume refused it ("no SB3 checkpoint") and the same command refused
    the folder ("already holds a run"), so the run could go neither way. It now starts over, with the
    weights of a run never stopped."""
    from stable_baselines3 import PPO

    import cagekit.agents.sb3 as sb3
    from cagekit.cli import main

    config = tmp_path / "ppo.json"
    config.write_text(json.dumps({"n_steps": 32, "batch_size": 64, "n_epochs": 2}))  # 4 copies: checkpoint at 48
    stepped = sb3.ProgressCallback._on_step

    def killed_at_24(self):  # the process dies, no handler runs: nothing is saved
        if self.model.num_timesteps >= 24:
            raise SystemExit(143)
        return stepped(self)

    def train(out):
        return ["train", "--algo", "ppo", "--steps", "512", "--out", str(out), "--config", str(config),
                "--no-progress", "--red", "KillChainAgent"]

    out = tmp_path / "run"
    monkeypatch.setattr(sb3.ProgressCallback, "_on_step", killed_at_24)
    with pytest.raises(SystemExit):
        main(train(out))
    monkeypatch.undo()
    assert not (out / "model.zip").exists() and not any((out / "checkpoints").iterdir())
    assert (out / "run.json").exists() and (out / "progress.csv").exists()
    capsys.readouterr()

    assert main(["train", "--resume", str(out), "--no-progress"]) == 0
    assert "no SB3 checkpoint yet" in capsys.readouterr().out
    assert main(train(tmp_path / "whole")) == 0
    resumed, whole = (PPO.load(run / "model.zip") for run in (out, tmp_path / "whole"))
    assert resumed.num_timesteps == 512
    params = whole.policy.state_dict()
    assert all(np.array_equal(v, params[k]) for k, v in resumed.policy.state_dict().items())


def test_cli_resume_of_a_ppo_run_killed_while_saving_its_first_checkpoint_trains_it_from_the_start(tmp_path, capsys):
    """Killed while its first checkpoint was being saved, a run holds that checkpoint cut short and nothing else.
    The resume passed over it ("no SB3 checkpoint yet ... training it from the start"), then the new run refused
    the folder as one holding a trained run (checkpoints/) and said to pass resume=True, which it had been: the
    run could go neither way. It starts over, as with no checkpoint at all, to the weights of a run never stopped."""
    from stable_baselines3 import PPO

    from cagekit.cli import main

    config = tmp_path / "ppo.json"
    config.write_text(json.dumps({"n_steps": 32, "batch_size": 64, "n_epochs": 2}))  # 4 copies: checkpoint at 48

    def train(out):
        return ["train", "--algo", "ppo", "--steps", "512", "--out", str(out), "--config", str(config),
                "--no-progress", "--red", "KillChainAgent"]

    out = tmp_path / "run"
    assert main(train(out)) == 0
    for name in ("model.zip", "meta.json"):  # written at the end: a run killed at its first checkpoint has neither
        (out / name).unlink()
    first = out / "checkpoints" / "model_48_steps.zip"
    for later in (out / "checkpoints").iterdir():
        if later != first:
            later.unlink()
    first.write_bytes(first.read_bytes()[:1000])  # cut short by the kill
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--no-progress"]) == 0, capsys.readouterr().err
    assert "training it from the start" in capsys.readouterr().out
    assert main(train(tmp_path / "whole")) == 0
    resumed, whole = (PPO.load(run / "model.zip") for run in (out, tmp_path / "whole"))
    assert resumed.num_timesteps == 512 and PPO.load(first).num_timesteps == 48  # the cut checkpoint made anew
    params = whole.policy.state_dict()
    assert all(np.array_equal(v, params[k]) for k, v in resumed.policy.state_dict().items())


def test_dqn_resume_keeps_its_replay_buffer(tmp_path, monkeypatch, progress_callbacks):
    from stable_baselines3 import DQN

    import cagekit.agents.sb3 as sb3

    stepped = sb3.ProgressCallback._on_step
    stop_at = [200]

    def ctrl_c(self):
        if stop_at[0] is not None and self.model.num_timesteps >= stop_at[0]:
            raise KeyboardInterrupt
        return stepped(self)

    monkeypatch.setattr(sb3.ProgressCallback, "_on_step", ctrl_c)
    out = tmp_path / "dqn"
    common = {"seed": 0, "out_dir": out, "n_envs": 2, "progress_bar": False,  # epsilon 1 -> 0.05 over the run
              "algo_kwargs": {"learning_starts": 50, "buffer_size": 1000, "exploration_fraction": 1.0}}
    first = train_sb3("dqn", "paper-small", steps=400, **common)
    assert first.num_timesteps == 200 and first.replay_buffer.size() * 2 >= 196
    assert progress_callbacks[0].progress is None  # progress_bar=False: no bar
    assert progress_callbacks[0].stats()["epsilon"] == pytest.approx(first.exploration_rate)
    assert 0.45 < first.exploration_rate < 0.6  # half way down the schedule
    assert (out / "replay_buffer.pkl").exists()
    assert len(list((out / "checkpoints").glob("model_replay_buffer_*_steps.pkl"))) == 1  # the latest only
    loaded = DQN.load(out / "model.zip")
    loaded.load_replay_buffer(out / "replay_buffer.pkl")
    assert loaded.replay_buffer.size() == first.replay_buffer.size() > 0

    stop_at[0] = 208  # the resumed run continues the schedule (a restarted one would be near 1 again)
    again = train_sb3("dqn", "paper-small", steps=400, resume=True, **common)
    assert again.num_timesteps == 208 and 0.45 < again.exploration_rate < 0.55

    stop_at[0] = None
    model = train_sb3("dqn", "paper-small", steps=400, resume=True, **common)
    assert model.num_timesteps == 400 and model.exploration_rate == pytest.approx(0.05)
    assert model.replay_buffer.size() * 2 >= 392  # the earlier parts' transitions were kept (else 192)


def test_dqn_resume_passes_over_a_checkpoint_or_replay_buffer_cut_short_by_a_kill(tmp_path, capsys):
    """A kill while a checkpoint is saved leaves its zip or its replay buffer cut short. The latest
    checkpoint's zip was taken all the same (the resume refused, naming it corrupt, every time: the run was
    stuck), and a replay buffer cut short raised SB3's bare UnpicklingError, a traceback. Now the checkpoint
    before it is taken, and the buffer is treated as one not saved, with a warning."""
    from stable_baselines3 import DQN

    from cagekit.agents.sb3.checkpoints import latest_checkpoint

    out = tmp_path / "dqn"
    common = {"seed": 0, "out_dir": out, "n_envs": 2, "progress_bar": False,
              "algo_kwargs": {"learning_starts": 50, "buffer_size": 1000}}
    train_sb3("dqn", "paper-small", steps=200, **common)
    for name in ("model.zip", "replay_buffer.pkl", "meta.json"):  # killed before the end: none of these
        (out / name).unlink()
    checkpoints = out / "checkpoints"
    (buffer,) = checkpoints.glob("model_replay_buffer_*_steps.pkl")
    assert buffer.name == "model_replay_buffer_200_steps.pkl"
    buffer.write_bytes(buffer.read_bytes()[:1000])  # cut short
    capsys.readouterr()
    model = train_sb3("dqn", "paper-small", steps=240, resume=True, **common)
    assert model.num_timesteps == 240
    assert f"the replay buffer {buffer} is unreadable" in capsys.readouterr().out

    for name in ("model.zip", "replay_buffer.pkl", "meta.json"):
        (out / name).unlink()
    earlier, latest = sorted(checkpoints.glob("model_*_steps.zip"), key=lambda p: int(p.name.split("_")[1]))[-2:]
    assert latest.name == "model_224_steps.zip"  # a tenth of 240 steps is 12 steps of the 2 copies
    latest.write_bytes(latest.read_bytes()[:1000])  # cut short
    assert latest_checkpoint(out)[0] == earlier
    model = train_sb3("dqn", "paper-small", steps=240, resume=True, **common)
    assert model.num_timesteps == 240 and DQN.load(out / "model.zip").num_timesteps == 240


def test_ppo_rounds_steps_up_to_whole_rollouts_and_says_so(tmp_path, capsys):
    """PPO trains in rollouts of n_steps per copy: --steps 64 is one rollout of 128, and the checkpoints
    still come every tenth of what is trained (ten at most, not one every 6 steps)."""
    out = tmp_path / "ppo"
    model = train_sb3("ppo", "paper-small", steps=64, seed=0, out_dir=out, n_envs=1, progress_bar=False,
                      algo_kwargs={"n_steps": 128, "batch_size": 64, "n_epochs": 1})
    assert model.num_timesteps == 128
    assert "ppo trains in rollouts of 128 env steps, so 64 steps become 128" in capsys.readouterr().out
    assert len(list((out / "checkpoints").glob("*.zip"))) <= 10


def test_gym_views_refuse_float_and_misshapen_actions():
    """int() made 1.7 play action 1 and dropped the extra entries of a vector."""
    central = CentralisedEnv("paper-small", channel=True, seed=0)
    central.reset(seed=0)
    for bad in (np.array([1.7, 2.2]), np.array([1, 2, 3])):
        with pytest.raises(ValueError, match="joint action .*: expected 2 integers"):
            central.step(bad)
    central.step(np.array([1, 2]))
    classic = ClassicCage2Env(seed=0)
    classic.reset(seed=0)
    for bad in (3.9, np.array([3, 99])):
        with pytest.raises(ValueError, match="action .*: expected 1 integer"):
            classic.step(bad)
    classic.step(np.int64(3))


@pytest.mark.parametrize("flatten", [False, True])
def test_an_action_mask_of_the_wrong_length_is_named_as_an_observation_is(flatten):
    """The team checked each agent's observation size but not its mask's: one agent's mask an entry short and
    another's an entry long made a joint mask of the right size, every action after the first masked wrongly."""
    from sb3_contrib import MaskablePPO
    from stable_baselines3.common.logger import Logger

    env = CentralisedEnv("paper-small", channel=True, flatten=flatten, seed=0)
    model = MaskablePPO("MlpPolicy", env, seed=0, device="cpu")
    model.set_logger(Logger(folder=None, output_formats=[]))
    team = team_from_model(model, "maskable-ppo", env)
    obs, _ = env.par.reset(seed=0)
    first, second = env.par.possible_agents[:2]
    assert set(team.act(obs)) == set(env.par.possible_agents)  # the env's own masks: accepted
    n = len(obs[first]["action_mask"])
    wrong = {**obs, first: {**obs[first], "action_mask": obs[first]["action_mask"][:-1]},
             second: {**obs[second], "action_mask": np.append(obs[second]["action_mask"], 1)}}
    team.end_episode()
    with pytest.raises(ValueError, match=f"agent '{first}' got an action mask of {n - 1} values, expected {n}"):
        team.act(wrong)


def test_a_team_trained_with_sau_plays_a_bare_vector_with_its_mask(tmp_path):
    """CAGE's loop hands agents the bare vector. The SB3 team then chose among every action, masked ones too,
    which the environment plays as Sleep; it now rebuilds the SAU mask from the vector, as the DIAL and QMix
    teams do, whether made from a model in memory or loaded from its checkpoint (meta.json's env settings)."""
    out = tmp_path / "ppo"
    model = train_sb3("maskable-ppo", "paper-small", steps=128, seed=0, out_dir=out, n_envs=1,
                      progress_bar=False, algo_kwargs={"n_steps": 64, "batch_size": 64})
    loaded = load_team(out, json.loads((out / "meta.json").read_text()))
    in_memory = team_from_model(model, "maskable-ppo", CentralisedEnv("paper-small", channel=True, seed=0))
    for team in (loaded, in_memory):
        env = make_env("paper-small", red="KillChainAgent", seed=5)
        obs, _ = env.reset(seed=5)
        masked = 0
        while env.agents:
            actions = team.act(obs)
            assert team.act({n: o["observation"] for n, o in obs.items()}) == actions
            masked += sum(int(not o["action_mask"].all()) for o in obs.values())
            obs, *_ = env.step(actions)
        assert masked > 0  # the masks did mask something


def test_two_processes_training_one_seed_write_the_same_model_zips(tmp_path):
    """SB3's model.zip (and each checkpoint and snapshot) differed between two runs of one seed with equal
    weights: it held the time `learn` started, the wall-clock seconds of each recent episode (the Monitor's "t"),
    its entries' dates and the memory addresses in its readable descriptions of pickled classes, so a run could
    not be checked by its files' digests. `save_model` writes none of them; the model still loads and resumes."""
    import hashlib
    import subprocess
    import sys

    code = ("import sys\n"
            "from cagekit.agents.sb3 import train_sb3\n"
            "train_sb3('maskable-ppo', 'paper-small', steps=256, seed=0, out_dir=sys.argv[1] + '/ppo', n_envs=2,"
            " progress_bar=False, snapshots=2, episode_length=10, algo_kwargs={'n_steps': 64, 'batch_size': 64})\n"
            "train_sb3('dqn', 'paper-small', steps=120, seed=0, out_dir=sys.argv[1] + '/dqn', n_envs=2,"
            " progress_bar=False, episode_length=10, algo_kwargs={'learning_starts': 40, 'buffer_size': 500})\n")

    def digests(folder):
        return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(folder.rglob("*")) if p.suffix in (".zip", ".pkl", ".json")}

    for run in ("a", "b"):
        subprocess.run([sys.executable, "-c", code, str(tmp_path / run)], check=True, capture_output=True)
    a, b = digests(tmp_path / "a"), digests(tmp_path / "b")
    assert {"ppo/model.zip", "dqn/model.zip",
            "dqn/replay_buffer.pkl"} <= set(a) and any(k.startswith("dqn/checkpoints/") for k in a)
    assert any(k.startswith("ppo/snapshots/") for k in a), sorted(a)
    assert a == b
    model = train_sb3("dqn", "paper-small", steps=160, seed=0, out_dir=tmp_path / "a" / "dqn", n_envs=2,
                      progress_bar=False, episode_length=10, resume=True)
    assert model.num_timesteps == 160


def test_saving_a_model_leaves_its_episode_times_in_the_live_model(tmp_path):
    """`save_model` dropped the Monitor's "t" (each recent episode's wall-clock seconds) from the model's own
    `ep_info_buffer` to keep it out of the zip: the model a run returned, or one saved mid-training, lost them.
    The zip still holds none; the live model keeps them."""
    from stable_baselines3 import DQN

    from cagekit.agents.sb3.checkpoints import save_model

    model = train_sb3("dqn", "paper-small", steps=40, seed=0, out_dir=tmp_path / "run", n_envs=2,
                      progress_bar=False, episode_length=10, algo_kwargs={"learning_starts": 20, "buffer_size": 100})
    live = list(model.ep_info_buffer)  # the run saved its checkpoints and model.zip from this model
    assert live and all("t" in info for info in live), live
    save_model(model, tmp_path / "again.zip")
    assert list(model.ep_info_buffer) == live and all("t" in info for info in model.ep_info_buffer)
    for saved in (tmp_path / "run" / "model.zip", tmp_path / "again.zip"):
        assert [dict(info) for info in DQN.load(saved, device="cpu").ep_info_buffer] == [
            {k: v for k, v in info.items() if k != "t"} for info in live]


def test_a_resume_with_an_unreadable_model_zip_and_no_checkpoint_says_what_to_do_and_changes_nothing(tmp_path,
                                                                                                     capsys):
    """A run whose model.zip was unreadable and which had no checkpoint left could not be resumed ("no SB3
    checkpoint there; its model.zip is unreadable"), without a word of what to do: moving model.zip away still
    left the folder refused as a trained run (its meta.json), and the failed resume had rewritten run.json with
    the --steps it was given. It now names the files and the commands that train it again from the start, and
    leaves every file as it was."""
    from stable_baselines3 import PPO

    from cagekit.cli import main

    config = tmp_path / "ppo.json"
    config.write_text(json.dumps({"n_steps": 32, "batch_size": 64, "n_epochs": 2}))
    out = tmp_path / "run"
    assert main(["train", "--algo", "ppo", "--steps", "256", "--out", str(out), "--config", str(config),
                 "--no-progress", "--red", "KillChainAgent"]) == 0
    for checkpoint in (out / "checkpoints").iterdir():
        checkpoint.unlink()
    model, meta = out / "model.zip", out / "meta.json"
    model.write_bytes(model.read_bytes()[:1000])  # cut short
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--steps", "512", "--no-progress"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert (f"cannot resume {out}: its model.zip is unreadable (corrupt or cut short) and it has no readable "
            f"checkpoint") in err and "nothing was changed" in err
    assert f"(mv {model} {model}.unreadable; mv {meta} {meta}.old): then `cagekit train --resume {out}`" in err
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before  # run.json's 256 steps too
    model.rename(f"{model}.unreadable")  # as the message says
    meta.rename(f"{meta}.old")
    assert main(["train", "--resume", str(out), "--no-progress"]) == 0
    assert PPO.load(model).num_timesteps == 256 and (out / "model.zip.unreadable").read_bytes() == before[model]


def test_sb3_snapshots_wait_for_an_update_since_the_last(tmp_path):
    """SB3's snapshots were taken at the step each K-th of the run passed, whatever the model had learnt: on this
    PPO run of four rollouts, those at 32 and 64 steps were the untrained policy and each later pair one policy
    twice, and DQN's first came before its learning_starts. Each now waits for an update since the last (or the
    start); K-ths that lie rollouts apart are taken where they were."""
    import torch
    from stable_baselines3 import PPO

    settings = {"n_envs": 2, "progress_bar": False, "episode_length": 10}
    ppo = {"n_steps": 32, "batch_size": 64}  # rollouts of 64 steps, an update after each
    train_sb3("ppo", "paper-small", steps=256, seed=0, out_dir=tmp_path / "ppo", snapshots=8, algo_kwargs=ppo,
              **settings)
    snaps = sorted((tmp_path / "ppo" / "snapshots").iterdir())
    assert [p.name for p in snaps] == ["step000000066", "step000000130", "step000000194"]
    weights = [PPO.load(p / "model.zip", device="cpu").policy.state_dict() for p in snaps]
    for a, b in zip(weights, weights[1:], strict=False):
        assert any(not torch.equal(a[k], b[k]) for k in a)  # each a policy of its own
    train_sb3("ppo", "paper-small", steps=64, seed=0, out_dir=tmp_path / "ppo64", algo_kwargs=ppo, **settings)
    first = PPO.load(tmp_path / "ppo64" / "model.zip", device="cpu").policy.state_dict()
    assert all(torch.equal(weights[0][k], first[k]) for k in first)  # the policy of the first update
    train_sb3("ppo", "paper-small", steps=640, seed=0, out_dir=tmp_path / "ppo640", snapshots=5, algo_kwargs=ppo,
              **settings)
    assert [p.name for p in sorted((tmp_path / "ppo640" / "snapshots").iterdir())] == [
        "step000000128", "step000000256", "step000000384", "step000000512"]  # two rollouts apart: at the K-ths
    train_sb3("dqn", "paper-small", steps=120, seed=0, out_dir=tmp_path / "dqn", snapshots=4,
              algo_kwargs={"learning_starts": 40, "buffer_size": 500}, **settings)
    steps = [int(p.name.removeprefix("step")) for p in sorted((tmp_path / "dqn" / "snapshots").iterdir())]
    assert steps == [50, 60, 90]  # the first after DQN's first update (at 48 steps, past 40), not at 30
    assert json.loads((tmp_path / "dqn" / "snapshots" / "step000000050" / "meta.json").read_text())[
        "num_timesteps"] == 50
