"""Batches of episodes as the learner records them, with the DRU noise of every step, so that each replay
with gradients reproduces the messages sent in collection exactly."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import torch

from cagekit.agents.dial.layout import TeamLayout


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
