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
`cagekit.agents.snapshots`), so that a later choice among them (`cagekit.evaluation.selection`) need not score only the
last weights.
"""

from __future__ import annotations

import contextlib
import csv
import importlib
import io
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
from cagekit.agents.snapshots import SnapshotSchedule, snapshot_dir
from cagekit.agents.torch_threads import pinned_torch_threads, training_threads
from cagekit.scenarios import ScenarioSpec, scenario_name

if TYPE_CHECKING:  # imported where used: rich costs start-up time
    from rich.progress import Progress

DIAL_ALGOS = ("dial-sau", "dial", "nocomm", "shared-obs")
ALGOS = (*DIAL_ALGOS, "qmix")
SB3_ALGOS = ("ppo", "maskable-ppo", "dqn")
LOG_FILE = "log.csv"
#: updates between checkpoints, `cagekit train --checkpoint-every`
CHECKPOINT_EVERY = 50
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


def check_training(algo: str, scenario: str, config: str | Path | dict[str, Any] | None, env: dict[str, Any]) -> None:
    """Refuse what a run of `algo` on `scenario` would fail on later (its config's keys, types and ranges; a
    channel on a team of one), so that `cagekit train` and `benchmark` refuse before making any folder.
    `config`: a file's path, the mapping it holds, or None."""
    from cagekit.agents.config_file import load_mapping

    if algo in SB3_ALGOS:
        from cagekit.agents.sb3.hyperparameters import check_hyperparameters

        check_hyperparameters(algo, config if isinstance(config, dict) else load_mapping(config) if config else None)
    elif algo in DIAL_ALGOS:
        from cagekit.agents.dial import DialConfig, check_team

        DialConfig.coerce(config)
        check_team(algo, scenario, env.get("layout"))
    elif algo == "qmix":
        from cagekit.agents.qmix import QmixConfig

        QmixConfig.coerce(config)


def make_progress_bar(enabled: bool, total: int, initial: int, label: str = "train") -> Progress | None:
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


def stats_text(ret: float, bits: float, epsilon: float, steps_per_s: float) -> str:
    """The stats column of the training bar (ours and SB3's): return, bits per episode, epsilon (left out for
    a learner without one, such as PPO, rather than shown as nan), steps/s."""
    eps = "" if math.isnan(epsilon) else f"eps {epsilon:.3f}  "
    return f"return {ret:8.2f}  bits/ep {bits:5.2f}  {eps}{steps_per_s:,.0f} steps/s"


def _read_log(path: Path, upto: int) -> list[dict[str, str]]:
    """The log rows up to update `upto` (a resumed run rewrites the log from them). Every row is written whole
    with its line end, so text after the last one is a row cut short by a kill: it is dropped, as the journal
    drops a cut line (its update is past the checkpoint and logged again as it is trained again); kept, a row
    cut to '1' counted as update 1 with no figures, and the resume failed or the log could not be plotted."""
    if not path.exists():
        return []
    try:
        with path.open(newline="") as fh:
            text = fh.read()
        return [row for row in csv.DictReader(io.StringIO(text[:text.rfind("\n") + 1]))
                if int(float(row["update"])) <= upto]
    except (KeyError, TypeError, ValueError, csv.Error) as exc:
        raise ValueError(f"cannot resume from {path}: the training log is damaged ({type(exc).__name__}: {exc}); "
                         f"restore it, or move it away to resume with a log that starts here") from exc


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
    thread setting (which is restored); a resume on another count, or under other torch CPU kernels, than the
    run's (meta.json) is refused.
    Returns a summary dict.
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
    threads = training_threads()
    if resume and ckpt.has_trainer_state(out) and (out / ckpt.META_FILE).exists():
        saved = ckpt.load_meta(out)  # read once for the three checks (a run saved without it is not checked)
        _refuse_other_settings(learner, out, saved)
        _refuse_other_threads(out, saved, threads)
        _refuse_other_kernels(out, saved)
    with pinned_torch_threads(threads):
        return _train(learner, steps, out, checkpoint_every, resume, progress, max_updates, snapshots)


