"""Which host codes show nothing beyond a bare scan, for the SAU masks (`cagekit.wrappers.sau`) and the DIAL
agents' message gate (`cagekit.agents.dial.layout`).

A host's row in an observation is 4 bits, its code activity << 2 | compromise (0-15). Kept apart from both users so
that a process that only runs agents (a submission's worker) loads it without the engine and CybORG, which
`cagekit.wrappers` imports: ~0.3 s of every worker's start.
"""

from __future__ import annotations

import numpy as np

#: host codes (activity << 2 | compromise) that show nothing beyond a bare scan: None/No and Scan/No
QUIET_CODES = (0b0000, 0b1000)
#: lookup table, host code (0-15) -> shows nothing beyond a bare scan (indexing beats np.isin on hot paths)
IS_QUIET = np.zeros(16, dtype=bool)
IS_QUIET[list(QUIET_CODES)] = True
