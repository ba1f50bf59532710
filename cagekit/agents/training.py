"""The training loop shared by the learned algorithms (DIAL variants in `cagekit.agents.dial`, QMix in
`cagekit.agents.qmix`).

A learner implements the `Learner` protocol: `update()` collects a batch of episodes and makes one or more
gradient steps on it (DIAL: `grad_steps`; `updates` counts gradient steps); `save(out_dir)` writes a
checkpoint directory (see `cagekit.agents.checkpoint`) whose `trainer.pt` holds `learner.state_dict()`,
which `train(..., resume=True)` feeds back through
`learner.load_state_dict(checkpoint.load_trainer_state(out_dir))`.

Exact resume: a learner must make everything random in update k a function of (seed, k) and of its saved
state (weights, optimiser, counters), so an interrupted-and-resumed run equals an uninterrupted one bit for
bit. The DIAL learner derives its environment seeds, DRU noise and exploration draws from (seed, update
index).

`train` writes into out_dir: `log.csv` (one row per update), TensorBoard events under `tb/`, and the
checkpoint files (whenever `updates` passes a multiple of `checkpoint_every`, at the end, and on Ctrl-C).
With `snapshots=K` it also keeps the policy at every K-th of the run under `snapshots/step<N>/` (see
`snapshot_dir`), so that a later choice among them (`cagekit.evaluation.selection`) need not score only the
last weights.
"""

from __future__ import annotations

import contextlib
import csv
import importlib
import math
import numbers
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from cagekit.agents import checkpoint as ckpt
from cagekit.agents.base import Team
from cagekit.agents.threads import limit_torch_threads, pinned_torch_threads, training_threads
from cagekit.scenarios import ScenarioSpec, get_scenario, scenario_name
from cagekit.scenarios.options import check_folder_path

if TYPE_CHECKING:  # imported where used: rich costs start-up time
    from rich.progress import Progress

DIAL_ALGOS = ("dial-sau", "dial", "nocomm", "shared-obs")
ALGOS = (*DIAL_ALGOS, "qmix")
LOG_FILE = "log.csv"
#: updates between checkpoints, `cagekit train --checkpoint-every`
CHECKPOINT_EVERY = 50
SNAPSHOT_DIR = "snapshots"
#: a run's record of which snapshot to score (`chosen_weights`), and the evaluations behind that choice
SELECTION_FILE = "selection.json"
SELECTION_DIR = "selection"
LOG_FIELDS = ("update", "env_steps", "episodes", "time_s", "steps_per_s", "return", "env_return", "bits", "epsilon",
              "loss")


@runtime_checkable
class Learner(Protocol):
    """What `train` needs of a learning algorithm."""

    algo: str
    scenario: str
    seed: int
    env_steps: int
    updates: int

    def update(self) -> dict[str, float]:
        """Collect a batch of episodes and make one gradient update; metrics incl. "return", "bits", "epsilon"."""

    def state_dict(self) -> dict:
        """Everything needed to resume exactly (weights, optimiser, counters, RNG states)."""

    def load_state_dict(self, d: dict) -> None:
        ...

    def save(self, out_dir: str | Path) -> None:
        """Write a checkpoint directory: model.pt, meta.json and trainer.pt (= state_dict())."""

    def save_policy(self, out_dir: str | Path) -> None:
        """Write a loadable checkpoint directory without trainer state (model.pt, meta.json): a snapshot."""

    def team(self) -> Team:
        """The greedy decentralised team of the current weights."""


_DEFERRING: list[bool] = []


@contextlib.contextmanager
def deferred_interrupt() -> Iterator[None]:
    """Hold back Ctrl-C (SIGINT) until the block ends, so a gradient step is never half applied.

    A no-op outside the main thread and inside an enclosing `deferred_interrupt` (the outermost block
    raises). A SIGINT received inside is re-raised as KeyboardInterrupt when the block ends.
    """
    if threading.current_thread() is not threading.main_thread() or _DEFERRING:
        yield
        return
    received: list[Any] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    _DEFERRING.append(True)
    try:
        yield
    finally:
        _DEFERRING.pop()
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt


