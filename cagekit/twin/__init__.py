"""A fast vectorised numpy twin of the paper scenarios (see docs/twin.md).

`TwinBatch(scenario, batch_size, seed, ...)` steps B environments at once (for learners). The twin sits beside
`cagekit.engine` (a simulator of the same scenarios; it imports only scenarios and engine). One twin
environment behind the PettingZoo interface is a wrapper: `cagekit.make_env(..., simulator="twin")`
(`cagekit.wrappers.twin_env`).
"""

from __future__ import annotations

from cagekit.twin.batch import TwinBatch
from cagekit.twin.model import TwinModel
from cagekit.twin.red import RED_ACTION_NAMES

#: scenarios whose twin is shown equivalent to the engine (tests/test_twin.py); training defaults to it there
TWIN_SCENARIOS = ("paper-small", "paper-large")

__all__ = ["TWIN_SCENARIOS", "RED_ACTION_NAMES", "TwinBatch", "TwinModel"]
