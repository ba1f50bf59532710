"""The DIAL variants (which channel and masks each trains with), their hyperparameters, and the refusal of a
talking variant on a team of one.

Variants: `dial-sau` (sau=True), `dial` (sau=False), `nocomm` (channel=False: no message input, no message
output), `shared-obs` (no-comms that also sees its teammates' rows).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cagekit.agents.config_file import HyperparameterConfig

VARIANTS: dict[str, dict[str, Any]] = {
    "dial-sau": {"channel": True, "sau": True},
    "dial": {"channel": True, "sau": False},
    "nocomm": {"channel": False, "sau": True},
    # no-comms whose agents also see their teammates' rows of the same step: an oracle channel, the most a
    # protocol could tell them, with no-comms' masks (an ablation: is what teammates see worth anything?)
    "shared-obs": {"channel": False, "sau": True, "view": "team"},
}


def check_team(algo: str, scenario: str, layout: str | None = None) -> None:
    """A ValueError where `algo` talks on the channel and `scenario`'s `layout` has one blue agent: its messages
    would reach no one, and the run trained but its team failed when scored (an empty message input)."""
    from cagekit.scenarios import get_scenario

    spec = get_scenario(scenario)
    agents = spec.layout(layout)
    if not VARIANTS[algo]["channel"] or len(agents) > 1:
        return
    name = layout or spec.default_layout
    several = {k: v for k, v in spec.blue_layouts.items() if len(v) > 1}
    where = f"{scenario} has no layout with several"
    if several:
        listed = "; ".join(f"{k} ({', '.join(a.name for a in v)})" for k, v in several.items())
        where = f"{scenario}'s layouts with several: {listed}; choose one with --layout {next(iter(several))}"
    raise ValueError(f"{algo} needs two or more blue agents to talk, and {scenario}'s layout {name!r} has one "
                     f"({agents[0].name}); {where}. Or train nocomm, qmix or ppo, which need no teammate")


@dataclass
class DialConfig(HyperparameterConfig):
    """DIAL hyperparameters; defaults follow the notes (paper + authors' code, original DIAL where open).

    `grad_clip: 0` turns gradient-norm clipping off (the gradients are applied as they are, not clipped to zero);
    QMix's `grad_clip` has no off and must be > 0."""

    LEARNER = "DIAL"

    hidden: int = 128                 # embedding / GRU width
    gru_layers: int = 2
    norm: str = "batch"               # "batch" (notes), "layer" or "none"
    sigma: float = 2.0                # DRU noise std in training
    gate_messages: bool = True        # send only when own rows show something (authors' code)
    gamma: float = 0.9
    lr: float = 5e-4
    momentum: float = 0.05            # RMSprop momentum (authors' code; original DIAL 0.95)
    rms_alpha: float = 0.99
    grad_clip: float = 10.0           # max gradient norm (0 = off)
    batch_episodes: int = 128         # episodes (parallel environments) per update
    target_update: int = 100          # copy the target network every N updates
    eps_start: float = 1.0
    eps_end: float = 0.05
    eps_anneal_steps: int = 2_000_000  # env steps from eps_start to eps_end
    cost_weight: float = 1.0          # weight of the differentiable channel-cost term
    reward_scale: float = 1.0         # rewards (and the channel-cost term) are multiplied by this in the loss
    td_lambda: float = 0.0            # 0 = DIAL's one-step Q-learning target; > 0 = Q(lambda) targets (deviation)
    grad_steps: int = 1               # gradient steps on each collected batch (DIAL: 1; > 1 is a deviation)
    double_q: bool = False            # double Q-learning: argmax by the online net, value by the target (deviation)
    cost_warmup_steps: int = 0        # env steps trained at message cost 0 before the cost applies (deviation)
    cost_ramp_steps: int = 0          # then env steps over which the cost rises linearly to the env's
    replay_batches: int = 0           # > 0: gradient steps sample episodes from the last N batches (deviation)
    mixer: bool = False               # train through a QMix mixer on the global state (deviation; training only)
    bootstrap_truncation: bool = False  # bootstrap the time limit from the final observation (deviation; QMix's way)
    mixer_embed: int = 32             # the mixer's sizes (pymarl's QMix)
    hypernet_hidden: int = 64
    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes carried into meta.json

    BOUNDS = {**dict.fromkeys(("hidden", "gru_layers", "batch_episodes", "target_update", "grad_steps", "mixer_embed",
                               "hypernet_hidden"), ">= 1"),
              **dict.fromkeys(("lr", "reward_scale"), "> 0"),
              **dict.fromkeys(("sigma", "grad_clip", "eps_anneal_steps", "cost_weight", "cost_warmup_steps",
                               "cost_ramp_steps", "replay_batches"), ">= 0"),
              **dict.fromkeys(("gamma", "rms_alpha", "eps_start", "eps_end", "td_lambda"), "in [0, 1]"),
              "momentum": "in [0, 1)"}

    def __post_init__(self) -> None:
        if self.norm not in ("batch", "layer", "none"):
            raise ValueError(f"DIAL config key 'norm' must be 'batch', 'layer' or 'none', got {self.norm!r}")
        self.check_bounds()
        if self.mixer and self.bootstrap_truncation:
            raise ValueError("bootstrap_truncation is not supported with mixer (the final global state is not kept); "
                             "set one of them to false")
        if self.norm == "batch" and self.batch_episodes < 2:
            raise ValueError("norm='batch' needs batch_episodes >= 2 (BatchNorm statistics); use norm='layer'")

