"""One episode of the protocol, computed from its seed alone: the unit every runner distributes.

The score is the environment's own `env_reward` (without channel cost) summed over exactly
`episode_length` steps. The harness calls each agent's `get_action` itself (timed, one at a time), so
nothing a team returns or wraps can reach the score.
"""

from __future__ import annotations

import functools
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

from cagekit.agents import Team
from cagekit.evaluation.protocol import EvalConfig, combination_seed, episode_seed
from cagekit.evaluation.sources import TeamSource

RED_AGENT = "Red"


def red_action(env: Any) -> str:
    """Red's last action, for full.txt and the demo (the twin does not keep one)."""
    controller = getattr(env.engine, "controller", None)
    return "" if controller is None else str(controller.action.get(RED_AGENT, ""))


class EvaluationFailure(RuntimeError):
    """The evaluation cannot go on: an agent raised, chose an action outside its space, or timed out.

    `transient`: the cause may not recur (a timeout, a crashed worker), so rerunning the same command can
    finish the run; an error of the team itself recurs. The harness sets `finished` (episodes in the
    journal) and `journal` (its path, None when it was removed for holding no episode)."""

    def __init__(self, message: str, *, transient: bool = False):
        super().__init__(message)
        self.transient = transient
        self.finished = 0
        self.journal: str | None = None


class StepTimeout(Exception):
    pass


#: what a team's code may raise that fails the evaluation with its agent, step and episode named: a `sys.exit()`
#: in a Python team's agent too, which ended the evaluating process with its own message alone (or, from a pool
#: worker, the parent through the future's result)
TEAM_ERRORS = (Exception, SystemExit)


def _is_timeout(exc: BaseException) -> bool:
    """A time limit ran out (the harness's, or a submission worker's): the load of the machine, not
    necessarily the team, so a rerun may pass."""
    return isinstance(exc, (StepTimeout, TimeoutError)) or type(exc).__name__ == "SubmissionTimeout"


@dataclass
class EpisodeResult:
    length: int
    red: str
    index: int
    seed: int
    reward: float  # sum of env_reward over the episode: the score
    bits: int  # message bits sent by the whole team
    channel_cost: float
    invalid_actions: int  # masked actions the env executed as Sleep
    actions: list[list[Any]]  # per step: [[label, bit] per agent in team order, red action]

    @property
    def key(self) -> tuple[int, str, int]:
        return (self.length, self.red, self.index)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EpisodeResult:
        """A journaled episode; TypeError/ValueError/KeyError when the record is damaged."""
        fields = {k: data[k] for k in ("length", "red", "index", "seed", "reward", "bits", "channel_cost",
                                       "invalid_actions", "actions")}
        kinds: dict[str, type | tuple[type, ...]] = {
            "length": int, "red": str, "index": int, "seed": int, "reward": (int, float), "bits": int,
            "channel_cost": (int, float), "invalid_actions": int, "actions": list}
        wrong = [k for k, kind in kinds.items() if not isinstance(fields[k], kind) or isinstance(fields[k], bool)]
        if wrong:
            raise TypeError(f"journal record with bad field(s) {wrong}")
        return cls(**fields)


def _alarm_available() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


@contextmanager
def _deadline(seconds: float | None) -> Iterator[None]:
    """Interrupt the block after `seconds` with `StepTimeout` (SIGALRM; main thread only)."""
    if not seconds or not _alarm_available():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise StepTimeout()

    previous = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def step_actions(agents: dict[str, Any], observations: dict[str, Any], spaces: dict[str, Any],
                 call: Callable[[str, Callable[[], Any]], Any] = lambda name, call: call()) -> dict[str, Any]:
    """Every agent's action for one step, as the harness asks for it (and `cagekit demo` with it): first each
    hears the whole step (`begin_step`, which only a centralised team uses), then each acts on its own
    observation (CAGE's `get_action`), in team order. `call(agent_name, call)` makes each call."""
    for name, agent in agents.items():
        begin = getattr(agent, "begin_step", None)
        if begin is not None:
            call(name, functools.partial(begin, observations))
    return {name: call(name, functools.partial(agent.get_action, observations[name], spaces[name]))
            for name, agent in agents.items()}


