"""DIAL: DRU, cross-agent gradients, channel cost, masks, checkpoints, exact resume, and a short training run."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

import cagekit
from cagekit.agents import checkpoint as ckpt
from cagekit.agents import make_team
from cagekit.agents.dial import (
    CNet,
    DialConfig,
    DialLearner,
    EpisodeBatch,
    TeamLayout,
    Unroll,
    dial_loss,
    dru,
    evaluate,
    lambda_targets,
    load_team,
    synthetic_batch,
)
from cagekit.agents.run_logs import plot_runs
from cagekit.agents.training import Learner, make_learner, train

pytestmark = pytest.mark.usefixtures("one_torch_thread")


TINY = {"batch_episodes": 2, "hidden": 16, "target_update": 2, "eps_anneal_steps": 100}


def tiny(algo: str = "dial-sau", seed: int = 0, simulator: str = "engine", **extra) -> DialLearner:
    return DialLearner(algo, "paper-small", seed, {**TINY, **extra}, episode_length=5, simulator=simulator)


# DRU --------------------------------------------------------------------------------------------
def test_dru_training_is_noisy_and_execution_is_hard():
    logits = torch.tensor([-3.0, -0.1, 0.0, 0.1, 3.0])
    hard = dru(logits, 2.0, training=False)
    assert hard.tolist() == [0.0, 0.0, 0.0, 1.0, 1.0]
    torch.manual_seed(0)
    a, b = dru(logits, 2.0, training=True), dru(logits, 2.0, training=True)
    assert not torch.equal(a, b)  # fresh noise each call
    assert ((a > 0) & (a < 1)).all()
    noise = torch.zeros(5)
    assert torch.allclose(dru(logits, 2.0, True, noise), torch.sigmoid(logits))
    many = dru(torch.zeros(20_000), 2.0, training=True)
    assert 0.2 < float(many.std()) < 0.4  # sigmoid(N(0, 4)) spreads widely


# gradients across agents -----------------------------------------------------------------------
def _layout(channel: bool = True) -> TeamLayout:
    env = cagekit.make_env("paper-small", channel=channel, seed=0)
    return TeamLayout(tuple(cagekit.agents.team_slots(env)))


def _message_grad(channel: bool) -> float:
    """Grad of agent 1's Q at t=1 w.r.t. agent 0's message logit at t=0, through the head's message row."""
    layout = _layout(channel)
    config = DialConfig(hidden=16, gate_messages=False, norm="layer")
    torch.manual_seed(0)
    net = CNet(layout.dims(), config)
    batch = synthetic_batch(layout, batch=3, steps=2, seed=1)
    unroll = Unroll(net, layout, config)
    z = unroll.embed(batch.hosts, batch.blocks, batch.prev)
    hidden = net.init_hidden(3 * layout.n_agents)
    q0, logit0, soft0, hidden = unroll.step(z[0], torch.zeros(3, 2), batch.noise[0], batch.gate[0], hidden)
    if logit0 is not None:
        logit0.retain_grad()
    q1, _, _, _ = unroll.step(z[1], soft0, batch.noise[1], batch.gate[1], hidden)
    net.zero_grad()
    loss = q1[:, 1].pow(2).sum()  # agent 1 only, step 1
    loss.backward()
    if logit0 is None:
        return 0.0
    # the message logit is the last output row of the head
    head_row = net.head[-1].weight.grad[-1]
    assert float(head_row.abs().sum()) > 0  # reaches the sender's message parameters
    return float(logit0.grad[:, 0].abs().sum())  # agent 0's step-0 logit


