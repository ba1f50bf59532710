"""QMix's networks (pymarl's): the recurrent agent network and the monotonic mixer.

Recurrent agents (one GRU-64 network shared by all blue agents; input = own observation, agent-id
one-hot and previous-action one-hot) give per-agent Q-values; a monotonic mixer whose weights come from
hypernetworks of the global state (absolute values, ELU, a state-value term) combines the chosen
Q-values into Q_tot.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


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
