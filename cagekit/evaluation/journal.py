"""`journal.jsonl`: the configuration, then one line per finished episode, flushed and fsynced.

Rerunning the same evaluation reads the journal and plays only the episodes it lacks; a journal written
by another configuration is refused (naming the fields that differ) and never mixed in. A line cut
short by a kill is dropped and the file truncated back to its last complete line. Files named as the reports
in a folder with no journal (or an empty one) are another run's, or the user's own: nothing vouches for them,
so the folder is refused and they are not overwritten; any other file there is left alone.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple

import cagekit
from cagekit.evaluation.episode import EpisodeResult
from cagekit.evaluation.protocol import IDENTITY_DEFAULTS, IDENTITY_FIELDS, EvalConfig
from cagekit.evaluation.results import FILES
from cagekit.scenarios import ScenarioConflict
from cagekit.scenarios.options import check_folder_path
from cagekit.scenarios.records import describe_differences, spec_from_dict, spec_to_dict

JOURNAL = "journal.jsonl"
FORMAT = 1


class JournalMismatch(ValueError):
    """The journal in the output folder was written by another configuration."""


def _without_location(identity: dict[str, Any]) -> dict[str, Any]:
    """The identity with the team's folder left out: its sha256 says what the team is, the path only where it
    was, so a study folder moved (or a checkout cloned) elsewhere still resumes its journals."""
    team = identity.get("team")
    if isinstance(team, dict) and "sha256" in team:
        return {**identity, "team": {k: v for k, v in team.items() if k != "path"}}
    return identity


def _layout_named(identity: dict[str, Any]) -> dict[str, Any]:
    """The identity with no layout (None) read as the scenario's default layout, which it plays: a run with
    `layout="team"` on paper-small resumes a journal of `layout=None`, and the other way round."""
    scenario = identity.get("scenario")
    if identity.get("layout") is not None or not isinstance(scenario, str):
        return identity
    from cagekit.scenarios import get_scenario

    try:
        default = get_scenario(scenario).default_layout
    except ValueError:  # a scenario this version lacks: it differs anyway
        return identity
    return {**identity, "layout": default}


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What differs between two configurations' identities, naming each field with its values as given."""
    same_old, same_new = (_spec_as_written(_layout_named(_without_location(d))) for d in (old, new))
    out = []
    for key in sorted(set(old) | set(new)):
        # a field the same as written differs only as read with another (the default layout of another
        # scenario): listed, it read "layout: journal has None, this run has None"
        if same_old.get(key) != same_new.get(key) and old.get(key) != new.get(key):
            if key == "scenario_spec" and isinstance(old.get(key), dict) and isinstance(new.get(key), dict):
                # a spec is kilobytes: name what changed in the network, not both whole
                changed = describe_differences(same_old[key], same_new[key], "journal has", "this run has")
                out.append(f"{key} (the network of scenario {new.get('scenario')!r}) differs at {changed}")
                continue
            out.append(f"{key}: journal has {_short(old.get(key))}, this run has {_short(new.get(key))}")
    return out


def _spec_as_written(identity: dict[str, Any]) -> dict[str, Any]:
    """The identity with its scenario spec as this version records it: a journal written while records held
    mappings as objects (not [key, value] pairs) records the same network."""
    data = identity.get("scenario_spec")
    if not isinstance(data, dict):
        return identity
    try:
        return {**identity, "scenario_spec": spec_to_dict(spec_from_dict(data, record=True))}
    except (TypeError, ValueError):  # not a spec: it differs as it is
        return identity


def _short(value: Any) -> str:
    """A value for a message; a recorded scenario spec by the scenario it is of."""
    if isinstance(value, dict) and "hosts" in value and "name" in value:
        return f"the spec of scenario {value['name']!r}"
    return repr(value)


def _check_format(path: Path, header: dict[str, Any]) -> None:
    """Refuse a journal of another format than this version's (`FORMAT`), naming both: its lines would be read
    as this format's and the episodes mixed with new ones."""
    if header.get("format") != FORMAT:
        saved = header.get("config")
        version = saved.get("cagekit_version") if isinstance(saved, dict) else None
        raise JournalMismatch(f"{path} is a journal of format {header.get('format')!r} (written by cagekit "
                              f"{version or 'of an unknown version'}); this cagekit ({cagekit.__version__}) reads "
                              f"format {FORMAT} only: score the team again in another output folder")