def make_learner(algo: str, scenario: str | ScenarioSpec, seed: int = 0, config: Any = None,
                 **env_kwargs: Any) -> Learner:
    """A learner for `algo` on `scenario` (a name, built in or registered, or a `ScenarioSpec`, which is
    registered: `cagekit.scenarios.register`); `config` is a config object, a dict, a JSON/YAML path or None."""
    from cagekit.wrappers.parallel import check_seed

    seed = check_seed(seed) or 0  # numpy's message for a negative seed does not say which
    scenario = scenario_name(scenario)  # checkpoints record the name (and a registered spec beside it)
    if algo in DIAL_ALGOS:
        from cagekit.agents.dial import DialLearner

        return DialLearner(algo, scenario, seed, config, **env_kwargs)
    if algo == "qmix":
        module = importlib.import_module("cagekit.agents.qmix")
        return module.QmixLearner(scenario, seed, config, **env_kwargs)
    raise ValueError(f"unknown learning algorithm {algo!r}; valid: {', '.join(ALGOS)}")


def check_training(algo: str, scenario: str, config: str | Path | None, env: dict[str, Any]) -> None:
    """Refuse what a run of `algo` on `scenario` would fail on later (its config's keys, types and ranges; a
    channel on a team of one), so that `cagekit train` and `benchmark` refuse before making any folder."""
    from cagekit.agents.config_file import load_mapping

    if algo in SB3_ALGOS:
        from cagekit.agents.sb3 import check_hyperparameters

        check_hyperparameters(algo, load_mapping(config) if config else None)
    elif algo in DIAL_ALGOS:
        from cagekit.agents.dial import DialConfig, check_team

        DialConfig.coerce(config)
        check_team(algo, scenario, env.get("layout"))
    elif algo == "qmix":
        from cagekit.agents.qmix import QmixConfig

        QmixConfig.coerce(config)


def _progress(enabled: bool, total: int, initial: int, label: str = "train") -> Progress | None:
    """A started rich progress bar of training steps, or None when `enabled` is false. `label` names the run
    (its algorithm and seed), so that a benchmark's runs, one bar after another, can be told apart."""
    if not enabled:
        return None
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                        TextColumn("{task.completed:,}/{task.total:,} steps"), TimeElapsedColumn(),
                        TimeRemainingColumn(), TextColumn("{task.fields[stats]}"), transient=False)
    progress.start()
    progress.add_task(label, total=total, completed=initial, stats="")
    return progress


def _run_label(learner: Learner) -> str:
    """The training bar's name for a run: its algorithm and seed (short: the bar shares a line with its figures)."""
    return f"{learner.algo} seed {learner.seed}"


def _stats_text(ret: float, bits: float, epsilon: float, steps_per_s: float) -> str:
    """The stats column of the training bar (ours and SB3's): return, bits per episode, epsilon (left out for
    a learner without one, such as PPO, rather than shown as nan), steps/s."""
    eps = "" if math.isnan(epsilon) else f"eps {epsilon:.3f}  "
    return f"return {ret:8.2f}  bits/ep {bits:5.2f}  {eps}{steps_per_s:,.0f} steps/s"


def _read_log(path: Path, upto: int) -> list[dict[str, str]]:
    """The log rows up to update `upto` (a resumed run rewrites the log from them)."""
    if not path.exists():
        return []
    try:
        with path.open(newline="") as fh:
            return [row for row in csv.DictReader(fh) if int(float(row["update"])) <= upto]
    except (KeyError, TypeError, ValueError, csv.Error) as exc:
        raise ValueError(f"cannot resume from {path}: the training log is damaged ({type(exc).__name__}: {exc}); "
                         f"restore it, or move it away to resume with a log that starts here") from exc


def snapshot_dir(out_dir: str | Path, env_steps: int) -> Path:
    """Where a run keeps its policy snapshot taken at `env_steps` (the same for every learner, SB3's too)."""
    return Path(out_dir) / SNAPSHOT_DIR / f"step{int(env_steps):09d}"


