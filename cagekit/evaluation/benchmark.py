"""`cagekit benchmark`: train (or load) each algorithm on the same seeds, score each with the harness, tabulate.

Every team is scored by the evaluation harness on the CybORG engine with the same protocol seed, so
the rows are comparable. A training run already present in OUT/runs is loaded, not retrained. With
`select_episodes > 0` each run keeps its policy at every `snapshots`-th of its steps (K-1 snapshots) and,
of those and its final weights, the one with the best held-out objective (return minus channel cost, on
the twin where it models the scenario) is the one scored (`cagekit.evaluation.selection`); every learner
is treated alike.
"""

from __future__ import annotations

import _thread
import json
import math
import multiprocessing
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from cagekit.agents import HEURISTICS
from cagekit.agents.training import ALGOS, SB3_ALGOS, exploration_note
from cagekit.evaluation import benchmark_layout as layout
from cagekit.evaluation.compare import MUTED_SUFFIX, ScoredSeed, compare_all
from cagekit.evaluation.compare import to_markdown as paired_markdown
from cagekit.evaluation.protocol import seed_ci95
from cagekit.scenarios import registered_specs
from cagekit.submissions.lifeline import exit_with_parent

SB3_STEPS_PER_ROLLOUT = 128


@dataclass
class BenchmarkPlan:
    scenario: str
    algos: list[str]
    seeds: list[int]
    steps: int
    out: Path
    episodes: int = 100
    lengths: str = "30"
    reds: str | None = None
    workers: int = 1
    backend: str | None = None
    address: str | None = None
    jobs: int = 1
    configs: dict[str, str] = field(default_factory=dict)
    env: dict[str, Any] = field(default_factory=dict)  # extra make_env settings (message_cost, detection, layout)
    progress: bool = True
    train_red: str | None = "all"  # reds trained against ("all": every red of the scenario; None: default)
    snapshots: int = 0  # keep the policy at each K-th of a run's steps (K-1 snapshots, then the final weights)
    select_episodes: int = 0  # twin episodes per red to choose among them; 0: score the final weights
    mute: bool = False  # also score every algorithm whose teams send bits with the bits forced to 0
    #: teams of the user's own (name -> what evaluation.py takes: FILE.py:NAME, a submission, a checkpoint or
    #: run folder), scored as a heuristic is: the same team on every seed's protocol, beside the algorithms
    teams: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        valid = (*ALGOS, *SB3_ALGOS, *HEURISTICS)
        unknown = [a for a in self.algos if a not in valid]
        if unknown:
            raise ValueError(f"unknown algorithm(s) {unknown}; valid: {', '.join(valid)}")
        if not self.seeds:
            raise ValueError("at least one seed is needed")
        if not self.algos and not self.teams:
            raise ValueError(f"no algorithm given; valid: {', '.join(valid)} (or --team NAME=SOURCE)")
        for name in self.teams:
            if not TEAM_NAME.match(name) or name in valid or layout.RUN_NAME.match(name):
                raise ValueError(f"--team name {name!r}: give a name of letters, digits, '_', '.' or '-' that is "
                                 f"no algorithm's ({', '.join(valid)}) and does not end in -s<digits>, which "
                                 f"names its folders (eval/NAME-s0/)")
        if self.select_episodes < 0 or self.snapshots < 0:
            raise ValueError(f"snapshots and select_episodes must be >= 0, got {self.snapshots} and "
                             f"{self.select_episodes}")
        if self.steps < 1 and any(a not in HEURISTICS for a in self.algos):
            raise ValueError(f"training steps must be >= 1, got {self.steps}")
        if self.jobs < 1 or self.workers < 1:
            raise ValueError(f"jobs and workers must be >= 1, got {self.jobs} and {self.workers}")
        repeated = sorted({a for a in self.algos if self.algos.count(a) > 1})
        if repeated:  # each would be scored twice on the same seeds: seeds counted double, a narrower interval
            raise ValueError(f"algorithm(s) {repeated} given more than once in --algos; name each once")
        learners = (*ALGOS, *SB3_ALGOS)
        untrained = sorted(a for a in self.configs if a not in learners)  # a study hands every plan all its configs
        if untrained:
            raise ValueError(f"--config for {untrained}, which is never trained: only learners take a config "
                             f"({', '.join(learners)})")
        from cagekit.agents.rollout import training_reds
        from cagekit.agents.training import check_training
        from cagekit.scenarios import get_scenario

        try:
            get_scenario(self.scenario)
        except ValueError as exc:  # named as the option the user typed, before the reds are checked against it
            raise ValueError(f"--scenario: {exc}") from None
        for algo in (a for a in self.algos if a in learners):  # a config or team it cannot train, before any folder
            check_training(algo, self.scenario, self.configs.get(algo), self.env)
        try:  # checked even with no learner in --algos: a typo is never silently ignored
            training_reds(self.scenario, self.train_red)
        except ValueError as exc:
            raise ValueError(f"--train-red: {exc} (or 'default')") from exc
        from cagekit.evaluation.journal import check_output_folder

        check_output_folder(self.out, "--out", "give a folder")  # named here, not as the protocol check's folder
        check_benchmark_folder(self.out)
        self.check_protocol()

    def check_protocol(self) -> None:
        """Refuse a bad evaluation setting (scenario, reds, episodes, lengths, backend and workers) now, not after
        hours of training."""
        from cagekit.evaluation.cli import backend_and_workers, build_parser, config_from_args

        args = build_parser().parse_args(evaluation_argv(self, "sleep", self.out / "check", 0))
        config, _, _ = config_from_args(args)
        backend_and_workers(args, len(config.tasks()))
        for name, source in self.teams.items():  # a team that cannot be scored here, before hours of training
            try:
                config_from_args(build_parser().parse_args(evaluation_argv(self, source, self.out / "check", 0)))
            except (ValueError, OSError) as exc:
                raise ValueError(f"--team {name}={source}: {exc}") from None

    @property
    def scored(self) -> list[str]:
        """What the table holds, in its order: the algorithms, then the user's teams by name."""
        return [*self.algos, *self.teams]

    def source(self, algo: str, seed: int) -> str:
        """What evaluation.py scores for `algo`'s seed: a heuristic's or user team's own, else the run's chosen
        weights."""
        from cagekit.agents.snapshots import chosen_weights

        if algo in self.teams:
            return self.teams[algo]
        return algo if algo in HEURISTICS else str(chosen_weights(self.run_dir(algo, seed)))

    def run_dir(self, algo: str, seed: int) -> Path:
        return self.out / layout.RUNS / layout.run_name(algo, seed)

    def eval_dir(self, algo: str, seed: int, muted: bool = False) -> Path:
        return self.out / (layout.EVAL_MUTED if muted else layout.EVAL) / layout.run_name(algo, seed)


