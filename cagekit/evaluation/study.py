"""`cagekit reproduce`: the paper's comparison on our networks, generated end to end into docs/results.md.

Trains dial-sau, dial, nocomm, qmix and maskable-ppo on paper-small and paper-large (several seeds),
scores every trained team plus react and sleep with the evaluation harness on the CybORG engine
(30-step episodes, each red agent), sets each network's scores against a defender that sees red's
true access (`ceiling`), prices each talking team's channel by scoring it muted, sweeps dial-sau's
message cost on paper-small, contrasts the paper's detection probability (0.1) with 0.5, and draws when
agents speak. Every figure in the document comes from this command; rerunning it reuses finished runs
and journaled evaluations.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cagekit.agents.snapshots import chosen_weights, snapshot_steps
from cagekit.evaluation import benchmark_layout as layout
from cagekit.evaluation.benchmark import BenchmarkPlan, run_benchmark
from cagekit.evaluation.benchmark_folder import TRAIN_RECORD
from cagekit.evaluation.benchmark_report import to_markdown
from cagekit.evaluation.benchmark_scoring import evaluate_muted
from cagekit.evaluation.benchmark_training import TrainJob
from cagekit.evaluation.compare import refuse_other_kind
from cagekit.evaluation.protocol import seed_ci95

LEARNED = ("dial-sau", "dial", "nocomm", "qmix", "maskable-ppo")
#: the decentralised learners whose agents talk: their channel is priced by muting it
TALKERS = ("dial-sau", "dial")
BASELINES = ("react", "sleep")
NETWORKS = ("paper-small", "paper-large")

PAPER_TABLE = """| network | DIAL + SAU | QMix |
|---|---|---|
| small | -3.6 ± 0.8 | -7.8 ± 1.2 |
| large (7 hosts) | -26.4 ± 1.5 | -43.4 ± 4.6 |"""

#: the authors' thesis on the same small network with their own code (../shared/notes/paper.md)
THESIS_TABLE = """| detection of the web exploit | DIAL | no-comms | QMix |
|---|---|---|---|
| 95% | -4.9 ± 1.4 | -5.3 ± 1.4 | -4.2 ± 1.1 |
| 50% | -8.2 ± 1.5 | -9.1 ± 1.7 | -7.3 ± 1.2 |"""


#: the tested short-budget DIAL configuration (docs/dial.md); the paper's defaults need ~19M steps
FAST_DIAL = Path(__file__).resolve().parents[2] / "configs" / "dial-sau-fast.yaml"


def default_configs() -> dict[str, str]:
    if not FAST_DIAL.exists():
        return {}
    return {algo: str(FAST_DIAL) for algo in ("dial-sau", "dial", "nocomm")}


@dataclass
class StudyPlan:
    out: Path
    doc: Path
    seeds: int = 5
    steps: dict[str, int] = field(default_factory=lambda: {"paper-small": 60_000, "paper-large": 60_000})
    episodes: int = 100
    costs: tuple[float, ...] = (0.0, 0.1, 0.5, 2.0)
    contrast_detection: float = 0.5
    jobs: int = 2
    workers: int = 2
    configs: dict[str, str] = field(default_factory=default_configs)
    progress: bool = True
    train_red: str | None = "all"  # learners train against every red agent the evaluation scores
    snapshots: int = 5  # every learner keeps its policy at each fifth of the run ...
    select_episodes: int = 20  # ... and the best on 20 held-out twin episodes per red is scored
    quick_run: bool = False  # made by `quick` (the document says so, and names the command)

    def __post_init__(self) -> None:
        """Refuse bad numbers, configs and paths before hours of training, not after."""
        from cagekit.agents.config_file import load_mapping

        for what, value, least in (("seeds", self.seeds, 1), ("episodes", self.episodes, 1), ("jobs", self.jobs, 1),
                                   ("workers", self.workers, 1), ("snapshots", self.snapshots, 0),
                                   ("select_episodes", self.select_episodes, 0),
                                   *((f"steps on {net}", n, 1) for net, n in self.steps.items())):
            if value < least:
                raise ValueError(f"{what} must be >= {least}, got {value}")
        untrained = sorted(a for a in self.configs if a not in LEARNED)
        if untrained:
            raise ValueError(f"--config for {untrained}, which the study does not train; it trains "
                             f"{', '.join(LEARNED)}")
        for path in self.configs.values():
            load_mapping(path)  # a ValueError naming the file
        if self.doc.is_dir():
            raise ValueError(f"--doc {self.doc} is a folder; name the Markdown file to write "
                             f"(e.g. {self.doc}/results.md)")
        refuse_other_kind(self.doc, "--doc", "the study")  # an evaluation's summary.txt, say

    @classmethod
    def quick(cls, out: Path, doc: Path, **kw: Any) -> StudyPlan:
        """Same pipeline, small numbers: for CI and a first look (minutes, not hours)."""
        small = {"seeds": 1, "steps": {"paper-small": 1_500, "paper-large": 1_500}, "episodes": 5,
                 "costs": (0.0, 0.1, 1.0), "snapshots": 2, "select_episodes": 2, "quick_run": True}
        return cls(out=out, doc=doc, **{**small, **kw})


def _bench(plan: StudyPlan, scenario: str, algos: list[str], tag: str, env: dict[str, Any],
           seeds: int | None = None) -> Any:
    bp = BenchmarkPlan(scenario=scenario, algos=algos, seeds=list(range(plan.seeds if seeds is None else seeds)),
                       steps=plan.steps[scenario], out=plan.out / tag, episodes=plan.episodes, lengths="30",
                       workers=plan.workers, jobs=plan.jobs, configs=plan.configs, env=env, progress=plan.progress,
                       train_red=plan.train_red, snapshots=plan.snapshots, select_episodes=plan.select_episodes)
    return bp, run_benchmark(bp)


def speaking_profile(run_dir: Path, episodes: int, seed: int = 12345) -> dict[str, tuple[int, int]]:
    """How often a trained team's agents send a 1, by what the sender's own rows show at that step.

    Categories by the most alarming own row: quiet, scan, exploit (activity) or user/privileged/unknown
    (compromise). Returns category -> (ones sent, steps)."""
    from cagekit.agents import load_team
    from cagekit.wrappers import make_env

    team = load_team(run_dir)
    env = make_env(**team.env_settings(), seed=seed)  # as trained: layout and view too
    counts: dict[str, list[int]] = {}
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed + ep)
        while env.agents:
            actions = team.act(obs)
            for name, action in actions.items():
                vector = obs[name]["observation"]
                rows = np.asarray(vector[: 4 * len(env.engine.catalogs[name].agent.hosts)]).reshape(-1, 4)
                category = _category(rows)
                c = counts.setdefault(category, [0, 0])
                c[0] += int(action) % 2 if env.channel else 0
                c[1] += 1
            obs, *_ = env.step(actions)
        team.end_episode()
    return {k: (v[0], v[1]) for k, v in counts.items()}


def _category(rows: np.ndarray) -> str:
    compromise = {(0, 1): "user", (1, 1): "privileged", (1, 0): "unknown"}
    found = [compromise.get((int(r[2]), int(r[3]))) for r in rows]
    for level in ("privileged", "user", "unknown"):
        if level in found:
            return level
    activity = [(int(r[0]), int(r[1])) for r in rows]
    if (1, 1) in activity:
        return "exploit"
    if (1, 0) in activity:
        return "scan"
    return "quiet"


def run_study(plan: StudyPlan) -> Path:
    """Run everything and write the document; returns its path."""
    start = time.perf_counter()
    plan.out.mkdir(parents=True, exist_ok=True)
    figures = plan.doc.parent / "results"
    figures.mkdir(parents=True, exist_ok=True)
    sections: list[str] = []
    main_tables = {}
    _pretrain(plan)
    for net in NETWORKS:
        bp, table = _bench(plan, net, [*LEARNED, *BASELINES], f"{net}-d0.1", {})
        main_tables[net] = (bp, table)
        sections.append(f"### {net}, detection 0.1 (the paper's)\n\n{to_markdown(table, bp)}\n\n"
                        f"![{net}](results/{net}-scores.png)\n")
        _copy(bp.out / layout.CHART, figures / f"{net}-scores.png")
        _curves(bp, [*LEARNED], figures / f"{net}-curves.png")
        sections.append(f"Learning curves (training return and bits per episode, mean and spread over seeds):\n\n"
                        f"![{net} curves](results/{net}-curves.png)\n")
        sections.append(_ceiling_section(plan, net, table))
    sections.append(_channel_section(plan, main_tables))
    # detection contrast on the small network
    bp, table = _bench(plan, "paper-small", ["dial-sau", "qmix", "react"], f"paper-small-d{plan.contrast_detection}",
                       {"detection": plan.contrast_detection})
    sections.append(f"### paper-small, detection {plan.contrast_detection} (contrast)\n\n{to_markdown(table, bp)}\n")
    # message-cost sweep (the default cost's runs are the main table's)
    sweep_rows = []
    for cost in plan.costs:
        if cost == _default_cost():
            table = main_tables["paper-small"][1]
            row = table[table["algo"] == "dial-sau"].iloc[0]
        else:
            _, table = _bench(plan, "paper-small", ["dial-sau"], f"paper-small-cost{cost}", {"message_cost": cost})
            row = table.iloc[0]
        sweep_rows.append({"message_cost": cost, "score": row["score"], "ci95": row["ci95"],
                           "bits_per_episode": row["bits_per_episode"]})
    sections.append(_sweep_section(sweep_rows, figures / "cost-sweep.png"))
    # when agents speak
    small_bp = main_tables["paper-small"][0]
    profile = speaking_profile(chosen_weights(small_bp.run_dir("dial-sau", 0)), episodes=max(5, plan.episodes // 5))
    sections.append(_speak_section(profile, figures / "speaking.png"))
    if plan.select_episodes:
        sections.append(_choices_section(main_tables))
    _write_doc(plan, sections, main_tables, time.perf_counter() - start)
    return plan.doc


def _ceiling_section(plan: StudyPlan, net: str, table: Any) -> str:
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


def _channel_section(plan: StudyPlan, main_tables: dict[str, Any]) -> str:
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


def _default_cost() -> float:
    from cagekit.scenarios import get_scenario

    return float(get_scenario("paper-small").message_cost)


def _training_jobs(plan: StudyPlan) -> list[TrainJob]:
    """Every training run of the study, as `train_one` arguments, longest (QMix, SB3) first."""
    red = {} if plan.train_red is None else {"red": plan.train_red}
    specs: list[tuple[str, str, str, dict[str, Any]]] = []  # (algo, scenario, folder tag, env)
    for net in NETWORKS:
        specs += [(algo, net, f"{net}-d0.1", {}) for algo in LEARNED]
    specs += [(algo, "paper-small", f"paper-small-d{plan.contrast_detection}", {"detection": plan.contrast_detection})
              for algo in ("dial-sau", "qmix")]
    specs += [("dial-sau", "paper-small", f"paper-small-cost{cost}", {"message_cost": cost})
              for cost in plan.costs if cost != _default_cost()]
    order = {"qmix": 0, "maskable-ppo": 1}
    specs.sort(key=lambda spec: order.get(spec[0], 2))
    return [TrainJob(algo, net, seed, plan.steps[net], str(plan.out / tag / layout.RUNS / layout.run_name(algo, seed)),
                     plan.configs.get(algo), {**env, **red}, plan.snapshots, plan.select_episodes)
            for algo, net, tag, env in specs for seed in range(plan.seeds)]


def _pretrain(plan: StudyPlan) -> None:
    """Train every run first in one pool of `plan.jobs` processes (the tables then only load and score)."""
    from cagekit.evaluation.benchmark_pool import train_many

    if plan.jobs > 1:  # one process: the tables train their runs as they come
        train_many(_training_jobs(plan), plan.jobs, plan.progress)


def _copy(src: Path, dst: Path) -> None:
    dst.write_bytes(src.read_bytes())


def _curves(bp: BenchmarkPlan, algos: list[str], path: Path) -> None:
    from cagekit.agents.run_logs import plot_runs

    runs, labels = [], []
    for algo in algos:
        for seed in bp.seeds:
            run = bp.run_dir(algo, seed)
            if (run / "log.csv").exists() or (run / "progress.csv").exists():
                runs.append(run)
                labels.append(algo)
    if runs:
        plot_runs(runs, path, labels=labels)


def _sweep_section(rows: list[dict[str, float]], path: Path) -> str:
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


def _speak_section(profile: dict[str, tuple[int, int]], path: Path) -> str:
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


def _verdicts(main_tables: dict[str, Any]) -> list[str]:
    out = []
    for net, (_, table) in main_tables.items():
        t = table.set_index("algo")

        def beats(a: str, b: str, t: Any = t) -> str:
            lo_a = t.loc[a, "score"] - (0 if np.isnan(t.loc[a, "ci95"]) else t.loc[a, "ci95"])
            hi_b = t.loc[b, "score"] + (0 if np.isnan(t.loc[b, "ci95"]) else t.loc[b, "ci95"])
            if lo_a > hi_b:
                return "yes, intervals do not overlap"
            if t.loc[a, "score"] > t.loc[b, "score"]:
                return "higher mean, but the intervals overlap"
            return "no"

        out.append(f"- {net}: dial-sau beats qmix: {beats('dial-sau', 'qmix')}; beats nocomm: "
                   f"{beats('dial-sau', 'nocomm')}; beats react: {beats('dial-sau', 'react')}; bits per episode "
                   f"dial-sau {t.loc['dial-sau', 'bits_per_episode']:.2f} vs dial "
                   f"{t.loc['dial', 'bits_per_episode']:.2f}.")
    return out


def _numbers(plan: StudyPlan) -> dict[str, Any]:
    """The plan's `cagekit reproduce` number options, flag -> value."""
    steps = sorted(set(plan.steps.values()))
    return {"--seeds": plan.seeds, "--steps": steps[0] if len(steps) == 1 else steps,
            "--episodes": plan.episodes, "--select-episodes": plan.select_episodes}


