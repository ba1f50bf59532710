"""Submissions: package -> validate -> run through `SubmissionTeam`, and every hostile input refused."""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest

from cagekit.agents import make_team
from cagekit.submissions import (
    SubmissionError,
    UnsafeSubmission,
    build_files,
    open_submission,
    package,
    seal,
    validate,
    write_zip,
)
from cagekit.wrappers import make_env

SCENARIO = "paper-small"
EPISODE = 8


# helpers ----------------------------------------------------------------------------------------------
def snapshot(root: Path) -> dict[str, tuple]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = Path(dirpath) / name
            st = os.lstat(full)
            digest = hashlib.sha256(full.read_bytes()).hexdigest() if stat.S_ISREG(st.st_mode) else ""
            out[str(full.relative_to(root))] = (stat.S_IFMT(st.st_mode), st.st_size, st.st_mtime_ns, digest)
    return out


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """A fresh cwd and a fresh temporary directory; asserts both are unchanged (tmp empty) afterwards."""
    cwd, tmp, inputs = tmp_path / "cwd", tmp_path / "tmp", tmp_path / "in"
    for d in (cwd, tmp, inputs):
        d.mkdir()
    (cwd / "results.txt").write_text("reward_mean: -5.0\n")
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    before = snapshot(cwd)
    yield inputs
    assert snapshot(cwd) == before, "the current directory changed"
    assert list(tmp.iterdir()) == [], f"left behind in the temporary directory: {list(tmp.iterdir())}"


@pytest.fixture(scope="module")
def sleep_files() -> dict[str, bytes]:
    return build_files("sleep", name="t", team="t", technique="sleep", scenario=SCENARIO)


def zip_of(path: Path, entries: list[tuple[zipfile.ZipInfo | str, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for info, data in entries:
            zf.writestr(info, data)
    return path


def with_code(files: dict[str, bytes], code: str) -> dict[str, bytes]:
    out = dict(files)
    out["submission.py"] = code.encode()
    return seal(out)


def episode_reward(team, seed: int, episodes: int = 2) -> list[float]:
    env = make_env(SCENARIO, episode_length=EPISODE, seed=seed)
    totals = []
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed + ep)
        total = 0.0
        while env.agents:
            obs, rewards, _, _, infos = env.step(team.act(obs, {a: env.action_space(a) for a in obs}))
            total += infos[env.possible_agents[0]]["env_reward"]
        team.end_episode()
        totals.append(total)
    return totals


AGENT_CLASS = '''
import os
import numpy as np
HERE = os.path.dirname(os.path.abspath(__file__))
MANIFEST = __import__("json").load(open(os.path.join(HERE, "manifest.json")))

class A:
    def get_action(self, observation, action_space):
{body}
    def end_episode(self):
        pass

class Submission:
    NAME = TEAM = TECHNIQUE = "x"
    AGENTS = {{a["name"]: A() for a in MANIFEST["agents"]}}
{extra}
'''


def agent_code(body: str = "        return 0", extra: str = "    @staticmethod\n    def wrap(env):\n        return env",
               prefix: str = "") -> str:
    return prefix + AGENT_CLASS.format(body=body, extra=extra)


# round trips ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["sleep", "random", "react"])
def test_round_trip_heuristic(kind, sandbox):
    out = package(kind, "me", "us", kind, sandbox / f"{kind}.zip", scenario=SCENARIO, seed=11)
    again = package(kind, "me", "us", kind, sandbox / f"{kind}-again.zip", scenario=SCENARIO, seed=11)
    assert out.read_bytes() == again.read_bytes(), "packaging is not reproducible"
    with zipfile.ZipFile(out) as zf:
        names = zf.namelist()
        assert names == sorted(names)
        assert {"submission.py", "metadata", "manifest.json", "team/team.json"} <= set(names)
        assert zf.read("metadata") == b""
        manifest = json.loads(zf.read("manifest.json"))
    assert manifest["scenario"] == SCENARIO and manifest["kind"] == kind and manifest["channel"] is True
    assert [a["name"] for a in manifest["agents"]] == make_env(SCENARIO).possible_agents

    report = validate(out, check_wrap=(kind == "react"))
    assert report.ok, report.text()
    assert "PASS" in report.text()

    env = make_env(SCENARIO, episode_length=EPISODE, seed=3)
    reference = episode_reward(make_team(kind, env, seed=11), seed=3)
    with open_submission(out) as team:
        assert sorted(team.agents) == sorted(env.possible_agents)
        assert team.scenario == SCENARIO and team.meta["channel"] is True
        assert team.env_settings()["scenario"] == SCENARIO
        assert episode_reward(team, seed=3) == reference
        folder = team.folder
        assert folder.exists()
    assert not folder.exists()


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """An untrained DIAL-SAU checkpoint in a training-run-like folder, with its in-process reference score."""
    try:
        from cagekit.agents.dial import DialLearner
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"cagekit.agents.dial unavailable: {exc}")
    run = tmp_path_factory.mktemp("run")
    try:
        learner = DialLearner("dial-sau", SCENARIO, seed=0, config={"batch_episodes": 2})
        learner.save(run / "checkpoints" / "final")
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"cannot make a tiny DIAL checkpoint with this DialLearner: {exc}")
    from cagekit.agents import load_team

    reference = episode_reward(load_team(run / "checkpoints" / "final"), seed=5, episodes=1)
    return run, reference


def test_round_trip_checkpoint(sandbox, tiny_checkpoint):
    run, reference = tiny_checkpoint
    out = package(run, "me", "us", "dial-sau", sandbox / "dial.zip")  # a training run folder
    with zipfile.ZipFile(out) as zf:
        assert "team/model.pt" in zf.namelist() and "team/trainer.pt" not in zf.namelist()
        assert json.loads(zf.read("manifest.json"))["kind"] == "dial-sau"
    report = validate(out, check_wrap=False)
    assert report.ok, report.text()
    meta = json.loads((run / "checkpoints" / "final" / "meta.json").read_text())
    with open_submission(out) as team:
        assert team.meta["submission"]["kind"] == "dial-sau"
        assert team.meta["sau"] == meta.get("sau", meta.get("env", {}).get("sau"))
        assert episode_reward(team, seed=5, episodes=1) == pytest.approx(reference)


def test_a_checkpoint_packages_the_settings_it_was_trained_with(tmp_path):
    """The manifest (what evaluation builds the environment from) carries the checkpoint's channel cost, masks
    and channel, not the packager's defaults."""
    from cagekit.agents.dial import DialLearner

    learner = DialLearner("dial", SCENARIO, seed=0, config={"batch_episodes": 2}, message_cost=0.37)
    learner.save(tmp_path / "ck")
    manifest = json.loads(build_files(tmp_path / "ck", name="t", team="t", technique="t")["manifest.json"])
    assert (manifest["message_cost"], manifest["sau"], manifest["channel"]) == (0.37, False, True)
    with pytest.raises(ValueError, match="was trained with message_cost=0.37, not 0.5"):
        build_files(tmp_path / "ck", name="t", team="t", technique="t", message_cost=0.5)


