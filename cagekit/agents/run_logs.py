"""A training run's learning curve, read back and plotted (`cagekit plot`): our learners' log.csv or an SB3
run's progress.csv, checked so that a run still training or the wrong folder is named, not a pandas traceback."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cagekit.agents import checkpoint as ckpt
from cagekit.agents.training import LOG_FIELDS, LOG_FILE
from cagekit.scenarios.options import check_folder_path

if TYPE_CHECKING:  # imported where used: pandas costs start-up time
    import pandas as pd


def read_log(run_dir: str | Path) -> pd.DataFrame:
    """A run's learning curve: columns env_steps, return and bits, one row per logged update.

    Read from our log.csv or, for an SB3 run, its logger's progress.csv. Anything that cannot be plotted
    (empty, no rows yet, wrong columns, text for a number) is a ValueError naming the file, since `cagekit
    plot` is often pointed at a run that is still training or at the wrong folder.
    """
    import pandas as pd

    file = Path(run_dir) / LOG_FILE
    sb3_file = Path(run_dir) / "progress.csv"
    if not file.exists() and sb3_file.exists():  # an SB3 run: its logger's columns (bits: our callback's)
        sb3 = _read_csv(sb3_file)
        if "time/total_timesteps" not in sb3:
            raise ValueError(f"{sb3_file} lacks the column time/total_timesteps: not an SB3 training log")
        _require_rows(sb3, sb3_file)
        if "rollout/ep_rew_mean" not in sb3 or sb3["rollout/ep_rew_mean"].isna().all():
            raise ValueError(f"{sb3_file} has no finished episode yet (no rollout/ep_rew_mean): train longer")
        sb3 = sb3.dropna(subset=["rollout/ep_rew_mean"])
        bits = sb3["rollout/ep_bits_mean"] if "rollout/ep_bits_mean" in sb3 else float("nan")
        log = pd.DataFrame({"env_steps": sb3["time/total_timesteps"], "return": sb3["rollout/ep_rew_mean"],
                            "bits": bits})
        return _check_numbers(log, sb3_file, {"env_steps": "time/total_timesteps",
                                              "return": "rollout/ep_rew_mean", "bits": "rollout/ep_bits_mean"})
    if not file.exists():
        raise ValueError(f"no training log at {file} (nor an SB3 progress.csv)")
    log = _read_csv(file)
    missing = [c for c in ("env_steps", "return", "bits") if c not in log]
    if missing:
        raise ValueError(f"{file} lacks the column{'s' * (len(missing) > 1)} {', '.join(missing)}: not a cagekit "
                         f"training log, whose columns are {', '.join(LOG_FIELDS)}")  # "its columns" read as the file's
    _require_rows(log, file)
    return _check_numbers(log, file, {c: c for c in ("env_steps", "return", "bits")})


def _read_csv(file: Path) -> pd.DataFrame:
    """`file` as a DataFrame; pandas' own errors do not say which file."""
    import pandas as pd

    try:
        table = pd.read_csv(file)
    except pd.errors.EmptyDataError:
        raise ValueError(f"{file} is empty: train longer (a row is logged after each update)") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ValueError(f"{file} is not a readable CSV training log ({str(exc).strip()})") from None
    return table


def _require_rows(table: pd.DataFrame, file: Path) -> None:
    """Checked after the columns, so that a file of one line of text is not taken for a log without rows."""
    if table.empty:
        raise ValueError(f"{file} has no rows yet: train longer (a row is logged after each update)")


def _check_numbers(log: pd.DataFrame, file: Path, names: dict[str, str]) -> pd.DataFrame:
    """`log` with its columns as floats. Text where a number belongs, or a row without env steps (the
    x axis), is refused with the file, the column as the file calls it (`names`) and the data row; an empty
    return or bits is kept as NaN (an update that finished no episode)."""
    import pandas as pd

    out = log.copy()
    for column, name in names.items():
        values = pd.to_numeric(log[column], errors="coerce")
        bad = values.isna() if column == "env_steps" else values.isna() & log[column].notna()
        if bad.any():
            row = bad.idxmax()
            value = "empty" if pd.isna(log[column][row]) else repr(str(log[column][row]))
            raise ValueError(f"{file}: {name} is {value} in data row {row + 1}; expected a number")
        out[column] = values.astype(float)
    return out


