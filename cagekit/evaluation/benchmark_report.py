"""A benchmark's reports: the table over seeds (table.csv, table.md), its chart (benchmark.png) and the
paired differences seed by seed (paired.md)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cagekit.agents import HEURISTICS
from cagekit.evaluation import benchmark_layout as layout
from cagekit.evaluation.compare import ScoredSeed, compare_all
from cagekit.evaluation.compare import to_markdown as paired_markdown
from cagekit.evaluation.protocol import seed_ci95

if TYPE_CHECKING:  # the plan's module imports this one
    from cagekit.evaluation.benchmark import BenchmarkPlan


def write_paired(plan: BenchmarkPlan, per_seed: Any, muted: dict[str, dict[int, ScoredSeed]]) -> None:
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
    training = (f"{plan.steps:,} training steps{trained_steps_text(plan)} against red {plan.train_red or 'default'}"
                if trained else "nothing trained here")
    episodes = "episode" if plan.episodes == 1 else "episodes"
    layout = f", layout `{plan.env['layout']}`" if plan.env.get("layout") else ""
    teams = "".join(f" Team `{name}` is `{source}`, the same team on every seed's protocol (as a heuristic)."
                    for name, source in plan.teams.items())
    head = (f"Scenario `{plan.scenario}`{layout}, {plan.episodes} {episodes} per combination, lengths {plan.lengths}, "
            f"seeds {plan.seeds}, {training}.{teams} "
            f"Score: sum over red agents of the mean "
            f"episode return (higher is better); 95% interval over seeds (over episodes for one seed)."
            f"{training_time_text(plan) if trained else ''}\n\n")
    cols = list(table.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in table.iterrows():
        cells = []
        for c in cols:
            v = r[c]
            cells.append(f"{v:.2f}" if isinstance(v, float) else str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return head + "\n".join(lines)


def trained_steps_text(plan: BenchmarkPlan) -> str:
    """The steps the runs trained where they differ from those asked for ("" where none does): a learner trains
    whole batches of episodes, PPO whole rollouts (2,048 asked train 2,304 with 3 copies of 256 steps), so
    the table's training steps are what was asked, not what was trained. Read from each run's meta.json (SB3's
    `num_timesteps`, our learners' `counters.env_steps`)."""
    differing = []
    for algo in (a for a in plan.algos if a not in HEURISTICS):
        counts = set()
        for seed in plan.seeds:
            try:
                meta = json.loads((plan.run_dir(algo, seed) / "meta.json").read_text())
                steps = meta["num_timesteps"] if "num_timesteps" in meta else meta["counters"]["env_steps"]
                counts.add(int(steps))
            except (OSError, ValueError, KeyError, TypeError):
                continue
        if counts and counts != {plan.steps}:
            differing.append(f"{algo} {', '.join(f'{n:,}' for n in sorted(counts))}")
    return f" (trained in whole batches: {'; '.join(differing)})" if differing else ""


def training_time_text(plan: BenchmarkPlan) -> str:
    """How `train_minutes` was counted, naming the runs whose time is not wholly known (`TrainingClock`)."""
    from cagekit.evaluation.benchmark_folder import TRAIN_RECORD
    from cagekit.evaluation.benchmark_training import CLOCK_SAVE_EVERY

    killed, uncounted = [], []
    for algo in (a for a in plan.algos if a not in HEURISTICS):
        for seed in plan.seeds:
            record = plan.run_dir(algo, seed) / TRAIN_RECORD
            done = json.loads(record.read_text()) if record.exists() else {}
            name = layout.run_name(algo, seed)
            if done and "train_tries" not in done:  # recorded before tries were summed: its last try only
                uncounted.append(f"{name} (if it was interrupted)")
            if done.get("train_tries_killed"):
                killed.append(f"{name} ({done['train_tries_killed']})")
            if done.get("train_tries_uncounted"):
                uncounted.append(f"{name} ({done['train_tries_uncounted']})")
    text = (" train_minutes: training wall-clock per run, mean over seeds; a run interrupted and continued counts "
            "all its tries (each run's benchmark-train.json: train_seconds, train_tries).")
    if killed:
        text += (f" Tries killed outright (kill -9) count up to their last save of the time, at most "
                 f"{CLOCK_SAVE_EVERY:g} s short each: {', '.join(killed)}.")
    if uncounted:
        text += f" Tries made by an earlier cagekit, not counted: {', '.join(uncounted)}."
    return text


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
