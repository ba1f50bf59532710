"""`python evaluation.py [SUBMISSION_OR_CHECKPOINT] [OUT_DIR] [options]` (also `cagekit evaluate`)."""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

from cagekit.agents.heuristics import HEURISTICS
from cagekit.evaluation.episode import EvaluationFailure
from cagekit.evaluation.journal import JournalMismatch, check_output_folder, read_journal
from cagekit.evaluation.protocol import EvalConfig
from cagekit.evaluation.runners import BACKENDS, usable_cpus
from cagekit.evaluation.sources import (
    CheckpointSource,
    HeuristicSource,
    MutedSource,
    PythonSource,
    SubmissionSource,
    TeamSource,
    resolve_source,
)
from cagekit.scenarios.options import CommandParser, comma_list

QUICK_EPISODES = 10
DEFAULT_EPISODES = 100
DEFAULT_LENGTHS = (30, 50, 100)
#: runs of at least this many episodes use worker processes by default
PARALLEL_FROM = 40


class _RaisingParser(CommandParser):
    """An ArgumentParser whose bad options raise ValueError (argparse's message) instead of exiting: a script's
    `run_command` must not end the script with SystemExit(2)."""

    def error(self, message: str) -> NoReturn:
        raise ValueError(f"{self.prog}: {message} (see {self.prog} --help)")


