"""What an earlier benchmark left in its output folder, checked before anything runs: whether OUT is a
benchmark's folder at all (else the files named as its reports are someone else's), and whether a finished
run in it is reused as this benchmark asks (same steps, settings, snapshots and snapshot choice)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cagekit.evaluation import benchmark_layout as layout

#: written into a run's folder when the benchmark finished training it
TRAIN_RECORD = "benchmark-train.json"
#: written into a run's folder when the benchmark starts training it: what an interrupted run is continued with
TRAIN_STARTED = "benchmark-started.json"


def is_benchmark_folder(out: Path) -> bool:
    """Whether `out` is a benchmark's own folder: a team it scored (eval/ALGO-sSEED/journal.jsonl) or a run it
    finished (runs/ALGO-sSEED/TRAIN_RECORD). Its reports are written only after every team is scored, so a
    folder holding them was a benchmark's exactly when it has the first."""
    from cagekit.evaluation.journal import JOURNAL

    return any(layout.RUN_NAME.match(file.parent.name) is not None
               for pattern in (f"{layout.EVAL}/*/{JOURNAL}", f"{layout.RUNS}/*/{TRAIN_RECORD}")
               for file in out.glob(pattern))


def check_benchmark_folder(out: Path) -> None:
    """Refuse an --out that holds files named as the benchmark's reports but is no benchmark's folder: they are
    the user's own or another tool's, and the benchmark would replace them. A benchmark's own folder is
    rerun or extended into as before."""
    found = [name for name in layout.FILES if (out / name).exists()]
    if found and not is_benchmark_folder(out):
        raise ValueError(f"--out {out} holds files a benchmark writes ({', '.join(found)}) but is no benchmark's "
                         f"folder (no {layout.EVAL}/ALGO-sSEED/ it scored, no {layout.RUNS}/ALGO-sSEED/{TRAIN_RECORD} "
                         f"it trained): your own files or another tool's, so they are not overwritten; choose "
                         f"another --out (new, empty, or an earlier benchmark's), or move those files away")


def training_settings(config: str | None, env: dict[str, Any]) -> dict[str, Any]:
    """What a run was trained with besides its budget: the config file's mapping (None: the defaults) and the
    environment settings (reds, message cost, detection). Recorded in TRAIN_RECORD and compared on reuse."""
    from cagekit.agents.config_file import load_mapping

    return {"config": load_mapping(config) if config else None, "env": dict(sorted(env.items()))}


def check_finished_run(run: Path, steps: int, settings: dict[str, Any] | None = None,
                       select_episodes: int | None = None, snapshots: int | None = None) -> None:
    """A finished run is reused as it is: refuse one trained for another number of steps or with other settings
    (`training_settings`; it would be scored as what it is not), or whose scored weights were chosen with
    another `select_episodes` (a new choice would change what its journaled scores are of). A run started but
    not finished (interrupted) is continued only as it was started (`TRAIN_STARTED`): its steps, settings and
    snapshots, which a resume would otherwise mix (an SB3 resume keeps its checkpoint's hyperparameters) under
    a record of the new ones. What a record from before lacks is not compared."""
    _check_selection(run, select_episodes)
    record = run / TRAIN_RECORD
    advice = ("a finished run is reused, never retrained or extended: use another --out, or remove that run "
              "folder to train it again")
    if not record.exists():
        record = run / TRAIN_STARTED
        advice = ("an interrupted run is continued only as it was started: rerun with its settings to finish it, "
                  "use another --out, or remove that run folder to train it again")
        select_episodes = None  # chosen once the run is finished
        if not record.exists():
            return
        if all(p.name.startswith(TRAIN_STARTED) for p in run.iterdir()):
            return  # killed before it wrote anything (building its environments): nothing to continue
    done = json.loads(record.read_text())
    trained = "was trained" if record.name == TRAIN_RECORD else "was started (and interrupted)"
    chosen_with = done.get("select_episodes")
    if select_episodes is not None and chosen_with is not None and int(chosen_with) != int(select_episodes):
        raise ValueError(f"{run} is scored with weights chosen by --select-episodes {chosen_with} (0: its final "
                         f"weights) and this benchmark asks for {select_episodes}; use --select-episodes "
                         f"{chosen_with} with that folder, or another --out")
    kept = done.get("snapshots")
    if snapshots is not None and kept is not None and int(kept) != int(snapshots):
        raise ValueError(f"{run} {trained} keeping its policy at every 1/{kept} of the run (--snapshots {kept}) "
                         f"and this benchmark asks for --snapshots {snapshots}; " + advice)
    recorded = done.get("steps")
    if recorded is not None and int(recorded) != int(steps):
        raise ValueError(f"{run} {trained} for {int(recorded):,} steps and this benchmark asks for {int(steps):,}; "
                         + advice)
    for key, wanted in (settings or {}).items():
        if key in done and json.dumps(done[key], sort_keys=True) != json.dumps(wanted, sort_keys=True):
            raise ValueError(f"{run} {trained} with other {key} settings ({_differences(done[key], wanted)}) "
                             "than this benchmark asks for; " + advice)


def _check_selection(run: Path, select_episodes: int | None) -> None:
    """A run's `selection.json` decides which weights are scored (`chosen_weights`), so a benchmark that asks
    for another choice, or for the final weights, must not score or overwrite it."""
    from cagekit.agents.snapshots import SELECTION_FILE

    file = run / SELECTION_FILE
    if select_episodes is None or not file.exists():
        return
    try:
        chosen_with = json.loads(file.read_text())["settings"]["episodes"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{file} is unreadable ({type(exc).__name__}: {exc}); remove it to choose again") from exc
    if int(chosen_with) != int(select_episodes):
        raise ValueError(f"{run}'s scored weights were chosen on {chosen_with} held-out episodes per red "
                         f"({SELECTION_FILE}) and this benchmark asks for --select-episodes {select_episodes} "
                         f"(0: the final weights); use --select-episodes {chosen_with} with that folder, or "
                         f"another --out")


def _differences(old: Any, new: Any) -> str:
    """`field: trained -> asked` for the fields of two mappings that differ (or the two values whole)."""
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return f"{old} -> {new}"
    keys = sorted(k for k in {*old, *new} if old.get(k, "unset") != new.get(k, "unset"))
    return ", ".join(f"{k}: {old.get(k, 'unset')} -> {new.get(k, 'unset')}" for k in keys)
