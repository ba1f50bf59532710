"""A fast vectorised numpy twin of the paper scenarios (see docs/twin.md).

- `TwinBatch(scenario, batch_size, seed, ...)`: B environments stepped at once (for learners);
- `make_twin_env(scenario, **make_env kwargs)` / `TwinParallelEnv`: one twin environment behind the same
  PettingZoo interface as `cagekit.make_env`.
"""

from __future__ import annotations

from cagekit.twin.batch import RED_ACTION_NAMES, TwinBatch
from cagekit.twin.env import TwinParallelEnv, make_twin_env
from cagekit.twin.model import TwinModel

#: scenarios whose twin is shown equivalent to the engine (tests/test_twin.py); training defaults to it there
TWIN_SCENARIOS = ("paper-small", "paper-large")

__all__ = ["TWIN_SCENARIOS", "RED_ACTION_NAMES", "TwinBatch", "TwinModel", "TwinParallelEnv", "make_twin_env"]
