"""Strategic Action Unmasking: which of an agent's actions make sense given what it sees.

Sleep, Monitor, decoys and Block are always available. Analyse, Remove and Restore on a host are
available only when its row shows more than a bare scan; Analyse on a quiet host becomes available
when a teammate's bit arrived (someone saw something, so look).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from cagekit.engine.catalog import BlueActionCatalog

# the quiet-row table belongs to the blue table (the engine's encoding of host codes), and lives there: an agent
# that reads it (DIAL's layout) then need not import this package, and with it the engine's CybORG adapter
from cagekit.engine.table import IS_QUIET, QUIET_CODES


@functools.lru_cache(maxsize=64)
def _indices(entries: tuple[tuple[str, str | None], ...], hosts: tuple[str, ...]) -> tuple[np.ndarray, ...]:
    """Indices of the host-conditional actions and the host each one targets (computed once per agent)."""
    host_index = {h: i for i, h in enumerate(hosts)}
    analyse = [(i, host_index[t]) for i, (k, t) in enumerate(entries) if k == "Analyse" and t is not None]
    others = [(i, host_index[t]) for i, (k, t) in enumerate(entries) if k in ("Remove", "Restore") and t is not None]
    a = np.array(analyse, dtype=np.int64).reshape(-1, 2)
    o = np.array(others, dtype=np.int64).reshape(-1, 2)
    return a[:, 0], a[:, 1], o[:, 0], o[:, 1]


@functools.lru_cache(maxsize=64)
def _layout(catalog: BlueActionCatalog) -> tuple[np.ndarray, ...]:
    """`_indices` of a catalogue, computed once (the environment asks at every step)."""
    return _indices(tuple(catalog.entries), tuple(catalog.agent.hosts))


def _apply(layout: tuple[np.ndarray, ...], n_actions: int, host_codes: np.ndarray, message_arrived: bool) -> np.ndarray:
    analyse_idx, analyse_host, other_idx, other_host = layout
    quiet = IS_QUIET[np.asarray(host_codes, dtype=np.int64)]
    mask = np.ones(n_actions, dtype=np.int8)
    mask[other_idx] = ~quiet[other_host]
    mask[analyse_idx] = (~quiet[analyse_host]) | message_arrived
    return mask


def sau_mask(catalog: BlueActionCatalog, host_codes: np.ndarray, message_arrived: bool) -> np.ndarray:
    return _apply(_layout(catalog), len(catalog), host_codes, message_arrived)


def sau_mask_of(entries: Sequence[tuple[str, str | None]], hosts: Sequence[str], host_codes: np.ndarray,
                message_arrived: bool) -> np.ndarray:
    """`sau_mask` for an agent known by its action entries and hosts (an `AgentSlot`'s): the mask an agent trained
    with SAU rebuilds from a bare observation vector (CAGE's `get_action` form), which brings none, so that it
    plays as on the environment that sends one."""
    return _apply(_indices(tuple(entries), tuple(hosts)), len(entries), host_codes, message_arrived)


__all__ = ["IS_QUIET", "QUIET_CODES", "sau_mask", "sau_mask_of"]