def build_parser(prog: str = "evaluation.py", raising: bool = False) -> argparse.ArgumentParser:
    """The evaluation options; `raising`: bad options raise ValueError instead of printing usage and exiting 2."""
    p = (_RaisingParser if raising else CommandParser)(
        prog=prog,
        description="Score a blue team by the CAGE-2 protocol: for each episode length and red agent, N episodes "
                    "on a fresh environment; per combination mean, standard deviation and 95% CI; the total "
                    "score is the sum of the means. Rerun the same command to resume an interrupted run.")
    p.add_argument("source", nargs="?", metavar="SUBMISSION_OR_CHECKPOINT",
                   help="a submission (zip or folder with submission.py), a checkpoint directory "
                        "(meta.json + weights), your own Python team (FILE.py:NAME: an agent class, built once "
                        "per agent from its AgentSlot, or a function of the environment returning a Team; NAME "
                        "defaults to make_team) or a heuristic team name; default: --team")
    p.add_argument("out_dir", nargs="?", metavar="OUT_DIR",
                   help="output folder (default: results/<team>[-muted]-<scenario>[-<layout>][-<settings>]"
                        "[-quick][-twin], <settings> naming each option that differs from its default)")
    p.add_argument("--scenario", default=None,
                   help="scenario: a name or a scenario file, .json or .yaml (docs/scenarios.md) (default: the one "
                        "a checkpoint or submission was made for, else paper-small)")
    p.add_argument("--layout", default=None, help="blue layout (cage2: team or classic)")
    p.add_argument("--team", default=None,
                   help="the team (a heuristic name or a path) when no SUBMISSION_OR_CHECKPOINT is given; with "
                        "it, a lone positional is OUT_DIR: --team react OUT_DIR (default: the shipped trained "
                        "team submissions/dial-sau-paper-small.zip when present, else react)")
    p.add_argument("--episodes", type=int, default=None, help="episodes per combination (default: 100)")
    p.add_argument("--quick", action="store_true",
                   help=f"{QUICK_EPISODES} episodes per combination (not with --episodes)")
    p.add_argument("--lengths", default="30,50,100", help="episode lengths, comma separated (default: 30,50,100)")
    p.add_argument("--reds", default=None, help="red agents, comma separated (default: all of the scenario's)")
    p.add_argument("--seed", type=int, default=0, help="protocol seed (default: 0)")
    p.add_argument("--workers", type=int, default=None,
                   help=f"worker processes (default: up to 4 for runs of {PARALLEL_FROM}+ episodes to play, a "
                        "rerun counting those its journal lacks, else 1; ray: the CPUs)")
    p.add_argument("--backend", choices=(*BACKENDS, "twin"), default=None,
                   help="serial, processes or ray (default: processes with more than one worker, else serial); "
                        "twin: the vectorised twin instead of CybORG, for quick looks only")
    p.add_argument("--address", default=None, help="Ray cluster address (with --backend ray)")
    p.add_argument("--step-timeout", type=float, default=None, metavar="SECONDS",
                   help="fail when an agent's get_action takes longer than this")
    p.add_argument("--name", default=None,
                   help="author name for the reports (default: a submission's NAME, else anonymous)")
    p.add_argument("--team-name", default=None,
                   help="team name for the reports (default: a submission's TEAM, else the team's file or folder "
                        "name)")
    p.add_argument("--technique", default=None,
                   help="technique for the reports (default: a submission's TECHNIQUE, else the kind of team)")
    p.add_argument("--message-cost", type=float, default=None, help="cost of sending a 1 (default: the scenario's)")
    p.add_argument("--detection", type=float, default=None,
                   help="probability that a stealthy red step is seen (default: the scenario's, 0.1 on the paper's)")
    p.add_argument("--no-sau", action="store_true", help="no SAU action masks")
    p.add_argument("--no-channel", action="store_true", help="no message channel")
    p.add_argument("--mute", action="store_true",
                   help="force every bit the team sends to 0 (what its channel is worth, set against its own score)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _settings(args: argparse.Namespace, source: TeamSource) -> dict[str, Any]:
    """Environment settings: the checkpoint's, then the options; an option contradicting a checkpoint fails."""
    from cagekit.scenarios import get_scenario

    required = source.env_settings()
    given = {"scenario": args.scenario, "layout": args.layout, "message_cost": args.message_cost,
             "sau": False if args.no_sau else None, "channel": False if args.no_channel else None}
    inner = source.inner if isinstance(source, MutedSource) else source
    whose = ("the submission, which was packaged for" if isinstance(inner, SubmissionSource)
             else "the checkpoint, which was trained with")
    for key, value in given.items():
        if value is not None and key in required and required[key] != value:
            typed = f"--no-{key}" if value is False else f"--{key.replace('_', '-')} {value!r}"  # as typed
            raise ValueError(f"{typed} contradicts {whose} {key}={required[key]!r}")
    out = {k: (required[k] if k in required else v) for k, v in given.items()}
    spec = get_scenario(out["scenario"] or "paper-small")
    out["scenario"] = spec.name
    spec.layout(out["layout"])  # validates the layout name
    classic = (out["layout"] or spec.default_layout) == "classic"
    # CAGE-2's single Blue agent: no channel and no masks unless asked for
    out["channel"] = (not classic) if out["channel"] is None else bool(out["channel"])
    out["sau"] = (not classic) if out["sau"] is None else bool(out["sau"])
    out["message_cost"] = spec.setting("message_cost", out["message_cost"])
    out["view"] = required.get("view", "own")  # the team's input layout: not an evaluation choice
    out["spec"] = spec
    return out


def _ints(text: str, what: str) -> tuple[int, ...]:
    """`--lengths`: positive integers, comma-separated; a ValueError naming the option and the text otherwise."""
    items = comma_list(text, what)
    try:
        values = tuple(int(x) for x in items)
    except ValueError:
        values = ()
    if not values or min(values) < 1:
        raise ValueError(f"{what} must be positive integers, comma-separated (e.g. 30,50,100), got {text!r}")
    return values


def _positionals(args: argparse.Namespace) -> tuple[str | None, str | None]:
    """(team, output folder): with --team, a lone positional is the output folder (`--team react OUT`)."""
    if args.team is None or args.source is None:
        return args.source, args.out_dir
    if args.out_dir is None:
        return None, args.source
    raise ValueError(f"the team is given twice: --team {args.team!r} and {args.source!r}; give one (with --team, "
                     f"the only positional argument is the output folder)")


def config_from_args(args: argparse.Namespace) -> tuple[EvalConfig, TeamSource, Path]:
    from cagekit.scenarios.files import scenario_option

    if args.quick and args.episodes is not None:  # --quick is nothing but an episode count: it would be dropped
        raise ValueError(f"--quick means {QUICK_EPISODES} episodes per combination; give --quick or --episodes, "
                         f"not both")
    args.scenario = scenario_option(args.scenario)  # a scenario file: read and registered here
    team_path, out_dir = _positionals(args)
    if out_dir:
        check_output_folder(Path(out_dir))  # before a team is loaded or anything trained
    # the hint on giving the output folder alone fits only a lone positional: with OUT_DIR given (and in a
    # benchmark's --team) it suggested a command that dropped it, and --team's value is never the folder
    if team_path is None and args.team is not None and args.team not in HEURISTICS:
        source = resolve_source(args.team, output_hint=False)
    else:
        source = resolve_source(team_path, args.team, output_hint=out_dir is None)
    try:
        if getattr(args, "mute", False):
            source = MutedSource(source)
        return _config(args, source, out_dir)
    except BaseException:  # options refused: a submission's source keeps its checked team (its worker) open
        source.close()
        raise


def _config(args: argparse.Namespace, source: TeamSource, out_dir: str | None) -> tuple[EvalConfig, TeamSource, Path]:
    """`config_from_args` once the team is resolved."""
    import cagekit

    s = _settings(args, source)
    if isinstance(source, MutedSource) and not s["channel"]:
        raise ValueError("--mute needs the message channel on (there is nothing to mute without it); drop "
                         "--no-channel, or evaluate a team layout that has a channel")
    spec = s.pop("spec")
    # `--reds ''` is an empty list, refused as `--lengths ''` is, not the default (every red)
    reds = tuple(comma_list(args.reds, "--reds")) if args.reds is not None else tuple(spec.red_agents)
    unknown = [r for r in reds if r not in spec.red_agents]
    if unknown:
        raise ValueError(f"unknown red agent(s) {unknown} for scenario {spec.name!r}; "
                         f"valid: {', '.join(spec.red_agents)}")
    episodes = args.episodes if args.episodes is not None else (QUICK_EPISODES if args.quick else DEFAULT_EPISODES)
    inner = source.inner if isinstance(source, MutedSource) else source
    # a submission's own names (Submission.NAME, TEAM, TECHNIQUE, as its manifest records them) label its reports
    declared = inner.labels if isinstance(inner, SubmissionSource) else {}
    author = args.name or declared.get("name") or "anonymous"
    team_name = args.team_name or source.label
    if not args.team_name and "team" in declared:
        team_name = declared["team"] + ("-muted" if isinstance(source, MutedSource) else "")
    if isinstance(inner, CheckpointSource):
        technique = args.technique or f"checkpoint {inner.meta.get('algo')}"
    elif isinstance(inner, SubmissionSource):
        technique = args.technique or declared.get("technique") or "submission"
    elif isinstance(inner, PythonSource):
        technique = args.technique or f"python {Path(inner.path).name}:{inner.name}"
    else:
        technique = args.technique or f"heuristic {inner.label}"
    if isinstance(source, MutedSource) and not args.technique:
        technique += ", muted"
    config = EvalConfig(scenario=s["scenario"], layout=s["layout"], team=source.identity(), episodes=episodes,
                        lengths=_ints(args.lengths, "--lengths"), reds=reds, seed=args.seed,
                        message_cost=s["message_cost"], sau=s["sau"], channel=s["channel"],
                        cagekit_version=cagekit.__version__, author=author,
                        team_name=team_name, technique=technique,
                        simulator="twin" if args.backend == "twin" else "engine", detection=args.detection,
                        view=s["view"])
    out = Path(out_dir) if out_dir else default_out_dir(config, args, source.label, spec)
    return config, source, out


def default_out_dir(config: EvalConfig, args: argparse.Namespace, label: str, spec: Any) -> Path:
    """results/<team>-<scenario>[-<layout>][-<options>][-quick][-twin], where <options> names each protocol
    option given that differs from its default (--detection whenever given, as the journal tells the scenario's
    value given from none given): two runs of the same team with other options get their own
    folders (one would refuse the other's journal), and the same options find their journal again. Settings a
    checkpoint or submission brings (its channel, its cost) are the team's, named by its label."""
    parts = [label, config.scenario] + ([config.layout] if config.layout else [])
    if tuple(config.lengths) != DEFAULT_LENGTHS:
        parts.append("l" + "+".join(str(n) for n in config.lengths))
    if tuple(config.reds) != tuple(spec.red_agents):
        parts.append("+".join(config.reds))
    if config.seed != 0:
        parts.append(f"seed{config.seed}")
    parts += ["nochannel"] if args.no_channel else []
    parts += ["nosau"] if args.no_sau else []
    if args.message_cost is not None and args.message_cost != spec.setting("message_cost", None):
        parts.append(f"cost{_number(config.message_cost)}")
    if config.detection is not None:  # even the scenario's own: the journal tells a given one from none
        parts.append(f"det{_number(config.detection)}")
    if config.episodes not in (DEFAULT_EPISODES, QUICK_EPISODES):
        parts.append(f"e{config.episodes}")
    parts += ["quick"] if config.episodes == QUICK_EPISODES else []
    parts += ["twin"] if config.simulator == "twin" else []
    return Path("results") / "-".join(parts)


def _number(value: float) -> str:
    """`value` in the fewest digits that read back as it (0.5, 1e-07, 2): `:g` kept six, and costs of 0.1234567
    and 0.1234568 shared a folder, the second refused by the first's journal."""
    text = repr(float(value))
    return text.removesuffix(".0")


def print_summary(report: Any, out: Path, console: Any) -> None:
    from rich.markup import escape
    from rich.table import Table

    c = report.config
    technique = c.technique if len(c.technique) <= 60 else c.technique[:59] + "…"  # in full in summary.txt
    # the user's names and paths as they are: "[red]" in one was taken for rich markup and dropped
    table = Table(title=escape(f"{c.team_name} ({technique}) on {c.scenario}"
                               f"{', layout ' + c.layout if c.layout else ''}: {c.episodes} episodes per combination"))
    for col in ("steps", "adversary", "mean", "std", "95% CI", "bits/ep", "cost/ep"):
        table.add_column(col, justify="left" if col == "adversary" else "right", no_wrap=True)
    for s in report.stats:
        table.add_row(str(s.length), s.red, f"{s.mean:.2f}", f"{s.stdev:.2f}", f"± {s.ci95:.2f}",
                      f"{s.bits_per_episode:.2f}", f"{s.channel_cost_per_episode:.2f}")
    t = report.total
    table.add_section()
    table.add_row("", "total score", f"{t.score:.2f}", "", f"± {t.ci95:.2f}", f"{report.bits_per_episode:.2f}",
                  f"{report.channel_cost_per_episode:.2f}")
    console.print(table)
    console.print(escape(f"files in {out}/: summary.txt full.txt summary.json scores.txt results.csv scores.png "
                         f"journal.jsonl"))


def backend_and_workers(args: argparse.Namespace, n_episodes: int) -> tuple[str, int]:
    """The options' backend and workers; by default worker processes (up to 4, and up to the CPUs this process
    may use: `usable_cpus`) for runs worth their start-up."""
    cpus = usable_cpus()
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {args.workers}")
    from cagekit.submissions.timeouts import check_timeout

    if args.step_timeout is not None:
        check_timeout("--step-timeout", args.step_timeout)
    if args.backend in (None, "twin"):
        if args.workers is None:
            # a forked pool starts in well under a second: --quick's 90 episodes take 34 s serially and 22 s
            # with two workers here (the shipped submission); below this a run is over in a few seconds
            workers = min(4, cpus) if n_episodes >= PARALLEL_FROM else 1
        else:
            workers = args.workers
        return ("processes" if workers > 1 else "serial"), workers
    if args.backend == "serial":
        if args.workers not in (None, 1):
            raise ValueError(f"--workers {args.workers} with --backend serial: serial is one process; drop "
                             f"--backend (or give --backend processes) to use {args.workers} workers")
        return "serial", 1
    return args.backend, args.workers or (cpus if args.backend == "ray" else min(4, cpus))


def failure_advice(exc: EvaluationFailure) -> str:
    """What a failed run left and whether rerunning can help: only a transient failure (a timeout, a crashed
    worker) may pass on a rerun; a team's own error recurs, and a changed team is another configuration."""
    if exc.journal is None:
        return "nothing was kept (no episode had finished)"
    kept = f"the {exc.finished} finished episode(s) are kept in {exc.journal}"
    if exc.transient:
        return f"{kept}; rerun the same command to continue from them"
    return (f"{kept}, for this exact team: a fixed team is another evaluation, so give it another output folder "
            f"(or empty that folder)")


def command_argv(argv: str | Sequence[str | os.PathLike[str]] | None) -> list[str] | None:
    """`argv` as argparse's list of strings: a command line given as one string is split as a shell would,
    paths become strings (a string is no list of characters, and argparse cannot read a Path)."""
    if argv is None:
        return None
    if isinstance(argv, str):
        return shlex.split(argv)
    if isinstance(argv, (bytes, os.PathLike)) or not isinstance(argv, Sequence):
        raise TypeError(f"argv must be a list of strings (or one command-line string), got "
                        f"{type(argv).__name__} {argv!r}")
    bad = [a for a in argv if not isinstance(a, (str, os.PathLike))]
    if bad:
        raise TypeError(f"argv items must be strings or paths, got {type(bad[0]).__name__} {bad[0]!r} in {argv!r}")
    return [os.fspath(a) for a in argv]


def run_command(argv: str | Sequence[str | os.PathLike[str]] | None = None, prog: str = "evaluation.py",
                console: Any = None, brief: bool = False) -> Path:
    """Parse and run one evaluation command (a list of arguments, or one string split as a shell would),
    printing its table (`brief`: one line, for a benchmark that scores many teams and prints its own table);
    returns the output folder. Raises what `cli_main` reports: ValueError (bad options too, with argparse's
    message), TypeError for an `argv` of other types, OSError, RuntimeError, `EvaluationFailure`,
    KeyboardInterrupt."""
    args = build_parser(prog, raising=True).parse_intermixed_args(command_argv(argv))
    return _run(args, console, brief)


def _run(args: argparse.Namespace, console: Any = None, brief: bool = False) -> Path:
    from rich.console import Console

    from cagekit.evaluation.harness import evaluate

    config, source, out = config_from_args(args)
    try:
        tasks = config.tasks()
        backend, workers = backend_and_workers(args, len(tasks))
        if backend == "processes" and args.backend != "processes" and args.workers is None:
            # the default's pool is worth its start-up for the episodes this run plays, not the run's: a rerun
            # plays those its journal lacks, maybe a few of a long run's
            backend, workers = backend_and_workers(args, _episodes_left(tasks, out))
        if args.address and backend != "ray":
            raise ValueError("--address is for the ray backend: add --backend ray")
        console = console or Console(stderr=True, emoji=False)
        if not brief:  # a benchmark scores many teams with one --workers: said there, it would be said for each
            _note_oversubscribed(backend, workers, tasks, out, console)
    except BaseException:  # refused: `evaluate`, which would close it, is not reached
        source.close()
        raise
    report, _ = evaluate(config, source, out, backend=backend, workers=workers, address=args.address,
                         step_timeout=args.step_timeout, progress=not args.no_progress,
                         console=console)
    if brief:
        total = report.total
        print(f"{config.team_name}: score {total.score:.2f} ± {total.ci95:.2f}, {report.bits_per_episode:.2f} "
              f"bits per episode (reports in {out}/)")
    else:
        print_summary(report, out, Console(stderr=False, emoji=False))
    return out


def _episodes_left(tasks: Sequence[Any], out: Path) -> int:
    """The episodes of `tasks` that the journal in `out` lacks: those a rerun plays (all, where there is no
    journal of it; a journal of another run is refused by `evaluate`, which says why)."""
    try:
        done = read_journal(out).episodes
    except (ValueError, OSError):
        return len(tasks)
    return sum(1 for task in tasks if task not in done)


def _note_oversubscribed(backend: str, workers: int, tasks: Sequence[Any], out: Path, console: Any) -> None:
    """Say so when the worker processes outnumber the CPUs: each runs its own engine, so the extra ones share
    the CPUs (no faster) and each adds its memory. Their number is the user's to choose; it is not capped. The
    workers counted are those the runner starts for the episodes left (`tasks` less the journal's), a journal
    read only where the option's count alone would be too many."""
    cpus = usable_cpus()
    if backend != "processes" or workers <= cpus:
        return
    workers = min(workers, _episodes_left(tasks, out))  # as the runner caps them
    if workers > cpus:
        cpu_count = f"{cpus} CPU{'s' if cpus > 1 else ''}"
        console.print(f"note: {workers} worker processes on {cpu_count}: workers beyond the CPUs add no speed, and "
                      f"each holds an engine in memory (--workers {cpus} uses every CPU)", highlight=False)


#: rich's width where the output is no terminal (a log file, CI, a pipe)
PIPED_COLUMNS = 120


def widen_piped_output() -> None:
    """Give rich `PIPED_COLUMNS` columns when stdout and stderr are no terminal: its default there, 80, clipped
    the tables and progress lines in logs and cut commands in error messages across lines. A terminal keeps its
    own width: stderr on one (`evaluation.py ... > log`) draws the live progress there, and 120 columns on a
    narrower terminal wrap each refresh onto new lines. A COLUMNS the user set wins. Called by the command
    lines only, never on import."""
    if not sys.stdout.isatty() and not sys.stderr.isatty():
        os.environ.setdefault("COLUMNS", str(PIPED_COLUMNS))


@contextlib.contextmanager
def noting_interrupts() -> Iterator[list[int]]:
    """Ctrl-C raising KeyboardInterrupt as Python's own handler does, each one also noted in the list yielded: one
    that lands in a finalizer (a `__del__`, a weakref callback) is printed as "Exception ignored" and lost, and the
    run went on to exit 0 as if never interrupted. A no-op outside the main thread, or under another handler."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread() \
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield received
        return

    def handler(signum: int, frame: Any) -> None:
        received.append(signum)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, handler)
    try:
        yield received
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


INTERRUPTED = "interrupted: the finished episodes are kept in the journal; rerun the command to continue"


def cli_main(argv: str | Sequence[str | os.PathLike[str]] | None = None, prog: str = "evaluation.py") -> int:
    """The command line: bad options print argparse's usage and error and exit 2, as any command's do; a run
    interrupted (Ctrl-C) exits 130, even where the interrupt was lost in a finalizer and the run went on."""
    from rich.console import Console
    from rich.markup import escape

    widen_piped_output()
    args = build_parser(prog).parse_intermixed_args(command_argv(argv))
    err = Console(stderr=True, emoji=False)  # ":A:" in "team.py:A: agent ..." was drawn as an emoji
    with noting_interrupts() as interrupted:
        try:
            _run(args, console=err)
        except KeyboardInterrupt:
            err.print(INTERRUPTED)
            return 130
        except (EvaluationFailure, JournalMismatch, ValueError, OSError, RuntimeError) as exc:
            kind = "evaluation failed" if isinstance(exc, EvaluationFailure) else "error"
            err.print(f"[bold red]{kind}:[/] {escape(str(exc))}", highlight=False)
            if isinstance(exc, EvaluationFailure):
                err.print(escape(failure_advice(exc)), highlight=False)
            return 130 if interrupted else 1
    if interrupted:  # lost where it landed: the run went on, but it was interrupted all the same
        err.print(INTERRUPTED)
        return 130
    return 0


def main() -> None:  # pragma: no cover
    sys.exit(cli_main())


__all__ = ["HeuristicSource", "build_parser", "cli_main", "config_from_args", "failure_advice", "run_command",
           "widen_piped_output"]