#: written into a run's folder when the benchmark finished training it
TRAIN_RECORD = "benchmark-train.json"
#: a user team's name (`--team NAME=SOURCE`): it names the team's folders and its rows
TEAM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


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
    another `select_episodes` (a new choice would change what its journaled scores are of). What a record
    from before lacks is not compared."""
    _check_selection(run, select_episodes)
    record = run / TRAIN_RECORD
    if not record.exists():
        return
    done = json.loads(record.read_text())
    advice = ("a finished run is reused, never retrained or extended: use another --out, or remove that run "
              "folder to train it again")
    chosen_with = done.get("select_episodes")
    if select_episodes is not None and chosen_with is not None and int(chosen_with) != int(select_episodes):
        raise ValueError(f"{run} is scored with weights chosen by --select-episodes {chosen_with} (0: its final "
                         f"weights) and this benchmark asks for {select_episodes}; use --select-episodes "
                         f"{chosen_with} with that folder, or another --out")
    kept = done.get("snapshots")
    if snapshots is not None and kept is not None and int(kept) != int(snapshots):
        raise ValueError(f"{run} was trained keeping its policy at every 1/{kept} of the run (--snapshots {kept}) "
                         f"and this benchmark asks for --snapshots {snapshots}; " + advice)
    recorded = done.get("steps")
    if recorded is not None and int(recorded) != int(steps):
        raise ValueError(f"{run} was trained for {int(recorded):,} steps and this benchmark asks for {int(steps):,}; "
                         + advice)
    for key, wanted in (settings or {}).items():
        if key in done and json.dumps(done[key], sort_keys=True) != json.dumps(wanted, sort_keys=True):
            raise ValueError(f"{run} was trained with other {key} settings ({_differences(done[key], wanted)}) "
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


def train_one(algo: str, scenario: str, seed: int, steps: int, run_dir: str, config: str | None,
              env: dict[str, Any], snapshots: int = 0, select_episodes: int = 0, progress: bool = False) -> float:
    """Train one run unless it is already complete, then (with `select_episodes`) choose its snapshot;
    returns the training wall-clock in seconds (the choice is not training)."""
    run = Path(run_dir)
    done_file = run / TRAIN_RECORD
    settings = training_settings(config, env)
    check_finished_run(run, steps, settings, select_episodes, snapshots)
    if not done_file.exists():
        seconds, resumed_at = _train(algo, scenario, seed, steps, run, config, env, snapshots, progress)
        resumed = {} if resumed_at is None else {"resumed_at": resumed_at}  # an SB3 resume is not bit-exact
        done_file.write_text(json.dumps({"train_seconds": seconds, "steps": steps, **settings, **resumed,
                                         "snapshots": snapshots, "select_episodes": select_episodes}) + "\n")
    if select_episodes:
        from cagekit.agents.threads import limit_torch_threads
        from cagekit.evaluation.selection import select_snapshot

        limit_torch_threads()
        select_snapshot(run, scenario, select_episodes, seed, detection=env.get("detection"))
    return float(json.loads(done_file.read_text())["train_seconds"])


def _train(algo: str, scenario: str, seed: int, steps: int, run: Path, config: str | None, env: dict[str, Any],
           snapshots: int, progress: bool) -> tuple[float, int | None]:
    """Train (or continue) one run to `steps`; returns its seconds and, for an SB3 run continued from a
    checkpoint, the step it resumed at. A run cut short by Ctrl-C keeps its state (the trainers save it)
    and raises KeyboardInterrupt, so that it is never recorded as finished: a rerun continues it."""
    from cagekit.agents.threads import limit_torch_threads
    from cagekit.agents.training import default_simulator

    limit_torch_threads()
    env = {"simulator": default_simulator(scenario), **env}
    start = time.perf_counter()
    resumed_at = None
    if algo in SB3_ALGOS:
        from cagekit.agents.config_file import load_mapping
        from cagekit.agents.sb3.checkpoints import latest_checkpoint
        from cagekit.agents.sb3.training import stopped_short, train_sb3

        hyper = load_mapping(config) if config else None
        checkpoint = latest_checkpoint(run)  # an earlier, interrupted try: continue it rather than start over
        resumed_at = None if checkpoint is None else checkpoint[2]
        model = train_sb3(algo, scenario, steps, seed, run, n_envs=1 if steps < 4 * SB3_STEPS_PER_ROLLOUT else 4,
                          progress_bar=progress, algo_kwargs=hyper, snapshots=snapshots, resume=checkpoint is not None,
                          **env)
        interrupted = stopped_short(model, steps)
    else:
        from cagekit.agents.training import make_learner, train

        learner = make_learner(algo, scenario, seed=seed, config=config, **env)
        interrupted = train(learner, steps, run, resume=True, progress=progress, snapshots=snapshots)["interrupted"]
    if interrupted:
        raise KeyboardInterrupt(f"{algo} seed {seed} interrupted; its state is kept in {run}")
    return time.perf_counter() - start, resumed_at


class TrainJob(NamedTuple):
    """One training run: `train_one`'s positional arguments."""

    algo: str
    scenario: str
    seed: int
    steps: int
    run_dir: str
    config: str | None
    env: dict[str, Any]
    snapshots: int = 0
    select_episodes: int = 0


