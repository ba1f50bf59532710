"""`cagekit`: one command with subcommands (scenarios, demo, train, plot, evaluate, benchmark,
compare, reproduce, package, validate)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

#: `--detection` of `benchmark` (the evaluation commands have their own, scoring only; `train` its own, training only)
DETECTION_HELP = ("probability that a stealthy red step is seen, in training and scoring (default: the scenario's, "
                  "0.1 on the paper's networks)")
#: `train` scores nothing, and evaluation.py scores its checkpoint at the scenario's detection unless told
TRAIN_DETECTION_HELP = ("probability that a stealthy red step is seen in training (default: the scenario's, 0.1 on "
                        "the paper's networks; evaluation.py scores at the scenario's unless given --detection)")


def _scenarios(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from cagekit.scenarios import get_scenario, scenario_names
    from cagekit.scenarios.files import load_scenario_file
    from cagekit.scenarios.spec import TARGETING_REDS

    for file in args.files:  # read as --scenario FILE reads it: a wrong field is named with the file
        load_scenario_file(file)
    table = Table(title="cagekit scenarios")
    for col in ("name", "blue agents", "red agents", "description"):
        table.add_column(col)
    for name in scenario_names():
        spec = get_scenario(name)
        layouts = "; ".join(f"{k}{' (default)' if k == spec.default_layout else ''}: {', '.join(a.name for a in v)}"
                            for k, v in spec.blue_layouts.items())
        reds = ", ".join(f"{r} (default)" if r == spec.default_red else r for r in spec.red_agents)
        if any(b in TARGETING_REDS for b in spec.red_agents.values()):  # the host the paper's red impacts
            reds += f"; target: {spec.red_target if spec.red_target is not None else 'none'}"
        table.add_row(*map(escape, (name, layouts, reds, spec.description)))  # as written: "[red]" was markup
    Console(emoji=False).print(table)
    print("(default): what make_env plays when given no layout or red. cagekit train trains against every red "
          "and evaluation.py scores each, unless told otherwise.")
    return 0


LAYOUT_HELP = ("blue layout: which agents defend which hosts (default: the scenario's; cagekit scenarios lists "
               "them, e.g. cage2's team of three or its classic single Blue)")


def _demo(args: argparse.Namespace) -> int:
    """A short episode that shows what each agent sees, does, says and earns, and what red does."""
    from cagekit import make_env
    from cagekit.evaluation.episode import EvaluationFailure, episode_team, red_action, start_agents, step_actions
    from cagekit.evaluation.sources import resolve_source

    if args.steps < 1:  # before a team is loaded
        raise ValueError(f"--steps must be >= 1 (the demo episode's length), got {args.steps}")
    source = resolve_source(args.team, output_hint=False)  # a heuristic, checkpoint, submission or FILE.py:NAME
    try:
        settings = source.env_settings()  # a trained team plays the environment it was trained for
        if args.scenario is not None and settings.get("scenario", args.scenario) != args.scenario:
            raise ValueError(f"--scenario {args.scenario} contradicts the team, which was made for "
                             f"{settings['scenario']}; leave --scenario out")
        scenario = settings.get("scenario") or args.scenario or "paper-small"
        env_kwargs = {k: v for k, v in settings.items() if k != "scenario"}  # layout, channel, sau, cost, view
        env = make_env(scenario, red=args.red, seed=args.seed, episode_length=args.steps, **env_kwargs)
    except BaseException:  # refused: a submission's source keeps the worker it checked it with
        source.close()
        raise
    where = "in set_initial_values"

    def blaming(agent: str, call: Callable[[], Any]) -> Any:  # an agent's error named with it and the step
        try:
            return call()
        except Exception as exc:
            raise EvaluationFailure(f"agent {agent!r} raised {type(exc).__name__}: {exc} {where}") from exc

    try:
        obs, _ = env.reset(seed=args.seed)
        team = episode_team(source, env, args.seed, "the demo's episode")  # as the harness builds it, or names why not
        agents, spaces = start_agents(team, env, obs, blaming)  # played as the harness plays it, from the start
        total = 0.0
        declared = getattr(source, "labels", {})  # a submission's manifest TEAM and TECHNIQUE, as reports name it
        named = ", ".join(f"{key} {declared[key]!r}" for key in ("team", "technique") if key in declared)
        named = f" (declares {named})" if named else ""
        print(f"scenario {scenario}, red {env.engine.red_name}, team {source.label}{named}, "
              f"agents {env.possible_agents}")
        for t in range(args.steps):
            where = f"at step {t}"
            actions = step_actions(agents, obs, spaces, blaming)
            obs, rewards, _, _, infos = env.step(actions)
            first = env.possible_agents[0]
            total += infos[first]["env_reward"]
            for a in env.possible_agents:
                vec = "".join(str(int(b)) for b in obs[a]["observation"])
                print(f"t={t:2d} {a:16s} obs={vec} action={infos[a]['action']:22s} bit={infos[a]['bits_sent']}")
            print(f"      red: {red_action(env)}")
            print(f"      team reward {rewards[first]:7.2f} (env {infos[first]['env_reward']:7.2f}), "
                  f"env return so far {total:8.2f}")
    except EvaluationFailure as exc:
        sys.stdout.flush()  # the steps played so far, then what stopped them
        print(f"cagekit demo: error: {exc}", file=sys.stderr)
        return 2  # as every cagekit command's error (`main`): a team failing at import already exited 2, in play 1
    finally:
        source.close()
    return 0


def _train(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cagekit.agents.train_cli import cli_train
    from cagekit.evaluation.journal import refuse_evaluation_folder

    if args.out is not None and not args.resume:  # checked here: the training layer knows no evaluation's files
        refuse_evaluation_folder(Path(args.out), "--out", "a run needs a folder of its own: give another --out "
                                 "(new or empty); to score a run, give its folder to evaluation.py")
    return cli_train(args)


def _plot(args: argparse.Namespace) -> int:
    from cagekit.agents.run_logs import plot_runs

    out = plot_runs(args.runs, args.out, replace=args.replace)
    print(f"wrote {out}")
    return 0


def _algo_files(items: list[str], option: str = "--config", form: str = "ALGO=FILE") -> dict[str, str]:
    """`--config ALGO=FILE` (or `--team NAME=SOURCE`) options as {algo: file}."""
    configs: dict[str, str] = {}
    for item in items:
        algo, sep, path = item.partition("=")
        if not sep or not algo or not path:
            raise ValueError(f"{option} expects {form}, got {item!r}")
        if algo in configs:
            raise ValueError(f"{option} names {algo!r} twice ({configs[algo]!r} and {path!r}); name each once")
        configs[algo] = path
    return configs


def _benchmark(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cagekit.evaluation import benchmark_layout as layout
    from cagekit.evaluation.benchmark import BenchmarkPlan, run_benchmark
    from cagekit.scenarios.options import comma_list

    if args.seeds < 1:  # range() of it would be empty, refused by the plan without naming the option
        raise ValueError(f"--seeds must be >= 1 (the number of seeds: K runs seeds 0..K-1), got {args.seeds}")
    configs = _algo_files(args.config)
    algos = comma_list(args.algos, "--algos")
    stray = [a for a in configs if a not in algos]
    if stray:
        raise ValueError(f"--config for {stray}, which --algos does not train ({', '.join(algos)})")
    env = {k: v for k, v in (("message_cost", args.message_cost), ("detection", args.detection),
                             ("layout", args.layout)) if v is not None}
    teams = _algo_files(args.team, "--team", "NAME=SOURCE")
    plan = BenchmarkPlan(scenario=args.scenario, algos=algos, teams=teams,
                         seeds=list(range(args.seeds)), steps=args.steps, out=Path(args.out),
                         episodes=args.episodes, lengths=args.lengths, reds=args.reds, workers=args.workers,
                         backend=args.backend, address=args.address, jobs=args.jobs, configs=configs, env=env,
                         progress=not args.no_progress,
                         train_red=None if args.train_red == "default" else args.train_red,
                         snapshots=args.snapshots, select_episodes=args.select_episodes, mute=args.mute)
    table = run_benchmark(plan)
    # two decimals, as table.md; table.csv keeps every digit, as the evaluation's CSVs, for further computation
    print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    print(f"wrote {plan.out}/{', '.join(layout.FILES)}")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cagekit.evaluation import benchmark_layout as layout
    from cagekit.evaluation import compare, compare_episodes

    folders = [Path(f) for f in args.folders]
    missing = [str(f) for f in folders if not f.is_dir()]
    if missing:
        raise ValueError(f"no such folder: {', '.join(missing)}")
    evaluations = [compare_episodes.is_evaluation_folder(f) for f in folders]
    if any(evaluations):  # teams of evaluation.py, paired episode by episode
        if not all(evaluations):
            others = [f for f, e in zip(folders, evaluations, strict=True) if not e]
            # a benchmark's teams are evaluation folders too: name them, for pairing a team of one's own with them
            inside = [g for f in others if (f / layout.EVAL).is_dir() for g in sorted((f / layout.EVAL).iterdir())
                      if compare_episodes.is_evaluation_folder(g)]
            raise ValueError(f"compare takes benchmark folders or evaluation folders, not a mix: "
                             f"{', '.join(str(f) for f in others)} hold{'s' * (len(others) == 1)} no journal.jsonl"
                             + (f"; a benchmark's teams are evaluation folders: give them "
                                f"({', '.join(map(str, inside))}) to pair yours with them, scored with the "
                                f"benchmark's --episodes, --lengths and --seed" if inside else ""))
        if len(folders) < 2:
            raise ValueError(f"one evaluation folder ({folders[0]}) has nothing to be compared with: give two or more")
        out = None if args.out is None else compare_episodes.check_out(args.out, folders)
        teams = compare_episodes.load_evaluations(folders)
        text = compare_episodes.to_markdown(teams, compare_episodes.compare_evaluations(teams, args.baseline))
    else:
        out = None if args.out is None else compare.check_out(args.out, folders)  # before reading: a typo costs nothing
        scores = compare.load_scores(folders, muted=not args.no_muted)
        text = compare.to_markdown(scores, compare.compare_all(scores, args.baseline))
    print(text)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)  # --out reports/paired.md: the folder too, as plot does
        out.write_text(text + "\n")
    return 0


def _reproduce(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cagekit.evaluation.study import run_study
    from cagekit.evaluation.study_plan import StudyPlan

    out = Path(args.out or ("results/reproduce-quick" if args.quick else "results/reproduce"))
    doc = Path(args.doc or (out / "results.md" if args.quick else "docs/results.md"))
    from cagekit.evaluation.study_plan import default_configs

    configs = {**default_configs(), **_algo_files(args.config)}
    given = {"jobs": args.jobs, "configs": configs, "progress": not args.no_progress, "seeds": args.seeds,
             "episodes": args.episodes, "select_episodes": args.select_episodes,
             "steps": None if args.steps is None else {"paper-small": args.steps, "paper-large": args.steps}}
    given = {k: v for k, v in given.items() if v is not None}
    plan = StudyPlan.quick(out, doc, **given) if args.quick else StudyPlan(out=out, doc=doc, **given)
    print(f"wrote {run_study(plan)}")
    return 0


def _evaluate(argv: Sequence[str]) -> int:
    from cagekit.evaluation import cli_main

    return cli_main(list(argv), prog="cagekit evaluate")


def build_parser() -> argparse.ArgumentParser:
    from cagekit.scenarios.options import CommandParser

    parser = CommandParser(prog="cagekit", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("scenarios", help="list the built-in scenarios (and check scenario files of your own)")
    p.add_argument("files", nargs="*", metavar="FILE",
                   help="scenario files (.json, .yaml; docs/scenarios.md) to read and list beside the built-in ones")
    p.set_defaults(func=_scenarios)

    p = sub.add_parser("demo", help="run one short episode and print what every agent sees and does",
                       description="One short episode on the engine: per step and agent its observation bits "
                                   "(4 per own host, then block bits and the bits teammates sent), the action it "
                                   "took and the bit it sent; then the team reward.")
    p.add_argument("--scenario", default=None, help="scenario (default: the team's, else paper-small; `cagekit "
                                                    "scenarios`)")
    p.add_argument("--red", default=None, help="red agent (default: the scenario's, KillChainAgent on the paper "
                                               "networks)")
    p.add_argument("--team", default="react",
                   help="a heuristic (sleep, random, react), a checkpoint folder (cagekit train --out), a "
                        "submission or your own Python team (FILE.py:NAME) (default react)")
    p.add_argument("--steps", type=int, default=10, help="episode length (default 10)")
    p.add_argument("--seed", type=int, default=0, help="default 0")
    p.set_defaults(func=_demo)

    p = sub.add_parser("train", help="train a team (dial-sau, dial, nocomm, shared-obs, qmix, ppo, maskable-ppo, dqn)")
    p.add_argument("--algo", default=None,
                   help="dial-sau, dial, nocomm, shared-obs, qmix (ours) or ppo, maskable-ppo, dqn (SB3); required "
                        "unless --resume")
    p.add_argument("--scenario", default=None, help="a scenario name or a scenario file (.json, .yaml; "
                                                    "docs/scenarios.md) (default paper-small)")
    p.add_argument("--layout", default=None, help=LAYOUT_HELP)
    p.add_argument("--steps", type=int, default=None, help="environment steps (default 200,000)")
    p.add_argument("--seed", type=int, default=None, help="default 0")
    p.add_argument("--out", default=None, help="run directory (default runs/ALGO-SCENARIO-SEED)")
    p.add_argument("--config", default=None, help="JSON or YAML file of hyperparameters")
    p.add_argument("--resume", default=None, help="continue the run in this directory")
    p.add_argument("--checkpoint-every", type=int, default=None,
                   help="updates between checkpoints of our learners (default 50; "
                        "SB3 runs checkpoint every tenth of the run)")
    p.add_argument("--snapshots", type=int, default=None,
                   help="also keep the policy at every K-th of the run in OUT/snapshots/step<N>/ (default 0: none)")
    p.add_argument("--message-cost", type=float, default=None,
                   help="cost of sending a 1 (default: the scenario's, 0.1 on the paper's networks)")
    p.add_argument("--detection", type=float, default=None, help=TRAIN_DETECTION_HELP)
    p.add_argument("--red", default=None,
                   help="red agent(s) to train against: a name, a comma-separated list or 'all' (default: all, "
                        "the reds the evaluation scores against, as benchmark and reproduce train)")
    p.add_argument("--backend", default=None, choices=["engine", "twin"],
                   help="simulator to train on (default: twin where it is proven equivalent, else engine)")
    p.add_argument("--no-progress", action="store_true", help="no live progress bar")
    p.set_defaults(func=_train)

    p = sub.add_parser("plot", help="learning curves of one or more runs to PNG")
    p.add_argument("runs", nargs="+", metavar="RUN",
                   help="training run folders (`cagekit train --out`); runs of one algorithm are one curve, their "
                        "mean with the min-max spread")
    p.add_argument("--out", default="learning_curves.png", help="PNG file to write (default learning_curves.png)")
    p.add_argument("--replace", action="store_true",
                   help="write over an existing --out that is no earlier plot (refused otherwise; a figure "
                        "matplotlib drew is drawn again)")
    p.set_defaults(func=_plot)

    sub.add_parser("evaluate", help="CAGE-style scoring (same options as evaluation.py)", add_help=False)

    p = sub.add_parser("benchmark", help="train (or load) and score several algorithms on the same seeds")
    p.add_argument("--scenario", default="paper-small",
                   help="a scenario name or a scenario file (.json, .yaml; docs/scenarios.md) (default paper-small)")
    p.add_argument("--layout", default=None, help=LAYOUT_HELP)
    p.add_argument("--algos", default="dial-sau,qmix,ppo,maskable-ppo,react,sleep",
                   help="comma separated: dial-sau, dial, nocomm, shared-obs, qmix, ppo, maskable-ppo, dqn, react, "
                        "random, sleep (default dial-sau,qmix,ppo,maskable-ppo,react,sleep: with --team too, "
                        "so name them, e.g. --algos react, to score your team without training the learners)")
    p.add_argument("--seeds", type=int, default=3, help="number of seeds (0..K-1; default 3)")
    p.add_argument("--steps", type=int, default=100_000, help="training environment steps per run (default 100,000)")
    p.add_argument("--episodes", type=int, default=100, help="evaluation episodes per combination (default 100)")
    p.add_argument("--lengths", default="30", help="episode lengths scored, comma separated (default 30)")
    p.add_argument("--reds", default=None, help="red agents scored, comma separated (default: all of the scenario's)")
    p.add_argument("--out", default="results/benchmark", help="output folder (default results/benchmark)")
    p.add_argument("--jobs", type=int, default=1, help="training runs in parallel processes (default 1)")
    p.add_argument("--workers", type=int, default=1, help="evaluation worker processes per team (default 1)")
    p.add_argument("--backend", default=None, choices=["serial", "processes", "ray"],
                   help="how each team's evaluation runs (default: processes with more than one worker, else "
                        "serial); scores come from the CybORG engine whichever")
    p.add_argument("--address", default=None, help="Ray cluster address")
    p.add_argument("--config", action="append", default=[], metavar="ALGO=FILE",
                   help="hyperparameter file for one algorithm (repeatable; default: its built-in ones, for DIAL "
                        "the paper's, made for ~19M steps: for short runs give dial-sau=configs/dial-sau-fast.yaml, "
                        "as reproduce does)")
    p.add_argument("--team", action="append", default=[], metavar="NAME=SOURCE",
                   help="a team of your own scored beside the algorithms (repeatable): SOURCE is what evaluation.py "
                        "takes (FILE.py:NAME, a submission .zip, a checkpoint or run folder), scored as a heuristic "
                        "is, the same team on every seed's protocol; NAME names its rows and eval/NAME-sSEED/")
    p.add_argument("--message-cost", type=float, default=None,
                   help="cost of sending a 1, in training and scoring (default: the scenario's)")
    p.add_argument("--detection", type=float, default=None, help=DETECTION_HELP)
    p.add_argument("--train-red", default="all",
                   help="red agent(s) the learners train against: 'all' (default: every red agent of the "
                        "scenario), one name, a comma-separated list, or 'default' (the scenario's default red)")
    p.add_argument("--snapshots", type=int, default=5,
                   help="keep each run's policy at every K-th of its steps (default 5: four snapshots, which "
                        "with the final weights are the candidates --select-episodes chooses from)")
    p.add_argument("--select-episodes", type=int, default=20,
                   help="held-out episodes per red used to choose among a run's snapshots and its final weights, "
                        "on the twin where it models the scenario, else the engine (default 20; 0 scores the final "
                        "weights)")
    p.add_argument("--mute", action="store_true",
                   help="also score every algorithm whose teams send bits with the bits forced to 0 (eval-muted/); "
                        "paired.md then shows what the messages are worth to each team")
    p.add_argument("--no-progress", action="store_true", help="no live progress bars")
    p.set_defaults(func=_benchmark)

    p = sub.add_parser("compare", help="paired differences between scored teams: algorithms seed by seed "
                                       "(benchmark folders) or two teams episode by episode (evaluation folders)")
    p.add_argument("folders", nargs="+",
                   help="benchmark output folders (their eval/ALGO-sSEED/summary.json), or evaluation.py output "
                        "folders scored with the same options (their journal.jsonl); not a mix")
    p.add_argument("--baseline", default=None, help="compare every team with this one (default: every pair; for "
                                                    "evaluation folders a team is named by its folder's name)")
    p.add_argument("--no-muted", action="store_true", help="leave out the muted scores (eval-muted/; benchmarks)")
    p.add_argument("--out", default=None, help="also write the tables to this markdown file (not one of the "
                                                  "compared folders' own files)")
    p.set_defaults(func=_compare)

    p = sub.add_parser("reproduce", help="the paper's comparison on both networks, written to docs/results.md")
    p.add_argument("--quick", action="store_true", help="the same pipeline with tiny budgets (minutes)")
    p.add_argument("--out", default=None, help="work folder (default results/reproduce[-quick])")
    p.add_argument("--doc", default=None, help="the document to write (default docs/results.md, quick: "
                                                  "results.md in the --out folder)")
    p.add_argument("--seeds", type=int, default=None, help="number of seeds (default 5, quick 1)")
    p.add_argument("--steps", type=int, default=None,
                   help="training steps per run, both networks (default 60,000, quick 1,500)")
    p.add_argument("--episodes", type=int, default=None,
                   help="evaluation episodes per red agent and seed (default 100, quick 5)")
    p.add_argument("--jobs", type=int, default=2, help="training runs in parallel processes (default 2)")
    p.add_argument("--select-episodes", type=int, default=None,
                   help="held-out twin episodes per red to choose each run's snapshot (default 20, quick 2; 0: "
                        "score the final weights)")
    p.add_argument("--config", action="append", default=[], metavar="ALGO=FILE",
                   help="hyperparameter file for one algorithm (repeatable; default: configs/dial-sau-fast.yaml "
                        "for dial-sau, dial and nocomm)")
    p.add_argument("--no-progress", action="store_true", help="no live progress bars")
    p.set_defaults(func=_reproduce)

    try:
        from cagekit.submissions import add_package_parser, add_validate_parser
    except ImportError:  # pragma: no cover - submissions are optional until that layer lands
        pass
    else:
        add_package_parser(sub)
        add_validate_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from cagekit.evaluation.cli import widen_piped_output

    widen_piped_output()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "evaluate":
        return _evaluate(argv[1:])
    args = build_parser().parse_args(argv)
    empty = [name for name in ("out", "doc", "resume") if getattr(args, name, None) == ""]
    if empty:  # Path("") is the current folder: a run, benchmark or study would spill into it
        print(f"cagekit {args.command}: error: --{empty[0]} is empty; name a path", file=sys.stderr)
        return 2
    try:
        if getattr(args, "scenario", None) is not None:  # a scenario file (.json, .yaml): read and registered
            from cagekit.scenarios.files import scenario_option

            args.scenario = scenario_option(args.scenario)
        from cagekit.evaluation.cli import noting_interrupts

        with noting_interrupts() as interrupted:
            code = int(args.func(args) or 0)
        if interrupted and code == 0:  # a Ctrl-C lost in a finalizer ("Exception ignored"): the command went on
            raise KeyboardInterrupt
        sys.stdout.flush()  # here, where a reader gone away is caught, not at the interpreter's exit
        return code
    except ValueError as exc:
        print(f"cagekit {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader stopped early (`cagekit demo | head`): it has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return 141  # as a shell reports a command ended by SIGPIPE
    except OSError as exc:  # a path that is a file, under a missing folder, unwritable...: name it, no traceback
        where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
        print(f"cagekit {args.command}: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: trainers saved their state and the harness journaled its episodes
        print(f"cagekit {args.command}: interrupted; what finished is kept (runs, their checkpoints, journaled "
              "episodes): rerun the same command to continue", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
