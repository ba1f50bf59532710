"""A team's padded shapes (`TeamDims`), its padded observations and action masks, and the agents' inputs.

Agents of one team may own different numbers of hosts and actions: observations are zero-padded to the
largest, and the padded actions are masked everywhere (action choice and targets alike).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from cagekit.agents.base import AgentSlot, observation_parts


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
