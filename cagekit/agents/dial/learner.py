"""The DIAL learner: collects batches of parallel episodes and trains the shared C-Net on them.

Training (`DialLearner.update`): B environments (`make_env` with seeds derived from (seed, update
index), or one `TwinBatch` of B on the twin: `cagekit.agents.rollout`) step in lockstep for a whole
episode, without gradients, with the online network; an agent's
soft message at t feeds its teammates' message input at t+1, and the environment receives the hard
bit `soft > 0.5` (for its channel cost and SAU masks). The DRU noise of every step is recorded. The
learner then replays the episode batch with gradients (`Unroll`) and descends `dial_loss`.
With `grad_steps` > 1 each collected batch gets that many gradient steps (the recorded DRU noise makes
every replay of the batch exact), a deviation from DIAL, off by default, used by the fast
config `configs/dial-sau-fast.yaml` (see docs/dial.md). With `replay_batches` = N > 0 (another deviation,
off in both configs) each gradient step instead draws `batch_episodes` episodes from the last N batches,
each replayed with its own recorded noise and its reward recomputed at the current channel cost.
`updates` counts gradient steps, and the target network is copied every `target_update` gradient steps.

Action selection in training: epsilon-greedy over the UNMASKED defence actions only; the message bit
is always the DRU's (never epsilon-random).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import cagekit
from cagekit.agents import checkpoint as ckpt
from cagekit.agents.base import Team, team_slots
from cagekit.agents.dial.config import VARIANTS, DialConfig, check_team
from cagekit.agents.dial.episodes import EpisodeBatch
from cagekit.agents.dial.layout import TeamLayout
from cagekit.agents.dial.loss import dial_loss, target_values
from cagekit.agents.dial.network import CNet
from cagekit.agents.dial.team import build_team
from cagekit.agents.dial.unroll import Unroll
from cagekit.agents.qmix import QMixer
from cagekit.agents.rollout import AgentArrays, EnvListRollout, TwinRollout, training_reds


def _seed_for(seed: int, update: int, index: int) -> int:
    return int(np.random.SeedSequence([int(seed), int(update), int(index)]).generate_state(1)[0])


def seeds_for(seed: int, update: int, count: int) -> list[int]:
    """The environment seeds of update `update` (as `DialLearner.collect` uses them)."""
    return [_seed_for(seed, update, i) for i in range(count)]


class DialLearner:
    """Collects batches of parallel episodes and trains the shared C-Net (implements `training.Learner`)."""

    def __init__(self, algo: str, scenario: str, seed: int = 0, config: DialConfig | dict | str | None = None,
                 **env_kwargs: Any):
        if algo not in VARIANTS:
            raise ValueError(f"unknown DIAL variant {algo!r}; valid: {', '.join(VARIANTS)}")
        check_team(algo, scenario, env_kwargs.get("layout"))
        self.algo, self.scenario, self.seed = algo, scenario, int(seed)
        self.config = DialConfig.coerce(config)
        for key in ("channel", "sau", "view"):
            fixed = VARIANTS[algo].get(key, "own" if key == "view" else None)
            if key in env_kwargs and env_kwargs[key] != fixed:
                raise ValueError(f"{algo} fixes {key}={fixed}, got {key}={env_kwargs[key]}")
            env_kwargs.pop(key, None)
        env_kwargs.setdefault("episode_length", 30)
        self.env_kwargs = dict(env_kwargs)
        reds = training_reds(scenario, env_kwargs.pop("red", None))  # red="all": every red, B split evenly
        if env_kwargs.get("simulator") == "twin":  # array-stepped batches; envs[0] describes the team
            self.envs = [cagekit.make_env(scenario, seed=_seed_for(self.seed, 2**31, 0), red=reds[0],
                                          **VARIANTS[algo], **env_kwargs)]
            self.rollout: EnvListRollout | TwinRollout = TwinRollout(
                scenario, self.config.batch_episodes, reds=reds, **VARIANTS[algo], **env_kwargs)
        else:
            self.envs = [cagekit.make_env(scenario, seed=_seed_for(self.seed, 2**31, i), red=reds[i % len(reds)],
                                          **VARIANTS[algo], **env_kwargs) for i in range(self.config.batch_episodes)]
            self.rollout = EnvListRollout(self.envs)
        self.message_cost = float(self.envs[0].message_cost)
        self.episode_length = int(self.envs[0].episode_length)
        self.layout = TeamLayout(tuple(team_slots(self.envs[0])))
        ckpt.seed_global_rngs(self.seed)  # saved in trainer.pt: the seed's, so a run's bytes are too
        torch.manual_seed(self.seed)
        self.net = CNet(self.layout.dims(), self.config)
        self.target = copy.deepcopy(self.net)
        self.mixers: tuple[QMixer, QMixer] | None = None
        self.params = list(self.net.parameters())  # what the optimiser updates and the gradient clip bounds
        if self.config.mixer:
            mixer = QMixer(self.layout.n_agents, self.envs[0].state_size, self.config.mixer_embed,
                           self.config.hypernet_hidden)
            self.mixers = (mixer, copy.deepcopy(mixer))
            self.params += list(mixer.parameters())
        self.optimizer = torch.optim.RMSprop(self.params, lr=self.config.lr, alpha=self.config.rms_alpha,
                                             momentum=self.config.momentum)
        self.env_steps = 0
        self.updates = 0
        self.episodes = 0
        self.replay: list[EpisodeBatch] = []  # the last `replay_batches` batches (empty without replay)
        self._target_q: tuple[EpisodeBatch, torch.Tensor] | None = None  # see `target_q`

    # protocol -------------------------------------------------------------------------------
    @property
    def epsilon(self) -> float:
        c = self.config
        frac = min(1.0, self.env_steps / c.eps_anneal_steps) if c.eps_anneal_steps > 0 else 1.0
        return c.eps_start + frac * (c.eps_end - c.eps_start)

    @property
    def channel_cost(self) -> float:
        """The message cost trained against now: 0 for `cost_warmup_steps`, then rising linearly over
        `cost_ramp_steps` to the environment's cost (with both 0, the environment's cost throughout)."""
        c = self.config
        past = self.env_steps - c.cost_warmup_steps
        if past < 0:
            return 0.0
        frac = min(1.0, past / c.cost_ramp_steps) if c.cost_ramp_steps > 0 else 1.0
        return self.message_cost * frac

    def update(self) -> dict[str, float]:
        """Collect one batch of episodes with the online network, then `grad_steps` gradient steps on it."""
        from cagekit.agents.training import deferred_interrupt

        eps = self.epsilon
        batch = self.collect(eps)
        with deferred_interrupt():
            for step_batch in self._training_batches(batch):
                metrics = self.learn(step_batch)
            self.env_steps += batch.env_steps()
            self.episodes += batch.shape[1]
        metrics.update({"return": float(batch.rewards.sum(0).mean()),
                        "env_return": float(batch.env_rewards.sum(0).mean()),
                        "bits": float(batch.bits.sum((0, 2)).mean()), "epsilon": eps,
                        "message_cost": self.channel_cost})
        return metrics

    def _training_batches(self, batch: EpisodeBatch) -> Iterator[EpisodeBatch]:
        """What each of the `grad_steps` gradient steps trains on: the new batch, or with `replay_batches`
        `batch_episodes` episodes drawn (without replacement, from (seed, update)) from the last N batches,
        rewards at the current channel cost. Adds `batch` to the replay (call once per collected batch)."""
        cfg = self.config
        if not cfg.replay_batches:
            yield from (batch for _ in range(cfg.grad_steps))
            return
        self.replay = [*self.replay, batch][-cfg.replay_batches:]
        pool = EpisodeBatch.concat(self.replay).at_channel_cost(self.channel_cost)
        gen = torch.Generator().manual_seed(_seed_for(self.seed, self.updates, 2_000_003))
        for _ in range(cfg.grad_steps):
            yield pool.episodes(torch.randperm(pool.shape[1], generator=gen)[: cfg.batch_episodes])

    def learn(self, batch: EpisodeBatch) -> dict[str, float]:
        """One gradient step on a collected batch (the learner part timed by the throughput benchmark)."""
        from cagekit.agents.training import deferred_interrupt

        self.net.train()
        self.target.train()
        loss, metrics = dial_loss(self.net, self.target, self.layout, self.config, batch, self.channel_cost,
                                  self.mixers, self.target_q(batch))
        with deferred_interrupt():  # weights, optimiser and counters change together or not at all
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.config.grad_clip > 0:
                metrics["grad_norm"] = float(nn.utils.clip_grad_norm_(self.params, self.config.grad_clip))
            self.optimizer.step()
            self.updates += 1
            if self.updates % self.config.target_update == 0:
                self.target.load_state_dict(self.net.state_dict())
                self._target_q = None
                if self.mixers is not None:
                    self.mixers[1].load_state_dict(self.mixers[0].state_dict())
        return metrics

    def target_q(self, batch: EpisodeBatch) -> torch.Tensor:
        """The target network's Q-values over `batch`, unrolled once per batch and target copy.

        Without replay every gradient step of an update trains on the same batch, and the target network
        changes only every `target_update` steps, so its unroll (a fifth of a step's time) would be
        repeated with the same result. Outputs only: in training mode BatchNorm normalises by the batch,
        so the target's running statistics, which this skips updating, are never read."""
        if self._target_q is None or self._target_q[0] is not batch:
            self._target_q = (batch, target_values(self.target, self.layout, self.config, batch))
        return self._target_q[1]

    def forget_target_q(self) -> None:
        """Drop the cached target unroll (the learner benchmark times whole gradient steps)."""
        self._target_q = None

    @torch.no_grad()
    def collect(self, epsilon: float | None = None, update_index: int | None = None) -> EpisodeBatch:
        """B episodes in lockstep; seeds (envs, noise, exploration) derive from (seed, update index)."""
        eps = self.epsilon if epsilon is None else epsilon
        u = self.updates if update_index is None else update_index
        lay, cfg = self.layout, self.config
        nb, na, steps = len(self.rollout), lay.n_agents, self.episode_length
        rows = steps + 1 if cfg.bootstrap_truncation else steps  # + what the agents see after the last step
        gen = torch.Generator().manual_seed(_seed_for(self.seed, u, 1_000_003))
        arrays = self.rollout.reset([_seed_for(self.seed, u, i) for i in range(nb)])
        cost = self.channel_cost
        hosts = torch.zeros(rows, nb, na, lay.max_hosts, dtype=torch.long)
        blocks = torch.zeros(rows, nb, na, lay.block_width)
        masks = torch.zeros(rows, nb, na, lay.max_defence, dtype=torch.bool)
        gate = torch.zeros(rows, nb, na)
        actions = torch.zeros(steps, nb, na, dtype=torch.long)
        prev = torch.zeros(rows, nb, na, dtype=torch.long)
        rewards = torch.zeros(steps, nb)
        env_rewards = torch.zeros(steps, nb)
        bits = torch.zeros(steps, nb, na)
        states = None if self.mixers is None else torch.zeros(steps, nb, self.mixers[0].state_dim)
        noise = torch.randn(steps, nb, na, generator=gen)
        explore = torch.rand(steps, nb, na, generator=gen)
        pick = torch.rand(steps, nb, na, generator=gen)
        if rows > steps:  # drawn last: the other draws are those of a batch without the final row
            noise = torch.cat([noise, torch.randn(rows - steps, nb, na, generator=gen)])
        buffers = {k: v.clone() for k, v in self.net.named_buffers()}  # collection leaves BN statistics alone
        self.net.train()
        unroll = Unroll(self.net, lay, cfg)
        hidden = self.net.init_hidden(nb * na)
        soft = torch.zeros(nb, na)

        def observe(t: int, arrays: AgentArrays) -> None:
            """Row t of the observation tensors from the rollout's per-agent (observations, masks) arrays."""
            for a, (agent_obs, agent_masks) in enumerate(arrays):
                idx, blk, _, alarmed = lay.encode_agent(a, agent_obs)
                hosts[t, :, a] = torch.from_numpy(idx)
                blocks[t, :, a] = torch.from_numpy(blk)
                gate[t, :, a] = torch.from_numpy(alarmed)
                masks[t, :, a] = torch.from_numpy(lay.defence_mask(a, agent_masks))

        for t in range(steps):
            observe(t, arrays)
            if states is not None:
                states[t] = torch.from_numpy(self.rollout.state()).float()
            if t > 0:
                prev[t] = actions[t - 1] + 1
            z = unroll.embed(hosts[t], blocks[t], prev[t])
            q, _, soft, hidden = unroll.step(z, soft, noise[t], gate[t], hidden)
            greedy = q.masked_fill(~masks[t], -math.inf).argmax(-1)
            # uniform over unmasked actions: the k-th valid action, k = floor(u * n_valid)
            n_valid = masks[t].sum(-1)
            k = (pick[t] * n_valid).long().clamp(max=n_valid - 1)
            rank = masks[t].long().cumsum(-1) - 1
            rand_act = ((rank == k.unsqueeze(-1)) & masks[t]).long().argmax(-1)
            act = torch.where(explore[t] < eps, rand_act, greedy)
            actions[t] = act
            sent = (soft > 0.5).long() if lay.channel else torch.zeros_like(act)
            bits[t] = sent.float()
            encoded = (2 * act + sent) if lay.channel else act
            arrays, _, env_r = self.rollout.step(encoded.numpy())
            env_rewards[t] = torch.from_numpy(env_r)
            # the team reward at the scheduled channel cost (the environment's own cost once ramped up)
            rewards[t] = env_rewards[t] - cost * bits[t].sum(-1)
        if rows > steps:
            observe(steps, arrays)
            prev[steps] = actions[steps - 1] + 1
        for name, buffer in self.net.named_buffers():
            buffer.copy_(buffers[name])
        return EpisodeBatch(hosts=hosts, blocks=blocks, prev=prev, masks=masks, actions=actions, rewards=rewards,
                            noise=noise, gate=gate, bits=bits, env_rewards=env_rewards, states=states)

    def team(self) -> Team:
        """The greedy decentralised team of the current weights (a copy of the network, eval mode)."""
        net = CNet(self.layout.dims(), self.config)
        net.load_state_dict(self.net.state_dict())
        return build_team(net, self.layout, self.config, self.meta())

    # persistence -------------------------------------------------------------------------------
    def meta(self) -> dict[str, Any]:
        env = self.envs[0]
        return {
            "algo": self.algo, "scenario": self.scenario, "seed": self.seed,
            "env": {"channel": env.channel, "sau": env.sau, "message_cost": self.message_cost,
                    "episode_length": self.episode_length, **({"view": env.view} if env.view != "own" else {}),
                    **{k: v for k, v in self.env_kwargs.items() if k not in ("episode_length", "message_cost")}},
            "slots": [s.to_json() for s in self.layout.slots],
            "observation_sizes": {s.name: s.obs_size for s in self.layout.slots},
            "action_sizes": {s.name: s.n_actions for s in self.layout.slots},
            "network": self.layout.dims(),
            "hyperparameters": self.config.to_dict(),
            "counters": {"env_steps": self.env_steps, "updates": self.updates, "episodes": self.episodes},
            "cagekit_version": cagekit.__version__,
        }

    def state_dict(self) -> dict[str, Any]:
        return {"algo": self.algo, "scenario": self.scenario, "seed": self.seed,
                "model": self.net.state_dict(), "target": self.target.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "counters": {"env_steps": self.env_steps, "updates": self.updates, "episodes": self.episodes},
                "replay": [asdict(b) for b in self.replay],
                **({} if self.mixers is None else {"mixer": self.mixers[0].state_dict(),
                                                   "target_mixer": self.mixers[1].state_dict()}),
                "rng": ckpt.rng_state()}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        if d.get("scenario") != self.scenario:
            raise ValueError(f"trainer state is for scenario {d.get('scenario')!r}, this learner runs "
                             f"scenario {self.scenario!r}")
        if d.get("algo") != self.algo:
            raise ValueError(f"trainer state is for algorithm {d.get('algo')!r}, this learner is {self.algo!r}")
        self.net.load_state_dict(d["model"])
        self.target.load_state_dict(d["target"])
        self._target_q = None
        self.optimizer.load_state_dict(d["optimizer"])
        c = d["counters"]
        self.env_steps, self.updates, self.episodes = int(c["env_steps"]), int(c["updates"]), int(c["episodes"])
        self.replay = [EpisodeBatch(**b) for b in d.get("replay", [])]
        if self.mixers is not None:
            if "mixer" not in d:
                raise ValueError("trainer state has no mixer, and this learner's config trains with one")
            self.mixers[0].load_state_dict(d["mixer"])
            self.mixers[1].load_state_dict(d["target_mixer"])
        if "rng" in d:
            ckpt.set_rng_state(d["rng"])

    def save(self, out_dir: str | Path) -> None:
        ckpt.save_checkpoint(out_dir, self.net.state_dict(), self.meta(), self.state_dict())

    def save_policy(self, out_dir: str | Path) -> None:
        ckpt.save_checkpoint(out_dir, self.net.state_dict(), self.meta())

    @classmethod
    def from_checkpoint(cls, path: str | Path, **overrides: Any) -> DialLearner:
        """A learner rebuilt from a checkpoint's meta, with its trainer state when present."""
        meta = ckpt.load_meta(path)
        env = dict(meta["env"])
        for key in ("channel", "sau", "view"):
            env.pop(key, None)
        config = DialConfig.from_dict(meta["hyperparameters"])
        learner = cls(meta["algo"], meta["scenario"], meta.get("seed", 0), config, **{**env, **overrides})
        if ckpt.has_trainer_state(path):
            learner.load_state_dict(ckpt.load_trainer_state(path))
        else:
            learner.net.load_state_dict(ckpt.load_model_state(path))
            learner.target.load_state_dict(learner.net.state_dict())
        return learner
