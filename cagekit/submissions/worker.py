"""The worker process that hosts a submission's code (`python -m cagekit.submissions.worker FOLDER`).

The parent (`team.SubmissionTeam`) never imports submission code: it talks to this process with one
JSON object per line over private copies of stdin/stdout (the submission's own prints go to stderr),
and reads nothing but JSON back, so nothing the submission sends can run code in the parent.

Requests: {"cmd": "act", "obs": {agent: {"observation": [...], "action_mask": [...] or null}}, "spaces": {agent: n}}
(with "step": true when the observations are the whole step, heard through `begin_step` first, as by several),
{"cmd": "end_episode"}, {"cmd": "seed", "seed": s}, {"cmd": "wrap", "scenario": ..., "env": {...}},
{"cmd": "close"}. Replies: {"ok": true, ...} or {"ok": false, "error": "..."}. "seed" (sent before every
episode) seeds random, numpy and torch, and calls `reseed(seed)` on every agent that has one.

Defence in depth, not a sandbox: before the submission is imported, an audit hook refuses writes,
renames and deletions outside the submission's folder, new processes, signals and network sockets;
core dumps are off and written files are capped in size. Code that goes around Python (ctypes, native
extensions) is not stopped by this; what keeps scores honest is that the parent computes them from its
own environment and sees only the actions.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from typing import Any

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
_PATH_EVENTS = {"os.remove", "os.rename", "os.replace", "os.rmdir", "os.mkdir", "os.chmod", "os.chown",
                "os.symlink", "os.link", "os.truncate", "os.utime", "shutil.rmtree", "shutil.move",
                "shutil.copyfile", "shutil.copytree", "os.chflags", "os.lchflags", "os.setxattr",
                "os.removexattr"}
_BLOCKED_EVENTS = {"subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
                   "os.forkpty", "pty.spawn", "os.kill", "os.killpg", "signal.pthread_kill", "socket.connect",
                   "socket.bind", "socket.sendto", "socket.sendmsg", "os.startfile", "webbrowser.open"}
MAX_REPLY = 4 * 1024 * 1024


def _install_guard(allowed_root: str) -> None:
    root = os.path.realpath(allowed_root)
    allowed = (root + os.sep, )

    def inside(path: Any) -> bool:
        if isinstance(path, int):
            return True  # an already-open descriptor
        try:
            p = os.path.realpath(os.fsdecode(path))
        except (TypeError, ValueError):
            return False
        return p == root or p.startswith(allowed) or p == os.devnull

    def hook(event: str, args: tuple) -> None:
        if event == "open":
            path, mode, flags = (tuple(args) + (None, None, None))[:3]
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or \
                (isinstance(flags, int) and bool(flags & _WRITE_FLAGS))
            if writing and path is not None and not inside(path):
                raise PermissionError(f"submission may not write outside its folder: {path!r}")
        elif event in _PATH_EVENTS:
            for arg in args[:2]:
                if isinstance(arg, (str, bytes, os.PathLike)) and not inside(arg):
                    raise PermissionError(f"submission may not change files outside its folder ({event} {arg!r})")
        elif event in _BLOCKED_EVENTS:
            raise PermissionError(f"submission may not do {event}")

    sys.addaudithook(hook)


def _limits() -> None:
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        cap = 256 * 1024 * 1024
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        if hard == resource.RLIM_INFINITY or hard > cap:
            resource.setrlimit(resource.RLIMIT_FSIZE, (cap, cap))
    except (ImportError, ValueError, OSError):
        pass


class _Proto:
    def __init__(self) -> None:
        # private copies of the pipes; fds 0/1 then point at /dev/null and stderr for the submission
        self.rfd, self.wfd = os.dup(0), os.dup(1)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        os.dup2(2, 1)
        sys.stdin = open(os.devnull)  # noqa: SIM115
        sys.stdout = sys.stderr
        self.reader = os.fdopen(self.rfd, "rb", buffering=1 << 16)

    def recv(self) -> dict[str, Any] | None:
        line = self.reader.readline()
        if not line:
            return None
        return json.loads(line)

    def send(self, msg: dict[str, Any]) -> None:
        data = (json.dumps(msg, default=str) + "\n").encode()
        if len(data) > MAX_REPLY:
            data = (json.dumps({"ok": False, "error": f"reply too large ({len(data)} bytes)"}) + "\n").encode()
        view = memoryview(data)
        while view:
            n = os.write(self.wfd, view)
            view = view[n:]


class _InCall:
    """The name of the agent whose code runs now, mirrored into a page the parent maps too (`--calling FILE`):
    a worker stuck in an agent cannot say whose call hangs, so the parent reads it there when a call times out.
    Written before and after each agent call (a memory write, no system call)."""

    def __init__(self, path: str | None):
        self.name: str | None = None
        self._page: Any = None
        if path is not None:
            import mmap

            with open(path, "r+b") as file:  # the parent made it (`worker_client.IN_CALL_SIZE` bytes)
                self._page = mmap.mmap(file.fileno(), 0)

    def __call__(self, name: str | None) -> str | None:
        self.name = name
        if self._page is not None:
            data = (name or "").encode("utf-8", "replace")[: len(self._page) - 1] + b"\0"
            self._page[: len(data)] = data
        return name


def _error(stage: str, agent: str | None = None) -> dict[str, Any]:
    """The reply to a call that raised; `agent`: the agent whose call it was, when one was (the parent names it:
    one call asks a whole step's agents, and the first agent to ask is not always the one that failed)."""
    return {"ok": False, "stage": stage, "error": traceback.format_exc(limit=20)[-6000:],
            **({"agent": agent} if agent is not None else {})}


def _as_action(value: Any, n: int | None = None) -> int:
    import numpy as np

    valid = "one integer" if n is None else f"one integer 0..{n - 1}"
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"action {value!r} is a bool, not an integer (an action is {valid})")
    if isinstance(value, (int, np.integer)):
        return int(value)
    arr = np.asarray(value)
    if arr.size == 1 and np.issubdtype(arr.dtype, np.integer):
        return int(arr.reshape(-1)[0])
    raise TypeError(f"action {value!r} ({type(value).__name__}) is not {valid}")


