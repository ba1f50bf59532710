"""Multi-agent PettingZoo environment with the costed channel and SAU masks (and gymnasium views)."""

from __future__ import annotations

from cagekit.engine import CyborgEngine
from cagekit.scenarios import ScenarioSpec, get_scenario
from cagekit.wrappers.parallel import CageParallelEnv, check_flag, check_seed


def make_env(scenario: str | ScenarioSpec = "paper-small", *, red: str | None = None, green: str | None = None,
             episode_length: int = 30, message_cost: float | None = None, sau: bool = True,
             channel: bool | None = None, seed: int | None = None, layout: str | None = None, lean: bool = True,
             detection: float | None = None, green_rate: float | None = None,
             simulator: str = "engine", view: str = "own", render_mode: str | None = None) -> CageParallelEnv:
    """A PettingZoo `ParallelEnv` for `scenario`: a name (see `cagekit scenarios`) or a `ScenarioSpec` of your
    own (docs/scenarios.md, "A scenario of your own").

    `channel` defaults to on for teams and off for a single agent (who would it talk to?).
    `simulator="twin"` gives the vectorised twin behind the same interface (paper scenarios; training).
    `view="team"` appends every teammate's rows and block bits of the same step to each agent's observation
    (an oracle channel, for ablations; `cagekit.engine.table.VIEWS`). `render_mode="ansi"`: `env.render()` returns
    what each blue agent sees, decoded, as text (the engine's env; the twin has no rendering)."""
    # the env classes check their own arguments; the engine, built first, takes the seed and lean
    seed, lean = check_seed(seed), check_flag("lean", lean)
    if simulator == "twin":
        from cagekit.wrappers.twin_env import make_twin_env

        if render_mode is not None:
            raise ValueError(f"render_mode={render_mode!r} is the engine's environment's; the twin has no rendering "
                             f"(leave simulator at 'engine', or render_mode at None)")

        return make_twin_env(scenario, red=red, green=green, episode_length=episode_length,
                             message_cost=message_cost, sau=sau, channel=True if channel is None else channel,
                             seed=seed, layout=layout, detection=detection, green_rate=green_rate, view=view)
    if simulator != "engine":
        raise ValueError(f"unknown simulator {simulator!r}; valid: engine, twin")
    spec = get_scenario(scenario)
    engine = CyborgEngine(spec, layout=layout, red=red, green=green, seed=seed, lean=lean, detection=detection,
                          green_rate=green_rate)
    if channel is None:
        channel = len(engine.agents) > 1
    return CageParallelEnv(engine, episode_length=episode_length, message_cost=message_cost, sau=sau,
                           channel=channel, seed=seed, view=view, render_mode=render_mode)


__all__ = ["CageParallelEnv", "make_env"]
