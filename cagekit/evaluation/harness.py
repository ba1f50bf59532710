"""`evaluate`: run the protocol for one team with a runner, journaling every episode, then write the files."""

from __future__ import annotations

import math
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from cagekit.evaluation.episode import EpisodeResult, EpisodeRunner, EvaluationFailure
from cagekit.evaluation.journal import Journal
from cagekit.evaluation.protocol import EvalConfig
from cagekit.evaluation.results import Report, build_report, kept_timing, time_block, write_all
from cagekit.evaluation.runners import RUNNERS
from cagekit.evaluation.sources import TeamSource


class _RunningScore:
    """Sum over combinations of each combination's running mean: the total score so far."""

    def __init__(self) -> None:
        self.sums: dict[tuple[int, str], list[float]] = defaultdict(list)

    def add(self, result: EpisodeResult) -> None:
        self.sums[(result.length, result.red)].append(result.reward)

    @property
    def value(self) -> float:
        return math.fsum(math.fsum(v) / len(v) for v in self.sums.values()) if self.sums else 0.0


def _progress(enabled: bool, console: Any) -> Any:
    if not enabled:
        return None
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("score so far {task.fields[score]:.2f}"), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=console,
                    auto_refresh=False)  # redrawn per episode: no thread, so worker processes can fork


def check_identity(config: EvalConfig, source: TeamSource) -> None:
    """Refuse a `config` naming another team than `source`: the journal would credit that team with this one's
    episodes (and a later run of the team it names would resume them), the reports would name it."""
    identity = source.identity()
    if config.team != identity:
        raise ValueError(f"the configuration's team {config.team!r} is not the team given to score, {source.label} "
                         f"({identity!r}); nothing was written: build the EvalConfig with team=source.identity()")


def check_output_apart(out: Path, source: TeamSource) -> None:
    """Refuse an output folder that is the evaluated checkpoint's own folder, or is or lies in the evaluated
    submission's folder: the reports would become files of the team itself, so the checkpoint's identity
    (the digest of its folder's files) changed under its journal, which no rerun could then resume, and the
    submission's files no longer matched its manifest, so it no longer opened at all."""
    from cagekit.evaluation.sources import CheckpointSource, MutedSource, SubmissionSource

    inner = source.inner if isinstance(source, MutedSource) else source
    team = Path(inner.path) if isinstance(inner, (CheckpointSource, SubmissionSource)) else None
    if team is None or not team.is_dir():
        return
    where = out.resolve()
    if where == team and isinstance(inner, CheckpointSource):
        raise ValueError(f"output folder {out} is the evaluated checkpoint's own folder: the reports written there "
                         f"would change the files that identify the checkpoint, so no rerun could resume this "
                         f"evaluation; give another output folder")
    if isinstance(inner, SubmissionSource) and (where == team or team in where.parents):
        raise ValueError(f"output folder {out} is {'' if where == team else 'inside '}the evaluated submission's "
                         f"folder {team}: the reports written there would be files its manifest does not list, so "
                         f"the submission would no longer open; give another output folder")


def check_team(config: EvalConfig, source: TeamSource, step_timeout: float | None = None,
               keep: bool = False) -> None:
    """Load the team and let it act once on the first combination, before the journal ties an output folder
    to it: corrupt weights, an unknown algorithm or a submission packaged for another scenario are refused
    with a ValueError and nothing written. `keep`: leave the team loaded (for a serial run in this process)."""
    length, red = config.combinations()[0]
    runner = EpisodeRunner(config, source, step_timeout)
    torch = None if keep else sys.modules.get("torch")
    threads = torch.get_num_threads() if torch is not None else 0
    if torch is not None:
        torch.set_num_threads(1)  # start no thread pool in a process that forks worker processes next
    try:
        runner.probe(length, red)
    except BaseException as exc:  # a Ctrl-C too: the team it started is closed here, not left to the collector
        runner.close()
        if not isinstance(exc, EvaluationFailure):
            raise
        what = source.identity().get("path") or source.label
        raise ValueError(f"the team {what} cannot be evaluated (nothing was written): {exc}") from exc
    finally:
        if torch is not None:
            torch.set_num_threads(threads)
    if not keep:
        runner.close()  # worker processes build their own team; a submission's worker must not be forked