def train_many(jobs: list[TrainJob], processes: int, progress: bool = False) -> list[float]:
    """`train_one` for each job, in `processes` processes when there are several jobs; returns each job's
    training seconds, in order."""
    for job in jobs:  # before any process starts: a refused run should cost no training time
        check_finished_run(Path(job.run_dir), job.steps, training_settings(job.config, job.env),
                           job.select_episodes, job.snapshots)
    if processes > 1 and len(jobs) > 1:
        # spawn, not fork: forking a process that already runs torch's thread pools can deadlock the child
        context = multiprocessing.get_context("spawn")
        stop = context.Event()
        with ProcessPoolExecutor(max_workers=processes, mp_context=context, initializer=_pool_worker,
                                 initargs=(stop, registered_specs())) as pool:
            futures = {pool.submit(_pool_job, job): job for job in jobs}
            try:
                with _runs_progress(progress, len(jobs)) as advance:
                    for done in as_completed(futures):
                        job = futures[done]
                        advance(f"{job.algo} {job.scenario} seed {job.seed}" + (" failed" if done.exception() else ""))
            except KeyboardInterrupt:  # Ctrl-C: the running runs save their state; the queued ones never start
                stop.set()
                pool.shutdown(wait=True, cancel_futures=True)
                raise
            return [future.result() for future in futures]  # the first failure, in job order, raises here
    return [train_one(*job, progress=progress) for job in jobs]