def check_count(name: str, value: Any, least: int, meaning: str) -> int:
    """`value` as an int of at least `least`: a TypeError naming `name` for text, floats or bools (whose own
    errors, such as "'<' not supported", say nothing of which argument), a ValueError below `least`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {least} {meaning}, got {value!r} ({type(value).__name__})")
    if value < least:
        raise ValueError(f"{name} must be >= {least} {meaning}, got {value}")
    return int(value)


def _refuse_other_threads(out: Path, saved_meta: dict[str, Any], threads: int) -> None:
    """A run resumed on another torch thread count (CAGEKIT_TORCH_THREADS) goes on as another run: the count
    splits torch's sums otherwise, so its weights would not be the uninterrupted run's, and nothing would say so.
    meta.json records the run's count (`torch_threads`; a run saved before it was recorded is not checked)."""
    saved = saved_meta.get("torch_threads")
    if isinstance(saved, int) and not isinstance(saved, bool) and saved != threads:
        raise ValueError(f"cannot resume {out} on {threads} torch thread(s): it trained on {saved}, and the count "
                         f"changes the weights' last bits, so it would not end as the uninterrupted run does; set "
                         f"CAGEKIT_TORCH_THREADS={saved} to resume it")


def _refuse_other_kernels(out: Path, saved_meta: dict[str, Any]) -> None:
    """A run resumed under other torch CPU kernels (AVX2, AVX512, DEFAULT: `cagekit.KERNELS_ENV`) goes on as
    another run: their rounding differs, so it would end on other weights than the uninterrupted run, silently.
    meta.json records the run's kernels (`torch_cpu_kernels`; a run saved before they were recorded is not
    checked). torch picks them once per process, so matching them means starting Python with the setting."""
    import torch

    import cagekit

    saved = saved_meta.get("torch_cpu_kernels")
    running = torch.backends.cpu.get_cpu_capability()
    if isinstance(saved, str) and saved and saved != running:
        raise ValueError(f"cannot resume {out} with torch's {running} CPU kernels: it trained with its {saved} "
                         f"ones, and their rounding changes the weights, so it would not end as the uninterrupted "
                         f"run does; start Python with {cagekit.KERNELS_ENV}={saved.lower()} (importing cagekit "
                         f"before using torch), on a CPU that has them, to resume it")


def _refuse_other_settings(learner: Learner, out: Path, saved: dict[str, Any]) -> None:
    """A resumed learner must be the run's: another seed, environment or config would continue it as another
    run (not the uninterrupted one), under a meta.json recording settings it was partly not trained with.
    Compares the learner's `meta()` with the checkpoint's meta.json; a hyperparameter that meta lacks (added
    to the config since) counts as its default."""
    import json

    from cagekit.agents.rollout import training_reds

    describe = getattr(learner, "meta", None)
    if not callable(describe):
        return
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
    bar = make_progress_bar(progress, steps, learner.env_steps, label=_run_label(learner))
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
                               stats=stats_text(last.get("return", math.nan), last.get("bits", math.nan),
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


def exploration_note(algo: str, config: Any, steps: int, benchmark: bool = False) -> str | None:
    """A note when a run of `algo` with `config` (as `make_learner` takes it) ends before its epsilon schedule
    does. DIAL's defaults are the paper's, made for about 19M env steps (epsilon anneals over 2M), so a short
    run with them ends exploring almost at random and its team scores like one; the output should say so
    before the run, not leave it to the score. `benchmark`: the option is written as `cagekit benchmark` takes it
    (`--config ALGO=FILE`; the bare file is `cagekit train`'s form, which the benchmark refuses)."""
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
    option = f"--config {algo + '=' if benchmark else ''}configs/dial-sau-fast.yaml"
    hint = (f" configs/dial-sau-fast.yaml is the tested setting for runs of about 60,000 steps ({option})."
            if paper else "")
    return (f"note: {algo}'s epsilon anneals over {anneal:,} env steps, more than this run's {steps:,}: "
            f"it ends still exploring.{hint}")


def default_simulator(scenario: str) -> str:
    """Train on the twin where its equivalence with the engine is shown (the paper scenarios)."""
    from cagekit.twin import TWIN_SCENARIOS

    return "twin" if scenario in TWIN_SCENARIOS else "engine"


__all__ = ["ALGOS", "DIAL_ALGOS", "Learner", "deferred_interrupt", "make_learner", "train"]
