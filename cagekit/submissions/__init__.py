"""CAGE-4 style submissions: package a team, validate a submission, run one safely in a separate process.

- `package(source, name, team, technique, out, scenario=...)`: a reproducible zip holding
  `submission.py`, `metadata`, the weights under `team/` and `manifest.json` (with SHA-256 hashes).
- `validate(path) -> ValidationReport`: safe unpacking, required files, hashes, scenario/spaces,
  import in a worker process with a time limit, interface, agents, wrap and a short smoke episode.
- `open_submission(path) -> SubmissionTeam`: a `Team`-like object whose agents run in a worker process.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from cagekit.submissions.build import build_files, seal
from cagekit.submissions.errors import SubmissionError, SubmissionTimeout
from cagekit.submissions.loader import open_submission
from cagekit.submissions.output import write_zip
from cagekit.submissions.package import PackageRejected, package
from cagekit.submissions.safety import DEFAULT_LIMITS, Limits, UnsafeSubmission, safe_extract
from cagekit.submissions.team import SubmissionTeam
from cagekit.submissions.validate import Check, ValidationReport, validate


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected on/off, got {text!r}")


def add_package_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `cagekit package RUN_DIR_OR_CHECKPOINT_OR_HEURISTIC --name --team --technique --out`."""
    p = subparsers.add_parser("package", help="package a team as a CAGE-4 style submission zip",
                              description="Package a heuristic team (sleep, random, react), a checkpoint directory, "
                                          "a training run folder or your own Python team (FILE.py:NAME) as a "
                                          "reproducible submission zip, validated first: written only if it "
                                          "passes. Exit code 0 when written, 2 when not (bad options, a team that "
                                          "cannot be built or that fails its validation), as every cagekit "
                                          "command's error.")
    p.add_argument("source", help="heuristic name, checkpoint directory (meta.json + model.pt), training run folder, "
                                  "or FILE.py:NAME (your own team: an agent class or a function of the environment; "
                                  "the file and the modules it imports from its folder are packaged)")
    p.add_argument("--name", required=True, help="author name (Submission.NAME)")
    p.add_argument("--team", required=True, help="team name (Submission.TEAM)")
    p.add_argument("--technique", required=True, help="technique (Submission.TECHNIQUE)")
    p.add_argument("--out", required=True, help="output .zip (or a folder)")
    p.add_argument("--scenario", default=None, help="scenario for heuristic and Python teams (default paper-small); "
                                                     "checkpoints use their own")
    p.add_argument("--layout", default=None, help="blue layout (default: the scenario's)")
    p.add_argument("--channel", type=_bool, default=None, help="on/off (heuristic and Python teams; default on)")
    p.add_argument("--sau", type=_bool, default=None, help="on/off (heuristic and Python teams; default on)")
    p.add_argument("--message-cost", type=float, default=None,
                   help="cost of sending a 1 (heuristic and Python teams; default: the scenario's); checkpoints use "
                        "their own")
    p.add_argument("--seed", type=int, default=None, help="seed of the random heuristic's generators")
    p.add_argument("--include", action="append", default=[], metavar="FILE",
                   help="a data file a Python team reads (weights...), or a folder of them, relative to its file's "
                        "folder; repeatable (modules it imports are found without it)")
    p.add_argument("--replace", action="store_true",
                   help="write over an existing zip that holds another submission (refused otherwise; packaging "
                        "the same team again is always allowed)")
    p.add_argument("--no-validate", action="store_true", help="skip validating the written submission")
    p.set_defaults(func=cli_package)
    return p


def add_validate_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `cagekit validate team.zip`."""
    p = subparsers.add_parser("validate", help="check a submission zip or folder (safely, in a separate process)",
                              description="Unpack a submission into a fresh temporary folder (refusing unsafe "
                                          "paths, links and zip bombs), check its files against the manifest's "
                                          "hashes and its agents and spaces against the scenario, import it in a "
                                          "separate process and play a short smoke episode. Exit code 0 on PASS.")
    p.add_argument("path", help="submission .zip or folder")
    p.add_argument("--import-timeout", type=float, default=60.0,
                   help="seconds allowed to import submission.py (default 60)")
    p.add_argument("--act-timeout", type=float, default=10.0, help="seconds allowed per step (default 10)")
    p.add_argument("--steps", type=int, default=5, help="steps of the smoke episode (default 5)")
    p.set_defaults(func=cli_validate)
    return p


def cli_package(args: argparse.Namespace) -> int:
    def accept(staged: Path) -> bool:  # the staged package, validated before it may take --out's place
        report = validate(staged)
        report.path = str(args.out)
        print(report.text())
        return report.ok

    try:
        out = package(args.source, args.name, args.team, args.technique, args.out, scenario=args.scenario,
                      layout=getattr(args, "layout", None), channel=getattr(args, "channel", None),
                      sau=getattr(args, "sau", None), message_cost=getattr(args, "message_cost", None),
                      seed=getattr(args, "seed", None), replace=getattr(args, "replace", False),
                      include=tuple(getattr(args, "include", ())),
                      accept=None if getattr(args, "no_validate", False) else accept)
    except (ValueError, TypeError, FileNotFoundError, FileExistsError) as exc:  # on stderr, named, as the others say it
        print(f"cagekit package: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


def cli_validate(args: argparse.Namespace) -> int:
    report = validate(args.path, import_timeout=getattr(args, "import_timeout", 60.0),
                      act_timeout=getattr(args, "act_timeout", 10.0), smoke_steps=getattr(args, "steps", 5))
    print(report.text())
    return 0 if report.ok else 1


__all__ = ["Check", "DEFAULT_LIMITS", "Limits", "PackageRejected", "SubmissionError", "SubmissionTeam",
           "SubmissionTimeout", "UnsafeSubmission", "ValidationReport", "add_package_parser",
           "add_validate_parser", "build_files", "cli_package", "cli_validate", "open_submission", "package",
           "safe_extract", "seal", "validate", "write_zip"]