def start_agents(team: Any, env: Any, observations: dict[str, Any],
                 call: Callable[[str, Callable[[], Any]], Any] = lambda name, call: call()
                 ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The team's agents in the environment's order and their action spaces, each told the episode's start
    (CAGE's `set_initial_values` with its space and first observation), as the harness starts an episode (and
    `cagekit demo` with it). `call(agent_name, call)` makes each call."""
    agents = {name: team.agents[name] for name in env.possible_agents}
    spaces = {name: env.action_space(name) for name in agents}
    for name, agent in agents.items():
        call(name, functools.partial(agent.set_initial_values, spaces[name], observations[name]))
    return agents, spaces


class _Episode(NamedTuple):
    """An episode readied by `EpisodeRunner._start`: what `probe` and `run` play it with."""

    env: Any
    team: Any
    agents: dict[str, Any]  # the team's agents in the environment's order
    spaces: dict[str, Any]
    observations: dict[str, Any]  # after the reset
    names: list[str]
    seed: int  # the episode's environment seed
    where: str  # the episode, as failures name it


def episode_team(source: TeamSource, env: Any, seed: int, where: str) -> Team:
    """`source`'s team for the episode of seed `seed` on `env` (just reset), with an agent for every agent of the
    environment: one that cannot be built, or lacks an agent, is an `EvaluationFailure` naming `where`, not a
    traceback (the harness and `cagekit demo`)."""
    try:
        team = source.team_for_episode(env, seed)
    except TEAM_ERRORS as exc:  # noqa: BLE001 - a user's builder may raise anything
        raise EvaluationFailure(f"the team could not be built for {where}: {type(exc).__name__}: {exc}",
                                transient=_is_timeout(exc)) from exc
    names = list(env.possible_agents)
    missing = [n for n in names if n not in team.agents]
    if missing:
        raise EvaluationFailure(f"the team has no agent for {missing} (it has {sorted(team.agents)}); "
                                f"the environment's agents are {names}")
    return team


class EpisodeRunner:
    """Plays episodes of one configuration; keeps one fresh environment per (length, red) combination."""

    def __init__(self, config: EvalConfig, source: TeamSource, step_timeout: float | None = None):
        self.config = config
        self.source = source
        self.step_timeout = step_timeout
        self._envs: dict[tuple[int, str], Any] = {}

    def env(self, length: int, red: str) -> Any:
        key = (length, red)
        if key not in self._envs:
            from cagekit.wrappers import make_env
            from cagekit.wrappers.twin_env import make_twin_env

            c = self.config
            build: Callable[..., Any] = make_twin_env if c.simulator == "twin" else make_env  # same interface
            self._envs.clear()  # one combination at a time: a fresh environment for each
            self._envs[key] = build(c.scenario, red=red, green=c.green, episode_length=length,
                                    message_cost=c.message_cost, sau=c.sau, channel=c.channel,
                                    detection=c.detection, view=c.view,
                                    seed=combination_seed(c.seed, length, red), layout=c.layout)
        return self._envs[key]

    def close(self) -> None:
        """Drop the environments and release the team source's processes and folders."""
        self._envs.clear()
        self.source.close()

    def _where(self, length: int, red: str, index: int) -> str:
        return f"episode {index} (steps {length}, adversary {red})"

    def _call(self, agent_name: str, call: Callable[[], Any], step: int, where: str, agent: Any = None) -> Any:
        """`call()` under the step timeout; any error names the agent, the step and the episode."""
        start = time.perf_counter()
        try:
            with _deadline(self.step_timeout):
                result = call()
        except StepTimeout:
            from cagekit.submissions.team import agent_in_call

            who = agent_in_call(agent) or agent_name  # a submission's worker says whose code hangs
            raise EvaluationFailure(f"agent {who!r} exceeded the step timeout of {self.step_timeout:g} s "
                                    f"at step {step} of {where}", transient=True) from None
        except TEAM_ERRORS as exc:  # noqa: BLE001 - any error of the agent fails the evaluation
            # a submission's worker names the agent at fault: one call there asks every agent of the step
            named = getattr(exc, "agent", None)
            culprit = named if isinstance(named, str) and named else agent_name  # a user's own `.agent` is no name
            raise EvaluationFailure(f"agent {culprit!r} raised {type(exc).__name__}: {exc} "
                                    f"at step {step} of {where}", transient=_is_timeout(exc)) from exc
        elapsed = time.perf_counter() - start
        if self.step_timeout and elapsed > self.step_timeout:
            raise EvaluationFailure(f"agent {agent_name!r} took {elapsed:.3f} s, over the step timeout of "
                                    f"{self.step_timeout:g} s, at step {step} of {where}", transient=True)
        return result

    def _act(self, agents: dict[str, Any], observations: dict[str, Any], spaces: dict[str, Any], step: int,
             where: str) -> dict[str, Any]:
        """Every agent's action (`step_actions`), each call under the step timeout and naming the agent."""
        return step_actions(agents, observations, spaces,
                            lambda name, call: self._call(name, call, step, where, agents.get(name)))

    def _start(self, length: int, red: str, index: int) -> _Episode:
        """Reset the combination's environment for the episode and ready the team."""
        where = self._where(length, red, index)
        env = self.env(length, red)
        seed = episode_seed(self.config.seed, length, red, index)
        observations, _ = env.reset(seed=seed)
        names = list(env.possible_agents)
        team = episode_team(self.source, env, seed, where)

        def initial(name: str, call: Callable[[], Any]) -> Any:
            try:
                return call()
            except TEAM_ERRORS as exc:  # noqa: BLE001
                raise EvaluationFailure(f"agent {name!r} raised {type(exc).__name__}: {exc} "
                                        f"in set_initial_values before {where}") from exc

        agents, spaces = start_agents(team, env, observations, initial)
        return _Episode(env, team, agents, spaces, observations, names, seed, where)

    def probe(self, length: int, red: str) -> None:
        """Build the team and let it choose the first step's actions of episode 0 (not stepped), so that a team
        that cannot load or act (corrupt weights, an unknown algorithm, agents unlike the scenario's) fails
        before anything is written. Raises `EvaluationFailure`."""
        e = self._start(length, red, 0)
        self._act(e.agents, e.observations, e.spaces, 0, e.where)  # the environment judges them when stepped
        try:
            e.team.end_episode()
        except TEAM_ERRORS as exc:  # noqa: BLE001
            raise EvaluationFailure(f"the team raised {type(exc).__name__}: {exc} in end_episode") from exc

    def run(self, length: int, red: str, index: int) -> EpisodeResult:
        env, team, agents, spaces, observations, names, seed, where = self._start(length, red, index)
        reward: list[float] = []
        bits = 0
        cost: list[float] = []
        steps: list[list[Any]] = []
        for t in range(length):
            actions = self._act(agents, observations, spaces, t, where)
            try:
                observations, _, _, truncations, infos = env.step(actions)
            except ValueError as exc:
                raise EvaluationFailure(f"invalid action at step {t} of {where}: {exc}") from exc
            first = infos[names[0]]
            if any(infos[n]["env_reward"] != first["env_reward"] for n in names):
                raise EvaluationFailure(f"the environment reported different rewards to its agents at step {t}")
            reward.append(float(first["env_reward"]))
            bits += sum(int(infos[n]["bits_sent"]) for n in names)
            cost.extend(float(infos[n]["channel_cost"]) for n in names)
            steps.append([[[infos[n]["action"], int(infos[n]["bits_sent"])] for n in names],
                          red_action(env)])
            if t < length - 1 and not env.agents:
                raise EvaluationFailure(f"the environment ended {where} after {t + 1} of {length} steps")
        invalid = sum(int(infos[n]["invalid_actions"]) for n in names)
        try:
            team.end_episode()
        except TEAM_ERRORS as exc:  # noqa: BLE001
            raise EvaluationFailure(f"the team raised {type(exc).__name__}: {exc} in end_episode after {where}") \
                from exc
        total = math.fsum(reward)
        return EpisodeResult(length=length, red=red, index=index, seed=seed, reward=total, bits=bits,
                             channel_cost=math.fsum(cost), invalid_actions=invalid, actions=steps)