def _command(plan: StudyPlan) -> str:
    """The `cagekit reproduce` options that give this plan's numbers (--quick: those it overrides)."""
    numbers = _numbers(plan)
    parts = ["cagekit reproduce"]
    if plan.quick_run:
        defaults = _numbers(StudyPlan.quick(plan.out, plan.doc))
        numbers = {flag: value for flag, value in numbers.items() if value != defaults[flag]}
        parts.append("--quick")
    parts += [f"{flag} {value}" for flag, value in numbers.items()]
    defaults_files = default_configs()
    parts += [f"--config {algo}={path}" for algo, path in sorted(plan.configs.items())
              if defaults_files.get(algo) != path]
    return " ".join(parts)


def _total_training_minutes(plan: StudyPlan) -> float:
    total = 0.0
    for done in plan.out.glob(f"*/runs/*/{TRAIN_RECORD}"):
        total += float(json.loads(done.read_text())["train_seconds"])
    return total / 60.0


def _selection_text(plan: StudyPlan) -> str:
    if not plan.select_episodes:
        return "Scored weights: each run's final weights."
    return (f"Scored weights: every learner alike keeps its policy at each {_ordinal(plan.snapshots)} of its run; "
            f"of those and the final weights, the one with the best objective (return minus channel cost) on "
            f"{plan.select_episodes} held-out twin episodes per red is scored "
            "(`cagekit.evaluation.selection`; protocol seeds the engine evaluation never uses, so the choice "
            "does not inflate the engine scores below). The table \"Which weights were scored\" lists the choices.")