def test_a_checkpoint_that_does_not_load_is_refused_before_a_zip_is_written(sandbox, tiny_checkpoint, tmp_path):
    import shutil

    run = tmp_path / "broken"
    shutil.copytree(tiny_checkpoint[0] / "checkpoints" / "final", run)
    model = run / "model.pt"
    model.write_bytes(model.read_bytes()[:100])
    with pytest.raises(ValueError, match="cannot package .*broken: the team does not load: .*model.pt"):
        package(run, "me", "us", "dial-sau", sandbox / "dial.zip")
    assert not (sandbox / "dial.zip").exists()
    (run / "meta.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="corrupt checkpoint metadata .*meta.json"):
        package(run, "me", "us", "dial-sau", sandbox / "dial.zip")


@pytest.mark.parametrize("name", ["react-paper-small.zip", "dial-sau-paper-small.zip", "dial-sau-paper-large.zip"])
def test_shipped_submissions_pass(name):
    example = Path(__file__).resolve().parent.parent / "submissions" / name
    assert example.exists(), f"submissions/{name} is shipped with the repository"
    report = validate(example, check_wrap=False)
    assert report.ok, report.text()


def test_the_shipped_react_submission_is_what_its_readme_command_builds(tmp_path, monkeypatch):
    """submissions/README.md names the command that built react-paper-small.zip; run as written (over the
    shipped file) it must be accepted and write the same bytes. A change to the generated submission.py
    breaks this: rebuild the zip with that command plus --replace."""
    import shlex

    from cagekit.cli import main

    root = Path(__file__).resolve().parent.parent
    readme = (root / "submissions" / "README.md").read_text()
    found = re.search(r"`(cagekit package react [^`]*--out submissions/react-paper-small\.zip)`", readme)
    assert found, "submissions/README.md gives the command that built react-paper-small.zip"
    argv = shlex.split(found.group(1))[1:]
    shipped = root / "submissions" / "react-paper-small.zip"
    (tmp_path / "submissions").mkdir()
    (tmp_path / "submissions" / shipped.name).write_bytes(shipped.read_bytes())
    monkeypatch.chdir(tmp_path)
    assert main([*argv, "--no-validate"]) == 0, "the README's command refuses to write over the shipped zip"
    assert (tmp_path / "submissions" / shipped.name).read_bytes() == shipped.read_bytes()


# hostile inputs ---------------------------------------------------------------------------------------
def _symlink_info() -> zipfile.ZipInfo:
    info = zipfile.ZipInfo("team/link")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


def _bomb(path: Path, mb: int) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf, \
            zf.open("team/big.bin", "w", force_zip64=True) as out:
        block = bytes(1 << 20)
        for _ in range(mb):
            out.write(block)
    return path


def _lying_bomb(path: Path) -> Path:
    """A 30 MB entry whose headers claim 1,000 bytes."""
    _bomb(path, 30)
    data = bytearray(path.read_bytes())
    info = zipfile.ZipFile(path).getinfo("team/big.bin")
    real = info.file_size
    for fmt in ("<I", "<Q"):  # patch every little-endian copy of the true size
        import struct

        needle, fake = struct.pack(fmt, real), struct.pack(fmt, 1000)
        data = bytearray(bytes(data).replace(needle, fake))
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("case, check, needle", [
    ("dotdot", "archive", "'..'"),
    ("absolute", "archive", "absolute path"),
    ("symlink", "archive", "symbolic link"),
    ("bomb-size", "archive", "zip bomb"),
    ("bomb-ratio", "archive", "compression ratio"),
    ("bomb-lying-header", "archive", "entry 'team/big.bin'"),
    ("too-many-files", "archive", "too many files"),
    ("not-a-zip", "archive", "not a readable zip"),
    ("backslash", "archive", "backslash in path"),
    ("drive-letter", "archive", "absolute path"),
    ("duplicate", "archive", "'team/./team.json': duplicate name"),
    ("encrypted", "archive", "encrypted (refused)"),
])
def test_archive_refused(case, check, needle, sandbox, sleep_files):
    path = sandbox / f"{case}.zip"
    base = [(k, v) for k, v in sorted(sleep_files.items())]
    if case == "dotdot":
        zip_of(path, base + [("team/../../evil.py", b"x")])
    elif case == "absolute":
        zip_of(path, base + [("/tmp/evil.py", b"x")])
    elif case == "symlink":
        zip_of(path, base + [(_symlink_info(), b"/etc/passwd")])
    elif case == "bomb-size":
        _bomb(path, 110)
    elif case == "bomb-ratio":
        _bomb(path, 30)
    elif case == "bomb-lying-header":
        _lying_bomb(path)
    elif case == "too-many-files":
        zip_of(path, base + [(f"team/f{i}", b"") for i in range(2001)])
    elif case == "not-a-zip":
        path.write_bytes(b"PK\x03\x04 not really")
    elif case == "backslash":
        zip_of(path, base + [("team\\..\\..\\evil.py", b"x")])
    elif case == "drive-letter":
        zip_of(path, base + [("C:/evil.py", b"x")])
    elif case == "duplicate":  # another spelling of the same file
        zip_of(path, base + [("team/./team.json", b"{}")])
    elif case == "encrypted":  # the encryption flag set in the central directory's first entry
        data = bytearray(zip_of(path, base).read_bytes())
        data[data.index(b"PK\x01\x02") + 8] |= 0x1
        path.write_bytes(bytes(data))
    before = snapshot(sandbox)
    report = validate(path)
    assert not report.ok
    assert report.failed.name == check, report.text()
    assert needle in report.failed.message, report.text()
    assert "FAIL" in report.text()
    with pytest.raises(UnsafeSubmission):
        open_submission(path)
    assert snapshot(sandbox) == before
    assert not (sandbox.parent / "evil.py").exists() and not Path("/tmp/evil.py").exists()


BAD_ACTION = "        return 10**6"
CRASH = "        raise RuntimeError('agent crashed')"


def _hostile(case: str, files: dict[str, bytes]) -> dict[str, bytes]:
    if case == "missing-submission":
        out = dict(files)
        del out["submission.py"]
        return seal(out)
    if case == "missing-metadata":
        out = dict(files)
        del out["metadata"]
        return seal(out)
    if case == "no-agents":
        return with_code(files, "class Submission:\n    NAME = TEAM = TECHNIQUE = 'x'\n"
                                "    @staticmethod\n    def wrap(env):\n        return env\n")
    if case == "no-wrap":
        return with_code(files, agent_code(extra=""))
    if case == "manifest-unknown-agent":
        manifest = json.loads(files["manifest.json"])
        manifest["agents"][0]["name"] = "blue_ghost"
        out = dict(files)
        out["manifest.json"] = json.dumps(manifest).encode()
        return seal(out)
    if case == "manifest-agent-twice":  # every agent of the scenario listed, one of them twice
        manifest = json.loads(files["manifest.json"])
        manifest["agents"].append(dict(manifest["agents"][0]))
        out = dict(files)
        out["manifest.json"] = json.dumps(manifest).encode()
        return seal(out)
    if case.startswith("manifest-field-"):  # a setting of the wrong JSON type
        key, value = {"manifest-field-cost": ("message_cost", "abc"), "manifest-field-channel": ("channel", "yes"),
                      "manifest-field-source": ("source", "plugin")}[case]
        out = dict(files)
        out["manifest.json"] = json.dumps({**json.loads(files["manifest.json"]), key: value}).encode()
        return seal(out)
    if case == "agents-unknown-agent":
        return with_code(files, agent_code(extra="    @staticmethod\n    def wrap(env):\n        return env\n"
                                                 "Submission.AGENTS['blue_ghost'] = A()"))
    if case == "manifest-obs-size":  # the observation size only: the action count still agrees
        manifest = json.loads(files["manifest.json"])
        manifest["agents"][-1]["obs_size"] += 1
        out = dict(files)
        out["manifest.json"] = json.dumps(manifest).encode()
        return seal(out)
    if case == "agents-missing-agent":
        return with_code(files, agent_code(extra="    @staticmethod\n    def wrap(env):\n        return env\n"
                                                 "del Submission.AGENTS['blue_ops']"))
    if case == "hash-differs":
        out = dict(files)
        out["team/team.json"] = files["team/team.json"].replace(b'"sleep"', b'"react"')
        return out  # not resealed
    if case == "hash-unlisted-file":
        return {**files, "team/extra.py": b"print('not packaged')\n"}  # not resealed
    if case == "import-fails":
        return with_code(files, "raise RuntimeError('boom at import')\n")
    if case == "import-hangs":
        return with_code(files, "import time\nwhile True:\n    time.sleep(0.1)\n")
    if case == "crash-first-step":
        return with_code(files, agent_code(body=CRASH))
    if case == "bad-action":
        return with_code(files, agent_code(body=BAD_ACTION))
    if case == "action-one-past-the-end":
        return with_code(files, agent_code(body="        return action_space.n"))
    if case == "action-bool":  # would play action 1 (a sent bit) if counted as an integer
        return with_code(files, agent_code(body="        return True"))
    if case == "action-float":  # would play action 1 if truncated
        return with_code(files, agent_code(body="        return np.float64(1.7)"))
    raise AssertionError(case)


@pytest.mark.parametrize("case, check, needle", [
    ("missing-submission", "required files", "submission.py"),
    ("missing-metadata", "required files", "metadata"),
    ("no-agents", "interface", "AGENTS"),
    ("no-wrap", "interface", "wrap"),
    ("manifest-unknown-agent", "scenario", "['blue_ghost'] not in scenario"),
    # validate passed it and evaluation.py refused it ("the manifest lists ['blue_ops', 'blue_user', 'blue_user']")
    ("manifest-agent-twice", "manifest", "'agents' lists ['blue_user'] more than once"),
    ("manifest-field-cost", "manifest", "'message_cost' is 'abc'; it must be a finite number or null"),
    ("manifest-field-channel", "manifest", "'channel' is 'yes'; it must be true or false"),
    ("manifest-field-source", "manifest", "'source' is 'plugin'; it must be 'heuristic', 'checkpoint' or 'python'"),
    ("manifest-obs-size", "scenario", "agent 'blue_ops': manifest says observation"),
    ("agents-unknown-agent", "agents", "['blue_ghost'] not in scenario"),
    ("agents-missing-agent", "agents", "scenario agent(s) ['blue_ops'] missing from Submission.AGENTS"),
    ("hash-differs", "hashes", "team/team.json: SHA-256 differs"),
    ("hash-unlisted-file", "hashes", "team/extra.py: not listed in manifest.json"),
    ("import-fails", "import", "boom at import"),
    ("import-hangs", "import", "timed out"),
    ("crash-first-step", "smoke", "step 0"),
    ("bad-action", "smoke", "outside its action space"),
    ("action-one-past-the-end", "smoke", "outside its action space"),
    ("action-bool", "smoke", "action True is a bool, not an integer"),
    ("action-float", "smoke", "is not one integer"),
])
def test_submission_refused(case, check, needle, sandbox, sleep_files):
    path = write_zip(_hostile(case, sleep_files), sandbox / f"{case}.zip")
    before = snapshot(sandbox)
    report = validate(path, import_timeout=3.0, check_wrap=False)
    assert not report.ok, report.text()
    assert report.failed.name == check, report.text()
    assert needle in report.failed.message, report.text()
    if case == "crash-first-step":
        assert "agent crashed" in report.failed.message
    assert snapshot(sandbox) == before


def test_a_submission_zipped_as_its_folder_is_told_where_its_files_are(sandbox, sleep_files):
    """Zipping the folder `myteam/` rather than its contents was reported only as files "missing at the root";
    the message now says they are one level down, under myteam/, and how to put them at the root."""
    path = zip_of(sandbox / "myteam.zip", [(f"myteam/{k}", v) for k, v in sorted(sleep_files.items())])
    report = validate(path)
    assert report.failed.name == "required files", report.text()
    assert report.failed.message == (
        "missing at the root: submission.py, metadata, manifest.json; found one level down, under myteam/, but "
        "they must be at the zip's root (the zip holds the folder rather than its contents: zip the folder's "
        "contents (cd myteam && zip -r ../myteam.zip .), or build it with `cagekit package`)")
    with pytest.raises(SubmissionError, match=re.escape("at the submission root: submission.py, metadata, "
                                                        "manifest.json; found one level down, under myteam/, but")):
        open_submission(path)
    folder = sandbox / "unzipped"
    for rel, data in sleep_files.items():
        (folder / "myteam" / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / "myteam" / rel).write_bytes(data)
    assert "under myteam/, but they must be at the submission's root (give the folder myteam/ itself" in \
        validate(folder).failed.message
    # a file missing for good is still just missing: nothing is guessed from another folder's files
    partial = zip_of(sandbox / "partial.zip", [(k, v) for k, v in sorted(sleep_files.items()) if k != "metadata"]
                     + [("other/submission.py", b"")])
    assert validate(partial).failed.message == "missing at the root: metadata"


def test_evaluate_refuses_a_manifest_field_of_the_wrong_type(sandbox, sleep_files):
    """The harness names the field too, not only `cagekit validate` (it said 'could not convert string to float')."""
    from cagekit.evaluation import resolve_source

    path = write_zip(_hostile("manifest-field-cost", sleep_files), sandbox / "cost.zip")
    with pytest.raises(ValueError, match="refused: manifest.json: 'message_cost' is 'abc'; it must be a finite"):
        resolve_source(str(path))


def test_evaluate_refuses_a_manifest_of_another_scenario_before_any_episode(sandbox, sleep_files, tmp_path):
    """A paper-small team whose manifest says paper-large: refused when the team is named, with what differs,
    and no output folder written."""
    from cagekit.evaluation import cli_main, resolve_source

    manifest = json.loads(sleep_files["manifest.json"])
    path = write_zip(seal({**sleep_files, "manifest.json": json.dumps({**manifest, "scenario": "paper-large"})
                           .encode()}), sandbox / "large.zip")
    with pytest.raises(ValueError, match=r"the manifest's agents do not fit its scenario 'paper-large': scenario "
                                         r"agent\(s\) \['blue_enterprise'\] have no submitted agent"):
        resolve_source(str(path))
    assert cli_main([str(path), str(tmp_path / "out"), "--episodes", "1", "--lengths", "4", "--no-progress"]) == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("case", ["file", "zip-folder", "under-a-file", "full-folder"])
def test_package_names_an_output_it_cannot_write(tmp_path, case):
    taken = tmp_path / "taken"
    taken.write_text("mine")
    full = tmp_path / "full"
    full.mkdir()
    (full / "x").write_text("mine")
    (tmp_path / "folder.zip").mkdir()
    out, needle = {"file": (taken, f"--out {taken} is an existing file"),
                   "zip-folder": (tmp_path / "folder.zip", "is a folder; a path ending in .zip is written as a zip"),
                   "under-a-file": (taken / "t.zip", f"lies under {taken}, which is a file"),
                   "full-folder": (full, f"--out {full} is a folder that is not empty")}[case]
    with pytest.raises(ValueError, match=re.escape(needle)):
        package("react", "me", "us", "react", out)
    assert taken.read_text() == "mine" and (full / "x").read_text() == "mine"


def test_package_into_an_empty_folder_keeps_its_permissions(tmp_path, capsys):
    """A validated package is staged and moved into place: an empty --out folder the user made (shared with a
    group, say) must keep its mode, not take the staging's."""
    from cagekit.cli import main

    out = tmp_path / "pkg"
    out.mkdir()
    out.chmod(0o750)
    assert main(["package", "react", "--name", "a", "--team", "b", "--technique", "c", "--out", str(out)]) == 0
    assert "PASS" in capsys.readouterr().out
    assert (out / "manifest.json").is_file()
    assert stat.S_IMODE(out.stat().st_mode) == 0o750


def test_package_into_an_empty_folder_keeps_its_group(tmp_path, capsys):
    """A folder shared with a group (chgrp, setgid) was replaced by the staged one, of the packager's group: the
    mode was copied over, so the group's members lost the folder."""
    from cagekit.cli import main

    group = 4242 if os.geteuid() == 0 else next((g for g in os.getgroups() if g != os.getegid()), None)
    if group is None:
        pytest.skip("needs root or a second group to give the folder")
    out = tmp_path / "shared"
    out.mkdir()
    os.chown(out, -1, group)
    out.chmod(0o2770)
    assert main(["package", "react", "--name", "a", "--team", "b", "--technique", "c", "--out", str(out)]) == 0
    assert "PASS" in capsys.readouterr().out
    assert (out / "manifest.json").is_file()
    assert (out.stat().st_gid, stat.S_IMODE(out.stat().st_mode)) == (group, 0o2770)


def test_package_into_a_link_to_an_empty_folder_fills_the_folder(tmp_path, capsys):
    """--out a link to an empty folder failed once validated ("Not a directory": the link cannot be removed as a
    folder), though --no-validate wrote into it."""
    from cagekit.cli import main

    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    assert main(["package", "react", "--name", "a", "--team", "b", "--technique", "c", "--out", str(link)]) == 0
    assert "PASS" in capsys.readouterr().out
    assert link.is_symlink() and (real / "manifest.json").is_file()


@pytest.mark.parametrize("accepted", [True, False], ids=["passes", "rejected"])
def test_package_into_the_empty_current_folder(tmp_path, monkeypatch, accepted):
    """`--out .` in an empty folder failed once validated (Invalid argument: the folder cannot remove itself); it is
    filled now, staged inside itself (the folder's own file system), and left empty when the package is rejected."""
    from cagekit.submissions.package import PackageRejected, package

    monkeypatch.chdir(tmp_path)
    if accepted:
        assert package("react", "a", "b", "c", ".", accept=lambda staged: True) == Path(".")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json", "metadata", "submission.py", "team"]
    else:
        with pytest.raises(PackageRejected):
            package("react", "a", "b", "c", ".", accept=lambda staged: False)
        assert list(tmp_path.iterdir()) == []


def test_open_submission_refuses_hash_mismatch(sandbox, sleep_files):
    path = write_zip(_hostile("hash-differs", sleep_files), sandbox / "h.zip")
    with pytest.raises(SubmissionError, match="team/team.json"):
        open_submission(path)


def test_folder_submission_with_symlink_refused(sandbox, sleep_files):
    folder = sandbox / "folder"
    for rel, data in sleep_files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    assert validate(folder, check_wrap=False).ok
    os.symlink("/etc/passwd", folder / "team" / "passwd")
    report = validate(folder)
    assert not report.ok and "symbolic link" in report.failed.message


WRITER = """        import os
        for target in TARGETS:
            try:
                with open(target, "w") as f:
                    f.write("reward_mean: 1000000.0\\n")
            except OSError:
                pass
        for attempt in (lambda: os.remove(TARGETS[0]), lambda: os.system("echo hacked > " + TARGETS[1]),
                        lambda: os.kill(os.getppid(), 0)):
            try:
                attempt()
            except OSError:
                pass
        with open(os.path.join(HERE, "mine.txt"), "a") as f:  # its own folder: allowed
            f.write("x")
        return 0"""


def test_malicious_agent_cannot_change_score_or_files(sandbox, sleep_files):
    results = Path.cwd() / "results.txt"
    outside = sandbox.parent / "outside.txt"
    prefix = f"TARGETS = [{str(results)!r}, {str(outside)!r}]\n"
    path = write_zip(with_code(sleep_files, agent_code(body=WRITER, prefix=prefix)), sandbox / "evil.zip")
    env = make_env(SCENARIO, episode_length=EPISODE, seed=9)
    reference = episode_reward(make_team("sleep", env), seed=9)
    with open_submission(path) as team:
        scores = episode_reward(team, seed=9)
        assert (team.folder / "mine.txt").exists()
    assert scores == reference
    assert results.read_text() == "reward_mean: -5.0\n"
    assert not outside.exists()


def test_act_timeout_kills_worker(sandbox, sleep_files):
    code = agent_code(body="        import time\n        time.sleep(60)\n        return 0")
    path = write_zip(with_code(sleep_files, code), sandbox / "slow.zip")
    env = make_env(SCENARIO, seed=0)
    obs, _ = env.reset(seed=0)
    with open_submission(path, act_timeout=1.0) as team:
        with pytest.raises(SubmissionError, match="timed out"):
            team.act(obs)
        assert not team.worker.alive


def test_an_interrupted_process_pool_leaves_no_submission_folder(tmp_path, sleep_files, monkeypatch):
    """Ctrl-C ends a process pool's workers (SIGTERM) wherever they are: one still opening its submission (its
    folder unpacked, its worker booting: nothing the runner could close yet), or given a second SIGTERM by the
    pool's own manager as it closed its team, ended there and then, leaving its unpacked folder behind."""
    from cagekit.evaluation import EvalConfig
    from cagekit.evaluation.runners import run_processes
    from cagekit.evaluation.sources import SubmissionSource

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    monkeypatch.setenv("TMPDIR", str(tmp))  # for spawned workers too
    path = write_zip(sleep_files, tmp_path / "sleep.zip")
    source = SubmissionSource(str(path))
    source.close()
    config = EvalConfig(scenario=SCENARIO, layout=None, team=source.identity(), episodes=4, lengths=(3,),
                        reds=("SleepAgent",), seed=0, message_cost=0.1, sau=True, channel=True)

    def interrupt(result):
        raise KeyboardInterrupt  # at the first episode played: the other worker is still at its first

    for _ in range(2):
        with pytest.raises(KeyboardInterrupt):
            run_processes(config, source, config.tasks(), interrupt, workers=2)
        assert list(tmp.glob("cagekit-submission-*")) == []  # (a forkserver keeps its own folder there)


def test_harness_scores_a_submission_like_the_team_it_packages(tmp_path):
    """The evaluation harness runs a submission's agents out of process and scores it from its own env."""
    import pandas as pd

    from cagekit.evaluation import cli_main

    example = Path(__file__).resolve().parents[1] / "submissions" / "react-paper-small.zip"
    common = ["--episodes", "2", "--lengths", "10", "--no-progress", "--workers", "1"]
    assert cli_main([str(example), str(tmp_path / "sub"), *common]) == 0
    assert cli_main(["react", str(tmp_path / "heur"), *common]) == 0
    sub = pd.read_csv(tmp_path / "sub" / "results.csv")
    heur = pd.read_csv(tmp_path / "heur" / "results.csv")
    assert len(sub) == 6
    assert sub["reward"].tolist() == heur["reward"].tolist()
    assert sub["bits_sent"].tolist() == heur["bits_sent"].tolist()


def test_one_worker_across_combinations_scores_as_fresh_teams(tmp_path):
    """The harness keeps one submission worker for the whole evaluation (a worker start imports torch); a
    recurrent team played there, combination after combination, must score as the same checkpoint loaded
    afresh in-process for each combination."""
    import pandas as pd

    from cagekit.evaluation import cli_main

    shipped = Path(__file__).resolve().parents[1] / "submissions" / "dial-sau-paper-small.zip"
    with zipfile.ZipFile(shipped) as zf:
        zf.extractall(tmp_path / "unzipped")
    common = ["--episodes", "2", "--lengths", "10,20", "--no-progress", "--workers", "1"]
    assert cli_main([str(shipped), str(tmp_path / "sub"), *common]) == 0
    assert cli_main([str(tmp_path / "unzipped" / "team"), str(tmp_path / "ckpt"), *common]) == 0
    sub = pd.read_csv(tmp_path / "sub" / "results.csv")
    ckpt = pd.read_csv(tmp_path / "ckpt" / "results.csv")
    assert len(sub) == 2 * 2 * 3 and sub["steps"].nunique() == 2
    assert sub["bits_sent"].sum() > 0  # the channel is in use, so the receivers' memory matters
    assert sub["team_reward"].tolist() == ckpt["team_reward"].tolist()
    assert sub["bits_sent"].tolist() == ckpt["bits_sent"].tolist()


def test_seeded_random_submission_scores_the_same_in_one_process_or_two(tmp_path, sandbox):
    """A `random` team packaged with a seed draws from generators of its own; the worker restarts them from
    each episode's seed, so how the episodes are split between processes does not change a score. Neither
    run leaves an unpacked submission in the temporary directory (the sandbox checks), though pool workers
    exit without running atexit or __del__."""
    import pandas as pd

    from cagekit.evaluation import cli_main

    out = package("random", "me", "us", "random", tmp_path / "random.zip", scenario=SCENARIO, seed=3)
    common = ["--episodes", "6", "--lengths", "10", "--reds", "KillChainAgent,ExplorerAgent", "--no-progress"]
    assert cli_main([str(out), str(tmp_path / "one"), *common, "--workers", "1"]) == 0
    assert cli_main([str(out), str(tmp_path / "two"), *common, "--workers", "2"]) == 0
    one = pd.read_csv(tmp_path / "one" / "results.csv")
    two = pd.read_csv(tmp_path / "two" / "results.csv")
    assert len(one) == 12
    assert one["team_reward"].tolist() == two["team_reward"].tolist()
    assert one["bits_sent"].tolist() == two["bits_sent"].tolist()
    assert one["team_reward"].nunique() > 1  # the team does play at random


def test_a_classic_cage2_package_has_no_channel_and_no_masks_by_default(tmp_path):
    """As evaluate's defaults: a lone Blue agent has nobody to talk to (it sent bits and paid for them)."""
    import json
    import zipfile

    from cagekit.submissions import package

    path = package("react", "a", "b", "c", tmp_path / "c2.zip", scenario="cage2", layout="classic")
    manifest = json.loads(zipfile.ZipFile(path).read("manifest.json"))
    assert manifest["channel"] is False and manifest["sau"] is False
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        package("random", "a", "b", "c", tmp_path / "r.zip", seed=-1)


def test_the_package_command_reports_a_refusal_on_stderr_as_the_other_commands_do(tmp_path, capsys):
    """It printed 'error: ...' on stdout, unlike every other `cagekit` command ('cagekit X: error:' on stderr)."""
    from cagekit.cli import main

    argv = ["package", "react", "--name", "a", "--team", "b", "--technique", "c", "--out", str(tmp_path / "t.zip"),
            "--scenario", "nope"]
    assert main(argv) == 2
    printed = capsys.readouterr()
    assert printed.out == "" and printed.err.startswith("cagekit package: error: unknown scenario 'nope'")
    assert not (tmp_path / "t.zip").exists()


@pytest.mark.parametrize("option", ["--name", "--team", "--technique"])
@pytest.mark.parametrize("value", ["", "   "])
def test_package_refuses_an_empty_name_team_or_technique(option, value, tmp_path, capsys):
    """An empty or blank --name, --team or --technique was packaged as it was, so the evaluation's reports named
    the submission by nothing; the command and the Python function refuse it, naming the option."""
    from cagekit.cli import main

    labels = {"--name": "a", "--team": "b", "--technique": "c", option: value}
    argv = ["package", "react", *[x for pair in labels.items() for x in pair], "--out", str(tmp_path / "t.zip")]
    assert main(argv) == 2
    printed = capsys.readouterr()
    assert printed.out == "" and printed.err.startswith(f"cagekit package: error: {option} is empty; give ")
    with pytest.raises(ValueError, match=f"^{option} is empty"):
        package("react", labels["--name"], labels["--team"], labels["--technique"], tmp_path / "t.zip")
    assert not (tmp_path / "t.zip").exists()


def test_package_refuses_to_write_over_another_submission_but_repackages_the_same(tmp_path, capsys):
    """A typo in --out wrote over a packaged team without a word; the same team again (the shipped zips' rebuild
    check) stays allowed, and --replace writes over it on purpose."""
    from cagekit.cli import main

    out = tmp_path / "team.zip"
    package("react", "me", "us", "react", out)
    kept = out.read_bytes()
    assert package("react", "me", "us", "react", out).read_bytes() == kept
    with pytest.raises(FileExistsError, match=re.escape(f"--out {out} already holds a submission (react on "
                                                        f"paper-small, team 'us'), which differs from this one")):
        package("sleep", "me", "them", "sleep", out)
    assert out.read_bytes() == kept
    argv = ["package", "sleep", "--name", "me", "--team", "them", "--technique", "sleep", "--out", str(out),
            "--no-validate"]
    assert main(argv) == 2
    assert "or --replace to write over it" in capsys.readouterr().err and out.read_bytes() == kept
    assert main([*argv, "--replace"]) == 0
    assert json.loads(zipfile.ZipFile(out).read("manifest.json"))["team"] == "them"
    other = tmp_path / "notes.zip"
    other.write_bytes(b"my notes")
    with pytest.raises(FileExistsError, match="already holds a file that is not a cagekit submission"):
        package("react", "me", "us", "react", other)
    assert other.read_bytes() == b"my notes"


def _readme_block(start: str) -> str:
    """The README's code block whose first line is `start` (from that line on)."""
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    found = re.search(r"```python\n(" + re.escape(start) + r".*?)```", text, re.S)
    assert found, f"README has no python block starting {start!r}"
    return found.group(1)


def test_a_python_team_packages_into_a_submission_that_plays_as_the_file_does(tmp_path, monkeypatch, capsys):
    """The README's 'Your own team': its agent class, importing a helper beside it, packaged by `cagekit package
    FILE.py:NAME`, validates and plays the episodes the Python file plays in-process (same actions, same
    return); the helper travels with it."""
    from cagekit.cli import main
    from cagekit.evaluation import PythonSource

    # (a helper name of its own: this process may have imported another test's 'helper' module)
    code = _readme_block("# myteam.py").replace("class Guard(Agent):", "from guard_codes import PRIVILEGED\n\n\n"
                                                "class Guard(Agent):").replace("== 0b11:", "== PRIVILEGED:")
    (tmp_path / "myteam.py").write_text(code)
    (tmp_path / "guard_codes.py").write_text("PRIVILEGED = 0b11\n")
    monkeypatch.chdir(tmp_path)
    argv = ["package", "myteam.py:Guard", "--name", "me", "--team", "us", "--technique", "Guard rules", "--out",
            "guard.zip"]
    assert main(argv) == 0, capsys.readouterr()
    assert "submission guard.zip: PASS" in capsys.readouterr().out
    names = set(zipfile.ZipFile(tmp_path / "guard.zip").namelist())
    assert {"team/myteam.py", "team/guard_codes.py", "team/python_team.json"} <= names
    source = PythonSource(str(tmp_path / "myteam.py"), "Guard")
    env = make_env(SCENARIO, red="KillChainAgent", seed=3, episode_length=EPISODE)
    returns = []
    with open_submission(tmp_path / "guard.zip") as submitted:
        assert (submitted.manifest["source"], submitted.manifest["kind"]) == ("python", "myteam.py:Guard")
        for team in (submitted, source.team_for_episode(env, 3)):
            obs, _ = env.reset(seed=3)
            total, actions = 0.0, []
            while env.agents:
                obs, rewards, _, _, infos = env.step(team.act(obs))
                total += rewards["blue_user"]
                actions.append([infos[a]["action"] for a in env.possible_agents])
            returns.append((total, actions))
    assert returns[0] == returns[1] and any(a != "Sleep" for step in returns[0][1] for a in step)


def test_packaging_a_python_team_names_what_is_wrong_and_writes_nothing(tmp_path, capsys):
    from cagekit.cli import main

    (tmp_path / "myteam.py").write_text("def as_int(env):\n    return 3\n\n\nclass Nothing:\n    pass\n")
    out = tmp_path / "t.zip"
    for source, needle in ((f"{tmp_path / 'myteam.py'}:Guard", "myteam.py has no 'Guard': name an agent class"),
                           (str(tmp_path / "myteam.py"), "has no 'make_team'"),  # FILE.py means FILE.py:make_team
                           (f"{tmp_path / 'myteam.py'}:as_int", "myteam.py:as_int(env) returned int; expected"),
                           (str(tmp_path / "absent.py"), "no such Python file")):
        argv = ["package", source, "--name", "a", "--team", "b", "--technique", "c", "--out", str(out)]
        assert main(argv) == 2
        assert needle in capsys.readouterr().err
    assert not out.exists()


def test_a_python_team_brings_its_data_files_with_include(tmp_path, capsys):
    """A team that reads a data file beside it (its weights) at import: packaged without --include, the
    validator's import fails and names the file; with it, the submission passes and the file travels."""
    from cagekit.cli import main

    team = tmp_path / "weighted.py"
    team.write_text("import json\nfrom pathlib import Path\n\nfrom cagekit.agents import make_team as _make\n\n"
                    "KIND = json.loads((Path(__file__).parent / 'weights.json').read_text())['kind']\n\n\n"
                    "def make_team(env):\n    return _make(KIND, env)\n")
    (tmp_path / "weights.json").write_text('{"kind": "react"}')
    base = ["package", str(team), "--name", "a", "--team", "b", "--technique", "c"]
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "weighted.py").write_text(team.read_text())  # no weights beside it: cannot build
    assert main([*base[:1], str(tmp_path / "pkg" / "weighted.py"), *base[2:], "--out", str(tmp_path / "x.zip")]) == 2
    assert "importing" in capsys.readouterr().err and not (tmp_path / "x.zip").exists()
    # built here, but the file stays behind: its validation fails, and the command exits 2 as for the team that
    # could not be built above (a rejected package exited 1: the same broken team, 1 or 2 by where it failed)
    assert main([*base, "--out", str(tmp_path / "without.zip")]) == 2
    said = capsys.readouterr()
    assert "weights.json" in said.out and "without.zip not written" in said.err
    assert not (tmp_path / "without.zip").exists(), "a package that failed its validation was written"
    assert main([*base, "--out", str(tmp_path / "with.zip"), "--include", "weights.json"]) == 0
    assert "PASS" in capsys.readouterr().out
    assert "team/weights.json" in zipfile.ZipFile(tmp_path / "with.zip").namelist()
    # --replace with a package that fails: the good zip it would have replaced is kept, and nothing is left over
    good = (tmp_path / "with.zip").read_bytes()
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main([*base, "--out", str(tmp_path / "with.zip"), "--replace"]) == 2
    assert "what was there is untouched" in capsys.readouterr().err
    assert (tmp_path / "with.zip").read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == before, "staging left behind"
    # nor the folders made to stage it in, when --out's were new
    assert main([*base, "--out", str(tmp_path / "new" / "deep" / "w.zip")]) == 2
    assert "not written" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == before, "the folders made for a rejected package stayed"
    for bad in ("../outside.json", "missing.json"):
        assert main([*base, "--out", str(tmp_path / "bad.zip"), "--include", bad]) == 2
        assert f"--include {bad}: not a file in {tmp_path}" in capsys.readouterr().err
    # an empty path (an unset shell variable) packed the team's whole folder
    assert main([*base, "--out", str(tmp_path / "bad.zip"), "--include", ""]) == 2
    assert f"--include '' is an empty path: name a file or folder in {tmp_path}" in capsys.readouterr().err
    assert not (tmp_path / "bad.zip").exists()
    assert main(["package", "react", "--name", "a", "--team", "b", "--technique", "c", "--out",
                 str(tmp_path / "r.zip"), "--include", "weights.json"]) == 2
    assert "--include is for a Python team's data files; 'react' is a heuristic" in capsys.readouterr().err


