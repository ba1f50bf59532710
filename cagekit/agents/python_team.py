"""A user's own team written in Python: `FILE.py:NAME`, an agent class or a function of the environment.

Shared by the evaluation harness (which runs the file in the evaluating process) and by `cagekit package`
(which copies the file, and the modules it loads from its folder, into a submission whose `submission.py`
builds the agents the same way). A file is imported under a module name of the caller's choosing, with its
folder on `sys.path`, so that it can import its neighbours as `python FILE.py` would let it.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import inspect
import random
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from cagekit.agents.base import Agent, Team, seed_everything, team_slots
from cagekit.agents.team_code import remember_brought

#: the name a team file is asked for when its spec names none (`myteam.py` = `myteam.py:make_team`)
PYTHON_FACTORY = "make_team"

#: what NAME may be, for error messages
WHAT_NAME_IS = ("an agent class (built once per agent from its AgentSlot) or a function of the environment "
                "returning a Team or a dict of agents")


def python_spec(text: str) -> tuple[str, str] | None:
    """(file, name) when `text` names a Python team (`FILE.py` or `FILE.py:NAME`), else None."""
    file, sep, name = text.rpartition(":")
    if sep and file.endswith(".py"):
        return file, name
    return (text, PYTHON_FACTORY) if text.endswith(".py") else None


def check_spec(path: str | Path, name: str) -> Path:
    """The resolved file of a Python team spec (ValueError naming what is wrong: not .py, missing, bad name)."""
    file = Path(path)
    if file.suffix != ".py":
        raise ValueError(f"a Python team is a .py file, got {str(path)!r}")
    if not file.is_file():
        raise ValueError(f"no such Python file: {str(path)!r}")
    if not name.isidentifier():
        raise ValueError(f"{path}:{name}: {name!r} is not a Python name; give FILE.py:NAME, NAME {WHAT_NAME_IS}")
    return file.resolve()


def module_name(path: str | Path, prefix: str) -> str:
    """The name to import the team file at `path` under: one per place and content, so that another file of the
    same name and bytes (whose folder's helpers may differ) is a module of its own, and an edited file is
    imported afresh."""
    file = Path(path).resolve()
    digest = hashlib.sha256(str(file).encode() + b"\0" + file.read_bytes()).hexdigest()
    return f"{prefix}_{digest[:16]}"


def load_builder(path: str | Path, name: str, as_module: str) -> Any:
    """`name` from the file at `path`, importing the file as the module `as_module` unless this process already
    has (ValueError naming the file, the missing name and the team makers it does define)."""
    module = sys.modules.get(as_module)
    if module is None:
        folder = Path(path).resolve().parent
        _forget_other_teams_modules(folder)
        if str(folder) in sys.path:
            sys.path.remove(str(folder))
        sys.path.insert(0, str(folder))  # first, as `python FILE.py` would have it: its neighbours import
        _TEAM_FOLDERS.add(folder)
        spec = importlib.util.spec_from_file_location(as_module, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        before = set(sys.modules)
        sys.modules[as_module] = module
        try:
            with _seeded_import():
                spec.loader.exec_module(module)
        except (Exception, SystemExit) as exc:  # a module-level sys.exit() or argparse ended the evaluation silently
            del sys.modules[as_module]
            raise ValueError(f"importing {path} failed: {type(exc).__name__}: {exc}") from exc
        remember_brought(as_module, set(sys.modules) - before - {as_module})
    builder = getattr(module, name, None)
    if builder is None or not callable(builder):
        found = sorted(k for k, v in vars(module).items() if not k.startswith("_") and _team_maker(v)
                       and getattr(v, "__module__", None) == as_module)
        what = "has no" if builder is None else "has a non-callable"
        raise ValueError(f"{path} {what} {name!r}: name {WHAT_NAME_IS}, as {Path(path).name}:NAME"
                         + (f"; it defines {', '.join(found)}" if found else ""))
    return builder


#: the folders `load_builder` has put on sys.path: their modules are some team's code
_TEAM_FOLDERS: set[Path] = set()


def _forget_other_teams_modules(folder: Path) -> None:
    """Drop from sys.modules the modules another team's folder loaded under a name that `folder` provides too
    (each team its own `helper.py`), so that this team imports its own; the other team keeps the modules it
    holds. Without this a second team in one process silently played the first one's helper."""
    for name, module in list(sys.modules.items()):
        found = getattr(module, "__file__", None)
        if not isinstance(found, str) or not Path(found).is_absolute():
            continue
        place = Path(found).resolve()
        top = name.partition(".")[0]
        if not place.is_relative_to(folder) and any(place.is_relative_to(other) for other in _TEAM_FOLDERS) and \
                ((folder / f"{top}.py").is_file() or (folder / top / "__init__.py").is_file()):
            del sys.modules[name]


@contextlib.contextmanager
def _seeded_import() -> Iterator[None]:
    """The global generators seeded with 0 while a team file is imported, their states restored after: what it
    draws at import (a network's initial weights) is then the same in every process that imports it, the
    evaluating one, a spawned worker or a submission's (torch is imported first, so that it is seeded whether
    or not this process had loaded it before)."""
    import numpy as np
    import torch

    states = random.getstate(), np.random.get_state(), torch.get_rng_state()
    seed_everything(0)
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])


