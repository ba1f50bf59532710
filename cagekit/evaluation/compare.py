"""`cagekit compare`: paired differences between scored teams, seed by seed.

A benchmark scores seed `s` of every algorithm with protocol seed `s`, so two teams with the same seed
met the same episode seeds, and the seeds are independent replicates. The difference of their scores
per seed, with a 95% interval over seeds, is then the fair test of "A beats B": it removes what the seed
does to both, which two separate intervals over seeds (the benchmark's table) keep. Teams from several
benchmark folders can be compared when they were scored on the same episodes (same scenario, lengths,
reds, green, detection, simulator and episode count); anything else is refused with the difference named.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

from cagekit.evaluation import benchmark_layout as layout
from cagekit.evaluation.protocol import seed_ci95

#: summary.json parameters that fix which episodes a team met (the team's own settings are left out:
#: message cost, SAU and channel change what it does, not the episodes)
PROTOCOL_FIELDS = ("scenario", "layout", "episode_lengths", "episodes", "reds", "green", "detection", "simulator")

#: how a team scored with its bits forced to 0 (`--mute`, eval-muted/) is named beside the team itself
MUTED_SUFFIX = " (muted)"


@dataclass(frozen=True)
class ScoredSeed:
    """One team's score on one protocol seed, read from an evaluation's summary.json."""

    label: str
    seed: int
    score: float
    bits_per_episode: float
    protocol: tuple[tuple[str, object], ...]
    source: Path

    @classmethod
    def from_summary(cls, label: str, seed: int, summary: dict, source: Path) -> ScoredSeed:
        """From an evaluation's summary.json contents (what `cagekit evaluate` writes into `source`)."""
        params = summary["parameters"]
        return cls(label, seed, float(summary["total"]["score"]), float(summary["bits_per_episode"]),
                   tuple((k, _hashable(params.get(k))) for k in PROTOCOL_FIELDS), source)


@dataclass(frozen=True)
class PairedDifference:
    """`a - b` per seed over the seeds both have: mean and half-width of the 95% interval over seeds."""

    a: str
    b: str
    seeds: tuple[int, ...]
    mean: float
    ci95: float

    @property
    def verdict(self) -> str:
        return verdict(self.a, self.b, self.mean, self.ci95, "one seed: no interval")


def verdict(a: str, b: str, mean: float, ci95: float, no_interval: str) -> str:
    """Of `a - b` (mean, 95% half-width): which team is ahead when the interval excludes 0, "within noise"
    when it does not, `no_interval` when there is none (NaN)."""
    if math.isnan(ci95):
        return no_interval
    if mean - ci95 > 0:
        return f"{a} ahead"
    if mean + ci95 < 0:
        return f"{b} ahead"
    return "within noise"


def load_folder(folder: Path, muted: bool = True) -> list[ScoredSeed]:
    """Every scored team in a benchmark folder (`eval/ALGO-sSEED/summary.json`; with `muted`, also
    `eval-muted/`, labelled `ALGO (muted)`)."""
    kinds = [(layout.EVAL, "")] + ([(layout.EVAL_MUTED, MUTED_SUFFIX)] if muted else [])
    found: list[ScoredSeed] = []
    for sub, suffix in kinds:
        for summary in sorted((folder / sub).glob("*/summary.json")):
            match = layout.RUN_NAME.match(summary.parent.name)
            if match is None:
                continue
            found.append(ScoredSeed.from_summary(match["algo"] + suffix, int(match["seed"]),
                                                 _read_summary(summary), summary.parent))
    if not found:
        raise ValueError(f"{folder} holds no scored teams (expected eval/ALGO-sSEED/summary.json, as "
                         "`cagekit benchmark --out` writes)")
    return found