def check_output_folder(folder: Path, what: str = "output folder",
                        hint: str = "give a folder (new, or one an earlier run of the same evaluation wrote)") -> None:
    """Refuse an output folder that is a file or lies under one, before anything is loaded or written (`what`
    names it as the caller's user gave it)."""
    check_folder_path(folder, what, hint)


def refuse_evaluation_folder(folder: Path, what: str, instead: str) -> None:
    """Refuse `folder` as `what` (train's or benchmark's --out) where it is an evaluation's output folder (its
    journal): a run or a benchmark written into it mixed its files with the evaluation's reports."""
    if (folder / JOURNAL).is_file():
        reports = [name for name in FILES if (folder / name).exists()]
        held = f"{JOURNAL}{', ' if reports else ''}{', '.join(reports)}"
        raise ValueError(f"{what} {folder} is an evaluation's output folder (it holds {held}, what evaluation.py "
                         f"writes); {instead}")


class JournalContents(NamedTuple):
    config: EvalConfig
    episodes: dict[tuple[int, str, int], EpisodeResult]
    #: the 1-based number of the first complete line that could not be read (nothing after it was), or None
    damaged_line: int | None


def read_journal(folder: str | Path) -> JournalContents:
    """The configuration and finished episodes of an evaluation folder's journal, writing nothing (for
    comparisons). Like a rerun, it stops at the first cut or damaged line, and says which complete line was
    damaged: the episodes lost with it are not unplayed (a rerun repairs the journal); a ValueError names what
    is wrong with the header."""
    path = Path(folder) / JOURNAL
    if not path.is_file():
        raise ValueError(f"{folder} holds no {JOURNAL}: not an evaluation output folder (`python evaluation.py "
                         f"TEAM OUT` writes one)")
    lines = path.read_bytes().split(b"\n")[:-1]  # the text after the last newline is empty or cut short
    try:
        header: Any = json.loads(lines[0]) if lines else None
        saved = header["config"]
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise ValueError(f"{path} is not an evaluation journal: its first line is no configuration "
                         f"({type(exc).__name__}: {exc})") from None
    _check_format(path, header)
    try:
        config = EvalConfig.from_json(saved)
    except ScenarioConflict as exc:  # another network of the same name, not another version's journal
        raise ValueError(f"{path}: {exc}") from None
    except (ValueError, TypeError, KeyError) as exc:  # a field this version does not know, or lacks one it needs
        version = saved.get("cagekit_version") if isinstance(saved, dict) else None
        raise ValueError(f"{path} holds a configuration this cagekit ({cagekit.__version__}) cannot read, written "
                         f"by cagekit {version or 'of an unknown version'} ({type(exc).__name__}: {exc}); score "
                         f"the team again with this version") from None
    episodes: dict[tuple[int, str, int], EpisodeResult] = {}
    read = 0  # body lines read
    for _, result in _body(lines[1:]):
        read += 1
        if result is not None:
            episodes.setdefault(result.key, result)
    damaged = read + 2 if read < len(lines) - 1 else None  # after the header and the lines read
    return JournalContents(config, episodes, damaged)


def _body(lines: list[bytes]) -> Iterator[tuple[int, EpisodeResult | None]]:
    """The journal's lines after its header, each as (bytes read through it, its episode or None for another
    record), up to the first that is not JSON, not an object or a damaged episode: like a line cut short, it
    and what follows are played again."""
    end = 0
    for line in lines:
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                return
            result = EpisodeResult.from_json(record) if record.get("type") == "episode" else None
        except (KeyError, TypeError, ValueError, AttributeError):  # JSON and decoding errors are ValueErrors
            return
        end += len(line) + 1
        yield end, result