@pytest.mark.parametrize("norm", ["layer", "batch", "none"])
@pytest.mark.parametrize(("channel", "view"), [(True, "own"), (False, "own"), (True, "team")])
def test_an_acting_agents_forward_is_the_networks_step_bit_for_bit(norm, channel, view):
    """`CNet.act` (an acting agent's step: each layer called by its forward) is `CNet.step`, to the bit, for every
    normalisation, with and without a channel and with a team view's teammate bits."""
    env = cagekit.make_env("paper-small", channel=channel, view=view, seed=0)
    layout = TeamLayout(tuple(cagekit.agents.team_slots(env)))
    torch.manual_seed(0)
    net = CNet(layout.dims(), DialConfig(hidden=32, norm=norm))
    for module in net.modules():  # running statistics other than the initial 0 and 1
        if isinstance(module, torch.nn.BatchNorm1d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
    net.eval()
    generator = np.random.default_rng(0)
    hidden_step = hidden_act = net.init_hidden(1)
    with torch.inference_mode():
        for t in range(6):
            a = t % layout.n_agents
            vector = generator.integers(0, 2, size=layout.slots[a].obs_size)
            idx, blk, recv, _ = layout.encode_agent(a, vector[None])
            inputs = (torch.tensor([a]), torch.from_numpy(idx), torch.from_numpy(blk), torch.tensor([t % 3]),
                      torch.from_numpy(recv) if layout.channel else None)
            q, logit, hidden_step = net.step(*inputs, hidden_step)
            q_act, logit_act, hidden_act = net.act(*inputs, hidden_act)
            assert torch.equal(q, q_act) and torch.equal(hidden_step, hidden_act)
            assert (logit is None and logit_act is None) or torch.equal(logit, logit_act)
    assert (net.team_embed is not None) == (view == "team")


def test_receiver_loss_reaches_sender_message():
    assert _message_grad(channel=True) > 0


def test_nocomm_has_no_message_path():
    layout = _layout(channel=False)
    net = CNet(layout.dims(), DialConfig(hidden=16))
    assert net.msg_mlp is None and net.head[-1].out_features == layout.max_defence
    assert _message_grad(channel=False) == 0.0


def test_loss_gradient_into_message_head_in_learner():
    learner = tiny(gate_messages=False)
    batch = synthetic_batch(learner.layout, 2, 5, seed=3)
    loss, _ = dial_loss(learner.net, learner.target, learner.layout, learner.config, batch, message_cost=0.0)
    learner.net.zero_grad()
    loss.backward()
    assert float(learner.net.head[-1].weight.grad[-1].abs().sum()) > 0
    assert float(learner.net.msg_mlp[1].weight.grad.abs().sum()) > 0


def test_channel_cost_lowers_soft_message():
    def mean_soft(cost: float) -> float:
        learner = tiny(gate_messages=False, lr=1e-2)
        batch = synthetic_batch(learner.layout, 2, 5, seed=4)
        for _ in range(15):
            loss, _ = dial_loss(learner.net, learner.target, learner.layout, learner.config, batch, cost)
            learner.optimizer.zero_grad()
            loss.backward()
            learner.optimizer.step()
        with torch.no_grad():
            _, logits, _ = Unroll(learner.net, learner.layout, learner.config).run(batch)
        return float(torch.sigmoid(logits).mean())

    assert mean_soft(50.0) < mean_soft(0.0) - 0.05


# masks and execution ---------------------------------------------------------------------------
def test_masked_actions_never_chosen_with_full_exploration():
    learner = tiny(batch_episodes=4, eps_start=1.0, eps_end=1.0)
    learner.episode_length = 30
    for env in learner.envs:
        env.episode_length = 30
    for u in range(3):
        batch = learner.collect(epsilon=1.0, update_index=u)
        chosen = batch.masks.gather(-1, batch.actions.unsqueeze(-1)).squeeze(-1)
        assert bool(chosen.all())
        assert len(torch.unique(batch.actions)) > 3  # it does explore
    for env in learner.envs:
        assert all(v == 0 for v in env._invalid.values())


def test_greedy_team_respects_masks_and_channel():
    learner = tiny()
    team = learner.team()
    env = cagekit.make_env("paper-small", episode_length=10, seed=3)
    obs, _ = env.reset(seed=3)
    while env.agents:
        actions = team.act(obs)
        for name, act in actions.items():
            assert obs[name]["action_mask"][act] == 1
        obs, _, _, _, info = env.step(actions)
        assert all(i["invalid_action"] is False for i in info.values())
    nocomm = tiny("nocomm").team()
    env = cagekit.make_env("paper-small", channel=False, episode_length=5, seed=3)
    obs, _ = env.reset(seed=1)
    acts = nocomm.act(obs)
    assert all(0 <= a < env.action_space(n).n for n, a in acts.items())


def test_decentralised_agents_play_the_episodes_training_collected():
    """Without exploration or DRU noise, the greedy team (each agent on its own observation, its own memory of
    its last action) plays exactly the actions and bits the learner's collection recorded on the same episodes:
    what is trained is what is executed (previous action encoded alike, messages gated alike)."""
    from cagekit.agents.dial import seeds_for

    learner = tiny(sigma=0.0, norm="layer", batch_episodes=3, gate_messages=True)
    learner.episode_length = 12
    for env in learner.envs:
        env.episode_length = 12
    batch = learner.collect(epsilon=0.0, update_index=0)
    team = learner.team()
    for b, (env, seed) in enumerate(zip(learner.envs, seeds_for(0, 0, 3), strict=True)):
        obs, _ = env.reset(seed=seed)
        team.end_episode()
        for t in range(12):
            actions = team.act(obs)
            obs, _, _, _, infos = env.step(actions)
            for a, name in enumerate(env.possible_agents):
                defence, bit = divmod(int(actions[name]), 2)
                assert (defence, bit) == (int(batch.actions[t, b, a]), int(batch.bits[t, b, a])), (b, t, name)
    assert batch.bits.any() and not batch.gate[:12].all()  # messages sent, and some steps gated
    assert len(torch.unique(batch.actions)) > 2


# checkpoints -----------------------------------------------------------------------------------
def _q_values(team, env, seed=7, steps=4) -> list[torch.Tensor]:
    obs, _ = env.reset(seed=seed)
    team.end_episode()
    out = []
    for _ in range(steps):
        acts = {}
        for name, agent in team.agents.items():
            d, bit, q, logit = agent.step(obs[name])
            out.append(torch.cat([q, torch.tensor([logit])]))
            acts[name] = agent.slot.encode(d, bit)
        obs, *_ = env.step(acts)
    return out


def test_checkpoint_round_trip(tmp_path):
    learner = tiny()
    learner.update()
    learner.save(tmp_path / "ck")
    meta = json.loads((tmp_path / "ck" / "meta.json").read_text())
    assert meta["algo"] == "dial-sau" and meta["scenario"] == "paper-small"
    assert meta["env"]["channel"] is True and meta["env"]["sau"] is True and "message_cost" in meta["env"]
    assert meta["cagekit_version"] == cagekit.__version__ and len(meta["slots"]) == 2
    torch.load(tmp_path / "ck" / "model.pt", weights_only=True)
    torch.load(tmp_path / "ck" / "trainer.pt", weights_only=True)
    env = cagekit.make_env("paper-small", episode_length=5, seed=1)
    a = _q_values(learner.team(), env)
    loaded = cagekit.agents.load_team(tmp_path / "ck")
    b = _q_values(loaded, env)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    # the environment it was trained for, as make_env takes it; another shape is named, not a numpy reshape error
    assert loaded.env_settings() == {"scenario": "paper-small", "channel": True, "sau": True,
                                     "message_cost": meta["env"]["message_cost"]}
    for shape, given in (({"channel": False}, 9), ({"view": "team"}, 19)):
        obs, _ = cagekit.make_env("paper-small", episode_length=5, **shape).reset(seed=0)
        with pytest.raises(ValueError, match=rf"dial-sau.*blue_user.*10 values \(channel on, view=own\).*gives it "
                                             rf"{given}.*make_env\(\*\*team.env_settings\(\)\)"):
            loaded.act(obs)
    # a learner restored from it continues identically
    again = DialLearner.from_checkpoint(tmp_path / "ck")
    assert again.updates == learner.updates and again.env_steps == learner.env_steps
    for k, v in learner.net.state_dict().items():
        assert torch.equal(v, again.net.state_dict()[k])


def test_a_learner_from_weights_alone_starts_with_its_target_equal_to_them(tmp_path):
    """A policy snapshot has no trainer state: the rebuilt learner's target network is its weights, not the
    fresh network the constructor drew (whose values the first updates would bootstrap from)."""
    learner = tiny(seed=4)
    learner.update()
    learner.save_policy(tmp_path / "snap")
    again = DialLearner.from_checkpoint(tmp_path / "snap")
    fresh = tiny(seed=4).target.state_dict()
    for k, v in learner.net.state_dict().items():
        assert torch.equal(again.net.state_dict()[k], v) and torch.equal(again.target.state_dict()[k], v)
    assert any(not torch.equal(fresh[k], v) for k, v in learner.net.state_dict().items() if v.is_floating_point())


def test_checkpoint_errors(tmp_path):
    learner = tiny()
    learner.save(tmp_path / "ck")
    with pytest.raises(ValueError, match="paper-small.*paper-large"):
        load_team(tmp_path / "ck", scenario="paper-large")
    other = DialLearner("dial-sau", "paper-large", 0, TINY, episode_length=5)
    with pytest.raises(ValueError, match="paper-small.*paper-large|paper-large.*paper-small"):
        other.load_state_dict(ckpt.load_trainer_state(tmp_path / "ck"))
    model = tmp_path / "ck" / "model.pt"
    kept = model.read_bytes()
    model.write_bytes(b"")  # torch says only "EOFError"
    with pytest.raises(ValueError, match=r"model.pt: the file is empty \(0 bytes"):
        cagekit.agents.load_team(tmp_path / "ck")
    model.write_bytes(kept[:100])
    with pytest.raises(ValueError, match="model.pt"):
        cagekit.agents.load_team(tmp_path / "ck")
    (tmp_path / "ck" / "trainer.pt").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="trainer.pt") as refused:
        ckpt.load_trainer_state(tmp_path / "ck")
    assert "weights_only" not in str(refused.value)  # torch's advice to unpickle it anyway is not passed on
    # a run with weights but no training state is not silently started over (its weights overwritten)
    (tmp_path / "ck" / "trainer.pt").unlink()
    before = model.read_bytes()
    with pytest.raises(ValueError, match="no trainer.pt"):
        train(tiny(), 20, tmp_path / "ck", resume=True, progress=False)
    assert model.read_bytes() == before
    (tmp_path / "ck" / "meta.json").write_text("{not json")
    with pytest.raises(ValueError, match="meta.json"):
        cagekit.agents.load_team(tmp_path / "ck")


