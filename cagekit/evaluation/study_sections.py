"""The sections of the results document that the study computes from its runs, and their figures: the room each
network leaves (a defender that reads red's true access), what the channel is worth (the talking teams scored
muted), the learning curves, the message-cost sweep, when agents speak and which weights were scored."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from cagekit.agents.snapshots import chosen_weights, snapshot_steps
from cagekit.evaluation.benchmark import BenchmarkPlan
from cagekit.evaluation.benchmark_scoring import evaluate_muted
from cagekit.evaluation.protocol import seed_ci95
from cagekit.evaluation.study_plan import LEARNED, TALKERS, StudyPlan


def ceiling_section(plan: StudyPlan, net: str, table: Any) -> str:
    """The room a network leaves: sleep, the learned teams, and a defender that reads red's true access."""
    from cagekit.evaluation.ceiling import ceiling_score
    from cagekit.scenarios import get_scenario

    reds = list(get_scenario(net).red_agents)
    path = plan.out / f"{net}-d0.1" / "ceiling.json"
    ceiling = ceiling_score(net, reds, episodes=plan.episodes, seed=0)
    path.write_text(json.dumps(ceiling, indent=2) + "\n")
    t = table.set_index("algo")
    floor = float(t.loc["sleep", "score"])
    room = ceiling["score"] - floor
    lines = [f"**How much room {net} leaves.** A defender that reads red's true access (which no agent here "
             "sees) and reacts at once, restoring root and removing footholds within the same masks "
             f"(`cagekit.evaluation.ceiling`, seed 0's {plan.episodes} episodes per red, on the engine), scores "
             f"{ceiling['score']:.2f} ± {ceiling['ci95']:.2f}; sleeping scores {floor:.2f}. Of those "
             f"{room:.1f} points each team covers:", "",
             "| algo | score | share of the room |", "|---|---|---|"]
    for algo in t.index:
        share = (float(t.loc[algo, "score"]) - floor) / room if room > 0 else float("nan")
        lines.append(f"| {algo} | {t.loc[algo, 'score']:.2f} | {share:.0%} |")
    return "\n".join(lines) + "\n"


def channel_section(plan: StudyPlan, main_tables: dict[str, Any]) -> str:
    """Each talking team scored again with its bits forced to 0, on the same episodes: what its channel is worth.

    Set against no-comms (a team trained without a channel) this separates 'the channel helps this team'
    from 'teams with a channel train better or worse'."""
    lines = ["### What the channel is worth: the same teams, muted", "",
             "Each dial-sau and dial team (the scored weights) is scored again on the same engine episodes with "
             "every bit it sends forced to 0 (`cagekit evaluate --mute`): its agents then hear nothing, and SAU "
             "unmasks nothing on a teammate's account. `muted - as trained` is the paired difference per seed "
             "(mean and 95% interval over seeds); below zero, the team's messages help it.", "",
             "| network | algo | as trained | muted | muted - as trained | bits per episode |",
             "|---|---|---|---|---|---|"]
    for net, (bp, table) in main_tables.items():
        t = table.set_index("algo")
        for algo in TALKERS:
            trained, muted = [], []
            for seed in bp.seeds:
                trained.append(json.loads((bp.eval_dir(algo, seed) / "summary.json").read_text())["total"]["score"])
                muted.append(evaluate_muted(bp, algo, seed)["total"]["score"])
            diff = [m - a for m, a in zip(muted, trained, strict=True)]
            ci = seed_ci95(diff)
            spread = "(one seed)" if np.isnan(ci) else f"± {ci:.2f}"
            lines.append(f"| {net} | {algo} | {np.mean(trained):.2f} | {np.mean(muted):.2f} | "
                         f"{np.mean(diff):+.2f} {spread} | {t.loc[algo, 'bits_per_episode']:.2f} |")
    return "\n".join(lines) + "\n"


def curves(bp: BenchmarkPlan, algos: list[str], path: Path) -> None:
    from cagekit.agents.run_logs import plot_runs

    runs, labels = [], []
    for algo in algos:
        for seed in bp.seeds:
            run = bp.run_dir(algo, seed)
            if (run / "log.csv").exists() or (run / "progress.csv").exists():
                runs.append(run)
                labels.append(algo)
    if runs:
        plot_runs(runs, path, labels=labels, replace=True)  # the study's own figure, drawn again on a rerun


def sweep_section(rows: list[dict[str, float]], path: Path) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    costs = [r["message_cost"] for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3))
    a.errorbar(costs, [r["score"] for r in rows], yerr=[0 if np.isnan(r["ci95"]) else r["ci95"] for r in rows],
               marker="o", capsize=3)
    a.set_xlabel("message cost")
    a.set_ylabel("score")
    b.plot(costs, [r["bits_per_episode"] for r in rows], marker="o")
    b.set_xlabel("message cost")
    b.set_ylabel("bits per episode")
    for ax in (a, b):
        ax.grid(alpha=0.3)
    fig.suptitle("dial-sau on paper-small: message-cost sweep")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    lines = ["| message cost | score | 95% CI | bits per episode |", "|---|---|---|---|"]
    lines += [f"| {r['message_cost']:g} | {r['score']:.2f} | {r['ci95']:.2f} | {r['bits_per_episode']:.2f} |"
              for r in rows]
    return ("### Message-cost sweep (dial-sau, paper-small)\n\n" + "\n".join(lines)
            + "\n\n![cost sweep](results/cost-sweep.png)\n")


def speak_section(profile: dict[str, tuple[int, int]], path: Path) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = [c for c in ("quiet", "scan", "exploit", "unknown", "user", "privileged") if c in profile]
    rates = [profile[c][0] / profile[c][1] if profile[c][1] else 0.0 for c in order]
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.bar(order, rates, color="#55a868")
    ax.set_ylabel("P(sends 1)")
    ax.set_title("dial-sau (paper-small, seed 0): message rate by what the sender sees")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    lines = ["| sender's most alarming row | steps | ones sent | rate |", "|---|---|---|---|"]
    lines += [f"| {c} | {profile[c][1]} | {profile[c][0]} | {r:.3f} |" for c, r in zip(order, rates, strict=True)]
    return ("### When agents speak\n\n" + "\n".join(lines) + "\n\n![speaking](results/speaking.png)\n")


def choices_section(main_tables: dict[str, Any]) -> str:
    """Which snapshot each main-table run scored, as env steps (final: the last weights)."""
    lines = ["### Which weights were scored", "", "Env steps of the scored snapshot, per seed (`final`: the run's "
             "last weights).", "", "| network | algo | " + "seeds |", "|---|---|---|"]
    for net, (bp, _) in main_tables.items():
        for algo in LEARNED:
            picks = []
            for seed in bp.seeds:
                chosen = chosen_weights(bp.run_dir(algo, seed))
                picks.append("final" if chosen == bp.run_dir(algo, seed) else f"{snapshot_steps(chosen):,}")
            lines.append(f"| {net} | {algo} | {', '.join(picks)} |")
    return "\n".join(lines) + "\n"
