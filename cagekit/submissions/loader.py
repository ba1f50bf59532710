"""Run a submission's agents in a separate process, behind the `Team` interface the harness uses.

`open_submission(path)` unpacks the zip (or copies the folder) safely into a fresh private folder, checks
the manifest hashes, starts a worker process (`cagekit.submissions.worker`) that imports `submission.py`
there, and returns a `SubmissionTeam`. The parent never imports submission code and reads only JSON from the
worker, with a time limit on every call; scores are computed by the parent from its own environment, so a
submission cannot fake its reward, and through Python it cannot write, rename or delete outside its folder
(the worker's audit hook; reading is not stopped). `close()` stops the worker and removes the folder.

The steps are modules of their own: unpack.py (unpacking, the hash check), worker_client.py (the worker process
as the parent sees it; worker.py is the process itself) and team.py (`SubmissionTeam`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cagekit.submissions.errors import SubmissionError
from cagekit.submissions.safety import DEFAULT_LIMITS, Limits
from cagekit.submissions.team import SubmissionTeam
from cagekit.submissions.timeouts import ACT_TIMEOUT, BOOT_TIMEOUT, IMPORT_TIMEOUT, check_timeout
from cagekit.submissions.unpack import Unpacked, check_files, unpack
from cagekit.submissions.worker_client import Worker


def start_team(unpacked: Unpacked, manifest: dict[str, Any], *, boot_timeout: float = BOOT_TIMEOUT,
               import_timeout: float = IMPORT_TIMEOUT, act_timeout: float = ACT_TIMEOUT) -> SubmissionTeam:
    """Start the worker for an unpacked, hash-checked submission (the caller cleans up on error)."""
    # torch loaded before the guard and the import's time limit: a checkpoint's weights need it, and a Python
    # team's seeded import loads it (cagekit.agents.python_team)
    worker = Worker(unpacked, torch=manifest.get("source") in ("checkpoint", "python"), boot_timeout=boot_timeout,
                    import_timeout=import_timeout)
    return SubmissionTeam(unpacked, manifest, worker, act_timeout)


def open_submission(path: str | Path, *, limits: Limits = DEFAULT_LIMITS, boot_timeout: float = BOOT_TIMEOUT,
                    import_timeout: float = IMPORT_TIMEOUT, act_timeout: float = ACT_TIMEOUT) -> SubmissionTeam:
    """A running `SubmissionTeam` for a submission zip or folder, after the safety and hash checks.

    Raises `UnsafeSubmission` (refused while unpacking) or `SubmissionError` (missing files, hashes,
    import failure or timeout, `Submission` without AGENTS/wrap, agents unlike the manifest's).
    Close it (or use it as a context manager) to stop the worker and remove its folder. A timeout that is not
    a positive number of seconds up to a day is a ValueError, before anything is unpacked."""
    for name, value in (("boot", boot_timeout), ("import", import_timeout), ("act", act_timeout)):
        check_timeout(f"the {name} timeout", value)
    unpacked = unpack(path, limits)
    try:
        manifest = check_files(unpacked)
        team = start_team(unpacked, manifest, boot_timeout=boot_timeout, import_timeout=import_timeout,
                          act_timeout=act_timeout)
    except BaseException:
        unpacked.cleanup()
        raise
    problems = interface_problems(team.worker.info, manifest)
    if problems:
        team.close()
        raise SubmissionError("; ".join(problems))
    return team


def interface_problems(info: dict[str, Any], manifest: dict[str, Any]) -> list[str]:
    """What is wrong with the imported `Submission` (from the worker's description), empty if nothing."""
    problems = []
    if not info.get("has_agents"):
        problems.append("Submission has no AGENTS dict (agent name -> object with get_action)")
    if not info.get("has_wrap"):
        problems.append("Submission has no callable wrap(env)")
    if info.get("agents_without_get_action"):
        problems.append(f"agents without get_action: {info['agents_without_get_action']}")
    if info.get("has_agents"):
        expected = [a["name"] for a in manifest["agents"]]
        if sorted(info.get("agents", [])) != sorted(expected):
            problems.append(f"Submission.AGENTS has {sorted(info.get('agents', []))}, the manifest lists "
                            f"{sorted(expected)}")
    return problems
