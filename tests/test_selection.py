"""Snapshots along a run (our learners and SB3 alike) and the choice among them on held-out twin episodes."""

from __future__ import annotations

import json

import pytest
import torch

from cagekit.agents import checkpoint as ckpt
from cagekit.agents import load_team
from cagekit.agents.dial import DialLearner
from cagekit.agents.snapshots import SELECTION_FILE, chosen_weights, snapshot_dir, snapshot_marks_passed
from cagekit.agents.training import train
from cagekit.evaluation.selection import SELECTION_SEED_OFFSET, candidates, objective, select_snapshot
from cagekit.evaluation.sources import CheckpointSource

TINY = {"hidden": 16, "gru_layers": 1, "batch_episodes": 2, "eps_anneal_steps": 100, "lr": 1e-3}


def test_snapshot_marks():
    assert [snapshot_marks_passed(s, 100, 5) for s in (0, 19, 20, 39, 40, 99, 100, 130)] == [0, 0, 1, 1, 2, 4, 5, 5]
    assert snapshot_marks_passed(50, 100, 0) == 0


def test_train_keeps_loadable_policy_snapshots_without_trainer_state(tmp_path):
    learner = DialLearner("dial-sau", "paper-small", 0, TINY, episode_length=5, simulator="twin")
    train(learner, 100, tmp_path / "run", checkpoint_every=0, progress=False, snapshots=4)
    snaps = sorted((tmp_path / "run" / "snapshots").iterdir())
    # every 10 env steps per update: marks at 25, 50, 75 are first passed at 30, 50, 80; none at the end (100)
    assert [p.name for p in snaps] == [snapshot_dir(tmp_path, s).name for s in (30, 50, 80)]
    for snap in snaps:
        assert {p.name for p in snap.iterdir()} == {ckpt.MODEL_FILE, ckpt.META_FILE}
        assert ckpt.load_meta(snap)["counters"]["env_steps"] == int(snap.name[4:])
        assert sorted(load_team(snap).agents) == ["blue_ops", "blue_user"]
    first = torch.load(snaps[0] / ckpt.MODEL_FILE, weights_only=True)
    final = torch.load(tmp_path / "run" / ckpt.MODEL_FILE, weights_only=True)
    assert any(not torch.equal(first[k], final[k]) for k in final)  # weights of their own time
    assert candidates(tmp_path / "run") == [*snaps, tmp_path / "run"]


def test_sb3_snapshots_carry_meta(tmp_path):
    from cagekit.agents.sb3 import train_sb3

    out = tmp_path / "ppo"
    train_sb3("maskable-ppo", "paper-small", steps=256, seed=0, out_dir=out, n_envs=2, progress_bar=False,
              algo_kwargs={"n_steps": 32, "batch_size": 32}, snapshots=2, simulator="twin")
    snaps = sorted((out / "snapshots").iterdir())
    assert [p.name for p in snaps] == [snapshot_dir(out, 128).name]
    meta = json.loads((snaps[0] / "meta.json").read_text())
    assert meta["num_timesteps"] == 128 and meta["algo"] == "maskable-ppo"
    assert sorted(load_team(snaps[0]).agents) == ["blue_ops", "blue_user"]


def test_objective_is_return_minus_channel_cost_over_reds():
    summary = {"combinations": [{"mean": -10.0, "channel_cost_per_episode": 1.5},
                                {"mean": -4.0, "channel_cost_per_episode": 0.5}]}
    assert objective(summary) == -16.0


def test_selection_scores_every_candidate_records_the_best_and_reuses_it(tmp_path):
    run = tmp_path / "run"
    learner = DialLearner("dial-sau", "paper-small", 3, TINY, episode_length=5, simulator="twin")
    train(learner, 60, run, checkpoint_every=0, progress=False, snapshots=2)
    assert chosen_weights(run) == run  # nothing chosen yet: the final weights
    chosen = select_snapshot(run, "paper-small", episodes=2, seed=3)  # at the trained length, 5
    record = json.loads((run / SELECTION_FILE).read_text())
    assert set(record["scores"]) == {"step000000030", "final"}
    best = max(record["scores"].values(), key=lambda s: s["objective"])
    assert record["scores"]["final" if chosen == run else chosen.name] == best
    assert chosen_weights(run) == chosen
    assert record["settings"]["seed"] == SELECTION_SEED_OFFSET + 3 and record["settings"]["simulator"] == "twin"
    assert record["settings"]["length"] == 5
    # each candidate's objective is its twin evaluation's, with the held-out seed
    for name, score in record["scores"].items():
        summary = json.loads((run / "selection" / name / "summary.json").read_text())
        assert summary["parameters"]["seed"] == SELECTION_SEED_OFFSET + 3
        assert summary["parameters"]["simulator"] == "twin"
        assert objective(summary) == score["objective"]
        assert not (run / "selection" / name / "scores.png").exists()  # numbers only: no chart to draw
    stamp = (run / SELECTION_FILE).stat().st_mtime_ns
    assert select_snapshot(run, "paper-small", episodes=2, seed=3) == chosen
    assert (run / SELECTION_FILE).stat().st_mtime_ns == stamp  # same settings: reused, not rescored


