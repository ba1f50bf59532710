"""QMix (Rashid et al. 2018, as in pymarl): the paper's centralised-training baseline, without messages.

The names below are imported when first asked for (PEP 562): loading a trained team (`load_team`) imports the
acting agents only, and DIAL's learner, which borrows the mixer (`QMixer`), not QMix's learner and replay.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cagekit.scenarios.lazy_names import lazy_names

if TYPE_CHECKING:
    from cagekit.agents.qmix.acting import epsilon_greedy, masked_greedy, next_agent_values
    from cagekit.agents.qmix.config import QmixConfig
    from cagekit.agents.qmix.inputs import TeamDims
    from cagekit.agents.qmix.learner import QmixLearner
    from cagekit.agents.qmix.networks import QMixer, RNNAgent
    from cagekit.agents.qmix.replay import EpisodeBuffer
    from cagekit.agents.qmix.team import QmixAgent, load_team
    from cagekit.agents.qmix.throughput import qmix_update_throughput

#: public name -> the module of this package that defines it
_LAZY = {
    **dict.fromkeys(("epsilon_greedy", "masked_greedy", "next_agent_values"), ".acting"),
    "QmixConfig": ".config",
    "TeamDims": ".inputs",
    "QmixLearner": ".learner",
    **dict.fromkeys(("QMixer", "RNNAgent"), ".networks"),
    "EpisodeBuffer": ".replay",
    **dict.fromkeys(("QmixAgent", "load_team"), ".team"),
    "qmix_update_throughput": ".throughput",
}


__getattr__, __dir__ = lazy_names(__name__, _LAZY)

__all__ = ["EpisodeBuffer", "QMixer", "QmixAgent", "QmixConfig", "QmixLearner", "RNNAgent", "TeamDims",
           "epsilon_greedy", "load_team", "masked_greedy", "next_agent_values", "qmix_update_throughput"]