class Journal:
    def __init__(self, out_dir: str | Path, config: EvalConfig):
        self.path = Path(out_dir) / JOURNAL
        self.config = config
        self.results: dict[tuple[int, str, int], EpisodeResult] = {}
        self.started: float = time.time()
        self._stream: Any = None
        self._good: int | None = None  # bytes of the journal to keep, once read

    def read(self) -> Journal:
        """Check the output folder and read what an earlier run of this configuration left, writing nothing
        (but cutting off a line cut short): a refused folder or team then leaves the folder as it was."""
        folder = self.path.parent
        check_output_folder(folder)
        taken = [name for name in (JOURNAL, *FILES) if (folder / name).is_dir()]
        if taken:
            raise JournalMismatch(f"output folder {folder} holds folders named as the files an evaluation writes "
                                  f"({', '.join(taken)}); choose another output folder, or move them away")
        wanted = set(self.config.tasks())
        self.results.clear()
        good = 0  # bytes of complete, parseable lines
        if self.path.exists():
            raw = self.path.read_bytes()
            lines = raw.split(b"\n")[:-1]  # the text after the last newline: empty, or a line cut short
            if lines:
                try:
                    header = json.loads(lines[0])
                except ValueError:
                    raise JournalMismatch(f"{self.path} is not an evaluation journal (its first line is not "
                                          f"JSON); move it away or choose another output folder") from None
                self._check_header(header if isinstance(header, dict) else {})
                good = len(lines[0]) + 1
                for end, result in _body(lines[1:]):
                    good = len(lines[0]) + 1 + end
                    if result is not None and result.key in wanted:
                        self.results.setdefault(result.key, result)
            if 0 < good < len(raw):
                with self.path.open("r+b") as f:
                    f.truncate(good)
        if good == 0:  # no journal vouches for this folder: never overwrite another run's reports, or a user's files
            reports = [name for name in FILES if (folder / name).exists()]
            if reports:
                state = "empty" if self.path.exists() else "missing"
                raise JournalMismatch(f"output folder {folder} holds files an evaluation writes ({', '.join(reports)}) "
                                      f"that no journal vouches for ({JOURNAL} is {state}): another run's reports or "
                                      f"files of your own, so they are not overwritten; choose another output "
                                      f"folder, or move those files away")
        self._good = good
        return self

    def open(self) -> Journal:
        """Read what an earlier run of this configuration left (unless `read` did), then open for appending."""
        if self._good is None:
            self.read()
        if self._good == 0 and self.path.exists():
            self.path.unlink()  # empty or holding nothing usable: start it again
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not self.path.exists()
        self._stream = self.path.open("a", encoding="utf-8")
        if fresh:
            self._write({"type": "config", "format": FORMAT, "started": self.started,
                         "config": self.config.to_json()})
        return self

    def discard_if_empty(self) -> bool:
        """Remove the journal when it holds no episode (closing it first), so that a team that failed at
        once leaves no journal tying the folder to its files; True when removed."""
        if self.results:
            return False
        self.close()
        self.path.unlink(missing_ok=True)
        return True

    def _check_header(self, record: dict[str, Any]) -> None:
        if record.get("type") != "config" or "config" not in record:
            raise JournalMismatch(f"{self.path} is not an evaluation journal (its first line is no configuration); "
                                  f"move it away or choose another output folder")
        _check_format(self.path, record)
        saved = record["config"] if isinstance(record["config"], dict) else {}
        old = {k: saved.get(k, IDENTITY_DEFAULTS.get(k)) for k in IDENTITY_FIELDS}
        diffs = _differences(old, self.config.identity())
        if diffs:
            raise JournalMismatch(f"{self.path} was written by another evaluation configuration, so it cannot be "
                                  f"resumed: " + "; ".join(diffs) +
                                  f". Use another output folder, or empty {self.path.parent} to start over "
                                  f"(reports left without their journal are refused).")
        if old["layout"] != self.config.layout:  # the same layout, named in one and left to the default in the other
            self.config = replace(self.config, layout=old["layout"])  # the reports stay as the journal's run wrote
        self.started = float(record.get("started", self.started))

    def _write(self, record: dict[str, Any]) -> None:
        self._stream.write(json.dumps(record, separators=(",", ":")) + "\n")
        self._stream.flush()
        os.fsync(self._stream.fileno())

    def append(self, result: EpisodeResult) -> None:
        if result.key in self.results:
            return
        self.results[result.key] = result
        self._write({"type": "episode", **result.to_json()})

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def __enter__(self) -> Journal:
        return self.open()

    def __exit__(self, *exc: Any) -> None:
        self.close()
