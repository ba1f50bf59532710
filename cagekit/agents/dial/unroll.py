"""A C-Net run over an episode batch with its recorded DRU noise: the same inputs and noise reproduce the
soft messages of collection, now differentiable, so a receiver's TD error backpropagates into the sender's
message logit across agents and time."""

from __future__ import annotations

import torch

from cagekit.agents.dial.config import DialConfig
from cagekit.agents.dial.episodes import EpisodeBatch
from cagekit.agents.dial.layout import TeamLayout
from cagekit.agents.dial.network import CNet, dru


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
