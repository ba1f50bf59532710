"""The evaluation harness: protocol statistics, identical files from serial / workers / resumed runs, the
file formats, failures that name the agent and step, journals of another configuration refused, and
(slow) CAGE-2's published Sleep row reproduced with the classic single Blue agent."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cagekit.agents import Team, make_team
from cagekit.agents.heuristics import SleepAgent
from cagekit.evaluation import (
    EvalConfig,
    EvaluationFailure,
    HeuristicSource,
    JournalMismatch,
    TeamSource,
    cli_main,
    episode_seed,
    evaluate,
    resolve_source,
)
from cagekit.evaluation.protocol import combination_stats, t_quantile, total_score
from cagekit.evaluation.runners import START_METHOD_ENV, _context
from cagekit.evaluation.sources import default_team

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_REACT = ROOT / "submissions" / "react-paper-small.zip"
OUTPUTS = ("summary.txt", "full.txt", "scores.txt", "results.csv", "scores.png")
SMALL = ["--scenario", "paper-small", "--episodes", "3", "--lengths", "5,8", "--no-progress"]


def _cli(*args: str) -> int:
    return cli_main(list(args))


def _same_outputs(a: Path, b: Path) -> None:
    for name in OUTPUTS:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    ja, jb = (json.loads((d / "summary.json").read_text()) for d in (a, b))
    ja.pop("time"), jb.pop("time")
    assert ja == jb


def _config(**kw: Any) -> EvalConfig:
    base = dict(scenario="paper-small", layout=None, team=HeuristicSource("sleep").identity(), episodes=2, lengths=(4,),
                reds=("KillChainAgent", "SleepAgent"), seed=0, message_cost=0.1, sau=True, channel=True)
    base.update(kw)
    return EvalConfig(**base)


# protocol -------------------------------------------------------------------------------------

def test_seeds_depend_only_on_their_coordinates() -> None:
    assert episode_seed(0, 30, "B_lineAgent", 4) == episode_seed(0, 30, "B_lineAgent", 4)
    seeds = {episode_seed(s, n, r, i) for s in (0, 1) for n in (30, 50) for r in ("a", "b") for i in range(5)}
    assert len(seeds) == 40


def test_statistics() -> None:
    assert t_quantile(0.975, 9) == pytest.approx(2.262157, abs=1e-5)
    assert t_quantile(0.975, math.inf) == pytest.approx(1.959964, abs=1e-5)
    s = combination_stats(30, "r", [1.0, 2.0, 3.0, 4.0], [1, 1, 1, 1], [0.1] * 4)
    assert s.mean == 2.5 and s.stdev == pytest.approx(np.std([1, 2, 3, 4], ddof=1))
    assert s.ci95 == pytest.approx(t_quantile(0.975, 3) * s.stdev / 2)
    other = combination_stats(50, "r", [0.0, 0.0], [0, 0], [0, 0])
    total = total_score([s, other])
    assert total.score == 2.5 and total.ci95 == pytest.approx(s.ci95)  # one variance: its own t


# runners and resume ---------------------------------------------------------------------------

@pytest.mark.parametrize("start_method", ["", "forkserver"])  # "": the default (fork when single-threaded)
def test_workers_give_the_serial_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, start_method: str) -> None:
    monkeypatch.setenv(START_METHOD_ENV, start_method)
    assert _cli("random", str(tmp_path / "serial"), *SMALL) == 0
    assert _cli("random", str(tmp_path / "workers"), *SMALL, "--workers", "2") == 0
    _same_outputs(tmp_path / "serial", tmp_path / "workers")


def test_no_more_worker_processes_start_than_episodes_to_play(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fork pool starts all its processes at once: `--workers 100000` for three episodes forked 100,000
    evaluation processes (minutes of a stalled machine) where three can play everything."""
    import multiprocessing

    from cagekit.evaluation.runners import run_processes

    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("the pools that start every process at once are fork pools")
    monkeypatch.setenv(START_METHOD_ENV, "fork")
    config = _config(reds=("SleepAgent",), lengths=(3,))
    seen: list[int] = []
    run_processes(config, HeuristicSource("sleep"), config.tasks(),
                  lambda result: seen.append(len(multiprocessing.active_children())), workers=12)
    assert len(seen) == 2 and max(seen) <= 2, seen


def test_a_process_pool_holds_no_finished_episode(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pool's runner kept every future it handed out (to report the first failure in the protocol's order),
    each with its episode's result, for the whole run: memory growing with the episodes played."""
    import gc
    from concurrent.futures import Future

    from cagekit.evaluation.runners import run_processes

    config = _config(reds=("SleepAgent",), lengths=(1,), episodes=30)
    held: list[int] = []

    def on_result(result: Any) -> None:
        held.append(sum(1 for o in gc.get_objects() if type(o) is Future and o.done()))

    run_processes(config, HeuristicSource("sleep"), config.tasks(), on_result, workers=1)
    assert len(held) == 30 and max(held) <= 4, held  # the one being handed over, and a window's (3 per worker)