def test_a_packaged_python_team_is_rebuilt_for_each_episode_as_the_file_is(tmp_path, capsys):
    """The harness builds a Python team afresh for every episode, after seeding; the submission's worker built
    it once, at import, and called the agents' own `reseed`. An agent class that draws its generator at
    construction, and a function returning a `random` team of a fixed seed (whose reseed would move it to the
    episode's seed), played other episodes than the file did: results.csv must be the file's byte for byte."""
    from cagekit.cli import main
    from cagekit.evaluation import cli_main

    (tmp_path / "drawn.py").write_text(
        "import random\n\nfrom cagekit.agents import Agent, make_team as _make\n\n\n"
        "class Drawn(Agent):\n    def __init__(self, slot):\n        self.slot = slot\n"
        "        self.rng = random.Random(random.random())  # drawn when built\n\n"
        "    def get_action(self, observation, action_space=None):\n"
        "        action = self.slot.encode(self.rng.randrange(len(self.slot.actions)), 0)\n"
        "        return action if observation['action_mask'][action] else self.slot.encode(0, 0)\n\n\n"
        "def fixed(env):\n    return _make('random', env, seed=7)\n")
    common = ["--episodes", "3", "--lengths", "10", "--reds", "KillChainAgent", "--no-progress", "--workers", "1"]
    for name in ("Drawn", "fixed"):
        spec, out = f"{tmp_path / 'drawn.py'}:{name}", tmp_path / f"{name}.zip"
        assert main(["package", spec, "--name", "a", "--team", "b", "--technique", "c", "--out", str(out),
                     "--no-validate"]) == 0, capsys.readouterr()
        assert cli_main([spec, str(tmp_path / f"{name}-file"), *common]) == 0
        assert cli_main([str(out), str(tmp_path / f"{name}-zip"), *common]) == 0
        played = (tmp_path / f"{name}-file" / "results.csv").read_bytes()
        assert (tmp_path / f"{name}-zip" / "results.csv").read_bytes() == played, name


