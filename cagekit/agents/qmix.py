"""QMix (Rashid et al. 2018, as in pymarl): the paper's centralised-training baseline, without messages.

Recurrent agents (one GRU-64 network shared by all blue agents; input = own observation, agent-id
one-hot and previous-action one-hot) give per-agent Q-values; a monotonic mixer whose weights come from
hypernetworks of the global state (absolute values, ELU, a state-value term) combines the chosen
Q-values into Q_tot. Training: an episode replay buffer, double Q, a target network copied every
`target_update_episodes` episodes, RMSprop, gradient-norm clipping and epsilon-greedy exploration over
the unmasked actions. Execution is decentralised: `QmixAgent` keeps its own GRU state and last action.

Agents of one team may own different numbers of hosts and actions: observations are zero-padded to the
largest, and the padded actions are masked everywhere (action choice and targets alike).

Exact resume: every random choice of update `u` (episode seeds, exploration, the sampled batch) is
drawn from generators seeded by `(seed, u)`, so the resumable state is the networks, the optimizer, the
replay buffer and the counters (`state_dict()`, all tensors / numbers / lists / dicts).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import cagekit
from cagekit.agents import checkpoint as ckpt
from cagekit.agents.base import Agent, AgentSlot, Team, observation_parts, team_slots
from cagekit.agents.config_file import HyperparameterConfig
from cagekit.agents.rollout import training_reds

ALGO = "qmix"
_NEG = -1e9  # the Q-value a masked action gets before an argmax / max


@dataclass
class QmixConfig(HyperparameterConfig):
    """Hyperparameters; defaults are pymarl's QMix (and the paper's QMix baseline)."""

    LEARNER = "QMix"

    rnn_hidden: int = 64
    mixer_embed: int = 32
    hypernet_hidden: int = 64
    buffer_episodes: int = 5000
    batch_episodes: int = 32
    episodes_per_update: int = 1  # episodes collected before each gradient update (pymarl: 1)
    lr: float = 5e-4
    rms_alpha: float = 0.99
    rms_eps: float = 1e-5
    gamma: float = 0.99
    grad_clip: float = 10.0
    target_update_episodes: int = 200
    double_q: bool = True
    epsilon_start: float = 1.0
    epsilon_finish: float = 0.05
    epsilon_anneal_steps: int = 50_000  # env steps
    reward_scale: float = 1.0  # rewards are multiplied by this in the TD targets (logged returns are not)
    bootstrap_truncation: bool = True  # the time-limit end is not terminal: bootstrap from the last state

    BOUNDS = {**dict.fromkeys(("rnn_hidden", "mixer_embed", "hypernet_hidden", "buffer_episodes", "batch_episodes",
                               "episodes_per_update", "target_update_episodes"), ">= 1"),
              **dict.fromkeys(("lr", "rms_eps", "grad_clip", "reward_scale"), "> 0"),
              **dict.fromkeys(("gamma", "rms_alpha", "epsilon_start", "epsilon_finish"), "in [0, 1]"),
              "epsilon_anneal_steps": ">= 0"}

    def __post_init__(self) -> None:
        self.check_bounds()


# networks ---------------------------------------------------------------------------------------------
class RNNAgent(nn.Module):
    """pymarl's RNNAgent: Linear-ReLU, GRUCell, Linear to Q-values. One network shared by all agents."""

    def __init__(self, input_size: int, n_actions: int, hidden: int = 64):
        super().__init__()
        self.hidden = hidden
        self.fc1 = nn.Linear(input_size, hidden)
        self.rnn = nn.GRUCell(hidden, hidden)
        self.fc2 = nn.Linear(hidden, n_actions)

    def init_hidden(self, batch: int) -> torch.Tensor:
        return torch.zeros(batch, self.hidden)

    def forward(self, inputs: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.relu(self.fc1(inputs))
        h = self.rnn(x, h)
        return self.fc2(h), h


class QMixer(nn.Module):
    """Monotonic mixer: Q_tot = w2(s)^T ELU(W1(s)^T q + b1(s)) + V(s) with |W1|, |w2| >= 0."""

    def __init__(self, n_agents: int, state_dim: int, embed: int = 32, hypernet: int = 64):
        super().__init__()
        self.n_agents, self.state_dim, self.embed = n_agents, state_dim, embed
        self.hyper_w_1 = nn.Sequential(nn.Linear(state_dim, hypernet), nn.ReLU(), nn.Linear(hypernet, embed * n_agents))
        self.hyper_w_final = nn.Sequential(nn.Linear(state_dim, hypernet), nn.ReLU(), nn.Linear(hypernet, embed))
        self.hyper_b_1 = nn.Linear(state_dim, embed)
        self.V = nn.Sequential(nn.Linear(state_dim, embed), nn.ReLU(), nn.Linear(embed, 1))

    def forward(self, agent_qs: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """agent_qs [..., n_agents], states [..., state_dim] -> Q_tot [...]."""
        lead = agent_qs.shape[:-1]
        qs = agent_qs.reshape(-1, 1, self.n_agents)
        s = states.reshape(-1, self.state_dim)
        w1 = torch.abs(self.hyper_w_1(s)).view(-1, self.n_agents, self.embed)
        b1 = self.hyper_b_1(s).view(-1, 1, self.embed)
        hidden = F.elu(torch.bmm(qs, w1) + b1)
        w_final = torch.abs(self.hyper_w_final(s)).view(-1, self.embed, 1)
        v = self.V(s).view(-1, 1, 1)
        return (torch.bmm(hidden, w_final) + v).view(lead)


@dataclass(frozen=True)
class TeamDims:
    """The padded shapes of one team: derived from its slots and the environment's state size."""

    n_agents: int
    obs_max: int
    act_max: int
    state_dim: int

    @property
    def input_size(self) -> int:
        return self.obs_max + self.n_agents + self.act_max

    @classmethod
    def of(cls, slots: list[AgentSlot], state_dim: int) -> TeamDims:
        return cls(n_agents=len(slots), obs_max=max(s.obs_size for s in slots),
                   act_max=max(s.n_defence for s in slots), state_dim=int(state_dim))


def agent_inputs(obs: torch.Tensor, last_actions: torch.Tensor, dims: TeamDims) -> torch.Tensor:
    """[..., n_agents, obs_max] padded observations + [..., n_agents] previous actions (-1: none)
    -> [..., n_agents, input_size]: observation, agent-id one-hot, previous-action one-hot."""
    lead = obs.shape[:-2]
    ids = torch.eye(dims.n_agents).expand(*lead, dims.n_agents, dims.n_agents)
    last = F.one_hot((last_actions + 1).long(), dims.act_max + 1)[..., 1:].float()
    return torch.cat([obs.float(), ids, last], dim=-1)


def pad_observations(observations: dict[str, Any], slots: list[AgentSlot], dims: TeamDims
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(obs [n_agents, obs_max] int8, avail [n_agents, act_max] int8) from the env's dict of observations;
    padded actions are unavailable; an agent whose mask is all zero gets Sleep (action 0)."""
    obs = np.zeros((dims.n_agents, dims.obs_max), dtype=np.int8)
    avail = np.zeros((dims.n_agents, dims.act_max), dtype=np.int8)
    for slot in slots:
        vec, mask = observation_parts(observations[slot.name])
        obs[slot.index, : vec.size] = vec
        if mask is None:
            avail[slot.index, : slot.n_defence] = 1
        else:
            avail[slot.index, : mask.size] = mask
        if not avail[slot.index].any():
            avail[slot.index, 0] = 1
    return obs, avail


def masked_greedy(q: torch.Tensor, avail: torch.Tensor) -> torch.Tensor:
    """argmax over the available actions only."""
    return q.masked_fill(avail == 0, _NEG).argmax(dim=-1)


def epsilon_greedy(q: torch.Tensor, avail: torch.Tensor, epsilon: float, rng: np.random.Generator) -> np.ndarray:
    """Per agent: with probability epsilon a uniform choice among its available actions, else the greedy one."""
    greedy = masked_greedy(q, avail).numpy()
    av = avail.numpy()
    out = greedy.copy()
    explore = rng.random(len(out)) < epsilon
    for i in np.flatnonzero(explore):
        out[i] = rng.choice(np.flatnonzero(av[i]))
    return out


def next_agent_values(q_next: torch.Tensor, target_q_next: torch.Tensor, next_avail: torch.Tensor,
                      double_q: bool = True) -> torch.Tensor:
    """Each agent's bootstrap value at the next step, over its available actions only: double Q takes the
    target network's value of the online network's best available action, plain Q the target's max."""
    if double_q:
        best = masked_greedy(q_next, next_avail)
        return target_q_next.gather(-1, best.unsqueeze(-1)).squeeze(-1)
    return target_q_next.masked_fill(next_avail == 0, _NEG).max(dim=-1).values


# replay -----------------------------------------------------------------------------------------------
class EpisodeBuffer:
    """A ring buffer of whole fixed-length episodes, stored as tensors (resumable with weights_only)."""

    FIELDS = ("obs", "avail", "state", "actions", "reward", "terminated", "filled")

    def __init__(self, capacity: int, T: int, dims: TeamDims):
        self.capacity, self.T, self.dims = int(capacity), int(T), dims
        n, o, a, s = dims.n_agents, dims.obs_max, dims.act_max, dims.state_dim
        self.obs = torch.zeros(capacity, T + 1, n, o, dtype=torch.int8)
        self.avail = torch.zeros(capacity, T + 1, n, a, dtype=torch.int8)
        self.state = torch.zeros(capacity, T + 1, s, dtype=torch.int8)
        self.actions = torch.zeros(capacity, T, n, dtype=torch.long)
        self.reward = torch.zeros(capacity, T)
        self.terminated = torch.zeros(capacity, T)
        self.filled = torch.zeros(capacity, T)
        self.size = 0
        self.pos = 0

    def __len__(self) -> int:
        return self.size

    def add(self, episode: dict[str, torch.Tensor]) -> None:
        for name in self.FIELDS:
            getattr(self, name)[self.pos] = episode[name]
        self.pos = (self.pos + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        idx = torch.as_tensor(rng.choice(self.size, size=min(batch, self.size), replace=False))
        return {name: getattr(self, name)[idx] for name in self.FIELDS}

    def state_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {name: getattr(self, name)[: self.size].clone() for name in self.FIELDS}
        out.update(size=self.size, pos=self.pos, capacity=self.capacity, T=self.T)
        return out

    def load_state_dict(self, data: dict[str, Any]) -> None:
        if int(data["capacity"]) != self.capacity or int(data["T"]) != self.T:
            raise ValueError(f"replay buffer shape mismatch: saved capacity {data['capacity']} T {data['T']}, "
                             f"this one {self.capacity} T {self.T}")
        self.size, self.pos = int(data["size"]), int(data["pos"])
        for name in self.FIELDS:
            getattr(self, name).zero_()
            getattr(self, name)[: self.size] = data[name]


# the learner ------------------------------------------------------------------------------------------
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
        self.agent.load_state_dict(_strip(weights, "agent."))
        self.mixer.load_state_dict(_strip(weights, "mixer."))

    def team(self) -> Team:
        """The greedy, decentralised team of the current weights (a copy: training goes on unaffected)."""
        net = RNNAgent(self.dims.input_size, self.dims.act_max, self.config.rnn_hidden)
        net.load_state_dict(self.agent.state_dict())
        return _make_team(net, self.slots, self.dims, self.scenario, self.meta())


# decentralised execution ------------------------------------------------------------------------------
class QmixAgent(Agent):
    """One blue agent: the shared network, its own GRU state and previous action; greedy over its mask."""

    def __init__(self, slot: AgentSlot, net: RNNAgent, dims: TeamDims):
        self.slot, self.net, self.dims = slot, net, dims
        self.end_episode()

    def end_episode(self) -> None:
        self.h = self.net.init_hidden(1)
        self.last = -1

    def q_values(self, observation: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """(Q [act_max], avail [act_max]) for this step; advances the recurrent state."""
        vec, mask = observation_parts(observation)
        obs = torch.zeros(self.dims.n_agents, self.dims.obs_max, dtype=torch.int8)
        obs[self.slot.index, : vec.size] = torch.as_tensor(vec.astype(np.int8))
        last = torch.full((self.dims.n_agents,), -1, dtype=torch.long)
        last[self.slot.index] = self.last
        x = agent_inputs(obs, last, self.dims)[self.slot.index: self.slot.index + 1]
        with torch.no_grad():
            q, self.h = self.net(x, self.h)
        avail = torch.zeros(self.dims.act_max, dtype=torch.int8)
        if mask is None:
            avail[: self.slot.n_defence] = 1
        else:
            avail[: mask.size] = torch.as_tensor(mask.astype(np.int8))
        if not avail.any():
            avail[0] = 1
        return q[0], avail

    def get_action(self, observation: Any, action_space: Any = None) -> int:
        q, avail = self.q_values(observation)
        action = int(masked_greedy(q, avail))
        self.last = action
        return self.slot.encode(action)


def _make_team(net: RNNAgent, slots: list[AgentSlot], dims: TeamDims, scenario: str, meta: dict) -> Team:
    net.eval()
    agents: dict[str, Agent] = {s.name: QmixAgent(s, net, dims) for s in slots}
    return Team(agents=agents, scenario=scenario, kind=ALGO, meta=meta)


def _strip(weights: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}


def load_team(path: str | Path, meta: dict[str, Any] | None = None, scenario: str | None = None) -> Team:
    """The greedy team of a QMix checkpoint directory (model.pt loaded with weights_only=True)."""
    meta = ckpt.load_meta(path) if meta is None else meta
    ckpt.check_algo(meta, ALGO, path)
    if scenario is not None:
        ckpt.check_scenario(meta, scenario, path)
    meta_file = Path(path) / ckpt.META_FILE
    try:
        slots = [AgentSlot.from_json(s) for s in meta["slots"]]
        cfg = QmixConfig.from_dict(meta["hyperparameters"])
        net_dims = meta.get("network") or {}
        state_dim = int(net_dims.get("state_dim", 0))
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"corrupt checkpoint metadata {meta_file}: {exc}") from exc
    dims = TeamDims.of(slots, state_dim)
    net = RNNAgent(dims.input_size, dims.act_max, cfg.rnn_hidden)
    try:
        net.load_state_dict(_strip(ckpt.load_model_state(path), "agent."))
    except RuntimeError as exc:
        raise ValueError(f"checkpoint file {Path(path) / ckpt.MODEL_FILE} does not fit its meta.json: {exc}") from exc
    return _make_team(net, slots, dims, meta["scenario"], meta)


# benchmark --------------------------------------------------------------------------------------------
def qmix_update_throughput(n_agents_scenario: str = "paper-small", batch_episodes: int = 32,
                           episode_length: int = 30, repeats: int = 5) -> float:
    """Env steps per second of one QMix gradient update on a batch of `batch_episodes` x `episode_length`
    (the learner alone: the buffer is filled with synthetic episodes of the scenario's shapes)."""
    learner = QmixLearner(n_agents_scenario, seed=0, config=QmixConfig(buffer_episodes=batch_episodes,
                                                                        batch_episodes=batch_episodes),
                          episode_length=episode_length)
    d, T = learner.dims, learner.T
    g = torch.Generator().manual_seed(0)
    for _ in range(batch_episodes):
        avail = (torch.rand(T + 1, d.n_agents, d.act_max, generator=g) < 0.5).to(torch.int8)
        avail[..., 0] = 1
        learner.buffer.add({
            "obs": (torch.rand(T + 1, d.n_agents, d.obs_max, generator=g) < 0.3).to(torch.int8),
            "avail": avail,
            "state": (torch.rand(T + 1, d.state_dim, generator=g) < 0.3).to(torch.int8),
            "actions": torch.zeros(T, d.n_agents, dtype=torch.long),
            "reward": -torch.rand(T, generator=g), "terminated": torch.zeros(T), "filled": torch.ones(T)})
    rng = np.random.default_rng(0)
    learner.train_step(learner.buffer.sample(batch_episodes, rng))  # warm-up
    times = []
    for _ in range(repeats):
        batch = learner.buffer.sample(batch_episodes, rng)
        start = time.perf_counter()
        learner.train_step(batch)
        times.append(time.perf_counter() - start)
    return batch_episodes * T / float(np.median(times))


__all__ = ["EpisodeBuffer", "QMixer", "QmixAgent", "QmixConfig", "QmixLearner", "RNNAgent", "TeamDims",
           "epsilon_greedy", "load_team", "masked_greedy", "next_agent_values", "qmix_update_throughput"]
