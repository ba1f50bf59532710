"""The C-Net, one network shared by all blue agents of a team (as in the notes), and the DRU between them.

    z = E_id[agent] + sum_h E_host[h * 16 + code_h] + Linear(block bits) + E_prev[previous defence + 1]
        + MLP_msg(received messages)               # MLP_msg = Norm, Linear, ReLU (absent without a channel)
    h = GRU(z, h)                                  # 2 layers, 128 wide
    out = Linear(Norm(ReLU(...)))                  # Linear, Norm, ReLU, Linear -> D Q-values (+1 message logit)

`DialConfig.norm` picks the normalisation: "batch" (the notes' BatchNorm; in
training the statistics come from the B x A rows of one time step, at execution the running
statistics are used, so batch-1 decentralised execution works), "layer" (LayerNorm on the hidden
layer; the 1..2-wide message input is then left unnormalised since LayerNorm over it would be
constant) or "none".

DRU (discretise/regularise unit): in training the message is `sigmoid(logit + N(0, sigma^2))`
(sigma = 2), at execution it is the hard bit `logit > 0`. With `gate_messages` (the authors' code:
"an agent may only send when its own observation shows something") the message is multiplied by
1 when any own host row shows more than a bare scan, else 0.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from cagekit.agents.dial.config import DialConfig


def _norm(kind: str, width: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm1d(width)
    if kind == "layer":
        return nn.LayerNorm(width)
    return nn.Identity()


def _called(module: nn.Module, *args: Any) -> Any:
    return module(*args)


def _direct(module: nn.Module, *args: Any) -> Any:
    """`module(*args)` by its `forward` (a Sequential's layers too): the same computation without
    `nn.Module.__call__`, whose hook handling (CNet registers none) cost a sixth of an agent's batch-1 step."""
    if isinstance(module, nn.Sequential):
        (x,) = args
        for layer in module:
            x = _direct(layer, x)
        return x
    return module.forward(*args)


Call = Callable[..., Any]


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
              prev: torch.Tensor, call: Call = _called) -> torch.Tensor:
        """The input embeddings that do not depend on messages, for any leading shape (..., hid).
        `call(layer, x)`: how each layer is called (`act` calls their `forward`)."""
        z = call(self.agent_embed, agent_ids) + call(self.host_embed, hosts).sum(-2) + call(self.prev_embed, prev)
        if self.team_embed is not None:
            blocks, team = blocks[..., : self.max_blocks], blocks[..., self.max_blocks:]
            z = z + call(self.team_embed, team)
        if self.block_embed is not None:
            z = z + call(self.block_embed, blocks)
        return z

    def core(self, z: torch.Tensor, messages: torch.Tensor | None, hidden: torch.Tensor, call: Call = _called
             ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """The recurrent part for N rows: static embedding z (N, hid) + message input, GRU, head."""
        if self.msg_mlp is not None and messages is not None:
            z = z + call(self.msg_mlp, messages)
        states = []
        x = z
        for layer, cell in enumerate(self.cells):
            x = call(cell, x, hidden[layer])
            states.append(x)
        y = call(self.head, x)
        hidden = torch.stack(states)
        if self.comm:
            return y[:, : self.max_defence], y[:, self.max_defence], hidden
        return y, None, hidden

    def step(self, agent_ids: torch.Tensor, hosts: torch.Tensor, blocks: torch.Tensor, prev: torch.Tensor,
             messages: torch.Tensor | None, hidden: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """One step for N rows: (Q-values (N, D), message logits (N,) or None, new hidden (L, N, hid))."""
        return self.core(self.embed(agent_ids, hosts, blocks, prev), messages, hidden)

    def act(self, agent_ids: torch.Tensor, hosts: torch.Tensor, blocks: torch.Tensor, prev: torch.Tensor,
            messages: torch.Tensor | None, hidden: torch.Tensor
            ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """`step` for an acting agent (one row, every step of an evaluation): the same operations on the same
        tensors, each layer called by its `forward` (no hooks to run), so the same bits, sooner."""
        return self.core(self.embed(agent_ids, hosts, blocks, prev, _direct), messages, hidden, _direct)


def dru(logits: torch.Tensor, sigma: float, training: bool, noise: torch.Tensor | None = None) -> torch.Tensor:
    """Training: sigmoid(logit + sigma * noise) with noise ~ N(0, 1) (drawn if not given).
    Execution: the hard bit (logit > 0) as 0./1."""
    if not training:
        return (logits > 0).to(logits.dtype)
    if noise is None:
        noise = torch.randn_like(logits)
    return torch.sigmoid(logits + sigma * noise)