def test_a_python_team_without_cages_methods_is_refused_by_package_as_by_evaluation(tmp_path, capsys):
    """An agent class with get_action alone failed evaluation.py (no set_initial_values) while its package passed
    validation (the worker calls neither); an abstract class was called as a function ('takes no arguments').
    Both are refused, by both, naming what is missing."""
    from cagekit.cli import main
    from cagekit.evaluation import PythonSource

    (tmp_path / "odd.py").write_text(
        "from abc import abstractmethod\n\nfrom cagekit.agents import Agent\n\n\n"
        "class Bare:\n    def __init__(self, slot):\n        self.slot = slot\n\n"
        "    def get_action(self, observation, action_space=None):\n        return 0\n\n\n"
        "class Abstract(Agent):\n    @abstractmethod\n    def plan(self): ...\n")
    env = make_env(SCENARIO, seed=0)
    env.reset(seed=0)
    for name, needle in (("Bare", "odd.py:Bare: agent 'blue_user' (Bare) has no set_initial_values or end_episode; "
                                  "an agent has CAGE's get_action, end_episode and set_initial_values"),
                         ("Abstract", "odd.py:Abstract is an abstract class (it leaves get_action, plan to a "
                                      "subclass); name an agent class")):
        with pytest.raises(TypeError, match=re.escape(needle)):
            PythonSource(str(tmp_path / "odd.py"), name).team_for_episode(env, 0)
        out = tmp_path / f"{name}.zip"
        assert main(["package", f"{tmp_path / 'odd.py'}:{name}", "--name", "a", "--team", "b", "--technique", "c",
                     "--out", str(out)]) == 2
        assert needle in capsys.readouterr().err and not out.exists()


