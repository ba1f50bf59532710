"""`SubmissionTeam`: a submission's agents, running in a worker process, behind the `Team` interface the
harness uses. Each agent as the parent holds it asks the worker for its action (a whole step in one round
trip), and every answer is checked against the action spaces before the harness sees it."""

from __future__ import annotations

import os
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from cagekit.submissions.errors import SubmissionError
from cagekit.submissions.unpack import Unpacked
from cagekit.submissions.worker_client import Worker


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


def _plain(observation: Any) -> dict[str, list[int] | None]:
    """An observation as JSON for the worker: a bare vector (CAGE's form, no mask) keeps no mask (None), so that
    the worker's agent gets the bare vector back, as an agent in this process would."""
    if isinstance(observation, Mapping):
        vec, mask = observation["observation"], observation["action_mask"]
    else:
        vec, mask = observation, None
    vec = np.asarray(vec).astype(np.int64).reshape(-1).tolist()
    mask = None if mask is None else np.asarray(mask).astype(np.int64).reshape(-1).tolist()
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
        # closes a team its holder forgot, when collected or at exit; `close` calls and so detaches it, leaving a
        # closed team no code to run when collected (a Ctrl-C landing in a `__del__` is printed and lost)
        self._release = weakref.finalize(self, _release, worker, unpacked, os.getpid())
        self._answers: dict[str, tuple[dict[str, list[int] | None], int]] = {}  # this step's actions, by agent
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

    def _ask(self, observations: dict[str, dict[str, list[int] | None]],
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

    @property
    def closed(self) -> bool:
        """Whether the team was closed (its finalizer has run, and is spent)."""
        return not self._release.alive

    def close(self) -> None:
        """Stop the worker and remove the unpacked folder (once; later calls do nothing)."""
        self._release()

    def __enter__(self) -> SubmissionTeam:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _release(worker: Worker, unpacked: Unpacked, owner: int) -> None:
    """What closing a team releases; holds no reference to the team, so that it can be collected. Only in the
    process that opened it (`owner`): a forked child that closes or exits with an inherited copy leaves the
    parent's worker and folder alone."""
    if os.getpid() != owner:
        return
    try:
        worker.close()
    finally:
        unpacked.cleanup()
