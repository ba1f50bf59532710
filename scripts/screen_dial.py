"""Screen DIAL config variants: train each on several seeds in parallel, choose each run's weights as the
study does, and score the choice on fresh twin episodes.

A variant is the base config with some fields changed. Screening seeds should be disjoint from the seeds a
study reports, so that a variant chosen here is judged on seeds it was not chosen on.

    python scripts/screen_dial.py --scenario paper-large --seeds 100-109 --jobs 16 --out results/screen \
        --variant base= --variant sigma05=sigma:0.5 --variant nocomm=algo:nocomm --variant qmix=algo:qmix

Writes OUT/per_run.csv (one row per variant and seed, kept across invocations) and prints, per variant,
the mean score over seeds, its 95% interval, how many seeds end below the sleeping team, and the bits per
episode.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cagekit.agents.config_file import load_mapping  # noqa: E402
from cagekit.agents.training import DIAL_ALGOS  # noqa: E402
from cagekit.evaluation.benchmark_pool import train_many  # noqa: E402
from cagekit.evaluation.benchmark_training import TrainJob  # noqa: E402
from cagekit.evaluation.protocol import seed_ci95  # noqa: E402
from cagekit.scenarios.data_files import read_yaml  # noqa: E402
from cagekit.scenarios.options import CommandParser  # noqa: E402

SCORE_SEED_OFFSET = 2_000_000  # episodes neither training (seed) nor selection (1_000_000 + seed) use


def parse_seeds(text: str) -> list[int]:
    if "-" in text:
        lo, hi = text.split("-")
        return list(range(int(lo), int(hi) + 1))
    return [int(s) for s in text.split(",")]


def parse_variant(text: str) -> tuple[str, dict[str, object]]:
    """NAME=field:value,field:value (values read as YAML scalars); NAME= is the base config."""
    name, _, body = text.partition("=")
    if not name:
        raise argparse.ArgumentTypeError(f"variant {text!r}: give NAME=field:value,... (NAME= for the base)")
    changes = {}
    for item in filter(None, body.split(",")):
        key, sep, value = item.partition(":")
        if not sep:
            raise argparse.ArgumentTypeError(f"variant {text!r}: {item!r} is not field:value")
        changes[key] = read_yaml(value)
    return name, changes


def score_on_twin(weights: Path, scenario: str, out: Path, episodes: int, seed: int) -> dict[str, float]:
    from cagekit.evaluation.cli import cli_main

    argv = [str(weights), str(out), "--scenario", scenario, "--episodes", str(episodes), "--lengths", "30",
            "--seed", str(SCORE_SEED_OFFSET + seed), "--backend", "twin", "--no-progress"]
    if cli_main(argv, prog="screen_dial") != 0:
        raise RuntimeError(f"scoring {weights} failed")
    summary = json.loads((out / "summary.json").read_text())
    return {"score": summary["total"]["score"], "bits_per_episode": summary["bits_per_episode"]}


def _score_job(args: tuple[str, str, int, str, int]) -> dict[str, float]:
    from cagekit.agents.snapshots import chosen_weights
    from cagekit.agents.torch_threads import limit_torch_threads

    algo_run, scenario, seed, out, episodes = args
    limit_torch_threads()
    return score_on_twin(chosen_weights(algo_run), scenario, Path(out), episodes, seed)


def main(argv: list[str] | None = None) -> int:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    import pandas as pd

    p = CommandParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    p.add_argument("--scenario", default="paper-large")
    p.add_argument("--algo", default="dial-sau")
    p.add_argument("--base", default=str(ROOT / "configs" / "dial-sau-fast.yaml"))
    p.add_argument("--variant", action="append", type=parse_variant, required=True,
                   help="NAME=field:value,... : the base config with these fields changed (NAME= is the base; "
                        "algo:NAME trains another learner); repeatable")
    p.add_argument("--seeds", type=parse_seeds, default=parse_seeds("100-109"),
                   help="A-B (both included) or a comma-separated list (default 100-109)")
    p.add_argument("--steps", type=int, default=60_000)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--episodes", type=int, default=50, help="fresh twin episodes per red to score each choice")
    p.add_argument("--sleep-score", type=float, default=None, help="mark seeds scoring below this")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)

    base = load_mapping(args.base)
    jobs, keys = [], []
    for name, changes in args.variant:
        algo = changes.pop("algo", args.algo)
        # the base config is DIAL's; another learner (qmix, for reference) gets its defaults plus the changes
        settings = {**base, **changes} if algo in DIAL_ALGOS else changes
        config = args.out / "configs" / f"{name}.yaml"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(yaml.safe_dump(settings))
        for seed in args.seeds:
            run = args.out / "runs" / f"{name}-s{seed}"
            jobs.append(TrainJob(algo, args.scenario, seed, args.steps, str(run), str(config) if settings else None,
                                 {"red": "all"}, 5, 20))
            keys.append((name, seed, run))
    seconds = train_many(jobs, args.jobs)
    ctx = multiprocessing.get_context("spawn")
    score_jobs = [(str(run), args.scenario, seed, str(args.out / "score" / f"{name}-s{seed}"), args.episodes)
                  for name, seed, run in keys]
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=ctx) as pool:
        scores = list(pool.map(_score_job, score_jobs))
    rows = [{"variant": name, "seed": seed, **score, "train_seconds": secs}
            for (name, seed, _), score, secs in zip(keys, scores, seconds, strict=True)]
    per_run = pd.DataFrame(rows)
    table = args.out / "per_run.csv"
    if table.exists():  # earlier invocations' variants stay; this one's replace theirs of the same name
        earlier = pd.read_csv(table)
        pd.concat([earlier[~earlier["variant"].isin(per_run["variant"])], per_run]).to_csv(table, index=False)
    else:
        per_run.to_csv(table, index=False)
    for name, group in per_run.groupby("variant", sort=False):
        values = group["score"].tolist()
        below = "" if args.sleep_score is None else f", {sum(v < args.sleep_score for v in values)} below sleep"
        print(f"{name:>12}: {sum(values) / len(values):8.1f} +/- {seed_ci95(values):5.1f}{below}, "
              f"bits {group['bits_per_episode'].mean():5.1f}, seeds " + " ".join(f"{v:.0f}" for v in values))
    return 0


if __name__ == "__main__":
    sys.exit(main())