def _checked(config: EvalConfig, source: TeamSource, out: Path, backend: str, step_timeout: float | None
             ) -> list[str]:
    """`evaluate`'s checks before the journal is read: a known backend, a valid timeout, the config naming
    `source`, its reds the scenario's, `out` apart from the team; returns the environment's agent names."""
    if backend not in RUNNERS:
        twin = " (the twin is no backend: build the EvalConfig with simulator='twin')" if backend == "twin" else ""
        raise ValueError(f"unknown backend {backend!r}; valid: {', '.join(RUNNERS)}{twin}")
    if step_timeout is not None:
        from cagekit.submissions.timeouts import check_timeout

        check_timeout("step_timeout", step_timeout)
    check_identity(config, source)
    from cagekit.wrappers import make_env

    length, red = config.combinations()[0]
    probe = make_env(config.scenario, red=red, green=config.green, episode_length=length,
                     message_cost=config.message_cost, sau=config.sau, channel=config.channel, layout=config.layout,
                     view=config.view)
    for r in config.reds:
        if r not in probe.spec.red_agents:
            raise ValueError(f"unknown red agent {r!r} for scenario {config.scenario!r}; "
                             f"valid: {', '.join(probe.spec.red_agents)}")
    check_output_apart(out, source)
    return list(probe.possible_agents)


def evaluate(config: EvalConfig, source: TeamSource, out_dir: str | Path, *, backend: str = "serial",
             workers: int = 1, address: str | None = None, step_timeout: float | None = None,
             progress: bool = True, console: Any = None, chart: bool = True) -> tuple[Report, dict[str, Any]]:
    """Score `source` by the protocol of `config` into `out_dir`, resuming from its journal when there is one.

    `chart=False` skips scores.png, for callers that only read the numbers (the snapshot choice).

    Returns the report and the `summary.json` content. Raises ValueError, writing nothing, for an unknown
    backend or a `step_timeout` that is not a positive number of seconds (up to a day), a `config` whose
    team is not `source`'s identity, a team that cannot load or act (`check_team`) or an output folder it must
    not use; `JournalMismatch` (a ValueError)
    for a journal of another configuration, or reports no journal vouches for; `EvaluationFailure` when an
    episode fails (what finished stays in the journal; a journal left with no episode is removed)."""
    out = Path(out_dir)
    try:
        agent_names = _checked(config, source, out, backend, step_timeout)
        journal = Journal(out, config).read()  # a refused folder fails before the team is loaded
    except BaseException:  # refused: the team a submission's source keeps from its checks (its worker) is released
        source.close()
        raise
    todo = [t for t in config.tasks() if t not in journal.results]
    created = not out.exists()
    try:
        if todo:
            check_team(config, source, step_timeout, keep=backend == "serial")
        journal.open()
        running = _RunningScore()
        for result in journal.results.values():
            running.add(result)
        bar = _progress(progress, console)
        task_id = None
        if bar is not None:
            bar.start()
            from rich.markup import escape

            task_id = bar.add_task(escape(f"{source.label} on {config.scenario}"), total=len(config.tasks()),
                                   completed=len(journal.results), score=running.value)

        def on_result(result: EpisodeResult) -> None:
            journal.append(result)
            running.add(result)
            if bar is not None:
                bar.update(task_id, advance=1, score=running.value, refresh=True)

        try:
            if todo:
                RUNNERS[backend](config, source, todo, on_result, step_timeout=step_timeout, workers=workers,
                                 address=address)
        except EvaluationFailure as exc:
            exc.finished = len(journal.results)
            exc.journal = None if journal.discard_if_empty() else str(journal.path)
            if exc.journal is None and created and not any(out.iterdir()):
                out.rmdir()  # nothing was kept: leave no trace of the failed run
            raise
        finally:
            if bar is not None:
                bar.stop()
        report = build_report(journal.config, journal.results)  # its layout as the journal names it
        timing = time_block(journal.started, time.time())
        if not todo:  # nothing played: the reports stay as the run that played the last episode wrote them
            timing = kept_timing(out, timing)
        summary = write_all(report, out, timing, agent_names, chart=chart)
    finally:
        try:
            journal.close()
        finally:  # the team check_team kept for a serial run, however the run ended: none left to the collector
            source.close()
    return report, summary
