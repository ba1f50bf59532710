"""`cagekit benchmark`: train (or load) each algorithm on the same seeds, score each with the harness, tabulate.

Every team is scored by the evaluation harness on the CybORG engine with the same protocol seed, so
the rows are comparable. A training run already present in OUT/runs is loaded, not retrained. With
`select_episodes > 0` each run keeps its policy at every `snapshots`-th of its steps (K-1 snapshots) and,
of those and its final weights, the one with the best held-out objective (return minus channel cost, on
the twin where it models the scenario) is the one scored (`cagekit.evaluation.selection`); every learner
is treated alike.

The plan and `run_benchmark` are here; the parts are modules of their own: `benchmark_layout` (the folder's
names), `benchmark_folder` (what an earlier benchmark left there), `benchmark_training` (one run),
`benchmark_pool` (the runs, in parallel processes), `benchmark_scoring` and `benchmark_report`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cagekit.agents import HEURISTICS
from cagekit.agents.training import ALGOS, SB3_ALGOS, exploration_note
from cagekit.evaluation import benchmark_layout as layout
from cagekit.evaluation.benchmark_folder import (
    TRAIN_RECORD,
    check_benchmark_folder,
    check_finished_run,
    training_settings,
)
from cagekit.evaluation.benchmark_pool import train_many
from cagekit.evaluation.benchmark_report import aggregate, plot_table, to_markdown, write_paired
from cagekit.evaluation.benchmark_scoring import evaluate, evaluation_argv, muted_scores
from cagekit.evaluation.benchmark_training import TrainJob


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
        for option, value, least in (("--snapshots", self.snapshots, 0), ("--select-episodes", self.select_episodes, 0),
                                     ("--jobs", self.jobs, 1), ("--workers", self.workers, 1)):
            if value < least:  # named as the command line names it; the fields have the same names
                raise ValueError(f"{option} must be >= {least}, got {value}")
        if self.steps < 1 and any(a not in HEURISTICS for a in self.algos):
            raise ValueError(f"training steps must be >= 1, got {self.steps}")
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
        from cagekit.evaluation.journal import check_output_folder, refuse_evaluation_folder

        check_output_folder(self.out, "--out", "give a folder")  # named here, not as the protocol check's folder
        refuse_evaluation_folder(self.out, "--out", "a benchmark keeps its runs and teams' evaluations in a folder "
                                 "of its own: give another --out (new, empty, or an earlier benchmark's)")
        check_benchmark_folder(self.out)
        self.check_protocol()

    def check_protocol(self) -> None:
        """Refuse a bad evaluation setting (scenario, reds, episodes, lengths, backend and workers) now, not after
        hours of training."""
        from cagekit.evaluation.cli import backend_and_workers, build_parser, config_from_args
        from cagekit.evaluation.harness import check_team

        args = build_parser().parse_args(evaluation_argv(self, "sleep", self.out / "check", 0))
        config, _, _ = config_from_args(args)
        backend_and_workers(args, len(config.tasks()))
        for name, source in self.teams.items():  # a team that cannot be scored here, before hours of training
            try:
                team_config, team, _ = config_from_args(
                    build_parser().parse_args(evaluation_argv(self, source, self.out / "check", 0)))
                check_team(team_config, team)  # built and asked for one step's actions, as evaluation.py does
            except (ValueError, OSError) as exc:
                raise ValueError(f"--team {name}={source}: {exc}") from None
        self._check_journals()

    def _check_journals(self) -> None:
        """Refuse, before any training, a team already scored here on another protocol (other --episodes,
        --lengths, --reds, ...): its journal would refuse the evaluation only once every new run had trained.
        Checked where the team's source is at hand (a heuristic, a user's team, a finished run)."""
        from cagekit.evaluation.cli import build_parser, config_from_args
        from cagekit.evaluation.journal import JOURNAL, Journal

        for algo in self.scored:
            for seed in self.seeds:
                run = self.run_dir(algo, seed)
                if algo not in HEURISTICS and algo not in self.teams:
                    if not (run / TRAIN_RECORD).exists():
                        continue  # trained by this benchmark first: its weights are not there to compare yet
                    # the run's own refusals first (another budget, settings or choice of weights): they say more
                    check_finished_run(run, self.steps, training_settings(self.configs.get(algo), self.train_env),
                                       self.select_episodes, self.snapshots)
                for muted in (False, True):
                    folder = self.eval_dir(algo, seed, muted)
                    if not (folder / JOURNAL).is_file():
                        continue
                    name = layout.run_name(algo, seed) + ("-muted" if muted else "")
                    argv = evaluation_argv(self, self.source(algo, seed), folder, seed, muted, name=name)
                    try:
                        config, source, _ = config_from_args(build_parser().parse_args(argv))
                        source.close()  # a submission's keeps the worker it checked it with: none left running
                        Journal(folder, config).read()
                    except (ValueError, OSError) as exc:
                        raise ValueError(f"evaluation of {algo} seed {seed}{' muted' if muted else ''}: {exc}") \
                            from None

    @property
    def train_env(self) -> dict[str, Any]:
        """The environment settings the learners train with: the plan's, and the reds of `train_red`."""
        return {**self.env, **({} if self.train_red is None else {"red": self.train_red})}

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


#: a user team's name (`--team NAME=SOURCE`): it names the team's folders and its rows
TEAM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def run_benchmark(plan: BenchmarkPlan) -> Any:
    """Train, score and tabulate; returns the table as a pandas DataFrame (also written to OUT)."""
    import pandas as pd

    learned = [(a, s) for a in plan.algos if a not in HEURISTICS for s in plan.seeds]
    train_env = plan.train_env
    to_train = [a for a, s in learned if not (plan.run_dir(a, s) / TRAIN_RECORD).exists()]
    for algo in dict.fromkeys(to_train):  # said once per algorithm, before hours of training (none on reuse)
        note = exploration_note(algo, plan.configs.get(algo), plan.steps, benchmark=True)
        if note:
            print(note)
    jobs = [TrainJob(a, plan.scenario, s, plan.steps, str(plan.run_dir(a, s)), plan.configs.get(a), train_env,
                     plan.snapshots, plan.select_episodes) for a, s in learned]
    train_seconds = dict(zip(learned, train_many(jobs, plan.jobs, plan.progress), strict=True))
    plan.out.mkdir(parents=True, exist_ok=True)  # after training: a run SB3 refuses leaves no empty OUT behind
    rows = []
    for algo in plan.scored:
        for seed in plan.seeds:
            summary = evaluate(plan, algo, seed)
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
    write_paired(plan, per_seed, muted_scores(plan, per_seed) if plan.mute else {})
    plot_table(table, plan.out / layout.CHART, title=f"{plan.scenario}: score by algorithm")
    return table