def chosen_weights(run_dir: str | Path) -> Path:
    """The weights to score or package for a run: the snapshot its selection chose (`SELECTION_FILE`, written
    by `cagekit.evaluation.selection`), or its final weights when none was made."""
    import json

    run = Path(run_dir)
    file = run / SELECTION_FILE
    if not file.exists():
        return run
    chosen = run / json.loads(file.read_text())["chosen"]
    if not (chosen / "meta.json").is_file():
        raise ValueError(f"{file} chooses {chosen}, which holds no checkpoint (meta.json); delete {file} to "
                         f"choose again")
    return chosen


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


def train(learner: Learner, steps: int, out_dir: str | Path, checkpoint_every: int | None = CHECKPOINT_EVERY,
          resume: bool = False, progress: bool = True, max_updates: int | None = None,
          snapshots: int = 0) -> dict[str, Any]:
    """Train until `learner.env_steps >= steps` (environment steps; or `max_updates` updates, if given).

    With `resume`, a checkpoint in out_dir (trainer.pt) is loaded first and the log continues from its
    update count; the learner must be built with the run's seed, environment and config (its meta.json),
    or it is refused. Ctrl-C saves a checkpoint and returns cleanly. `checkpoint_every` 0 or None saves only
    at the end (and on Ctrl-C). `snapshots=K` saves the policy (no trainer state) each time the run passes
    another K-th of `steps`, except at the end, where the run's own checkpoint is the last weights. Torch
    runs with `training_threads()` meanwhile, as the CLI's, so the weights do not depend on the caller's
    thread setting (which is restored). Returns a summary dict.
    """
    steps = check_count("steps", steps, 1, "(environment steps to train)")
    if checkpoint_every is not None:
        checkpoint_every = check_count("checkpoint_every", checkpoint_every, 0, "(updates; 0 or None: at the end)")
    if max_updates is not None:
        max_updates = check_count("max_updates", max_updates, 0, "(or None: no limit)")
    snapshots = check_count("snapshots", snapshots, 0, "(0: none)")
    if not isinstance(resume, bool):
        raise TypeError(f"resume must be True or False, got {resume!r}")
    out = Path(out_dir)
    if not resume and (out / ckpt.MODEL_FILE).exists():
        raise ValueError(f"{out} already holds a trained run ({ckpt.MODEL_FILE}); training a new one there would "
                         f"overwrite its weights and log: pass resume=True to continue it, or another out_dir")
    if resume and (out / ckpt.MODEL_FILE).exists() and not ckpt.has_trainer_state(out):
        raise ValueError(f"cannot resume {out}: it has weights ({ckpt.MODEL_FILE}) but no {ckpt.TRAINER_FILE}, the "
                         f"training state an exact resume needs; starting over would overwrite the weights. Train "
                         f"a new run with another --out (or move {ckpt.MODEL_FILE} away to start this one over)")
    if resume and ckpt.has_trainer_state(out):
        _refuse_other_settings(learner, out)
    with pinned_torch_threads(training_threads()):
        return _train(learner, steps, out, checkpoint_every, resume, progress, max_updates, snapshots)