def test_a_lone_agent_hears_the_whole_step_in_a_submission_as_in_process(tmp_path, capsys):
    """The harness calls every agent's begin_step before get_action, a lone classic Blue too; a submission's
    worker called it only for two agents or more, so a team choosing there (as a centralised one does) played
    other episodes packaged than as its file on cage2's classic layout."""
    from cagekit.cli import main
    from cagekit.evaluation import cli_main

    (tmp_path / "stepper.py").write_text(
        "import random\n\nfrom cagekit.agents import Agent\n\n\nclass Stepper(Agent):\n"
        "    def __init__(self, slot):\n        self.slot, self.choice = slot, 0\n\n"
        "    def begin_step(self, observations):\n        self.choice = random.randrange(len(self.slot.actions))\n\n"
        "    def get_action(self, observation, action_space=None):\n"
        "        action = self.slot.encode(self.choice, 0)\n"
        "        return action if observation['action_mask'][action] else self.slot.encode(0, 0)\n")
    spec, out, where = f"{tmp_path / 'stepper.py'}:Stepper", tmp_path / "stepper.zip", ["--scenario", "cage2"]
    assert main(["package", spec, "--name", "a", "--team", "b", "--technique", "c", "--out", str(out), *where,
                 "--layout", "classic", "--no-validate"]) == 0, capsys.readouterr()
    common = ["--episodes", "2", "--lengths", "10", "--reds", "B_lineAgent", "--no-progress", "--workers", "1"]
    assert cli_main([spec, str(tmp_path / "file"), *common, *where, "--layout", "classic"]) == 0
    assert cli_main([str(out), str(tmp_path / "zip"), *common]) == 0
    assert (tmp_path / "zip" / "results.csv").read_bytes() == (tmp_path / "file" / "results.csv").read_bytes()


