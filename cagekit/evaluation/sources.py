"""Where the blue team under evaluation comes from.

A `TeamSource` is a small picklable description (it travels to worker processes and Ray tasks) that
builds the `Team` inside the worker and prepares it for each episode. Heuristic teams, trained
checkpoints and a user's own Python team (`FILE.py:NAME`) run in the worker; a CAGE-style submission (a zip
or folder with `submission.py`) runs in a separate process behind the same interface.
"""

from __future__ import annotations

import hashlib
import sys
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cagekit.agents import HEURISTICS, Team, load_team, make_team
from cagekit.agents.base import seed_everything
from cagekit.agents.python_team import (
    PYTHON_FACTORY,
    build_team,
    check_spec,
    load_builder,
    module_name,
    python_spec,
)
from cagekit.agents.team_code import local_modules


class TeamSource(ABC):
    """Builds the team for one environment and readies it for each episode."""

    #: a short name for default output folders and report headers
    label: str

    @abstractmethod
    def identity(self) -> dict[str, Any]:
        """What identifies this team in a journal: two runs resume each other only when these agree."""

    def env_settings(self) -> dict[str, Any]:
        """Environment settings this team requires (scenario, channel, sau, message_cost, layout)."""
        return {}

    @abstractmethod
    def team_for_episode(self, env: Any, seed: int) -> Team:
        """The team to play the episode with seed `seed` on `env` (a `CageParallelEnv` just reset).

        The result must depend on nothing but the team and `seed`: no state left from earlier episodes
        (workers and resumed runs play episodes in any order and must give identical results)."""

    def close(self) -> None:
        """Release what the source started (a submission's worker process and its unpacked folder, from its
        checks when it was made or from `team_for_episode`): `evaluate` closes it however it ends.

        The team is built again on the next episode, so closing is always safe."""


@dataclass
class HeuristicSource(TeamSource):
    kind: str

    def __post_init__(self) -> None:
        if self.kind not in HEURISTICS:
            raise ValueError(f"unknown heuristic team {self.kind!r}; valid: {', '.join(HEURISTICS)}")
        self.label = self.kind

    def identity(self) -> dict[str, Any]:
        return {"kind": "heuristic", "name": self.kind}

    def team_for_episode(self, env: Any, seed: int) -> Team:
        seed_everything(seed)
        return make_team(self.kind, env, seed=seed)  # cheap: a fresh team (and generator) per episode


