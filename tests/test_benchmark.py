"""`cagekit benchmark`: trains (or loads) each algorithm, scores each with the harness, writes the table."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from cagekit.cli import main
from cagekit.evaluation.benchmark_folder import TRAIN_RECORD
from cagekit.evaluation.benchmark_pool import train_many
from cagekit.evaluation.benchmark_training import TrainJob
from cagekit.evaluation.protocol import seed_ci95


def test_benchmark_table_and_reuse_of_trained_runs(tmp_path, capsys):
    out = tmp_path / "bm"
    fast = Path(__file__).resolve().parents[1] / "configs" / "dial-sau-fast.yaml"  # 240 env steps per update
    argv = ["benchmark", "--algos", "nocomm,react,sleep", "--seeds", "2", "--steps", "720", "--episodes", "2",
            "--lengths", "6", "--reds", "KillChainAgent,SleepAgent", "--out", str(out), "--no-progress",
            "--snapshots", "3", "--select-episodes", "1", "--config", f"nocomm={fast}"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    table = pd.read_csv(out / "table.csv")
    assert table["algo"].tolist() == ["nocomm", "react", "sleep"]
    # one line per scored team, not a table each: the benchmark's own table follows
    summary = json.loads((out / "eval" / "react-s1" / "summary.json").read_text())
    assert (f"react-s1: score {summary['total']['score']:.2f} ± {summary['total']['ci95']:.2f}, "
            f"{summary['bits_per_episode']:.2f} bits per episode (reports in {out / 'eval' / 'react-s1'}/)") in printed
    assert "┏" not in printed
    assert printed.count("note: nocomm's epsilon anneals over 15,000 env steps, more than this run's 720") == 1
    assert (table["seeds"] == 2).all()
    per_seed = pd.read_csv(out / "per_seed.csv")
    # each row's score is the harness's own total for that seed
    for _, row in per_seed.iterrows():
        summary = json.loads((out / "eval" / f"{row['algo']}-s{row['seed']}" / "summary.json").read_text())
        assert row["score"] == summary["total"]["score"]
    # the table: mean over seeds, with the 95% interval over seeds (not the harness's intervals within seeds)
    for _, row in table.iterrows():
        mine = per_seed[per_seed["algo"] == row["algo"]]
        assert row["score"] == pytest.approx(mine["score"].mean())
        assert row["ci95"] == pytest.approx(seed_ci95(mine["score"].tolist()))
        assert row["KillChainAgent@6"] == pytest.approx(mine["KillChainAgent@6"].mean())
    assert table["ci95"].gt(0).any()
    assert (out / "table.md").read_text().count("\n| ") == 4
    # each learned team scored is the weights its held-out choice named (snapshot or final)
    for seed in (0, 1):
        run = out / "runs" / f"nocomm-s{seed}"
        record = json.loads((run / "selection.json").read_text())
        assert list(record["scores"]) == ["step000000240", "step000000480", "final"]
        summary = json.loads((out / "eval" / f"nocomm-s{seed}" / "summary.json").read_text())
        assert summary["blue"]["path"] == str((run / record["chosen"]).resolve())
        # reported as the run, not as the snapshot folder ("step000000480") the choice fell on
        assert summary["submission"]["team"] == f"nocomm-s{seed}"
    assert (out / "benchmark.png").stat().st_size > 0
    trained = (out / "runs" / "nocomm-s0" / "model.pt").stat().st_mtime_ns
    capsys.readouterr()
    assert main(argv) == 0  # a second run loads the trained runs and the journaled evaluations
    assert "note:" not in capsys.readouterr().out  # nothing to train, so nothing to warn of
    assert (out / "runs" / "nocomm-s0" / "model.pt").stat().st_mtime_ns == trained
    assert pd.read_csv(out / "table.csv").equals(table)


def test_another_choice_of_weights_is_refused_before_it_changes_a_run(tmp_path, capsys):
    """A rerun asking for another --select-episodes used to write its own selection.json first, so that it
    was refused by the scores' journal and left the folder refusing the original command too; and with 0 a
    selection.json still chose the weights. Both are refused now, before anything is written."""
    out = tmp_path / "bm"
    fast = Path(__file__).resolve().parents[1] / "configs" / "dial-sau-fast.yaml"
    argv = ["benchmark", "--algos", "nocomm", "--seeds", "1", "--episodes", "1", "--lengths", "4", "--steps", "480",
            "--reds", "SleepAgent", "--out", str(out), "--no-progress", "--snapshots", "2",
            "--config", f"nocomm={fast}"]
    run = out / "runs" / "nocomm-s0"
    assert main([*argv, "--select-episodes", "0"]) == 0
    assert not (run / "selection.json").exists()
    assert main([*argv, "--select-episodes", "1"]) == 2
    assert "chosen by --select-episodes 0 (0: its final weights) and this benchmark asks for 1" in \
        capsys.readouterr().err
    assert not (run / "selection.json").exists()
    assert main([*argv, "--select-episodes", "0"]) == 0  # the original command still works
    assert main([*[a if a != "2" else "3" for a in argv], "--select-episodes", "0"]) == 2  # --snapshots 3
    assert "(--snapshots 2) and this benchmark asks for --snapshots 3" in capsys.readouterr().err

    other = tmp_path / "other"
    argv = [a if a != str(out) else str(other) for a in argv]
    assert main([*argv, "--select-episodes", "1"]) == 0
    chosen = (other / "runs" / "nocomm-s0" / "selection.json").read_text()
    record = other / "runs" / "nocomm-s0" / TRAIN_RECORD
    record.write_text(json.dumps({k: v for k, v in json.loads(record.read_text()).items()
                                  if k != "select_episodes"}))  # a record from before select_episodes was kept
    assert main([*argv, "--select-episodes", "0"]) == 2
    assert "chosen on 1 held-out episodes per red (selection.json) and this benchmark asks for " \
           "--select-episodes 0" in " ".join(capsys.readouterr().err.split())
    assert (other / "runs" / "nocomm-s0" / "selection.json").read_text() == chosen


def test_a_finished_run_trained_with_other_settings_is_refused(tmp_path, capsys):
    """Changing the config file's contents (same path) or the training environment between two benchmarks
    of one folder must not score the old run as if it had the new settings."""
    out = tmp_path / "bm"
    config = tmp_path / "fast.yaml"
    fast = Path(__file__).resolve().parents[1] / "configs" / "dial-sau-fast.yaml"
    config.write_text(fast.read_text())
    argv = ["benchmark", "--algos", "nocomm", "--seeds", "1", "--episodes", "1", "--lengths", "4", "--steps", "240",
            "--reds", "SleepAgent", "--out", str(out), "--no-progress", "--snapshots", "0", "--select-episodes", "0",
            "--config", f"nocomm={config}"]
    assert main(argv) == 0
    record = json.loads((out / "runs" / "nocomm-s0" / "benchmark-train.json").read_text())
    assert record["config"]["lr"] == 0.001 and record["env"]["red"] == "all"
    model = out / "runs" / "nocomm-s0" / "model.pt"
    before = model.read_bytes()
    assert main(argv) == 0  # the same settings: reused
    config.write_text(fast.read_text().replace("lr: 0.001", "lr: 0.0005"))
    assert main(argv) != 0
    err = capsys.readouterr().err
    assert "trained with other config settings (lr: 0.001 -> 0.0005)" in err
    config.write_text(fast.read_text())
    assert main([*argv, "--message-cost", "0.5"]) != 0
    assert "trained with other env settings (message_cost: unset -> 0.5)" in capsys.readouterr().err
    assert model.read_bytes() == before  # nothing retrained, nothing lost


def test_a_finished_run_of_another_budget_is_refused(tmp_path, capsys):
    out = tmp_path / "bm"
    fast = Path(__file__).resolve().parents[1] / "configs" / "dial-sau-fast.yaml"
    argv = ["benchmark", "--algos", "nocomm", "--seeds", "1", "--episodes", "1", "--lengths", "4",
            "--reds", "SleepAgent", "--out", str(out), "--no-progress", "--snapshots", "0", "--select-episodes", "0",
            "--config", f"nocomm={fast}"]
    assert main([*argv, "--steps", "240"]) == 0
    model = out / "runs" / "nocomm-s0" / "model.pt"
    before = model.read_bytes()
    assert main([*argv, "--steps", "480"]) != 0
    err = capsys.readouterr().err
    assert "trained for 240 steps" in err and "asks for 480" in err
    assert model.read_bytes() == before  # nothing retrained, nothing lost


def test_detection_reaches_training_selection_and_scoring(tmp_path):
    """`--detection` is one setting of the whole pipeline: the run trains with it (and records it), the
    snapshot choice and the engine scores use it."""
    out = tmp_path / "bm"
    fast = Path(__file__).resolve().parents[1] / "configs" / "dial-sau-fast.yaml"
    argv = ["benchmark", "--algos", "nocomm", "--seeds", "1", "--episodes", "1", "--lengths", "4", "--steps", "240",
            "--reds", "SleepAgent", "--out", str(out), "--no-progress", "--snapshots", "1", "--select-episodes", "1",
            "--config", f"nocomm={fast}", "--detection", "0.5"]
    assert main(argv) == 0
    run = out / "runs" / "nocomm-s0"
    assert json.loads((run / "benchmark-train.json").read_text())["env"]["detection"] == 0.5
    assert json.loads((run / "meta.json").read_text())["env"]["detection"] == 0.5
    assert json.loads((run / "selection.json").read_text())["settings"]["detection"] == 0.5
    assert json.loads((out / "eval" / "nocomm-s0" / "summary.json").read_text())["parameters"]["detection"] == 0.5


def test_train_command_records_detection_for_resume(tmp_path):
    """`cagekit train --detection` trains at that probability and records it, so `--resume` keeps it."""
    out = tmp_path / "run"
    fast = Path(__file__).resolve().parents[1] / "configs" / "dial-sau-fast.yaml"
    assert main(["train", "--algo", "nocomm", "--scenario", "paper-small", "--steps", "240", "--out", str(out),
                 "--config", str(fast), "--red", "SleepAgent", "--detection", "0.5", "--no-progress"]) == 0
    assert json.loads((out / "run.json").read_text())["env"]["detection"] == 0.5
    assert json.loads((out / "meta.json").read_text())["env"]["detection"] == 0.5


def test_train_names_its_run_on_the_bar_and_says_where_the_checkpoint_went(tmp_path, capsys, monkeypatch):
    """The bar was named "train" for every run (a benchmark's runs could not be told apart), and our
    learners' last line said "done" without the folder that SB3 runs' line names."""
    monkeypatch.setenv("COLUMNS", "200")  # rich draws the bar this wide here, as in a wide terminal
    out = tmp_path / "run"
    fast = Path(__file__).resolve().parents[1] / "configs" / "dial-sau-fast.yaml"
    assert main(["train", "--algo", "nocomm", "--steps", "240", "--out", str(out), "--config", str(fast),
                 "--red", "SleepAgent"]) == 0
    printed = capsys.readouterr().out
    assert "nocomm seed 0" in printed and "eps 1.000" in printed
    last = printed.strip().splitlines()[-1]
    assert f"done; checkpoint in {out}/ (score it: python evaluation.py {out})" in " ".join(last.split())


def test_parallel_training_shows_runs_done_and_keeps_every_finished_run(tmp_path, capsys):
    """The study's training pool (several processes) draws one bar of finished runs, returns each job's
    seconds in job order, and a run that fails raises only after the others have finished and kept their
    results (a rerun then reuses them)."""
    fast = str(Path(__file__).resolve().parents[1] / "configs" / "dial-sau-fast.yaml")
    env = {"episode_length": 6, "red": "all"}
    jobs = [TrainJob("nocomm", "paper-small", seed, 48, str(tmp_path / f"nocomm-s{seed}"), fast, env)
            for seed in (0, 1)]
    seconds = train_many(jobs, 2, progress=True)
    out = capsys.readouterr().out
    assert "training runs" in out and "2/2" in out
    records = [json.loads((Path(job.run_dir) / TRAIN_RECORD).read_text())["train_seconds"] for job in jobs]
    assert seconds == records
    broken = TrainJob("no-such-algo", "paper-small", 0, 48, str(tmp_path / "broken"), None, env)
    third = TrainJob("nocomm", "paper-small", 2, 48, str(tmp_path / "nocomm-s2"), fast, env)
    with pytest.raises(ValueError, match="no-such-algo"):
        train_many([broken, third], 2)
    assert (tmp_path / "nocomm-s2" / TRAIN_RECORD).is_file()


@pytest.mark.parametrize(("extra", "message"), [
    (["--reds", "Nope"], "unknown red agent"),
    (["--reds", ""], "--reds '' has an empty item"),  # was every red, as if not given
    (["--episodes", "0"], "episodes must be >= 1"),
    (["--lengths", "5,5"], r"episode length\(s\) \[5\] given more than once"),
    (["--steps", "0"], "training steps must be >= 1"),
    (["--config", "dial_sau=configs/dial-sau-fast.yaml"], "which --algos does not train"),
    (["--jobs", "0"], "--jobs must be >= 1, got 0"),
    (["--workers", "0"], "--workers must be >= 1, got 0"),
    (["--snapshots", "-1"], "--snapshots must be >= 0, got -1"),
    (["--select-episodes", "-2"], "--select-episodes must be >= 0, got -2"),
])
def test_bad_settings_are_refused_before_any_training(tmp_path, capsys, extra, message):
    """A mistake in the evaluation settings would otherwise surface after hours of training."""
    out = tmp_path / "bm"
    argv = ["benchmark", "--algos", "qmix", "--seeds", "1", "--steps", "60", "--episodes", "1", "--lengths", "5",
            "--out", str(out), "--no-progress", *extra]
    assert main(argv) == 2
    assert re.search(message, capsys.readouterr().err)
    assert not out.exists()


@pytest.mark.parametrize(("algo", "config", "scenario", "message"), [
    ("ppo", 'learning_rate: "x"', "paper-small", "ppo config key 'learning_rate' must be a finite number, got 'x'"),
    ("ppo", "batch_size: 1", "paper-small", "`batch_size` must be greater than 1"),  # SB3's own check, named
    ("qmix", "epsilon_start: 2", "paper-small", "QMix config key 'epsilon_start' must be in [0, 1], got 2"),
    ("dial-sau", None, "cage2", "dial-sau needs two or more blue agents to talk"),
])
def test_benchmark_refuses_what_it_cannot_train_before_any_folder(tmp_path, capsys, algo, config, scenario, message):
    """These ended in a traceback mid-benchmark, leaving OUT/runs/ALGO-s0 behind (or, for DIAL on cage2's one
    Blue agent, a run whose team failed when scored)."""
    out = tmp_path / "bm"
    given = []
    if config is not None:
        (tmp_path / "c.yaml").write_text(config + "\n")
        given = ["--config", f"{algo}={tmp_path / 'c.yaml'}"]
    argv = ["benchmark", "--algos", algo, "--scenario", scenario, "--seeds", "1", "--steps", "60", "--episodes", "1",
            "--lengths", "5", "--out", str(out), "--no-progress", *given]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_reproduce_refuses_bad_numbers_before_training(tmp_path, capsys):
    out = tmp_path / "rp"
    assert main(["reproduce", "--quick", "--episodes", "0", "--out", str(out), "--doc", str(tmp_path / "r.md")]) == 2
    assert "episodes must be >= 1, got 0" in capsys.readouterr().err
    assert main(["reproduce", "--quick", "--config", "x.yaml", "--out", str(out)]) == 2
    assert "--config expects ALGO=FILE" in capsys.readouterr().err
    assert not out.exists()


def test_reproduce_refuses_bad_configs_and_a_folder_for_doc_before_training(tmp_path, capsys):
    """These were found only after the whole study had trained (with --jobs 2, the default)."""
    out = tmp_path / "rp"
    good = Path(__file__).resolve().parents[1] / "configs" / "dial-sau-fast.yaml"
    assert main(["reproduce", "--quick", "--config", f"react={good}", "--out", str(out)]) == 2
    assert "--config for ['react'], which the study does not train" in capsys.readouterr().err
    assert main(["reproduce", "--quick", "--config", f"qmix={tmp_path / 'missing.yaml'}", "--out", str(out)]) == 2
    assert "missing.yaml cannot be read" in capsys.readouterr().err
    assert main(["reproduce", "--quick", "--doc", str(tmp_path), "--out", str(out)]) == 2
    assert "is a folder; name the Markdown file to write" in capsys.readouterr().err
    (tmp_path / "summary.txt").write_text("an evaluation's\n")
    assert main(["reproduce", "--quick", "--doc", str(tmp_path / "summary.txt"), "--out", str(out)]) == 2
    assert "--doc " + str(tmp_path / "summary.txt") + " exists and is no markdown file (.md); the study writes " \
        "markdown" in capsys.readouterr().err
    assert (tmp_path / "summary.txt").read_text() == "an evaluation's\n"
    assert not out.exists()
    # a file for --out, or under --doc, was met only by the study's first mkdir: 'File exists', 'Not a directory'
    afile = tmp_path / "afile"
    afile.write_text("mine\n")
    assert main(["reproduce", "--quick", "--out", str(afile)]) == 2
    assert f"--out {afile} is a file; give the study's work folder" in capsys.readouterr().err
    assert main(["reproduce", "--quick", "--out", str(out), "--doc", str(afile / "results.md")]) == 2
    assert f"--doc's folder {afile} is a file; name a Markdown file in a folder" in capsys.readouterr().err
    assert afile.read_text() == "mine\n" and not out.exists()
    for command in (["reproduce", "--quick"], ["benchmark", "--algos", "react"], ["train", "--algo", "qmix"]):
        assert main([*command, "--out", ""]) == 2
        assert "--out is empty; name a path" in capsys.readouterr().err


def test_the_results_document_names_the_command_that_made_its_numbers(tmp_path):
    from cagekit.evaluation.study_plan import StudyPlan, default_configs
    from cagekit.evaluation.study_report import _command

    doc = tmp_path / "r.md"
    assert _command(StudyPlan.quick(tmp_path, doc)) == "cagekit reproduce --quick"
    tuned = StudyPlan.quick(tmp_path, doc, steps={"paper-small": 300, "paper-large": 300}, episodes=1,
                            select_episodes=0)
    assert _command(tuned) == "cagekit reproduce --quick --steps 300 --episodes 1 --select-episodes 0"
    one_seed = StudyPlan(out=tmp_path, doc=doc, seeds=1, steps={"paper-small": 5000, "paper-large": 5000})
    assert not one_seed.quick_run  # a short full run is not the --quick one
    assert _command(one_seed) == "cagekit reproduce --seeds 1 --steps 5000 --episodes 100 --select-episodes 20"
    qmix = tmp_path / "qmix.yaml"
    qmix.write_text("lr: 0.001\n")
    custom = StudyPlan(out=tmp_path, doc=doc, configs={**default_configs(), "qmix": str(qmix)})
    assert _command(custom).endswith(f"--select-episodes 20 --config qmix={qmix}")


def test_a_refused_training_run_leaves_no_folder_to_resume(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--algo", "qmix", "--steps", "60", "--red", "Nope", "--out", str(out), "--no-progress"]) == 2
    assert "unknown red agent(s) ['Nope']" in capsys.readouterr().err
    assert not out.exists()
    assert main(["train", "--algo", "qmix", "--steps", "0", "--out", str(out), "--no-progress"]) == 2
    assert "--steps must be >= 1, got 0" in capsys.readouterr().err
    assert main(["train", "--algo", "qmix", "--steps", "60", "--out", str(out), "--no-progress"]) == 0  # corrected


def test_checkpoint_every_is_refused_for_sb3_and_applies_on_resume_for_our_learners(tmp_path, capsys):
    """SB3 runs checkpoint every tenth of the run, so `--checkpoint-every` there would be silently ignored:
    it is refused; for our learners a value given with `--resume` replaces the recorded one."""
    sb3_out = tmp_path / "ppo"
    assert main(["train", "--algo", "ppo", "--steps", "64", "--checkpoint-every", "5", "--out", str(sb3_out),
                 "--no-progress"]) == 2
    assert "ppo is an SB3 run, which checkpoints every tenth of the run" in capsys.readouterr().err
    assert not sb3_out.exists()
    out = tmp_path / "qmix"
    assert main(["train", "--algo", "qmix", "--steps", "60", "--out", str(out), "--no-progress"]) == 0
    assert json.loads((out / "run.json").read_text())["checkpoint_every"] == 50
    assert main(["train", "--resume", str(out), "--steps", "90", "--checkpoint-every", "7", "--no-progress"]) == 0
    assert json.loads((out / "run.json").read_text())["checkpoint_every"] == 7


def test_a_resume_that_trained_past_the_old_steps_and_failed_continues_to_its_new_steps(tmp_path, capsys,
                                                                                        monkeypatch):
    """A resume with a new --steps that saved checkpoints and then failed (an exception, not Ctrl-C) put run.json
    back with its old --steps: the next `--resume RUN`, checkpoints past them, said "already trained past the 60
    steps asked for: nothing to do", a finished run at 150 of the 200 steps asked for. The record it trained
    under is kept, and the next resume ends where one that never failed does; a resume that failed before it
    saved anything still leaves the record as it was."""
    from cagekit.agents import train_cli

    real = train_cli.make_learner

    def failing_at(call: int) -> Any:
        def make(*args: Any, **kwargs: Any) -> Any:
            learner = real(*args, **kwargs)
            update, calls = learner.update, []

            def update_or_fail() -> Any:
                calls.append(1)
                if len(calls) == call:
                    raise RuntimeError("the update failed")
                return update()
            learner.update = update_or_fail
            return learner
        return make

    def steps(run: Path) -> tuple[int, int]:
        meta = json.loads((run / "meta.json").read_text())
        return json.loads((run / "run.json").read_text())["steps"], meta["counters"]["env_steps"]

    runs = {name: tmp_path / name for name in ("failed", "uninterrupted")}
    for run in runs.values():
        assert main(["train", "--algo", "qmix", "--steps", "60", "--checkpoint-every", "1", "--out", str(run),
                     "--no-progress"]) == 0
    assert main(["train", "--resume", str(runs["uninterrupted"]), "--steps", "200", "--no-progress"]) == 0
    out = runs["failed"]
    monkeypatch.setattr(train_cli, "make_learner", failing_at(1))  # fails before it saves anything
    with pytest.raises(RuntimeError, match="the update failed"):
        main(["train", "--resume", str(out), "--steps", "200", "--no-progress"])
    assert steps(out) == (60, 60)
    monkeypatch.setattr(train_cli, "make_learner", failing_at(4))  # three updates of 30 steps saved, then fails
    with pytest.raises(RuntimeError, match="the update failed"):
        main(["train", "--resume", str(out), "--steps", "200", "--no-progress"])
    assert steps(out) == (200, 150)
    monkeypatch.undo()
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--no-progress"]) == 0
    assert "nothing to do" not in capsys.readouterr().out
    assert steps(out) == steps(runs["uninterrupted"]) == (200, 210)
    assert (out / "model.pt").read_bytes() == (runs["uninterrupted"] / "model.pt").read_bytes()


def test_train_refuses_bad_settings_before_making_a_run(tmp_path, capsys):
    """Each refused in one line (exit 2), leaving no folder behind that would ask the corrected command for
    --resume: a NaN cost (it trained NaN weights), a config value of the wrong type, an unknown SB3
    hyperparameter, the twin for a scenario it does not model."""
    bad = tmp_path / "bad.yaml"
    bad.write_text('sigma: "2"\n')
    unknown = tmp_path / "ppo.yaml"
    unknown.write_text("lrr: 0.1\n")
    sizes = tmp_path / "d.yaml"
    sizes.write_text("hidden: 0\n")
    rate = tmp_path / "sb3.yaml"
    rate.write_text('learning_rate: "x"\n')
    for argv, message in [
        (["--algo", "dial-sau", "--config", str(sizes)], "DIAL config key 'hidden' must be >= 1, got 0"),
        (["--algo", "ppo", "--config", str(rate)], "ppo config key 'learning_rate' must be a finite number, got 'x'"),
        (["--algo", "dial-sau", "--scenario", "cage2"], "dial-sau needs two or more blue agents to talk, and "
                                                         "cage2's layout 'classic' has one (Blue); cage2's layouts "
                                                         "with several: team (blue_user, blue_enterprise, blue_ops); "
                                                         "choose one with --layout team"),
        (["--algo", "qmix", "--scenario", "cage2", "--layout", "teams"],
         "scenario 'cage2' has no blue layout 'teams'; valid: classic, team"),
        (["--algo", "dial-sau", "--message-cost", "nan"], "(the reward a sent 1 costs), got nan"),
        (["--algo", "nocomm", "--config", str(bad)], "DIAL config key 'sigma' must be a finite number, got '2'"),
        (["--algo", "ppo", "--config", str(unknown)], "unknown ppo hyperparameter(s) ['lrr']; valid: batch_size"),
        (["--algo", "qmix", "--scenario", "cage2", "--backend", "twin"], "the twin models the paper networks'"),
        (["--algo", "qmix", "--seed", "-1"], "--seed must be >= 0, got -1"),
        (["--algo", "qmix", "--red", " "], "--red is empty: name a red agent"),
        (["--algo", "qmix", "--red", "KillChainAgent,,SleepAgent"], "--red: the red agent list "
                                                                    "'KillChainAgent,,SleepAgent' has an empty item"),
    ]:
        out = tmp_path / "run"
        assert main(["train", *argv, "--steps", "60", "--out", str(out), "--no-progress"]) == 2
        assert message in capsys.readouterr().err
        assert not out.exists()
    assert main(["train", "--algo", "nocomm", "--steps", "60", "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    # by default a run trains against every red the evaluation scores, and says when it ends still exploring
    assert json.loads((tmp_path / "run" / "run.json").read_text())["env"]["red"] == "all"
    assert ("note: nocomm's epsilon anneals over 2,000,000 env steps, more than this run's 60: it ends still "
            "exploring. configs/dial-sau-fast.yaml is the tested setting") in capsys.readouterr().out
    # a run given the fast config (or another short schedule) is told it ends exploring, not to use that config
    fast = Path(__file__).resolve().parents[1] / "configs" / "dial-sau-fast.yaml"
    assert main(["train", "--algo", "nocomm", "--steps", "60", "--out", str(tmp_path / "fast"), "--no-progress",
                 "--config", str(fast)]) == 0
    out = capsys.readouterr().out
    assert "note: nocomm's epsilon anneals over 15,000 env steps, more than this run's 60" in out
    assert "dial-sau-fast.yaml" not in out



def test_benchmark_points_short_dial_runs_to_the_fast_config_in_its_own_option_form(tmp_path, capsys):
    # the benchmark takes --config ALGO=FILE and refuses the bare file that cagekit train's note gives
    argv = ["benchmark", "--algos", "dial-sau", "--seeds", "1", "--steps", "60", "--episodes", "1", "--lengths", "4",
            "--reds", "SleepAgent", "--snapshots", "0", "--select-episodes", "0", "--out", str(tmp_path / "bm"),
            "--no-progress"]
    assert main(argv) == 0
    assert "(--config dial-sau=configs/dial-sau-fast.yaml)" in capsys.readouterr().out

def test_resume_refuses_other_settings_and_names_an_unreadable_record(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--algo", "qmix", "--steps", "60", "--out", str(out), "--no-progress"]) == 0
    record = (out / "run.json").read_text()
    for argv in (["--scenario", "cage2"], ["--algo", "dqn"], ["--message-cost", "5"], ["--seed", "3"],
                 ["--out", str(tmp_path / "elsewhere")], ["--layout", "classic"]):
        assert main(["train", "--resume", str(out), *argv, "--steps", "90", "--no-progress"]) == 2
        assert "differs from its" in capsys.readouterr().err
    assert (out / "run.json").read_text() == record  # nothing changed
    # the same values as recorded are no conflict, nor the layout a run.json without one trained on
    assert main(["train", "--resume", str(out), "--algo", "qmix", "--scenario", "paper-small", "--seed", "0",
                 "--layout", "team", "--steps", "90", "--no-progress"]) == 0
    (out / "run.json").write_text("{broken")
    assert main(["train", "--resume", str(out), "--no-progress"]) == 2
    assert f"cannot resume {out}: its run.json is unreadable" in capsys.readouterr().err


def test_resume_takes_the_reds_a_run_trains_against_however_spelt(tmp_path, capsys):
    """A run made before training defaulted to every red records none in run.json: it trains against the
    scenario's default red, so --red naming that red is no conflict on resume, nor 'all' against the list of
    every red, nor a list with spaces; another red is refused."""
    out = tmp_path / "run"
    assert main(["train", "--algo", "qmix", "--steps", "60", "--out", str(out), "--no-progress"]) == 0
    record = json.loads((out / "run.json").read_text())
    del record["env"]["red"]  # as cagekit train wrote it before --red all was the default
    (out / "run.json").write_text(json.dumps(record))
    meta = json.loads((out / "meta.json").read_text())
    del meta["env"]["red"]  # and as such a run's learner recorded it (a resume must match it)
    (out / "meta.json").write_text(json.dumps(meta))
    for red, code in (("KillChainAgent", 0), ("all", 2), ("ExplorerAgent", 2)):
        assert main(["train", "--resume", str(out), "--red", red, "--steps", "90", "--no-progress"]) == code
        assert ("differs from its" in capsys.readouterr().err) == bool(code)
    assert "red" not in json.loads((out / "run.json").read_text())["env"]  # still the default red
    listed = tmp_path / "listed"
    assert main(["train", "--algo", "qmix", "--steps", "60", "--out", str(listed), "--no-progress",
                 "--red", "KillChainAgent,ExplorerAgent,SleepAgent"]) == 0
    for red in ("all", "KillChainAgent, ExplorerAgent, SleepAgent"):
        assert main(["train", "--resume", str(listed), "--red", red, "--steps", "90", "--no-progress"]) == 0


def test_resume_takes_the_scenarios_message_cost_and_detection_named_for_a_run_made_without_them(tmp_path, capsys):
    """A run made without --message-cost or --detection trains at the scenario's (0.1 and 0.1 on paper-small),
    and its run.json records none: naming those values on resume was refused as "0.1 differs from its None",
    as if they were other settings. Other values are still refused, and the run.json is left as it was."""
    out = tmp_path / "run"
    assert main(["train", "--algo", "qmix", "--steps", "60", "--out", str(out), "--no-progress"]) == 0
    record = json.loads((out / "run.json").read_text())
    assert "message_cost" not in record["env"] and "detection" not in record["env"]
    for given, code in ((["--message-cost", "0.1"], 0), (["--detection", "0.1"], 0),
                        (["--message-cost", "0.1", "--detection", "0.1"], 0), (["--message-cost", "0.2"], 2),
                        (["--detection", "0.5"], 2)):
        assert main(["train", "--resume", str(out), *given, "--steps", "90", "--no-progress"]) == code
        assert ("differs from its" in capsys.readouterr().err) == bool(code)
    assert {k: v for k, v in json.loads((out / "run.json").read_text()).items() if k != "steps"} == {
        k: v for k, v in record.items() if k != "steps"}


def test_resume_continues_with_the_hyperparameters_recorded_at_the_start(tmp_path, capsys, monkeypatch):
    """run.json recorded only --config's path as typed: a resume from another folder could not read a relative
    one ("cannot read config file configs/..."), the file's absolute path was refused as another config, and
    an edited file was taken silently by an SB3 resume. The hyperparameters are recorded when the run starts and
    a resume continues with them: from anywhere, with the file moved or edited (said), and --config is compared
    by what it holds. The weights equal an uninterrupted run's."""
    start, elsewhere = tmp_path / "start", tmp_path / "elsewhere"
    start.mkdir(), elsewhere.mkdir()
    (start / "q.yaml").write_text("batch_episodes: 4\nlr: 1e-3\n")
    monkeypatch.chdir(start)
    out = tmp_path / "run"
    assert main(["train", "--algo", "qmix", "--steps", "60", "--out", str(out), "--no-progress",
                 "--config", "q.yaml"]) == 0
    assert json.loads((out / "run.json").read_text())["hyperparameters"] == {"batch_episodes": 4, "lr": 1e-3}
    whole = tmp_path / "whole"
    assert main(["train", "--algo", "qmix", "--steps", "120", "--out", str(whole), "--no-progress",
                 "--config", "q.yaml"]) == 0
    monkeypatch.chdir(elsewhere)
    (elsewhere / "same.json").write_text(json.dumps({"lr": 0.001, "batch_episodes": 4}))
    (elsewhere / "other.json").write_text(json.dumps({"lr": 0.01, "batch_episodes": 4}))
    assert main(["train", "--resume", str(out), "--config", "other.json", "--steps", "120", "--no-progress"]) == 2
    assert "--config other.json holds others (lr: 0.001 -> 0.01)" in capsys.readouterr().err
    (start / "q.yaml").write_text("batch_episodes: 8\n")  # edited after the run started: said, not read
    assert main(["train", "--resume", str(out), "--config", str(start / "q.yaml"), "--steps", "120",
                 "--no-progress"]) == 2  # what it holds now is another config
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--config", "same.json", "--steps", "90", "--no-progress"]) == 0
    monkeypatch.chdir(start)
    assert main(["train", "--resume", str(out), "--steps", "120", "--no-progress"]) == 0
    assert "note: q.yaml has changed since the run started" in capsys.readouterr().out
    assert (out / "model.pt").read_bytes() == (whole / "model.pt").read_bytes()


def test_cli_names_bad_paths_and_numbers_without_a_traceback(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("")
    assert main(["train", "--algo", "qmix", "--steps", "60", "--out", str(afile), "--no-progress"]) == 2
    assert f"--out {afile} is a file; give the run's folder (new or empty)" in capsys.readouterr().err
    assert main(["train", "--algo", "qmix", "--steps", "60", "--out", str(afile / "run"), "--no-progress"]) == 2
    assert f"--out {afile / 'run'} lies under {afile}, which is a file" in capsys.readouterr().err
    assert main(["train", "--algo", "qmix", "--steps", "60", "--detection", "2", "--out", str(tmp_path / "r"),
                 "--no-progress"]) == 2
    assert "detection is a probability in [0, 1], got 2.0" in capsys.readouterr().err
    shipped = Path(__file__).resolve().parents[1] / "submissions" / "react-paper-small.zip"
    assert main(["validate", str(shipped), "--steps", "0"]) == 2
    assert "smoke steps must be >= 1" in capsys.readouterr().err
    assert main(["validate", str(shipped), "--act-timeout", "inf"]) == 2  # select() would overflow
    assert "the act timeout must be a positive number of seconds up to 86,400 (a day), got inf" in \
        capsys.readouterr().err


def test_an_interrupted_benchmark_keeps_its_run_unfinished_and_a_rerun_equals_an_uninterrupted_one(
        tmp_path, monkeypatch, capsys):
    """Ctrl-C in a training run stops the benchmark (exit 130) with the run's state saved but the run not
    recorded as finished, so it is neither scored half-trained nor reused as done; the same command then
    continues it, and (our learners resume exactly) the table equals that of a run never interrupted. Its
    training time is that of both tries: it counted the last one only."""
    import time

    import torch

    import cagekit.agents.training as training
    from cagekit.agents.checkpoint import load_model_state

    fast = Path(__file__).resolve().parents[1] / "configs" / "dial-sau-fast.yaml"  # 240 env steps per update
    def argv(out: Path) -> list[str]:
        return ["benchmark", "--algos", "nocomm", "--seeds", "1", "--steps", "720", "--episodes", "2",
                "--lengths", "6", "--reds", "KillChainAgent", "--out", str(out), "--no-progress", "--snapshots", "3",
                "--select-episodes", "1", "--config", f"nocomm={fast}"]

    real = training.make_learner

    def learner_stopped_at_its_second_update(*args, **kwargs):
        learner = real(*args, **kwargs)
        update, calls = learner.update, []

        def update_or_ctrl_c():
            calls.append(1)
            if len(calls) == 2:
                raise KeyboardInterrupt
            time.sleep(2.0)  # a first try long beside the second's setup: leaving it out shows in the total
            return update()
        learner.update = update_or_ctrl_c
        return learner

    out = tmp_path / "interrupted"
    monkeypatch.setattr(training, "make_learner", learner_stopped_at_its_second_update)
    assert main(argv(out)) == 130
    assert "rerun the same command to continue" in capsys.readouterr().err
    run = out / "runs" / "nocomm-s0"
    assert not (run / TRAIN_RECORD).exists() and not (out / "eval").exists()
    assert json.loads((run / "meta.json").read_text())["counters"]["env_steps"] == 240  # one update, saved
    first = json.loads((run / "benchmark-started.json").read_text())
    assert first["train_tries"] == 1 and not first["running"]
    # the first try's time, by the learner's own log (cumulative over tries), is within what the run recorded
    assert first["train_seconds"] >= float(pd.read_csv(run / "log.csv")["time_s"].iloc[-1])
    monkeypatch.undo()

    assert main(argv(out)) == 0  # continues the run, then chooses, scores and tabulates
    record = json.loads((run / TRAIN_RECORD).read_text())
    # both tries: more than the first try's time, and than the learner's own time over both
    assert record["train_tries"] == 2 and "train_tries_killed" not in record
    assert record["train_seconds"] >= float(pd.read_csv(run / "log.csv")["time_s"].iloc[-1])
    assert record["train_seconds"] > first["train_seconds"]
    assert pd.read_csv(out / "per_seed.csv")["train_seconds"].iloc[0] == record["train_seconds"]
    assert "a run interrupted and continued counts all its tries" in (out / "table.md").read_text()
    whole = tmp_path / "whole"
    assert main(argv(whole)) == 0
    assert pd.read_csv(out / "per_seed.csv").drop(columns="train_seconds").equals(
        pd.read_csv(whole / "per_seed.csv").drop(columns="train_seconds"))
    left, right = load_model_state(run), load_model_state(whole / "runs" / "nocomm-s0")
    assert all(torch.equal(left[k], right[k]) for k in right)


def test_an_interrupted_sb3_benchmark_run_resumes_from_its_checkpoint(tmp_path, monkeypatch, capsys):
    """An SB3 run cut short is continued from its saved model, not trained again from scratch, and its
    record says where it resumed (SB3's resume is not bit-exact). Its training time is that of both tries."""
    import time

    from stable_baselines3 import PPO

    import cagekit.agents.sb3 as sb3

    config = tmp_path / "ppo.json"
    config.write_text(json.dumps({"n_steps": 64, "batch_size": 64, "n_epochs": 1}))
    out = tmp_path / "bm"
    argv = ["benchmark", "--algos", "ppo", "--seeds", "1", "--steps", "192", "--episodes", "1", "--lengths", "6",
            "--reds", "KillChainAgent", "--out", str(out), "--no-progress", "--snapshots", "0",
            "--select-episodes", "0", "--config", f"ppo={config}"]
    stepped = sb3.ProgressCallback._on_step
    slept = []

    def ctrl_c_at_128(self):
        if self.model.num_timesteps >= 128:
            start = time.perf_counter()
            time.sleep(2.0)  # a first try long beside the second's setup: leaving it out shows in the total
            slept.append(time.perf_counter() - start)
            raise KeyboardInterrupt
        return stepped(self)

    monkeypatch.setattr(sb3.ProgressCallback, "_on_step", ctrl_c_at_128)
    assert main(argv) == 130
    # the benchmark's advice only: `cagekit train --resume` refuses a run folder without its run.json
    said = capsys.readouterr()
    assert "rerun the same command to continue" in said.err and "cagekit train --resume" not in said.out
    run = out / "runs" / "ppo-s0"
    assert not (run / TRAIN_RECORD).exists()
    saved = PPO.load(run / "model.zip").num_timesteps  # SB3 counts the step Ctrl-C came in
    assert 128 <= saved < 192  # within the first rollout
    monkeypatch.undo()

    first = json.loads((run / "benchmark-started.json").read_text())
    assert first["train_tries"] == 1 and not first["running"] and first["train_seconds"] >= slept[0]

    assert main(argv) == 0
    record = json.loads((run / TRAIN_RECORD).read_text())
    assert record["resumed_at"] == saved
    assert record["train_tries"] == 2 and record["train_seconds"] > first["train_seconds"]
    # one more whole rollout (3 copies, one per red, of 64 steps) on top of the saved steps; trained again
    # from scratch it would stop at 192
    assert PPO.load(run / "model.zip").num_timesteps == saved + 3 * 64


def test_table_md_names_the_steps_trained_where_they_are_not_those_asked_for(tmp_path):
    """PPO trains whole rollouts (here 3 copies, one per red, of 64 steps): a benchmark of 100 steps trained 192,
    and table.md said "100 training steps" only."""
    config = tmp_path / "ppo.json"
    config.write_text(json.dumps({"n_steps": 64, "batch_size": 64, "n_epochs": 1}))
    out = tmp_path / "bm"
    assert main(["benchmark", "--algos", "ppo,react", "--seeds", "1", "--steps", "100", "--episodes", "1",
                 "--lengths", "6", "--reds", "KillChainAgent", "--out", str(out), "--no-progress", "--snapshots",
                 "0", "--select-episodes", "0", "--config", f"ppo={config}"]) == 0
    assert json.loads((out / "runs" / "ppo-s0" / "meta.json").read_text())["num_timesteps"] == 192
    assert "100 training steps (trained in whole batches: ppo 192) against red" in (out / "table.md").read_text()


def test_a_training_try_killed_outright_counts_up_to_its_last_save_of_the_time(tmp_path):
    """A benchmark killed with kill -9 saves nothing on its way out: its run's try counts up to the clock's last
    save (every few seconds), the rerun adds its own, and the record and the table say a try was killed."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from cagekit.evaluation.benchmark_training import CLOCK_SAVE_EVERY

    fast = Path(__file__).resolve().parents[1] / "configs" / "dial-sau-fast.yaml"
    out = tmp_path / "bm"
    argv = ["benchmark", "--algos", "nocomm", "--seeds", "1", "--steps", "14400", "--episodes", "1", "--lengths",
            "6", "--reds", "KillChainAgent", "--out", str(out), "--no-progress", "--select-episodes", "0",
            "--snapshots", "0", "--config", f"nocomm={fast}"]
    run = out / "runs" / "nocomm-s0"
    started = run / "benchmark-started.json"
    proc = subprocess.Popen([sys.executable, "-m", "cagekit.cli", *argv], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (started.exists() and json.loads(started.read_text())["train_seconds"] >= CLOCK_SAVE_EVERY / 2):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
    killed = json.loads(started.read_text())
    assert killed["running"] and killed["train_tries"] == 1 and killed["train_seconds"] >= CLOCK_SAVE_EVERY
    logged = float(pd.read_csv(run / "log.csv")["time_s"].iloc[-1])  # the learner's own time when killed

    assert main(argv) == 0
    record = json.loads((run / TRAIN_RECORD).read_text())
    assert record["train_tries"] == 2 and record["train_tries_killed"] == 1
    # the killed try up to its last save, and the second try, which the learner's own log (cumulative, resumed
    # from its last checkpoint, at or before the kill) says is at least the time it logged after the kill
    assert record["train_seconds"] >= killed["train_seconds"] + float(pd.read_csv(run / "log.csv")["time_s"].iloc[-1]) \
        - logged
    assert "Tries killed outright (kill -9) count up to their last save" in (out / "table.md").read_text()
    assert "nocomm-s0 (1)" in (out / "table.md").read_text()


def test_an_interrupted_benchmark_run_is_continued_only_with_the_settings_it_was_started_with(tmp_path, monkeypatch,
                                                                                              capsys):
    """Only a finished run's settings were compared on a rerun: an interrupted SB3 run rerun with another
    --config went on with its checkpoint's hyperparameters (an SB3 resume keeps them) and was recorded as
    trained with the new ones, and one rerun with other --steps or --snapshots mixed the two budgets under a
    record of the second. Such a rerun is refused, leaving the run as it was; the same command continues it."""
    import cagekit.agents.sb3 as sb3

    config, other = tmp_path / "ppo.json", tmp_path / "other.json"
    config.write_text(json.dumps({"n_steps": 64, "batch_size": 64, "n_epochs": 1}))
    other.write_text(json.dumps({"n_steps": 64, "batch_size": 64, "n_epochs": 3}))
    out = tmp_path / "bm"

    def argv(*extra: str, steps: str = "192", cfg: Path = config) -> list[str]:
        return ["benchmark", "--algos", "ppo", "--seeds", "1", "--steps", steps, "--episodes", "1", "--lengths", "6",
                "--reds", "KillChainAgent", "--out", str(out), "--no-progress", "--select-episodes", "0",
                "--config", f"ppo={cfg}", *extra]

    stepped = sb3.ProgressCallback._on_step

    def ctrl_c_at_128(self):
        if self.model.num_timesteps >= 128:
            raise KeyboardInterrupt
        return stepped(self)

    monkeypatch.setattr(sb3.ProgressCallback, "_on_step", ctrl_c_at_128)
    assert main(argv("--snapshots", "0")) == 130
    monkeypatch.undo()
    run = out / "runs" / "ppo-s0"
    before = {p.relative_to(run): p.read_bytes() for p in run.rglob("*") if p.is_file()}
    capsys.readouterr()
    for changed, named in ((argv("--snapshots", "0", cfg=other), "n_epochs: 1 -> 3"),
                           (argv("--snapshots", "0", steps="384"), "for 192 steps and this benchmark asks for 384"),
                           (argv("--snapshots", "2"), "--snapshots 2")):
        assert main(changed) == 2
        err = capsys.readouterr().err
        assert f"{run} was started (and interrupted)" in err and named in err and "continued only as it was" in err
        assert {p.relative_to(run): p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
    assert main(argv("--snapshots", "0")) == 0
    record = json.loads((run / TRAIN_RECORD).read_text())
    assert record["config"]["n_epochs"] == 1 and json.loads((run / "meta.json").read_text())[
        "hyperparameters"]["n_epochs"] == 1


def test_a_team_scored_on_another_protocol_is_refused_before_any_new_run_trains(tmp_path, capsys):
    """A benchmark rerun with other --episodes (say, and another seed) trained the new seed's runs, possibly for
    hours, before the first evaluation met its journal of another protocol and refused. It is refused first."""
    out = tmp_path / "bm"

    def argv(seeds: str, episodes: str) -> list[str]:
        return ["benchmark", "--algos", "qmix,react", "--seeds", seeds, "--steps", "60", "--episodes", episodes,
                "--lengths", "5", "--reds", "KillChainAgent", "--out", str(out), "--no-progress",
                "--select-episodes", "0", "--snapshots", "0"]

    assert main(argv("1", "1")) == 0
    capsys.readouterr()
    assert main(argv("2", "2")) == 2
    err = capsys.readouterr().err
    assert "evaluation of qmix seed 0:" in err and "episodes: journal has 1, this run has 2" in err
    assert not (out / "runs" / "qmix-s1").exists()  # nothing trained
    assert main(argv("2", "1")) == 0  # the same protocol: reused and extended
    assert (out / "runs" / "qmix-s1" / TRAIN_RECORD).exists()


def test_runs_sb3_refuses_in_parallel_leave_no_folder_behind(tmp_path, capsys):
    """A run that SB3 refuses leaves no folder behind, and nor does a benchmark of such runs in parallel: each
    job removed its run's folder and the parents it had made itself, but in a pool OUT/ and OUT/runs/ are made by
    whichever job starts first, so the others left them (an empty OUT/runs/, often OUT/ too). Which job cleans up
    last is a race, so the pool is tried three times (each left a folder in about 3 tries of 4)."""
    config = tmp_path / "ppo.json"
    config.write_text(json.dumps({"batch_size": 1}))  # in range, but not for PPO: SB3 itself refuses it
    for attempt, jobs in enumerate(("1", "2", "2", "2")):
        out = tmp_path / f"bm-{attempt}"
        assert main(["benchmark", "--algos", "ppo", "--seeds", "2", "--jobs", jobs, "--steps", "128", "--episodes",
                     "1", "--lengths", "5", "--reds", "KillChainAgent", "--out", str(out), "--no-progress",
                     "--select-episodes", "0", "--snapshots", "0", "--config", f"ppo={config}"]) == 2
        assert "ppo refuses its hyperparameters {'batch_size': 1}" in capsys.readouterr().err
        assert not out.exists(), sorted(p.relative_to(out) for p in out.rglob("*"))


def test_ctrl_c_stops_a_parallel_benchmark_and_starts_no_queued_run(tmp_path):
    """Ctrl-C at a terminal reaches the benchmark and its training processes alike: the running runs save
    their state unrecorded, the runs still queued never start (the pool had already handed them to its
    workers), and the command exits 130."""
    import os
    import signal
    import subprocess
    import sys
    import time

    fast = Path(__file__).resolve().parents[1] / "configs" / "dial-sau-fast.yaml"
    out = tmp_path / "bm"
    cmd = [sys.executable, "-m", "cagekit.cli", "benchmark", "--algos", "nocomm", "--seeds", "4", "--steps",
           "2400000", "--episodes", "1", "--lengths", "6", "--out", str(out), "--no-progress", "--jobs", "2",
           "--select-episodes", "0", "--snapshots", "0", "--config", f"nocomm={fast}"]
    # a terminal's Ctrl-C: SIGINT to the whole process group, whose processes have the default handler
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        logs = [out / "runs" / f"nocomm-s{seed}" / "log.csv" for seed in (0, 1)]
        deadline = time.monotonic() + 300
        while not all(log.exists() and len(log.read_text().splitlines()) > 1 for log in logs):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:  # a run that did not stop would train for hours: end the whole group
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == 130, err
    assert "rerun the same command to continue" in err
    assert sorted(p.name for p in (out / "runs").iterdir()) == ["nocomm-s0", "nocomm-s1"]
    for seed in (0, 1):
        run = out / "runs" / f"nocomm-s{seed}"
        assert not (run / TRAIN_RECORD).exists() and (run / "trainer.pt").exists()


@pytest.mark.parametrize(("extra", "message"), [
    (["--algos", "react,sleep,react"], "algorithm(s) ['react'] given more than once in --algos; name each once"),
    (["--algos", "react", "--config", "react=x.yaml"],
     "--config for ['react'], which is never trained: only learners take a config (dial-sau, "),
    (["--algos", "react", "--train-red", "KillChainAgnet"],
     "--train-red: unknown red agent(s) ['KillChainAgnet'] for scenario 'paper-small'; valid: "),
    (["--algos", "qmix", "--scenario", "nope"], "--scenario: unknown scenario 'nope'; valid scenarios: "),
    (["--algos", "qmix", "--workers", "2", "--backend", "serial"], "--workers 2 with --backend serial"),
    # 'at least one seed is needed' named no option, and not what a valid count is
    (["--algos", "react", "--seeds", "0"], "--seeds must be >= 1 (the number of seeds: K runs seeds 0..K-1), got 0"),
    (["--algos", "react", "--seeds", "-1"],
     "--seeds must be >= 1 (the number of seeds: K runs seeds 0..K-1), got -1"),
])
def test_benchmark_arguments_that_would_mislead_are_refused(tmp_path, capsys, extra, message):
    """A repeated algorithm counted its seeds twice; a heuristic's config and a mistyped training red were
    silently ignored. Refused before anything is trained or scored."""
    argv = ["benchmark", "--seeds", "1", "--episodes", "1", "--lengths", "4", "--reds", "SleepAgent",
            "--out", str(tmp_path / "bm"), "--no-progress", *extra]
    assert main(argv) == 2
    assert message in " ".join(capsys.readouterr().err.split())
    assert not (tmp_path / "bm").exists()


def test_a_failed_evaluation_is_one_line_not_a_traceback(tmp_path, capsys):
    """The second benchmark asks for more episodes than the journal in its eval folder holds: one error line
    naming the run and the cause (it was a RuntimeError traceback)."""
    argv = ["benchmark", "--algos", "react", "--seeds", "1", "--lengths", "4", "--reds", "SleepAgent",
            "--out", str(tmp_path / "bm"), "--no-progress", "--select-episodes", "0"]
    assert main([*argv, "--episodes", "1"]) == 0
    capsys.readouterr()
    assert main([*argv, "--episodes", "2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cagekit benchmark: error: evaluation of react seed 0: ") and err.count("\n") == 1
    assert "was written by another evaluation configuration" in err and "episodes: journal has 1" in err


def test_mute_says_so_when_no_team_talks(tmp_path, capsys):
    out = tmp_path / "bm"
    assert main(["benchmark", "--algos", "sleep", "--seeds", "1", "--episodes", "1", "--lengths", "4", "--reds",
                 "SleepAgent", "--out", str(out), "--no-progress", "--select-episodes", "0", "--mute"]) == 0
    assert "--mute: no team sent a bit on any seed" in capsys.readouterr().out
    assert not (out / "eval-muted").exists()


def test_an_out_that_is_a_file_is_named_as_given(tmp_path, capsys):
    afile = tmp_path / "notes.txt"
    afile.write_text("keep me")
    assert main(["benchmark", "--algos", "react", "--out", str(afile)]) == 2
    assert f"--out {afile} is a file; give a folder" in capsys.readouterr().err
    assert main(["benchmark", "--algos", "react", "--out", str(afile / "sub")]) == 2
    assert f"lies under {afile}, which is a file" in capsys.readouterr().err
    assert afile.read_text() == "keep me"


def test_the_printed_table_has_the_precision_of_table_md_and_the_csv_every_digit(tmp_path, capsys):
    """The printed table showed ci95 to six decimals beside scores to three (pandas' defaults); table.csv, data
    like per_seed.csv and results.csv, keeps the full values that table.md and the printout round."""
    out = tmp_path / "bm"
    assert main(["benchmark", "--algos", "react,random", "--seeds", "2", "--episodes", "2", "--lengths", "4",
                 "--reds", "KillChainAgent", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    table = pd.read_csv(out / "table.csv")
    rows = [line.split() for line in printed.splitlines() if line.split()[:1] in (["react"], ["random"])
            and "score" not in line]
    assert [r[0] for r in rows] == ["react", "random"]
    md = (out / "table.md").read_text()
    for cells, (_, row) in zip(rows, table.iterrows(), strict=True):
        assert cells[2:4] == [f"{row['score']:.2f}", f"{row['ci95']:.2f}"]
        assert f"| {row['algo']} | 2 | {row['score']:.2f} | {row['ci95']:.2f} |" in md
    assert table["ci95"].map(lambda v: v != round(v, 2)).any()  # the CSV is not rounded


@pytest.mark.parametrize("name", ["log.csv", "model.pt", "meta.json", "tb", "progress.csv", "events.out.tfevents.1.h"])
def test_train_refuses_a_folder_of_files_it_writes_that_is_no_run_of_its_own(tmp_path, capsys, name):
    """A folder holding a file by a name the run writes, but no run.json, is the user's (or another tool's):
    the run is refused before it writes anything, and the file is left as it was."""
    out = tmp_path / "mine"
    own = out / name
    if name == "tb":
        own.mkdir(parents=True)
        own = own / "notes.txt"
    else:
        out.mkdir()
    own.write_text("the user's own\n")
    assert main(["train", "--algo", "qmix", "--steps", "300", "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"--out {out} holds files a training run writes ({name}) but no run.json" in err
    assert "not overwritten" in err
    assert own.read_text() == "the user's own\n"
    assert sorted(p.name for p in out.iterdir()) == [name]  # no run.json (or anything else) was written


def test_train_uses_an_empty_folder_and_refuses_its_finished_run_without_resume(tmp_path, capsys):
    out = tmp_path / "empty"
    out.mkdir()
    assert main(["train", "--algo", "qmix", "--steps", "300", "--out", str(out), "--no-progress"]) == 0
    log = (out / "log.csv").read_text()
    assert main(["train", "--algo", "qmix", "--steps", "300", "--out", str(out), "--no-progress"]) == 2
    assert f"{out} already holds a run; use --resume {out}" in capsys.readouterr().err
    assert (out / "log.csv").read_text() == log
    assert main(["train", "--resume", str(out), "--steps", "600", "--no-progress"]) == 0  # continued, as before
    assert len((out / "log.csv").read_text().splitlines()) > len(log.splitlines())


@pytest.mark.parametrize("name", ["table.md", "benchmark.png"])
def test_benchmark_refuses_a_folder_of_its_file_names_that_is_no_benchmark_and_reruns_its_own(tmp_path, capsys, name):
    """A user's own table.md (or any file named as the reports) in a folder no benchmark made is refused before
    anything is scored and left as it was; a benchmark's own folder is rerun, and extended, as before."""
    argv = ["benchmark", "--seeds", "1", "--episodes", "1", "--lengths", "4", "--reds", "SleepAgent",
            "--no-progress", "--select-episodes", "0"]
    mine = tmp_path / "bm-u"
    mine.mkdir()
    (mine / name).write_text("my own notes\n")
    assert main([*argv, "--algos", "react", "--out", str(mine)]) == 2
    err = capsys.readouterr().err
    assert f"--out {mine} holds files a benchmark writes ({name}) but is no benchmark's folder" in err
    assert "not overwritten" in err
    assert (mine / name).read_text() == "my own notes\n"
    assert sorted(p.name for p in mine.iterdir()) == [name]  # nothing scored or written beside it
    out = tmp_path / "bm"
    assert main([*argv, "--algos", "react", "--out", str(out)]) == 0
    assert main([*argv, "--algos", "react", "--out", str(out)]) == 0  # its own folder: rerun
    assert main([*argv, "--algos", "react,sleep", "--out", str(out)]) == 0  # and extended
    assert pd.read_csv(out / "table.csv")["algo"].tolist() == ["react", "sleep"]


def test_a_benchmark_folder_is_known_by_a_team_it_scored_or_a_run_it_finished(tmp_path):
    from cagekit.evaluation.benchmark_folder import check_benchmark_folder

    (tmp_path / "table.md").write_text("mine\n")
    (tmp_path / "runs" / "notes").mkdir(parents=True)
    (tmp_path / "runs" / "notes" / TRAIN_RECORD).write_text("{}\n")  # not a run's name: no benchmark's
    (tmp_path / "eval" / "react-s0").mkdir(parents=True)  # a team's folder without its journal
    with pytest.raises(ValueError, match=r"holds files a benchmark writes \(table.md\)"):
        check_benchmark_folder(tmp_path)
    (tmp_path / "runs" / "qmix-s2").mkdir()
    (tmp_path / "runs" / "qmix-s2" / TRAIN_RECORD).write_text("{}\n")
    check_benchmark_folder(tmp_path)
    (tmp_path / "runs" / "qmix-s2" / TRAIN_RECORD).unlink()
    (tmp_path / "eval" / "react-s0" / "journal.jsonl").write_text("")
    check_benchmark_folder(tmp_path)


def test_train_takes_a_layout_so_dial_sau_can_defend_cage2_as_a_team(tmp_path, capsys):
    """cage2's default layout is CAGE-2's single Blue, which DIAL refuses (no one to talk to); --layout team
    trains the three-agent team from the command line, the checkpoint carries the layout to the evaluation,
    and a resume keeps it (and says so when asked for fewer steps than it already has)."""
    import json

    import cagekit
    from cagekit.evaluation import cli_main

    run = tmp_path / "c2"
    assert main(["train", "--algo", "dial-sau", "--scenario", "cage2", "--layout", "team", "--steps", "60",
                 "--out", str(run), "--no-progress"]) == 0
    assert json.loads((run / "run.json").read_text())["env"]["layout"] == "team"
    assert cli_main([str(run), str(tmp_path / "scored"), "--episodes", "1", "--lengths", "4", "--reds",
                     "B_lineAgent", "--no-progress"]) == 0
    assert (tmp_path / "scored" / "summary.txt").read_text().startswith(f"cagekit {cagekit.__version__}, cage2, "
                                                                        "layout team")
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--layout", "classic"]) == 2
    assert "--layout classic differs from its 'team'" in capsys.readouterr().err
    assert main(["train", "--resume", str(run), "--steps", "30", "--no-progress"]) == 0
    assert "already trained past the 30 steps asked for: nothing to do" in capsys.readouterr().out


def test_a_benchmark_scores_heuristics_on_the_layout_it_is_given(tmp_path):
    """--layout reaches the heuristics' evaluation (learned teams carry their own) and the table says it."""
    out = tmp_path / "bm"
    assert main(["benchmark", "--scenario", "cage2", "--layout", "team", "--algos", "react", "--seeds", "1",
                 "--episodes", "1", "--lengths", "4", "--reds", "B_lineAgent", "--out", str(out),
                 "--no-progress"]) == 0
    assert "cage2, layout team" in (out / "eval" / "react-s0" / "summary.txt").read_text().splitlines()[0]
    assert (out / "table.md").read_text().startswith("Scenario `cage2`, layout `team`, 1 episode per combination")


def test_a_benchmark_scores_teams_of_your_own_beside_the_algorithms(tmp_path, capsys, monkeypatch):
    """`--team NAME=SOURCE`: a Python team and its packaged zip are scored on every seed's protocol, as a
    heuristic is, into the same table and paired tests; the file version is the react heuristic itself, so
    its rows must equal react's. Before, a user's own team could not be set beside the baselines."""
    from cagekit.submissions import package

    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.py").write_text("from cagekit.agents import make_team as _make\n\n\n"
                                      "def make_team(env):\n    return _make('react', env)\n")
    package("mine.py:make_team", "me", "us", "react", tmp_path / "mine.zip")
    out = tmp_path / "bm"
    argv = ["benchmark", "--algos", "react", "--team", "mine=mine.py:make_team", "--team", "zipped=mine.zip",
            "--seeds", "2", "--episodes", "1", "--lengths", "4", "--reds", "KillChainAgent", "--out", str(out),
            "--no-progress"]
    assert main(argv) == 0
    per_seed = pd.read_csv(out / "per_seed.csv")
    assert list(dict.fromkeys(per_seed["algo"])) == ["react", "mine", "zipped"]
    scores = {algo: group["score"].tolist() for algo, group in per_seed.groupby("algo")}
    assert scores["mine"] == scores["react"] == scores["zipped"]
    assert "Team `mine` is `mine.py:make_team`" in (out / "table.md").read_text()
    assert "mine" in (out / "paired.md").read_text() and (out / "eval" / "zipped-s1" / "journal.jsonl").exists()
    capsys.readouterr()
    # refused before anything is written: a name that is an algorithm's or ends as a folder's, a team that cannot
    # be scored here or cannot be built (found, before, only once every run had trained), a malformed option
    (tmp_path / "broken.py").write_text("def make_team(env):\n    return []\n")
    for team, message in (("react=mine.py:make_team", "--team name 'react': give a name"),
                          ("a-s1=mine.zip", "--team name 'a-s1'"),
                          ("x=nothere.py:T", "--team x=nothere.py:T: no such Python file"),
                          ("x=broken.py:make_team", "--team x=broken.py:make_team: the team "),
                          ("=mine.zip", "--team expects NAME=SOURCE, got '=mine.zip'")):
        assert main([*argv[:3], "--team", team, *argv[7:-2], str(tmp_path / "other"), "--no-progress"]) == 2
        assert message in " ".join(capsys.readouterr().err.split()), team
        assert not (tmp_path / "other").exists()


def test_a_benchmark_holds_a_packaged_team_of_your_own_to_its_settings(tmp_path, capsys, monkeypatch):
    """A submission or checkpoint given as `--team` carries its own message cost and layout; the benchmark's
    must be set against them, never silently replaced by them. Before, a team packaged for cost 0.1 was scored at
    0.1 in a `--message-cost 0.7` table beside heuristics scored at 0.7 (and a run trained at 0.5 at 0.5 in a
    table at the scenario's 0.1)."""
    from cagekit.evaluation.benchmark import BenchmarkPlan
    from cagekit.evaluation.benchmark_scoring import evaluation_argv
    from cagekit.submissions import package

    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.py").write_text("from cagekit.agents import make_team as _make\n\n\n"
                                      "def make_team(env):\n    return _make('react', env)\n")
    package("mine.py:make_team", "me", "us", "react", tmp_path / "mine.zip")
    out = tmp_path / "bm"
    argv = ["benchmark", "--algos", "react", "--team", "zipped=mine.zip", "--message-cost", "0.7", "--seeds", "1",
            "--episodes", "1", "--lengths", "4", "--reds", "KillChainAgent", "--out", str(out), "--no-progress"]
    assert main(argv) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "--team zipped=mine.zip: --message-cost 0.7 contradicts the submission" in err, err
    assert not out.exists()
    # with no setting given, the scenario's are the benchmark's: they are what the team is held to
    plan = BenchmarkPlan(scenario="paper-small", algos=["react"], teams={"zipped": "mine.zip"}, seeds=[0], steps=1,
                         out=out, episodes=1, lengths="4", reds="KillChainAgent", progress=False)
    team = evaluation_argv(plan, "mine.zip", out / "eval" / "zipped-s0", 0)
    assert team[team.index("--message-cost") + 1] == "0.1" and team[team.index("--layout") + 1] == "team"
    learned = evaluation_argv(plan, str(tmp_path / "runs" / "ppo-s0" / "model.zip"), out / "eval" / "ppo-s0", 0)
    assert "--message-cost" not in learned and "--layout" not in learned  # the plan's own runs carry the plan's
    assert main([*argv[:5], *argv[7:]]) == 0


