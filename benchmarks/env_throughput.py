"""Environment throughput: the raw csle-cyborg engine vs `CageParallelEnv` (full step and lean step).

Each configuration runs `--repeats` rounds of `--steps` steps in 30-step episodes, resets included,
with a sleeping blue team:
  raw   `csle_cyborg.main.Main` on `build_scenario_dict(spec, layout)`, every agent stepping itself
  full  `make_env(..., lean=False)`: the engine's own step and reward calculators, plus our wrapper
        (observations, masks, a monitor per blue agent, RNG isolation) and our cached-subnet reset
        (identical results: tests/test_engine.py::test_cached_subnet_reset_equals_engine_reset)
  lean  `make_env(..., lean=True)`: the engine's actions without the true-state collection
  wrap  `full` with the engine's own reset: what the wrapper alone costs (informative, no target)
and reports steps/s, the ratio to raw (targets: full >= 0.9x raw, lean >= 2x raw) and the peak Python
memory one environment takes to build and run an episode (tracemalloc, measured apart from the timing).

    python benchmarks/env_throughput.py [--steps 900] [--repeats 4]
"""

from __future__ import annotations

import argparse
import gc
import random
import time
import tracemalloc
from collections.abc import Callable
from typing import Protocol

from cagekit.engine.actions import register
from cagekit.engine.red import green_agent_factory, red_agent_factory
from cagekit.scenarios import build_scenario_dict, get_scenario
from cagekit.wrappers import make_env

EPISODE = 30
CASES = [
    # (label, scenario, layout, red)
    ("paper-small", "paper-small", None, "KillChainAgent"),
    ("cage2 classic", "cage2", "classic", "B_lineAgent"),
]


class Runner(Protocol):
    def step(self) -> None: ...


class RawRunner:
    """The engine as CybORG users drive it: `Main(...)`, `step()`, `reset()` every episode."""

    def __init__(self, scenario: str, layout: str | None, red: str, seed: int = 0):
        from csle_cyborg.main import Main

        register()  # the paper scenarios use our action classes
        spec = get_scenario(scenario)
        scenario_dict = build_scenario_dict(spec, layout)
        green_hosts = tuple(s["hostname"] for s in scenario_dict["Agents"]["Green"]["starting_sessions"])
        agents = {"Red": red_agent_factory(spec.red_agents[red], detection=spec.detection,
                                        target=spec.red_target),
                  "Green": green_agent_factory(spec.green_agents[spec.default_green], hostnames=green_hosts,
                                               rate=spec.green_rate)}
        random.seed(seed)
        self.main = Main(scenario_dict, "sim", agents=agents)  # blue agents: the dict's SleepAgent
        self.ctl = self.main.environment_controller
        self.t = EPISODE

    def step(self) -> None:
        if self.t >= EPISODE:
            self.main.reset()
            # the engine's reset hard-codes the agents Red/Blue/Green (a blue_user would raise KeyError)
            self.ctl.actions = {name: [] for name in self.ctl.agent_interfaces}
            self.t = 0
        self.main.step()
        self.t += 1


class EnvRunner:
    def __init__(self, scenario: str, layout: str | None, red: str, lean: bool, seed: int = 0,
                 fast_reset: bool = True):
        self.env = make_env(scenario, layout=layout, red=red, lean=lean, seed=seed, episode_length=EPISODE)
        self.env.engine.fast_reset = fast_reset
        self.sleep = {a: 0 for a in self.env.possible_agents}

    def step(self) -> None:
        if not self.env.agents:
            self.env.reset()
        self.env.step(self.sleep)


def _factory(kind: str, scenario: str, layout: str | None, red: str) -> Callable[[], Runner]:
    if kind == "raw":
        return lambda: RawRunner(scenario, layout, red)
    return lambda: EnvRunner(scenario, layout, red, lean=(kind == "lean"), fast_reset=(kind != "wrap"))


def timed(runner: Runner, steps: int) -> float:
    gc.collect()
    start = time.perf_counter()
    for _ in range(steps):
        runner.step()
    return steps / (time.perf_counter() - start)


def peak_memory(make: Callable[[], Runner]) -> float:
    """Peak traced Python memory (MiB) to build one environment and run one episode plus a reset."""
    make()  # imports and caches outside the measurement
    gc.collect()
    tracemalloc.start()
    runner = make()
    for _ in range(EPISODE + 1):
        runner.step()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=900, help="timed steps per configuration and round")
    parser.add_argument("--repeats", type=int, default=4, help="rounds (the best round is reported)")
    args = parser.parse_args()

    kinds = ("raw", "full", "lean", "wrap")
    rows = []
    for label, scenario, layout, red in CASES:
        runners = {}
        for kind in kinds:
            runners[kind] = _factory(kind, scenario, layout, red)()
            for _ in range(EPISODE):  # warm-up: first reset and imports
                runners[kind].step()
        # rounds interleave the three kinds, so that load from other processes hits them alike
        rates = {kind: 0.0 for kind in kinds}
        for _ in range(args.repeats):
            for kind in kinds:
                rates[kind] = max(rates[kind], timed(runners[kind], args.steps))
        del runners
        mems = {kind: peak_memory(_factory(kind, scenario, layout, red)) for kind in kinds}
        rows.append((label, red, rates, mems))

    print(f"\nbest of {args.repeats} interleaved rounds of {args.steps} steps, "
          f"{EPISODE}-step episodes with resets, blue Sleep\n")
    header = (f"{'scenario':<14} {'red':<15} {'raw st/s':>9} {'full st/s':>10} {'lean st/s':>10} "
              f"{'full/raw':>9} {'lean/raw':>9} {'wrap/raw':>9} {'raw MiB':>8} {'full MiB':>9} {'lean MiB':>9}")
    print(header)
    print("-" * len(header))
    for label, red, r, m in rows:
        print(f"{label:<14} {red:<15} {r['raw']:>9.0f} {r['full']:>10.0f} {r['lean']:>10.0f} "
              f"{r['full'] / r['raw']:>8.2f}x {r['lean'] / r['raw']:>8.2f}x {r['wrap'] / r['raw']:>8.2f}x "
              f"{m['raw']:>8.2f} {m['full']:>9.2f} {m['lean']:>9.2f}")
    print("\ntargets: full >= 0.90x raw, lean >= 2.00x raw "
          "(wrap: full with the engine's own reset, what the wrapper alone costs; no target)")
    for label, _, r, _ in rows:
        ok_full = r["full"] / r["raw"] >= 0.9
        ok_lean = r["lean"] / r["raw"] >= 2.0
        print(f"  {label:<14} full {'met' if ok_full else 'MISSED'}, lean {'met' if ok_lean else 'MISSED'}")


if __name__ == "__main__":
    main()
