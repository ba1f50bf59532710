"""`cagekit compare` on evaluation folders: two trained teams, paired episode by episode.

`cagekit compare` on benchmark folders pairs *algorithms* seed by seed (each seed a separately trained
team). A user with two teams of their own (`cagekit train` runs, submissions) scored by `evaluation.py`
with the same protocol asks another question: is this team better than that one? Evaluations with the
same protocol play the same episode seeds, so the per-episode differences remove what each episode's
draw does to both teams. The difference of total scores is the sum over (length, red) of the mean
difference; its interval is Student's t with Welch-Satterthwaite degrees of freedom, as the total score's
own (`protocol.total_score`). It says nothing about the algorithms that trained the teams.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from itertools import combinations
from pathlib import Path

from cagekit.evaluation.compare import markdown_file, refuse_other_kind, verdict
from cagekit.evaluation.episode import EpisodeResult
from cagekit.evaluation.journal import JOURNAL, read_journal
from cagekit.evaluation.protocol import EvalConfig, TotalScore, combination_stats, total_score
from cagekit.evaluation.results import FILES, Report, build_report
from cagekit.scenarios import get_scenario

#: EvalConfig fields that fix which episodes a team met (the team's own settings are left out: message
#: cost, SAU and channel change what it does, not the episodes)
EPISODE_FIELDS = ("scenario", "layout", "lengths", "reds", "episodes", "seed", "green", "detection", "simulator")


@dataclass(frozen=True)
class ScoredEvaluation:
    """One evaluation folder's team: its label, configuration and every episode of its protocol."""

    label: str
    folder: Path
    config: EvalConfig
    episodes: dict[tuple[int, str, int], EpisodeResult]

    @cached_property
    def report(self) -> Report:
        """The evaluation's report from its episodes, built once (sorting and printing read it repeatedly)."""
        return build_report(self.config, self.episodes)

    @property
    def total(self) -> TotalScore:
        return self.report.total

    @property
    def bits_per_episode(self) -> float:
        return self.report.bits_per_episode


@dataclass(frozen=True)
class EpisodePairedDifference:
    """`a - b` in total score over the episodes both played, with its 95% interval."""

    a: str
    b: str
    episodes: int
    mean: float
    ci95: float

    @property
    def verdict(self) -> str:
        return verdict(self.a, self.b, self.mean, self.ci95, "one episode each: no interval")


def is_evaluation_folder(folder: Path) -> bool:
    return (folder / JOURNAL).is_file()


def load_evaluation(folder: Path, label: str) -> ScoredEvaluation:
    """A finished evaluation; an unfinished one, or one whose journal is damaged, is refused (its score would be
    over fewer episodes)."""
    config, episodes, damaged = read_journal(folder)
    missing = [task for task in config.tasks() if task not in episodes]
    read, total = len(config.tasks()) - len(missing), len(config.tasks())
    if missing and damaged is not None:
        raise ValueError(f"{folder / JOURNAL} is damaged at line {damaged}: only the {read} of {total} episodes "
                         f"before it can be read; rerun its evaluation to repair it (it plays the episodes from that "
                         f"line on again, with the same results), then compare")
    if missing:
        raise ValueError(f"{folder} is an unfinished evaluation ({read} of {total} episodes): rerun its evaluation "
                         f"to finish it, then compare")
    return ScoredEvaluation(label, folder, config, {task: episodes[task] for task in config.tasks()})


def load_evaluations(folders: list[Path]) -> list[ScoredEvaluation]:
    """Each folder's team, labelled by the folder's name (its path where two names are the same); teams that
    did not play the same episodes are refused with the difference named."""
    names = [_name(folder) for folder in folders]
    if len(set(map(Path.resolve, folders))) < len(folders):
        raise ValueError(f"a folder is given twice: {', '.join(map(str, folders))}")
    evaluations = [load_evaluation(folder, name if names.count(name) == 1 else str(folder))
                   for folder, name in zip(folders, names, strict=True)]
    first = evaluations[0]
    for other in evaluations[1:]:
        mine, theirs = _episode_fields(first.config), _episode_fields(other.config)
        diff = [f"{key}: {mine[key]!r} vs {theirs[key]!r}" for key in EPISODE_FIELDS if mine[key] != theirs[key]]
        if diff:
            # a trained team brings its scenario and layout: no option makes two such teams meet the same episodes
            games = any(mine[k] != theirs[k] for k in ("scenario", "layout"))
            raise ValueError(f"{first.folder} and {other.folder} were scored on different episodes "
                             f"({'; '.join(diff)}); episode pairs need the same protocol (score both with the same "
                             f"evaluation.py options" + ("; teams trained for another scenario or layout play "
                                                        "another game and cannot be paired)" if games else ")"))
        seeds = [task for task, e in first.episodes.items() if other.episodes[task].seed != e.seed]
        if seeds:  # the same protocol gives the same seeds; a journal of another cagekit version may not
            raise ValueError(f"{first.folder} and {other.folder} played other environment seeds for "
                             f"{len(seeds)} episodes (e.g. {seeds[0]}): they were not the same episodes")
    return evaluations