def test_selection_on_the_engine_where_the_twin_has_no_model(tmp_path):
    run = tmp_path / "run"
    learner = DialLearner("nocomm", "cage2", 0, TINY, episode_length=3)
    train(learner, 12, run, checkpoint_every=0, progress=False, snapshots=2)
    select_snapshot(run, "cage2", episodes=1, seed=0)
    record = json.loads((run / SELECTION_FILE).read_text())
    assert record["settings"]["simulator"] == "engine" and len(record["scores"]) == 2
    summary = json.loads((run / "selection" / "final" / "summary.json").read_text())
    assert summary["parameters"]["simulator"] == "engine" and summary["parameters"]["episode_lengths"] == [3]


def test_a_broken_choice_is_named(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / SELECTION_FILE).write_text(json.dumps({"chosen": "snapshots/step000000999"}))
    with pytest.raises(ValueError, match="step000000999.*delete"):
        chosen_weights(run)


def test_checkpoint_identity_ignores_the_runs_subfolders(tmp_path):
    run = tmp_path / "run"
    learner = DialLearner("nocomm", "paper-small", 0, TINY, episode_length=5, simulator="twin")
    train(learner, 20, run, checkpoint_every=0, progress=False, snapshots=2)
    before = CheckpointSource(str(run)).identity()
    (run / "selection").mkdir()
    (run / "selection" / "journal.jsonl").write_text("{}\n")
    assert CheckpointSource(str(run)).identity() == before
    (run / ckpt.MODEL_FILE).write_bytes((run / ckpt.MODEL_FILE).read_bytes() + b"x")
    assert CheckpointSource(str(run)).identity() != before  # its own weights still count


def test_packaging_a_run_takes_the_chosen_weights_and_leaves_the_rest(tmp_path):
    import zipfile

    from cagekit.submissions.package import package
    from cagekit.submissions.sources import find_checkpoint

    run = tmp_path / "run"
    learner = DialLearner("dial-sau", "paper-small", 1, TINY, episode_length=5, simulator="twin")
    train(learner, 60, run, checkpoint_every=0, progress=False, snapshots=2)
    select_snapshot(run, "paper-small", episodes=1, seed=1)
    (run / SELECTION_FILE).write_text(json.dumps({"chosen": "snapshots/step000000030"}))  # as if it had won
    assert find_checkpoint(run) == run / "snapshots" / "step000000030"
    (run / SELECTION_FILE).write_text(json.dumps({"chosen": "."}))
    assert find_checkpoint(run) == run
    out = package(run, "tester", "t", "dial-sau", tmp_path / "team.zip")
    names = zipfile.ZipFile(out).namelist()
    assert "team/model.pt" in names
    assert not [n for n in names if "/snapshots/" in n or "/selection/" in n]


def test_a_tie_goes_to_the_later_weights(tmp_path):
    """Equal objectives choose the later candidate (the final weights over a snapshot holding the same policy)."""
    run = tmp_path / "run"
    learner = DialLearner("dial-sau", "paper-small", 2, TINY, episode_length=5, simulator="twin")
    train(learner, 60, run, checkpoint_every=0, progress=False, snapshots=2)
    (snap,) = candidates(run)[:-1]
    (snap / ckpt.MODEL_FILE).write_bytes((run / ckpt.MODEL_FILE).read_bytes())  # the same policy twice
    assert select_snapshot(run, "paper-small", episodes=2, seed=2) == run
    scores = json.loads((run / SELECTION_FILE).read_text())["scores"]
    assert scores[snap.name] == scores["final"]


