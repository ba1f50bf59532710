"""What `cagekit benchmark` keeps in its output folder, named once: the benchmark writes by these names,
`cagekit compare` reads the scored teams by them and refuses to write over them, and the study copies from
them, so a renamed file cannot leave one of them guarding or reading the old name."""

from __future__ import annotations

import re

TABLE_MD = "table.md"
PAIRED_MD = "paired.md"
TABLE_CSV = "table.csv"
PER_SEED_CSV = "per_seed.csv"
CHART = "benchmark.png"
#: every file of the folder itself, in the order the benchmark reports them
FILES = (TABLE_MD, PAIRED_MD, TABLE_CSV, PER_SEED_CSV, CHART)

EVAL = "eval"  # eval/ALGO-sSEED/: each team's evaluation
EVAL_MUTED = "eval-muted"  # the same with every bit forced to 0 (--mute)
RUNS = "runs"  # runs/ALGO-sSEED/: each training run
DIRS = (EVAL, EVAL_MUTED, RUNS)

#: a run's (and its evaluation's) folder name, `run_name` read back
RUN_NAME = re.compile(r"^(?P<algo>.+)-s(?P<seed>\d+)$")


def run_name(algo: str, seed: int) -> str:
    """The folder of seed `seed` of `algo` under RUNS, EVAL and EVAL_MUTED."""
    return f"{algo}-s{seed}"
