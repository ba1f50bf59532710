"""What a trained team does: the share of each action kind and of bits sent, per agent-step, on twin episodes.

    python scripts/action_mix.py RUN_OR_CHECKPOINT [...] [--episodes N]

A run folder is read at the weights its held-out choice named (`selection.json`), as the benchmark scores
it. Used in docs/dial.md to tell the failing DIAL + SAU seeds on paper-large from the good ones.
"""

from __future__ import annotations

import argparse
import collections
from pathlib import Path

import numpy as np

from cagekit.agents import load_team
from cagekit.agents.checkpoint import env_settings, load_meta
from cagekit.agents.snapshots import chosen_weights
from cagekit.scenarios import get_scenario
from cagekit.wrappers import make_env
from cagekit.wrappers.parallel import decode_action


def action_mix(run: Path, episodes: int) -> tuple[Path, float, float, dict[str, float]]:
    """(weights read, mean env return per episode over all reds, bits per agent-step, action kind -> share)."""
    weights = chosen_weights(run)  # the run folder itself when no choice was made
    team = load_team(str(weights))
    settings = env_settings(load_meta(weights))
    scenario = settings.pop("scenario")
    kinds: collections.Counter[str] = collections.Counter()
    bits = steps = 0
    returns = []
    for red in get_scenario(scenario).red_agents:
        env = make_env(scenario, red=red, simulator="twin", **settings)
        for episode in range(episodes):
            obs, _ = env.reset(seed=episode)
            team.end_episode()
            total = 0.0
            while env.agents:
                actions = team.act(obs)
                for name, action in actions.items():
                    defence, bit = decode_action(action) if env.channel else (action, 0)
                    kinds[env.action_label(name, defence).split()[0]] += 1
                    bits += bit
                    steps += 1
                obs, _, _, _, infos = env.step(actions)
                total += next(iter(infos.values()))["env_reward"]
            returns.append(total)
    return weights, float(np.mean(returns)), bits / steps, {k: v / steps for k, v in kinds.most_common()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--episodes", type=int, default=10, help="twin episodes per red agent (default 10)")
    args = parser.parse_args()
    for run in args.runs:
        weights, ret, bit_rate, mix = action_mix(run, args.episodes)
        shares = ", ".join(f"{k} {v:.2f}" for k, v in mix.items())
        print(f"{run} ({weights.name}): return {ret:.1f}/episode, bits {bit_rate:.2f}/agent-step, {shares}")


if __name__ == "__main__":
    main()
