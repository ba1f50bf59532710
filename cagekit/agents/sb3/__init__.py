"""Stable-Baselines3 / sb3-contrib baselines: PPO, MaskablePPO and DQN on the gymnasium views.

`training` trains them (`train_sb3`) and `team` plays a trained model as a centralised team (`load_team`);
`hyperparameters` checks a config before a run, `callbacks` gives a run our learners' progress bar, checkpoints
and snapshots, `checkpoints` finds and loads the files of a run folder and `run_logger` continues its logs on
resume.
"""

from cagekit.agents.sb3.callbacks import ProgressCallback
from cagekit.agents.sb3.checkpoints import latest_checkpoint
from cagekit.agents.sb3.hyperparameters import ALGOS, DEFAULTS, check_hyperparameters
from cagekit.agents.sb3.team import Sb3Agent, Sb3ClassicAgent, Sb3Team, load_team, team_from_model
from cagekit.agents.sb3.training import copies_for_reds, stopped_short, train_sb3

__all__ = ["ALGOS", "DEFAULTS", "ProgressCallback", "Sb3Agent", "Sb3ClassicAgent", "Sb3Team", "check_hyperparameters",
           "copies_for_reds", "latest_checkpoint", "load_team", "stopped_short", "team_from_model", "train_sb3"]
