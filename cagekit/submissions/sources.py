"""What `cagekit package` is asked to package: a heuristic team's name, a checkpoint directory (or the one a
training run folder holds, its chosen weights first) or a Python team (FILE.py:NAME), resolved."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cagekit.agents.python_team import check_spec, python_spec


@dataclass
class ResolvedSource:
    kind: str  # "heuristic", "checkpoint" or "python"
    name: str  # heuristic kind, algorithm, or FILE.py:NAME
    checkpoint: Path | None
    meta: dict[str, Any]
    python: tuple[Path, str] | None = None  # a Python team's file and NAME


def find_checkpoint(path: str | Path) -> Path:
    """The checkpoint directory in `path`: itself if it holds meta.json, else the one found inside.

    A run whose snapshots were chosen among (`selection.json`, see `cagekit.evaluation.selection`) gives
    the chosen weights. In a training run folder with several checkpoints, one under a folder named like
    `best`, then `final`, is preferred, then the newest."""
    from cagekit.agents import LEARNED
    from cagekit.agents.snapshots import SELECTION_FILE, chosen_weights

    path = Path(path)
    if (path / SELECTION_FILE).is_file():
        return chosen_weights(path)
    if (path / "meta.json").is_file():
        return path
    candidates = []
    for meta in sorted(path.rglob("meta.json")):
        try:
            algo = json.loads(meta.read_text()).get("algo")
        except (OSError, ValueError):
            continue
        if algo in LEARNED:
            candidates.append(meta.parent)
    if not candidates:
        raise ValueError(f"{path}: no checkpoint found (a directory holding meta.json with a learned algorithm: "
                         f"{', '.join(LEARNED)})")
    for word in ("best", "final"):
        named = [c for c in candidates if any(word in part.lower() for part in c.relative_to(path).parts)]
        if named:
            candidates = named
            break
    return max(candidates, key=lambda c: ((c / "model.pt").stat().st_mtime if (c / "model.pt").exists() else 0,
                                          str(c)))


def resolve_source(source: str | Path) -> ResolvedSource:
    from cagekit.agents import HEURISTICS

    src = Path(source)
    if not src.exists() and str(source) in HEURISTICS:
        return ResolvedSource("heuristic", str(source), None, {})
    spec = python_spec(str(source))
    if spec is not None:
        file = check_spec(*spec)
        return ResolvedSource("python", f"{file.name}:{spec[1]}", None, {}, (file, spec[1]))
    if not src.is_dir():
        raise ValueError(f"cannot package {source!r}: expected a heuristic team name ({', '.join(HEURISTICS)}), "
                         f"a checkpoint directory (model.pt + meta.json), a training run folder holding one, or "
                         f"your own Python team (FILE.py:NAME)")
    ckpt = find_checkpoint(src)
    from cagekit.agents.checkpoint import load_meta
    from cagekit.agents.snapshots import SELECTION_FILE, choice_note

    if (src / SELECTION_FILE).is_file() and ckpt != src:  # the folder alone does not show which weights it means
        print(choice_note(src, ckpt, "packaging"), file=sys.stderr)

    meta = load_meta(ckpt)
    return ResolvedSource("checkpoint", str(meta.get("algo")), ckpt, meta)