def test_checking_a_scored_submissions_journal_leaves_no_worker_running(tmp_path, monkeypatch):
    """A benchmark checks each team's journal against its protocol before training: a submission's source, made
    for its config and dropped, kept the worker it had checked the submission with, running through the
    hours of training (until the collector found it)."""
    from cagekit.evaluation import cli, run_command
    from cagekit.evaluation.benchmark import BenchmarkPlan
    from cagekit.evaluation.benchmark_scoring import evaluation_argv

    shipped = str(Path(__file__).resolve().parents[1] / "submissions" / "react-paper-small.zip")
    plan = BenchmarkPlan(scenario="paper-small", algos=["react"], teams={"zipped": shipped}, seeds=[0], steps=1,
                         out=tmp_path / "bm", episodes=1, lengths="4", reds="KillChainAgent", progress=False)
    run_command(evaluation_argv(plan, shipped, plan.eval_dir("zipped", 0), 0))
    sources: list[Any] = []
    resolve = cli.resolve_source

    def recorded(*args: Any, **kwargs: Any) -> Any:
        sources.append(resolve(*args, **kwargs))
        return sources[-1]

    monkeypatch.setattr(cli, "resolve_source", recorded)
    plan._check_journals()
    assert sources and all(getattr(source, "_team", None) is None for source in sources)