def build_team(builder: Any, env: Any, kind: str, spec: str) -> Team:
    """The team `builder` (given as `spec`, FILE.py:NAME) makes for `env`: one instance per blue agent of an
    agent class, or what a function of the environment returns (a Team, or a dict of agent name -> agent;
    TypeError otherwise, naming an abstract class's missing methods and an agent's missing CAGE methods)."""
    if inspect.isclass(builder) and not is_agent_class(builder):  # else called as a function: "takes no arguments"
        abstract = sorted(getattr(builder, "__abstractmethods__", ()))
        what = f"an abstract class (it leaves {', '.join(abstract)} to a subclass)" if abstract else \
            "a class without get_action"
        raise TypeError(f"{spec} is {what}; name {WHAT_NAME_IS}")
    if is_agent_class(builder):
        _check_takes_slot(builder, spec)
    made = {slot.name: builder(slot) for slot in team_slots(env)} if is_agent_class(builder) else builder(env)
    if isinstance(made, Team):
        team = made
    elif isinstance(made, Mapping) and all(callable(getattr(a, "get_action", None)) for a in made.values()):
        team = Team(agents=dict(made), scenario=env.spec.name, kind=kind)
    else:
        raise TypeError(f"{spec}(env) returned {type(made).__name__}; expected a "
                        f"cagekit.agents.Team or a dict of agent name -> agent (an object with get_action)")
    # the harness calls both (a submission's worker only end_episode): refused here, the file and its package alike
    for name, agent in team.agents.items():
        lacking = [m for m in ("set_initial_values", "end_episode") if not callable(getattr(agent, m, None))]
        if lacking:
            raise TypeError(f"{spec}: agent {name!r} ({type(agent).__name__}) has no {' or '.join(lacking)}; an "
                            f"agent has CAGE's get_action, end_episode and set_initial_values (subclass "
                            f"cagekit.agents.Agent, which defines the last two)")
    return team


def _check_takes_slot(cls: type, spec: str) -> None:
    """Refuse an agent class that cannot be built as `cls(slot)` (a CAGE agent from elsewhere usually takes no
    argument), naming the call it gets and the way to build it otherwise, rather than Python's "takes 1 positional
    argument but 2 were given" from deep in the harness."""
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):  # no signature to read (a builtin's): let the call say what it says
        return
    try:
        signature.bind(object())
    except TypeError:
        raise TypeError(f"{spec}: an agent class is built once per blue agent as {cls.__name__}(slot), with its "
                        f"cagekit.agents.AgentSlot, but {cls.__name__}{signature} cannot be called with the slot "
                        f"alone; take it in __init__, or name a function of the environment that returns a dict of "
                        f"agent name -> agent (e.g. {{name: {cls.__name__}() for name in env.possible_agents}})"
                        ) from None


class EpisodeTeam:
    """A Python team inside a submission, built afresh for each episode as the harness builds it in-process.

    A submission's worker builds `Submission.AGENTS` once and before every episode seeds the global generators
    and calls each agent's `reseed(seed)`. Here that call seeds them again and rebuilds the whole team, so an
    agent that draws at construction or keeps state across episodes plays what the file plays under
    `evaluation.py FILE.py:NAME`; the agents' own `reseed`, which the harness never calls, is not called."""

    def __init__(self, builder: Any, env: Any, spec: str):
        self.builder, self.env, self.spec = builder, env, spec
        self.kind = Path(spec.partition(":")[0]).stem  # the file's stem, as the harness names the team
        self.team = build_team(builder, env, self.kind, spec)  # built now too: an error shows at the import
        self.fresh: int | None = None  # the seed the team was just built with, until it plays
        self.agents = {name: _EpisodeAgent(self, name) for name in self.team.agents}

    def reseed(self, seed: int) -> None:
        """Build the team for the episode with seed `seed` (once: every agent's reseed lands here)."""
        if self.fresh != seed:
            seed_everything(seed)
            self.team = build_team(self.builder, self.env, self.kind, self.spec)
            self.fresh = seed

    def agent(self, name: str, playing: bool = True) -> Any:
        """The current team's agent `name`; `playing` marks the team as no longer fresh."""
        if playing:
            self.fresh = None
        return self.team.agents[name]


class _EpisodeAgent:
    """One agent of an `EpisodeTeam`: CAGE's interface, forwarded to the agent of the current episode's team."""

    def __init__(self, team: EpisodeTeam, name: str):
        self.team, self.name = team, name

    def reseed(self, seed: int) -> None:
        self.team.reseed(seed)

    def set_initial_values(self, action_space: Any = None, observation: Any = None) -> None:
        self.team.agent(self.name).set_initial_values(action_space, observation)  # build_team saw it is there

    def begin_step(self, observations: Any) -> None:
        call = getattr(self.team.agent(self.name), "begin_step", None)
        if call is not None:
            call(observations)

    def get_action(self, observation: Any, action_space: Any = None) -> Any:
        return self.team.agent(self.name).get_action(observation, action_space)

    def end_episode(self) -> None:
        # a team built for this episode has played nothing to forget; the harness does not call it there either
        if self.team.fresh is None:
            self.team.agent(self.name, playing=False).end_episode()


def is_agent_class(value: Any) -> bool:
    """An agent class: an `Agent` subclass, or any class with `get_action` (a CAGE agent from elsewhere)."""
    return inspect.isclass(value) and not inspect.isabstract(value) and (
        issubclass(value, Agent) or callable(getattr(value, "get_action", None)))


def _team_maker(value: Any) -> bool:
    """Whether a module attribute could build a team: an agent class or a plain function."""
    return is_agent_class(value) or inspect.isfunction(value)