def _image_path(out_png: str | Path, replace: bool = False) -> Path:
    """Where `plot_runs` writes, checked before any log is read: an empty name or an existing directory
    would otherwise become a hidden `.png` or `DIR.png` beside what was asked for; a folder that is a file or
    cannot be written is named as --out's; an existing file is written over only where it is a figure (`_drawn`)
    or with `replace`."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    if not str(out_png).strip():
        raise ValueError("the plot's output file (--out) is empty: give a file name such as learning_curves.png")
    out = Path(out_png)
    if out.is_dir():
        raise ValueError(f"{out} is a directory: give the image file to write, such as {out / 'learning_curves.png'}")
    if not out.suffix:
        out = out.with_name(out.name + ".png")
    formats = FigureCanvasAgg.get_supported_filetypes()
    if out.suffix[1:].lower() not in formats:
        raise ValueError(f"{out}: cannot draw a {out.suffix} file; valid suffixes: {', '.join(sorted(formats))}")
    check_folder_path(out.parent, f"--out {out}: its folder", "give an image file in a folder")
    if out.is_file() and not replace and not _drawn(out):
        raise ValueError(f"--out {out} exists and is no figure matplotlib drew (a plot's own file names "
                         f"matplotlib inside): it is kept; give another --out, or --replace to write over it")
    if out.exists() and not os.access(out, os.W_OK):
        raise ValueError(f"--out {out} is not writable (read-only, or another user's); give another --out")
    return out


#: what `plot_runs` has Pillow write into the files of the formats whose metadata matplotlib leaves empty (its PNG,
#: SVG, PDF, PS and EPS name it already): a plot in JPEG, TIFF, GIF, WebP or AVIF is then known for one by
#: `_drawn`, and a rerun draws it again. A raw or rgba file is bare pixels, with no room for a name.
_PIL_MARKS: dict[str, dict[str, Any]] = {
    **dict.fromkeys(("jpg", "jpeg", "gif"), {"comment": "Matplotlib"}),
    **dict.fromkeys(("tif", "tiff"), {"software": "Matplotlib"}),
    **dict.fromkeys(("webp", "avif"), {"xmp": b"Matplotlib"}),
}


def _drawn(file: Path) -> bool:
    """Whether `file` names matplotlib inside, as the figures it draws do (its own PNG, SVG, PDF and EPS files; a
    compressed SVG once unpacked; the others by `_PIL_MARKS`): an earlier plot, which a rerun draws again
    (`cagekit plot ... --out curves.png` as a run trains on), unlike a picture of the user's own."""
    import gzip
    import zlib

    try:
        data = file.read_bytes()
        if file.suffix.lower() == ".svgz":
            data = gzip.decompress(data)
    except (OSError, EOFError, zlib.error):  # unreadable, or not gzip's: no figure of ours
        return False
    return b"matplotlib" in data.lower()


def plot_runs(run_dirs: Sequence[str | Path], out_png: str | Path, labels: Sequence[str] | None = None,
              points: int = 100, replace: bool = False) -> Path:
    """Learning curves: return and bits per episode vs env steps; mean and min-max spread over runs.

    Runs with the same label (default: the algo in meta.json, else the directory name) are pooled as
    seeds of one curve (a run given twice, in any spelling, is refused); each run is interpolated onto a
    common env-step grid first. Returns the file written: `out_png` with ".png" added when it has no suffix
    (as matplotlib would add it unasked). An existing file there is written over only when it is a figure
    matplotlib drew (an earlier plot) or with `replace`.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    out = _image_path(out_png, replace)
    seen: dict[Path, str | Path] = {}
    for run in run_dirs:  # a run given twice would be pooled as two seeds: n=2 and a spread of nothing
        where = Path(run).resolve()
        if where in seen:
            again = f"{run}" if str(run) == str(seen[where]) else f"{seen[where]} and {run}"
            raise ValueError(f"run {again} given more than once (runs of one algorithm are pooled as its seeds); "
                             f"name each run once")
        seen[where] = run
    groups: dict[str, list[Any]] = {}
    for i, run in enumerate(run_dirs):
        if labels is not None:
            label = labels[i]
        else:
            try:
                label = str(ckpt.load_meta(run).get("algo"))
            except ValueError:
                label = Path(run).name
        groups.setdefault(label, []).append(read_log(run))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for label, logs in groups.items():
        end = min(float(df["env_steps"].max()) for df in logs)
        start = max(float(df["env_steps"].min()) for df in logs)
        grid = np.linspace(start, end, points) if end > start else np.array([start])
        for ax, key in zip(axes, ("return", "bits"), strict=True):
            ys = np.stack([np.interp(grid, df["env_steps"], df[key].astype(float)) for df in logs])
            mean = ys.mean(0)
            (line,) = ax.plot(grid, mean, label=f"{label} (n={len(logs)})")
            if len(logs) > 1:
                ax.fill_between(grid, ys.min(0), ys.max(0), color=line.get_color(), alpha=0.2)
    for ax, title in zip(axes, ("return per episode", "bits per episode"), strict=True):
        ax.set_xlabel("environment steps")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    mark = _PIL_MARKS.get(out.suffix[1:].lower())
    if mark is None:
        fig.savefig(out, dpi=120)
    else:
        fig.savefig(out, dpi=120, pil_kwargs=mark)
    plt.close(fig)
    return out


__all__ = ["plot_runs", "read_log"]