def check_count(name: str, value: Any, least: int, meaning: str) -> int:
    """`value` as an int of at least `least`: a TypeError naming `name` for text, floats or bools (whose own
    errors, such as "'<' not supported", say nothing of which argument), a ValueError below `least`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {least} {meaning}, got {value!r} ({type(value).__name__})")
    if value < least:
        raise ValueError(f"{name} must be >= {least} {meaning}, got {value}")
    return int(value)


def _refuse_other_settings(learner: Learner, out: Path) -> None:
    """A resumed learner must be the run's: another seed, environment or config would continue it as another
    run (not the uninterrupted one), under a meta.json recording settings it was partly not trained with.
    Compares the learner's `meta()` with the checkpoint's meta.json; a hyperparameter that meta lacks (added
    to the config since) counts as its default."""
    import json

    from cagekit.agents.rollout import training_reds

    describe = getattr(learner, "meta", None)
    if not callable(describe) or not (out / ckpt.META_FILE).exists():
        return
    saved = ckpt.load_meta(out)
    given = json.loads(json.dumps(describe(), default=ckpt.json_default))  # as meta.json holds it
    config: Any = getattr(learner, "config", None)
    defaults = type(config)().to_dict() if hasattr(config, "to_dict") else {}
    pairs: list[tuple[str, Any, Any]] = [("seed", saved.get("seed"), given.get("seed"))]
    for part in ("env", "hyperparameters"):
        was, now = saved.get(part) or {}, given.get(part) or {}
        for key in sorted({*was, *now}):
            before = was.get(key, defaults.get(key, "unset") if part == "hyperparameters" else "unset")
            pairs.append((f"{part}.{key}", before, now.get(key, "unset")))
    differing = []
    for field, was, now in pairs:
        same = was == now
        if field == "env.red" and not same:
            try:  # "all" and the list of every red are the same reds
                same = training_reds(learner.scenario, was) == training_reds(learner.scenario, now)
            except (ValueError, TypeError):
                pass
        if not same:
            differing.append(f"{field}: {was!r} -> {now!r}")
    if differing:
        raise ValueError(f"cannot resume {out} with this learner: it is built with other settings than the run's "
                         f"{ckpt.META_FILE} ({'; '.join(differing)}; saved -> given). Build it with the run's "
                         f"settings (from_checkpoint({str(out)!r}) does), or train it in another out_dir")


def _train(learner: Learner, steps: int, out: Path, checkpoint_every: int | None, resume: bool, progress: bool,
           max_updates: int | None, snapshots: int) -> dict[str, Any]:
    from torch.utils.tensorboard import SummaryWriter

    out.mkdir(parents=True, exist_ok=True)
    if resume and ckpt.has_trainer_state(out):
        learner.load_state_dict(ckpt.load_trainer_state(out))
    rows = _read_log(out / LOG_FILE, learner.updates) if resume else []
    with (out / LOG_FILE).open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=LOG_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    tb = SummaryWriter(str(out / "tb"), purge_step=learner.updates if learner.updates else None)
    bar = _progress(progress, steps, learner.env_steps, label=_run_label(learner))
    start_updates = learner.updates
    t_start = time.perf_counter()
    elapsed_before = float(rows[-1]["time_s"]) if rows else 0.0
    interrupted = False
    last: dict[str, float] = {}
    schedule = SnapshotSchedule(steps, snapshots, learner.env_steps)
    try:
        with (out / LOG_FILE).open("a", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=LOG_FIELDS, extrasaction="ignore")
            while learner.env_steps < steps and (max_updates is None or learner.updates < max_updates):
                t0 = time.perf_counter()
                before, updates_before = learner.env_steps, learner.updates
                with deferred_interrupt():  # an update and its log row land together: Ctrl-C waits for both
                    metrics = learner.update()
                    dt = time.perf_counter() - t0
                    rate = (learner.env_steps - before) / dt if dt > 0 else math.nan
                    last = {**metrics, "steps_per_s": rate}
                    row = {"update": learner.updates, "env_steps": learner.env_steps,
                           "episodes": getattr(learner, "episodes", ""),
                           "time_s": round(elapsed_before + time.perf_counter() - t_start, 3), **last}
                    writer.writerow(row)
                    fh.flush()
                    for key, value in last.items():
                        if isinstance(value, (int, float)) and math.isfinite(value):
                            tb.add_scalar(f"train/{key}", value, learner.env_steps)
                if bar is not None:
                    bar.update(bar.task_ids[0], completed=min(learner.env_steps, steps),
                               stats=_stats_text(last.get("return", math.nan), last.get("bits", math.nan),
                                                 last.get("epsilon", math.nan), rate))
                # a multiple crossed, not hit: a DIAL update makes `grad_steps` gradient steps at once
                if checkpoint_every and learner.updates // checkpoint_every > updates_before // checkpoint_every:
                    learner.save(out)
                if schedule.due(learner.env_steps):
                    with deferred_interrupt():
                        learner.save_policy(snapshot_dir(out, learner.env_steps))
    except KeyboardInterrupt:  # on the last update the run is complete all the same
        interrupted = learner.env_steps < steps and (max_updates is None or learner.updates < max_updates)
    finally:
        if bar is not None:
            bar.stop()
        tb.flush()
        tb.close()
    learner.save(out)
    return {"updates": learner.updates, "env_steps": learner.env_steps, "interrupted": interrupted,
            "new_updates": learner.updates - start_updates, "last": last, "out_dir": str(out)}


__all__ = ["ALGOS", "DIAL_ALGOS", "SELECTION_DIR", "SELECTION_FILE", "Learner", "chosen_weights",
           "deferred_interrupt", "make_learner", "snapshot_dir", "train"]


SB3_ALGOS = ("ppo", "maskable-ppo", "dqn")
RUN_FILE = "run.json"


#: what `cagekit train` writes into a run's folder, ours and SB3's (SB3's TensorBoard files too: `TB_EVENTS`)
RUN_OUTPUTS = (RUN_FILE, LOG_FILE, "tb", ckpt.MODEL_FILE, ckpt.META_FILE, ckpt.TRAINER_FILE, SNAPSHOT_DIR,
               SELECTION_FILE, SELECTION_DIR, "model.zip", "replay_buffer.pkl", "checkpoints", "progress.csv")
TB_EVENTS = "events.out.tfevents.*"


def check_new_run_folder(out: Path) -> None:
    """Refuse `--out` for a new run before anything is written: a file (or a path under one), a run of
    `cagekit train` (its run.json: --resume continues it), or a folder holding what a run writes that no
    run.json vouches for (the user's own files, a benchmark's run), which the run would overwrite. An empty
    folder, or one of other files, is used as it is."""
    check_folder_path(out, "--out", "give the run's folder (new or empty)")
    if (out / RUN_FILE).exists():
        raise ValueError(f"{out} already holds a run; use --resume {out} to continue it or choose --out")
    found = [name for name in RUN_OUTPUTS if (out / name).exists()] + sorted(p.name for p in out.glob(TB_EVENTS))
    if found:
        raise ValueError(f"--out {out} holds files a training run writes ({', '.join(found)}) but no {RUN_FILE}, "
                         f"so it is no run of `cagekit train` to continue: they are your own or another tool's, "
                         f"and are not overwritten; choose another --out (new or empty), or move those files away")


def _refuse_changed_settings(run: dict[str, Any], args: Any, out: Path) -> None:
    """`--resume OUT` continues the run as its run.json records it: an option that says otherwise (another
    scenario, seed, red...) is refused rather than silently dropped. Only --steps and --checkpoint-every
    may change."""
    env = run.get("env", {})
    recorded = {"algo": run.get("algo"), "scenario": run.get("scenario"), "seed": run.get("seed"),
                "config": run.get("config"), "snapshots": run.get("snapshots", 0),
                "message_cost": env.get("message_cost"), "red": env.get("red"),
                "detection": env.get("detection"), "backend": env.get("simulator", "engine"),
                "layout": env.get("layout"),
                "out": str(out)}
    for key, was in recorded.items():
        given = getattr(args, key, None)
        paths = key in ("out", "config") and was is not None
        if key == "red" and given is not None and _same_reds(run.get("scenario"), given, was):
            continue
        if key == "layout" and given is not None and _same_layout(run.get("scenario"), given, was):
            continue
        if given is not None and (Path(given) != Path(was) if paths else given != was):
            flag = "--" + key.replace("_", "-")
            raise ValueError(f"--resume continues {out} with the settings in its {RUN_FILE}: {flag} {given} differs "
                             f"from its {was!r} (only --steps and --checkpoint-every may change; start a new run "
                             f"with --out for other settings)")


def _same_layout(scenario: Any, given: str, was: str | None) -> bool:
    """Whether --layout names the run's layout, a run.json with none meaning the scenario's default (cage2's
    classic): `--resume RUN --layout classic` continues a cage2 run made without --layout."""
    try:
        return given == (was or get_scenario(str(scenario)).default_layout)
    except ValueError:
        return False


def _same_reds(scenario: Any, given: str, was: str | None) -> bool:
    """Whether --red names the reds the run trains against however it is spelt: a run.json with no red (runs
    made before training defaulted to all of them) trains against the scenario's default red; 'all' is the
    list of every red; spaces in a list do not count. False where either cannot be read (the caller refuses)."""
    from cagekit.agents.rollout import training_reds

    try:
        spec = get_scenario(str(scenario))
        now, then = ([spec.default_red if n is None else n for n in training_reds(spec.name, red)]
                     for red in (given, was))
    except (ValueError, KeyError):
        return False
    return now == then


def cli_train(args: Any) -> int:
    """`cagekit train`: our learners through `train`, SB3 baselines through `cagekit.agents.sb3`.

    The command line is recorded in OUT/run.json so that `--resume OUT` rebuilds the same learner (for
    SB3 runs: reloads the latest checkpoint, see `train_sb3`). Returns 130 when interrupted (Ctrl-C)."""
    import json

    if args.resume:
        out = Path(args.resume)
        run_file = out / RUN_FILE
        if not run_file.exists():
            raise ValueError(f"cannot resume {out}: no {RUN_FILE} there (was it made by `cagekit train`?)")
        try:
            run = json.loads(run_file.read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot resume {out}: its {RUN_FILE} is unreadable ({exc})") from exc
        ckpt.adopt_spec(run, run_file)  # a scenario of the user's own: registered again here
        _refuse_changed_settings(run, args, out)
        if args.steps is not None:
            run["steps"] = args.steps
        if args.checkpoint_every is not None:
            run["checkpoint_every"] = args.checkpoint_every
    else:
        if args.algo is None:
            raise ValueError(f"--algo is required ({', '.join((*ALGOS, *SB3_ALGOS))})")
        if args.red is not None and not args.red.strip():  # not taken for the default, all
            raise ValueError("--red is empty: name a red agent, a comma-separated list, or all")
        # every red agent unless told otherwise: the evaluation scores a team against all of them, and a team
        # trained on one over-defends against the others (docs/dial.md, "One red in training, three in scoring")
        env_kwargs = {k: v for k, v in (("message_cost", args.message_cost), ("red", args.red or "all"),
                                        ("detection", args.detection), ("layout", getattr(args, "layout", None)))
                      if v is not None}
        scenario = args.scenario or "paper-small"
        seed = 0 if args.seed is None else args.seed
        simulator = getattr(args, "backend", None) or default_simulator(scenario)
        if simulator != "engine":
            env_kwargs["simulator"] = simulator
        out = Path(args.out or f"runs/{args.algo}-{scenario}-{seed}")
        steps = 200_000 if args.steps is None else args.steps
        run = {"algo": args.algo, "scenario": scenario, "seed": seed, "steps": steps,
               "config": args.config, "env": env_kwargs, "checkpoint_every": args.checkpoint_every,
               "snapshots": args.snapshots or 0}
        ckpt.with_spec(run)  # a registered scenario's spec: --resume in a fresh process registers it again
        check_new_run_folder(out)
    algo = run["algo"]
    if algo not in (*ALGOS, *SB3_ALGOS):
        raise ValueError(f"unknown algorithm {algo!r}; valid: {', '.join((*ALGOS, *SB3_ALGOS))}")
    if algo in SB3_ALGOS and args.checkpoint_every is not None:
        raise ValueError(f"--checkpoint-every sets the interval of our learners ({', '.join(ALGOS)}); {algo} is "
                         f"an SB3 run, which checkpoints every tenth of the run into OUT/checkpoints/")
    if algo not in SB3_ALGOS and run.get("checkpoint_every") is None:
        run["checkpoint_every"] = CHECKPOINT_EVERY
    for key, least in (("steps", 1), ("checkpoint_every", 1), ("snapshots", 0), ("seed", 0)):
        if run.get(key) is not None and run[key] < least:
            raise ValueError(f"--{key.replace('_', '-')} must be >= {least}, got {run[key]}")
    spec = get_scenario(run["scenario"])  # an unknown scenario is named here, before any folder is made
    spec.layout(run["env"].get("layout"))  # and an unknown layout, naming the scenario's
    if not args.resume:  # a red list that cannot be read, named as the option typed (a resume's is recorded)
        from cagekit.agents.rollout import training_reds

        try:
            training_reds(spec.name, run["env"].get("red"))
        except ValueError as exc:
            raise ValueError(f"--red: {exc}") from None
    for setting in ("detection", "message_cost"):
        spec.setting(setting, run["env"].get(setting))
    check_training(algo, spec.name, run["config"], run["env"])
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    (out / RUN_FILE).write_text(json.dumps(run, indent=2) + "\n")
    try:
        return _train_run(run, out, args)
    except Exception:
        # refused before anything was trained (a bad scenario, red, config...): leave no run behind that
        # would make the corrected command ask for --resume
        if not args.resume and [p.name for p in out.iterdir()] == [RUN_FILE]:
            (out / RUN_FILE).unlink()
            if created:
                out.rmdir()
        raise


def _train_run(run: dict[str, Any], out: Path, args: Any) -> int:
    algo = run["algo"]
    progress = not getattr(args, "no_progress", False)
    if algo in SB3_ALGOS:
        from cagekit.agents.config_file import load_mapping
        from cagekit.agents.sb3 import stopped_short, train_sb3

        hyper = load_mapping(run["config"]) if run["config"] else None
        model = train_sb3(algo, run["scenario"], run["steps"], run["seed"], out, algo_kwargs=hyper,
                          progress_bar=progress, resume=bool(args.resume), snapshots=run.get("snapshots", 0),
                          **run["env"])
        interrupted = stopped_short(model, run["steps"])
        state = ("interrupted; resume with --resume " + str(out) if interrupted
                 else f"done: {out / 'model.zip'} (score it: python evaluation.py {out})")
        print(f"{algo} on {run['scenario']}: {model.num_timesteps:,} env steps, {state}")
        return 130 if interrupted else 0
    limit_torch_threads()
    learner = make_learner(algo, run["scenario"], seed=run["seed"], config=run["config"], **run["env"])
    note = exploration_note(algo, run["config"], run["steps"])
    if note:
        print(note)
    summary = train(learner, run["steps"], out, checkpoint_every=run["checkpoint_every"],
                    resume=bool(args.resume), progress=progress, snapshots=run.get("snapshots", 0))
    state = "interrupted; resume with --resume " + str(out) if summary["interrupted"] else "done"
    if summary["env_steps"] > run["steps"] and summary["new_updates"] == 0:  # --resume with fewer steps
        state = f"already trained past the {run['steps']:,} steps asked for: nothing to do"
    elif summary["env_steps"] > run["steps"]:  # as SB3's PPO does in whole rollouts
        state += f" ({run['steps']:,} asked for: {algo} learns from whole batches of episodes)"
    if not summary["interrupted"]:  # where the weights are, as the SB3 runs' line says, and how to score them
        state += f"; checkpoint in {out}/ (score it: python evaluation.py {out})"
    print(f"{algo} on {run['scenario']}: {summary['updates']} updates, {summary['env_steps']:,} env steps, {state}")
    return 130 if summary["interrupted"] else 0


def exploration_note(algo: str, config: Any, steps: int) -> str | None:
    """A note when a run of `algo` with `config` (as `make_learner` takes it) ends before its epsilon schedule
    does. DIAL's defaults are the paper's, made for about 19M env steps (epsilon anneals over 2M), so a short
    run with them ends exploring almost at random and its team scores like one; the output should say so
    before the run, not leave it to the score."""
    paper = False  # the paper's schedule: the fast config is pointed to from it, not from a short one's own
    if algo in DIAL_ALGOS:
        from cagekit.agents.dial import DialConfig

        anneal = DialConfig.coerce(config).eps_anneal_steps
        paper = anneal == DialConfig().eps_anneal_steps
    elif algo == "qmix":
        from cagekit.agents.qmix import QmixConfig

        anneal = QmixConfig.coerce(config).epsilon_anneal_steps
    else:
        return None
    if steps >= anneal:
        return None
    hint = (" configs/dial-sau-fast.yaml is the tested setting for runs of about 60,000 steps "
            "(--config configs/dial-sau-fast.yaml)." if paper else "")
    return (f"note: {algo}'s epsilon anneals over {anneal:,} env steps, more than this run's {steps:,}: "
            f"it ends still exploring.{hint}")


def default_simulator(scenario: str) -> str:
    """Train on the twin where its equivalence with the engine is shown (the paper scenarios)."""
    from cagekit.twin import TWIN_SCENARIOS

    return "twin" if scenario in TWIN_SCENARIOS else "engine"


