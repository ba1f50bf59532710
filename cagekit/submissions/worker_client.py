"""The worker process as the parent sees it: `Worker` starts `python -m cagekit.submissions.worker` (worker.py,
the child's side) in the unpacked folder with an allow-listed environment, speaks its JSON-lines protocol with
a deadline on every call, and reads the in-call page where the worker names the agent whose code runs now."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from cagekit.submissions.errors import SubmissionError, SubmissionTimeout
from cagekit.submissions.timeouts import BOOT_TIMEOUT, IMPORT_TIMEOUT
from cagekit.submissions.unpack import Unpacked

MAX_REPLY = 4 * 1024 * 1024
IN_CALL_SIZE = 256  # bytes of the page where the worker names the agent it is calling (`Worker.agent_in_call`)


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
        try:
            self._reply("boot", boot_timeout)
            self.info = self._reply("import", import_timeout).get("info", {})
        except BaseException:  # a Ctrl-C too: the process, in a session of its own, would outlive the team
            self.kill()
            raise

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
        """Ask the worker to exit, then kill it: killed however the asking ends (a Ctrl-C in the wait too)."""
        try:
            if self.proc.poll() is None:
                self._send({"cmd": "close"}, time.monotonic() + 2)
                self.proc.wait(timeout=2)
        except (SubmissionError, subprocess.TimeoutExpired, OSError):
            pass
        finally:
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
