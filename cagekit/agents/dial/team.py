"""Decentralised execution: each agent acts on its own observation with the shared weights, and a trained
team loads from its checkpoint."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from cagekit.agents import checkpoint as ckpt
from cagekit.agents.base import Agent, AgentSlot, Team, slot_observation, team_returns, trained_with_sau
from cagekit.agents.dial.config import VARIANTS, DialConfig
from cagekit.agents.dial.layout import TeamLayout
from cagekit.agents.dial.network import CNet, dru


class DialAgent(Agent):
    """One agent: its own GRU state and previous action, its own observation only, the shared weights."""

    def __init__(self, net: CNet, layout: TeamLayout, index: int, config: DialConfig, sau: bool = False):
        self.net, self.layout, self.index, self.config, self.sau = net, layout, index, config, sau
        self.slot = layout.slots[index]
        # the inputs that take few values, made once rather than at every step: its agent id, each previous
        # action (0 = none) and the padded actions it never has (every one of them while no mask is given)
        self._agent_id = torch.tensor([index])
        self._prevs = [torch.tensor([p]) for p in range(layout.max_defence + 1)]
        self._unmasked = torch.arange(layout.max_defence) >= self.slot.n_defence
        self.end_episode()

    def end_episode(self) -> None:
        self.hidden = self.net.init_hidden(1)
        self.prev = 0

    def step(self, observation: Any) -> tuple[int, int, torch.Tensor, float]:
        """(defence, bit, masked Q-values, message logit) for this step; advances the memory."""
        vector, mask = slot_observation(self.slot, observation, sau=self.sau)
        idx, blk, recv, alarmed = self.layout.encode_agent(self.index, vector[None])
        if self.net.training:  # a learner may have trained the shared net since; eval() walks every module
            self.net.eval()
        # the masked actions: the padded ones, and those the mask rules out
        invalid = self._unmasked if mask is None else torch.from_numpy(~self.layout.defence_mask(self.index, mask)[0])
        with torch.inference_mode():
            q, logit, self.hidden = self.net.act(self._agent_id, torch.from_numpy(idx), torch.from_numpy(blk),
                                                 self._prevs[self.prev],
                                                 torch.from_numpy(recv) if self.layout.channel else None,
                                                 self.hidden)
            q = q[0].masked_fill(invalid, -math.inf)
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
    sau = trained_with_sau(meta)
    agents: dict[str, Agent] = {s.name: DialAgent(net, layout, i, config, sau) for i, s in enumerate(layout.slots)}
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
