"""QMix (Rashid et al. 2018, as in pymarl): the paper's centralised-training baseline, without messages."""

from cagekit.agents.qmix.acting import epsilon_greedy, masked_greedy, next_agent_values
from cagekit.agents.qmix.config import QmixConfig
from cagekit.agents.qmix.inputs import TeamDims
from cagekit.agents.qmix.learner import QmixLearner
from cagekit.agents.qmix.networks import QMixer, RNNAgent
from cagekit.agents.qmix.replay import EpisodeBuffer
from cagekit.agents.qmix.team import QmixAgent, load_team
from cagekit.agents.qmix.throughput import qmix_update_throughput

__all__ = ["EpisodeBuffer", "QMixer", "QmixAgent", "QmixConfig", "QmixLearner", "RNNAgent", "TeamDims",
           "epsilon_greedy", "load_team", "masked_greedy", "next_agent_values", "qmix_update_throughput"]
