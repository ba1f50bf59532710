"""The csle-cyborg adapter: building, seeding, stepping several blue agents, custom actions."""

from cagekit.engine.adapter import CyborgEngine, EngineStep
from cagekit.engine.catalog import BlueActionCatalog

__all__ = ["BlueActionCatalog", "CyborgEngine", "EngineStep"]