def _name(folder: Path) -> str:
    """A folder's label: its name, that of the folder it stands for when given as '.' or '..' (no name)."""
    return folder.name if folder.name not in ("", "..") else folder.resolve().name


def _episode_fields(config: EvalConfig) -> dict[str, object]:
    """What fixes the episodes, the layout and detection resolved (a heuristic's evaluation records no layout,
    one without --detection no probability: the scenario's), the lengths and reds as sets (each episode's seed
    is its own, whatever order they were given in)."""
    fields = {key: getattr(config, key) for key in EPISODE_FIELDS}
    spec = get_scenario(config.scenario)
    fields["layout"] = config.layout or spec.default_layout
    fields["detection"] = spec.setting("detection", config.detection)
    fields["lengths"], fields["reds"] = sorted(config.lengths), sorted(config.reds)
    return fields


def paired_episodes(a: ScoredEvaluation, b: ScoredEvaluation) -> EpisodePairedDifference:
    """Team `a` minus team `b` in total score, from their per-episode differences."""
    stats = []
    for length, red in a.config.combinations():
        tasks = [task for task in a.config.tasks() if task[:2] == (length, red)]
        diffs = [a.episodes[t].reward - b.episodes[t].reward for t in tasks]
        stats.append(combination_stats(length, red, diffs, [], []))
    total = total_score(stats)
    # one episode per combination gives no spread to estimate: its interval is unknown, not zero
    ci95 = total.ci95 if a.config.episodes > 1 else math.nan
    return EpisodePairedDifference(a.label, b.label, len(a.episodes), total.score, ci95)


def compare_evaluations(evaluations: list[ScoredEvaluation],
                        baseline: str | None = None) -> list[EpisodePairedDifference]:
    """Every team against `baseline`, or every pair (the better score first) when there is none."""
    order = sorted(evaluations, key=lambda e: -e.total.score)
    if baseline is not None:
        base = [e for e in evaluations if e.label == baseline]
        if not base:
            raise ValueError(f"no team {baseline!r} to compare against; valid: {', '.join(e.label for e in order)}")
        return [paired_episodes(e, base[0]) for e in order if e is not base[0]]
    return [paired_episodes(a, b) for a, b in combinations(order, 2)]


def to_markdown(evaluations: list[ScoredEvaluation], rows: list[EpisodePairedDifference]) -> str:
    """The teams (total score and its interval over episodes, bits) and the paired differences."""
    lines = ["| team | folder | score | ci95 | bits_per_episode |", "|---|---|---|---|---|"]
    for e in sorted(evaluations, key=lambda e: -e.total.score):
        ci = f"{e.total.ci95:.2f}" if e.config.episodes > 1 else "-"
        lines.append(f"| {e.label} | {e.folder} | {e.total.score:.2f} | {ci} | {e.bits_per_episode:.2f} |")
    lines += ["", "| a - b | episodes | mean | ci95 | verdict |", "|---|---|---|---|---|"]
    lines += [f"| {r.a} - {r.b} | {r.episodes} | {r.mean:+.2f} | {'-' if math.isnan(r.ci95) else f'{r.ci95:.2f}'} | "
              f"{r.verdict} |" for r in rows]
    c = evaluations[0].config
    lines += ["", f"Paired episode by episode: {c.scenario}, lengths {', '.join(map(str, c.lengths))}, reds "
                  f"{', '.join(c.reds)}, {c.episodes} episodes each, protocol seed {c.seed}. This compares these "
                  "teams, not the algorithms that trained them (for those, benchmark several seeds)."]
    return "\n".join(lines)


def check_out(out: str, folders: list[Path]) -> Path:
    """Where `compare --out` may write: a file (`markdown_file`), and not over an evaluation's own reports or
    journal."""
    path = markdown_file(out)
    for folder in folders:
        if path.resolve() in [(folder / name).resolve() for name in (*FILES, JOURNAL)]:
            raise ValueError(f"--out {path} is one of the evaluation's own files in {folder} "
                             f"({', '.join((*FILES, JOURNAL))}); write elsewhere, such as {folder / 'compare.md'}")
    return refuse_other_kind(path)
