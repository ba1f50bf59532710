"""`manifest.json`: what a submission claims to be (scenario, agents, spaces, channel) and its files' hashes."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from cagekit.scenarios import SPEC_KEY
from cagekit.submissions.safety import sha256_file

FORMAT = "cagekit-submission/1"
MANIFEST = "manifest.json"
REQUIRED_FILES = ("submission.py", "metadata", MANIFEST)
REQUIRED_KEYS = ("format", "cagekit_version", "scenario", "layout", "agents", "channel", "sau", "message_cost",
                 "source", "kind", "files")
#: the most hosts a submission's own scenario may have: its spec is built in the evaluating process, and a
#: 234 KB zip recording 10,000 hosts took 28 s and 500 MB there before failing
MAX_SUBMITTED_HOSTS = 500


#: each setting's valid JSON types (None: null allowed) and how to say it; "view" may also be absent
_FIELD_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "cagekit_version": ((str,), "a string"), "scenario": ((str,), "a scenario name (a string)"),
    "layout": ((str, type(None)), "a layout name (a string) or null"), "channel": ((bool,), "true or false"),
    "sau": ((bool,), "true or false"), "message_cost": ((int, float, type(None)), "a finite number or null"),
    "source": ((str,), "'heuristic', 'checkpoint' or 'python'"), "kind": ((str,), "a string"),
    "view": ((str,), "a view name (a string)"),
}


def _type_problems(data: dict[str, Any]) -> list[str]:
    """The settings whose JSON type is wrong, each with what is valid: caught here, not as a bare
    conversion error when the environment is built."""
    problems = []
    for key, (kinds, valid) in _FIELD_TYPES.items():
        if key not in data:
            continue
        value = data[key]
        bad = not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds)
        if not bad and key == "message_cost" and value is not None:
            bad = not math.isfinite(value)
        if not bad and key == "source":
            bad = value not in ("heuristic", "checkpoint", "python")
        if bad:
            problems.append(f"{key!r} is {value!r}; it must be {valid}")
    return problems


def load_manifest(root: str | Path) -> dict[str, Any]:
    """The parsed manifest of an unpacked submission (ValueError saying what is wrong)."""
    file = Path(root) / MANIFEST
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ValueError(f"no {MANIFEST} at the submission root") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{MANIFEST} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{MANIFEST} must hold a JSON object")
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise ValueError(f"{MANIFEST} lacks {missing}")
    if data["format"] != FORMAT:
        raise ValueError(f"{MANIFEST} has format {data['format']!r}; this cagekit reads {FORMAT!r}")
    wrong = _type_problems(data)
    if wrong:
        raise ValueError(f"{MANIFEST}: " + "; ".join(wrong))
    if not isinstance(data["files"], dict) or not all(isinstance(v, str) for v in data["files"].values()):
        raise ValueError(f"{MANIFEST}: 'files' must map file names to SHA-256 hex digests")
    agents = data["agents"]
    if not isinstance(agents, list) or not agents or not all(
            isinstance(a, dict) and isinstance(a.get("name"), str) and isinstance(a.get("obs_size"), int)
            and isinstance(a.get("n_actions"), int) for a in agents):
        raise ValueError(f"{MANIFEST}: 'agents' must be a list of {{name, obs_size, n_actions}}")
    names = [a["name"] for a in agents]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:  # the scenario's checks pass a list of every agent with one more, which no Submission.AGENTS matches
        raise ValueError(f"{MANIFEST}: 'agents' lists {twice} more than once; it lists each agent once")
    if data.get(SPEC_KEY) is not None and not isinstance(data[SPEC_KEY], dict):
        raise ValueError(f"{MANIFEST}: {SPEC_KEY!r} must be a scenario spec (a JSON object) or absent")
    return data


def adopt_spec(manifest: dict[str, Any]) -> None:
    """Register the scenario spec a manifest records (a submission for a scenario of its packager's own), so
    that its name means that network in this process; a ValueError where the record is not a spec, is not the
    manifest's scenario, or conflicts with a spec registered here under its name. Built-in scenarios record
    none (their name says enough)."""
    if manifest.get(SPEC_KEY) is None:
        return
    from cagekit.scenarios import register_recorded

    recorded = manifest[SPEC_KEY]
    hosts = recorded.get("hosts") if isinstance(recorded, dict) else None
    if isinstance(hosts, list) and len(hosts) > MAX_SUBMITTED_HOSTS:  # a small zip must not cost a long build
        raise ValueError(f"{MANIFEST} records a scenario of {len(hosts)} hosts; a submission's own scenario may "
                         f"have at most {MAX_SUBMITTED_HOSTS} (CAGE-2's has 13)")
    register_recorded(recorded, MANIFEST, manifest["scenario"])


def check_hashes(root: str | Path, manifest: dict[str, Any], files: list[str]) -> list[str]:
    """Problems with the listed hashes: files changed, missing, or present but not listed (empty = fine)."""
    root = Path(root)
    listed = manifest["files"]
    problems = []
    for name in sorted(listed):
        if name == MANIFEST:
            problems.append(f"{MANIFEST} cannot list its own hash")
        elif name not in files:
            problems.append(f"{name}: listed in {MANIFEST} but missing")
        elif sha256_file(root / name) != listed[name].lower():
            problems.append(f"{name}: SHA-256 differs from {MANIFEST} (file modified after packaging)")
    for name in files:
        if name != MANIFEST and name not in listed:
            problems.append(f"{name}: not listed in {MANIFEST}")
    return problems


def env_kwargs(manifest: dict[str, Any]) -> dict[str, Any]:
    """`make_env` arguments that reproduce the environment the submission was packaged for."""
    return {"layout": manifest.get("layout"), "channel": bool(manifest["channel"]), "sau": bool(manifest["sau"]),
            "message_cost": None if manifest.get("message_cost") is None else float(manifest["message_cost"]),
            "view": manifest.get("view", "own")}


def make_manifest_env(manifest: dict[str, Any], **extra: Any) -> Any:
    from cagekit.wrappers import make_env

    adopt_spec(manifest)  # a scenario of the packager's own: registered here (in a worker process too)
    return make_env(manifest["scenario"], **env_kwargs(manifest), **extra)


def space_problems(manifest: dict[str, Any], env: Any) -> list[str]:
    """Differences between the manifest's agents/spaces and the environment's (empty = they agree)."""
    problems = []
    names = [a["name"] for a in manifest["agents"]]
    lacking = [n for n in names if n not in env.possible_agents]
    if lacking:
        problems.append(f"agent(s) {lacking} not in scenario {manifest['scenario']!r} "
                        f"(layout {manifest.get('layout')!r}); it has {list(env.possible_agents)}")
    unserved = [n for n in env.possible_agents if n not in names]
    if unserved:
        problems.append(f"scenario agent(s) {unserved} have no submitted agent")
    for a in manifest["agents"]:
        if a["name"] not in env.possible_agents:
            continue
        obs = env.observation_space(a["name"])["observation"].n
        act = env.action_space(a["name"]).n
        if int(obs) != a["obs_size"] or int(act) != a["n_actions"]:
            problems.append(f"agent {a['name']!r}: manifest says observation {a['obs_size']} / actions "
                            f"{a['n_actions']}, the environment has {int(obs)} / {int(act)}")
    return problems