def test_rng_state_round_trip():
    import random

    state = ckpt.rng_state()
    a = (torch.rand(3), np.random.rand(3), random.random())
    ckpt.set_rng_state(state)
    b = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]


def test_config_from_file(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"gamma": 0.85, "batch_episodes": 8}))
    config = DialConfig.from_file(path)
    assert config.gamma == 0.85 and config.batch_episodes == 8 and config.lr == 5e-4
    yml = tmp_path / "c.yaml"
    yml.write_text("sigma: 1.5\nnorm: layer\n")
    assert DialConfig.from_file(yml).sigma == 1.5
    with pytest.raises(ValueError, match="unknown"):
        DialConfig.from_dict({"gama": 0.9})
    defaults = DialConfig()
    assert (defaults.lr, defaults.momentum, defaults.gamma, defaults.sigma, defaults.hidden) == (5e-4, 0.05, 0.9, 2.0,
                                                                                                128)


# training loop ---------------------------------------------------------------------------------
def _weights(learner) -> dict[str, torch.Tensor]:
    return {**{f"net.{k}": v for k, v in learner.net.state_dict().items()},
            **{f"target.{k}": v for k, v in learner.target.state_dict().items()}}


@pytest.mark.parametrize("extra", [{}, {"replay_batches": 3, "grad_steps": 2}, {"mixer": True},
                                   {"replay_batches": 3, "bootstrap_truncation": True}],
                         ids=["on-policy", "replay", "mixer", "replay-bootstrap"])
def test_resume_equals_uninterrupted(tmp_path, extra):
    steps_per_update = 2 * 5
    full = tiny(seed=5, **extra)
    assert isinstance(full, Learner)
    train(full, 4 * steps_per_update, tmp_path / "full", checkpoint_every=1, progress=False)
    half = tiny(seed=5, **extra)
    train(half, 2 * steps_per_update, tmp_path / "half", checkpoint_every=0, progress=False)
    resumed = tiny(seed=5, **extra)
    summary = train(resumed, 4 * steps_per_update, tmp_path / "half", checkpoint_every=0, resume=True, progress=False)
    grad_steps = extra.get("grad_steps", 1)
    assert summary["new_updates"] == 2 * grad_steps and resumed.updates == 4 * grad_steps
    a, b = _weights(full), _weights(resumed)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    for k, v in full.optimizer.state_dict()["state"].items():
        assert all(torch.equal(v[n], resumed.optimizer.state_dict()["state"][k][n]) for n in v if torch.is_tensor(v[n]))
    import pandas as pd

    log_full, log_half = pd.read_csv(tmp_path / "full" / "log.csv"), pd.read_csv(tmp_path / "half" / "log.csv")
    assert list(log_half["update"]) == [grad_steps * k for k in (1, 2, 3, 4)]
    assert np.allclose(log_full["return"], log_half["return"])
    assert (tmp_path / "full" / "tb").is_dir()
    png = plot_runs([tmp_path / "full", tmp_path / "half"], tmp_path / "curves.png")
    assert png.stat().st_size > 1000


def test_keyboard_interrupt_saves_checkpoint(tmp_path, monkeypatch):
    learner = tiny()
    calls = {"n": 0}
    original = learner.update

    def flaky():
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original()

    monkeypatch.setattr(learner, "update", flaky)
    summary = train(learner, 10_000, tmp_path / "run", checkpoint_every=0, progress=False)
    assert summary["interrupted"] and summary["updates"] == 2
    assert ckpt.load_trainer_state(tmp_path / "run")["counters"]["updates"] == 2


@pytest.mark.parametrize("at", [2, 4], ids=["mid-run", "last-update"])
def test_ctrl_c_during_an_update_keeps_its_log_row(tmp_path, monkeypatch, at):
    """A real SIGINT that lands inside an update: the update completes and its log row is written before
    the run stops (the row used to be lost for good); on the last update the run counts as finished."""
    import os
    import signal

    import pandas as pd

    steps_per_update = 2 * 5
    learner = tiny(seed=5)
    original = learner.update

    def update_then_ctrl_c():
        metrics = original()
        if learner.updates == at:
            os.kill(os.getpid(), signal.SIGINT)  # delivered while the update's block is still open
        return metrics

    monkeypatch.setattr(learner, "update", update_then_ctrl_c)
    summary = train(learner, 4 * steps_per_update, tmp_path / "run", checkpoint_every=0, progress=False)
    assert summary["updates"] == at and summary["interrupted"] == (at < 4)
    assert list(pd.read_csv(tmp_path / "run" / "log.csv")["update"]) == list(range(1, at + 1))
    resumed = tiny(seed=5)
    train(resumed, 4 * steps_per_update, tmp_path / "run", checkpoint_every=0, resume=True, progress=False)
    assert list(pd.read_csv(tmp_path / "run" / "log.csv")["update"]) == [1, 2, 3, 4]


def test_resume_drops_the_log_rows_after_its_checkpoint(tmp_path):
    """A run killed some updates after its last checkpoint logged rows the resumed run plays again: they are
    dropped, not kept twice."""
    import pandas as pd

    steps_per_update = 2 * 5
    run = tmp_path / "run"
    train(tiny(seed=5), 2 * steps_per_update, run, checkpoint_every=0, progress=False)
    saved = {name: (run / name).read_bytes() for name in (ckpt.MODEL_FILE, ckpt.TRAINER_FILE, ckpt.META_FILE)}
    train(tiny(seed=5), 4 * steps_per_update, run, checkpoint_every=0, resume=True, progress=False)
    for name, data in saved.items():  # as if killed after update 4 with update 2's checkpoint on disk
        (run / name).write_bytes(data)
    summary = train(tiny(seed=5), 4 * steps_per_update, run, checkpoint_every=0, resume=True, progress=False)
    assert summary["new_updates"] == 2
    assert list(pd.read_csv(run / "log.csv")["update"]) == [1, 2, 3, 4]