def test_a_run_killed_before_it_wrote_anything_takes_other_settings(tmp_path):
    """A kill -9 while a run built its environments left only benchmark-started.json, and a rerun with other
    settings was refused as a run "started (and interrupted)" although nothing had been trained. Once the run
    has written anything, other settings are still refused."""
    from cagekit.evaluation.benchmark_folder import TRAIN_STARTED, check_finished_run

    run = tmp_path / "runs" / "qmix-s0"
    run.mkdir(parents=True)
    (run / TRAIN_STARTED).write_text(json.dumps({"steps": 600, "snapshots": 5, "train_seconds": 1.5,
                                                 "train_tries": 1, "running": True}) + "\n")
    check_finished_run(run, 900, snapshots=5)  # no refusal: nothing to continue
    (run / "log.csv").write_text("update,env_steps\n")
    with pytest.raises(ValueError, match="was started \\(and interrupted\\) for 600 steps and this benchmark asks "
                                         "for 900"):
        check_finished_run(run, 900, snapshots=5)


def test_a_ctrl_c_while_the_training_clock_stops_does_not_count_the_try_as_killed(tmp_path):
    """A Ctrl-C landing in `TrainingClock.__exit__` (waiting for its saver thread) skipped the last save: the record
    stayed marked running, and the next try counted this one as killed outright (kill -9)."""
    import signal

    from cagekit.evaluation.benchmark_training import TrainingClock

    class InterruptedJoin:  # the saver thread, joined while a Ctrl-C arrives
        def __init__(self, thread):
            self.thread = thread

        def join(self):
            signal.raise_signal(signal.SIGINT)
            self.thread.join()

    record = tmp_path / "benchmark-started.json"
    clock = TrainingClock(record, {"steps": 10})
    with pytest.raises(KeyboardInterrupt):  # the Ctrl-C is not lost: raised once the record is saved
        with clock:
            clock._saver = InterruptedJoin(clock._saver)
    assert json.loads(record.read_text())["running"] is False
    assert TrainingClock(record, {"steps": 10}).killed == 0


def test_train_and_benchmark_refuse_an_evaluation_s_folder(tmp_path, capsys):
    """train --out, benchmark --out and reproduce --out took an evaluation.py output folder and wrote their own
    files among its journal and reports; now refused, naming what the folder holds and what to give."""
    from cagekit.evaluation import cli_main

    scored = tmp_path / "scored"
    assert cli_main(["react", str(scored), "--episodes", "1", "--lengths", "4", "--reds", "SleepAgent",
                     "--no-progress"]) == 0
    before = sorted(p.name for p in scored.iterdir())
    capsys.readouterr()
    assert main(["train", "--algo", "qmix", "--steps", "60", "--out", str(scored), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"--out {scored} is an evaluation's output folder (it holds journal.jsonl, summary.txt" in err
    assert "give another --out (new or empty)" in err
    assert main(["benchmark", "--algos", "react", "--seeds", "1", "--out", str(scored), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"--out {scored} is an evaluation's output folder" in err and "give another --out (new, empty" in err
    assert main(["reproduce", "--quick", "--out", str(scored), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"--out {scored} is an evaluation's output folder" in err and "give another --out (new, or an" in err
    assert sorted(p.name for p in scored.iterdir()) == before
