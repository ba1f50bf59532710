"""What `cagekit reproduce` covers and with which numbers: the learners, baselines and networks it trains and
scores, the tested DIAL configuration it uses by default, and StudyPlan, which refuses bad numbers, configs and
paths before any training."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cagekit.evaluation.compare import refuse_other_kind

LEARNED = ("dial-sau", "dial", "nocomm", "qmix", "maskable-ppo")
#: the decentralised learners whose agents talk: their channel is priced by muting it
TALKERS = ("dial-sau", "dial")
BASELINES = ("react", "sleep")
NETWORKS = ("paper-small", "paper-large")


#: the tested short-budget DIAL configuration (docs/dial.md); the paper's defaults need ~19M steps
FAST_DIAL = Path(__file__).resolve().parents[2] / "configs" / "dial-sau-fast.yaml"


def default_configs() -> dict[str, str]:
    if not FAST_DIAL.exists():
        return {}
    return {algo: str(FAST_DIAL) for algo in ("dial-sau", "dial", "nocomm")}


@dataclass
class StudyPlan:
    out: Path
    doc: Path
    seeds: int = 5
    steps: dict[str, int] = field(default_factory=lambda: {"paper-small": 60_000, "paper-large": 60_000})
    episodes: int = 100
    costs: tuple[float, ...] = (0.0, 0.1, 0.5, 2.0)
    contrast_detection: float = 0.5
    jobs: int = 2
    workers: int = 2
    configs: dict[str, str] = field(default_factory=default_configs)
    progress: bool = True
    train_red: str | None = "all"  # learners train against every red agent the evaluation scores
    snapshots: int = 5  # every learner keeps its policy at each fifth of the run ...
    select_episodes: int = 20  # ... and the best on 20 held-out twin episodes per red is scored
    quick_run: bool = False  # made by `quick` (the document says so, and names the command)

    def __post_init__(self) -> None:
        """Refuse bad numbers, configs and paths before hours of training, not after."""
        from cagekit.agents.config_file import load_mapping

        for what, value, least in (("seeds", self.seeds, 1), ("episodes", self.episodes, 1), ("jobs", self.jobs, 1),
                                   ("workers", self.workers, 1), ("snapshots", self.snapshots, 0),
                                   ("select_episodes", self.select_episodes, 0),
                                   *((f"steps on {net}", n, 1) for net, n in self.steps.items())):
            if value < least:
                raise ValueError(f"{what} must be >= {least}, got {value}")
        untrained = sorted(a for a in self.configs if a not in LEARNED)
        if untrained:
            raise ValueError(f"--config for {untrained}, which the study does not train; it trains "
                             f"{', '.join(LEARNED)}")
        for path in self.configs.values():
            load_mapping(path)  # a ValueError naming the file
        from cagekit.evaluation.journal import refuse_evaluation_folder
        from cagekit.scenarios.options import check_folder_path

        # named as the options, before training (a file met them as 'File exists' or 'Not a directory')
        check_folder_path(self.out, "--out", "give the study's work folder (new, or an earlier study's)")
        refuse_evaluation_folder(self.out, "--out", "the study keeps its benchmarks in a folder of its own: give "
                                 "another --out (new, or an earlier study's)")
        check_folder_path(self.doc.parent, "--doc's folder", "name a Markdown file in a folder")
        if self.doc.is_dir():
            raise ValueError(f"--doc {self.doc} is a folder; name the Markdown file to write "
                             f"(e.g. {self.doc}/results.md)")
        refuse_other_kind(self.doc, "--doc", "the study")  # an evaluation's summary.txt, say

    @classmethod
    def quick(cls, out: Path, doc: Path, **kw: Any) -> StudyPlan:
        """Same pipeline, small numbers: for CI and a first look (minutes, not hours)."""
        small = {"seeds": 1, "steps": {"paper-small": 1_500, "paper-large": 1_500}, "episodes": 5,
                 "costs": (0.0, 0.1, 1.0), "snapshots": 2, "select_episodes": 2, "quick_run": True}
        return cls(out=out, doc=doc, **{**small, **kw})
