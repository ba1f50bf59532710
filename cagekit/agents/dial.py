"""DIAL (Differentiable Inter-Agent Learning) with a costed 1-bit channel, with and without SAU, and no-comms.

The C-Net (one network shared by all blue agents, as in the notes):

    z = E_id[agent] + sum_h E_host[h * 16 + code_h] + Linear(block bits) + E_prev[previous defence + 1]
        + MLP_msg(received messages)               # MLP_msg = Norm, Linear, ReLU (absent without a channel)
    h = GRU(z, h)                                  # 2 layers, 128 wide
    out = Linear(Norm(ReLU(...)))                  # Linear, Norm, ReLU, Linear -> D Q-values (+1 message logit)

Agents have different numbers of hosts, block subnets and defence actions: host positions are padded
(padding index with a zero embedding), block bits are zero-padded and the Q-values of padded actions
are masked out. `DialConfig.norm` picks the normalisation: "batch" (the notes' BatchNorm; in
training the statistics come from the B x A rows of one time step, at execution the running
statistics are used, so batch-1 decentralised execution works), "layer" (LayerNorm on the hidden
layer; the 1..2-wide message input is then left unnormalised since LayerNorm over it would be
constant) or "none".

DRU (discretise/regularise unit): in training the message is `sigmoid(logit + N(0, sigma^2))`
(sigma = 2), at execution it is the hard bit `logit > 0`. With `gate_messages` (the authors' code:
"an agent may only send when its own observation shows something") the message is multiplied by
1 when any own host row shows more than a bare scan, else 0.

Training (`DialLearner.update`): B environments (`make_env` with seeds derived from (seed, update
index), or one `TwinBatch` of B on the twin: `cagekit.agents.rollout`) step in lockstep for a whole
episode, without gradients, with the online network; an agent's
soft message at t feeds its teammates' message input at t+1, and the environment receives the hard
bit `soft > 0.5` (for its channel cost and SAU masks). The DRU noise of every step is recorded. The
learner then replays the episode batch with gradients: the same inputs and noise reproduce the same
soft messages, now differentiable, so a receiver's TD error backpropagates into the sender's message
logit across agents and time. Loss, averaged over episodes b, steps t and agents a:

    L = mean_{b,t,a} (y_{b,t,a} - Q_{b,t,a}(u_{b,t,a}))^2  +  cost_weight * mean_{b,t,a} s * message_cost * m_{b,t,a}

    y_{b,t,a} = s * r_{b,t} + gamma * max_{u' unmasked at t+1} Q^-_{b,t+1,a}(u')    (t < T-1)
    y_{b,T-1,a} = s * r_{b,T-1}                                                  (episodes end at T)

(the 30-step time limit is treated as terminal: no bootstrap at the last step, consistently in the
one-step and the lambda targets; with `bootstrap_truncation` (a deviation, off in both configs) the batch
also keeps the observation after the last step and y_{b,T-1,a} = s * r_{b,T-1} + gamma * max Q^-_{b,T,a},
as QMix and SB3 treat the time limit). With `td_lambda` > 0 the one-step target is replaced by Peng's
Q(lambda) return of `lambda_targets` (y_t = s r_t + gamma ((1 - lambda) max Q^-_{t+1} + lambda y_{t+1}));
with `grad_steps` > 1 each collected batch gets that many gradient steps (the recorded DRU noise makes
every replay of the batch exact). Both are deviations from DIAL, off by default, used by the fast
config `configs/dial-sau-fast.yaml` (see docs/dial.md). With `replay_batches` = N > 0 (another deviation,
off in both configs) each gradient step instead draws `batch_episodes` episodes from the last N batches,
each replayed with its own recorded noise and its reward recomputed at the current channel cost.
`updates` counts gradient steps, and the target network is copied every `target_update` gradient steps.

where s = reward_scale (1 by default), r is the team reward (env reward minus the hard channel cost of
the bits actually sent, at the scheduled cost: `cost_warmup_steps` at 0, then a linear ramp over
`cost_ramp_steps` to the environment's cost; without them, the environment's cost throughout), m the
soft (DRU) message the agent sent at t, and
Q^- the target network unrolled on the same batch with its own soft messages and the same noise.
The second term is the differentiable form of the channel cost (the hard cost in r carries no
gradient to the message), so a positive message_cost pushes message logits down unless a teammate's
TD error pulls them up.

Action selection in training: epsilon-greedy over the UNMASKED defence actions only; the message bit
is always the DRU's (never epsilon-random). Variants: `dial-sau` (sau=True), `dial` (sau=False),
`nocomm` (channel=False: no message input, no message output).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import cagekit
from cagekit.agents import checkpoint as ckpt
from cagekit.agents.base import Agent, AgentSlot, Team, observation_parts, team_returns, team_slots
from cagekit.agents.config_file import HyperparameterConfig
from cagekit.agents.qmix import QMixer
from cagekit.agents.rollout import AgentArrays, EnvListRollout, TwinRollout, training_reds
from cagekit.wrappers.sau import IS_QUIET

VARIANTS: dict[str, dict[str, Any]] = {
    "dial-sau": {"channel": True, "sau": True},
    "dial": {"channel": True, "sau": False},
    "nocomm": {"channel": False, "sau": True},
    # no-comms whose agents also see their teammates' rows of the same step: an oracle channel, the most a
    # protocol could tell them, with no-comms' masks (an ablation: is what teammates see worth anything?)
    "shared-obs": {"channel": False, "sau": True, "view": "team"},
}


def check_team(algo: str, scenario: str, layout: str | None = None) -> None:
    """A ValueError where `algo` talks on the channel and `scenario`'s `layout` has one blue agent: its messages
    would reach no one, and the run trained but its team failed when scored (an empty message input)."""
    from cagekit.scenarios import get_scenario

    spec = get_scenario(scenario)
    agents = spec.layout(layout)
    if not VARIANTS[algo]["channel"] or len(agents) > 1:
        return
    name = layout or spec.default_layout
    several = {k: v for k, v in spec.blue_layouts.items() if len(v) > 1}
    where = f"{scenario} has no layout with several"
    if several:
        listed = "; ".join(f"{k} ({', '.join(a.name for a in v)})" for k, v in several.items())
        where = f"{scenario}'s layouts with several: {listed}; choose one with --layout {next(iter(several))}"
    raise ValueError(f"{algo} needs two or more blue agents to talk, and {scenario}'s layout {name!r} has one "
                     f"({agents[0].name}); {where}. Or train nocomm, qmix or ppo, which need no teammate")


# configuration ---------------------------------------------------------------------------------
@dataclass
class DialConfig(HyperparameterConfig):
    """DIAL hyperparameters; defaults follow the notes (paper + authors' code, original DIAL where open)."""

    LEARNER = "DIAL"

    hidden: int = 128                 # embedding / GRU width
    gru_layers: int = 2
    norm: str = "batch"               # "batch" (notes), "layer" or "none"
    sigma: float = 2.0                # DRU noise std in training
    gate_messages: bool = True        # send only when own rows show something (authors' code)
    gamma: float = 0.9
    lr: float = 5e-4
    momentum: float = 0.05            # RMSprop momentum (authors' code; original DIAL 0.95)
    rms_alpha: float = 0.99
    grad_clip: float = 10.0           # max gradient norm (0 = off)
    batch_episodes: int = 128         # episodes (parallel environments) per update
    target_update: int = 100          # copy the target network every N updates
    eps_start: float = 1.0
    eps_end: float = 0.05
    eps_anneal_steps: int = 2_000_000  # env steps from eps_start to eps_end
    cost_weight: float = 1.0          # weight of the differentiable channel-cost term
    reward_scale: float = 1.0         # rewards (and the channel-cost term) are multiplied by this in the loss
    td_lambda: float = 0.0            # 0 = DIAL's one-step Q-learning target; > 0 = Q(lambda) targets (deviation)
    grad_steps: int = 1               # gradient steps on each collected batch (DIAL: 1; > 1 is a deviation)
    double_q: bool = False            # double Q-learning: argmax by the online net, value by the target (deviation)
    cost_warmup_steps: int = 0        # env steps trained at message cost 0 before the cost applies (deviation)
    cost_ramp_steps: int = 0          # then env steps over which the cost rises linearly to the env's
    replay_batches: int = 0           # > 0: gradient steps sample episodes from the last N batches (deviation)
    mixer: bool = False               # train through a QMix mixer on the global state (deviation; training only)
    bootstrap_truncation: bool = False  # bootstrap the time limit from the final observation (deviation; QMix's way)
    mixer_embed: int = 32             # the mixer's sizes (pymarl's QMix)
    hypernet_hidden: int = 64
    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes carried into meta.json

    BOUNDS = {**dict.fromkeys(("hidden", "gru_layers", "batch_episodes", "target_update", "grad_steps", "mixer_embed",
                               "hypernet_hidden"), ">= 1"),
              **dict.fromkeys(("lr", "reward_scale"), "> 0"),
              **dict.fromkeys(("sigma", "grad_clip", "eps_anneal_steps", "cost_weight", "cost_warmup_steps",
                               "cost_ramp_steps", "replay_batches"), ">= 0"),
              **dict.fromkeys(("gamma", "rms_alpha", "eps_start", "eps_end", "td_lambda"), "in [0, 1]"),
              "momentum": "in [0, 1)"}

    def __post_init__(self) -> None:
        if self.norm not in ("batch", "layer", "none"):
            raise ValueError(f"DIAL config key 'norm' must be 'batch', 'layer' or 'none', got {self.norm!r}")
        self.check_bounds()
        if self.mixer and self.bootstrap_truncation:
            raise ValueError("bootstrap_truncation is not supported with mixer (the final global state is not kept); "
                             "set one of them to false")
        if self.norm == "batch" and self.batch_episodes < 2:
            raise ValueError("norm='batch' needs batch_episodes >= 2 (BatchNorm statistics); use norm='layer'")


# team layout: padding and observation encoding -------------------------------------------------
@dataclass(frozen=True)
class TeamLayout:
    """Dimensions of one team (scenario + channel) and its observation encoding, padded to the maxima."""

    slots: tuple[AgentSlot, ...]

    @property
    def n_agents(self) -> int:
        return len(self.slots)

    @property
    def channel(self) -> bool:
        return self.slots[0].channel

    @property
    def max_hosts(self) -> int:
        return max(len(s.hosts) for s in self.slots)

    @property
    def max_blocks(self) -> int:
        return max(len(s.block_subnets) for s in self.slots)

    @property
    def max_defence(self) -> int:
        return max(s.n_defence for s in self.slots)

    @property
    def n_received(self) -> int:
        return self.n_agents - 1 if self.channel else 0

    @property
    def block_width(self) -> int:
        """Width of the block-bit arrays: the padded block bits, then the teammates' bits of a team view."""
        return self.max_blocks + self.max_team_bits

    @property
    def max_team_bits(self) -> int:
        return max(s.team_bits for s in self.slots)

    def dims(self) -> dict[str, Any]:
        team = {"team_bits": self.max_team_bits} if self.max_team_bits else {}
        return {"n_agents": self.n_agents, "max_hosts": self.max_hosts, "max_blocks": self.max_blocks,
                "max_defence": self.max_defence, "n_received": self.n_received, "channel": self.channel, **team}

    def encode_agent(self, a: int, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(host indices (N, H), block bits (N, K), received bits (N, R), alarmed (N,)) of agent a's vectors.

        With a team view the teammates' bits follow the block bits in the same array (N, K + T), so that
        every buffer of block bits carries them without a field of its own (`CNet.embed` splits them)."""
        slot = self.slots[a]
        vectors = np.asarray(vectors, dtype=np.int64).reshape(-1, slot.obs_size)
        n, h, k = len(vectors), len(slot.hosts), len(slot.block_subnets)
        codes = vectors[:, : 4 * h].reshape(n, h, 4) @ np.array([8, 4, 2, 1])
        idx = np.full((n, self.max_hosts), self.max_hosts * 16, dtype=np.int64)
        idx[:, :h] = np.arange(h) * 16 + codes
        blocks = np.zeros((n, self.block_width), dtype=np.float32)
        blocks[:, :k] = vectors[:, 4 * h: 4 * h + k]
        r = 4 * h + k + slot.n_received
        received = vectors[:, 4 * h + k: r].astype(np.float32)
        blocks[:, self.max_blocks: self.max_blocks + slot.team_bits] = vectors[:, r:]
        alarmed = (~IS_QUIET[codes]).any(axis=1).astype(np.float32)
        return idx, blocks, received, alarmed

    def defence_mask(self, a: int, masks: np.ndarray) -> np.ndarray:
        """Padded (N, D) defence mask from the environment's action masks (N, n_actions) of agent a."""
        masks = np.asarray(masks).reshape(-1, self.slots[a].n_actions)
        if self.channel:
            masks = masks[:, ::2]
        out = np.zeros((len(masks), self.max_defence), dtype=bool)
        out[:, : masks.shape[1]] = masks.astype(bool)
        return out


def _norm(kind: str, width: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm1d(width)
    if kind == "layer":
        return nn.LayerNorm(width)
    return nn.Identity()


class CNet(nn.Module):
    """The DIAL C-Net shared by all agents of a team (see the module docstring)."""

    def __init__(self, dims: dict[str, Any], config: DialConfig):
        super().__init__()
        self.dims = dict(dims)
        hid = config.hidden
        self.n_agents, self.max_hosts = int(dims["n_agents"]), int(dims["max_hosts"])
        self.max_blocks, self.max_defence = int(dims["max_blocks"]), int(dims["max_defence"])
        self.n_received, self.comm = int(dims["n_received"]), bool(dims["channel"])
        self.hidden, self.layers = hid, config.gru_layers
        self.agent_embed = nn.Embedding(self.n_agents, hid)
        self.host_embed = nn.Embedding(self.max_hosts * 16 + 1, hid, padding_idx=self.max_hosts * 16)
        self.block_embed = nn.Linear(self.max_blocks, hid) if self.max_blocks else None
        self.prev_embed = nn.Embedding(self.max_defence + 1, hid)  # 0 = no previous action
        if self.comm:
            msg_norm = _norm(config.norm, self.n_received) if config.norm == "batch" else nn.Identity()
            self.msg_mlp: nn.Sequential | None = nn.Sequential(msg_norm, nn.Linear(self.n_received, hid), nn.ReLU())
        else:
            self.msg_mlp = None
        self.cells = nn.ModuleList(nn.GRUCell(hid, hid) for _ in range(config.gru_layers))
        self.head = nn.Sequential(nn.Linear(hid, hid), _norm(config.norm, hid), nn.ReLU(),
                                  nn.Linear(hid, self.max_defence + (1 if self.comm else 0)))
        # a team view's teammate bits (made last, so that the other layers start as without a team view)
        self.team_bits = int(dims.get("team_bits", 0))
        self.team_embed = nn.Linear(self.team_bits, hid) if self.team_bits else None

    def init_hidden(self, n: int) -> torch.Tensor:
        return torch.zeros(self.layers, n, self.hidden)

    def embed(self, agent_ids: torch.Tensor, hosts: torch.Tensor, blocks: torch.Tensor,
              prev: torch.Tensor) -> torch.Tensor:
        """The input embeddings that do not depend on messages, for any leading shape (..., hid)."""
        z = self.agent_embed(agent_ids) + self.host_embed(hosts).sum(-2) + self.prev_embed(prev)
        if self.team_embed is not None:
            blocks, team = blocks[..., : self.max_blocks], blocks[..., self.max_blocks:]
            z = z + self.team_embed(team)
        if self.block_embed is not None:
            z = z + self.block_embed(blocks)
        return z

    def core(self, z: torch.Tensor, messages: torch.Tensor | None, hidden: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """The recurrent part for N rows: static embedding z (N, hid) + message input, GRU, head."""
        if self.msg_mlp is not None and messages is not None:
            z = z + self.msg_mlp(messages)
        states = []
        x = z
        for layer, cell in enumerate(self.cells):
            x = cell(x, hidden[layer])
            states.append(x)
        y = self.head(x)
        hidden = torch.stack(states)
        if self.comm:
            return y[:, : self.max_defence], y[:, self.max_defence], hidden
        return y, None, hidden

    def step(self, agent_ids: torch.Tensor, hosts: torch.Tensor, blocks: torch.Tensor, prev: torch.Tensor,
             messages: torch.Tensor | None, hidden: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """One step for N rows: (Q-values (N, D), message logits (N,) or None, new hidden (L, N, hid))."""
        return self.core(self.embed(agent_ids, hosts, blocks, prev), messages, hidden)


def dru(logits: torch.Tensor, sigma: float, training: bool, noise: torch.Tensor | None = None) -> torch.Tensor:
    """Training: sigmoid(logit + sigma * noise) with noise ~ N(0, 1) (drawn if not given).
    Execution: the hard bit (logit > 0) as 0./1."""
    if not training:
        return (logits > 0).to(logits.dtype)
    if noise is None:
        noise = torch.randn_like(logits)
    return torch.sigmoid(logits + sigma * noise)


# episode batches -------------------------------------------------------------------------------
@dataclass
class EpisodeBatch:
    """B episodes of T steps of an A-agent team, time-major.

    The observation rows (hosts, blocks, prev, masks, noise, gate) number T, or O = T + 1 when the batch
    also keeps what the agents saw after the last step (`DialConfig.bootstrap_truncation`)."""

    hosts: torch.Tensor     # (O, B, A, H) long
    blocks: torch.Tensor    # (O, B, A, K) float
    prev: torch.Tensor      # (O, B, A) long, previous defence + 1 (0 at t = 0)
    masks: torch.Tensor     # (O, B, A, D) bool, defence masks at each step
    actions: torch.Tensor   # (T, B, A) long, defence actions taken
    rewards: torch.Tensor   # (T, B) team reward
    noise: torch.Tensor     # (O, B, A) DRU noise ~ N(0, 1)
    gate: torch.Tensor      # (O, B, A) 1 where the agent may send
    bits: torch.Tensor      # (T, B, A) hard bits sent
    env_rewards: torch.Tensor  # (T, B) env reward without channel cost
    states: torch.Tensor | None = None  # (T, B, S) global states, kept only for a mixer (centralised training)

    @property
    def shape(self) -> tuple[int, int, int]:
        t, b, a = self.actions.shape
        return t, b, a

    def env_steps(self) -> int:
        t, b, _ = self.shape
        return t * b

    def episodes(self, index: torch.Tensor) -> EpisodeBatch:
        """The episodes `index` (positions along B)."""
        parts: dict[str, Any] = {f.name: None if getattr(self, f.name) is None else getattr(self, f.name)[:, index]
                                 for f in fields(self)}
        return EpisodeBatch(**parts)

    @staticmethod
    def concat(batches: Sequence[EpisodeBatch]) -> EpisodeBatch:
        """The batches' episodes side by side (along B)."""
        parts = {f.name: [getattr(b, f.name) for b in batches] for f in fields(EpisodeBatch)}
        joined: dict[str, Any] = {k: None if any(v is None for v in vs) else torch.cat(vs, dim=1)
                                  for k, vs in parts.items()}
        return EpisodeBatch(**joined)

    def at_channel_cost(self, cost: float) -> EpisodeBatch:
        """The same episodes with the team reward recomputed at `cost` per bit (a replayed batch was collected
        at an earlier point of the cost schedule)."""
        return replace(self, rewards=self.env_rewards - cost * self.bits.sum(-1))


def synthetic_batch(layout: TeamLayout, batch: int, steps: int, seed: int = 0) -> EpisodeBatch:
    """A random but well-formed batch (for benchmarks and tests)."""
    g = torch.Generator().manual_seed(seed)
    a, h, k, d = layout.n_agents, layout.max_hosts, layout.block_width, layout.max_defence
    hosts = torch.full((steps, batch, a, h), h * 16, dtype=torch.long)
    masks = torch.zeros(steps, batch, a, d, dtype=torch.bool)
    for i, s in enumerate(layout.slots):
        nh = len(s.hosts)
        hosts[:, :, i, :nh] = torch.arange(nh) * 16 + torch.randint(0, 16, (steps, batch, nh), generator=g)
        masks[:, :, i, : s.n_defence] = torch.rand(steps, batch, s.n_defence, generator=g) < 0.7
        masks[:, :, i, 0] = True
    actions = torch.zeros(steps, batch, a, dtype=torch.long)
    for i, s in enumerate(layout.slots):
        actions[:, :, i] = torch.randint(0, s.n_defence, (steps, batch), generator=g)
    prev = torch.zeros_like(actions)
    prev[1:] = actions[:-1] + 1
    return EpisodeBatch(hosts=hosts, blocks=(torch.rand(steps, batch, a, k, generator=g) < 0.2).float(),
                        prev=prev, masks=masks, actions=actions, rewards=-torch.rand(steps, batch, generator=g) * 5,
                        noise=torch.randn(steps, batch, a, generator=g), gate=torch.ones(steps, batch, a),
                        bits=torch.zeros(steps, batch, a), env_rewards=torch.zeros(steps, batch))


def _seed_for(seed: int, update: int, index: int) -> int:
    return int(np.random.SeedSequence([int(seed), int(update), int(index)]).generate_state(1)[0])


class Unroll:
    """Runs a C-Net over a batch step by step, routing each agent's soft message to its teammates."""

    def __init__(self, net: CNet, layout: TeamLayout, config: DialConfig):
        self.net, self.layout, self.config = net, layout, config
        a = layout.n_agents
        self.route = None
        if layout.channel and a > 1:
            # route[k, i, j] = 1 when agent i's j-th received slot is agent k (teammates in team order)
            self.route = torch.zeros(a, a, a - 1)
            for i in range(a):
                for j, k in enumerate(k for k in range(a) if k != i):
                    self.route[k, i, j] = 1.0

    def received(self, soft_prev: torch.Tensor) -> torch.Tensor | None:
        """(B, A, R) messages each agent receives from its teammates' (B, A) soft messages of last step."""
        if self.route is None:
            return None
        b, a = soft_prev.shape
        return (soft_prev @ self.route.reshape(a, -1)).reshape(b, a, a - 1)

    def embed(self, hosts: torch.Tensor, blocks: torch.Tensor, prev: torch.Tensor) -> torch.Tensor:
        """Static embeddings (..., B, A, hid) of inputs shaped (..., B, A, ...)."""
        ids = torch.arange(prev.shape[-1]).expand(prev.shape)
        return self.net.embed(ids, hosts, blocks, prev)

    def step(self, z: torch.Tensor, soft_prev: torch.Tensor, noise: torch.Tensor, gate: torch.Tensor,
             hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor]:
        """Static embedding z (B, A, hid) -> Q (B, A, D), logits (B, A), soft messages (B, A), hidden."""
        b, a = soft_prev.shape
        recv = self.received(soft_prev)
        q, logit, hidden = self.net.core(z.reshape(b * a, -1), None if recv is None else recv.reshape(b * a, -1),
                                         hidden)
        q = q.reshape(b, a, -1)
        if logit is None:
            return q, None, torch.zeros(b, a), hidden
        logit = logit.reshape(b, a)
        soft = dru(logit, self.config.sigma, True, noise)
        if self.config.gate_messages:
            soft = soft * gate
        return q, logit, soft, hidden

    def run(self, batch: EpisodeBatch) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """Q (O, B, A, D), logits (O, B, A) or None, soft messages (O, B, A) over the batch's O observation rows."""
        steps, b, a = batch.hosts.shape[:3]
        z = self.embed(batch.hosts, batch.blocks, batch.prev)  # all steps at once
        hidden = self.net.init_hidden(b * a)
        soft = torch.zeros(b, a)
        qs: list[torch.Tensor] = []
        logits: list[torch.Tensor] = []  # stays empty for a team without a channel
        softs: list[torch.Tensor] = []
        for t in range(steps):
            q, logit, soft, hidden = self.step(z[t], soft, batch.noise[t], batch.gate[t], hidden)
            qs.append(q)
            if logit is not None:
                logits.append(logit)
            softs.append(soft)
        return torch.stack(qs), torch.stack(logits) if logits else None, torch.stack(softs)


def lambda_targets(rewards: torch.Tensor, next_max: torch.Tensor, gamma: float, lam: float) -> torch.Tensor:
    """Targets y_t for rewards r_t (T, ...) and max_{u'} Q^-(t, u') (T, ...); the episode ends after T-1.

    lam = 0: y_t = r_t + gamma * max Q^-(t+1) (DIAL's one-step target), y_{T-1} = r_{T-1}.
    lam > 0: Peng's Q(lambda) / the pymarl "TD(lambda)" return, computed backwards:
             y_t = r_t + gamma * ((1 - lam) * max Q^-(t+1) + lam * y_{t+1}),  y_{T-1} = r_{T-1}.
    lam = 1 is the Monte-Carlo return of the behaviour policy.
    With T + 1 rows of `next_max` the end is a truncation, not a terminal: y_{T-1} = r_{T-1} + gamma * max Q^-(T)
    (pymarl's targets for an episode cut by its time limit).
    """
    y = rewards.clone()
    steps = len(y)
    if len(next_max) not in (steps, steps + 1):
        raise ValueError(f"next_max needs {steps} or {steps + 1} rows for {steps} rewards, got {len(next_max)}")
    if len(next_max) == steps + 1:
        y[-1] += gamma * next_max[-1]
    if lam == 0.0:
        y[:-1] += gamma * next_max[1:steps]
        return y
    for t in range(steps - 2, -1, -1):
        y[t] = rewards[t] + gamma * ((1.0 - lam) * next_max[t + 1] + lam * y[t + 1])
    return y


def target_values(target: CNet, layout: TeamLayout, config: DialConfig, batch: EpisodeBatch) -> torch.Tensor:
    """The target network's Q-values (O, B, A, D) over a batch (its own messages, the batch's DRU noise)."""
    with torch.no_grad():
        return Unroll(target, layout, config).run(batch)[0]


def dial_loss(net: CNet, target: CNet, layout: TeamLayout, config: DialConfig, batch: EpisodeBatch, message_cost: float,
              mixers: tuple[QMixer, QMixer] | None = None, target_q: torch.Tensor | None = None
              ) -> tuple[torch.Tensor, dict[str, float]]:
    """The DIAL loss of the module docstring and a few metrics.

    With `mixers` (online, target) the TD error is on the team's Q_tot = mixer(Q_a(u_a), s_t) instead of on
    each agent's Q against the team reward (QMix's value decomposition, the state seen in training only).
    `target_q`: `target_values(target, ...)` of this batch if already computed (it is unrolled otherwise)."""
    steps = batch.shape[0]
    q, _, soft = Unroll(net, layout, config).run(batch)  # O rows; the last one only values a truncation
    with torch.no_grad():
        q_target = target_values(target, layout, config, batch) if target_q is None else target_q
        if config.double_q:  # the online network picks the next action, the target network values it
            best = q.detach().masked_fill(~batch.masks, -math.inf).argmax(-1, keepdim=True)
            q_target = q_target.gather(-1, best).squeeze(-1)  # (T, B, A)
        else:
            q_target = q_target.masked_fill(~batch.masks, -math.inf).max(-1).values  # (T, B, A)
        if mixers is not None:
            if batch.states is None:
                raise ValueError("a mixer needs the batch's global states (collected with config.mixer on)")
            q_target = mixers[1](q_target, batch.states)  # (T, B)
        r = config.reward_scale * batch.rewards  # (T, B)
        if mixers is None:  # every agent regresses on the team reward
            r = r.unsqueeze(-1).expand(*r.shape, q_target.shape[-1])
        y = lambda_targets(r, q_target, config.gamma, config.td_lambda)
    q, soft = q[:steps], soft[:steps]
    chosen = q.gather(-1, batch.actions.unsqueeze(-1)).squeeze(-1)
    if mixers is not None:
        chosen = mixers[0](chosen, batch.states)
    td = ((y - chosen) ** 2).mean()
    loss = td
    cost = torch.zeros(())
    if layout.channel and message_cost and config.cost_weight:
        cost = config.cost_weight * config.reward_scale * message_cost * soft.mean()
        loss = loss + cost
    return loss, {"loss": float(loss.detach()), "td_loss": float(td.detach()), "cost_loss": float(cost.detach()),
                  "q_mean": float(chosen.detach().mean()), "soft_message": float(soft.detach().mean())}


# the learner -----------------------------------------------------------------------------------
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


# decentralised execution ----------------------------------------------------------------------
class DialAgent(Agent):
    """One agent: its own GRU state and previous action, its own observation only, the shared weights."""

    def __init__(self, net: CNet, layout: TeamLayout, index: int, config: DialConfig):
        self.net, self.layout, self.index, self.config = net, layout, index, config
        self.slot = layout.slots[index]
        self.end_episode()

    def end_episode(self) -> None:
        self.hidden = self.net.init_hidden(1)
        self.prev = 0

    @torch.inference_mode()
    def step(self, observation: Any) -> tuple[int, int, torch.Tensor, float]:
        """(defence, bit, masked Q-values, message logit) for this step; advances the memory."""
        vector, mask = observation_parts(observation)
        idx, blk, recv, alarmed = self.layout.encode_agent(self.index, vector[None])
        if self.net.training:  # a learner may have trained the shared net since; eval() walks every module
            self.net.eval()
        q, logit, self.hidden = self.net.step(torch.tensor([self.index]), torch.from_numpy(idx),
                                              torch.from_numpy(blk), torch.tensor([self.prev]),
                                              torch.from_numpy(recv) if self.layout.channel else None, self.hidden)
        valid = torch.zeros(self.layout.max_defence, dtype=torch.bool)
        valid[: self.slot.n_defence] = True
        if mask is not None:
            valid &= torch.from_numpy(self.layout.defence_mask(self.index, mask)[0])
        q = q[0].masked_fill(~valid, -math.inf)
        defence = int(q.argmax())
        bit = 0
        lg = 0.0
        if logit is not None:
            lg = float(logit[0])
            bit = int(dru(logit, self.config.sigma, training=False)[0])
            if self.config.gate_messages:
                bit *= int(alarmed[0])
        self.prev = defence + 1
        return defence, bit, q, lg

    def get_action(self, observation: Any, action_space: Any = None) -> int:
        defence, bit, _, _ = self.step(observation)
        return self.slot.encode(defence, bit)


def build_team(net: CNet, layout: TeamLayout, config: DialConfig, meta: dict[str, Any]) -> Team:
    net.eval()
    agents: dict[str, Agent] = {s.name: DialAgent(net, layout, i, config) for i, s in enumerate(layout.slots)}
    return Team(agents=agents, scenario=meta["scenario"], kind=meta["algo"], meta=meta)


def load_team(path: str | Path, meta: dict[str, Any] | None = None, scenario: str | None = None) -> Team:
    """A greedy team from a checkpoint directory (`meta` as read by `cagekit.agents.load_team`)."""
    meta = ckpt.load_meta(path) if meta is None else meta
    if meta.get("algo") not in VARIANTS:
        raise ValueError(f"checkpoint {path} holds algorithm {meta.get('algo')!r}, not a DIAL variant")
    if scenario is not None:
        ckpt.check_scenario(meta, scenario, path)
    try:
        slots = tuple(AgentSlot.from_json(s) for s in meta["slots"])
        config = DialConfig.from_dict(meta["hyperparameters"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"corrupt checkpoint metadata {Path(path) / ckpt.META_FILE}: {exc}") from exc
    if VARIANTS[meta["algo"]]["channel"] and len(slots) == 1:  # trained before `check_team` refused such runs
        raise ValueError(f"checkpoint {path} is a {meta['algo']} team of one agent ({slots[0].name}), which cannot "
                         f"act: its message input is empty, with no teammate to send it; retrain it as nocomm, qmix "
                         f"or ppo, or on a layout of several agents")
    layout = TeamLayout(slots)
    net = CNet(layout.dims(), config)
    state = ckpt.load_model_state(path)
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise ValueError(f"checkpoint file {Path(path) / ckpt.MODEL_FILE} does not fit its meta.json: {exc}") from exc
    return build_team(net, layout, config, meta)


evaluate = team_returns  # the name docs/dial.md's snippet uses


def seeds_for(seed: int, update: int, count: int) -> list[int]:
    """The environment seeds of update `update` (as `DialLearner.collect` uses them)."""
    return [_seed_for(seed, update, i) for i in range(count)]


__all__ = ["CNet", "DialAgent", "DialConfig", "DialLearner", "EpisodeBatch", "TeamLayout", "Unroll", "VARIANTS",
           "build_team", "dial_loss", "dru", "lambda_targets", "evaluate", "load_team", "seeds_for", "synthetic_batch"]

