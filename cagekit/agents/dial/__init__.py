"""DIAL (Differentiable Inter-Agent Learning) with a costed 1-bit channel, with and without SAU, and no-comms."""

from cagekit.agents.dial.config import VARIANTS, DialConfig, check_team
from cagekit.agents.dial.episodes import EpisodeBatch, synthetic_batch
from cagekit.agents.dial.layout import TeamLayout
from cagekit.agents.dial.learner import DialLearner, seeds_for
from cagekit.agents.dial.loss import dial_loss, lambda_targets, target_values
from cagekit.agents.dial.network import CNet, dru
from cagekit.agents.dial.team import DialAgent, build_team, evaluate, load_team
from cagekit.agents.dial.unroll import Unroll

__all__ = ["CNet", "DialAgent", "DialConfig", "DialLearner", "EpisodeBatch", "TeamLayout", "Unroll", "VARIANTS",
           "build_team", "check_team", "dial_loss", "dru", "evaluate", "lambda_targets", "load_team", "seeds_for",
           "synthetic_batch", "target_values"]
