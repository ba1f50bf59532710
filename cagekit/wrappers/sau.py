"""Strategic Action Unmasking: which of an agent's actions make sense given what it sees.

Sleep, Monitor, decoys and Block are always available. Analyse, Remove and Restore on a host are
available only when its row shows more than a bare scan; Analyse on a quiet host becomes available
when a teammate's bit arrived (someone saw something, so look).
"""

from __future__ import annotations

import numpy as np

from cagekit.engine.catalog import BlueActionCatalog

#: host codes (activity << 2 | compromise) that show nothing beyond a bare scan: None/No and Scan/No
QUIET_CODES = (0b0000, 0b1000)


def sau_mask(catalog: BlueActionCatalog, host_codes: np.ndarray, message_arrived: bool) -> np.ndarray:
    hosts = catalog.agent.hosts
    alarming = {h: int(c) not in QUIET_CODES for h, c in zip(hosts, host_codes, strict=True)}
    mask = np.ones(len(catalog), dtype=np.int8)
    for i, (kind, target) in enumerate(catalog.entries):
        if kind in ("Analyse", "Remove", "Restore") and not alarming[target]:
            mask[i] = 1 if (kind == "Analyse" and message_arrived) else 0
    return mask