def test_include_takes_links_by_their_own_name_folders_and_zeroed_data(tmp_path, capsys):
    """--include kind.txt, a link to runs/best/kind.txt, was packaged as team/runs/best/kind.txt (where the
    team does not look), and so was a helper module that is a link; a folder was refused as 'not a file'; and
    2 MB of zeros (untrained weights) deflated past the validator's zip-bomb ratio, so the package failed its
    own validation. Each now passes, the data where the team reads it."""
    from cagekit.cli import main

    (tmp_path / "team.py").write_text(
        "from pathlib import Path\n\nfrom cagekit.agents import make_team as _make\nfrom linked_rules import END\n\n"
        "HERE = Path(__file__).parent\n"
        "KIND = (HERE / 'kind.txt').read_text().strip() + (HERE / 'data' / 'suffix.txt').read_text().strip() + END\n"
        "assert (HERE / 'zeros.bin').read_bytes() == bytes(2 << 20)\n\n\n"
        "def make_team(env):\n    return _make(KIND, env)\n")
    (tmp_path / "runs" / "best").mkdir(parents=True)
    (tmp_path / "runs" / "best" / "kind.txt").write_text("rea")
    (tmp_path / "kind.txt").symlink_to(tmp_path / "runs" / "best" / "kind.txt")
    (tmp_path / "runs" / "best" / "rules.py").write_text("END = ''\n")
    (tmp_path / "linked_rules.py").symlink_to(tmp_path / "runs" / "best" / "rules.py")  # a helper, linked too
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "suffix.txt").write_text("ct")
    (tmp_path / "zeros.bin").write_bytes(bytes(2 << 20))
    out = tmp_path / "team.zip"
    assert main(["package", str(tmp_path / "team.py"), "--name", "a", "--team", "b", "--technique", "c", "--out",
                 str(out), "--include", "kind.txt", "--include", "data", "--include", "zeros.bin"]) == 0, \
        capsys.readouterr().out
    names = set(zipfile.ZipFile(out).namelist())
    assert {"team/kind.txt", "team/linked_rules.py", "team/data/suffix.txt", "team/zeros.bin"} <= names
    assert not any(name.startswith("team/runs/") for name in names)
    (tmp_path / "empty").mkdir()
    assert main(["package", str(tmp_path / "team.py"), "--name", "a", "--team", "b", "--technique", "c", "--out",
                 str(tmp_path / "x.zip"), "--include", "empty"]) == 2
    assert "--include empty: no file there to include" in capsys.readouterr().err


