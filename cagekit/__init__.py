"""cagekit: build, train, score and package blue-team agents for CybORG and the CAGE challenges."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cagekit.wrappers import make_env

__version__ = "0.1.0"

#: torch's CPU kernels, unless the user chose (ATEN_CPU_CAPABILITY): AVX2. Where the CPU has AVX-512 torch
#: would pick its AVX-512 kernels, whose rounding differs (other vector widths in reductions and vectorised
#: math), and the same seed would then train to other weights than on an AVX2 machine (dial-sau seed 0 on
#: paper-small: -155.8 instead of docs/results.md's -91.3). torch reads the setting at its first vectorised
#: operation, so it is set here, before any of cagekit runs.
KERNELS_ENV = "ATEN_CPU_CAPABILITY"
os.environ.setdefault(KERNELS_ENV, "avx2")


def __getattr__(name: str) -> Any:
    """`cagekit.make_env` is `cagekit.wrappers.make_env`, imported when first asked for: importing cagekit stays
    light, and help() and inspect show the real function's parameters (a forwarding wrapper showed *args)."""
    if name == "make_env":
        from cagekit.wrappers import make_env

        return make_env
    raise AttributeError(f"module 'cagekit' has no attribute {name!r}")


__all__ = ["KERNELS_ENV", "__version__", "make_env"]