def _digest(path: Path, recursive: bool = True) -> str:
    h = hashlib.sha256()
    found = path.rglob("*") if recursive else path.glob("*")
    files = sorted(p for p in found if p.is_file()) if path.is_dir() else [path]
    for f in files:
        h.update(str(f.relative_to(path) if path.is_dir() else f.name).encode())
        with f.open("rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def check_unchanged(path: str, digest: str, recursive: bool = True) -> None:
    """A ValueError when the team's files at `path` no longer have the `digest` this evaluation began with: a worker
    process loads the team when it plays its first episode (a checkpoint again for each combination), so a
    checkpoint that training went on writing, or a submission packaged anew, was played under the identity of the
    team the run began with (a journal of two teams)."""
    if _digest(Path(path), recursive) != digest:
        raise ValueError(f"{path} changed after this evaluation began, so this process would play another team than "
                         f"the journal names; restore it to resume the evaluation, or score the new team in another "
                         f"output folder")


class _PerEnvTeam:
    """A source that builds its team in each worker process (a checkpoint's once per environment, a
    submission's once) and never pickles it."""

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_team"] = None  # with no team, the worker builds its own (a checkpoint's env id is then moot)
        return state


@dataclass
class CheckpointSource(_PerEnvTeam, TeamSource):
    path: str

    def __post_init__(self) -> None:
        self.path = str(Path(self.path).resolve())
        from cagekit.agents.checkpoint import load_meta

        self.meta = load_meta(self.path)  # a ValueError naming the file when it is missing or not a checkpoint's
        self.label = Path(self.path).name or "checkpoint"
        # the folder's own files: a run's snapshots/, selection/ and logs below it are not this checkpoint
        self._digest = _digest(Path(self.path), recursive=False)
        self._team: Team | None = None
        self._env_id: int | None = None

    def identity(self) -> dict[str, Any]:
        return {"kind": "checkpoint", "path": self.path, "algo": self.meta.get("algo"), "sha256": self._digest}

    def env_settings(self) -> dict[str, Any]:
        from cagekit.agents.checkpoint import env_settings

        return env_settings(self.meta)

    def team_for_episode(self, env: Any, seed: int) -> Team:
        if self._team is None or self._env_id != id(env):
            team = load_team(self.path)
            check_unchanged(self.path, self._digest, recursive=False)  # after loading: what was loaded is the same
            self._team = team
            self._env_id = id(env)
        seed_everything(seed)
        self._team.end_episode()  # no memory carried from another episode, whatever happened before
        return self._team


def _check_manifest_scenario(manifest: dict[str, Any]) -> None:
    """The validator's scenario check: the manifest's agents and spaces must be those of the environment it
    names (SubmissionError otherwise), so that a submission packaged for another scenario is refused before
    any episode, not by its first action."""
    from cagekit.submissions.errors import SubmissionError
    from cagekit.submissions.manifest import make_manifest_env, space_problems

    try:
        env = make_manifest_env(manifest)
    except Exception as exc:  # noqa: BLE001 - an unknown scenario or layout: each raises its own kind
        raise SubmissionError(f"the manifest's environment (scenario {manifest['scenario']!r}) cannot be built: "
                              f"{exc}") from exc
    problems = space_problems(manifest, env)
    if problems:
        raise SubmissionError(f"the manifest's agents do not fit its scenario {manifest['scenario']!r}: "
                              + "; ".join(problems))


@dataclass
class SubmissionSource(_PerEnvTeam, TeamSource):
    """A CAGE-style submission (zip or folder): its agents run in a separate process.

    The submission's code is never imported here; the harness's environment (and so the score) stays
    in this process and only actions cross the pipe. Hashes and archive safety are checked on opening.
    """

    path: str

    def __post_init__(self) -> None:
        from cagekit.submissions.loader import open_submission

        self.path = str(Path(self.path).resolve())
        self.label = Path(self.path).stem or "submission"
        self._digest = _digest(Path(self.path))
        from cagekit.submissions.errors import SubmissionError
        from cagekit.submissions.safety import UnsafeSubmission

        try:
            probe = open_submission(self.path)  # fail early, with the validator's message
            try:
                self._settings = probe.env_settings()
                _check_manifest_scenario(probe.manifest)
                # the names `cagekit package` wrote (Submission.NAME, TEAM, TECHNIQUE): the reports' defaults
                self.labels = {key: probe.manifest[key] for key in ("name", "team", "technique")
                               if isinstance(probe.manifest.get(key), str) and probe.manifest[key].strip()}
                check_unchanged(self.path, self._digest)  # what was unpacked is the team the digest names
            except BaseException:
                probe.close()
                raise
        except (SubmissionError, UnsafeSubmission) as exc:  # an unsafe zip was reported without its name
            raise ValueError(f"submission {self.path} refused: {exc} (`cagekit validate` checks it in full)") \
                from exc
        # the checked team plays this process's first episode (`check_team`'s probe, then a serial run): closed and
        # started again there, its worker was started twice before any episode (~1 s, importing torch); a copy
        # pickled to another process leaves it behind (`_PerEnvTeam`), and `close` releases it
        self._team: Any = probe

    def identity(self) -> dict[str, Any]:
        return {"kind": "submission", "path": self.path, "sha256": self._digest}

    def env_settings(self) -> dict[str, Any]:
        return {k: v for k, v in self._settings.items() if v is not None}

    def team_for_episode(self, env: Any, seed: int) -> Any:
        from cagekit.submissions.loader import open_submission

        # One worker per process for the whole evaluation, not one per combination: starting one imports
        # torch (~2.5 s), and the seed and end_episode below already make each episode independent of the
        # ones the worker played before (as the runners' split of a combination across processes assumes).
        if self._team is None:
            team = open_submission(self.path)
            try:
                check_unchanged(self.path, self._digest)  # after unpacking: what was unpacked is the same
            except ValueError:
                team.close()
                raise
            self._team = team
        self._team.seed(seed)
        self._team.end_episode()
        return self._team

    def close(self) -> None:
        if self._team is not None:
            team, self._team = self._team, None
            team.close()


@dataclass
class PythonSource(TeamSource):
    """Your own team, written in Python: `NAME` in the file `path`, either an agent class (an `Agent`
    subclass, or any class with CAGE's `get_action`; one instance per blue agent, built as `NAME(slot)` from
    its `AgentSlot`, as the heuristics are) or a function `NAME(env)` returning a `Team` or a dict of agent
    name -> agent (`cagekit.agents.python_team`).

    Unlike a submission, the file runs in the evaluating process (it is your own code, being developed): its
    folder goes on `sys.path` so that it can import its neighbours. The team is built afresh for every
    episode, after the global generators are seeded with the episode's seed, so that no episode depends on
    the ones played before it (whichever worker plays it); load weights once, at the module's import."""

    path: str
    name: str = PYTHON_FACTORY

    def __post_init__(self) -> None:
        file = check_spec(self.path, self.name)
        self.path = str(file)
        self.label = file.stem
        self._module = module_name(file, "cagekit_user_team")
        # imported now: fail with the file's own error, not at the first episode
        self._builder: Any = load_builder(self.path, self.name, self._module)
        # a journal resumes only the same code, so editing a helper the team imports starts no mixed evaluation
        self._digest = self._code_digest()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_builder"] = None  # a worker imports the file itself
        return state

    def _code_digest(self) -> str:
        """The digest of the file and the modules it brings from its folder, as this process imported them."""
        file = Path(self.path)
        return _files_digest(local_modules(file, self._module), file.parent)

    def _build(self) -> Any:
        """The file's `name`, importing the file on first use in this process (a worker, spawned or on Ray:
        ValueError when the code is no longer the code this evaluation began with)."""
        if self._builder is None:
            imports = self._module not in sys.modules
            builder = load_builder(self.path, self.name, self._module)
            # a worker imports the file when the run has long begun: it must be the same code
            if imports and self._code_digest() != self._digest:
                raise ValueError(f"{self.path} or a module it imports changed after this evaluation began, so "
                                 f"this process would play other code than the journal names; restore it to "
                                 f"resume the evaluation, or score the new code in another output folder")
            self._builder = builder
        return self._builder

    def identity(self) -> dict[str, Any]:
        return {"kind": "python", "path": self.path, "name": self.name, "sha256": self._digest}

    def team_for_episode(self, env: Any, seed: int) -> Team:
        builder = self._build()
        seed_everything(seed)
        return build_team(builder, env, self.label, f"{Path(self.path).name}:{self.name}")


def _files_digest(files: list[Path], root: Path) -> str:
    """SHA-256 over the files' paths relative to `root` and their contents."""
    h = hashlib.sha256()
    for f in files:
        h.update(f"{f.relative_to(root).as_posix()}\0".encode())
        h.update(hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()


#: the best shipped team, scored when evaluation.py is given no team (see submissions/README.md)
DEFAULT_SUBMISSION = Path(__file__).resolve().parents[2] / "submissions" / "dial-sau-paper-small.zip"


class _SilencedTeam:
    """A team (ours or a submission's proxy) whose agents all send 0."""

    def __init__(self, team: Any):
        from cagekit.agents.base import SilencedAgent

        self.team = team
        self.agents = {name: SilencedAgent(agent) for name, agent in team.agents.items()}

    def end_episode(self) -> None:
        self.team.end_episode()


@dataclass
class MutedSource(TeamSource):
    """Another source's team with every outgoing bit forced to 0: the same agents, no channel.

    Set against the team's own score on the same episodes this says what its messages are worth (the
    agents still read the receive slots, which stay 0, and SAU then unmasks nothing on their account)."""

    inner: TeamSource

    def __post_init__(self) -> None:
        self.label = f"{self.inner.label}-muted"

    def identity(self) -> dict[str, Any]:
        return {**self.inner.identity(), "muted": True}

    def env_settings(self) -> dict[str, Any]:
        return self.inner.env_settings()

    def team_for_episode(self, env: Any, seed: int) -> Any:
        if not env.channel:
            raise ValueError("muting needs the message channel on: there is nothing to mute without it")
        return _SilencedTeam(self.inner.team_for_episode(env, seed))

    def close(self) -> None:
        """Close the inner source's team: kept open, a submission's worker outlived the run, and a forked pool
        worker inherited the parent's (all of them playing through its one pipe, so none could)."""
        self.inner.close()


#: the chosen snapshots this process has already named in a note (said once, however often resolved)
_NOTED: set[str] = set()


def checkpoint_source(folder: Path) -> CheckpointSource:
    """A checkpoint folder's team. A run whose snapshots were chosen among (`selection.json`, a benchmark's run)
    stands for the weights chosen, as `cagekit package` and the benchmark take it: that snapshot is the checkpoint
    evaluated (its folder's digest is the evaluation's identity), named in a note, and the reports keep the run's
    name."""
    from cagekit.agents.snapshots import choice_note, chosen_weights

    chosen = chosen_weights(folder)
    source = CheckpointSource(str(chosen))
    if chosen != folder:
        source.label = folder.resolve().name
        if source.path not in _NOTED:
            _NOTED.add(source.path)
            print(choice_note(folder, chosen, "scoring"), file=sys.stderr)
    return source


def default_team() -> str:
    """The shipped trained team when this checkout has it, else the `react` heuristic."""
    return str(DEFAULT_SUBMISSION) if DEFAULT_SUBMISSION.is_file() else "react"


def resolve_source(path: str | None, team: str | None = None, output_hint: bool = True) -> TeamSource:
    """The team named by the command line: a submission, a checkpoint directory, a heuristic name, or `--team`
    (default: `default_team()`). `output_hint`: a path that is no team may be evaluation.py's output folder
    given alone, and the refusal says how to give one (not for commands without an output folder)."""
    if path is None:
        chosen = team or default_team()
        return HeuristicSource(chosen) if chosen in HEURISTICS else resolve_source(chosen)
    p = Path(path)
    if p.is_dir() and (p / "meta.json").is_file():
        return checkpoint_source(p)
    if (p.is_dir() and (p / "submission.py").is_file()) or (p.is_file() and p.suffix.lower() == ".zip"):
        return SubmissionSource(str(p))
    if not p.exists() and path in HEURISTICS:
        return HeuristicSource(path)
    spec = python_spec(path)
    if spec is not None:
        return PythonSource(*spec)
    if p.suffix.lower() == ".zip":
        raise ValueError(f"no team {path!r}: no such submission file")
    found = "it does not exist" if not p.exists() else "it is none of these"
    raise ValueError(f"no team {path!r} ({found}): expected a submission (a .zip, or a folder holding "
                     f"submission.py), a checkpoint directory holding meta.json and its weights, your own Python "
                     f"team (FILE.py:NAME) or a heuristic team name ({', '.join(HEURISTICS)})" + (
                         f"; to give only the output folder, name the team first: evaluation.py {default_team()} "
                         f"{path} (the default team)" if output_hint else ""))