_STOP: Any = None  # in a training pool's worker: the event the parent sets on Ctrl-C


#: seconds a training worker whose benchmark was killed gives its run to save its state before it exits
SAVE_GRACE = 300.0
_IDLE = threading.Event()  # in a training pool's worker: set while no run trains


def _pool_worker(stop: Any, specs: tuple[Any, ...] = ()) -> None:
    global _STOP
    from cagekit.scenarios import register

    for spec in specs:  # the scenarios registered in the benchmark's process (a spawned worker has none)
        register(spec)
    _STOP = stop
    _IDLE.set()
    exit_with_parent(_stop_training)


def _stop_training() -> None:
    """The benchmark was killed outright (kill -9): stop the run as Ctrl-C does, so that it saves its state
    for the rerun to continue, instead of training on unseen, beside that rerun, into the same folder."""
    if not _IDLE.is_set():
        _thread.interrupt_main()  # the trainers' Ctrl-C path: the state is saved, then KeyboardInterrupt
        _IDLE.wait(SAVE_GRACE)


def _pool_job(job: TrainJob) -> float:
    """`train_one` in a pool worker, unless the pool was interrupted: the executor hands jobs to its workers
    ahead of time, so cancelling the futures alone would still start them after Ctrl-C."""
    if _STOP is not None and _STOP.is_set():
        raise KeyboardInterrupt(f"{job.algo} seed {job.seed} not started: interrupted")
    _IDLE.clear()
    try:
        return train_one(*job)
    finally:
        _IDLE.set()


@contextmanager
def _runs_progress(enabled: bool, total: int) -> Iterator[Callable[[str], None]]:
    """A bar of finished training runs (elapsed, time left) for the parallel pool, whose runs cannot draw
    their own: a full study trains for hours, and a silent terminal looks like a hung one."""
    if not enabled:
        yield lambda _label: None
        return
    from rich import progress as rp

    columns = (rp.TextColumn("[bold]training runs"), rp.BarColumn(), rp.MofNCompleteColumn(), rp.TimeElapsedColumn(),
               rp.TimeRemainingColumn(), rp.TextColumn("last: {task.fields[last]}"))
    with rp.Progress(*columns) as bar:
        task = bar.add_task("runs", total=total, last="-")
        yield lambda label: bar.update(task, advance=1, last=label)


def evaluation_argv(plan: BenchmarkPlan, source: str, out: Path, seed: int, muted: bool = False,
                    name: str | None = None) -> list[str]:
    """The `cagekit evaluate` command line that scores `source` (a heuristic's name or a run's weights);
    `name` labels its reports (else the weights' folder name, for a snapshot `step000012000`)."""
    argv = [source, str(out), "--scenario", plan.scenario, "--episodes", str(plan.episodes),
            "--lengths", plan.lengths, "--seed", str(seed), "--workers", str(plan.workers)]
    if name is not None:
        argv += ["--team-name", name]
    if muted:
        argv += ["--mute"]
    # the plan's own runs were trained with its settings and carry them; a user's submission or checkpoint carries
    # its own, so it is held to the plan's (the scenario's where the plan names none): one it contradicts is
    # refused (before any training, by `check_protocol`), never scored on other settings than the table's
    held = source in plan.teams.values() and not _takes_settings(source)
    for key in ("message_cost", "layout"):
        value = plan.env.get(key)
        if value is None and held:
            from cagekit.scenarios import get_scenario

            spec = get_scenario(plan.scenario)
            value = spec.setting("message_cost", None) if key == "message_cost" else spec.default_layout
        if (_takes_settings(source) or held) and value is not None:
            argv += [f"--{key.replace('_', '-')}", str(value)]
    if plan.env.get("detection") is not None:
        argv += ["--detection", str(plan.env["detection"])]
    if plan.reds:
        argv += ["--reds", plan.reds]
    if plan.backend:
        argv += ["--backend", plan.backend]
    if plan.address:
        argv += ["--address", plan.address]
    if not plan.progress:
        argv += ["--no-progress"]
    return argv


