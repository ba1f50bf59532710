"""The time limits on a submission's worker: the defaults for its start, its import and each call, and the
check of a limit someone gives (seconds, more than 0, up to a day)."""

from __future__ import annotations

import math
import numbers
from typing import Any

BOOT_TIMEOUT = 120.0  # interpreter start and the harness's own imports (numpy, gymnasium, CybORG)
IMPORT_TIMEOUT = 60.0  # importing submission.py (loading weights included)
ACT_TIMEOUT = 10.0  # one call: all agents' actions for one step
#: the longest any of these may be (a day): select() overflows on an infinite or astronomical timeout
MAX_TIMEOUT = 86_400.0


def check_timeout(what: str, value: Any) -> float:
    """`value` as seconds, refusing up front what no call could keep: a limit of 0, a negative or a non-finite
    one would fail the first call as if the team or submission were slow (or overflow select())."""
    seconds = float(value) if isinstance(value, numbers.Real) and not isinstance(value, bool) else math.nan
    if not 0 < seconds <= MAX_TIMEOUT:  # NaN too
        raise ValueError(f"{what} must be a positive number of seconds up to {MAX_TIMEOUT:,.0f} (a day), "
                         f"got {value!r}")
    return seconds
