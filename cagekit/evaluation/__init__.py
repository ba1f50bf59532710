"""The evaluation harness: the CAGE-2 scoring protocol, run serially, in worker processes or on Ray, resumable.

`cli_main(argv)` is `python evaluation.py` / `cagekit evaluate` (exit code; `run_command(argv)` the same,
returning the output folder and raising); `evaluate(config, source, out_dir)` is the library entry point.
"""

from __future__ import annotations

from cagekit.evaluation.cli import build_parser, cli_main, run_command
from cagekit.evaluation.episode import EpisodeResult, EpisodeRunner, EvaluationFailure
from cagekit.evaluation.harness import evaluate
from cagekit.evaluation.journal import JournalMismatch
from cagekit.evaluation.protocol import EvalConfig, episode_seed, total_score
from cagekit.evaluation.sources import CheckpointSource, HeuristicSource, PythonSource, TeamSource, resolve_source

__all__ = ["CheckpointSource", "EpisodeResult", "EpisodeRunner", "EvalConfig", "EvaluationFailure", "HeuristicSource",
           "JournalMismatch", "PythonSource", "TeamSource", "build_parser", "cli_main", "episode_seed", "evaluate",
           "resolve_source", "run_command", "total_score"]
