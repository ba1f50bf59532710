"""Scoring a benchmark's teams: each run's chosen weights, heuristic or user team evaluated with the plan's
protocol (`cagekit evaluate`'s command line), and, with --mute, every talking algorithm again with its bits
forced to 0."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cagekit.agents import HEURISTICS
from cagekit.evaluation import benchmark_layout as layout
from cagekit.evaluation.compare import MUTED_SUFFIX, ScoredSeed

if TYPE_CHECKING:  # the plan's module imports this one
    from cagekit.evaluation.benchmark import BenchmarkPlan


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
    if plan.reds is not None:  # `--reds ''` too, which the evaluation refuses (an empty list, not every red)
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


def evaluate(plan: BenchmarkPlan, algo: str, seed: int, muted: bool = False) -> dict[str, Any]:
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
    return evaluate(plan, algo, seed, muted=True)


def muted_scores(plan: BenchmarkPlan, per_seed: Any) -> dict[str, dict[int, ScoredSeed]]:
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
