"""The DIAL loss, averaged over episodes b, steps t and agents a:

    L = mean_{b,t,a} (y_{b,t,a} - Q_{b,t,a}(u_{b,t,a}))^2  +  cost_weight * mean_{b,t,a} s * message_cost * m_{b,t,a}

    y_{b,t,a} = s * r_{b,t} + gamma * max_{u' unmasked at t+1} Q^-_{b,t+1,a}(u')    (t < T-1)
    y_{b,T-1,a} = s * r_{b,T-1}                                                  (episodes end at T)

(the 30-step time limit is treated as terminal: no bootstrap at the last step, consistently in the
one-step and the lambda targets; with `bootstrap_truncation` (a deviation, off in both configs) the batch
also keeps the observation after the last step and y_{b,T-1,a} = s * r_{b,T-1} + gamma * max Q^-_{b,T,a},
as QMix and SB3 treat the time limit). With `td_lambda` > 0 the one-step target is replaced by Peng's
Q(lambda) return of `lambda_targets` (y_t = s r_t + gamma ((1 - lambda) max Q^-_{t+1} + lambda y_{t+1})),
a deviation from DIAL, off by default, used by the fast config `configs/dial-sau-fast.yaml` (see docs/dial.md).

where s = reward_scale (1 by default), r is the team reward (env reward minus the hard channel cost of
the bits actually sent, at the scheduled cost: `cost_warmup_steps` at 0, then a linear ramp over
`cost_ramp_steps` to the environment's cost; without them, the environment's cost throughout), m the
soft (DRU) message the agent sent at t, and
Q^- the target network unrolled on the same batch with its own soft messages and the same noise.
The second term is the differentiable form of the channel cost (the hard cost in r carries no
gradient to the message), so a positive message_cost pushes message logits down unless a teammate's
TD error pulls them up.
"""

from __future__ import annotations

import math

import torch

from cagekit.agents.dial.config import DialConfig
from cagekit.agents.dial.episodes import EpisodeBatch
from cagekit.agents.dial.layout import TeamLayout
from cagekit.agents.dial.network import CNet
from cagekit.agents.dial.unroll import Unroll
from cagekit.agents.qmix import QMixer


def lambda_targets(rewards: torch.Tensor, next_max: torch.Tensor, gamma: float, lam: float) -> torch.Tensor:
    """Targets y_t for rewards r_t (T, ...) and max_{u'} Q^-(t, u') (T, ...); the episode ends after T-1.

    lam = 0: y_t = r_t + gamma * max Q^-(t+1) (DIAL's one-step target), y_{T-1} = r_{T-1}.
    lam > 0: Peng's Q(lambda) / the pymarl "TD(lambda)" return, computed backwards:
             y_t = r_t + gamma * ((1 - lam) * max Q^-(t+1) + lam * y_{t+1}),  y_{T-1} = r_{T-1}.
    lam = 1 is the Monte-Carlo return of the behaviour policy.
    With T + 1 rows of `next_max` the end is a truncation, not a terminal: y_{T-1} = r_{T-1} + gamma * max Q^-(T)
    (pymarl's targets for an episode cut by its time limit).
    """
    y = rewards.clone()
    steps = len(y)
    if len(next_max) not in (steps, steps + 1):
        raise ValueError(f"next_max needs {steps} or {steps + 1} rows for {steps} rewards, got {len(next_max)}")
    if len(next_max) == steps + 1:
        y[-1] += gamma * next_max[-1]
    if lam == 0.0:
        y[:-1] += gamma * next_max[1:steps]
        return y
    for t in range(steps - 2, -1, -1):
        y[t] = rewards[t] + gamma * ((1.0 - lam) * next_max[t + 1] + lam * y[t + 1])
    return y


def target_values(target: CNet, layout: TeamLayout, config: DialConfig, batch: EpisodeBatch) -> torch.Tensor:
    """The target network's Q-values (O, B, A, D) over a batch (its own messages, the batch's DRU noise)."""
    with torch.no_grad():
        return Unroll(target, layout, config).run(batch)[0]


def dial_loss(net: CNet, target: CNet, layout: TeamLayout, config: DialConfig, batch: EpisodeBatch, message_cost: float,
              mixers: tuple[QMixer, QMixer] | None = None, target_q: torch.Tensor | None = None
              ) -> tuple[torch.Tensor, dict[str, float]]:
    """The DIAL loss of the module docstring and a few metrics.

    With `mixers` (online, target) the TD error is on the team's Q_tot = mixer(Q_a(u_a), s_t) instead of on
    each agent's Q against the team reward (QMix's value decomposition, the state seen in training only).
    `target_q`: `target_values(target, ...)` of this batch if already computed (it is unrolled otherwise)."""
    steps = batch.shape[0]
    q, _, soft = Unroll(net, layout, config).run(batch)  # O rows; the last one only values a truncation
    with torch.no_grad():
        q_target = target_values(target, layout, config, batch) if target_q is None else target_q
        if config.double_q:  # the online network picks the next action, the target network values it
            best = q.detach().masked_fill(~batch.masks, -math.inf).argmax(-1, keepdim=True)
            q_target = q_target.gather(-1, best).squeeze(-1)  # (T, B, A)
        else:
            q_target = q_target.masked_fill(~batch.masks, -math.inf).max(-1).values  # (T, B, A)
        if mixers is not None:
            if batch.states is None:
                raise ValueError("a mixer needs the batch's global states (collected with config.mixer on)")
            q_target = mixers[1](q_target, batch.states)  # (T, B)
        r = config.reward_scale * batch.rewards  # (T, B)
        if mixers is None:  # every agent regresses on the team reward
            r = r.unsqueeze(-1).expand(*r.shape, q_target.shape[-1])
        y = lambda_targets(r, q_target, config.gamma, config.td_lambda)
    q, soft = q[:steps], soft[:steps]
    chosen = q.gather(-1, batch.actions.unsqueeze(-1)).squeeze(-1)
    if mixers is not None:
        chosen = mixers[0](chosen, batch.states)
    td = ((y - chosen) ** 2).mean()
    loss = td
    cost = torch.zeros(())
    if layout.channel and message_cost and config.cost_weight:
        cost = config.cost_weight * config.reward_scale * message_cost * soft.mean()
        loss = loss + cost
    return loss, {"loss": float(loss.detach()), "td_loss": float(td.detach()), "cost_loss": float(cost.detach()),
                  "q_mean": float(chosen.detach().mean()), "soft_message": float(soft.detach().mean())}
