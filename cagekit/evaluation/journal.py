"""`journal.jsonl`: the configuration, then one line per finished episode, flushed and fsynced.

Rerunning the same evaluation reads the journal and plays only the episodes it lacks; a journal written
by another configuration is refused (naming the fields that differ) and never mixed in. A line cut
short by a kill is dropped and the file truncated back to its last complete line.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from cagekit.evaluation.episode import EpisodeResult
from cagekit.evaluation.protocol import IDENTITY_DEFAULTS, IDENTITY_FIELDS, EvalConfig

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


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    old, new = _without_location(old), _without_location(new)
    out = []
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            out.append(f"{key}: journal has {old.get(key)!r}, this run has {new.get(key)!r}")
    return out


class Journal:
    def __init__(self, out_dir: str | Path, config: EvalConfig):
        self.path = Path(out_dir) / JOURNAL
        self.config = config
        self.results: dict[tuple[int, str, int], EpisodeResult] = {}
        self.started: float = time.time()
        self._stream: Any = None

    def open(self) -> Journal:
        """Read what an earlier run of this configuration left, then open for appending."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        wanted = set(self.config.tasks())
        if self.path.exists():
            raw = self.path.read_bytes()
            good = 0  # bytes of complete, parseable lines
            lines = raw.split(b"\n")
            for i, line in enumerate(lines):
                if i == len(lines) - 1:
                    break  # the text after the last newline: empty, or a line cut short
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    if i == 0:
                        raise JournalMismatch(f"{self.path} is not an evaluation journal (its first line is not "
                                              f"JSON); move it away or choose another output folder") from None
                    break
                if i == 0:
                    self._check_header(record if isinstance(record, dict) else {})
                elif isinstance(record, dict) and record.get("type") == "episode":
                    try:
                        result = EpisodeResult.from_json(record)
                    except (KeyError, TypeError, ValueError, AttributeError):
                        break  # a damaged record: like a cut line, it and what follows are played again
                    if result.key in wanted:
                        self.results.setdefault(result.key, result)
                elif not isinstance(record, dict):
                    break
                good += len(line) + 1
            if good == 0:
                self.path.unlink()
            elif good < len(raw):
                with self.path.open("r+b") as f:
                    f.truncate(good)
        fresh = not self.path.exists()
        self._stream = self.path.open("a", encoding="utf-8")
        if fresh:
            self._write({"type": "config", "format": FORMAT, "started": self.started,
                         "config": self.config.to_json()})
        return self

    def _check_header(self, record: dict[str, Any]) -> None:
        if record.get("type") != "config" or "config" not in record:
            raise JournalMismatch(f"{self.path} is not an evaluation journal (its first line is no configuration); "
                                  f"move it away or choose another output folder")
        saved = record["config"] if isinstance(record["config"], dict) else {}
        old = {k: saved.get(k, IDENTITY_DEFAULTS.get(k)) for k in IDENTITY_FIELDS}
        diffs = _differences(old, self.config.identity())
        if diffs:
            raise JournalMismatch(f"{self.path} was written by another evaluation configuration, so it cannot be "
                                  f"resumed: " + "; ".join(diffs) +
                                  ". Use another output folder, or delete the journal to start over.")
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
