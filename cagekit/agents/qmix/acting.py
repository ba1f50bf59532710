"""Choosing over the available actions only: greedy, epsilon-greedy, and the next step's bootstrap values."""

from __future__ import annotations

import numpy as np
import torch

_NEG = -1e9  # the Q-value a masked action gets before an argmax / max


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