def _takes_settings(source: str) -> bool:
    """Whether a team is built for the environment it is given (a heuristic, FILE.py:NAME), not trained or
    packaged for one of its own."""
    return source in HEURISTICS or source.endswith(".py") or ".py:" in source


def _evaluate(plan: BenchmarkPlan, algo: str, seed: int, muted: bool = False) -> dict[str, Any]:
    """Score one run's chosen weights (or a heuristic, or a user's team) with the plan's protocol; `muted`:
    with every bit the team sends forced to 0 (`cagekit evaluate --mute`), into its own folder."""
    from cagekit.evaluation.cli import failure_advice, run_command
    from cagekit.evaluation.episode import EvaluationFailure

    source = plan.source(algo, seed)
    out = plan.eval_dir(algo, seed, muted)
    what = f"evaluation of {algo} seed {seed}{' muted' if muted else ''}"
    try:  # Ctrl-C propagates: the finished episodes are journaled, and the rest of the benchmark stops too
        # the run's name, whichever weights were chosen
        name = layout.run_name(algo, seed) + ("-muted" if muted else "")
        run_command(evaluation_argv(plan, source, out, seed, muted, name=name), prog="cagekit benchmark", brief=True)
    except EvaluationFailure as exc:  # one line for `cagekit`'s error report, not a traceback
        raise ValueError(f"{what} failed: {exc}; {failure_advice(exc)}") from exc
    except (ValueError, RuntimeError) as exc:
        raise ValueError(f"{what}: {exc}") from exc
    return json.loads((out / "summary.json").read_text())


def evaluate_muted(plan: BenchmarkPlan, algo: str, seed: int) -> dict[str, Any]:
    """A trained run scored with its channel muted, on the same episodes as its own score (journaled)."""
    return _evaluate(plan, algo, seed, muted=True)


def run_benchmark(plan: BenchmarkPlan) -> Any:
    """Train, score and tabulate; returns the table as a pandas DataFrame (also written to OUT)."""
    import pandas as pd

    learned = [(a, s) for a in plan.algos if a not in HEURISTICS for s in plan.seeds]
    train_env = {**plan.env, **({} if plan.train_red is None else {"red": plan.train_red})}
    to_train = [a for a, s in learned if not (plan.run_dir(a, s) / TRAIN_RECORD).exists()]
    for algo in dict.fromkeys(to_train):  # said once per algorithm, before hours of training (none on reuse)
        note = exploration_note(algo, plan.configs.get(algo), plan.steps)
        if note:
            print(note)
    jobs = [TrainJob(a, plan.scenario, s, plan.steps, str(plan.run_dir(a, s)), plan.configs.get(a), train_env,
                     plan.snapshots, plan.select_episodes) for a, s in learned]
    train_seconds = dict(zip(learned, train_many(jobs, plan.jobs, plan.progress), strict=True))
    plan.out.mkdir(parents=True, exist_ok=True)  # after training: a run SB3 refuses leaves no empty OUT behind
    rows = []
    for algo in plan.scored:
        for seed in plan.seeds:
            summary = _evaluate(plan, algo, seed)
            row = {"algo": algo, "seed": seed, "score": summary["total"]["score"],
                   "score_ci95": summary["total"]["ci95"], "bits_per_episode": summary["bits_per_episode"],
                   "channel_cost_per_episode": summary["channel_cost_per_episode"],
                   "train_seconds": train_seconds.get((algo, seed), 0.0)}
            for comb in summary["combinations"]:
                row[f"{comb['adversary']}@{comb['steps']}"] = comb["mean"]
            rows.append(row)
    per_seed = pd.DataFrame(rows)
    per_seed.to_csv(plan.out / layout.PER_SEED_CSV, index=False)
    table = aggregate(per_seed)
    table.to_csv(plan.out / layout.TABLE_CSV, index=False)
    (plan.out / layout.TABLE_MD).write_text(to_markdown(table, plan) + "\n")
    _write_paired(plan, per_seed, _muted_scores(plan, per_seed) if plan.mute else {})
    plot_table(table, plan.out / layout.CHART, title=f"{plan.scenario}: score by algorithm")
    return table