def test_worker_start_method(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fork only while single-threaded (on Linux); an unknown override is refused with the valid ones."""
    import threading

    monkeypatch.delenv(START_METHOD_ENV, raising=False)
    if sys.platform == "linux" and threading.active_count() == 1:
        assert _context().get_start_method() == "fork"
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        assert _context().get_start_method() != "fork"
    finally:
        stop.set()
        thread.join()
    monkeypatch.setenv(START_METHOD_ENV, "teleport")
    with pytest.raises(ValueError, match="valid: .*spawn"):
        _context()


def test_ray_gives_the_serial_files(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    import ray

    args = ["random", "--scenario", "paper-small", "--episodes", "2", "--lengths", "5", "--no-progress"]
    assert _cli(args[0], str(tmp_path / "serial"), *args[1:]) == 0
    try:
        assert _cli(args[0], str(tmp_path / "ray"), *args[1:], "--backend", "ray", "--workers", "2") == 0
    finally:
        ray.shutdown()
    _same_outputs(tmp_path / "serial", tmp_path / "ray")


def _journal_episodes(path: Path) -> int:
    if not path.exists():
        return 0
    return max(0, path.read_bytes().count(b"\n") - 1)


def test_resume_after_a_kill_gives_the_uninterrupted_files(tmp_path: Path) -> None:
    args = ["random", "--scenario", "paper-small", "--episodes", "5", "--lengths", "60,100", "--no-progress"]
    killed = tmp_path / "killed"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, str(ROOT / "evaluation.py"), args[0], str(killed), *args[1:]],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while _journal_episodes(killed / "journal.jsonl") < 3 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    journaled = _journal_episodes(killed / "journal.jsonl")
    assert 3 <= journaled < 30, f"the run was not interrupted mid-way ({journaled} episodes journaled)"
    assert not (killed / "summary.txt").exists()
    assert _cli(args[0], str(killed), *args[1:]) == 0
    assert _cli(args[0], str(tmp_path / "whole"), *args[1:]) == 0
    _same_outputs(killed, tmp_path / "whole")


def test_a_cut_journal_line_is_dropped(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert _cli("react", str(out), *SMALL) == 0
    journal = out / "journal.jsonl"
    lines = journal.read_bytes().split(b"\n")
    journal.write_bytes(b"\n".join(lines[:4]) + b"\n" + lines[4][: len(lines[4]) // 2])
    (out / "summary.txt").unlink()
    assert _cli("react", str(out), *SMALL) == 0
    # the cut line is gone, not glued to the next record: the journal holds every episode, once, whole
    records = [json.loads(line) for line in journal.read_text().splitlines()]
    assert [r["type"] for r in records] == ["config"] + ["episode"] * 18
    assert len({(r["length"], r["red"], r["index"]) for r in records[1:]}) == 18
    assert _cli("react", str(tmp_path / "whole"), *SMALL) == 0
    _same_outputs(out, tmp_path / "whole")


@pytest.mark.parametrize("damage", ['[1, 2, 3]', '"hello"', '{"type": "episode", "length": 5}',
                                    'REWARD'])
def test_a_damaged_journal_record_is_played_again(tmp_path: Path, damage: str) -> None:
    """A record that is JSON but not an episode's (or has a bad field) ends the good part, as a cut line does."""
    out = tmp_path / "out"
    assert _cli("react", str(out), *SMALL) == 0
    journal = out / "journal.jsonl"
    lines = journal.read_text().splitlines()
    bad = lines[3].replace('"reward":', '"reward":"abc","was":') if damage == "REWARD" else damage
    journal.write_text("\n".join([*lines[:3], bad, *lines[4:]]) + "\n")
    (out / "summary.txt").unlink()
    assert _cli("react", str(out), *SMALL) == 0
    assert _cli("react", str(tmp_path / "whole"), *SMALL) == 0
    _same_outputs(out, tmp_path / "whole")


def test_a_journal_of_another_configuration_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    assert _cli("react", str(out), *SMALL) == 0
    before = (out / "journal.jsonl").read_bytes()
    assert _cli("react", str(out), *SMALL, "--seed", "7", "--no-sau") == 1
    err = capsys.readouterr().err
    assert "seed" in err and "sau" in err and "another" in err
    assert (out / "journal.jsonl").read_bytes() == before
    with pytest.raises(JournalMismatch, match="team"):
        evaluate(_config(team={"kind": "heuristic", "name": "sleep"}, episodes=3, lengths=(5, 8),
                         reds=("KillChainAgent", "ExplorerAgent", "SleepAgent"), cagekit_version="0.1.0"),
                 HeuristicSource("sleep"), out, progress=False)


@pytest.mark.parametrize("change", [{"detection": 0.5}, {"message_cost": 0.3}, {"green": "none"}, {"view": "team"},
                                    {"sau": False}, {"channel": False}, {"simulator": "twin"}, {"episodes": 3},
                                    {"scenario": "paper-large"}, {"cagekit_version": "9.9"}])
def test_every_setting_that_decides_the_results_refuses_the_journal(tmp_path: Path, change: dict[str, Any]) -> None:
    """A journal is resumed only when every setting that changes an episode (or its bits and cost) agrees."""
    base = dict(lengths=(3,), reds=("SleepAgent",), episodes=1)
    evaluate(_config(**base), HeuristicSource("sleep"), tmp_path, progress=False)
    (field,) = change
    with pytest.raises(JournalMismatch, match=rf"{field}: journal has"):
        evaluate(_config(**{**base, **change}), HeuristicSource("sleep"), tmp_path, progress=False)


def test_a_rerun_with_nothing_to_play_rewrites_the_reports_byte_for_byte(tmp_path: Path) -> None:
    """The first run played the episodes: a rerun that plays none keeps summary.json's time block, so every
    file stays as it was; a summary.json lost since is written again from the journal's start."""
    out = tmp_path / "out"
    assert _cli("react", str(out), *TINY) == 0
    before = {f.name: f.read_bytes() for f in out.iterdir()}
    assert _cli("react", str(out), *TINY) == 0
    assert {f.name: f.read_bytes() for f in out.iterdir()} == before
    (out / "summary.json").unlink()
    assert _cli("react", str(out), *TINY) == 0
    assert json.loads((out / "summary.json").read_text())["time"]["start"] == \
        json.loads(before["summary.json"])["time"]["start"]


def test_a_journal_from_before_the_view_field_resumes(tmp_path: Path) -> None:
    """Journals written before EvalConfig had `view` meant the own view: they resume, not mismatch."""
    out = tmp_path / "out"
    assert _cli("react", str(out), *SMALL) == 0
    journal = out / "journal.jsonl"
    lines = journal.read_text().splitlines()
    header = json.loads(lines[0])
    assert header["config"].pop("view") == "own"
    journal.write_text("\n".join([json.dumps(header), *lines[1:4]]) + "\n")
    (out / "summary.txt").unlink()
    assert _cli("react", str(out), *SMALL) == 0
    assert _cli("react", str(tmp_path / "whole"), *SMALL) == 0
    _same_outputs(out, tmp_path / "whole")


class _Posing(TeamSource):
    """A sleep team presenting the identity it is given (a checkpoint's, say), as its config names it."""

    def __init__(self, identity: dict[str, Any]):
        self._identity, self.label = identity, "posing"

    def identity(self) -> dict[str, Any]:
        return dict(self._identity)

    def team_for_episode(self, env: Any, seed: int) -> Team:
        return make_team("sleep", env, seed)


def _posing(team: dict[str, Any], out: Path) -> None:
    evaluate(_config(team=team), _Posing(team), out, progress=False)


def test_a_moved_team_resumes_its_journal_but_other_weights_do_not(tmp_path: Path) -> None:
    """A checkpoint's identity is its content (sha256); the folder it was read from is only where it was."""
    out = tmp_path / "out"
    team = {"kind": "checkpoint", "path": "/old/place/run", "algo": "dial-sau", "sha256": "a" * 64}
    _posing(team, out)
    before = (out / "journal.jsonl").read_bytes()
    _posing({**team, "path": "/new/place/run"}, out)
    assert (out / "journal.jsonl").read_bytes() == before  # every episode reused, nothing replayed
    with pytest.raises(JournalMismatch, match="sha256"):
        _posing({**team, "sha256": "b" * 64}, out)


def test_a_config_naming_another_team_than_the_one_scored_is_refused(tmp_path: Path) -> None:
    """Else random's episodes would be journaled and reported as react's, and react's own run would resume
    them: the configuration's team must be the source's identity."""
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=r"the configuration's team \{'kind': 'heuristic', 'name': 'react'\} is "
                                         r"not the team given to score, random .*nothing was written"):
        evaluate(_config(team=HeuristicSource("react").identity()), HeuristicSource("random"), out, progress=False)
    assert not out.exists()


# output folders and teams refused before anything is written ----------------------------------------

TINY = ["--episodes", "1", "--lengths", "5", "--reds", "SleepAgent", "--no-progress"]


def test_an_episode_count_past_any_evaluation_is_refused_at_once(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture) -> None:
    """`--episodes 100000000` (a slip of the keys) listed its 300 million tasks before a word was said: 5 GB
    in 12 s, growing. It is refused, naming the most, with nothing written; the most is taken."""
    from cagekit.evaluation.protocol import MAX_EPISODES

    out = tmp_path / "out"
    started = time.monotonic()
    assert _cli("react", str(out), "--episodes", "100000000", "--lengths", "5", "--no-progress") == 1
    assert time.monotonic() - started < 10
    assert "episodes must be at most 100,000 per combination" in " ".join(capsys.readouterr().err.split())
    assert not out.exists()
    assert _config(episodes=MAX_EPISODES).episodes == MAX_EPISODES


