"""Env-steps/s of the numpy twin at B = 1, 64, 1024 against the engine-backed environment (lean path).

Both run the same scenario with random valid blue actions. One environment step = one step of one
environment (a batch of B counts B). Run: `python benchmarks/twin_throughput.py [--scenario paper-large]`.
Single-core figures: the script pins BLAS/OpenMP pools to one thread before numpy loads.
"""

from __future__ import annotations

import argparse
import os
import time

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402


def engine_rate(scenario: str, red: str | None, steps: int, seed: int = 0) -> float:
    from cagekit.agents import make_team
    from cagekit.wrappers import make_env

    env = make_env(scenario, red=red, seed=seed, lean=True)
    team = make_team("random", env, seed=seed)
    obs, _ = env.reset()
    for _ in range(30):  # warm-up: imports, caches
        if not env.agents:
            obs, _ = env.reset()
        obs = env.step(team.act(obs))[0]
    done = 0
    start = time.perf_counter()
    while done < steps:
        if not env.agents:
            team.end_episode()
            obs, _ = env.reset()
        obs = env.step(team.act(obs))[0]
        done += 1
    return done / (time.perf_counter() - start)


def twin_rate(scenario: str, red: str | None, batch: int, min_steps: int, seed: int = 0) -> float:
    from cagekit.twin import TwinBatch

    env = TwinBatch(scenario, batch, seed, red=red)
    rng = np.random.default_rng(seed)
    obs = env.reset()
    t = 0
    start = None
    done = 0
    while done < min_steps or start is None:
        if t == 5 and start is None:  # warm-up
            start = time.perf_counter()
            done = 0
        mask = obs["action_mask"]
        actions = np.argmax(rng.random(mask.shape) * mask, axis=2)  # uniform over the unmasked actions
        obs, _, _, dn, _ = env.step(actions)
        t += 1
        done += batch
        if dn[0]:
            obs = env.reset()
    return done / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="paper-small", choices=["paper-small", "paper-large"])
    parser.add_argument("--red", default=None, help="red behaviour (default: the scenario's)")
    parser.add_argument("--engine-steps", type=int, default=1500)
    parser.add_argument("--twin-steps", type=int, default=200_000, help="environment steps per batch size")
    args = parser.parse_args()
    eng = engine_rate(args.scenario, args.red, args.engine_steps)
    print(f"{args.scenario}: engine (lean) {eng:,.0f} env-steps/s")
    for b in (1, 64, 1024):
        rate = twin_rate(args.scenario, args.red, b, min(args.twin_steps, max(3000, args.twin_steps // 1024 * b)))
        print(f"  twin B={b:5d}: {rate:12,.0f} env-steps/s  = {rate / eng:8.1f}x the engine")


if __name__ == "__main__":
    main()