def _read_summary(file: Path) -> dict:
    """An evaluation's summary.json, with the fields a comparison reads checked: a damaged or foreign file
    is named here rather than surfacing as a KeyError or a JSON message without a file."""
    redo = f"score that team again with `cagekit evaluate`, or move {file.parent} away to compare without it"
    try:
        summary = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{file} is not valid JSON ({exc}); {redo}") from None
    if not isinstance(summary, dict):
        raise ValueError(f"{file} holds a JSON {type(summary).__name__}, not an evaluation summary (an object "
                         f"with parameters, total.score and bits_per_episode); {redo}")
    problems = [f"no {key} object" for key in ("parameters", "total") if not isinstance(summary.get(key), dict)]
    if not problems and not _is_number(summary["total"].get("score")):
        problems.append("no number at total.score")
    if not _is_number(summary.get("bits_per_episode")):
        problems.append("no number at bits_per_episode")
    if problems:
        raise ValueError(f"{file} is not an evaluation summary ({'; '.join(problems)}); {redo}")
    return summary


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def markdown_file(out: str) -> Path:
    """`compare --out` as a file to write: not nowhere (an empty or blank name), not a directory."""
    if not out.strip():
        raise ValueError("--out is empty: give the markdown file to write, such as compare.md (or leave --out out)")
    path = Path(out)
    if path.is_dir():
        raise ValueError(f"--out {path} is a directory: give the markdown file to write, such as "
                         f"{path / 'compare.md'}")
    return path


def refuse_other_kind(path: Path, what: str = "--out", writer: str = "compare") -> Path:
    """`path`, unless it is an existing file of another kind than markdown, which `writer` would replace
    (`--out mine.png`, `reproduce --doc OUT/summary.txt`: a slip, not a wish); checked after the callers'
    sharper refusals. `what` names the option the user gave."""
    if path.exists() and path.suffix.lower() not in (".md", ".markdown"):
        raise ValueError(f"{what} {path} exists and is no markdown file (.md); {writer} writes markdown and would "
                         f"replace it: give a .md path")
    return path


def check_out(out: str, folders: list[Path]) -> Path:
    """Where `compare --out` may write: a file (`markdown_file`), and not over what `cagekit benchmark` wrote
    into a compared folder (its tables, runs and evaluations), which a rerun of hours would be needed to get
    back."""
    path = markdown_file(out)
    target = path.resolve()
    for folder in folders:
        root = folder.resolve()
        own = [root / name for name in layout.FILES]
        if target in own or any(target.is_relative_to(root / sub) for sub in layout.DIRS):
            raise ValueError(f"--out {path} is among what `cagekit benchmark` keeps in {folder} (its "
                             f"{', '.join(layout.FILES)} and {'/, '.join(layout.DIRS)}/ folders); write "
                             f"elsewhere, such as {folder / 'compare.md'}")
    return refuse_other_kind(path)


def _hashable(value: object) -> object:
    return tuple(value) if isinstance(value, list) else value


def load_scores(folders: list[Path], muted: bool = True) -> dict[str, dict[int, ScoredSeed]]:
    """Scores by team label and seed across folders. A label is the algorithm's name, prefixed with its
    folder's name where two folders hold the same algorithm. Teams whose episodes differ are refused."""
    per_folder = [(folder, load_folder(folder, muted)) for folder in folders]
    counts: dict[str, int] = {}
    for _, found in per_folder:
        for label in {scored.label for scored in found}:
            counts[label] = counts.get(label, 0) + 1
    scores: dict[str, dict[int, ScoredSeed]] = {}
    for folder, found in per_folder:
        for scored in found:
            name = scored.label if counts[scored.label] == 1 else f"{folder.name}/{scored.label}"
            if scored.seed in scores.get(name, {}):
                raise ValueError(f"{name} seed {scored.seed} appears twice ({scored.source}); give each folder "
                                 "a distinct name")
            scores.setdefault(name, {})[scored.seed] = scored
    _check_same_episodes(scores)
    return scores


def _check_same_episodes(scores: dict[str, dict[int, ScoredSeed]]) -> None:
    reference: ScoredSeed | None = None
    for team in scores.values():
        for scored in team.values():
            if reference is None:
                reference = scored
                continue
            if scored.protocol != reference.protocol:
                diff = ", ".join(f"{k}: {a!r} vs {b!r}" for (k, a), (_, b) in zip(reference.protocol, scored.protocol,
                                                                                 strict=True) if a != b)
                raise ValueError(f"{scored.source} and {reference.source} were scored on different episodes "
                                 f"({diff}); paired differences need the same protocol")