def test_make_learner_dispatch():
    learner = make_learner("dial", "paper-small", 0, TINY, episode_length=5)
    assert learner.algo == "dial" and learner.envs[0].sau is False and learner.envs[0].channel is True
    learner = make_learner("nocomm", "paper-small", 0, TINY, episode_length=5)
    assert learner.envs[0].channel is False
    with pytest.raises(ValueError, match="unknown"):
        make_learner("ppo", "paper-small")
    metrics = learner.update()
    assert {"return", "bits", "epsilon", "loss"} <= set(metrics) and metrics["bits"] == 0.0


@pytest.mark.parametrize("simulator", ["engine", "twin"])
def test_shared_obs_trains_with_a_mixer_on_the_own_view_state(simulator):
    """The mixer's global state is the own view's on both simulators (the team part would only repeat it)."""
    learner = tiny("shared-obs", simulator=simulator, mixer=True)
    learner.update()
    assert learner.mixers[0].state_dim == learner.envs[0].state_space.shape[0] == 36


@pytest.mark.parametrize("simulator", ["engine", "twin"])
def test_shared_obs_sees_its_teammates_and_keeps_the_view_in_its_checkpoint(tmp_path, simulator):
    """shared-obs: no-comms on a team view. The teammates' bits reach the Q-values; the view is saved, and a
    loaded team is evaluated on the view it was trained on."""
    learner = tiny("shared-obs", simulator=simulator)
    assert learner.envs[0].view == "team" and learner.envs[0].channel is False
    assert learner.net.team_embed is not None and learner.layout.max_team_bits == 9  # 2 hosts and 1 block bit
    learner.update()
    learner.save(tmp_path / "ck")
    meta = json.loads((tmp_path / "ck" / "meta.json").read_text())
    assert meta["env"]["view"] == "team" and meta["observation_sizes"] == {"blue_user": 18, "blue_ops": 18}
    agent = cagekit.agents.load_team(tmp_path / "ck").agents["blue_user"]
    quiet = {"observation": np.zeros(18, dtype=np.int8), "action_mask": np.ones(8, dtype=np.int8)}
    mate_root = {**quiet, "observation": np.r_[np.zeros(9), [1, 1, 1, 1], np.zeros(5)].astype(np.int8)}
    agent.end_episode()
    q_quiet = agent.step(quiet)[2]
    agent.end_episode()
    assert not torch.equal(agent.step(mate_root)[2], q_quiet)
    with pytest.raises(ValueError, match="shared-obs fixes view=team, got view=own"):
        DialLearner("shared-obs", "paper-small", 0, TINY, view="own")
    # no other variant has the teammates' input: the weights of the own view are unchanged
    assert tiny("nocomm").net.team_embed is None and "team_bits" not in tiny("nocomm").layout.dims()

    from cagekit.evaluation.cli import build_parser, config_from_args
    from cagekit.evaluation.harness import evaluate as score

    argv = [str(tmp_path / "ck"), str(tmp_path / "eval"), "--episodes", "1", "--lengths", "4", "--reds",
            "KillChainAgent", "--no-progress"]
    config, source, out = config_from_args(build_parser().parse_args(argv))
    assert config.view == "team"
    _, summary = score(config, source, out, backend="serial", progress=False, chart=False)
    assert summary["parameters"]["view"] == "team" and len(summary["combinations"]) == 1