def test_a_run_folder_is_scored_and_packaged_as_the_weights_its_selection_chose(tmp_path, capsys):
    """The benchmark scores a run's chosen snapshot, and `cagekit package RUN` packaged it, but `evaluation.py RUN`
    scored the run's final weights: the same folder meant two teams. It means the chosen weights everywhere, each
    command naming them, with the snapshot's folder as the evaluation's identity (the benchmark's own); a new
    choice still scores the final weights as its "final" candidate."""
    import zipfile

    from cagekit.cli import main
    from cagekit.evaluation.cli import cli_main
    from cagekit.evaluation.sources import resolve_source

    run = tmp_path / "run"
    learner = DialLearner("nocomm", "paper-small", 4, TINY, episode_length=5, simulator="twin")
    train(learner, 60, run, checkpoint_every=0, progress=False, snapshots=2)
    snap = run / "snapshots" / "step000000030"
    (run / SELECTION_FILE).write_text(json.dumps({"chosen": "snapshots/step000000030"}))  # as if it had won
    source = resolve_source(str(run))
    assert source.identity() == CheckpointSource(str(snap)).identity()  # what the benchmark scores
    assert source.label == "run"  # its reports (and default folder) keep the run's name

    out = tmp_path / "eval"
    assert cli_main([str(run), str(out), "--episodes", "1", "--lengths", "5", "--reds", "KillChainAgent",
                     "--workers", "1", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert f"scoring the snapshot it chose, {snap}," in err.replace("\n", "")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["blue"]["path"] == str(snap.resolve()) and summary["submission"]["team"] == "run"

    assert main(["package", str(run), "--name", "me", "--team", "us", "--technique", "t", "--out",
                 str(tmp_path / "team.zip"), "--no-validate"]) == 0
    assert f"packaging the snapshot it chose, {snap}," in capsys.readouterr().err.replace("\n", "")
    assert zipfile.ZipFile(tmp_path / "team.zip").read("team/model.pt") == (snap / ckpt.MODEL_FILE).read_bytes()

    (run / SELECTION_FILE).write_text(json.dumps({"chosen": "."}))  # the final weights chosen: said nowhere
    assert resolve_source(str(run)).identity() == CheckpointSource(str(run)).identity()
    assert "note:" not in capsys.readouterr().err

    # a choice made again (other settings) scores the final weights as "final", not the old choice
    (run / SELECTION_FILE).write_text(json.dumps({"settings": {}, "chosen": "snapshots/step000000030"}))
    select_snapshot(run, "paper-small", episodes=1, seed=4)
    final = json.loads((run / "selection" / "final" / "summary.json").read_text())
    assert final["blue"]["path"] == str(run.resolve())


def test_a_choice_made_again_and_cut_short_keeps_the_old_one(tmp_path, monkeypatch):
    """A choice made again (other settings) deleted the run's selection.json before scoring its candidates; cut short
    there (Ctrl-C, a candidate that fails), the run was left with no choice: it then stood for its final weights
    (evaluation.py, package), and a benchmark rerun refused its own journals of the chosen snapshot before it could
    choose again. The old choice is kept until the new one is made."""
    import cagekit.evaluation.harness as harness

    run = tmp_path / "run"
    learner = DialLearner("nocomm", "paper-small", 4, TINY, episode_length=5, simulator="twin")
    train(learner, 60, run, checkpoint_every=0, progress=False, snapshots=2)
    old = json.dumps({"settings": {}, "chosen": "snapshots/step000000030"})
    (run / SELECTION_FILE).write_text(old)
    scored = harness.evaluate

    def ctrl_c_at_the_second(*args, **kwargs):
        if (run / "selection").is_dir() and any((run / "selection").iterdir()):
            raise KeyboardInterrupt
        return scored(*args, **kwargs)

    monkeypatch.setattr(harness, "evaluate", ctrl_c_at_the_second)
    with pytest.raises(KeyboardInterrupt):
        select_snapshot(run, "paper-small", episodes=1, seed=4)
    assert (run / SELECTION_FILE).read_text() == old
    assert chosen_weights(run) == run / "snapshots" / "step000000030"
    monkeypatch.undo()
    chosen = select_snapshot(run, "paper-small", episodes=1, seed=4)  # made again, to the end: replaced
    assert json.loads((run / SELECTION_FILE).read_text())["settings"]["episodes"] == 1
    assert chosen_weights(run) == chosen


def test_a_selection_file_cut_short_is_named_and_chosen_again(tmp_path, capsys):
    """A selection.json cut short (a kill while it was written, before writes were atomic) gave evaluation.py RUN
    a bare JSON error naming no file, and stopped the benchmark's choice with the same; it is named with what to
    do, and the benchmark's selection makes the choice again."""
    from cagekit.evaluation import run_command

    run = tmp_path / "run"
    learner = DialLearner("nocomm", "paper-small", 4, TINY, episode_length=5, simulator="twin")
    train(learner, 60, run, checkpoint_every=0, progress=False, snapshots=2)
    (run / SELECTION_FILE).write_text('{"settings": {"scen')
    with pytest.raises(ValueError, match=f"{run / SELECTION_FILE} is not a readable choice of weights .*delete it"):
        chosen_weights(run)
    with pytest.raises(ValueError, match="is not a readable choice of weights"):
        run_command([str(run), str(tmp_path / "out"), "--episodes", "1", "--lengths", "5", "--no-progress"])
    chosen = select_snapshot(run, "paper-small", episodes=1, seed=4)
    assert chosen_weights(run) == chosen and not list(run.glob("*.tmp"))
