"""Check a submission before anyone scores it: safe unpacking, files, hashes, import, interface, smoke run.

Everything happens in a fresh private folder that is removed afterwards; the submission's code runs
only in a worker process, with time limits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cagekit.submissions.errors import SubmissionError
from cagekit.submissions.loader import interface_problems, start_team
from cagekit.submissions.manifest import REQUIRED_FILES, check_hashes, load_manifest, make_manifest_env, space_problems
from cagekit.submissions.safety import DEFAULT_LIMITS, Limits, UnsafeSubmission
from cagekit.submissions.team import SubmissionTeam
from cagekit.submissions.timeouts import ACT_TIMEOUT, BOOT_TIMEOUT, IMPORT_TIMEOUT, check_timeout
from cagekit.submissions.unpack import Unpacked, one_level_down, unpack

CHECKS = ("archive", "required files", "manifest", "hashes", "scenario", "import", "interface", "agents",
          "wrap", "smoke")


@dataclass
class Check:
    name: str
    ok: bool
    message: str


@dataclass
class ValidationReport:
    path: str
    checks: list[Check] = field(default_factory=list)
    manifest: dict[str, Any] | None = None
    info: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    @property
    def failed(self) -> Check | None:
        return next((c for c in self.checks if not c.ok), None)

    def add(self, name: str, ok: bool, message: str) -> bool:
        self.checks.append(Check(name, ok, message))
        return ok

    def text(self) -> str:
        lines = [f"submission {self.path}: {'PASS' if self.ok else 'FAIL'}"]
        done = {c.name for c in self.checks}
        for c in self.checks:
            body = c.message.replace("\n", "\n         ")
            lines.append(f"  [{'ok' if c.ok else 'FAIL'}] {c.name}: {body}")
        for name in CHECKS:
            if name not in done:
                lines.append(f"  [skip] {name}: not run (an earlier check failed)")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.text()


def _smoke(team: SubmissionTeam, manifest: dict[str, Any], steps: int, seed: int) -> str:
    env = make_manifest_env(manifest, episode_length=max(1, steps), seed=seed)
    obs, _ = env.reset(seed=seed)
    team.seed(seed)
    for name in obs:  # as the harness starts an episode (CAGE's interface)
        team.agents[name].set_initial_values(env.action_space(name), obs[name])
    total, done_steps = 0.0, 0
    for t in range(steps):
        spaces = {a: env.action_space(a) for a in obs}
        try:
            actions = team.act(obs, spaces)
        except SubmissionError as exc:
            raise SubmissionError(f"step {t}: {exc}") from exc
        obs, rewards, terms, truncs, infos = env.step(actions)
        done_steps += 1
        total += float(next(iter(rewards.values()))) if rewards else 0.0
        if not env.agents:
            break
    team.end_episode()
    return f"{done_steps} step(s) of {manifest['scenario']} ran; valid actions; team reward {total:.2f}"


def validate(path: str | Path, *, limits: Limits = DEFAULT_LIMITS, boot_timeout: float = BOOT_TIMEOUT,
             import_timeout: float = IMPORT_TIMEOUT, act_timeout: float = ACT_TIMEOUT, smoke_steps: int = 5,
             seed: int = 0, check_wrap: bool = True) -> ValidationReport:
    """Every check, in order, stopping at the first failure; see `ValidationReport.text()`.

    `check_wrap=False` skips calling `Submission.wrap` on a fresh environment in the worker (which
    imports CybORG there: seconds); the harness never scores with the wrapped environment anyway."""
    if smoke_steps < 1:
        raise ValueError(f"smoke steps must be >= 1 (a smoke test of no steps checks nothing), got {smoke_steps}")
    for name, value in (("boot", boot_timeout), ("import", import_timeout), ("act", act_timeout)):
        check_timeout(f"the {name} timeout", value)
    from cagekit.scenarios import registrations_undone

    with registrations_undone():  # the spec a manifest records is registered for the check only
        return _validate(path, limits, boot_timeout, import_timeout, act_timeout, smoke_steps, seed, check_wrap)


def _validate(path: str | Path, limits: Limits, boot_timeout: float, import_timeout: float, act_timeout: float,
              smoke_steps: int, seed: int, check_wrap: bool) -> ValidationReport:
    report = ValidationReport(str(path))
    try:
        unpacked: Unpacked = unpack(path, limits)
    except UnsafeSubmission as exc:
        report.add("archive", False, f"refused: {exc}")
        return report
    team: SubmissionTeam | None = None
    try:
        verb = "unpacked" if Path(path).is_file() else "copied"
        report.add("archive", True, f"{len(unpacked.files)} file(s) {verb} safely")
        missing = [f for f in REQUIRED_FILES if f not in unpacked.files]
        if not report.add("required files", not missing,
                          f"missing at the root: {', '.join(missing)}{one_level_down(unpacked, missing)}"
                          if missing else ", ".join(REQUIRED_FILES)):
            return report
        try:
            manifest = load_manifest(unpacked.folder)
        except ValueError as exc:
            report.add("manifest", False, str(exc))
            return report
        report.manifest = manifest
        report.add("manifest", True, f"scenario {manifest['scenario']}, layout {manifest.get('layout')}, "
                                     f"{manifest['source']} {manifest['kind']!r}, channel={manifest['channel']} "
                                     f"sau={manifest['sau']} message_cost={manifest['message_cost']}")
        problems = check_hashes(unpacked.folder, manifest, unpacked.files)
        if not report.add("hashes", not problems, "; ".join(problems) if problems
                          else f"{len(manifest['files'])} file(s) match their SHA-256"):
            return report
        try:
            env = make_manifest_env(manifest)
        except Exception as exc:  # noqa: BLE001 - unknown scenario or layout
            report.add("scenario", False, f"cannot build the environment: {exc}")
            return report
        problems = space_problems(manifest, env)
        if not report.add("scenario", not problems, "; ".join(problems) if problems else
                          f"agents {list(env.possible_agents)} with the manifest's observation/action sizes"):
            return report
        try:
            team = start_team(unpacked, manifest, boot_timeout=boot_timeout, import_timeout=import_timeout,
                              act_timeout=act_timeout)
        except SubmissionError as exc:
            report.add("import", False, str(exc))
            return report
        info = team.worker.info
        report.info = info
        report.add("import", True, f"imported in a separate process: NAME={info.get('name')!r} "
                                   f"TEAM={info.get('team')!r} TECHNIQUE={info.get('technique')!r}")
        problems = [p for p in interface_problems(info, manifest) if not p.startswith("Submission.AGENTS has")]
        if not report.add("interface", not problems, "; ".join(problems) if problems
                          else "Submission has AGENTS (with get_action) and wrap"):
            return report
        names = sorted(info.get("agents", []))
        lacking = [n for n in names if n not in env.possible_agents]
        unserved = [n for n in env.possible_agents if n not in names]
        msg = []
        if lacking:
            msg.append(f"agent(s) {lacking} not in scenario {manifest['scenario']!r}")
        if unserved:
            msg.append(f"scenario agent(s) {unserved} missing from Submission.AGENTS")
        if not report.add("agents", not msg, "; ".join(msg) if msg else f"{names} match the scenario"):
            return report
        if check_wrap:
            try:
                wrapped = team.wrap_check({"layout": manifest.get("layout"), "channel": bool(manifest["channel"]),
                                           "sau": bool(manifest["sau"]),
                                           "message_cost": manifest.get("message_cost")})
            except SubmissionError as exc:
                report.add("wrap", False, str(exc))
                return report
            agents = wrapped.get("agents")
            ok = agents is not None and sorted(agents) == sorted(env.possible_agents)
            if ok:
                message = "returns the environment unchanged" if wrapped.get("same") else \
                    "returns an environment with the same agents (the harness scores with its own environment)"
            else:
                message = f"wrap(env) returned an environment with agents {agents}, expected {env.possible_agents}"
            if not report.add("wrap", ok, message):
                return report
        else:
            report.add("wrap", True, "callable (not called: check_wrap=False)")
        try:
            report.add("smoke", True, _smoke(team, manifest, smoke_steps, seed))
        except SubmissionError as exc:
            report.add("smoke", False, str(exc))
        return report
    finally:
        if team is not None:
            team.close()
        unpacked.cleanup()