def test_what_a_python_team_draws_at_import_is_the_same_in_every_process(tmp_path, capsys):
    """A team file that draws at import (a network's initial weights, a random bias) drew from whatever state
    the importing process's generators were in: the file scored in this process and its package in a worker
    played other episodes. The import is seeded, so results.csv is the file's byte for byte."""
    import random

    from cagekit.cli import main
    from cagekit.evaluation import cli_main

    (tmp_path / "drawn_at_import.py").write_text(
        "import random\n\nimport torch\n\nfrom cagekit.agents import Agent\n\n"
        "BIAS = random.randrange(4) + int(torch.randint(0, 4, (1,)))\n\n\n"
        "class Biased(Agent):\n    def __init__(self, slot):\n        self.slot = slot\n\n"
        "    def get_action(self, observation, action_space=None):\n"
        "        action = self.slot.encode((BIAS + random.randrange(2)) % len(self.slot.actions), 0)\n"
        "        return action if observation['action_mask'][action] else self.slot.encode(0, 0)\n")
    random.random()  # this process's generators are anywhere
    spec, out = f"{tmp_path / 'drawn_at_import.py'}:Biased", tmp_path / "biased.zip"
    assert main(["package", spec, "--name", "a", "--team", "b", "--technique", "c", "--out", str(out),
                 "--no-validate"]) == 0, capsys.readouterr()
    common = ["--episodes", "3", "--lengths", "10", "--reds", "KillChainAgent", "--no-progress", "--workers", "1"]
    assert cli_main([spec, str(tmp_path / "file"), *common]) == 0
    assert cli_main([str(out), str(tmp_path / "zip"), *common]) == 0
    assert (tmp_path / "zip" / "results.csv").read_bytes() == (tmp_path / "file" / "results.csv").read_bytes()


def test_an_upper_case_zip_name_is_a_zip_for_package_and_evaluation(tmp_path):
    """`--out TEAM.ZIP` was written as a folder named TEAM.ZIP, and evaluation.py did not take TEAM.ZIP as a
    submission."""
    from cagekit.evaluation import resolve_source
    from cagekit.evaluation.sources import SubmissionSource

    out = package("react", "me", "us", "react", tmp_path / "TEAM.ZIP")
    assert out.is_file() and zipfile.is_zipfile(out)
    assert isinstance(resolve_source(str(out)), SubmissionSource)


def test_a_submissions_agents_hear_set_initial_values_as_the_harness_gives_it(tmp_path, monkeypatch):
    """The harness calls CAGE's set_initial_values(action_space, observation) on every agent at an episode's
    start; a submission's worker never passed it on, so a packaged team that readies itself there failed (or
    played otherwise) where its file played."""
    from cagekit.evaluation import cli_main

    (tmp_path / "ready.py").write_text('''
from cagekit.agents import Agent


class Ready(Agent):
    def __init__(self, slot):
        self.slot, self.first = slot, None

    def set_initial_values(self, action_space=None, observation=None):
        assert action_space.n == self.slot.n_actions and len(observation["action_mask"]) == self.slot.n_actions
        self.first = int(observation["observation"].sum())

    def get_action(self, observation, action_space=None):
        assert self.first is not None, "set_initial_values was not called"
        return self.slot.encode(0, self.first % 2)  # speaks when the first view had an odd number of bits

    def end_episode(self):
        self.first = None
''')
    monkeypatch.chdir(tmp_path)
    package("ready.py:Ready", "me", "us", "ready", tmp_path / "ready.zip")
    report = validate(tmp_path / "ready.zip", check_wrap=False)  # its smoke episode starts as the harness's do
    assert report.ok, report.text()
    options = ["--episodes", "2", "--lengths", "5", "--no-progress"]
    assert cli_main(["ready.py:Ready", str(tmp_path / "file"), *options]) == 0
    assert cli_main([str(tmp_path / "ready.zip"), str(tmp_path / "zip"), *options]) == 0
    assert (tmp_path / "file" / "results.csv").read_bytes() == (tmp_path / "zip" / "results.csv").read_bytes()


def test_package_refuses_a_seed_for_a_team_that_has_no_generators_of_its_own(tmp_path):
    """--seed seeds the random heuristic's generators; for a Python team it was silently dropped."""
    (tmp_path / "mine.py").write_text("from cagekit.agents import make_team as _make\n\n\n"
                                      "def make_team(env):\n    return _make('react', env)\n")
    with pytest.raises(ValueError, match=r"--seed seeds a heuristic team's generators .* is a python team"):
        package(f"{tmp_path / 'mine.py'}", "a", "b", "c", tmp_path / "t.zip", seed=3)
    assert not (tmp_path / "t.zip").exists()
    assert package("random", "a", "b", "c", tmp_path / "r.zip", seed=3).is_file()


@pytest.mark.parametrize("body, error", [
    ("        raise RuntimeError('ops broke')", "RuntimeError: ops broke"),
    ("        return 'x'", "action 'x' (str) is not one integer 0..15"),
    ("        return 99", "action 99 outside its action space (an integer 0..15)"),
])
def test_a_failure_names_the_submitted_agent_at_fault_not_the_first_to_ask(body, error, tmp_path, capsys, sandbox,
                                                                          sleep_files):
    """One call asks the worker for every agent's action of a step (through the first agent's begin_step): an
    error of blue_ops was reported as blue_user's, and a non-integer action named neither the agent nor the range."""
    from cagekit.evaluation import cli_main

    code = agent_code(body="        if self.name == 'blue_ops':\n" + body.replace("        ", "            ", 1)
                      + "\n        return 0",
                      extra="    @staticmethod\n    def wrap(env):\n        return env\n"
                            "for _name, _agent in Submission.AGENTS.items():\n    _agent.name = _name")
    path = write_zip(with_code(sleep_files, code), sandbox / "ops.zip")
    report = validate(path, import_timeout=30.0, check_wrap=False)
    assert not report.ok and "blue_ops" in report.failed.message and error in report.failed.message, report.text()
    assert cli_main([str(path), str(tmp_path / "out"), "--episodes", "1", "--lengths", "5", "--no-progress"]) != 0
    err = " ".join(capsys.readouterr().err.split())
    assert "agent 'blue_ops' raised" in err and "blue_user" not in err and error in err, err


def test_a_hang_names_the_submitted_agent_that_hangs_not_the_first_to_ask(tmp_path, capsys, sandbox, sleep_files):
    """A stuck worker cannot answer whose call hangs: blue_ops hanging was reported as blue_user's, at the
    worker's own time limit and at the harness's --step-timeout. The worker names it in a page both map."""
    from cagekit.evaluation import cli_main

    code = agent_code(body="        if self.name == 'blue_ops':\n            time.sleep(60)\n        return 0",
                      extra="    @staticmethod\n    def wrap(env):\n        return env\n"
                            "import time\nfor _name, _agent in Submission.AGENTS.items():\n    _agent.name = _name")
    path = write_zip(with_code(sleep_files, code), sandbox / "hang.zip")
    report = validate(path, import_timeout=30.0, act_timeout=1.0, check_wrap=False)
    assert not report.ok and "timed out at act in agent 'blue_ops'" in report.failed.message, report.text()
    assert cli_main([str(path), str(tmp_path / "out"), "--episodes", "1", "--lengths", "5", "--no-progress",
                     "--step-timeout", "1"]) != 0
    err = " ".join(capsys.readouterr().err.split())
    assert "agent 'blue_ops' exceeded the step timeout of 1 s" in err and "blue_user" not in err, err


@pytest.mark.parametrize("name", ["bläu_ops", "ä" * 200, "x" * 300])
def test_the_agent_in_call_is_named_whole_however_long(tmp_path, name):
    """The page holds 255 bytes of the name: an agent named longer (a scenario of one's own names its agents)
    was reported cut, with a replacement character where a letter's bytes were split."""
    from cagekit.submissions.worker import _InCall
    from cagekit.submissions.worker_client import IN_CALL_SIZE, Worker

    page = tmp_path / "in-call"
    page.write_bytes(bytes(IN_CALL_SIZE))
    worker = object.__new__(Worker)  # its reading side, without a process
    worker._in_call, worker.info = page, {"agents": ["other", name, name[:3]]}
    in_call = _InCall(str(page))
    in_call(name)
    assert worker.agent_in_call() == name
    in_call(None)
    assert worker.agent_in_call() is None


