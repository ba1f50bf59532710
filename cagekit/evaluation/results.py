"""The output files: CAGE-2's `summary.txt`/`full.txt`, CAGE-4's `summary.json`/`scores.txt`, `results.csv`
and `scores.png`. Everything but the `time` block of `summary.json` depends only on the configuration
and the episode results, so serial, parallel and resumed runs write identical files; a rerun that plays
nothing keeps the time block too (`kept_timing`), so it rewrites every file byte for byte."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cagekit.evaluation.episode import EpisodeResult
from cagekit.evaluation.protocol import CombinationStats, EvalConfig, TotalScore, combination_stats, total_score

FILES = ("summary.txt", "full.txt", "summary.json", "scores.txt", "results.csv", "scores.png")


@dataclass
class Report:
    config: EvalConfig
    episodes: list[EpisodeResult]  # in protocol order
    stats: list[CombinationStats]
    total: TotalScore
    reward_mean: float
    reward_stdev: float
    bits_per_episode: float
    channel_cost_per_episode: float


def build_report(config: EvalConfig, results: dict[tuple[int, str, int], EpisodeResult]) -> Report:
    missing = [k for k in config.tasks() if k not in results]
    if missing:
        raise ValueError(f"{len(missing)} episodes are missing, e.g. {missing[:3]}")
    episodes = [results[k] for k in config.tasks()]
    stats = []
    for length, red in config.combinations():
        mine = [e for e in episodes if e.length == length and e.red == red]
        stats.append(combination_stats(length, red, [e.reward for e in mine], [e.bits for e in mine],
                                       [e.channel_cost for e in mine], [e.invalid_actions for e in mine]))
    rewards = [e.reward for e in episodes]
    n = len(rewards)
    mean = math.fsum(rewards) / n
    stdev = math.sqrt(math.fsum((r - mean) ** 2 for r in rewards) / (n - 1)) if n > 1 else 0.0
    return Report(config=config, episodes=episodes, stats=stats, total=total_score(stats), reward_mean=mean,
                  reward_stdev=stdev, bits_per_episode=math.fsum(e.bits for e in episodes) / n,
                  channel_cost_per_episode=math.fsum(e.channel_cost for e in episodes) / n)


def _header(config: EvalConfig) -> list[str]:
    layout = f", layout {config.layout}" if config.layout else ""
    layout += ", simulator twin (not a reportable score)" if config.simulator == "twin" else ""
    team = config.team.get("name") or config.team.get("path") or ""
    return [f"cagekit {config.cagekit_version}, {config.scenario}{layout}",
            f"author: {config.author}, team: {config.team_name}, technique: {config.technique}",
            f"blue: {config.team.get('kind')} {team}, seed: {config.seed}, episodes: {config.episodes}, "
            f"message_cost: {config.message_cost}, sau: {config.sau}, channel: {config.channel}"]


def _combination_line(s: CombinationStats) -> str:
    return f"steps: {s.length}, adversary: {s.red}, mean: {s.mean}, standard deviation {s.stdev}"


def write_summary_txt(report: Report, path: Path) -> None:
    lines = _header(report.config)
    lines += [_combination_line(s) for s in report.stats]
    t = report.total
    lines.append(f"total score: {t.score}, 95% confidence interval: +/- {t.ci95}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _actions_text(episode: EpisodeResult, agent_names: Sequence[str] | None) -> str:
    steps = []
    for blue, red in episode.actions:
        if len(blue) == 1:
            b = f"({blue[0][0]}, {blue[0][1]})"
        else:
            names = agent_names or [str(i) for i in range(len(blue))]
            b = "{" + ", ".join(f"{n}: ({label}, {bit})" for n, (label, bit) in zip(names, blue, strict=True)) + "}"
        steps.append(f"({b}, {red})")
    return "[" + ", ".join(steps) + "]"


def write_full_txt(report: Report, path: Path, agent_names: Sequence[str] | None = None) -> None:
    with path.open("w", encoding="utf-8") as f:
        for line in _header(report.config):
            f.write(line + "\n")
        f.write("actions per step: (blue: (label, message bit), red action)\n")
        for s in report.stats:
            f.write(_combination_line(s) + "\n")
            for e in report.episodes:
                if e.length == s.length and e.red == s.red:
                    f.write(f"episode: {e.index}, seed: {e.seed}, actions: {_actions_text(e, agent_names)}, "
                            f"total reward: {e.reward}\n")


def time_block(started: float, ended: float) -> dict[str, Any]:
    """summary.json's `time`: from the journal's first start to the end of the run that wrote the reports."""
    return {"start": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)),
            "end": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ended)),
            "elapsed": round(ended - started, 3)}


def kept_timing(out_dir: Path, timing: dict[str, Any]) -> dict[str, Any]:
    """The time block of the summary.json in `out_dir` when it is one of this evaluation's (the same start),
    else `timing`: a rerun that plays nothing did not score the team again, so the time its episodes were
    played stays, and the reports with it."""
    try:
        old = json.loads((out_dir / "summary.json").read_text(encoding="utf-8"))["time"]
    except (OSError, ValueError, TypeError, KeyError):  # none, or damaged: written anew
        return timing
    if (isinstance(old, dict) and set(old) == set(timing) and old["start"] == timing["start"]
            and isinstance(old["end"], str) and isinstance(old["elapsed"], (int, float))):
        return old
    return timing


def summary_json(report: Report, timing: dict[str, Any]) -> dict[str, Any]:
    c = report.config
    return {
        "submission": {"author": c.author, "team": c.team_name, "technique": c.technique},
        "blue": c.team,
        "cagekit_version": c.cagekit_version,
        "parameters": {"seed": c.seed, "episode_lengths": list(c.lengths), "episodes": c.episodes,
                       "scenario": c.scenario, "layout": c.layout, "reds": list(c.reds), "green": c.green,
                       "message_cost": c.message_cost, "sau": c.sau, "channel": c.channel,
                       "detection": c.detection, "simulator": c.simulator, "view": c.view},
        "time": timing,
        "reward": {"mean": report.reward_mean, "stdev": report.reward_stdev},
        "total": report.total.to_json(),
        "bits_per_episode": report.bits_per_episode,
        "channel_cost_per_episode": report.channel_cost_per_episode,
        "combinations": [s.to_json() for s in report.stats],
    }


def write_scores_txt(report: Report, path: Path) -> None:
    t = report.total
    lines = [f"reward_mean: {report.reward_mean}", f"reward_stdev: {report.reward_stdev}",
             f"total_score: {t.score}", f"total_score_ci95: {t.ci95}",
             f"bits_per_episode: {report.bits_per_episode}",
             f"channel_cost_per_episode: {report.channel_cost_per_episode}"]
    if report.config.simulator == "twin":  # the engine's files stay as CAGE-4 lays them out
        lines.append("simulator: twin (not a reportable score)")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_csv(report: Report, path: Path) -> None:
    import pandas as pd

    rows = [{"steps": e.length, "adversary": e.red, "episode": e.index, "seed": e.seed, "reward": e.reward,
             "bits_sent": e.bits, "channel_cost": e.channel_cost, "team_reward": e.reward - e.channel_cost,
             "invalid_actions": e.invalid_actions} for e in report.episodes]
    pd.DataFrame(rows).to_csv(path, index=False, lineterminator="\n")


def write_chart(report: Report, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{s.red}\n{s.length} steps" for s in report.stats]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(labels)), 4.5))
    ax.bar(range(len(labels)), [s.mean for s in report.stats], yerr=[s.ci95 for s in report.stats],
           capsize=4, color="tab:blue")
    ax.set_xticks(range(len(labels)), labels, fontsize=8)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_ylabel("mean episode reward (95% CI)")
    t, c = report.total, report.config
    ax.set_title(f"{c.scenario}: {c.team_name or c.team.get('name') or c.team.get('kind')}"
                 f" - total {t.score:.2f} ± {t.ci95:.2f}")
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)


def write_all(report: Report, out_dir: Path, timing: dict[str, Any], agent_names: Sequence[str] | None = None,
              chart: bool = True) -> dict[str, Any]:
    """Write every report; `timing` is summary.json's time block (`time_block`, or `kept_timing`)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_summary_txt(report, out_dir / "summary.txt")
    write_full_txt(report, out_dir / "full.txt", agent_names)
    summary = summary_json(report, timing)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    write_scores_txt(report, out_dir / "scores.txt")
    write_csv(report, out_dir / "results.csv")
    if chart:  # matplotlib is most of the time of writing the files (about 0.5 s)
        write_chart(report, out_dir / "scores.png")
    return summary
