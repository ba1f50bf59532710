"""The files of an SB3 run folder: its model.zip and replay buffer, the checkpoints every tenth of the run, the
latest of them to resume from, and a model loaded with an error that names the file."""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections import deque
from pathlib import Path
from typing import Any

from cagekit.scenarios.data_files import TEMPORARY_SUFFIX, write_bytes_whole, written_whole

MODEL_FILE = "model.zip"
REPLAY_BUFFER_FILE = "replay_buffer.pkl"
CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_PREFIX = "model"


def saved_steps(model_file: Path) -> int | None:
    """`num_timesteps` of an SB3 model zip, read from its JSON "data" entry; None if unreadable."""
    try:
        with zipfile.ZipFile(model_file) as zf:
            return int(json.loads(zf.read("data"))["num_timesteps"])
    except (OSError, zipfile.BadZipFile, KeyError, ValueError, TypeError):
        return None


def load_model(cls: Any, model_file: Path, **kwargs: Any) -> Any:
    """`cls.load` on CPU; a truncated or foreign zip is a ValueError naming the file, not SB3's bare
    AssertionError ("No data found in the saved file")."""
    try:
        return cls.load(model_file, device="cpu", **kwargs)
    except (AssertionError, zipfile.BadZipFile, EOFError, KeyError, ValueError, RuntimeError) as exc:
        raise ValueError(f"cannot load the SB3 model {model_file}: corrupt, truncated or not a {cls.__name__} model "
                         f"({type(exc).__name__}: {exc})") from exc


#: the date of every entry of a zip `save_model` writes (the earliest a zip holds; torch's own entries have it)
ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def save_model(model: Any, path: str | Path) -> None:
    """`model.save(path)`, the same run writing the same bytes.

    SB3's zip holds three things of the clock and one of the process, none of them read back: the time `learn`
    started (`start_time`: `learn` sets it anew, so it is left out and a loaded model keeps SB3's initial 0),
    the seconds into the run each recent episode ended (the Monitor's "t" in `ep_info_buffer`, whose returns
    and lengths only are read: dropped), the date of three of its entries (set to `ZIP_DATE`, as torch's
    entries have it), and the memory addresses in the readable description of each pickled class beside its
    pickle ("<function ActorCriticPolicy.forward at 0x7f...>": the address is cut; loading reads the pickle).
    The entries are otherwise SB3's, in its order, byte for byte. Written whole (`write_bytes_whole`): a kill
    mid-write leaves the file before it, or none, never a zip cut short. The model itself is left as it was: the
    buffer saved is a copy without the "t"s, swapped in for the save only (a run saved mid-training keeps them)."""
    buffer = io.BytesIO()
    live = getattr(model, "ep_info_buffer", None)
    if live is not None:
        model.ep_info_buffer = deque(({k: v for k, v in info.items() if k != "t"} for info in live),
                                     maxlen=getattr(live, "maxlen", None))
    try:
        model.save(buffer, exclude=["start_time"])
    finally:
        if live is not None:
            model.ep_info_buffer = live
    written = io.BytesIO()
    buffer.seek(0)
    with zipfile.ZipFile(buffer) as saved, zipfile.ZipFile(written, "w") as fixed:
        for entry in saved.infolist():
            dated = zipfile.ZipInfo(entry.filename, date_time=ZIP_DATE)
            dated.compress_type, dated.external_attr = entry.compress_type, entry.external_attr
            content = saved.read(entry)
            if entry.filename == "data":
                content = re.sub(rb" at 0x[0-9a-fA-F]+>", b">", content)
            fixed.writestr(dated, content)
    write_bytes_whole(Path(path), written.getvalue())


def save_replay_buffer(model: Any, path: str | Path) -> None:
    """`model.save_replay_buffer(path)` (the same bytes), written whole (`written_whole`)."""
    with written_whole(Path(path)) as temporary, temporary.open("wb") as stream:
        model.save_replay_buffer(stream)


def refuse_trained_folder(out: Path) -> None:
    """A new run must not write into a folder holding a run (its model.zip, meta.json or checkpoints): it
    would overwrite them and pile its TensorBoard events beside the old ones. A checkpoint cut short by a kill is
    none (`latest_checkpoint` passes over it): a run killed while saving its first one starts over. Nor is the
    temporary file of a save a kill cut short (`TEMPORARY_SUFFIX`: a checkpoint is written whole, through one)."""
    found = [name for name in (MODEL_FILE, "meta.json") if (out / name).exists()]
    checkpoints = out / CHECKPOINT_DIR
    if checkpoints.is_dir() and any(not re.fullmatch(rf"{CHECKPOINT_PREFIX}_(replay_buffer_)?\d+_steps\.(zip|pkl)",
                                                     p.name) or (p.suffix == ".zip" and saved_steps(p) is not None)
                                    for p in checkpoints.iterdir() if not p.name.endswith(TEMPORARY_SUFFIX)):
        found.append(f"{CHECKPOINT_DIR}/")
    if found:
        raise ValueError(f"{out} already holds a trained run ({', '.join(found)}); training a new one there would "
                         f"overwrite it: pass resume=True to continue it, or another out_dir")


def latest_checkpoint(out_dir: str | Path) -> tuple[Path, Path | None, int] | None:
    """The most advanced SB3 model in a run folder: (model zip, its replay buffer or None, its step count).

    Candidates: `model.zip` (written at the end and on Ctrl-C; its replay buffer `replay_buffer.pkl`)
    and `checkpoints/model_<N>_steps.zip` (with `model_replay_buffer_<N>_steps.pkl`); the most steps
    wins, `model.zip` on a tie. An unreadable zip (a save cut short by a kill) is passed over, as the run
    it came from would be: the one before it is taken. None if there is none.
    """
    out = Path(out_dir)
    found: list[tuple[int, int, Path, Path]] = []
    steps = saved_steps(out / MODEL_FILE) if (out / MODEL_FILE).exists() else None
    if steps is not None:
        found.append((steps, 1, out / MODEL_FILE, out / REPLAY_BUFFER_FILE))
    for path in (out / CHECKPOINT_DIR).glob(f"{CHECKPOINT_PREFIX}_*_steps.zip"):
        match = re.fullmatch(rf"{CHECKPOINT_PREFIX}_(\d+)_steps\.zip", path.name)
        if match:
            buffer = path.with_name(f"{CHECKPOINT_PREFIX}_replay_buffer_{match[1]}_steps.pkl")
            found.append((int(match[1]), 0, path, buffer))
    for steps, _, model_file, buffer in sorted(found, reverse=True):
        if model_file.name == MODEL_FILE or saved_steps(model_file) is not None:  # model.zip was read above
            return model_file, (buffer if buffer.exists() else None), steps
    return None
