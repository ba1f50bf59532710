"""DIAL (Differentiable Inter-Agent Learning) with a costed 1-bit channel, with and without SAU, and no-comms.

The names below are imported when first asked for (PEP 562): loading a trained team (`load_team`, as a
submission's worker does) imports the acting agents only, not the learner, its loss and replay (nor QMix's
mixer, which the learner imports).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cagekit.scenarios.lazy_names import lazy_names

if TYPE_CHECKING:
    from cagekit.agents.dial.config import VARIANTS, DialConfig, check_team
    from cagekit.agents.dial.episodes import EpisodeBatch, synthetic_batch
    from cagekit.agents.dial.layout import TeamLayout
    from cagekit.agents.dial.learner import DialLearner, seeds_for
    from cagekit.agents.dial.loss import dial_loss, lambda_targets, target_values
    from cagekit.agents.dial.network import CNet, dru
    from cagekit.agents.dial.team import DialAgent, build_team, evaluate, load_team
    from cagekit.agents.dial.unroll import Unroll

#: public name -> the module of this package that defines it
_LAZY = {
    **dict.fromkeys(("VARIANTS", "DialConfig", "check_team"), ".config"),
    **dict.fromkeys(("EpisodeBatch", "synthetic_batch"), ".episodes"),
    "TeamLayout": ".layout",
    **dict.fromkeys(("DialLearner", "seeds_for"), ".learner"),
    **dict.fromkeys(("dial_loss", "lambda_targets", "target_values"), ".loss"),
    **dict.fromkeys(("CNet", "dru"), ".network"),
    **dict.fromkeys(("DialAgent", "build_team", "evaluate", "load_team"), ".team"),
    "Unroll": ".unroll",
}


__getattr__, __dir__ = lazy_names(__name__, _LAZY)

__all__ = ["CNet", "DialAgent", "DialConfig", "DialLearner", "EpisodeBatch", "TeamLayout", "Unroll", "VARIANTS",
           "build_team", "check_team", "dial_loss", "dru", "evaluate", "lambda_targets", "load_team", "seeds_for",
           "synthetic_batch", "target_values"]
