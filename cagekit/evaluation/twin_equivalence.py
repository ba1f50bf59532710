"""Statistical equivalence of the twin and the engine-backed environment.

`rollout_engine` and `rollout_twin` run the same blue team (a heuristic from `cagekit.agents.make_team`, or
the fixed action script `script_action`) for N episodes and return a `Rollouts` record: per-episode
returns, per-step team rewards, every observation bit at every step, and whether red has held root on
each host by each step. `compare` tests them with Bonferroni-corrected two-sample tests.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cagekit.agents import make_team
from cagekit.twin.batch import TwinBatch


@dataclass
class Rollouts:
    returns: np.ndarray  # (N,)
    rewards: np.ndarray  # (N, T)
    bits: np.ndarray  # (N, T, total observation bits over agents)
    root: np.ndarray  # (N, T, H) red has had root on host h by step t
    hosts: tuple[str, ...] = ()
    bit_names: tuple[str, ...] = ()


def script_action(t: int, agent_index: int, n_defence: int, channel: bool) -> int:
    """A fixed blue script: cycles through every defence action (and both message bits)."""
    defence = (5 * t + 3 * agent_index + 1) % n_defence
    bit = (t + agent_index) % 2 if channel else 0
    return 2 * defence + bit if channel else defence


def _bit_names(env: Any) -> tuple[str, ...]:
    """The observation bits' names, agent by agent (the engine's env and the twin's alike)."""
    names = []
    for a in env.possible_agents:
        spec = env.engine.catalogs[a].agent
        for h in spec.hosts:
            names += [f"{a}:{h}:{k}" for k in ("act0", "act1", "comp0", "comp1")]
        names += [f"{a}:block:{s}" for s in spec.block_subnets]
        if env.channel:
            names += [f"{a}:recv{i}" for i in range(len(env.possible_agents) - 1)]
    return tuple(names)


def rollout_engine(scenario: str, team: str, episodes: int, *, seed: int = 0, episode_length: int = 30,
                   **env_kwargs: Any) -> Rollouts:
    """N episodes of `cagekit.make_env` with a heuristic team (`team`) or the script (`team="script"`)."""
    from cagekit.wrappers import make_env

    env = make_env(scenario, seed=seed, episode_length=episode_length, **env_kwargs)
    blue = None if team == "script" else make_team(team, env, seed=seed + 1)
    hosts = env.spec.host_names
    names = _bit_names(env)
    T, H = episode_length, len(hosts)
    returns = np.zeros(episodes)
    rewards = np.zeros((episodes, T))
    bits = np.zeros((episodes, T, len(names)), dtype=np.uint8)
    root = np.zeros((episodes, T, H), dtype=bool)
    first = env.possible_agents[0]
    for ep in range(episodes):
        obs, _ = env.reset()
        if blue is not None:
            blue.end_episode()
        ever = np.zeros(H, dtype=bool)
        for t in range(T):
            if blue is None:
                actions = {a: script_action(t, i, env.n_actions(a), env.channel) for i, a in enumerate(env.agents)}
            else:
                actions = blue.act(obs)
            obs, rew, _, _, _ = env.step(actions)
            rewards[ep, t] = rew[first]
            bits[ep, t] = np.concatenate([obs[a]["observation"] for a in env.possible_agents])
            access = env.engine.red_access()
            ever |= np.array([access[h] == "root" for h in hosts])
            root[ep, t] = ever
        returns[ep] = rewards[ep].sum()
    return Rollouts(returns, rewards, bits, root, hosts, names)


def rollout_twin(scenario: str, team: str, episodes: int, *, seed: int = 0, episode_length: int = 30,
                 batch_size: int | None = None, **env_kwargs: Any) -> Rollouts:
    """The same on the twin: batches of `TwinBatch`, the team acting on each environment's observations."""
    from cagekit.wrappers.twin_env import make_twin_env

    proto = make_twin_env(scenario, seed=seed, episode_length=episode_length, **env_kwargs)
    blue = None if team == "script" else make_team(team, proto, seed=seed + 1)
    agents = proto.possible_agents
    hosts = proto.spec.host_names
    names = _bit_names(proto)
    bsize = episodes if batch_size is None else batch_size
    kwargs = {k: v for k, v in env_kwargs.items() if k != "lean"}
    T, H = episode_length, len(hosts)
    returns, rewards, bits, root = [], [], [], []
    done_eps = 0
    rng = np.random.SeedSequence(seed)
    while done_eps < episodes:
        B = min(bsize, episodes - done_eps)
        batch = TwinBatch(scenario, B, int(rng.spawn(1)[0].generate_state(1)[0]), episode_length=episode_length,
                          **kwargs)
        obs = batch.reset()
        r = np.zeros((B, T))
        bt = np.zeros((B, T, len(names)), dtype=np.uint8)
        rt = np.zeros((B, T, H), dtype=bool)
        sizes, nacts = batch.obs_size, batch.n_actions
        for t in range(T):
            if blue is None:
                acts = np.array([[script_action(t, i, int(batch.model.n_defence[i]), batch.channel)
                                  for i in range(batch.A)]] * B, dtype=np.int64)
            else:
                acts = np.zeros((B, batch.A), dtype=np.int64)
                for b in range(B):
                    per = {a: {"observation": obs["observation"][b, i, :sizes[i]],
                               "action_mask": obs["action_mask"][b, i, :nacts[i]]} for i, a in enumerate(agents)}
                    chosen = blue.act(per)
                    acts[b] = [chosen[a] for a in agents]
            obs, rew, _, _, _ = batch.step(acts)
            r[:, t] = rew
            bt[:, t] = np.concatenate([obs["observation"][:, i, :sizes[i]] for i in range(batch.A)], axis=1)
            rt[:, t] = batch.ever_root
        returns.append(r.sum(axis=1))
        rewards.append(r)
        bits.append(bt)
        root.append(rt)
        done_eps += B
    return Rollouts(np.concatenate(returns), np.concatenate(rewards), np.concatenate(bits), np.concatenate(root),
                    hosts, names)


