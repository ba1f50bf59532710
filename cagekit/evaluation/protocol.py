"""The scoring protocol: its configuration, the per-episode seeds, and the statistics per combination.

CAGE-2's protocol: for each episode length and each red agent, a fresh environment and N episodes; each
episode's score is the sum of the environment's own rewards over exactly `episode_length` steps; per
combination the mean and standard deviation; the total score is the sum of the combination means.
Every episode's seed is derived from (seed, length, red, episode index) alone, so an episode can be
computed anywhere, in any order, and always gives the same result.
"""

from __future__ import annotations

import math
import numbers
import statistics
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from cagekit import __version__

#: the most episodes per combination an evaluation takes: some 25 CPU-hours of 100-step episodes per combination,
#: and a journal and reports of as many lines
MAX_EPISODES = 100_000

#: configuration fields that decide the results: a journal is resumed only when all of them agree
IDENTITY_FIELDS = ("cagekit_version", "scenario", "layout", "team", "episodes", "lengths", "reds", "seed",
                   "message_cost", "sau", "channel", "green", "simulator", "detection", "view", "scenario_spec")
#: what a journal written before a field existed meant by it
IDENTITY_DEFAULTS: dict[str, Any] = {"view": "own", "scenario_spec": None}


@dataclass(frozen=True)
class EvalConfig:
    scenario: str
    layout: str | None
    team: dict[str, Any]  # the team source's identity (see `cagekit.evaluation.sources`)
    episodes: int
    lengths: tuple[int, ...]
    reds: tuple[str, ...]
    seed: int
    message_cost: float
    sau: bool
    channel: bool
    green: str | None = None
    #: the cagekit that ran it (a journal of another version is not resumed); "" in journals that lack it
    cagekit_version: str = __version__
    #: "engine" (CybORG, the default and what scores are reported on) or "twin" (quick looks)
    simulator: str = "engine"
    #: probability that a stealthy red step raises an alert (None: the scenario's)
    detection: float | None = None
    #: each agent's observation: "own" or "team" (teammates' rows too; the team's checkpoint decides)
    view: str = "own"
    #: a registered scenario's spec (`cagekit.scenarios.recorded_spec`; None for a built-in one), filled in when
    #: not given: a journal then names the network it was scored on, and worker processes register it
    scenario_spec: dict[str, Any] | None = None
    # labels only: they do not change the results
    author: str = ""
    team_name: str = ""
    technique: str = ""

    def __post_init__(self) -> None:
        if any(isinstance(v, str) or not isinstance(v, Iterable) for v in (self.lengths, self.reds)):
            raise ValueError(f"lengths and reds are sequences (a tuple of ints, a tuple of names), got "
                             f"{self.lengths!r} and {self.reds!r}")
        # numpy's integers and floats too (as make_env takes them), stored as Python's for the journal's JSON
        object.__setattr__(self, "episodes", _integer("episodes", self.episodes))
        object.__setattr__(self, "seed", _integer("seed", self.seed))
        object.__setattr__(self, "lengths", tuple(_integer("each episode length", n) for n in self.lengths))
        object.__setattr__(self, "message_cost", _real("message_cost", self.message_cost))
        if self.detection is not None:
            object.__setattr__(self, "detection", _real("detection", self.detection, "or None (the scenario's)"))
        if self.episodes < 1:
            raise ValueError(f"episodes must be >= 1, got {self.episodes}")
        if self.episodes > MAX_EPISODES:  # 10**8 (a slip of the keys) took 5 GB in 12 s listing its tasks, silently
            raise ValueError(f"episodes must be at most {MAX_EPISODES:,} per combination (each is journaled and "
                             f"reported; 100 is the default), got {self.episodes:,}")
        if not self.lengths or any(n < 1 for n in self.lengths):
            raise ValueError(f"episode lengths must be positive integers, got {list(self.lengths)}")
        if not self.reds or not all(isinstance(r, str) for r in self.reds):
            raise ValueError(f"reds must name at least one red agent, got {self.reds!r}")
        for what, values in (("red agent", self.reds), ("episode length", self.lengths)):
            repeated = sorted({v for v in values if list(values).count(v) > 1})
            if repeated:
                raise ValueError(f"{what}(s) {repeated} given more than once: each combination is scored once")
        if self.detection is not None and not 0.0 <= self.detection <= 1.0:
            raise ValueError(f"detection is a probability in [0, 1], got {self.detection}")
        if not (math.isfinite(self.message_cost) and self.message_cost >= 0):
            raise ValueError(f"message cost must be a finite number >= 0, got {self.message_cost}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if self.simulator not in ("engine", "twin"):
            raise ValueError(f"simulator must be 'engine' or 'twin', got {self.simulator!r}")
        if self.scenario_spec is None:
            from cagekit.scenarios import recorded_spec

            object.__setattr__(self, "scenario_spec", recorded_spec(self.scenario))
        else:
            self.adopt_spec()

    def adopt_spec(self) -> None:
        """Register the scenario spec this configuration carries, in this process (a worker process too): a
        ValueError where it is not the spec registered here under its name, or is not the scenario's."""
        if self.scenario_spec is None:
            return
        from cagekit.scenarios import register_recorded

        register_recorded(self.scenario_spec, "the evaluation configuration", self.scenario)

    def combinations(self) -> list[tuple[int, str]]:
        """(episode length, red agent) in reporting order: lengths outer, reds inner (as CAGE-2)."""
        return [(length, red) for length in self.lengths for red in self.reds]

    def tasks(self) -> list[tuple[int, str, int]]:
        """Every episode of the protocol as (length, red, index)."""
        return [(length, red, i) for length, red in self.combinations() for i in range(self.episodes)]

    def identity(self) -> dict[str, Any]:
        data = self.to_json()
        return {k: data[k] for k in IDENTITY_FIELDS}

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["lengths"] = list(self.lengths)
        data["reds"] = list(self.reds)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EvalConfig:
        data = dict(data)
        data.setdefault("simulator", "engine")
        data.setdefault("detection", None)
        data.setdefault("view", "own")
        data.setdefault("cagekit_version", "")  # a journal that does not say: unknown, not this version
        data.setdefault("scenario_spec", None)
        data["lengths"] = tuple(int(n) for n in data["lengths"])
        data["reds"] = tuple(data["reds"])
        return cls(**data)


def _integer(name: str, value: Any) -> int:
    """`value` as Python's int: numpy's integers too (not bool, not a whole float: a field of another meaning)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    return int(value)


def _real(name: str, value: Any, alternative: str = "") -> float:
    """`value` as given when it is Python's int or float (the journal keeps it as written), else as a float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number{' ' + alternative if alternative else ''}, got "
                         f"{type(value).__name__} {value!r}")
    if type(value) is int or type(value) is float:  # not a subclass (numpy's float64, a bool): kept as written
        return value
    return float(value)


