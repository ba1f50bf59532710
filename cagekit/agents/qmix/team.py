"""Decentralised execution: one greedy `QmixAgent` per blue agent, and `load_team` of a QMix checkpoint.

Execution is decentralised: `QmixAgent` keeps its own GRU state and last action.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from cagekit.agents import checkpoint as ckpt
from cagekit.agents.base import Agent, AgentSlot, Team, slot_observation, trained_with_sau
from cagekit.agents.qmix.acting import masked_greedy
from cagekit.agents.qmix.config import ALGO, QmixConfig
from cagekit.agents.qmix.inputs import TeamDims
from cagekit.agents.qmix.networks import RNNAgent


class QmixAgent(Agent):
    """One blue agent: the shared network, its own GRU state and previous action; greedy over its mask."""

    def __init__(self, slot: AgentSlot, net: RNNAgent, dims: TeamDims, sau: bool = False):
        self.slot, self.net, self.dims, self.sau = slot, net, dims, sau
        # its id's and previous action's places in the input (`agent_inputs`), and its actions without a mask
        self._id_column = dims.obs_max + slot.index
        self._last_columns = dims.obs_max + dims.n_agents
        self._unmasked = np.zeros(dims.act_max, dtype=np.int8)
        self._unmasked[: slot.n_defence] = 1
        self.end_episode()

    def end_episode(self) -> None:
        self.h = self.net.init_hidden(1)
        self.last = -1

    def q_values(self, observation: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """(Q [act_max], avail [act_max]) for this step; advances the recurrent state."""
        vec, mask = slot_observation(self.slot, observation, sau=self.sau)
        # its row of `agent_inputs` (observation, id one-hot, previous-action one-hot) without the teammates' rows,
        # which it never used: written into the same [n_agents, input_size] tensor, so that the network reads the
        # same row of the same layout as the learner's inputs
        inputs = torch.zeros(self.dims.n_agents, self.dims.input_size)
        row = inputs[self.slot.index]
        row[: vec.size] = torch.from_numpy(vec.astype(np.int8))
        row[self._id_column] = 1.0
        if self.last >= 0:
            row[self._last_columns + self.last] = 1.0
        x = inputs[self.slot.index: self.slot.index + 1]
        with torch.no_grad():
            q, self.h = self.net(x, self.h)
        if mask is None:
            avail = self._unmasked.copy()
        else:
            avail = np.zeros(self.dims.act_max, dtype=np.int8)
            avail[: mask.size] = mask.astype(np.int8)
        if not avail.any():
            avail[0] = 1
        return q[0], torch.from_numpy(avail)

    def get_action(self, observation: Any, action_space: Any = None) -> int:
        q, avail = self.q_values(observation)
        action = int(masked_greedy(q, avail))
        self.last = action
        return self.slot.encode(action)


def build_team(net: RNNAgent, slots: list[AgentSlot], dims: TeamDims, scenario: str, meta: dict) -> Team:
    """The greedy team of `net`, one shared agent network, as the learner hands it out and a checkpoint loads."""
    net.eval()
    sau = trained_with_sau(meta)
    agents: dict[str, Agent] = {s.name: QmixAgent(s, net, dims, sau) for s in slots}
    return Team(agents=agents, scenario=scenario, kind=ALGO, meta=meta)


def weights_under(weights: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The part of a checkpoint's state (agent network and mixer in one file) under `prefix`, prefix removed."""
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
        net.load_state_dict(weights_under(ckpt.load_model_state(path), "agent."))
    except RuntimeError as exc:
        raise ValueError(f"checkpoint file {Path(path) / ckpt.MODEL_FILE} does not fit its meta.json: {exc}") from exc
    return build_team(net, slots, dims, meta["scenario"], meta)