# Q-learning sanity -----------------------------------------------------------------------------
def _fitted_q(layout: TeamLayout, config: DialConfig, batch: EpisodeBatch, iterations: int = 600) -> torch.Tensor:
    """Trains a fresh C-Net (torch seed 0) on one fixed batch; the mean Q of the taken actions per step (T,)."""
    torch.manual_seed(0)
    net, target = CNet(layout.dims(), config), CNet(layout.dims(), config)
    target.load_state_dict(net.state_dict())
    opt = torch.optim.RMSprop(net.parameters(), lr=config.lr)
    for i in range(iterations):
        loss, _ = dial_loss(net, target, layout, config, batch, 0.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if (i + 1) % config.target_update == 0:
            target.load_state_dict(net.state_dict())
    with torch.no_grad():
        q, _, _ = Unroll(net, layout, config).run(batch)
    steps = batch.shape[0]
    return q[:steps].gather(-1, batch.actions.unsqueeze(-1)).squeeze(-1).mean((1, 2))


@pytest.mark.parametrize("norm", ["layer", "batch"])
def test_q_values_converge_to_discounted_return(norm):
    """Constant reward -1 and one allowed action per step: Q_t must reach -(1 - gamma^(T-t)) / (1 - gamma)."""
    layout = _layout()
    config = DialConfig(hidden=32, norm=norm, lr=3e-3, gamma=0.9, target_update=5)
    steps = 6
    batch = synthetic_batch(layout, 8, steps, seed=1)
    batch.rewards[:] = -1.0
    batch.masks = torch.nn.functional.one_hot(batch.actions, layout.max_defence).bool()
    chosen = _fitted_q(layout, config, batch)
    truth = torch.tensor([-(1 - 0.9 ** (steps - t)) / (1 - 0.9) for t in range(steps)])
    assert torch.allclose(chosen, truth, atol=0.15), (chosen, truth)


def test_lambda_targets():
    r = torch.tensor([-1.0, -2.0, -3.0])
    v = torch.tensor([10.0, 20.0, 30.0])  # max_u Q^-(t, u)
    one_step = lambda_targets(r, v, 0.5, 0.0)
    assert one_step.tolist() == [-1 + 0.5 * 20, -2 + 0.5 * 30, -3]
    mc = lambda_targets(r, v, 0.5, 1.0)
    assert mc.tolist() == [-1 + 0.5 * (-2 + 0.5 * -3), -2 + 0.5 * -3, -3]
    mid = lambda_targets(r, v, 0.5, 0.5)
    y1 = -2 + 0.5 * (0.5 * 30 + 0.5 * -3)
    assert torch.allclose(mid, torch.tensor([-1 + 0.5 * (0.5 * 20 + 0.5 * y1), y1, -3]))


@pytest.mark.parametrize("double_q", [False, True], ids=["max", "double-q"])
def test_dial_loss_is_its_documented_td_and_cost_terms(double_q):
    """The loss from the unrolled Q-values by hand: targets s*r + gamma * (the best *unmasked* next action's
    target value; with double Q the online net picks it), and the cost term cost_weight * s * c * mean(soft)."""
    import math

    scale, cost, weight = 2.0, 0.5, 0.7
    learner = tiny(reward_scale=scale, cost_weight=weight, double_q=double_q)
    batch = learner.collect(epsilon=0.5, update_index=0)
    layout, config = learner.layout, learner.config
    with torch.no_grad():
        q, _, soft = Unroll(learner.net, layout, config).run(batch)
        q_target = Unroll(learner.target, layout, config).run(batch)[0]

        def next_values(masks):
            if double_q:
                best = q.masked_fill(~masks, -math.inf).argmax(-1, keepdim=True)
                return q_target.gather(-1, best).squeeze(-1)
            return q_target.masked_fill(~masks, -math.inf).max(-1).values

        r = scale * batch.rewards.unsqueeze(-1).expand(*batch.actions.shape)
        y = lambda_targets(r, next_values(batch.masks), config.gamma, 0.0)
        unmasked = lambda_targets(r, next_values(torch.ones_like(batch.masks)), config.gamma, 0.0)
        assert not torch.allclose(y, unmasked)  # the masks matter in this batch
        chosen = q.gather(-1, batch.actions.unsqueeze(-1)).squeeze(-1)
        td = float(((y - chosen) ** 2).mean())
        cost_term = weight * scale * cost * float(soft.mean())
    loss, metrics = dial_loss(learner.net, learner.target, layout, config, batch, message_cost=cost)
    assert metrics["td_loss"] == pytest.approx(td, rel=1e-5)
    assert metrics["cost_loss"] == pytest.approx(cost_term, rel=1e-5)
    assert float(loss.detach()) == pytest.approx(td + cost_term, rel=1e-5)


def test_lambda_targets_bootstrap_a_truncated_end():
    r = torch.tensor([-1.0, -2.0, -3.0])
    v = torch.tensor([10.0, 20.0, 30.0, 40.0])  # one more row: the value after the last step
    assert lambda_targets(r, v, 0.5, 0.0).tolist() == [-1 + 0.5 * 20, -2 + 0.5 * 30, -3 + 0.5 * 40]
    y2 = -3 + 0.5 * 40
    y1 = -2 + 0.5 * (0.5 * 30 + 0.5 * y2)
    assert torch.allclose(lambda_targets(r, v, 0.5, 0.5), torch.tensor([-1 + 0.5 * (0.5 * 20 + 0.5 * y1), y1, y2]))
    with pytest.raises(ValueError, match="3 or 4 rows"):
        lambda_targets(r, v[:2], 0.5, 0.0)


def test_bootstrap_truncation_keeps_the_final_observation_and_changes_only_the_end():
    """The batch gains one observation row (what the agents saw after the last step); the episode itself
    (actions, rewards, bits, noise of the T steps) is the one collected without the option."""
    base, boot = tiny(seed=3), tiny(seed=3, bootstrap_truncation=True)
    a, b = base.collect(update_index=0), boot.collect(update_index=0)
    steps = a.shape[0]
    assert b.shape == a.shape and b.hosts.shape[0] == b.masks.shape[0] == b.noise.shape[0] == steps + 1
    for name in ("actions", "rewards", "bits", "env_rewards"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    for name in ("hosts", "blocks", "prev", "masks", "noise", "gate"):
        assert torch.equal(getattr(a, name), getattr(b, name)[:steps]), name
    assert torch.equal(b.prev[steps], b.actions[steps - 1] + 1) and bool(b.masks[steps].any(-1).all())
    _, m_a = dial_loss(base.net, base.target, base.layout, base.config, a, 0.0)
    _, m_b = dial_loss(boot.net, boot.target, boot.layout, boot.config, b, 0.0)
    assert m_a["q_mean"] == pytest.approx(m_b["q_mean"])  # the same weights value the same T steps
    assert m_a["td_loss"] != pytest.approx(m_b["td_loss"])  # the last target now bootstraps
    boot.update()  # replay and concatenation keep the extra row
    with pytest.raises(ValueError, match="bootstrap_truncation is not supported with mixer"):
        DialConfig(mixer=True, bootstrap_truncation=True)


def test_bootstrapped_q_values_do_not_depend_on_the_step():
    """Constant reward -1, one allowed action, the end a truncation: every Q_t reaches -1 / (1 - gamma)."""
    layout = _layout()
    config = DialConfig(hidden=32, norm="layer", lr=3e-3, gamma=0.5, target_update=5, bootstrap_truncation=True)
    steps = 5
    full = synthetic_batch(layout, 8, steps + 1, seed=1)
    full.masks = torch.nn.functional.one_hot(full.actions, layout.max_defence).bool()
    batch = replace(full, actions=full.actions[:steps], rewards=torch.full((steps, 8), -1.0),
                    bits=full.bits[:steps], env_rewards=full.env_rewards[:steps])
    chosen = _fitted_q(layout, config, batch)
    assert torch.allclose(chosen, torch.full((steps,), -2.0), atol=0.15), chosen  # terminal: -1 at the last step


def test_replay_draws_each_step_from_the_last_batches_at_the_current_cost():
    learner = tiny(replay_batches=2, grad_steps=3, cost_warmup_steps=10, cost_ramp_steps=10)
    learner.env_steps = 15  # halfway up the cost ramp: replayed rewards are priced at half the env's cost
    batches = [learner.collect(update_index=k) for k in range(3)]
    drawn = []
    for batch in batches:
        drawn = list(learner._training_batches(batch))
    assert [id(b) for b in learner.replay] == [id(b) for b in batches[1:]]  # the last two batches only
    pool = EpisodeBatch.concat(batches[1:])
    assert len(drawn) == 3 and all(d.shape[1] == 2 for d in drawn)
    cost = learner.channel_cost
    assert 0 < cost < learner.message_cost
    for d in drawn:
        for e in range(d.shape[1]):  # each drawn episode is one of the pool's, reward repriced
            matches = [i for i in range(pool.shape[1]) if torch.equal(pool.actions[:, i], d.actions[:, e])
                       and torch.equal(pool.noise[:, i], d.noise[:, e])]
            assert len(matches) == 1
            expected = pool.env_rewards[:, matches[0]] - cost * pool.bits[:, matches[0]].sum(-1)
            assert torch.allclose(d.rewards[:, e], expected)
    with pytest.raises(ValueError, match="replay_batches"):
        DialConfig(replay_batches=-1)


def test_without_replay_every_step_trains_on_the_new_batch():
    learner = tiny(grad_steps=2)
    batch = learner.collect()
    assert [b is batch for b in learner._training_batches(batch)] == [True, True] and learner.replay == []


@pytest.mark.parametrize("extra,unrolls", [({}, 6), ({"mixer": True}, 6), ({"replay_batches": 2}, 9)],
                         ids=["on-policy", "mixer", "replay"])
def test_cached_target_unroll_trains_as_a_fresh_one_each_step(monkeypatch, extra, unrolls):
    """The learner unrolls the target network once per batch and target copy; with copies in the middle
    of updates, the weights must equal those of a learner that unrolls it at every gradient step."""
    import cagekit.agents.dial.learner as learner_module  # where the learner looks target_values up

    cached, fresh = (tiny(seed=3, grad_steps=3, target_update=2, **extra) for _ in range(2))
    fresh_learn = fresh.learn

    def learn_without_cache(batch):
        fresh.forget_target_q()
        return fresh_learn(batch)

    fresh.learn = learn_without_cache
    for _ in range(3):
        fresh.update()
    calls = []
    unroll = learner_module.target_values
    monkeypatch.setattr(learner_module, "target_values", lambda *a: calls.append(1) or unroll(*a))
    for _ in range(3):
        cached.update()
    a, b = _weights(cached), _weights(fresh)
    assert all(torch.equal(a[k], b[k]) for k in a)
    # 9 steps; on-policy, the copies after steps 2, 4, 6, 8 leave 2 unrolls per batch of 3 steps
    assert len(calls) == unrolls and cached.updates == 9


def test_grad_steps_per_batch():
    learner = tiny(grad_steps=3)
    learner.update()
    assert learner.updates == 3 and learner.env_steps == 2 * 5
    with pytest.raises(ValueError, match="grad_steps"):
        DialConfig(grad_steps=0)
    with pytest.raises(ValueError, match="td_lambda"):
        DialConfig(td_lambda=1.5)


def test_checkpoints_land_whenever_a_multiple_of_checkpoint_every_is_passed(tmp_path, monkeypatch):
    """With 3 gradient steps per update, `updates` runs 3, 6, 9, ...: a checkpoint every 4 must still come
    at 6 (past 4), 9 (past 8) and 12, not only when 12 is hit (15: the end of the run)."""
    learner = tiny(grad_steps=3)
    saved = []
    monkeypatch.setattr(learner, "save", lambda out: saved.append(learner.updates))
    train(learner, 2 * 5 * 5, tmp_path / "run", checkpoint_every=4, progress=False)
    assert saved[:4] == [6, 9, 12, 15]


# learning --------------------------------------------------------------------------------------
FAST_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "dial-sau-fast.yaml"
FAST_STEPS = 60_000  # 250 batches of 8 episodes, 1000 gradient steps; ~2.5 min on a quiet 2-core machine


def test_fast_config_loads():
    config = DialConfig.from_file(FAST_CONFIG)
    assert config.eps_anneal_steps < DialConfig().eps_anneal_steps and config.norm == "layer"


@pytest.mark.slow
def test_short_training_beats_random():
    """configs/dial-sau-fast.yaml, FAST_STEPS env steps on the twin against every red (as `cagekit reproduce`
    trains); the greedy team vs the random team on the engine, the same 10 fresh seeds per red agent."""
    learner = DialLearner("dial-sau", "paper-small", 0, str(FAST_CONFIG), simulator="twin", red="all")
    while learner.env_steps < FAST_STEPS:
        learner.update()
    learned = rand = 0.0
    for red in cagekit.scenarios.get_scenario("paper-small").red_agents:
        env = cagekit.make_env("paper-small", red=red, seed=99)
        learned += np.mean(evaluate(learner.team(), env, 10, seed=50_000))
        rand += np.mean(evaluate(make_team("random", env, seed=1), env, 10, seed=50_000))
    assert learned > rand + 30, (learned, rand)  # by more than 10 per red agent on average


# rollouts and the channel-cost schedule -----------------------------------------------------------
@pytest.mark.parametrize("simulator", ["engine", "twin"])
def test_collected_rewards_are_the_environments(simulator):
    """At the full cost the learner's rewards are the env's team reward; masks hold on both back ends."""
    learner = DialLearner("dial-sau", "paper-small", 0, {**TINY, "batch_episodes": 4, "eps_start": 0.5,
                                                          "eps_end": 0.5, "sigma": 6.0, "gate_messages": False},
                          episode_length=8, simulator=simulator)
    assert learner.channel_cost == learner.message_cost > 0
    batch = learner.collect(update_index=0)
    expected = batch.env_rewards - learner.message_cost * batch.bits.sum(-1)
    assert torch.allclose(batch.rewards, expected, atol=1e-5)
    assert batch.bits.sum() > 0  # some bits were sent, so the cost term was exercised
    assert bool(batch.masks.gather(-1, batch.actions.unsqueeze(-1)).all())
    again = learner.collect(update_index=0)
    assert torch.equal(batch.actions, again.actions) and torch.equal(batch.rewards, again.rewards)


def test_twin_rollout_equals_twin_envs_reward_accounting():
    """The batched twin gives the same per-episode team reward as the env would (reward = env - cost * bits)."""
    from cagekit.agents.rollout import TwinRollout

    rollout = TwinRollout("paper-small", 16, episode_length=10, message_cost=0.3)
    arrays = rollout.reset(list(range(16)))
    assert [o.shape[0] for o, _ in arrays] == [16, 16]
    rng = np.random.default_rng(0)
    for _ in range(10):
        actions = np.stack([rng.integers(0, m.shape[1], size=16) for _, m in arrays], axis=1)
        arrays, reward, env_reward = rollout.step(actions)
        bits = (actions % 2).sum(1)
        np.testing.assert_allclose(reward, env_reward - 0.3 * bits)


@pytest.mark.parametrize("view", ["own", "team"])
@pytest.mark.parametrize("scenario", ["paper-small", "paper-large"])
def test_twin_rollout_state_is_the_twin_envs(scenario, view):
    """The global state a mixer trains on equals `env.state()` of the single twin env driven alike."""
    from cagekit.agents.rollout import EnvListRollout, TwinRollout
    from cagekit.wrappers.twin_env import make_twin_env

    rollout = TwinRollout(scenario, 1, episode_length=12, view=view)
    env = make_twin_env(scenario, episode_length=12, view=view)
    arrays = rollout.reset([7])
    observations, _ = env.reset(seed=7)
    reference = EnvListRollout([env])
    assert rollout.state().shape == (1, env.state_space.shape[0])
    rng = np.random.default_rng(1)
    for _ in range(12):
        assert np.array_equal(rollout.state(), reference.state())
        actions = np.stack([rng.integers(0, m.shape[1], size=1) for _, m in arrays], axis=1)
        arrays, _, _ = rollout.step(actions)
        env.step({a: int(actions[0, i]) for i, a in enumerate(env.possible_agents)})
    access = rollout.state()[0, -3 * len(env.spec.hosts):].reshape(-1, 3)
    assert (access.sum(1) == 1).all() and access[:, 1:].any()  # red holds some host after 12 steps


@pytest.mark.parametrize("simulator", ["engine", "twin"])
def test_mixer_trains_on_the_teams_q_tot_and_still_reaches_the_message_head(simulator):
    learner = tiny(mixer=True, gate_messages=False, target_update=2, grad_steps=2, simulator=simulator)
    batch = learner.collect(update_index=0)
    assert batch.states.shape == (5, 2, learner.envs[0].state_space.shape[0])
    assert batch.states.abs().sum() > 0
    loss, _ = dial_loss(learner.net, learner.target, learner.layout, learner.config, batch, 0.0, learner.mixers)
    loss.backward()
    mixer, target_mixer = learner.mixers
    assert float(mixer.hyper_w_1[0].weight.grad.abs().sum()) > 0
    assert float(learner.net.msg_mlp[1].weight.grad.abs().sum()) > 0  # DIAL's gradient through the channel
    before = {k: v.clone() for k, v in mixer.state_dict().items()}
    learner.update()  # two gradient steps: the mixer learns and the target mixer is copied at the second
    assert any(not torch.equal(before[k], v) for k, v in mixer.state_dict().items())
    assert all(torch.equal(v, target_mixer.state_dict()[k]) for k, v in mixer.state_dict().items())
    without = tiny(gate_messages=False)
    assert without.mixers is None and without.collect(update_index=0).states is None
    with pytest.raises(ValueError, match="global states"):
        dial_loss(without.net, without.target, without.layout, without.config, without.collect(update_index=0),
                  0.0, learner.mixers)


def test_channel_cost_schedule():
    learner = tiny(cost_warmup_steps=100, cost_ramp_steps=200)
    full = learner.message_cost
    assert full > 0
    for steps, expected in [(0, 0.0), (99, 0.0), (100, 0.0), (200, full / 2), (300, full), (10_000, full)]:
        learner.env_steps = steps
        assert learner.channel_cost == pytest.approx(expected)
    plain = tiny()
    assert plain.channel_cost == plain.message_cost
    learner.env_steps = 0
    batch = learner.collect(update_index=0)
    assert torch.equal(batch.rewards, batch.env_rewards)  # no channel cost during the warm-up


@pytest.mark.parametrize("simulator", ["engine", "twin"])
def test_red_all_splits_the_batch_between_the_reds(simulator):
    learner = DialLearner("nocomm", "paper-small", 0, {**TINY, "batch_episodes": 5}, episode_length=4,
                          simulator=simulator, red="all")
    reds = list(cagekit.scenarios.get_scenario("paper-small").red_agents)
    if simulator == "twin":
        assert [(b.red_name, b.B) for b in learner.rollout.batches] == list(zip(reds, [2, 2, 1], strict=True))
    else:
        assert [env.engine.red_name for env in learner.envs] == [reds[i % 3] for i in range(5)]
    assert learner.collect(update_index=0).rewards.shape == (4, 5)
    assert "red" not in ckpt.env_settings(learner.meta())  # evaluation builds its own reds
    with pytest.raises(ValueError, match="valid: KillChainAgent"):
        DialLearner("nocomm", "paper-small", 0, TINY, episode_length=4, red="Nobody")


def _trained_weights_digest(extra_env: dict[str, str]) -> tuple[str, str]:
    """(torch's CPU kernels, a digest of the weights) of a short DIAL run in a fresh process."""
    import os
    import subprocess
    import sys

    code = ("import hashlib, torch\n"
            "from cagekit.agents.training import make_learner\n"
            "learner = make_learner('dial-sau', 'paper-small', seed=0, config={'batch_episodes': 4, 'grad_steps': 2,"
            " 'hidden': 32}, simulator='twin', episode_length=6)\n"
            "for _ in range(3):\n    learner.update()\n"
            "h = hashlib.sha256()\n"
            "for k, v in sorted(learner.net.state_dict().items()):\n    h.update(v.numpy().tobytes())\n"
            "print(torch.backends.cpu.get_cpu_capability(), h.hexdigest())\n")
    env = {k: v for k, v in os.environ.items() if k != cagekit.KERNELS_ENV} | extra_env
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    kernels, digest = out.stdout.split()
    return kernels, digest


def test_torch_kernels_are_pinned_so_a_seed_trains_alike_on_avx2_and_avx512_cpus():
    """cagekit pins torch's CPU kernels to AVX2 (cagekit.KERNELS_ENV) unless the user chose: with AVX-512
    ones, whose rounding differs, a seed trained to other weights on an AVX-512 machine than on an AVX2 one."""
    kernels, digest = _trained_weights_digest({})
    assert kernels != "AVX512"  # x86 with AVX2: "AVX2"; a CPU without it keeps torch's own choice
    if kernels == "AVX2":
        assert _trained_weights_digest({cagekit.KERNELS_ENV: "avx2"}) == (kernels, digest)
    # the user's own setting is kept
    assert _trained_weights_digest({cagekit.KERNELS_ENV: "default"})[0] == "DEFAULT"


def _train_after_a_torch_operation(tmp_path: Path, *, torch_first: bool) -> tuple[str, str]:
    """(torch's CPU kernels, stderr) of a short `train()` in a fresh process that ran a torch operation before
    importing cagekit (`torch_first`, as a notebook that used torch first does) or after."""
    import os
    import subprocess
    import sys

    op = "torch.nn.Linear(64, 64)(torch.ones(3, 64)).sum()\n"
    code = ("import torch\n" + (op if torch_first else "") +
            "from cagekit.agents.training import make_learner, train\n" + ("" if torch_first else op) +
            "learner = make_learner('dial-sau', 'paper-small', seed=0, config={'batch_episodes': 2, 'hidden': 16},"
            " simulator='twin', episode_length=4)\n"
            f"train(learner, 8, {str(tmp_path / ('run-first' if torch_first else 'run-after'))!r}, progress=False)\n"
            "print(torch.backends.cpu.get_cpu_capability())\n")
    env = {k: v for k, v in os.environ.items() if k != cagekit.KERNELS_ENV}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return out.stdout.split()[-1], out.stderr


def test_training_says_when_torch_chose_its_kernels_before_cagekit_could_pin_them(tmp_path):
    """torch picks its CPU kernels at its first operation: one run before cagekit was imported leaves AVX-512
    kernels on such a CPU, and the seed then trains to other weights than `cagekit train` gives it. Training
    says so (it said nothing, and meta.json's torch_cpu_kernels was the only trace)."""
    kernels, stderr = _train_after_a_torch_operation(tmp_path, torch_first=True)
    if kernels != "AVX512":
        pytest.skip(f"this CPU runs torch's {kernels} kernels unpinned: no AVX-512 to fall into")
    assert "before cagekit was imported" in stderr and "other weights" in stderr
    assert json.loads((tmp_path / "run-first" / ckpt.META_FILE).read_text())["torch_cpu_kernels"] == "AVX512"
    kernels, stderr = _train_after_a_torch_operation(tmp_path, torch_first=False)  # cagekit first: pinned, silent
    assert kernels == "AVX2" and "before cagekit was imported" not in stderr


def test_a_damaged_log_is_named_on_resume_and_nothing_is_overwritten(tmp_path):
    run = tmp_path / "run"
    train(tiny(seed=5), 2 * 2 * 5, run, checkpoint_every=0, progress=False)
    (run / "log.csv").write_text("update,env_steps\ngarbage,1\n")
    with pytest.raises(ValueError, match=r"cannot resume from .*log.csv: the training log is damaged"):
        train(tiny(seed=5), 4 * 2 * 5, run, checkpoint_every=0, resume=True, progress=False)
    assert (run / "log.csv").read_text() == "update,env_steps\ngarbage,1\n"
    (run / "log.csv").unlink()  # moved away: the run resumes, its log starting at the resumed update
    summary = train(tiny(seed=5), 4 * 2 * 5, run, checkpoint_every=0, resume=True, progress=False)
    assert summary["new_updates"] == 2


@pytest.fixture(scope="module")
def qmix_run(tmp_path_factory) -> Path:
    """A real two-update run, as `cagekit train` writes it."""
    from cagekit.cli import main

    out = tmp_path_factory.mktemp("plot") / "qmix"
    assert main(["train", "--algo", "qmix", "--steps", "60", "--out", str(out), "--no-progress"]) == 0
    return out


@pytest.mark.parametrize("name,text,expected", [
    ("log.csv", "", "log.csv is empty: train longer"),
    ("log.csv", "update,env_steps,return,bits\n", "log.csv has no rows yet: train longer"),
    ("log.csv", "a,b\n1,2\n", "log.csv lacks the columns env_steps, return, bits: not a cagekit training log, "
                              "whose columns are update, env_steps, "),
    ("log.csv", "garbage text\n", "log.csv lacks the columns env_steps, return, bits"),
    ("log.csv", "env_steps,return,bits\n30,abc,0\n", "log.csv: return is 'abc' in data row 1; expected a number"),
    ("log.csv", "env_steps,return,bits\n30,1,0\n,2,0\n", "log.csv: env_steps is empty in data row 2"),
    ("progress.csv", "time/total_timesteps,rollout/ep_len_mean\n128,3\n", "progress.csv has no finished episode yet"),
    ("progress.csv", "time/total_timesteps,rollout/ep_rew_mean\n128,\n", "progress.csv has no finished episode yet"),
    ("progress.csv", "a,b\n1,2\n", "progress.csv lacks the column time/total_timesteps: not an SB3 training log"),
], ids=["empty", "header-only", "other-columns", "text", "not-a-number", "no-env-steps", "sb3-no-return-column",
        "sb3-no-episode", "sb3-other-columns"])
def test_plot_names_the_log_it_cannot_draw(qmix_run, tmp_path, capsys, name, text, expected):
    from cagekit.cli import main

    run = tmp_path / "run"
    run.mkdir()
    (run / name).write_text(text)
    out = tmp_path / "curves.png"
    assert main(["plot", str(qmix_run), str(run), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{run / name}" in err and expected in err and err.count("\n") == 1
    assert not out.exists()


def test_plot_refuses_a_run_given_twice(qmix_run, tmp_path, capsys, monkeypatch):
    """`cagekit plot RUN RUN` (or RUN and another spelling of it) pooled the run with itself as two seeds of its
    algorithm, 'qmix (n=2)'; a repeated run is refused, named, as benchmark refuses `--algos a,a`."""
    from cagekit.cli import main

    monkeypatch.chdir(qmix_run.parent)
    out = tmp_path / "curves.png"
    assert main(["plot", str(qmix_run), str(qmix_run), "--out", str(out)]) == 2
    assert capsys.readouterr().err == (f"cagekit plot: error: run {qmix_run} given more than once (runs of one "
                                       f"algorithm are pooled as its seeds); name each run once\n")
    assert main(["plot", "qmix", f"./{qmix_run.name}/", str(qmix_run), "--out", str(out)]) == 2
    assert f"error: run qmix and ./{qmix_run.name}/ given more than once" in capsys.readouterr().err
    assert not out.exists()
    with pytest.raises(ValueError, match="given more than once"):
        plot_runs([qmix_run, qmix_run.parent / ".." / qmix_run.parent.name / "qmix"], out)
    assert not out.exists()


def test_plot_writes_where_it_says_and_refuses_a_directory_or_no_name(qmix_run, tmp_path, capsys, monkeypatch):
    from cagekit.cli import main

    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "figures"
    folder.mkdir()
    assert main(["plot", str(qmix_run), "--out", str(folder)]) == 2
    assert f"{folder} is a directory" in capsys.readouterr().err
    assert main(["plot", str(qmix_run), "--out", ""]) == 2
    assert "--out is empty; name a path" in capsys.readouterr().err
    assert main(["plot", str(qmix_run), "--out", str(qmix_run / "log.csv")]) == 2
    assert "cannot draw a .csv file; valid suffixes:" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["figures"]  # no figures.png, no hidden .png
    assert main(["plot", str(qmix_run), "--out", "curves"]) == 0  # matplotlib adds .png: say so
    assert capsys.readouterr().out == "wrote curves.png\n" and (tmp_path / "curves.png").stat().st_size > 1000
    assert main(["plot", str(qmix_run), "--out", str(folder / "q.svg")]) == 0
    assert (folder / "q.svg").read_text().lstrip().startswith("<?xml")


def test_train_refuses_no_steps_and_another_run_s_folder(tmp_path):
    """Zero steps wrote untrained weights as a finished run; a second learner in a run's folder overwrote its
    weights, meta.json and log (without resume) and left the first run's snapshots beside them."""
    with pytest.raises(ValueError, match="steps must be >= 1"):
        train(tiny(), 0, tmp_path / "none", progress=False)
    assert not (tmp_path / "none").exists()
    run = tmp_path / "run"
    train(tiny(seed=5), 2 * 5, run, checkpoint_every=0, progress=False)
    weights = (run / "model.pt").read_bytes()
    with pytest.raises(ValueError, match="already holds a trained run .*pass resume=True to continue it"):
        train(tiny(seed=6), 2 * 5, run, checkpoint_every=0, progress=False)
    assert (run / "model.pt").read_bytes() == weights


def test_a_channel_on_a_team_of_one_is_refused_and_the_others_train(tmp_path):
    """cage2's default layout is the one Blue agent: dial-sau trained there, but its team failed when scored
    (an empty message input). Refused before any environment is made; no-comms and a team layout still train,
    and a one-agent channel checkpoint made before is refused by name when loaded."""
    for algo in ("dial-sau", "dial"):
        with pytest.raises(ValueError, match=f"{algo} needs two or more blue agents to talk, and cage2's layout "
                                             "'classic' has one \\(Blue\\); cage2's layouts with several: team"):
            DialLearner(algo, "cage2", 0, TINY)
    DialLearner("dial-sau", "cage2", 0, TINY, layout="team", episode_length=3)  # the layout the message names
    one = DialLearner("nocomm", "cage2", 0, TINY, episode_length=3)
    assert one.layout.n_agents == 1
    train(one, 6, tmp_path, progress=False)
    assert load_team(tmp_path).agents.keys() == {"Blue"}
    meta = json.loads((tmp_path / ckpt.META_FILE).read_text())
    (tmp_path / ckpt.META_FILE).write_text(json.dumps({**meta, "algo": "dial-sau"}))  # as such a run recorded it
    with pytest.raises(ValueError, match="is a dial-sau team of one agent \\(Blue\\), which cannot act"):
        load_team(tmp_path)
