"""`cagekit reproduce`: the paper's comparison on our networks, generated end to end into docs/results.md.

Trains dial-sau, dial, nocomm, qmix and maskable-ppo on paper-small and paper-large (several seeds),
scores every trained team plus react and sleep with the evaluation harness on the CybORG engine
(30-step episodes, each red agent), sets each network's scores against a defender that sees red's
true access (`ceiling`), prices each talking team's channel by scoring it muted, sweeps dial-sau's
message cost on paper-small, contrasts the paper's detection probability (0.1) with 0.5, and draws when
agents speak. Every figure in the document comes from this command; rerunning it reuses finished runs
and journaled evaluations.

The pipeline is here (`run_study`, and the training pool it starts with); the parts are modules of their
own: `study_plan` (what the study covers, StudyPlan), `study_speaking` (when agents speak),
`study_sections` (the document's sections computed from the runs, and their figures) and `study_report`
(the document around them).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from cagekit.agents.snapshots import chosen_weights
from cagekit.evaluation import benchmark_layout as layout
from cagekit.evaluation.benchmark import BenchmarkPlan, run_benchmark
from cagekit.evaluation.benchmark_report import to_markdown
from cagekit.evaluation.benchmark_training import TrainJob
from cagekit.evaluation.study_plan import BASELINES, LEARNED, NETWORKS, StudyPlan
from cagekit.evaluation.study_report import write_doc
from cagekit.evaluation.study_sections import (
    ceiling_section,
    channel_section,
    choices_section,
    curves,
    speak_section,
    sweep_section,
)
from cagekit.evaluation.study_speaking import speaking_profile


def _bench(plan: StudyPlan, scenario: str, algos: list[str], tag: str, env: dict[str, Any],
           seeds: int | None = None) -> Any:
    bp = BenchmarkPlan(scenario=scenario, algos=algos, seeds=list(range(plan.seeds if seeds is None else seeds)),
                       steps=plan.steps[scenario], out=plan.out / tag, episodes=plan.episodes, lengths="30",
                       workers=plan.workers, jobs=plan.jobs, configs=plan.configs, env=env, progress=plan.progress,
                       train_red=plan.train_red, snapshots=plan.snapshots, select_episodes=plan.select_episodes)
    return bp, run_benchmark(bp)


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
        curves(bp, [*LEARNED], figures / f"{net}-curves.png")
        sections.append(f"Learning curves (training return and bits per episode, mean and spread over seeds):\n\n"
                        f"![{net} curves](results/{net}-curves.png)\n")
        sections.append(ceiling_section(plan, net, table))
    sections.append(channel_section(plan, main_tables))
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
    sections.append(sweep_section(sweep_rows, figures / "cost-sweep.png"))
    # when agents speak
    small_bp = main_tables["paper-small"][0]
    profile = speaking_profile(chosen_weights(small_bp.run_dir("dial-sau", 0)), episodes=max(5, plan.episodes // 5))
    sections.append(speak_section(profile, figures / "speaking.png"))
    if plan.select_episodes:
        sections.append(choices_section(main_tables))
    write_doc(plan, sections, main_tables, time.perf_counter() - start)
    return plan.doc


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