def _ordinal(k: int) -> str:
    return {1: "end", 2: "half", 3: "third", 4: "quarter", 5: "fifth", 10: "tenth"}.get(k, f"1/{k}")


def _choices_section(main_tables: dict[str, Any]) -> str:
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


def _write_doc(plan: StudyPlan, sections: list[str], main_tables: dict[str, Any], seconds: float) -> None:
    import cagekit

    quick = plan.quick_run
    trained = _total_training_minutes(plan)
    header = [
        "# Results: DIAL + SAU against QMix, no-comms and SB3 on our paper networks",
        "",
        f"Generated by `{_command(plan)}` (cagekit {cagekit.__version__}); "
        "every number and figure below comes from that command. Training wall-clock of all its runs: "
        f"{trained:.0f} minute{'' if round(trained) == 1 else 's'}; "
        f"the last invocation took {seconds / 60:.1f} minutes (a "
        "rerun reuses finished runs and journaled evaluations).",
        f"Seeds: {plan.seeds}; training steps: {plan.steps}; evaluation: {plan.episodes} episodes of 30 steps "
        "per red agent per seed, on the CybORG engine. Score: sum over the red agents (KillChainAgent, "
        "ExplorerAgent, SleepAgent) of the mean episode return, without channel costs; higher is better.",
        f"Training: on the twin (docs/twin.md), against "
        f"{'every red agent, split evenly' if plan.train_red == 'all' else (plan.train_red or 'the default red')}; "
        "hyperparameter files: "
        + (", ".join(f"{a}: `{Path(c).name}`" for a, c in sorted(plan.configs.items())) or "none (defaults)")
        + " (the DIAL file's deviations from the paper, and why: docs/dial.md).",
        "",
        _selection_text(plan),
        "",
    ]
    if quick:
        header += ["**This is the `--quick` run: the pipeline with tiny budgets. Its numbers show that the "
                   "pipeline works, not how the methods compare.**", ""]
    header += ["## Verdicts", "", *_verdicts(main_tables), "", "## Tables and figures", ""]
    footer = [
        "## The paper's own table",
        "",
        PAPER_TABLE,
        "",
        "The paper reports mean episode return on its own CybORG 3.1 networks and one red agent; our scores "
        "sum three red agents on networks we wrote ourselves for csle-cyborg (CybORG 2.1), with our own red "
        "kill chain and costs, so absolute numbers differ between the two; the comparison that carries over "
        "is the ordering of the methods on the same network.",
        "",
        "The authors' thesis ran their own code on their small network (one seed per configuration, 16 greedy "
        "episodes, mean ± std over episodes):",
        "",
        THESIS_TABLE,
        "",
        "There QMix scores ahead of DIAL, and DIAL is level with no-comms within one standard deviation (as "
        "dial-sau is with no-comms in our study): the ordering the paper's table reports is not the only one "
        "its authors' code has produced.",
    ]
    plan.doc.write_text("\n".join(header) + "\n" + "\n".join(sections) + "\n" + "\n".join(footer) + "\n")