def _observation(obs: dict[str, Any]) -> Any:
    """An agent's observation as the parent sent it (`team._plain`), in the environment's own form, or the bare
    vector where the caller gave one (no mask: an empty one made agents index past its end)."""
    import numpy as np

    vector = np.asarray(obs["observation"], dtype=np.int8)
    if obs.get("action_mask") is None:
        return vector
    return {"observation": vector, "action_mask": np.asarray(obs["action_mask"], dtype=np.int8)}


_SPACES: dict[tuple[str, int], Any] = {}


def _space(name: str, n: int | None) -> Any:
    """The action space of `n` actions the parent sent for agent `name` (None when it sent none): one object per
    agent and size, made once, as the environment hands the harness's own agents the same space at every step
    (one made per agent and step cost more than some agents' whole step)."""
    if n is None:
        return None
    key = (name, int(n))
    space = _SPACES.get(key)
    if space is None:
        from gymnasium import spaces

        space = _SPACES[key] = spaces.Discrete(key[1])
    return space


def _describe(sub: Any) -> dict[str, Any]:
    info: dict[str, Any] = {}
    for key in ("NAME", "TEAM", "TECHNIQUE"):
        value = getattr(sub, key, None)
        info[key.lower()] = value[:200] if isinstance(value, str) else None
    agents = getattr(sub, "AGENTS", None)
    info["has_agents"] = isinstance(agents, dict)
    info["agents"] = [str(k) for k in agents] if isinstance(agents, dict) else []
    info["agents_without_get_action"] = [str(k) for k, v in agents.items() if not callable(
        getattr(v, "get_action", None))] if isinstance(agents, dict) else []
    info["has_wrap"] = callable(getattr(sub, "wrap", None))
    return info


