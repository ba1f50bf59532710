"""The csle-cyborg adapter: building, seeding, stepping several blue agents, custom actions.

`CyborgEngine`, `EngineStep` and `BlueActionCatalog` are imported when first asked for (PEP 562): they import
CybORG, which the package's light modules (`cagekit.engine.table`: the blue table's host codes, read by agents
that run without an environment, such as a submission's) do not need.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cagekit.engine.adapter import CyborgEngine, EngineStep
    from cagekit.engine.catalog import BlueActionCatalog

#: public name -> the module that defines it
_LAZY = {"CyborgEngine": "cagekit.engine.adapter", "EngineStep": "cagekit.engine.adapter",
         "BlueActionCatalog": "cagekit.engine.catalog"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # asked once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = ["BlueActionCatalog", "CyborgEngine", "EngineStep"]