# --- statistics ---------------------------------------------------------------------------------------------

def ks_2samp(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov statistic and its asymptotic p-value (conservative with ties)."""
    x, y = np.sort(np.asarray(x, float)), np.sort(np.asarray(y, float))
    grid = np.concatenate([x, y])
    cdf_x = np.searchsorted(x, grid, side="right") / len(x)
    cdf_y = np.searchsorted(y, grid, side="right") / len(y)
    d = float(np.max(np.abs(cdf_x - cdf_y)))
    n = len(x) * len(y) / (len(x) + len(y))
    lam = (math.sqrt(n) + 0.12 + 0.11 / math.sqrt(n)) * d
    if lam < 1e-3:
        return d, 1.0
    p = 2.0 * sum((-1) ** (k - 1) * math.exp(-2.0 * k * k * lam * lam) for k in range(1, 101))
    return d, float(min(1.0, max(0.0, p)))


def _z_critical(alpha: float) -> float:
    """Two-sided normal critical value for `alpha` (bisection on erfc; no scipy needed)."""
    lo, hi = 0.0, 40.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if math.erfc(mid / math.sqrt(2)) > alpha:
            lo = mid
        else:
            hi = mid
    return hi


@dataclass
class Comparison:
    n_tests: int
    alpha: float
    z: float
    failures: list[str] = field(default_factory=list)
    ks_p: float = 1.0
    mean_engine: float = 0.0
    mean_twin: float = 0.0
    se: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        head = (f"returns engine {self.mean_engine:.3f} twin {self.mean_twin:.3f} (se {self.se:.3f}), "
                f"KS p={self.ks_p:.3g}; {self.n_tests} tests at alpha {self.alpha:.2g}/test (z={self.z:.2f})")
        return head + ("" if self.ok else "\n  " + "\n  ".join(self.failures[:30]))


def _proportion_failures(a: np.ndarray, b: np.ndarray, z: float, label: Callable[[tuple[Any, ...]], str],
                         out: list[str]) -> None:
    """Two-proportion z-tests on every column of boolean arrays a (N1, ...) and b (N2, ...)."""
    p1, p2 = a.mean(axis=0), b.mean(axis=0)
    n1, n2 = a.shape[0], b.shape[0]
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    se = np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    diff = np.abs(p1 - p2)
    # a rate the one side never shows while the other does often enough to matter fails through se > 0
    bad = np.where(se > 0, diff > z * np.maximum(se, 1e-12), diff > 0)
    for idx in zip(*np.nonzero(bad), strict=True):
        out.append(f"{label(idx)}: engine {p1[idx]:.4f} twin {p2[idx]:.4f} (z={diff[idx] / max(se[idx], 1e-12):.1f})")


def compare(engine: Rollouts, twin: Rollouts, family_alpha: float = 0.01) -> Comparison:
    """KS of the returns and every per-step test (mean reward per step, every observation bit per step,
    red's root on every host by every step) at the Bonferroni level `family_alpha / n_tests`; the mean
    return within 3 standard errors."""
    T = engine.rewards.shape[1]
    n_tests = 2 + T + engine.bits.shape[1] * engine.bits.shape[2] + engine.root.shape[1] * engine.root.shape[2]
    alpha = family_alpha / n_tests
    z = _z_critical(alpha)
    out = Comparison(n_tests=n_tests, alpha=alpha, z=z)
    d, p = ks_2samp(engine.returns, twin.returns)
    out.ks_p = p
    if p < alpha:
        out.failures.append(f"returns: KS D={d:.3f} p={p:.2g}")
    m1, m2 = engine.returns.mean(), twin.returns.mean()
    se = math.sqrt(engine.returns.var(ddof=1) / len(engine.returns) + twin.returns.var(ddof=1) / len(twin.returns))
    out.mean_engine, out.mean_twin, out.se = float(m1), float(m2), se
    if abs(m1 - m2) > 3.0 * max(se, 1e-9):  # one test per pair: 3 standard errors (alpha 0.0027)
        out.failures.append(f"returns: mean engine {m1:.3f} twin {m2:.3f} differ by more than 3 se ({se:.3f})")
    r1, r2 = engine.rewards, twin.rewards
    se_t = np.sqrt(r1.var(axis=0, ddof=1) / len(r1) + r2.var(axis=0, ddof=1) / len(r2))
    diff_t = np.abs(r1.mean(axis=0) - r2.mean(axis=0))
    for t in np.nonzero(diff_t > z * np.maximum(se_t, 1e-9) + 1e-9)[0]:
        out.failures.append(f"reward at step {t}: engine {r1[:, t].mean():.4f} twin {r2[:, t].mean():.4f} "
                            f"(se {se_t[t]:.4f})")
    _proportion_failures(engine.bits.astype(bool), twin.bits.astype(bool), z,
                         lambda i: f"bit {engine.bit_names[i[1]]} at step {i[0]}", out.failures)
    _proportion_failures(engine.root, twin.root, z,
                         lambda i: f"root on {engine.hosts[i[1]]} by step {i[0]}", out.failures)
    return out