def main(argv: list[str]) -> int:
    folder = os.path.realpath(argv[0])
    preload_torch = "--torch" in argv[1:]
    in_call = _InCall(argv[argv.index("--calling") + 1] if "--calling" in argv[1:] else None)  # before the guard
    proto = _Proto()
    # its parent's death closes the pipes, unless another process inherited them: end with the parent anyway
    # (its unpacked folder is left: outside the folder this guard lets the worker change)
    from cagekit.submissions.lifeline import exit_with_parent

    exit_with_parent()
    try:
        # imported before the guard (reads only), for the functions above and the seed command
        import gymnasium.spaces  # noqa: F401
        import numpy  # noqa: F401

        import cagekit.agents  # noqa: F401 - imported before the guard: reads only

        if preload_torch:
            try:
                import torch  # noqa: F401
            except ImportError:
                pass
    except Exception:  # noqa: BLE001
        proto.send(_error("boot"))
        return 1
    os.chdir(folder)
    sys.path.insert(0, folder)
    sys.dont_write_bytecode = True
    _limits()
    _install_guard(folder)
    proto.send({"ok": True, "stage": "boot"})

    try:
        import importlib.util

        spec = importlib.util.spec_from_file_location("submission", os.path.join(folder, "submission.py"))
        if spec is None or spec.loader is None:
            raise ImportError("cannot load submission.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["submission"] = module
        spec.loader.exec_module(module)
        sub = getattr(module, "Submission", None)
        if sub is None:
            raise AttributeError("submission.py defines no `Submission`")
        info = _describe(sub)
    except BaseException:  # noqa: BLE001 - SystemExit from submission code included
        proto.send(_error("import"))
        return 1
    proto.send({"ok": True, "stage": "import", "info": info})
    agents = getattr(sub, "AGENTS", None) or {}

    while True:
        try:
            msg = proto.recv()
        except (ValueError, OSError):
            return 1
        if msg is None or msg.get("cmd") == "close":
            os._exit(0)  # nothing buffered to flush; skip slow interpreter teardown
        cmd = msg.get("cmd")
        in_call(None)  # the agent being called, named in the error if its call raises (and to the parent)
        try:
            if cmd == "act":
                # CAGE's set_initial_values, held by the parent since the episode began: before the first act
                for name, first in (msg.get("initial") or {}).items():
                    initial = getattr(agents[in_call(name)], "set_initial_values", None)
                    if callable(initial):
                        initial(_space(name, first.get("space")), _observation(first["obs"]))
                in_call(None)
                observations = {name: _observation(obs) for name, obs in msg["obs"].items()}
                if len(observations) > 1 or msg.get("step"):  # the whole step: a centralised team acts on it
                    for name in observations:
                        begin = getattr(agents[in_call(name)], "begin_step", None)
                        if begin is not None:
                            begin(observations)
                actions = {}
                for name, observation in observations.items():
                    n = msg.get("spaces", {}).get(name)
                    actions[name] = _as_action(agents[in_call(name)].get_action(observation, _space(name, n)), n)
                in_call(None)
                proto.send({"ok": True, "actions": actions})
            elif cmd == "end_episode":
                for key, member in agents.items():
                    in_call(str(key))  # the name (a str), as the error reports it
                    end = getattr(member, "end_episode", None)
                    if callable(end):
                        end()
                in_call(None)
                proto.send({"ok": True})
            elif cmd == "seed":
                from cagekit.agents.base import seed_everything

                seed = int(msg["seed"])
                seed_everything(seed)  # as the harness seeds an in-process team (torch only if it was imported)
                for key, member in agents.items():  # agents with generators of their own (cagekit's `random`)
                    reseed = getattr(member, "reseed", None)
                    if callable(reseed):
                        in_call(str(key))
                        reseed(seed)
                in_call(None)
                proto.send({"ok": True})
            elif cmd == "wrap":
                from cagekit.submissions.manifest import adopt_spec, load_manifest
                from cagekit.wrappers import make_env

                adopt_spec(load_manifest(folder))  # a scenario of the packager's own, which the manifest records
                env = make_env(msg["scenario"], **msg.get("env", {}))
                wrapped = sub.wrap(env)
                possible = getattr(wrapped, "possible_agents", None)
                proto.send({"ok": True, "same": wrapped is env,
                            "agents": [str(a) for a in possible] if possible is not None else None})
            else:
                proto.send({"ok": False, "error": f"unknown command {cmd!r}"})
        except BaseException:  # noqa: BLE001
            proto.send(_error(str(cmd), in_call.name))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
