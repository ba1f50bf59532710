"""The csle-cyborg adapter: building, seeding, stepping several blue agents, custom actions.

`CyborgEngine`, `EngineStep` and `BlueActionCatalog` are imported when first asked for (PEP 562): they import
CybORG, which the package's light modules (`cagekit.engine.table`: the blue table's host codes, read by agents
that run without an environment, such as a submission's) do not need.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cagekit.scenarios.lazy_names import lazy_names

if TYPE_CHECKING:
    from cagekit.engine.adapter import CyborgEngine, EngineStep
    from cagekit.engine.catalog import BlueActionCatalog

#: public name -> the module of this package that defines it
_LAZY = {"CyborgEngine": ".adapter", "EngineStep": ".adapter", "BlueActionCatalog": ".catalog"}

__getattr__, __dir__ = lazy_names(__name__, _LAZY)

__all__ = ["BlueActionCatalog", "CyborgEngine", "EngineStep"]