def test_names_and_paths_are_printed_as_they_are(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """What the user named is printed as written, not as rich markup or emoji codes: "team.py:A: agent ..."
    read "team.py🅰 agent ...", and an output folder or team name holding "[red]" lost it."""
    team = tmp_path / "team.py"
    team.write_text("class A:\n    def __init__(self, slot):\n        pass\n\n"
                    "    def get_action(self, observation, action_space=None):\n        return 0\n")
    assert _cli(f"{team}:A", str(tmp_path / "refused"), *TINY) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "team.py:A: agent 'blue_user' (A) has no set_initial_values or end_episode" in err, err
    out = tmp_path / "[red]x"
    assert _cli("react", str(out), "--team-name", "[bold]me:a:", *TINY) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert f"files in {out}/: summary.txt" in printed and "[bold]me:a: (heuristic react)" in printed, printed


@pytest.mark.parametrize("journal", ["missing", "empty"])
def test_reports_no_journal_vouches_for_are_never_overwritten(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                              journal: str) -> None:
    """Another team's results.csv and summaries in a folder whose journal is gone (or empty) stay as they are."""
    out = tmp_path / "out"
    assert _cli("react", str(out), *TINY) == 0
    if journal == "missing":
        (out / "journal.jsonl").unlink()
    else:
        (out / "journal.jsonl").write_text("")
    before = {f.name: f.read_bytes() for f in out.iterdir()}
    capsys.readouterr()
    assert _cli("sleep", str(out), *TINY) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert f"output folder {out} holds files an evaluation writes (" in err and "results.csv" in err
    assert f"(journal.jsonl is {journal})" in err and "choose another output folder" in err
    assert {f.name: f.read_bytes() for f in out.iterdir()} == before


def test_a_users_own_folder_is_written_beside_but_its_report_names_are_refused(tmp_path: Path,
                                                                             capsys: pytest.CaptureFixture) -> None:
    """A user's folder: unrelated files stay as they are and the evaluation (and its rerun) goes on beside them;
    a file of the user's named as a report is refused as theirs, not called an evaluation's, and kept."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("my notes")
    assert _cli("react", str(mine), *TINY) == 0
    written = {f.name: f.read_bytes() for f in mine.iterdir()}
    assert written["notes.txt"] == b"my notes"
    assert _cli("react", str(mine), *TINY) == 0  # its journal vouches for the reports: a rerun, nothing refused
    assert {f.name: f.read_bytes() for f in mine.iterdir()} == written
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "results.csv").write_text("my,own,table\n")
    capsys.readouterr()
    assert _cli("react", str(theirs), *TINY) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert (f"output folder {theirs} holds files an evaluation writes (results.csv) that no journal vouches for "
            f"(journal.jsonl is missing): another run's reports or files of your own, so they are not overwritten"
            ) in err
    assert [f.name for f in theirs.iterdir()] == ["results.csv"]
    assert (theirs / "results.csv").read_text() == "my,own,table\n"
    odd = tmp_path / "odd"
    (odd / "journal.jsonl").mkdir(parents=True)  # was a bare "[Errno 21] Is a directory"
    assert _cli("react", str(odd), *TINY) == 1
    assert f"output folder {odd} holds folders named as the files an evaluation writes (journal.jsonl)" in \
        " ".join(capsys.readouterr().err.split())


def test_a_mismatched_journal_advises_what_works(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Deleting only the journal, as the message once advised, leaves reports that are then refused."""
    out = tmp_path / "out"
    assert _cli("react", str(out), *TINY) == 0
    capsys.readouterr()
    assert _cli("react", str(out), *TINY, "--seed", "3") == 1
    assert f"Use another output folder, or empty {out} to start over" in " ".join(capsys.readouterr().err.split())


def test_an_output_folder_that_is_a_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    file = tmp_path / "taken"
    file.write_text("mine")
    assert _cli("sleep", str(file), *TINY) == 1
    assert f"output folder {file} is a file" in " ".join(capsys.readouterr().err.split())
    assert _cli("sleep", str(file / "below"), *TINY) == 1
    assert f"lies under {file}, which is a file" in " ".join(capsys.readouterr().err.split())
    assert file.read_text() == "mine"


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained DIAL-SAU checkpoint: loading it is what is tested, not its play."""
    from cagekit.agents.dial import DialLearner

    path = tmp_path_factory.mktemp("ckpt") / "team"
    DialLearner("dial-sau", "paper-small", seed=0, config={"batch_episodes": 2}).save(path)
    return path


def test_an_output_folder_in_the_team_itself_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                        tiny_checkpoint: Path) -> None:
    """Reports written into the evaluated checkpoint's folder changed the files that identify it, so the same
    command then refused its own journal (no resuming after Ctrl-C); written into a submission folder they were
    files its manifest does not list, and the submission no longer opened. Refused, with nothing written."""
    import shutil

    from cagekit.submissions import package, validate

    team = tmp_path / "team"
    shutil.copytree(tiny_checkpoint, team)
    before = sorted(f.name for f in team.iterdir())
    assert _cli(str(team), str(team), *TINY) == 1
    assert "is the evaluated checkpoint's own folder" in " ".join(capsys.readouterr().err.split())
    assert sorted(f.name for f in team.iterdir()) == before
    submission = package("sleep", "me", "us", "sleep", tmp_path / "sub")  # a folder
    for out in (submission, submission / "results", submission / "team"):
        assert _cli(str(submission), str(out), *TINY) == 1
        assert "the evaluated submission's folder" in " ".join(capsys.readouterr().err.split())
    assert validate(submission, check_wrap=False).ok
    assert _cli(str(submission), str(tmp_path / "beside"), *TINY) == 0  # anywhere else, as before
    assert _cli(str(team), str(tmp_path / "team-out"), *TINY) == 0


@pytest.mark.parametrize("damage", ["truncated weights", "unknown algorithm"])
def test_a_team_that_cannot_load_is_refused_before_the_journal(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                               tiny_checkpoint: Path, damage: str) -> None:
    """Refused with the cause and nothing written; no advice to rerun, and once the file is mended the same
    command runs (no journal was left tied to the damaged file's hash)."""
    import shutil

    team = tmp_path / "team"
    shutil.copytree(tiny_checkpoint, team)
    good = {f.name: f.read_bytes() for f in team.iterdir()}
    if damage == "truncated weights":
        (team / "model.pt").write_bytes(good["model.pt"][: len(good["model.pt"]) // 2])
        needle = f"corrupt or unreadable checkpoint file {team / 'model.pt'}"
    else:
        (team / "meta.json").write_text(json.dumps({**json.loads(good["meta.json"]), "algo": "bogus"}))
        needle = "has algorithm 'bogus'; known: dial-sau"
    out = tmp_path / "out"
    assert _cli(str(team), str(out), *TINY) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert f"the team {team} cannot be evaluated (nothing was written)" in err and needle in err
    assert "rerun" not in err
    assert not out.exists()
    for name, data in good.items():
        (team / name).write_bytes(data)
    assert _cli(str(team), str(out), *TINY) == 0


def test_a_damaged_sb3_model_is_named(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """SB3's own error for a damaged model.zip names no file ('No data found in the saved file')."""
    import zipfile

    from cagekit.agents.sb3 import train_sb3

    run = tmp_path / "run"
    train_sb3("dqn", "paper-small", steps=64, seed=0, out_dir=run, n_envs=1, progress_bar=False)
    model = run / "model.zip"
    with zipfile.ZipFile(model) as zf:  # a damaged archive: every member but SB3's "data"
        kept = {name: zf.read(name) for name in zf.namelist() if name != "data"}
    with zipfile.ZipFile(model, "w") as zf:
        for name, data in kept.items():
            zf.writestr(name, data)
    assert _cli(str(run), str(tmp_path / "out"), *TINY) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert f"cannot load the SB3 model {model}: corrupt, truncated or not a DQN model" in err
    assert not (tmp_path / "out").exists()


def test_a_team_failing_at_its_first_action_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"cannot be evaluated \(nothing was written\): agent 'blue_ops' raised "
                                         r"ZeroDivisionError: boom at step 0"):
        source = _Source("raise", red="KillChainAgent", step=0)
        evaluate(_config(lengths=(6,), team=source.identity()), source, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_a_failure_before_any_episode_finished_leaves_no_journal(tmp_path: Path) -> None:
    """The first episode fails (after the check of the first step): no journal is left to tie the folder to
    the team, so the mended team can use the same folder."""
    with pytest.raises(EvaluationFailure) as info:
        source = _Source("raise", red="KillChainAgent")
        evaluate(_config(lengths=(6,), team=source.identity()), source, tmp_path / "out", progress=False)
    assert (info.value.finished, info.value.journal, info.value.transient) == (0, None, False)
    assert not (tmp_path / "out").exists()
    from cagekit.evaluation.cli import failure_advice

    assert failure_advice(info.value) == "nothing was kept (no episode had finished)"


def test_team_option_with_an_output_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """`--team NAME OUT_DIR`: the lone positional is the output folder; a team given twice is refused."""
    assert _cli("--team", "sleep", str(tmp_path / "out"), *TINY) == 0
    assert "team: sleep" in (tmp_path / "out" / "summary.txt").read_text()
    assert _cli("--team", "sleep", "react", str(tmp_path / "other"), *TINY) == 1
    assert "the team is given twice: --team 'sleep' and 'react'" in " ".join(capsys.readouterr().err.split())
    assert not (tmp_path / "other").exists()


def test_an_option_contradicting_a_submission_says_submission() -> None:
    from cagekit.evaluation.cli import build_parser, config_from_args

    shipped = SHIPPED_REACT
    with pytest.raises(ValueError, match="--scenario 'paper-large' contradicts the submission, which was packaged "
                                         "for scenario='paper-small'"):
        config_from_args(build_parser().parse_intermixed_args([str(shipped), "--scenario", "paper-large"]))


def test_a_submission_is_reported_under_the_names_it_declares() -> None:
    """The reports used to say 'author: anonymous, team: <zip name>, technique: submission' for every
    submission, whatever NAME, TEAM and TECHNIQUE it was packaged with; those are now the defaults."""
    from cagekit.evaluation.cli import build_parser, config_from_args

    def labels(*argv: str) -> tuple[str, str, str]:
        config, _, _ = config_from_args(build_parser().parse_intermixed_args(list(argv)))
        return config.author, config.team_name, config.technique

    shipped = str(SHIPPED_REACT)
    assert labels(shipped) == ("cagekit", "cagekit", "react heuristic (restore privileged, remove user-level)")
    assert labels(shipped, "--mute") == ("cagekit", "cagekit-muted",
                                         "react heuristic (restore privileged, remove user-level), muted")
    assert labels(shipped, "--name", "Ada", "--team-name", "T", "--technique", "rules") == ("Ada", "T", "rules")
    assert labels("react") == ("anonymous", "react", "heuristic react")


# file formats -------------------------------------------------------------------------------------

def test_file_formats(tmp_path: Path) -> None:
    import pandas as pd

    out = tmp_path / "out"
    assert _cli("react", str(out), *SMALL, "--name", "Ada", "--team-name", "T", "--technique", "rules") == 0
    lines = (out / "summary.txt").read_text().splitlines()
    assert re.fullmatch(r"cagekit \S+, paper-small", lines[0])
    assert lines[1] == "author: Ada, team: T, technique: rules"
    pattern = re.compile(r"steps: (\d+), adversary: (\w+), mean: (-?[\d.e+-]+), standard deviation ([\d.e+-]+)")
    rows = [pattern.fullmatch(line) for line in lines if line.startswith("steps:")]
    assert len(rows) == 6 and all(rows)
    summary = json.loads((out / "summary.json").read_text())
    # CAGE-2's reporting order: episode lengths outer, red agents inner
    assert [(int(m[1]), m[2]) for m in rows] == [(n, r) for n in (5, 8) for r in summary["parameters"]["reds"]]
    assert set(summary) >= {"submission", "parameters", "time", "reward", "total", "combinations",
                            "bits_per_episode", "channel_cost_per_episode"}
    assert summary["submission"] == {"author": "Ada", "team": "T", "technique": "rules"}
    assert set(summary["parameters"]) >= {"seed", "episode_lengths", "episodes", "scenario", "reds", "message_cost",
                                          "sau", "channel"}
    assert set(summary["time"]) == {"start", "end", "elapsed"} and set(summary["reward"]) == {"mean", "stdev"}
    df = pd.read_csv(out / "results.csv")
    assert len(df) == 18 and set(df["steps"]) == {5, 8}
    means = df.groupby(["steps", "adversary"], sort=False)["reward"].mean().tolist()
    assert means == pytest.approx([float(m[3]) for m in rows])
    assert summary["total"]["score"] == pytest.approx(sum(means))
    assert summary["reward"]["mean"] == pytest.approx(df["reward"].mean())
    assert summary["reward"]["stdev"] == pytest.approx(df["reward"].std(ddof=1)) and df["reward"].nunique() > 1
    assert summary["channel_cost_per_episode"] == pytest.approx(df["channel_cost"].mean())
    assert summary["bits_per_episode"] == pytest.approx(df["bits_sent"].mean())
    assert (df["channel_cost"] > 0).any()  # react talks: the team reward is the score less what it paid
    assert df["team_reward"].tolist() == pytest.approx((df["reward"] - df["channel_cost"]).tolist())
    scores = dict(line.split(": ") for line in (out / "scores.txt").read_text().splitlines())
    assert float(scores["total_score"]) == pytest.approx(sum(means))
    full = (out / "full.txt").read_text().splitlines()
    episode_lines = [line for line in full if line.startswith("episode:")]
    assert len(episode_lines) == 18
    assert all(re.search(r"total reward: -?[\d.]+$", line) for line in episode_lines)
    assert (out / "scores.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_checkpoint_sources_and_bad_paths(tmp_path: Path) -> None:
    assert isinstance(resolve_source(None, "sleep"), HeuristicSource)
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "submission.py").write_text("")
    with pytest.raises(ValueError, match="submission .* refused: missing required file"):
        resolve_source(str(sub))  # a submission folder without metadata/manifest
    with pytest.raises(ValueError, match=r"'.*nothing' \(it does not exist\): expected a submission .*checkpoint"):
        resolve_source(str(tmp_path / "nothing"))
    with pytest.raises(ValueError, match=r"name the team first: evaluation.py \S+dial-sau-paper-small.zip \S+nothing "
                                         r"\(the default team\)"):  # the team evaluation.py scores by default
        resolve_source(str(tmp_path / "nothing"))
    with pytest.raises(ValueError, match="no such submission file"):
        resolve_source(str(tmp_path / "team.zip"))


def test_the_output_folder_hint_comes_only_with_a_lone_positional(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture) -> None:
    """`evaluation.py NOTEAM OUT`, `--team NOTEAM OUT` and a benchmark's `--team x=NOTEAM` were told "to give only
    the output folder, name the team first: evaluation.py DEFAULT NOTEAM": a command that drops OUT, or takes the
    team for a folder; the hint fits `evaluation.py FOLDER` alone."""
    nothing, out = str(tmp_path / "nothing"), str(tmp_path / "out")
    for args in ([nothing, out], ["--team", nothing, out]):
        assert _cli(*args, *TINY) == 1
        err = " ".join(capsys.readouterr().err.split())
        assert "(it does not exist): expected a submission" in err and "name the team first" not in err, err
    assert _cli(nothing, "--no-progress") == 1
    assert f"name the team first: evaluation.py {default_team()} {nothing} (the default team)" in \
        " ".join(capsys.readouterr().err.split())
    assert not (tmp_path / "out").exists()


def test_a_checkpoint_sets_the_environment(tmp_path: Path) -> None:
    from cagekit.evaluation.cli import build_parser, config_from_args

    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "meta.json").write_text(json.dumps({"algo": "dial", "scenario": "paper-large", "channel": False,
                                                "sau": True, "message_cost": 0.25}))
    config, source, out = config_from_args(build_parser().parse_intermixed_args([str(ckpt), "--quick"]))
    assert (config.scenario, config.channel, config.sau, config.message_cost) == ("paper-large", False, True, 0.25)
    assert config.team["kind"] == "checkpoint" and len(config.team["sha256"]) == 64 and config.episodes == 10
    with pytest.raises(ValueError, match="contradicts the checkpoint"):
        config_from_args(build_parser().parse_intermixed_args([str(ckpt), "--scenario", "paper-small"]))
    with pytest.raises(ValueError, match="--no-sau contradicts the checkpoint, which was trained with sau=True"):
        config_from_args(build_parser().parse_intermixed_args([str(ckpt), "--no-sau"]))  # the option as typed


def test_classic_cage2_is_one_blue_agent_without_channel_or_masks() -> None:
    from cagekit.evaluation.cli import build_parser, config_from_args

    config, _, out = config_from_args(build_parser().parse_intermixed_args(["sleep", "--scenario", "cage2",
                                                                           "--layout", "classic"]))
    assert (config.channel, config.sau, config.reds) == (False, False, ("B_lineAgent", "RedMeanderAgent",
                                                                         "SleepAgent"))
    assert out == Path("results/sleep-cage2-classic")



def test_quick_and_episodes_together_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--quick --episodes 3` played 3 episodes without a word, dropping --quick, which means nothing but 10
    episodes per combination; the combination is refused by both commands, with nothing written."""
    from cagekit.cli import main
    from cagekit.evaluation import cli_main, run_command

    message = "--quick means 10 episodes per combination; give --quick or --episodes, not both"
    for argv in (["react", str(tmp_path / "out"), "--quick", "--episodes", "3"],
                 ["--episodes", "10", "--quick", "--team", "react", str(tmp_path / "out")]):
        assert cli_main(argv) == 1
        assert message in capsys.readouterr().err
        assert main(["evaluate", *argv]) == 1
        assert message in capsys.readouterr().err
        with pytest.raises(ValueError, match=re.escape(message)):
            run_command(argv)
    assert not (tmp_path / "out").exists()


def test_the_default_folder_names_the_options_so_other_runs_do_not_collide() -> None:
    """Before, `evaluation.py react --lengths 30` and `evaluation.py react` shared results/react-paper-small and
    the second refused the first's journal; each option that changes the protocol now names its folder, and
    the same options (in any spelling: --quick is --episodes 10) find the same one again."""
    from cagekit.evaluation.cli import build_parser, config_from_args

    def folder(*argv: str) -> str:
        return str(config_from_args(build_parser().parse_intermixed_args(["react", *argv]))[2])

    assert folder() == "results/react-paper-small"
    assert folder("--quick") == folder("--episodes", "10") == "results/react-paper-small-quick"
    assert folder("--lengths", "30", "--episodes", "3") == "results/react-paper-small-l30-e3"
    assert folder("--reds", "KillChainAgent", "--seed", "4", "--no-sau", "--no-channel", "--message-cost", "0.5",
                  "--detection", "0.5", "--backend", "twin") == \
        "results/react-paper-small-KillChainAgent-seed4-nochannel-nosau-cost0.5-det0.5-twin"
    # an option given at its default changes nothing, so the run resumes in the same folder
    assert folder("--lengths", "30,50,100", "--seed", "0", "--message-cost", "0.1", "--episodes", "100") == folder()
    # but a detection given, even the scenario's, is another journal (it records 0.1, not None): its own folder
    assert folder("--detection", "0.1") == "results/react-paper-small-det0.1"
    # each cost in full: :g's six digits put these two in one folder, whose journal refused the second
    assert folder("--message-cost", "0.1234567") != folder("--message-cost", "0.1234568")
    assert len({folder(), folder("--lengths", "30"), folder("--seed", "1"), folder("--no-sau"),
                folder("--reds", "KillChainAgent")}) == 5


# a team cannot fake its score; failures name the agent and step ------------------------------------

class _Liar(SleepAgent):
    def get_action(self, observation: Any, action_space: Any = None) -> int:
        observation["observation"][:] = 1  # scribble on what it was given
        self.reward = 1e9
        return np.int64(super().get_action(observation, action_space))

    def end_episode(self) -> float:  # type: ignore[override]
        return 1e9


class _LyingTeam(Team):
    def act(self, observations: Any, action_spaces: Any = None) -> dict[str, Any]:
        return {"reward": 1e9, **{n: 0 for n in observations}}

    def end_episode(self) -> float:  # type: ignore[override]
        return 1e9


class _Source(TeamSource):
    """A sleep team whose agents misbehave in one of several ways (for episodes against `red`)."""

    def __init__(self, mode: str = "ok", red: str = "SleepAgent", step: int = 2):
        self.mode, self.red, self.step, self.label = mode, red, step, mode

    def identity(self) -> dict[str, Any]:
        return {"kind": "test", "mode": self.mode}

    def team_for_episode(self, env: Any, seed: int) -> Team:
        base = make_team("sleep", env, seed)
        if self.mode == "liar":
            return _LyingTeam({n: _Liar(a.slot) for n, a in base.agents.items()}, base.scenario, "liar")
        if env.engine.red_name == self.red:
            name = env.possible_agents[-1]
            base.agents[name] = _Faulty(base.agents[name], self.mode, self.step)
        return base


class _Faulty:
    def __init__(self, inner: Any, mode: str, step: int):
        self.inner, self.mode, self.step, self.t = inner, mode, step, 0

    def set_initial_values(self, *args: Any) -> None:
        pass

    def end_episode(self) -> None:
        pass

    def get_action(self, observation: Any, action_space: Any = None) -> Any:
        t, self.t = self.t, self.t + 1
        if t == self.step:
            if self.mode == "raise":
                raise ZeroDivisionError("boom")
            if self.mode == "raise-with-agent":  # a user's error with its own `.agent`, which is no agent's name
                error = LookupError("no such host")
                error.agent = object()  # type: ignore[attr-defined]
                raise error
            if self.mode == "invalid":
                return 10**9
            if self.mode == "slow":
                time.sleep(0.6)
            if self.mode == "hang":
                while True:
                    pass
        return self.inner.get_action(observation, action_space)


class _Chatter:
    """Sends a 1 every step and picks a masked action whenever there is one, counting how often it did."""

    def __init__(self) -> None:
        self.masked = 0

    def set_initial_values(self, *args: Any) -> None:
        pass

    def end_episode(self) -> None:
        pass

    def get_action(self, observation: Any, action_space: Any = None) -> int:
        closed = np.flatnonzero(observation["action_mask"] == 0)
        self.masked += len(closed) > 0
        return 2 * (int(closed[0]) // 2 if len(closed) else 0) + 1


class _ChatterSource(TeamSource):
    def __init__(self) -> None:
        self.teams: dict[int, Team] = {}  # by episode seed: the last team built for it is the one that played

    def identity(self) -> dict[str, Any]:
        return {"kind": "test", "mode": "chatter"}

    def team_for_episode(self, env: Any, seed: int) -> Team:
        base = make_team("sleep", env, seed)
        self.teams[seed] = Team({n: _Chatter() for n in base.agents}, base.scenario, "chatter")
        return self.teams[seed]


def test_an_episode_counts_every_agents_bits_and_masked_actions(tmp_path: Path) -> None:
    source = _ChatterSource()
    config = _config(lengths=(6,), reds=("KillChainAgent",), episodes=3, message_cost=0.25, team=source.identity())
    report, summary = evaluate(config, source, tmp_path, progress=False)
    agents = 2  # blue_user, blue_ops
    for e in report.episodes:
        assert e.bits == 6 * agents
        assert e.channel_cost == pytest.approx(0.25 * e.bits)
        played = source.teams[e.seed].agents.values()
        assert e.invalid_actions == sum(a.masked for a in played)
        assert all(a.masked > 0 for a in played)  # both agents' masked actions are in the count
    assert summary["bits_per_episode"] == 6 * agents


def test_a_lying_team_cannot_change_its_score(tmp_path: Path) -> None:
    protocol = dict(reds=("KillChainAgent", "ExplorerAgent"), lengths=(12,), episodes=3)
    source = _Source("liar")
    liar, _ = evaluate(_config(**protocol, team=source.identity()), source, tmp_path / "liar", progress=False)
    honest, _ = evaluate(_config(**protocol), HeuristicSource("sleep"), tmp_path / "sleep", progress=False)
    assert [e.reward for e in liar.episodes] == [e.reward for e in honest.episodes]
    assert liar.total.score == honest.total.score < 0


@pytest.mark.parametrize(("mode", "message", "transient"), [
    ("raise", r"agent 'blue_ops' raised ZeroDivisionError: boom at step 2 of episode 0 \(steps 6, adversary "
              r"SleepAgent\)", False),
    ("raise-with-agent", r"agent 'blue_ops' raised LookupError: no such host at step 2", False),
    ("invalid", r"invalid action at step 2 of episode 0 .*'blue_ops'.*outside its space", False),
    ("slow", r"agent 'blue_ops' exceeded the step timeout of 0.2 s at step 2 of episode 0", True),
    ("hang", r"agent 'blue_ops' exceeded the step timeout of 0.2 s at step 2", True),
])
def test_failures_name_the_agent_and_step_and_keep_the_journal(tmp_path: Path, mode: str, message: str,
                                                               transient: bool) -> None:
    """Only a failure that may not recur (a timeout) is advised to be rerun; the team's own error recurs."""
    from cagekit.evaluation.cli import failure_advice

    source = _Source(mode)
    with pytest.raises(EvaluationFailure, match=message) as info:
        evaluate(_config(lengths=(6,), team=source.identity()), source, tmp_path, step_timeout=0.2, progress=False)
    lines = (tmp_path / "journal.jsonl").read_text().splitlines()
    assert len(lines) == 3  # the configuration and the two KillChainAgent episodes before the failure
    assert not (tmp_path / "summary.txt").exists()
    failure = info.value
    assert (failure.finished, failure.journal, failure.transient) == (2, str(tmp_path / "journal.jsonl"), transient)
    advice = failure_advice(failure)
    assert advice.startswith(f"the 2 finished episode(s) are kept in {tmp_path / 'journal.jsonl'}")
    assert ("rerun the same command" in advice) == transient


def test_step_timeout_in_a_worker_process(tmp_path: Path) -> None:
    with pytest.raises(EvaluationFailure, match="exceeded the step timeout of 0.2 s at step 2"):
        source = _Source("hang")
        evaluate(_config(lengths=(6,), team=source.identity()), source, tmp_path, step_timeout=0.2, progress=False,
                 backend="processes", workers=2)
    assert (tmp_path / "journal.jsonl").exists()


# CAGE-2, classic single Blue agent: the published Sleep row ---------------------------------------

PUBLISHED_SLEEP = {(30, "B_lineAgent"): -218.65, (30, "RedMeanderAgent"): -39.31,
                   (50, "B_lineAgent"): -480.17, (50, "RedMeanderAgent"): -267.6,
                   (100, "B_lineAgent"): -1134.03, (100, "RedMeanderAgent"): -972.43}


@pytest.mark.slow
def test_cage2_classic_sleep_matches_the_published_row(tmp_path: Path) -> None:
    lengths = os.environ.get("CAGEKIT_SLOW_LENGTHS", "30,50,100")
    episodes = os.environ.get("CAGEKIT_SLOW_EPISODES", "200")
    assert _cli("sleep", str(tmp_path), "--scenario", "cage2", "--layout", "classic", "--lengths", lengths,
                "--reds", "B_lineAgent,RedMeanderAgent", "--episodes", episodes, "--workers", str(os.cpu_count() or 1),
                "--no-progress") == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    for c in summary["combinations"]:
        published = PUBLISHED_SLEEP[(c["steps"], c["adversary"])]
        sem = c["stdev"] / math.sqrt(c["episodes"])
        assert abs(c["mean"] - published) <= 4 * sem + 0.01 * abs(published), (c, published)


def test_twin_backend_is_marked_and_kept_apart(tmp_path):
    from cagekit.evaluation import cli_main

    common = ["--episodes", "3", "--lengths", "6", "--reds", "KillChainAgent", "--no-progress"]
    assert cli_main(["react", str(tmp_path / "twin"), "--backend", "twin", *common]) == 0
    assert "simulator twin" in (tmp_path / "twin" / "summary.txt").read_text().splitlines()[0]
    assert "simulator: twin (not a reportable score)" in (tmp_path / "twin" / "scores.txt").read_text()
    # a twin journal is another configuration: an engine run refuses to mix into it
    assert cli_main(["react", str(tmp_path / "twin"), *common]) != 0


def test_muting_silences_the_team_and_changes_only_what_the_bits_did(tmp_path: Path) -> None:
    """react's defence ignores what it hears, so muting it leaves every env reward as it was and removes
    only its bits and their cost; the muted run is journaled apart from the unmuted one."""
    args = ["--scenario", "paper-small", "--episodes", "3", "--lengths", "12", "--no-progress",
            "--reds", "KillChainAgent"]
    assert _cli("react", str(tmp_path / "loud"), *args) == 0
    assert _cli("react", str(tmp_path / "muted"), *args, "--mute") == 0
    loud, muted = (json.loads((tmp_path / d / "summary.json").read_text()) for d in ("loud", "muted"))
    assert loud["bits_per_episode"] > 0 and muted["bits_per_episode"] == 0
    assert muted["channel_cost_per_episode"] == 0
    rows = {d: (tmp_path / d / "results.csv").read_text().splitlines()[1:] for d in ("loud", "muted")}
    env_rewards = {d: [line.split(",")[4] for line in r] for d, r in rows.items()}
    assert env_rewards["loud"] == env_rewards["muted"]
    assert "muted" in muted["submission"]["technique"]


def test_muting_needs_the_channel(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = _cli("react", str(tmp_path / "x"), "--scenario", "paper-small", "--episodes", "1", "--lengths", "4",
                "--no-progress", "--reds", "KillChainAgent", "--no-channel", "--mute")
    assert code != 0
    assert "--mute needs the message channel on" in capsys.readouterr().err


@pytest.mark.parametrize(("extra", "message"), [
    (["--reds", "KillChainAgent,KillChainAgent"], "red agent(s) ['KillChainAgent'] given more than once"),
    (["--lengths", "5,5"], "episode length(s) [5] given more than once"),
    (["--detection", "2"], "detection is a probability in [0, 1], got 2.0"),
    (["--message-cost", "nan"], "message cost must be a finite number >= 0"),
    (["--message-cost", "-1"], "message cost must be a finite number >= 0"),
    (["--workers", "0"], "--workers must be >= 1, got 0"),
    (["--reds", ""], "--reds '' has an empty item"),  # was every red, the default, as if not given
    (["--workers", "2", "--backend", "serial"], "--workers 2 with --backend serial: serial is one process"),
    (["--step-timeout", "-1"], "--step-timeout must be a positive number of seconds"),
    (["--step-timeout", "inf"], "up to 86,400 (a day),"),
])
def test_bad_protocol_numbers_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture, extra: list[str],
                                          message: str) -> None:
    """A repeated red or length would count twice in the total; the others would run a meaningless protocol."""
    assert _cli("react", str(tmp_path / "out"), "--episodes", "1", "--lengths", "5", "--no-progress", *extra) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out" / "journal.jsonl").exists()


@pytest.mark.parametrize(("kw", "message"), [
    ({"reds": "KillChainAgent"}, "lengths and reds are sequences"),  # was "['i', 'l', 'n'] given more than once"
    ({"lengths": 3}, "lengths and reds are sequences"),
    ({"lengths": ("3",)}, "each episode length must be an integer, got str '3'"),
    ({"lengths": (2.5,)}, "each episode length must be an integer, got float 2.5"),
    ({"seed": 1.5}, "seed must be an integer, got float 1.5"),
])
def test_an_eval_config_of_the_wrong_types_is_refused(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _config(**kw)


def test_output_to_a_pipe_is_not_clipped_at_80_columns(tmp_path, monkeypatch, capsys):
    """Under pytest stdout is no terminal, as in a log or CI: rich then gets 120 columns, not its 80, so an
    error's suggested command stays on one line; a COLUMNS the user set is kept."""
    from cagekit.evaluation.cli import PIPED_COLUMNS, widen_piped_output

    monkeypatch.setenv("COLUMNS", "90")
    widen_piped_output()
    assert os.environ["COLUMNS"] == "90"
    monkeypatch.delenv("COLUMNS")
    missing = tmp_path / "missing"
    assert cli_main([str(missing)]) == 1
    assert os.environ["COLUMNS"] == str(PIPED_COLUMNS)
    lines = capsys.readouterr().err.splitlines()
    assert max(len(line) for line in lines) > 80 and all(len(line) <= PIPED_COLUMNS for line in lines)


def test_stdout_to_a_file_leaves_a_terminal_on_stderr_its_own_width(tmp_path):
    """`evaluation.py ... > log` on an 80-column terminal: the progress bar is drawn on stderr, the terminal,
    so rich must keep its width there (120 columns wrapped every refresh of the bar onto new lines)."""
    import fcntl
    import pty
    import struct
    import subprocess
    import sys
    import termios

    code = ("from cagekit.evaluation.cli import widen_piped_output; from rich.console import Console; "
            "widen_piped_output(); print(Console(stderr=True).width)")
    main_fd, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    try:
        done = subprocess.run([sys.executable, "-c", code], stdin=terminal, stdout=subprocess.PIPE, stderr=terminal,
                              env=env, timeout=60, check=True)
    finally:
        os.close(terminal)
        os.close(main_fd)
    assert done.stdout.decode().strip() == "80"


# a user's own Python team ----------------------------------------------------------------------

_MY_TEAM = '''
from cagekit.agents.heuristics import ReactAgent
from helper import BIT  # a neighbour module: the file's folder is importable, as under `python FILE.py`


class Mine(ReactAgent):
    """react, silent: a user's own agent class."""

    def get_action(self, observation, action_space=None):
        return super().get_action(observation, action_space) & ~BIT


def as_dict(env):
    from cagekit.agents import team_slots
    return {slot.name: Mine(slot) for slot in team_slots(env)}


def as_int(env):
    return 42
'''


def _my_team(tmp_path: Path) -> Path:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "helper.py").write_text("BIT = 1\n")
    (folder / "myteam.py").write_text(_MY_TEAM)
    return folder / "myteam.py"


def test_python_team_file_scores_like_the_heuristic_it_rewrites(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A class or a function in the user's own file is a team for evaluation.py: silent react scores react's
    environment reward episode by episode (the score leaves the channel cost out), with no bits, in one
    process or two (the source travels to worker processes and imports the file there)."""
    from cagekit.evaluation import PythonSource

    file = _my_team(tmp_path)
    by_class_source, by_function_source = resolve_source(f"{file}:Mine"), PythonSource(str(file), "as_dict")
    config = _config(lengths=(15,), reds=("KillChainAgent",))
    react, _ = evaluate(replace(config, team=HeuristicSource("react").identity()), HeuristicSource("react"),
                        tmp_path / "react", progress=False)
    by_class, _ = evaluate(replace(config, team=by_class_source.identity()), by_class_source, tmp_path / "class",
                           progress=False)
    by_function, _ = evaluate(replace(config, team=by_function_source.identity()), by_function_source,
                              tmp_path / "function", backend="processes", workers=2, progress=False)
    assert react.total.score == by_class.total.score == by_function.total.score < 0
    assert react.bits_per_episode > 0 and by_class.bits_per_episode == by_function.bits_per_episode == 0
    assert (tmp_path / "class" / "results.csv").read_bytes() == (tmp_path / "function" / "results.csv").read_bytes()
    # the journal's identity covers the helper the file imports: an edited helper is another team
    import torch  # noqa: F401 - names modules by bare files ('_classes.py'), which are not the folder's

    monkeypatch.chdir(file.parent)
    before = PythonSource(str(file), "Mine").identity()
    (file.parent / "helper.py").write_text("BIT = 1  # edited\n")
    assert PythonSource(str(file), "Mine").identity()["sha256"] != before["sha256"]



def test_a_python_teams_identity_covers_late_imports_and_leaves_cagekit_out(tmp_path: Path) -> None:
    """The code a team brings is what its import statements name in its folder, a function's late import
    included (a helper package imported only when the team is built or acts was left out of the journal's
    identity, so a run resumed after editing it mixed two teams, and out of the submission), and never cagekit's
    own modules, though a team file may lie in a checkout of cagekit (there every loaded cagekit module was
    packaged under team/ and hashed into the identity)."""
    from cagekit.agents.team_code import local_modules
    from cagekit.evaluation import PythonSource

    (tmp_path / "late.py").write_text("from cagekit.agents import make_team as _make\n\n\ndef make_team(env):\n"
                                      "    from tactics.kind import KIND\n    return _make(KIND, env)\n")
    (tmp_path / "tactics").mkdir()
    (tmp_path / "tactics" / "__init__.py").write_text("")
    (tmp_path / "tactics" / "kind.py").write_text("from .names import REACT as KIND\n")
    (tmp_path / "tactics" / "names.py").write_text("REACT = 'react'\n")
    (tmp_path / "unused.py").write_text("")
    before = PythonSource(str(tmp_path / "late.py")).identity()
    assert local_modules(tmp_path / "late.py") == sorted(
        [tmp_path / "late.py", *(tmp_path / "tactics" / f for f in ("__init__.py", "kind.py", "names.py"))])
    (tmp_path / "tactics" / "names.py").write_text("REACT = 'sleep'\n")
    assert PythonSource(str(tmp_path / "late.py")).identity()["sha256"] != before["sha256"]
    import cagekit.evaluation  # noqa: F401 - loaded from the checkout that holds evaluation.py

    script = Path(__file__).resolve().parents[1] / "evaluation.py"  # a file beside cagekit/ that imports it
    assert local_modules(script) == [script]



def test_two_python_teams_in_one_process_each_import_their_own_helper(tmp_path: Path) -> None:
    """Two teams whose folders each hold a `helper.py`, scored in one process (run_command twice, a notebook):
    the second played the first one's helper, from sys.modules; and a file of the same name and bytes in
    another folder was not imported at all (its module was named by name and content only)."""
    from cagekit import make_env
    from cagekit.evaluation import PythonSource

    code = "from cagekit.agents import make_team as _make\nfrom helper import KIND\n\n\n" \
           "def make_team(env):\n    return _make(KIND, env)\n"
    kinds = {}
    for folder, kind, text in (("a", "react", code), ("b", "sleep", code), ("c", "random", code + "# c\n")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "helper.py").write_text(f"KIND = {kind!r}\n")
        (tmp_path / folder / "team.py").write_text(text)
        env = make_env("paper-small", seed=0)
        env.reset(seed=0)
        kinds[folder] = PythonSource(str(tmp_path / folder / "team.py")).team_for_episode(env, 0).kind
    assert kinds == {"a": "react", "b": "sleep", "c": "random"}



def test_a_worker_refuses_a_python_team_edited_after_the_evaluation_began(tmp_path: Path) -> None:
    """A spawned or Ray worker imports the team file when it plays its first episode, maybe minutes into the run:
    a file edited meanwhile was played under the identity of the code the run began with (a journal of two
    teams). The worker now refuses it, naming the way on."""
    import pickle

    from cagekit import make_env
    from cagekit.evaluation import PythonSource

    file = _my_team(tmp_path)
    source = PythonSource(str(file), "Mine")
    sent = pickle.dumps(source)  # as to a worker
    (file.parent / "helper.py").write_text("BIT = 0\n")
    worker = pickle.loads(sent)
    del sys.modules[worker._module]  # a fresh process: the file is imported there
    env = make_env("paper-small", seed=0)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="myteam.py or a module it imports changed after this evaluation began"):
        worker.team_for_episode(env, 0)


def test_a_worker_refuses_a_checkpoint_or_submission_changed_after_the_evaluation_began(
        tmp_path: Path, tiny_checkpoint: Path) -> None:
    """A worker process loads a checkpoint at its first episode of each combination, and opens a submission at its
    first episode: weights that training went on writing into the folder meanwhile, or a zip packaged anew, were
    played under the identity of the team the run began with (one journal, two teams), as a Python team's edited
    file was. The worker now refuses them, as it does that file."""
    import pickle
    import shutil

    from cagekit import make_env
    from cagekit.agents.dial import DialLearner
    from cagekit.evaluation.sources import CheckpointSource, SubmissionSource
    from cagekit.submissions import package

    env = make_env("paper-small", seed=0)
    env.reset(seed=0)
    team = tmp_path / "team"
    shutil.copytree(tiny_checkpoint, team)
    sent = pickle.dumps(CheckpointSource(str(team)))  # as to a worker
    pickle.loads(sent).team_for_episode(env, 0)  # unchanged: plays
    DialLearner("dial-sau", "paper-small", seed=1, config={"batch_episodes": 2}).save(team)  # training goes on
    with pytest.raises(ValueError, match=r"team changed after this evaluation began"):
        pickle.loads(sent).team_for_episode(env, 0)
    zipped = package("sleep", "me", "us", "sleep", tmp_path / "sub.zip")
    source = SubmissionSource(str(zipped))
    sent = pickle.dumps(source)
    package("react", "me", "us", "react", zipped, replace=True)
    worker = pickle.loads(sent)
    with pytest.raises(ValueError, match=r"sub.zip changed after this evaluation began"):
        worker.team_for_episode(env, 0)
    assert worker._team is None  # not kept (its worker process closed)


def test_python_team_refusals_name_the_problem(tmp_path: Path) -> None:
    file = _my_team(tmp_path)
    with pytest.raises(ValueError, match=r"myteam.py has no 'make_team': name an agent class .* it defines Mine, "
                                         r"as_dict, as_int$"):
        resolve_source(str(file))  # no :NAME, and no make_team in the file
    with pytest.raises(ValueError, match="no such Python file"):
        resolve_source(str(tmp_path / "other.py:Mine"))
    with pytest.raises(ValueError, match="'2bad' is not a Python name"):
        resolve_source(f"{file}:2bad")
    (tmp_path / "broken.py").write_text("import no_such_module_here\n")
    with pytest.raises(ValueError, match="importing .*broken.py failed: ModuleNotFoundError"):
        resolve_source(str(tmp_path / "broken.py:X"))
    with pytest.raises(ValueError, match=r"cannot be evaluated \(nothing was written\).*myteam.py:as_int\(env\) "
                                         r"returned int; expected a cagekit.agents.Team or a dict"):
        as_int = resolve_source(f"{file}:as_int")
        evaluate(_config(team=as_int.identity()), as_int, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_python_team_on_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = _my_team(tmp_path)
    assert _cli(f"{file}:Mine", str(tmp_path / "out"), *SMALL, "--reds", "SleepAgent") == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert "python myteam.py:Mine" in json.dumps(summary)  # the default technique names the file and class
    assert _cli(str(tmp_path / "absent.py"), str(tmp_path / "out2"), *SMALL) == 1
    assert "no such Python file" in capsys.readouterr().err


def test_a_python_team_that_calls_sys_exit_fails_with_its_problem_named(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """SystemExit is no Exception: a team file that parses arguments at import (argparse exits) ended
    evaluation.py with its exit code and no word of why, and `run_command` ended the calling script; an agent's
    sys.exit() did the same in the middle of a run, naming neither agent nor step."""
    from cagekit.evaluation import run_command

    (tmp_path / "script.py").write_text("import argparse\n\nargparse.ArgumentParser().parse_args(['--no-such'])\n\n\n"
                                        "def make_team(env):\n    pass\n")
    assert _cli(str(tmp_path / "script.py"), str(tmp_path / "out"), *SMALL) == 1
    assert re.search(r"importing .*script.py failed: SystemExit: 2", capsys.readouterr().err)
    with pytest.raises(ValueError, match="SystemExit: 2"):
        run_command([str(tmp_path / "script.py"), str(tmp_path / "out"), *SMALL])
    (tmp_path / "leaving.py").write_text('''
import sys

from cagekit.agents import Agent


class Leaving(Agent):
    def __init__(self, slot):
        self.slot, self.steps = slot, 0

    def get_action(self, observation, action_space=None):
        self.steps += 1
        if self.slot.name == "blue_ops" and self.steps == 3:
            sys.exit("leaving now")
        return 0
''')
    for workers in ("1", "2"):
        out = tmp_path / f"left-{workers}"
        assert _cli(f"{tmp_path / 'leaving.py'}:Leaving", str(out), *SMALL, "--workers", workers) == 1
        err = capsys.readouterr().err
        # with two workers either episode may fail first: both do, at the same step
        assert re.search(r"agent 'blue_ops' raised SystemExit: leaving now at step 2 of episode [01]\b", err), err
    assert not (tmp_path / "out").exists()


def test_of_failures_in_worker_processes_the_first_task_s_is_reported(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """With worker processes, the failure reported was the one that reached the evaluation first (or came first
    out of a set of them finished together): chance. The first task's, in the protocol's order, is reported, as a
    serial run reports it; here the later task fails first."""
    (tmp_path / "failing.py").write_text('''
import time


class Failing:
    def __init__(self, length):
        self.length, self.steps = length, 0

    def get_action(self, observation, action_space=None):
        self.steps += 1
        if self.steps == 1:  # the check before the run asks for one step
            return 0
        if self.length == 5:  # the first task's episodes: fail late
            time.sleep(2)
        raise RuntimeError(f"failing in a {self.length}-step episode")

    def end_episode(self):
        pass

    def set_initial_values(self, action_space, observation):
        pass


def make_team(env):
    return {name: Failing(env.episode_length) for name in env.possible_agents}
''')
    args = [str(tmp_path / "failing.py"), "--episodes", "1", "--lengths", "5,6", "--reds", "SleepAgent",
            "--no-progress"]
    for workers in ("1", "2"):
        assert _cli(args[0], str(tmp_path / f"out-{workers}"), *args[1:], "--workers", workers) == 1
        err = " ".join(capsys.readouterr().err.split())
        assert "RuntimeError: failing in a 5-step episode" in err, err


def test_of_failures_in_ray_tasks_the_first_task_s_is_reported(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """The Ray runner reported the failure that reached the evaluation first, where the process pool and a serial
    run report the first task's in the protocol's order. Here the later task fails first, for certain: the first
    one fails only once the later one has, and a second after."""
    pytest.importorskip("ray")
    import ray

    failed = tmp_path / "later-failed"
    (tmp_path / "failing.py").write_text(f'''
import os
import time

FAILED = {str(failed)!r}


class Failing:
    def __init__(self, length):
        self.length, self.steps = length, 0

    def get_action(self, observation, action_space=None):
        self.steps += 1
        if self.steps == 1:  # the check before the run asks for one step
            return 0
        if self.length == 5:  # the first task: fails after the later one
            deadline = time.monotonic() + 60
            while not os.path.exists(FAILED) and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(1)
        else:
            open(FAILED, "w").close()
        raise RuntimeError(f"failing in a {{self.length}}-step episode")

    def end_episode(self):
        pass

    def set_initial_values(self, action_space, observation):
        pass


def make_team(env):
    return {{name: Failing(env.episode_length) for name in env.possible_agents}}
''')
    try:
        assert _cli(str(tmp_path / "failing.py"), str(tmp_path / "out"), "--episodes", "1", "--lengths", "5,6",
                    "--reds", "SleepAgent", "--no-progress", "--backend", "ray", "--workers", "2") == 1
    finally:
        ray.shutdown()
    assert failed.exists()  # the later task did fail
    err = " ".join(capsys.readouterr().err.split())
    assert "RuntimeError: failing in a 5-step episode" in err, err


# interrupted runs (Ctrl-C) ------------------------------------------------------------------------



def test_a_muted_submission_plays_in_worker_processes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--mute` never closed the submission it wraps, so forked pool workers inherited the parent's open team
    and all played through its one pipe: every muted submission with workers failed ("could not be built")."""
    monkeypatch.setenv(START_METHOD_ENV, "fork")
    out = tmp_path / "out"
    assert _cli(str(SHIPPED_REACT), str(out), "--mute", "--workers", "2", "--episodes", "3", "--lengths", "5",
                "--reds", "KillChainAgent", "--no-progress") == 0
    assert json.loads((out / "summary.json").read_text())["bits_per_episode"] == 0.0


@pytest.mark.parametrize("where", ["probe", "journal", "episode"])
def test_an_interrupted_evaluation_closes_the_submission_it_started(where: str, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A Ctrl-C in `check_team`'s probe, or between it and the serial run, left the submission's worker to the
    garbage collector, whose `__del__` a second Ctrl-C made print "Exception ignored" and lose."""
    from cagekit.evaluation.episode import EpisodeRunner
    from cagekit.evaluation.journal import Journal
    from cagekit.evaluation.sources import MutedSource, SubmissionSource

    teams: list[Any] = []
    build = SubmissionSource.team_for_episode

    def recorded(self: SubmissionSource, env: Any, seed: int) -> Any:
        teams.append(build(self, env, seed))
        return teams[-1]

    def interrupt(*_: Any, **__: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(SubmissionSource, "team_for_episode", recorded)
    target = {"probe": (EpisodeRunner, "_act"), "journal": (Journal, "open"), "episode": (EpisodeRunner, "run")}
    monkeypatch.setattr(*target[where], interrupt)
    source = MutedSource(SubmissionSource(str(SHIPPED_REACT)))  # closing reaches the submission inside
    config = _config(team=source.identity(), reds=("KillChainAgent",))
    with pytest.raises(KeyboardInterrupt):
        evaluate(config, source, tmp_path / "out", progress=False)
    assert teams and all(team.closed and not team.worker.alive for team in teams)
    assert source.inner._team is None
    assert _journal_episodes(tmp_path / "out" / "journal.jsonl") == 0


@pytest.mark.parametrize("refusal", ["evaluate", "options", "run"])
def test_a_refused_evaluation_leaves_no_submission_worker_running(refusal: str, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A submission's source keeps the worker it started to check the submission (for the first episode): an
    evaluation refused before any episode (a config naming another team, a bad option) left it running."""
    from cagekit.evaluation import cli, run_command
    from cagekit.evaluation.sources import SubmissionSource

    sources: list[SubmissionSource] = []
    resolve = cli.resolve_source

    def recorded(*args: Any, **kwargs: Any) -> Any:
        sources.append(resolve(*args, **kwargs))
        return sources[-1]

    if refusal == "evaluate":
        sources.append(SubmissionSource(str(SHIPPED_REACT)))
        worker = sources[0]._team.worker
        with pytest.raises(ValueError, match="is not the team given to score"):
            evaluate(_config(team={"kind": "another"}), sources[0], tmp_path / "out", progress=False)
    else:
        monkeypatch.setattr(cli, "resolve_source", recorded)
        bad = ["--reds", "Nope"] if refusal == "options" else ["--address", "localhost:1"]
        with pytest.raises(ValueError, match="unknown red|--address is for the ray backend"):
            run_command([str(SHIPPED_REACT), str(tmp_path / "out"), "--episodes", "1", *bad])
        worker = None
    assert len(sources) == 1 and sources[0]._team is None
    assert worker is None or not worker.alive


def test_a_closed_submission_leaves_the_collector_nothing_to_run() -> None:
    """A team's `__del__` ran at whatever moment the collector found it, closed or not: a Ctrl-C landing there
    was printed as "Exception ignored" and lost. A closed team now runs none of its code when collected."""
    import gc

    from cagekit.submissions import open_submission

    team = open_submission(SHIPPED_REACT)
    worker = team.worker
    team.close()
    assert not worker.alive
    called: list[str] = []

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code.co_filename.endswith(os.path.join("submissions", "team.py")):
            called.append(frame.f_code.co_name)

    del team
    sys.setprofile(profile)
    try:
        gc.collect()
    finally:
        sys.setprofile(None)
    assert called == []


def test_a_forked_child_leaves_the_parents_submission_open() -> None:
    """A child forked while a team is open holds a copy of it: closing that copy, or exiting normally (at-exit
    finalizers run), stopped the parent's worker and removed its unpacked folder under it."""
    from cagekit.submissions import open_submission

    with open_submission(SHIPPED_REACT) as team:
        pid = os.fork()
        if pid == 0:  # the child closes its copy, as its at-exit finalizer would on a normal exit
            try:
                team.close()
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        assert team.worker.alive
        assert team.folder.is_dir()
        team.seed(3)  # the worker still answers
    assert not team.worker.alive


def test_a_team_never_closed_is_closed_when_collected() -> None:
    import gc

    from cagekit.submissions import open_submission

    team = open_submission(SHIPPED_REACT)
    worker, folder = team.worker, team.folder
    del team
    gc.collect()
    assert not worker.alive and not folder.exists()


def test_a_submission_worker_interrupted_while_starting_is_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker runs in a session of its own (a terminal's Ctrl-C does not reach it): interrupted while it
    imported the submission, it was left running, its folder removed under it."""
    from cagekit.submissions import open_submission
    from cagekit.submissions.worker_client import Worker

    started: list[subprocess.Popen] = []
    reply = Worker._reply

    def interrupted(self: Worker, stage: str, timeout: float) -> dict[str, Any]:
        started.append(self.proc)
        if stage == "import":
            raise KeyboardInterrupt
        return reply(self, stage, timeout)

    monkeypatch.setattr(Worker, "_reply", interrupted)
    try:
        with pytest.raises(KeyboardInterrupt):
            open_submission(SHIPPED_REACT)
        assert started and started[0].poll() is not None
    finally:
        for proc in started:
            proc.kill()
            proc.wait()


LOST_INTERRUPT_TEAM = '''
import signal

from cagekit.agents.heuristics import SleepAgent


class _Finalized:
    def __del__(self):
        signal.raise_signal(signal.SIGINT)  # a Ctrl-C landing in a finalizer: printed, and lost
        for _ in range(100):
            pass


class Agent(SleepAgent):
    calls = 0

    def get_action(self, observation, action_space=None):
        type(self).calls += 1
        if type(self).calls == 3:
            _Finalized()
        return super().get_action(observation, action_space)
'''


def test_a_ctrl_c_lost_in_a_finalizer_still_exits_130(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Seen once in ~15 interrupted evaluations: the Ctrl-C landed in a `__del__`, was printed as "Exception
    ignored", and the run went on to exit 0. The interrupt is noted when it arrives, wherever it is lost."""
    lost: list[type] = []  # what Python prints as "Exception ignored"
    monkeypatch.setattr(sys, "unraisablehook", lambda unraisable: lost.append(unraisable.exc_type))
    team = tmp_path / "team.py"
    team.write_text(LOST_INTERRUPT_TEAM)
    args = [f"{team}:Agent", str(tmp_path / "out"), "--backend", "serial", *TINY]
    assert _cli(*args) == 130
    assert lost == [KeyboardInterrupt]
    assert "interrupted" in capsys.readouterr().err
    assert (tmp_path / "out" / "summary.txt").exists()  # the run went on to the end: its reports are whole
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back


@pytest.mark.parametrize("whole_group", [True, False], ids=["terminal", "evaluation-only"])
def test_ctrl_c_ends_worker_processes_mid_episode_without_waiting_for_them(tmp_path: Path, whole_group: bool) -> None:
    """Ctrl-C stops a process-pool evaluation at once, whether a terminal sends it to every process of the group
    or only the evaluation gets it: the workers' running episodes are abandoned (a rerun plays them), not awaited.
    The pool's shutdown waited for every episode handed out (three per worker), here for ever; and a worker
    interrupted as it sent a result back could leave the result queue locked, so the evaluation hung."""
    out = tmp_path / "out"
    args = [sys.executable, str(ROOT / "evaluation.py"), "react", str(out), "--workers", "2", "--episodes", "4",
            "--lengths", "1000000", "--reds", "SleepAgent", "--no-progress"]
    env = dict(os.environ, PYTHONPATH=str(ROOT), **{START_METHOD_ENV: "fork"})
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        deadline = time.time() + 120
        while not (out / "journal.jsonl").exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(3)  # the workers are started and deep in their first episodes
        assert proc.poll() is None, proc.communicate()[1].decode()[-3000:]
        if whole_group:
            os.killpg(proc.pid, signal.SIGINT)
        else:
            os.kill(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:  # a run that did not stop would play for hours: end the whole group
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == 130, err.decode()[-3000:]
    assert b"interrupted" in err and b"Traceback" not in err and b"Exception ignored" not in err, err.decode()
    time.sleep(0.5)
    with pytest.raises(ProcessLookupError):  # no worker left behind
        os.killpg(proc.pid, 0)
    assert _journal_episodes(out / "journal.jsonl") == 0


def test_ctrl_c_in_an_evaluation_of_a_submission_exits_130_and_a_rerun_resumes(tmp_path: Path) -> None:
    """A real Ctrl-C (SIGINT to the whole process group, as a terminal sends it) mid-way through a muted
    submission played by worker processes: exit 130, the finished episodes journaled, and the rerun finishes."""
    out = tmp_path / "out"
    args = [sys.executable, str(ROOT / "evaluation.py"), str(SHIPPED_REACT), str(out), "--mute", "--workers", "2",
            "--episodes", "300", "--lengths", "30", "--reds", "KillChainAgent", "--no-progress"]
    env = dict(os.environ, PYTHONPATH=str(ROOT), **{START_METHOD_ENV: "fork"})
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    deadline = time.time() + 120
    while _journal_episodes(out / "journal.jsonl") < 3 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    journaled = _journal_episodes(out / "journal.jsonl")
    assert proc.returncode == 130, err.decode()[-3000:]
    assert 3 <= journaled < 300, f"the run was not interrupted mid-way ({journaled} episodes journaled)"
    assert b"Exception ignored" not in err
    assert not (out / "summary.txt").exists()
    rerun = subprocess.run(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=300)
    assert rerun.returncode == 0, rerun.stderr.decode()[-3000:]
    records = [json.loads(line) for line in (out / "journal.jsonl").read_text().splitlines()[1:]]
    assert sorted(r["index"] for r in records) == list(range(300))


def test_a_journal_of_another_format_is_refused_and_named(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A journal's format was never read: one of another format was resumed (and compared) as this one's."""
    from cagekit.cli import main

    out, other = tmp_path / "out", tmp_path / "other"
    assert _cli("react", str(out), *TINY) == 0 and _cli("sleep", str(other), *TINY) == 0
    journal = out / "journal.jsonl"
    journal.write_bytes(journal.read_bytes().replace(b'"format":1,', b'"format":7,', 1))
    kept = journal.read_bytes()
    capsys.readouterr()
    assert _cli("react", str(out), *TINY) == 1
    assert f"{journal} is a journal of format 7 (written by cagekit " in " ".join(capsys.readouterr().err.split())
    assert main(["compare", str(out), str(other)]) == 2
    assert "reads format 1 only" in capsys.readouterr().err
    assert journal.read_bytes() == kept


def test_a_journal_mismatch_lists_only_fields_that_differ_as_written(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture) -> None:
    """Another scenario's default layout made 'layout: journal has None, this run has None' one of the
    differences listed."""
    out = tmp_path / "out"
    assert _cli("react", str(out), *TINY) == 0
    capsys.readouterr()
    assert _cli("react", str(out), *TINY, "--scenario", "cage2") == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "scenario: journal has 'paper-small', this run has 'cage2'" in err and "layout" not in err