def episode_seed(seed: int, length: int, red: str, index: int) -> int:
    """The environment seed of one episode, from (seed, length, red, index) only."""
    entropy = [int(seed), int(length), zlib.crc32(red.encode("utf-8")), int(index)]
    return int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint32)[0])


def combination_seed(seed: int, length: int, red: str) -> int:
    """The seed a combination's fresh environment is built with (each episode then reseeds it)."""
    return episode_seed(seed, length, red, 2**31 - 1)


# ---------------------------------------------------------------------------------------------
# Student's t quantile without scipy: the regularized incomplete beta by its continued fraction.

def _betacf(a: float, b: float, x: float) -> float:
    tiny, eps = 1e-300, 3e-16
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 400):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < eps:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The p-quantile of Student's t with `df` degrees of freedom (normal when df is infinite)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p}")
    if math.isinf(df):
        return statistics.NormalDist().inv_cdf(p)
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


def seed_ci95(values: Sequence[float]) -> float:
    """Half-width of the 95% Student-t interval of the mean of `values`, e.g. one score per seed (NaN for
    fewer than two)."""
    n = len(values)
    if n < 2:
        return math.nan
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return t_quantile(0.975, n - 1) * sd / math.sqrt(n)


# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CombinationStats:
    length: int
    red: str
    n: int
    mean: float
    stdev: float  # sample standard deviation (as CAGE-2's `statistics.stdev`); 0 for one episode
    ci95: float  # half-width of the 95% confidence interval of the mean (Student's t)
    bits_per_episode: float
    channel_cost_per_episode: float
    invalid_per_episode: float

    @property
    def sem(self) -> float:
        return self.stdev / math.sqrt(self.n) if self.n else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"steps": self.length, "adversary": self.red, "episodes": self.n, "mean": self.mean,
                "stdev": self.stdev, "ci95": self.ci95, "ci95_low": self.mean - self.ci95,
                "ci95_high": self.mean + self.ci95, "bits_per_episode": self.bits_per_episode,
                "channel_cost_per_episode": self.channel_cost_per_episode,
                "invalid_actions_per_episode": self.invalid_per_episode}


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values) if values else float("nan")


def combination_stats(length: int, red: str, rewards: Sequence[float], bits: Sequence[float],
                      costs: Sequence[float], invalid: Sequence[float] = ()) -> CombinationStats:
    n = len(rewards)
    mean = _mean(rewards)
    stdev = statistics.stdev(rewards) if n > 1 else 0.0
    ci = t_quantile(0.975, n - 1) * stdev / math.sqrt(n) if n > 1 else 0.0
    return CombinationStats(length=length, red=red, n=n, mean=mean, stdev=stdev, ci95=ci,
                            bits_per_episode=_mean(bits), channel_cost_per_episode=_mean(costs),
                            invalid_per_episode=_mean(invalid) if invalid else 0.0)


@dataclass(frozen=True)
class TotalScore:
    score: float  # the sum of the combination means
    stderr: float  # sqrt of the summed variances of the means
    ci95: float  # half-width (t with Welch-Satterthwaite degrees of freedom)
    df: float
    combinations: list[CombinationStats] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"score": self.score, "stderr": self.stderr, "ci95": self.ci95,
                "ci95_low": self.score - self.ci95, "ci95_high": self.score + self.ci95,
                "df": None if math.isinf(self.df) else self.df}


def total_score(stats: Iterable[CombinationStats]) -> TotalScore:
    """Sum of the combination means; its variance is the sum of the variances of the means."""
    stats = list(stats)
    score = math.fsum(s.mean for s in stats)
    variances = [s.sem ** 2 for s in stats]
    var = math.fsum(variances)
    stderr = math.sqrt(var)
    denominator = math.fsum(v * v / (s.n - 1) for v, s in zip(variances, stats, strict=True) if s.n > 1 and v > 0)
    df = var * var / denominator if denominator > 0 else math.inf
    ci = t_quantile(0.975, df) * stderr if stderr > 0 else 0.0
    return TotalScore(score=score, stderr=stderr, ci95=ci, df=df, combinations=stats)
