"""QMix's episode replay buffer."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from cagekit.agents.qmix.inputs import TeamDims


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
