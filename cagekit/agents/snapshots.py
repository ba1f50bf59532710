"""A run's policy snapshots and the choice among them: where `train(snapshots=K)` and `train_sb3` keep the
policy at every K-th of a run, when each is due, and which weights a run's selection chose to score or package
(`cagekit.evaluation.selection` makes that choice)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

SNAPSHOT_DIR = "snapshots"
#: a run's record of which snapshot to score (`chosen_weights`), and the evaluations behind that choice
SELECTION_FILE = "selection.json"
SELECTION_DIR = "selection"


def snapshot_dir(out_dir: str | Path, env_steps: int) -> Path:
    """Where a run keeps its policy snapshot taken at `env_steps` (the same for every learner, SB3's too)."""
    return Path(out_dir) / SNAPSHOT_DIR / f"step{int(env_steps):09d}"


def chosen_weights(run_dir: str | Path) -> Path:
    """The weights to score or package for a run: the snapshot its selection chose (`SELECTION_FILE`, written
    by `cagekit.evaluation.selection`), or its final weights when none was made."""
    run = Path(run_dir)
    file = run / SELECTION_FILE
    if not file.exists():
        return run
    chosen = run / read_selection(file)["chosen"]
    if not (chosen / "meta.json").is_file():
        raise ValueError(f"{file} chooses {chosen}, which holds no checkpoint (meta.json); delete {file} to "
                         f"choose again")
    return chosen


def read_selection(file: Path) -> dict[str, Any]:
    """A run's `SELECTION_FILE`; a ValueError naming it when it is cut short or is not one (a bare JSON error or
    KeyError said neither which file nor what to do)."""
    import json

    try:
        data = json.loads(file.read_text())
        if not (isinstance(data, dict) and isinstance(data.get("chosen"), str)):
            raise ValueError("no 'chosen' snapshot")
    except (OSError, ValueError) as exc:
        raise ValueError(f"{file} is not a readable choice of weights ({exc}); delete it to choose again "
                         f"(`cagekit benchmark` does), or to take the run's final weights") from None
    return data


def choice_note(run_dir: str | Path, chosen: Path, doing: str) -> str:
    """What a command given a run folder says when it takes the snapshot the run's selection chose (`doing` it:
    "scoring", "packaging"), not the run's final weights: the folder alone does not show which weights it means."""
    return (f"note: {run_dir} holds a choice of weights ({SELECTION_FILE}, made on held-out episodes by `cagekit "
            f"benchmark`): {doing} the snapshot it chose, {chosen}, the weights the benchmark scored, not the run's "
            f"final weights")


def snapshot_steps(folder: str | Path) -> int:
    """The env steps of a snapshot folder made by `snapshot_dir`."""
    return int(Path(folder).name.removeprefix("step"))


def snapshot_marks_passed(env_steps: int, steps: int, snapshots: int) -> int:
    """How many of the marks steps/K, 2 steps/K, ... a run at `env_steps` has passed (the last mark is the end)."""
    return min(env_steps * snapshots // steps, snapshots) if snapshots > 0 and steps > 0 else 0


class SnapshotSchedule:
    """When a run of `steps` env steps, now at `start`, is due a snapshot: each time it passes another
    `count`-th of them, except at the end (the run's own checkpoint is its last weights). Used by `train`
    and by SB3's snapshot callback alike."""

    def __init__(self, steps: int, count: int, start: int):
        self.steps, self.count = steps, count
        self.passed = snapshot_marks_passed(start, steps, count)

    def due(self, env_steps: int) -> bool:
        passed = snapshot_marks_passed(env_steps, self.steps, self.count)
        due = passed > self.passed and env_steps < self.steps
        self.passed = passed
        return due


__all__ = ["SELECTION_DIR", "SELECTION_FILE", "SNAPSHOT_DIR", "SnapshotSchedule", "choice_note", "chosen_weights",
           "read_selection", "snapshot_dir", "snapshot_marks_passed", "snapshot_steps"]
