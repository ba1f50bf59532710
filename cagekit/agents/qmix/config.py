"""QMix's hyperparameters (pymarl's defaults) and the algorithm name its checkpoints record."""

from __future__ import annotations

from dataclasses import dataclass

from cagekit.agents.config_file import HyperparameterConfig

ALGO = "qmix"


@dataclass
class QmixConfig(HyperparameterConfig):
    """Hyperparameters; defaults are pymarl's QMix (and the paper's QMix baseline)."""

    LEARNER = "QMix"

    rnn_hidden: int = 64
    mixer_embed: int = 32
    hypernet_hidden: int = 64
    buffer_episodes: int = 5000
    batch_episodes: int = 32
    episodes_per_update: int = 1  # episodes collected before each gradient update (pymarl: 1)
    lr: float = 5e-4
    rms_alpha: float = 0.99
    rms_eps: float = 1e-5
    gamma: float = 0.99
    grad_clip: float = 10.0
    target_update_episodes: int = 200
    double_q: bool = True
    epsilon_start: float = 1.0
    epsilon_finish: float = 0.05
    epsilon_anneal_steps: int = 50_000  # env steps
    reward_scale: float = 1.0  # rewards are multiplied by this in the TD targets (logged returns are not)
    bootstrap_truncation: bool = True  # the time-limit end is not terminal: bootstrap from the last state

    BOUNDS = {**dict.fromkeys(("rnn_hidden", "mixer_embed", "hypernet_hidden", "buffer_episodes", "batch_episodes",
                               "episodes_per_update", "target_update_episodes"), ">= 1"),
              **dict.fromkeys(("lr", "rms_eps", "grad_clip", "reward_scale"), "> 0"),
              **dict.fromkeys(("gamma", "rms_alpha", "epsilon_start", "epsilon_finish"), "in [0, 1]"),
              "epsilon_anneal_steps": ">= 0"}

    def __post_init__(self) -> None:
        self.check_bounds()
