"""A team's dimensions and observation encoding, padded so that one network serves agents of different sizes.

Agents have different numbers of hosts, block subnets and defence actions: host positions are padded
(padding index with a zero embedding), block bits are zero-padded and the Q-values of padded actions
are masked out.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from cagekit.agents.base import AgentSlot
from cagekit.engine.table import IS_QUIET

_BIT_WEIGHTS = np.array([8, 4, 2, 1])  # a host row's 4 bits -> its code 0-15


@dataclass(frozen=True)
class TeamLayout:
    """Dimensions of one team (scenario + channel) and its observation encoding, padded to the maxima.

    The dimensions are worked out once (cached): an agent encodes its observation with them at every step."""

    slots: tuple[AgentSlot, ...]

    @cached_property
    def n_agents(self) -> int:
        return len(self.slots)

    @cached_property
    def channel(self) -> bool:
        return self.slots[0].channel

    @cached_property
    def max_hosts(self) -> int:
        return max(len(s.hosts) for s in self.slots)

    @cached_property
    def max_blocks(self) -> int:
        return max(len(s.block_subnets) for s in self.slots)

    @cached_property
    def max_defence(self) -> int:
        return max(s.n_defence for s in self.slots)

    @cached_property
    def n_received(self) -> int:
        return self.n_agents - 1 if self.channel else 0

    @cached_property
    def block_width(self) -> int:
        """Width of the block-bit arrays: the padded block bits, then the teammates' bits of a team view."""
        return self.max_blocks + self.max_team_bits

    @cached_property
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
        codes = vectors[:, : 4 * h].reshape(n, h, 4) @ _BIT_WEIGHTS
        idx = np.full((n, self.max_hosts), self.max_hosts * 16, dtype=np.int64)
        idx[:, :h] = self._host_offsets[a] + codes
        blocks = np.zeros((n, self.block_width), dtype=np.float32)
        blocks[:, :k] = vectors[:, 4 * h: 4 * h + k]
        r = 4 * h + k + slot.n_received
        received = vectors[:, 4 * h + k: r].astype(np.float32)
        blocks[:, self.max_blocks: self.max_blocks + slot.team_bits] = vectors[:, r:]
        alarmed = (~IS_QUIET[codes]).any(axis=1).astype(np.float32)
        return idx, blocks, received, alarmed

    @cached_property
    def _host_offsets(self) -> tuple[np.ndarray, ...]:
        """Per agent, each of its hosts' first index in the host embedding (16 codes per host)."""
        return tuple(np.arange(len(s.hosts)) * 16 for s in self.slots)

    def defence_mask(self, a: int, masks: np.ndarray) -> np.ndarray:
        """Padded (N, D) defence mask from the environment's action masks (N, n_actions) of agent a."""
        masks = np.asarray(masks).reshape(-1, self.slots[a].n_actions)
        if self.channel:
            masks = masks[:, ::2]
        out = np.zeros((len(masks), self.max_defence), dtype=bool)
        out[:, : masks.shape[1]] = masks.astype(bool)
        return out