def paired(scores: dict[str, dict[int, ScoredSeed]], a: str, b: str) -> PairedDifference:
    """Team `a` minus team `b`, seed by seed, over the seeds both were scored on."""
    for name in (a, b):
        if name not in scores:
            raise ValueError(f"no team {name!r}; valid: {', '.join(sorted(scores))}")
    seeds = tuple(sorted(set(scores[a]) & set(scores[b])))
    if not seeds:
        raise ValueError(f"{a} and {b} share no seed ({sorted(scores[a])} vs {sorted(scores[b])})")
    diffs = [scores[a][s].score - scores[b][s].score for s in seeds]
    return PairedDifference(a, b, seeds, sum(diffs) / len(diffs), seed_ci95(diffs))


def compare_all(scores: dict[str, dict[int, ScoredSeed]], baseline: str | None = None) -> list[PairedDifference]:
    """Every team against `baseline`, or every pair (the better mean first) when there is none."""
    order = sorted(scores, key=lambda t: -_mean(scores[t]))
    if baseline is not None:
        if baseline not in scores:
            raise ValueError(f"no team {baseline!r} to compare against; valid: {', '.join(order)}")
        return [paired(scores, team, baseline) for team in order if team != baseline]
    return [paired(scores, a, b) for a, b in combinations(order, 2)]


def _mean(team: dict[int, ScoredSeed]) -> float:
    return sum(s.score for s in team.values()) / len(team)


def to_markdown(scores: dict[str, dict[int, ScoredSeed]], rows: list[PairedDifference]) -> str:
    """The teams (mean score, interval over seeds, bits) and the paired differences, as markdown tables."""
    lines = ["| team | seeds | score | ci95 | bits_per_episode |", "|---|---|---|---|---|"]
    for team in sorted(scores, key=lambda t: -_mean(scores[t])):
        vals = [s.score for s in scores[team].values()]
        ci = seed_ci95(vals)
        bits = sum(s.bits_per_episode for s in scores[team].values()) / len(vals)
        lines.append(f"| {team} | {len(vals)} | {_mean(scores[team]):.2f} | "
                     f"{'-' if math.isnan(ci) else f'{ci:.2f}'} | {bits:.2f} |")
    lines += ["", "| a - b | seeds | mean | ci95 | verdict |", "|---|---|---|---|---|"]
    for r in rows:
        ci_text = "-" if math.isnan(r.ci95) else f"{r.ci95:.2f}"
        lines.append(f"| {r.a} - {r.b} | {len(r.seeds)} | {r.mean:+.2f} | {ci_text} | {r.verdict} |")
    return "\n".join(lines + _missing_seeds_note(scores, rows))


def _missing_seeds_note(scores: dict[str, dict[int, ScoredSeed]], rows: list[PairedDifference]) -> list[str]:
    """A note under the tables when some team lacks a seed others have (a summary.json not written, or a
    folder run with fewer seeds): its mean is over fewer seeds and its pairs over the seeds both teams have,
    which the counts in the tables alone do not say."""
    every = sorted(set().union(*scores.values()))
    lacking = []
    for team, seeds in sorted(scores.items()):
        missing = [s for s in every if s not in seeds]
        if missing:
            source = next(iter(seeds.values())).source  # EVAL/ALGO-sSEED: the missing ones are its siblings
            named = layout.RUN_NAME.match(source.name)
            assert named is not None  # load_folder reads no other folder
            files = ", ".join(str(source.parent / layout.run_name(named["algo"], s) / "summary.json")
                              for s in missing)
            lacking.append(f"{team} lacks seed{'s' * (len(missing) > 1)} {_seed_list(missing)} (no {files})")
    if not lacking:
        return []
    partial = [f"{r.a} - {r.b} on seed{'s' * (len(r.seeds) > 1)} {_seed_list(r.seeds)}" for r in rows
               if list(r.seeds) != every]
    return ["", f"Note: not every team was scored on every seed ({_seed_list(every)}): {'; '.join(lacking)}. "
                f"A team's mean is over the seeds it has, and a difference pairs only the seeds both teams have"
                + (f": {'; '.join(partial)}." if partial else ".")]


def _seed_list(seeds: list[int] | tuple[int, ...]) -> str:
    return ", ".join(str(s) for s in seeds)
