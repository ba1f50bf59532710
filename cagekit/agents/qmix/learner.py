"""Centralised QMix training (`QmixLearner`), with the message channel off.

Training: an episode replay buffer, double Q, a target network copied every
`target_update_episodes` episodes, RMSprop, gradient-norm clipping and epsilon-greedy exploration over
the unmasked actions.

Exact resume: every random choice of update `u` (episode seeds, exploration, the sampled batch) is
drawn from generators seeded by `(seed, u)`, so the resumable state is the networks, the optimizer, the
replay buffer and the counters (`state_dict()`, all tensors / numbers / lists / dicts).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

import cagekit
from cagekit.agents import checkpoint as ckpt
from cagekit.agents.base import Team, team_slots
from cagekit.agents.qmix.acting import epsilon_greedy, next_agent_values
from cagekit.agents.qmix.config import ALGO, QmixConfig
from cagekit.agents.qmix.inputs import TeamDims, agent_inputs, pad_observations
from cagekit.agents.qmix.networks import QMixer, RNNAgent
from cagekit.agents.qmix.replay import EpisodeBuffer
from cagekit.agents.qmix.team import build_team, weights_under
from cagekit.agents.rollout import training_reds


def _seed_int(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(1)[0])


class QmixLearner:
    """Centralised QMix training on one scenario (channel off); implements the `Learner` protocol.

    `red` (an env keyword): None (the scenario's default red), one name, a comma-separated list or "all"
    (`rollout.training_reds`); with several, one env per red and the learner's episodes take them in turn."""

    algo = ALGO

    def __init__(self, scenario: str, seed: int = 0, config: QmixConfig | dict | str | Path | None = None,
                 **env_kwargs: Any):
        self.scenario, self.seed = scenario, int(seed)
        self.config = QmixConfig.coerce(config)
        if env_kwargs.pop("channel", False):
            raise ValueError("QMix trains without the message channel (channel=False)")
        env_kwargs.setdefault("episode_length", 30)
        env_kwargs.setdefault("sau", True)
        self.env_kwargs = env_kwargs
        # one env per red agent trained against (red="all": every red of the scenario); episode k of the
        # learner runs on envs[k % len(envs)], so the mix is deterministic and resumes exactly
        env_kwargs = {k: v for k, v in env_kwargs.items() if k != "red"}
        self.envs = [cagekit.make_env(scenario, channel=False, seed=self.seed, red=red, **env_kwargs)
                     for red in training_reds(scenario, self.env_kwargs.get("red"))]
        self.env = self.envs[0]  # describes the team (slots, sizes, episode length)
        self.slots = team_slots(self.env)
        self.dims = TeamDims.of(self.slots, self.env.state_size)
        self.T = self.env.episode_length
        ckpt.seed_global_rngs(self.seed)  # saved in trainer.pt: the seed's, so a run's bytes are too
        torch.manual_seed(_seed_int(self.seed, 0xA9E))  # the initial weights
        cfg = self.config
        self.agent = RNNAgent(self.dims.input_size, self.dims.act_max, cfg.rnn_hidden)
        self.mixer = QMixer(self.dims.n_agents, self.dims.state_dim, cfg.mixer_embed, cfg.hypernet_hidden)
        self.target_agent = RNNAgent(self.dims.input_size, self.dims.act_max, cfg.rnn_hidden)
        self.target_mixer = QMixer(self.dims.n_agents, self.dims.state_dim, cfg.mixer_embed, cfg.hypernet_hidden)
        self._sync_target()
        self.params = list(self.agent.parameters()) + list(self.mixer.parameters())
        self.optimizer = torch.optim.RMSprop(self.params, lr=cfg.lr, alpha=cfg.rms_alpha, eps=cfg.rms_eps)
        self.buffer = EpisodeBuffer(cfg.buffer_episodes, self.T, self.dims)
        self.env_steps = 0
        self.updates = 0
        self.episodes = 0
        self.last_target_update_episode = 0

    # exploration / collection ---------------------------------------------------------------------
    @property
    def epsilon(self) -> float:
        cfg = self.config
        frac = min(1.0, self.env_steps / max(1, cfg.epsilon_anneal_steps))
        return cfg.epsilon_start + frac * (cfg.epsilon_finish - cfg.epsilon_start)

    def _sync_target(self) -> None:
        self.target_agent.load_state_dict(self.agent.state_dict())
        self.target_mixer.load_state_dict(self.mixer.state_dict())

    def env_for(self, episode: int) -> Any:
        """The environment the learner's `episode`-th episode (counting from 0) runs on: the reds in turn."""
        return self.envs[int(episode) % len(self.envs)]

    @torch.no_grad()
    def collect_episode(self, env_seed: int, rng: np.random.Generator, epsilon: float,
                        episode: int | None = None) -> tuple[dict, float]:
        """One epsilon-greedy episode -> (buffer entry, team return); changes no learner state.

        `episode` (the learner's episode index) picks the environment (`env_for`); None: the first one."""
        env, dims, T = self.env if episode is None else self.env_for(episode), self.dims, self.T
        n = dims.n_agents
        ep = {"obs": torch.zeros(T + 1, n, dims.obs_max, dtype=torch.int8),
              "avail": torch.zeros(T + 1, n, dims.act_max, dtype=torch.int8),
              "state": torch.zeros(T + 1, dims.state_dim, dtype=torch.int8),
              "actions": torch.zeros(T, n, dtype=torch.long), "reward": torch.zeros(T),
              "terminated": torch.zeros(T), "filled": torch.zeros(T)}
        observations, _ = env.reset(seed=env_seed)
        h = self.agent.init_hidden(n)
        last = torch.full((n,), -1, dtype=torch.long)
        total = 0.0
        t = 0
        ended = False
        while True:
            obs, avail = pad_observations(observations, self.slots, dims)
            ep["obs"][t], ep["avail"][t] = torch.from_numpy(obs), torch.from_numpy(avail)
            ep["state"][t] = torch.from_numpy(np.asarray(env.state(), dtype=np.int8))
            if t >= T or ended or not env.agents:
                break
            q, h = self.agent(agent_inputs(ep["obs"][t], last, dims), h)
            actions = epsilon_greedy(q, ep["avail"][t], epsilon, rng)
            observations, rewards, terms, truncs, _ = env.step(
                {slot.name: int(actions[slot.index]) for slot in self.slots})
            r = float(next(iter(rewards.values())))
            total += r
            ep["actions"][t] = torch.from_numpy(actions)
            ep["reward"][t] = r
            ep["filled"][t] = 1.0
            ended = any(terms.values()) or (any(truncs.values()) and not self.config.bootstrap_truncation)
            ep["terminated"][t] = float(ended)
            last = ep["actions"][t].clone()
            t += 1
        return ep, total

    # learning -----------------------------------------------------------------------------------
    def _unroll(self, agent: RNNAgent, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Q-values [B, T+1, n_agents, act_max] of the whole episodes."""
        obs, actions = batch["obs"], batch["actions"]
        B, T1 = obs.shape[:2]
        n = self.dims.n_agents
        last = torch.cat([torch.full((B, 1, n), -1, dtype=torch.long), actions], dim=1)  # action before t
        inputs = agent_inputs(obs, last[:, :T1], self.dims)
        h = agent.init_hidden(B * n)
        out = []
        for t in range(T1):
            q, h = agent(inputs[:, t].reshape(B * n, -1), h)
            out.append(q.view(B, n, -1))
        return torch.stack(out, dim=1)

    def td_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        cfg = self.config
        avail = batch["avail"]
        actions = batch["actions"]
        state = batch["state"].float()
        reward = batch["reward"] * cfg.reward_scale
        terminated, filled = batch["terminated"], batch["filled"]
        # the mask is the filled steps; a step after a terminal one is never filled
        q = self._unroll(self.agent, batch)
        chosen = q[:, :-1].gather(-1, actions.unsqueeze(-1)).squeeze(-1)  # [B, T, n]
        with torch.no_grad():
            tq = self._unroll(self.target_agent, batch)[:, 1:]
            target_max = next_agent_values(q.detach()[:, 1:], tq, avail[:, 1:], cfg.double_q)
            target_tot = self.target_mixer(target_max, state[:, 1:])
            targets = reward + cfg.gamma * (1.0 - terminated) * target_tot
        q_tot = self.mixer(chosen, state[:, :-1])
        td = (q_tot - targets) * filled
        loss = (td ** 2).sum() / filled.sum().clamp(min=1.0)
        n_filled = float(filled.sum().clamp(min=1.0))
        metrics = {"td_abs": float(td.detach().abs().sum()) / n_filled,
                   "q_taken": float((q_tot.detach() * filled).sum()) / n_filled,
                   "target_mean": float((targets * filled).sum()) / n_filled}
        return loss, metrics

    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """One gradient step on a batch of episodes (the part the learner-throughput benchmark times)."""
        loss, metrics = self.td_loss(batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, self.config.grad_clip)
        self.optimizer.step()
        metrics.update(loss=float(loss.detach()), grad_norm=float(grad_norm))
        return metrics

    def update(self) -> dict[str, float]:
        """Collect `episodes_per_update` episodes into the replay buffer, then one gradient update.

        Everything random here (episode seeds, exploration, the sampled batch) derives from
        (seed, update index); the learner's state changes only after collection, all at once, with
        Ctrl-C held back, so an interrupted run saves a consistent state.
        """
        from cagekit.agents.training import deferred_interrupt

        cfg = self.config
        rng = np.random.default_rng(_seed_int(self.seed, self.updates, 1))
        epsilon = self.epsilon
        collected = [self.collect_episode(_seed_int(self.seed, self.updates, 2, k), rng, epsilon, self.episodes + k)
                     for k in range(cfg.episodes_per_update)]
        returns = [ret for _, ret in collected]
        with deferred_interrupt():
            for ep, _ in collected:
                self.buffer.add(ep)
                self.episodes += 1
                self.env_steps += int(ep["filled"].sum())
            metrics = self.train_step(self.buffer.sample(cfg.batch_episodes, rng))
            if (self.episodes - self.last_target_update_episode) >= cfg.target_update_episodes:
                self._sync_target()
                self.last_target_update_episode = self.episodes
            self.updates += 1
        metrics.update({"return": float(np.mean(returns)), "env_return": float(np.mean(returns)), "bits": 0.0,
                        "epsilon": float(epsilon), "buffer": float(len(self.buffer))})
        return metrics

    # state ----------------------------------------------------------------------------------------
    def model_state_dict(self) -> dict[str, torch.Tensor]:
        """The weights a checkpoint's model.pt holds: `agent.*` (what execution needs) and `mixer.*`."""
        out = {f"agent.{k}": v.detach().clone() for k, v in self.agent.state_dict().items()}
        out.update({f"mixer.{k}": v.detach().clone() for k, v in self.mixer.state_dict().items()})
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"algo": ALGO, "scenario": self.scenario, "seed": self.seed, "config": asdict(self.config),
                "agent": self.agent.state_dict(), "mixer": self.mixer.state_dict(),
                "target_agent": self.target_agent.state_dict(), "target_mixer": self.target_mixer.state_dict(),
                "optimizer": self.optimizer.state_dict(), "buffer": self.buffer.state_dict(),
                "counters": {"env_steps": self.env_steps, "updates": self.updates, "episodes": self.episodes,
                             "last_target_update_episode": self.last_target_update_episode},
                "rng": ckpt.rng_state()}

    def load_state_dict(self, data: dict[str, Any]) -> None:
        if data.get("algo") != ALGO:
            raise ValueError(f"trainer state is for algorithm {data.get('algo')!r}, this learner is {ALGO!r}")
        if data.get("scenario") != self.scenario:
            raise ValueError(f"trainer state is for scenario {data.get('scenario')!r}, this learner runs "
                             f"scenario {self.scenario!r}")
        self.agent.load_state_dict(data["agent"])
        self.mixer.load_state_dict(data["mixer"])
        self.target_agent.load_state_dict(data["target_agent"])
        self.target_mixer.load_state_dict(data["target_mixer"])
        self.optimizer.load_state_dict(data["optimizer"])
        self.buffer.load_state_dict(data["buffer"])
        c = data["counters"]
        self.env_steps, self.updates, self.episodes = int(c["env_steps"]), int(c["updates"]), int(c["episodes"])
        self.last_target_update_episode = int(c["last_target_update_episode"])
        if "rng" in data:
            ckpt.set_rng_state(data["rng"])

    def meta(self) -> dict[str, Any]:
        env = self.env
        return {
            "algo": ALGO, "scenario": self.scenario, "seed": self.seed,
            "env": {"channel": False, "sau": env.sau, "message_cost": env.message_cost,
                    "episode_length": env.episode_length,
                    **{k: v for k, v in self.env_kwargs.items() if k not in ("episode_length", "sau")}},
            "slots": [s.to_json() for s in self.slots],
            "observation_sizes": {s.name: s.obs_size for s in self.slots},
            "action_sizes": {s.name: s.n_actions for s in self.slots},
            "network": asdict(self.dims),
            "hyperparameters": self.config.to_dict(),
            "counters": {"env_steps": self.env_steps, "updates": self.updates, "episodes": self.episodes},
            "cagekit_version": cagekit.__version__,
        }

    def save(self, out_dir: str | Path) -> Path:
        """A checkpoint directory: model.pt (weights), meta.json, trainer.pt (= state_dict())."""
        return ckpt.save_checkpoint(out_dir, self.model_state_dict(), self.meta(), self.state_dict())

    def save_policy(self, out_dir: str | Path) -> Path:
        """A snapshot: model.pt and meta.json only (loadable as a team, not resumable)."""
        return ckpt.save_checkpoint(out_dir, self.model_state_dict(), self.meta())

    @classmethod
    def from_checkpoint(cls, path: str | Path, **overrides: Any) -> QmixLearner:
        """A learner rebuilt from a checkpoint's meta, with its trainer state when present."""
        meta = ckpt.load_meta(path)
        ckpt.check_algo(meta, ALGO, path)
        env = {k: v for k, v in meta["env"].items() if k != "channel"}
        learner = cls(meta["scenario"], meta.get("seed", 0), QmixConfig.from_dict(meta["hyperparameters"]),
                      **{**env, **overrides})
        if ckpt.has_trainer_state(path):
            learner.load_state_dict(ckpt.load_trainer_state(path))
        else:
            learner._load_model(ckpt.load_model_state(path))
            learner._sync_target()
        return learner

    def _load_model(self, weights: dict[str, torch.Tensor]) -> None:
        self.agent.load_state_dict(weights_under(weights, "agent."))
        self.mixer.load_state_dict(weights_under(weights, "mixer."))

    def team(self) -> Team:
        """The greedy, decentralised team of the current weights (a copy: training goes on unaffected)."""
        net = RNNAgent(self.dims.input_size, self.dims.act_max, self.config.rnn_hidden)
        net.load_state_dict(self.agent.state_dict())
        return build_team(net, self.slots, self.dims, self.scenario, self.meta())