def _muted_scores(plan: BenchmarkPlan, per_seed: Any) -> dict[str, dict[int, ScoredSeed]]:
    """Every seed of each algorithm that sent bits on any seed, scored muted (`evaluate_muted`): what its
    messages are worth to it. All its seeds, so the paired test is not drawn from the talkative ones."""
    talkers = [a for a, group in per_seed.groupby("algo", sort=False) if group["bits_per_episode"].max() > 0]
    if not talkers:
        print("--mute: no team sent a bit on any seed, so none is scored muted (its score would be its own)")
    muted: dict[str, dict[int, ScoredSeed]] = {}
    for algo in talkers:
        label = f"{algo}{MUTED_SUFFIX}"
        for seed in plan.seeds:
            muted.setdefault(label, {})[seed] = ScoredSeed.from_summary(
                label, seed, evaluate_muted(plan, algo, seed), plan.eval_dir(algo, seed, muted=True))
    return muted


def _write_paired(plan: BenchmarkPlan, per_seed: Any, muted: dict[str, dict[int, ScoredSeed]]) -> None:
    """paired.md: every pair of algorithms (and muted teams), seed by seed (`cagekit.evaluation.compare`), the
    fair test of 'A beats B' when both met the same protocol seeds."""
    scores: dict[str, dict[int, ScoredSeed]] = {}
    for r in per_seed.itertuples():
        scores.setdefault(r.algo, {})[int(r.seed)] = ScoredSeed(
            r.algo, int(r.seed), float(r.score), float(r.bits_per_episode), (), plan.eval_dir(r.algo, int(r.seed)))
    scores.update(muted)
    head = (f"Scenario `{plan.scenario}`: each algorithm's score minus another's on the same protocol seed, "
            "mean and 95% interval over seeds (`cagekit compare` makes the same tables across folders).\n\n")
    (plan.out / layout.PAIRED_MD).write_text(head + paired_markdown(scores, compare_all(scores)) + "\n")


def aggregate(per_seed: Any) -> Any:
    """Mean over seeds with a 95% interval over seeds (one seed: the harness's own interval)."""
    import pandas as pd

    out = []
    for algo, group in per_seed.groupby("algo", sort=False):
        scores = group["score"].tolist()
        ci = seed_ci95(scores) if len(scores) > 1 else float(group["score_ci95"].iloc[0])
        row = {"algo": algo, "seeds": len(scores), "score": sum(scores) / len(scores), "ci95": ci,
               "bits_per_episode": group["bits_per_episode"].mean(),
               "train_minutes": group["train_seconds"].mean() / 60.0}
        for col in group.columns:
            if "@" in col:
                row[col] = group[col].mean()
        out.append(row)
    return pd.DataFrame(out)


def to_markdown(table: Any, plan: BenchmarkPlan) -> str:
    trained = any(a not in HEURISTICS for a in plan.algos)  # heuristics alone: no training to describe
    training = f"{plan.steps:,} training steps against red {plan.train_red or 'default'}" if trained else \
        "nothing trained here"
    episodes = "episode" if plan.episodes == 1 else "episodes"
    layout = f", layout `{plan.env['layout']}`" if plan.env.get("layout") else ""
    teams = "".join(f" Team `{name}` is `{source}`, the same team on every seed's protocol (as a heuristic)."
                    for name, source in plan.teams.items())
    head = (f"Scenario `{plan.scenario}`{layout}, {plan.episodes} {episodes} per combination, lengths {plan.lengths}, "
            f"seeds {plan.seeds}, {training}.{teams} "
            f"Score: sum over red agents of the mean "
            f"episode return (higher is better); 95% interval over seeds (over episodes for one seed).\n\n")
    cols = list(table.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in table.iterrows():
        cells = []
        for c in cols:
            v = r[c]
            cells.append(f"{v:.2f}" if isinstance(v, float) else str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return head + "\n".join(lines)


def plot_table(table: Any, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(4, 1.1 * len(table)), 3.5))
    errors = [0.0 if math.isnan(v) else v for v in table["ci95"]]
    ax.bar(table["algo"], table["score"], yerr=errors, capsize=4, color="#4c72b0")
    ax.set_ylabel("score (sum of mean returns)")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
