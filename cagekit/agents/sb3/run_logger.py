"""The SB3 logger of a run: progress.csv and TensorBoard events in its folder, continued rather than overwritten
when the run resumes (SB3's own truncates the CSV)."""

from __future__ import annotations

import csv
import os
from pathlib import Path

from stable_baselines3.common.logger import CSVOutputFormat, Logger, TensorBoardOutputFormat


class _AppendingCSV(CSVOutputFormat):
    """SB3's CSV log format continuing an existing file (SB3's own truncates it): header and rows kept."""

    def __init__(self, filename: str):
        path = Path(filename)
        if not path.exists() or path.stat().st_size == 0:
            super().__init__(filename)
            return
        self.file = open(filename, "r+")  # closed by Logger.close, as SB3's own
        header = self.file.readline().rstrip("\n")
        self.keys = header.split(",") if header else []
        self.separator, self.quotechar = ",", '"'
        self.file.seek(0, os.SEEK_END)


class _TensorBoard(TensorBoardOutputFormat):
    """SB3's TensorBoard format, hiding earlier events past `purge_step` (as `cagekit.agents.training.train`
    does on resume)."""

    def __init__(self, folder: str, purge_step: int | None):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=folder, purge_step=purge_step)
        self._is_closed = False


def _keep_progress_rows(path: Path, upto: int) -> None:
    """Drop the rows of an SB3 progress.csv logged after step `upto` (a run resumed from an earlier checkpoint)."""
    if not path.exists():
        return
    lines = path.read_text().splitlines()
    if len(lines) < 2:
        return
    header = lines[0].split(",")
    if "time/total_timesteps" not in header:
        return
    column = header.index("time/total_timesteps")
    kept = [lines[0]]
    for line, row in zip(lines[1:], csv.reader(lines[1:]), strict=True):
        value = row[column] if column < len(row) else ""
        if not value or float(value) <= upto:
            kept.append(line)
    path.write_text("\n".join(kept) + "\n")


def run_logger(out: Path, resume_at: int | None) -> Logger:
    """progress.csv and TensorBoard events in `out`; continued (not overwritten) when resuming at a step."""
    if resume_at is None:
        from stable_baselines3.common.logger import configure

        return configure(str(out), ["csv", "tensorboard"])
    _keep_progress_rows(out / "progress.csv", resume_at)
    return Logger(str(out), [_AppendingCSV(str(out / "progress.csv")), _TensorBoard(str(out), resume_at + 1)])