def test_an_agent_class_that_takes_no_slot_is_refused_naming_how_it_is_built(tmp_path, capsys):
    """A CAGE agent from elsewhere (built without arguments) failed deep in the harness with Python's "takes 1
    positional argument but 2 were given"; evaluation and package now say how an agent class is built and what
    to name instead."""
    from cagekit.cli import main
    from cagekit.evaluation import PythonSource

    (tmp_path / "cage.py").write_text(
        "class CageStyle:\n    def get_action(self, observation, action_space):\n        return 0\n\n"
        "    def end_episode(self):\n        pass\n\n"
        "    def set_initial_values(self, action_space, observation):\n        pass\n\n\n"
        "def make_team(env):\n    return {name: CageStyle() for name in env.possible_agents}\n")
    env = make_env(SCENARIO, seed=0)
    env.reset(seed=0)
    needle = "cage.py:CageStyle: an agent class is built once per blue agent as CageStyle(slot)"
    with pytest.raises(TypeError, match=re.escape(needle)):
        PythonSource(str(tmp_path / "cage.py"), "CageStyle").team_for_episode(env, 0)
    out = tmp_path / "cage.zip"
    assert main(["package", f"{tmp_path / 'cage.py'}:CageStyle", "--name", "a", "--team", "b", "--technique", "c",
                 "--out", str(out)]) == 2
    assert needle in capsys.readouterr().err and not out.exists()
    team = PythonSource(str(tmp_path / "cage.py"), "make_team").team_for_episode(env, 0)  # the way the message gives
    assert sorted(team.agents) == sorted(env.possible_agents)


def test_evaluating_an_unsafe_zip_names_the_submission_it_refused(tmp_path, capsys, sandbox, sleep_files):
    """evaluation.py reported a zip with a '..' entry as "error: entry '../evil.txt': ..." alone, naming neither
    the submission nor that it was refused, as it does every other refusal."""
    from cagekit.evaluation import cli_main

    path = zip_of(sandbox / "traversal.zip", [*sleep_files.items(), ("../evil.txt", b"x")])
    assert cli_main([str(path), str(tmp_path / "out"), "--episodes", "1", "--lengths", "5", "--no-progress"]) != 0
    err = " ".join(capsys.readouterr().err.split())
    assert f"submission {path} refused: entry '../evil.txt': '..' in path" in err, err
    assert not (tmp_path / "out").exists() and not (sandbox.parent / "evil.txt").exists()


@pytest.mark.parametrize("method", ["end_episode", "reseed"])
def test_a_failing_end_episode_or_reseed_names_the_agent_not_its_object(method, sandbox, sleep_files):
    """The worker's loops over AGENTS for end_episode and seed reused the variable that names the agent being
    called, so an error there was reported as "agent '<submission.A object at 0x...>'"."""
    code = agent_code(extra="    @staticmethod\n    def wrap(env):\n        return env\n"
                            f"def _boom(self, *args):\n    raise RuntimeError('{method} broke')\nA.{method} = _boom")
    path = write_zip(with_code(sleep_files, code), sandbox / f"{method}.zip")
    report = validate(path, import_timeout=30.0, check_wrap=False)
    assert not report.ok and f"{method} broke" in report.failed.message, report.text()
    assert "object at" not in report.failed.message and "(agent 'blue_user')" in report.failed.message, report.text()


def test_a_submissions_agent_takes_a_bare_observation_vector_as_the_team_in_process_does(tmp_path):
    """CAGE's get_action(observation, action_space) with a bare vector (no mask), which an agent in this process
    takes: through a submission the worker's agent got an empty action mask with it, so react indexed past its
    end (IndexError) and random found no action to choose from (ValueError)."""
    env = make_env(SCENARIO, red="KillChainAgent", seed=0)
    local = make_team("react", env)
    with open_submission(package("react", "me", "us", "react", tmp_path / "react.zip")) as team:
        for episode_seed in (0, 1):
            obs, _ = env.reset(seed=episode_seed)
            for _ in range(6):
                vectors = {name: obs[name]["observation"] for name in obs}
                actions = {name: team.agents[name].get_action(vectors[name], env.action_space(name)) for name in obs}
                assert actions == {name: local.agents[name].get_action(vectors[name], env.action_space(name))
                                   for name in obs}
                obs, *_ = env.step(actions)
    # random draws among the actions SAU leaves, as in this process (it drew among every action, the masked ones
    # too, which the environment plays as Sleep: its generated submission.py built the agents without `sau`)
    local = make_team("random", env, seed=4)
    with open_submission(package("random", "me", "us", "random", tmp_path / "random.zip", seed=4)) as team:
        obs, _ = env.reset(seed=0)
        refused = 0
        while env.agents:
            vectors = {name: obs[name]["observation"] for name in obs}
            actions = {name: team.agents[name].get_action(vectors[name], env.action_space(name)) for name in obs}
            assert actions == {name: local.agents[name].get_action(vectors[name], env.action_space(name))
                               for name in obs}
            obs, _, _, _, infos = env.step(actions)
            refused += sum(int(info["invalid_action"]) for info in infos.values())
        assert refused == 0


def test_package_into_a_folder_it_cannot_write_names_out(tmp_path, capsys, monkeypatch):
    """A read-only --out folder was refused with the error of the staging folder made beside it
    ("[Errno 13] Permission denied: '/x/.team.zip.staged-k2j4'"), a path the user never gave; it names --out."""
    import tempfile

    from cagekit.cli import main

    def refused(*args, dir=None, **kwargs):
        raise PermissionError(13, "Permission denied", str(Path(dir) / ".team.zip.staged-k2j4"))

    monkeypatch.setattr(tempfile, "TemporaryDirectory", refused)
    out = tmp_path / "team.zip"
    assert main(["package", "react", "--name", "a", "--team", "b", "--technique", "c", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"--out {out}: cannot write in {tmp_path} (Permission denied)" in err and "staged" not in err, err
    assert not out.exists()


def test_a_dial_submission_loads_and_acts_without_the_engine(tmp_path):
    """A DIAL team's worker needs torch and the team's agents, not CybORG: its agents read the quiet host codes
    from the blue table's module (cagekit.engine.table), not from the wrappers (whose package imports the engine,
    ~0.3 s of every worker's start), and loading a trained team imports no learner (cagekit.agents.dial and .qmix
    import their modules when a name is asked for). Checked in a fresh process that does what the worker does:
    its boot imports, then submission.py, then one act per agent."""
    shipped = Path(__file__).resolve().parents[1] / "submissions" / "dial-sau-paper-small.zip"
    with zipfile.ZipFile(shipped) as archive:
        archive.extractall(tmp_path)
    script = """
import importlib.util, json, sys
import gymnasium.spaces, numpy as np, cagekit.agents, torch  # the worker's boot (with --torch)
sys.path.insert(0, sys.argv[1])
spec = importlib.util.spec_from_file_location("submission", sys.argv[1] + "/submission.py")
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
for agent in module.Submission.AGENTS.values():
    slot = agent.slot
    agent.get_action({"observation": np.zeros(slot.obs_size, np.int8), "action_mask": np.ones(slot.n_actions, np.int8)})
print(json.dumps(sorted(sys.modules)))
"""
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    modules = set(json.loads(done.stdout))
    assert "cagekit.agents.dial.team" in modules  # it did load the DIAL team
    heavy = ["csle_cyborg", "CybORG", "cagekit.engine.adapter", "cagekit.engine.catalog", "cagekit.wrappers",
             "cagekit.agents.dial.learner", "cagekit.agents.qmix.learner"]
    assert [m for m in heavy if m in modules] == []


def test_a_zip_whose_write_fails_leaves_the_one_before_and_no_temporary(tmp_path, monkeypatch):
    """write_zip renamed a `.tmp` over the zip but left the `.tmp` when the write failed (a full disk): now written
    through `written_whole`, as checkpoints and meta.json are."""
    out = write_zip({"a.txt": b"before"}, tmp_path / "team.zip")
    before = out.read_bytes()

    def full_disk(self: Path, data: bytes) -> int:
        with open(self, "wb") as f:
            f.write(data[:10])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", full_disk)
    with pytest.raises(OSError, match="No space left"):
        write_zip({"a.txt": b"after"}, out)
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["team.zip"]
