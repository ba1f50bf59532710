"""Run a submission's agents in a separate process, behind the `Team` interface the harness uses.

`open_submission(path)` unpacks the zip (or copies the folder) safely into a fresh private folder, checks
the manifest hashes, starts a worker process (`cagekit.submissions.worker`) that imports `submission.py`
there, and returns a `SubmissionTeam`. The parent never imports submission code and reads only JSON from the
worker, with a time limit on every call; scores are computed by the parent from its own environment, so a
submission cannot fake its reward, and through Python it cannot write, rename or delete outside its folder
(the worker's audit hook; reading is not stopped). `close()` stops the worker and removes the folder.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cagekit.submissions.manifest import REQUIRED_FILES, adopt_spec, check_hashes, load_manifest
from cagekit.submissions.safety import DEFAULT_LIMITS, Limits, make_workdir, remove_workdir, safe_extract, sha256_file

MAX_REPLY = 4 * 1024 * 1024
BOOT_TIMEOUT = 120.0  # interpreter start and the harness's own imports (numpy, gymnasium, CybORG)
IMPORT_TIMEOUT = 60.0  # importing submission.py (loading weights included)
IN_CALL_SIZE = 256  # bytes of the page where the worker names the agent it is calling (`Worker.agent_in_call`)
ACT_TIMEOUT = 10.0  # one call: all agents' actions for one step
#: the longest any of these may be (a day): select() overflows on an infinite or astronomical timeout
MAX_TIMEOUT = 86_400.0


def check_timeout(what: str, value: Any) -> float:
    """`value` as seconds, refusing up front what no call could keep: a limit of 0, a negative or a non-finite
    one would fail the first call as if the team or submission were slow (or overflow select())."""
    seconds = float(value) if isinstance(value, numbers.Real) and not isinstance(value, bool) else math.nan
    if not 0 < seconds <= MAX_TIMEOUT:  # NaN too
        raise ValueError(f"{what} must be a positive number of seconds up to {MAX_TIMEOUT:,.0f} (a day), "
                         f"got {value!r}")
    return seconds


class SubmissionError(RuntimeError):
    """The submission failed: refused, crashed, broke the protocol or gave an invalid action. `agent` names the
    agent whose call failed when the worker knows it (one call asks every agent of a step, so the agent whose
    call reached the worker first is not always the one at fault), else None."""

    def __init__(self, message: str, agent: str | None = None):
        super().__init__(message)
        self.agent = agent


class SubmissionTimeout(SubmissionError):
    """The submission took longer than its time limit (the worker is killed)."""


@dataclass
class Unpacked:
    root: Path  # private work folder (removed on cleanup)
    folder: Path  # the submission's files, inside root
    files: list[str]
    sha256: str  # of the zip (or "" for a folder)

    def cleanup(self) -> None:
        remove_workdir(self.root)


def unpack(path: str | Path, limits: Limits = DEFAULT_LIMITS) -> Unpacked:
    """Safely unpack into a fresh private folder (`UnsafeSubmission` if refused; nothing left behind)."""
    path = Path(path)
    root = make_workdir()
    try:
        folder = root / "submission"
        folder.mkdir()
        files = safe_extract(path, folder, limits)
        digest = sha256_file(path) if path.is_file() else ""
    except BaseException:
        remove_workdir(root)
        raise
    return Unpacked(root, folder, files, digest)


def check_files(unpacked: Unpacked) -> dict[str, Any]:
    """Required files present and hashes matching: the manifest, or `SubmissionError` saying what is wrong."""
    missing = [f for f in REQUIRED_FILES if f not in unpacked.files]
    if missing:
        raise SubmissionError(f"missing required file(s) at the submission root: {', '.join(missing)}")
    try:
        manifest = load_manifest(unpacked.folder)
    except ValueError as exc:
        raise SubmissionError(str(exc)) from exc
    problems = check_hashes(unpacked.folder, manifest, unpacked.files)
    if problems:
        raise SubmissionError("hash check failed: " + "; ".join(problems))
    try:
        adopt_spec(manifest)  # a scenario of the packager's own, recorded in full: its name known from here on
    except ValueError as exc:
        raise SubmissionError(str(exc)) from exc
    return manifest


_ENV_KEEP = {"PATH", "HOME", "LANG", "LANGUAGE", "TZ", "LD_LIBRARY_PATH", "CUDA_VISIBLE_DEVICES", "VIRTUAL_ENV"}


def _child_env(folder: Path) -> dict[str, str]:
    import cagekit

    # an allow-list: the harness's credentials and settings in other variables are not the submission's
    env = {k: v for k, v in os.environ.items() if k in _ENV_KEEP or k.startswith("LC_")}
    paths = [str(Path(cagekit.__file__).resolve().parent.parent)]
    paths += [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    tmp = folder / ".tmp"
    tmp.mkdir(exist_ok=True)
    env.update({"PYTHONPATH": os.pathsep.join(paths), "PYTHONDONTWRITEBYTECODE": "1", "PYTHONNOUSERSITE": "1",
                "PYTHONHASHSEED": "0", "TMPDIR": str(tmp), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
    return env


class Worker:
    """One worker process and its JSON-lines protocol, every call with a deadline."""

    def __init__(self, unpacked: Unpacked, *, torch: bool = False, boot_timeout: float = BOOT_TIMEOUT,
                 import_timeout: float = IMPORT_TIMEOUT):
        # -P: do not put the working folder on sys.path
        cmd = [sys.executable, "-P", "-m", "cagekit.submissions.worker", str(unpacked.folder)]
        cmd += ["--torch"] if torch else []
        # the page where the worker writes whose agent code runs now (outside the submission's own folder)
        self._in_call = unpacked.root / "in-call"
        self._in_call.write_bytes(bytes(IN_CALL_SIZE))
        cmd += ["--calling", str(self._in_call)]
        self.log_path = unpacked.root / "worker.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in kill()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
                                     cwd=unpacked.root, env=_child_env(unpacked.folder), start_new_session=True,
                                     close_fds=True)
        self._buf = b""
        assert self.proc.stdout is not None and self.proc.stdin is not None
        os.set_blocking(self.proc.stdin.fileno(), False)
        self.info: dict[str, Any] = {}
        self._reply("boot", boot_timeout)
        self.info = self._reply("import", import_timeout).get("info", {})

    # ------------------------------------------------------------------------------------------------
    def agent_in_call(self) -> str | None:
        """The agent whose code the worker runs now (None between calls): when a call hangs, whose it is."""
        try:
            data = self._in_call.read_bytes()[:IN_CALL_SIZE]
        except OSError:
            return None
        data = data.split(b"\0", 1)[0]
        if not data:
            return None
        name = data.decode("utf-8", "replace")
        if len(data) >= IN_CALL_SIZE - 1:  # cut to the page: the one agent whose name begins so
            begins = [a for a in self.info.get("agents", []) if isinstance(a, str)
                      and a.encode("utf-8", "replace").startswith(data)]
            name = begins[0] if len(begins) == 1 else name
        return name

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, n: int = 2000) -> str:
        try:
            data = self.log_path.read_bytes()[-n:]
        except OSError:
            return ""
        return data.decode("utf-8", "replace").strip()

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                self.proc.kill()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        self._log.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self._send({"cmd": "close"}, time.monotonic() + 2)
                self.proc.wait(timeout=2)
            except (SubmissionError, subprocess.TimeoutExpired, OSError):
                pass
        self.kill()

    # ------------------------------------------------------------------------------------------------
    def fail(self, what: str, exc: type[SubmissionError] = SubmissionError, agent: str | None = None
             ) -> SubmissionError:
        """Stop the worker and return the error to raise, with its output's tail: the worker's own checks of the
        protocol and the team's checks of a reply (`SubmissionTeam`) end a submission alike."""
        self.kill()
        tail = self.log_tail()
        return exc(what + (f"\nworker output:\n{tail}" if tail else ""), agent)

    def _send(self, msg: dict[str, Any], deadline: float) -> None:
        data = memoryview((json.dumps(msg) + "\n").encode())
        fd = self.proc.stdin.fileno()  # type: ignore[union-attr]
        while data:
            left = deadline - time.monotonic()
            if left <= 0:
                raise self.fail(f"submission did not read its input in time ({msg.get('cmd')})", SubmissionTimeout)
            _, writable, _ = select.select([], [fd], [], left)
            if writable:
                try:
                    n = os.write(fd, data)
                except BlockingIOError:
                    continue
                except (BrokenPipeError, OSError) as exc:
                    raise self.fail(f"submission worker exited (code {self.proc.poll()})") from exc
                data = data[n:]

    def _reply(self, stage: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()  # type: ignore[union-attr]
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                agent = self.agent_in_call()
                whose = f" in agent {agent!r}" if agent is not None else ""
                raise self.fail(f"submission timed out at {stage}{whose} (limit {timeout:g} s)", SubmissionTimeout,
                                agent=agent)
            readable, _, _ = select.select([fd], [], [], left)
            if not readable:
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                self.proc.wait(timeout=5)
                raise self.fail(f"submission worker exited at {stage} (code {self.proc.returncode})")
            self._buf += chunk
            if len(self._buf) > MAX_REPLY:
                raise self.fail(f"submission sent more than {MAX_REPLY} bytes at {stage}")
        line, self._buf = self._buf.split(b"\n", 1)
        try:
            reply = json.loads(line)
        except (ValueError, RecursionError) as exc:
            raise self.fail(f"submission broke the protocol at {stage}: not JSON") from exc
        if not isinstance(reply, dict):
            raise self.fail(f"submission broke the protocol at {stage}: not a JSON object")
        if not reply.get("ok"):
            error = str(reply.get("error", "unknown error"))[-6000:]
            agent = reply.get("agent")
            agent = agent if isinstance(agent, str) else None
            whose = f" (agent {agent!r})" if agent is not None else ""
            raise self.fail(f"submission failed at {reply.get('stage', stage)}{whose}:\n{error}", agent=agent)
        return reply

    def call(self, msg: dict[str, Any], timeout: float) -> dict[str, Any]:
        if self.proc.poll() is not None:
            raise SubmissionError(f"submission worker is not running (exit code {self.proc.returncode})")
        self._send(msg, time.monotonic() + timeout)
        return self._reply(str(msg.get("cmd")), timeout)


class _RemoteAgent:
    """One agent of a submission, seen from the parent (`get_action` asks the worker)."""

    def __init__(self, team: SubmissionTeam, name: str):
        self.team, self.name = team, name

    def begin_step(self, observations: Mapping[str, Any]) -> None:
        self.team.begin_step(observations)

    def get_action(self, observation: Any, action_space: Any = None) -> int:
        answered = self.team.answered(self.name, observation)
        if answered is not None:
            return answered
        spaces = None if action_space is None else {self.name: action_space}
        return self.team.act({self.name: observation}, spaces)[self.name]

    def set_initial_values(self, action_space: Any = None, observation: Any = None) -> None:
        """Held for the episode's first act, which delivers it to the worker's agent before asking it to act (no
        round trip of its own)."""
        self.team.initial[self.name] = {"obs": _plain(observation), "space": _size(action_space)}

    def end_episode(self) -> None:  # the team's end_episode covers every agent
        pass


def agent_in_call(agent: Any) -> str | None:
    """For one of a submission's agents (as the harness holds it), the name of the agent whose code its worker
    runs now: a step timed out in the parent names the agent that hangs, not the one whose call asked the
    worker (one call asks a whole step). None for any other agent, or between calls."""
    return agent.team.worker.agent_in_call() if isinstance(agent, _RemoteAgent) else None


def _size(space: Any) -> int | None:
    """The number of actions of a discrete action space, as the worker rebuilds it (None for no space)."""
    return int(space.n) if space is not None and hasattr(space, "n") else None


def _plain(observation: Any) -> dict[str, list[int]]:
    if isinstance(observation, Mapping):
        vec, mask = observation["observation"], observation["action_mask"]
    else:
        vec, mask = observation, None
    vec = np.asarray(vec).astype(np.int64).reshape(-1).tolist()
    mask = [] if mask is None else np.asarray(mask).astype(np.int64).reshape(-1).tolist()
    return {"observation": vec, "action_mask": mask}


class SubmissionTeam:
    """A submission's agents in a worker process, usable wherever a `cagekit.agents.Team` is."""

    def __init__(self, unpacked: Unpacked, manifest: dict[str, Any], worker: Worker, act_timeout: float):
        self._unpacked, self.manifest, self.worker = unpacked, manifest, worker
        self.act_timeout = act_timeout
        self.scenario: str = manifest["scenario"]
        self.kind = "submission"
        self.n_actions = {a["name"]: int(a["n_actions"]) for a in manifest["agents"]}
        info = worker.info
        self.meta: dict[str, Any] = {
            "submission": {"name": info.get("name"), "team": info.get("team"), "technique": info.get("technique"),
                           "sha256": unpacked.sha256, "source": manifest["source"], "kind": manifest["kind"]},
            "scenario": self.scenario, "layout": manifest.get("layout"), "channel": bool(manifest["channel"]),
            "sau": bool(manifest["sau"]), "message_cost": manifest.get("message_cost"),
            "view": manifest.get("view", "own"),
            "agents": list(manifest["agents"]), "cagekit_version": manifest.get("cagekit_version")}
        self.agents: dict[str, _RemoteAgent] = {a: _RemoteAgent(self, a) for a in info.get("agents", [])}
        self.closed = False
        self._answers: dict[str, tuple[dict[str, list[int]], int]] = {}  # this step's actions, by agent
        self.initial: dict[str, dict[str, Any]] = {}  # set_initial_values not yet delivered, by agent

    @property
    def folder(self) -> Path:
        return self._unpacked.folder

    def env_settings(self) -> dict[str, Any]:
        """The environment the submission was packaged for (scenario, layout, channel, sau, message_cost, view)."""
        return {k: self.meta[k] for k in ("scenario", "layout", "channel", "sau", "message_cost", "view")}

    def begin_step(self, observations: Mapping[str, Any]) -> None:
        """One round trip for the whole step: the worker hears every observation at once (a centralised
        submission acts on all of them) and each agent's `get_action` then takes its answer from here."""
        plain = {name: _plain(obs) for name, obs in observations.items()}
        if plain and all(self._answers.get(n, (None,))[0] == p for n, p in plain.items()):
            return  # a teammate's begin_step already asked for this step
        actions = self._ask(plain, whole_step=True)
        self._answers = {name: (plain[name], actions[name]) for name in plain}

    def answered(self, name: str, observation: Any) -> int | None:
        """The action `begin_step` got for this agent and observation (once), else None."""
        entry = self._answers.pop(name, None)
        return entry[1] if entry is not None and entry[0] == _plain(observation) else None

    def act(self, observations: Mapping[str, Any], action_spaces: Mapping[str, Any] | None = None) -> dict[str, int]:
        return self._ask({name: _plain(obs) for name, obs in observations.items()}, action_spaces)

    def _ask(self, observations: dict[str, dict[str, list[int]]],
             action_spaces: Mapping[str, Any] | None = None, whole_step: bool = False) -> dict[str, int]:
        """One round trip: the actions for `observations` (already `_plain`), checked against the spaces.
        `whole_step`: they are the whole step, which the worker's agents hear through `begin_step` first, as
        the harness's in-process agents do (a lone agent too)."""
        if self.closed:
            raise SubmissionError("submission team is closed")
        missing = [name for name in observations if name not in self.agents]
        if missing:
            raise ValueError(f"submission has no agent for {missing}; it has {sorted(self.agents)}")
        sizes = {}
        for name in observations:
            space = None if action_spaces is None else action_spaces.get(name)
            size = _size(space)
            sizes[name] = size if size is not None else self.n_actions.get(name)
        msg = {"cmd": "act", "obs": observations, "spaces": sizes, **({"step": True} if whole_step else {}),
               **({"initial": self.initial} if self.initial else {})}
        self.initial = {}
        reply = self.worker.call(msg, self.act_timeout)
        actions = reply.get("actions")
        if not isinstance(actions, dict) or set(actions) != set(observations):
            raise self.worker.fail(f"submission answered actions for {sorted(actions or {})}, "
                                   f"asked for {sorted(observations)}")
        out = {}
        for name in observations:
            value = actions[name]
            n = sizes[name]
            if type(value) is not int or (n is not None and not 0 <= value < n):
                raise self.worker.fail(f"agent {name!r}: action {value!r} outside its action space "
                                       f"(an integer 0..{'?' if n is None else n - 1})", agent=name)
            out[name] = value
        return out

    def end_episode(self) -> None:
        self._answers.clear()
        if not self.closed:
            self.worker.call({"cmd": "end_episode"}, self.act_timeout)

    def seed(self, seed: int) -> None:
        """Seed the worker's global generators (random, numpy, torch) and reset every agent's memory."""
        self.initial = {}  # an episode that never acted: its initial values are not the next one's
        self.worker.call({"cmd": "seed", "seed": int(seed)}, self.act_timeout)
        self.end_episode()

    def wrap_check(self, env_kwargs: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        """Call `Submission.wrap` on a fresh environment in the worker: {same, agents}."""
        return self.worker.call({"cmd": "wrap", "scenario": self.scenario, "env": env_kwargs},
                                timeout or max(self.act_timeout, 60.0))

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self.worker.close()
        finally:
            self._unpacked.cleanup()

    def __enter__(self) -> SubmissionTeam:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001, S110
            pass


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
