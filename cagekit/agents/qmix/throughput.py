"""The speed of QMix's learner alone: env steps per second of one gradient update on synthetic episodes."""

from __future__ import annotations

import time

import numpy as np
import torch

from cagekit.agents.qmix.config import QmixConfig
from cagekit.agents.qmix.learner import QmixLearner


def qmix_update_throughput(n_agents_scenario: str = "paper-small", batch_episodes: int = 32,
                           episode_length: int = 30, repeats: int = 5) -> float:
    """Env steps per second of one QMix gradient update on a batch of `batch_episodes` x `episode_length`
    (the learner alone: the buffer is filled with synthetic episodes of the scenario's shapes)."""
    learner = QmixLearner(n_agents_scenario, seed=0, config=QmixConfig(buffer_episodes=batch_episodes,
                                                                        batch_episodes=batch_episodes),
                          episode_length=episode_length)
    d, T = learner.dims, learner.T
    g = torch.Generator().manual_seed(0)
    for _ in range(batch_episodes):
        avail = (torch.rand(T + 1, d.n_agents, d.act_max, generator=g) < 0.5).to(torch.int8)
        avail[..., 0] = 1
        learner.buffer.add({
            "obs": (torch.rand(T + 1, d.n_agents, d.obs_max, generator=g) < 0.3).to(torch.int8),
            "avail": avail,
            "state": (torch.rand(T + 1, d.state_dim, generator=g) < 0.3).to(torch.int8),
            "actions": torch.zeros(T, d.n_agents, dtype=torch.long),
            "reward": -torch.rand(T, generator=g), "terminated": torch.zeros(T), "filled": torch.ones(T)})
    rng = np.random.default_rng(0)
    learner.train_step(learner.buffer.sample(batch_episodes, rng))  # warm-up
    times = []
    for _ in range(repeats):
        batch = learner.buffer.sample(batch_episodes, rng)
        start = time.perf_counter()
        learner.train_step(batch)
        times.append(time.perf_counter() - start)
    return batch_episodes * T / float(np.median(times))
