"""`train` from Python: the CLI's thread count whatever the caller's (restored after), argument checks, and a
resume refused for a learner built otherwise than the run."""

from __future__ import annotations

import json
import subprocess
import zipfile
from pathlib import Path

import pytest
import torch

from cagekit.agents import checkpoint as ckpt
from cagekit.agents.qmix import QmixLearner
from cagekit.agents.torch_threads import pinned_torch_threads, training_threads
from cagekit.agents.training import make_learner, train

SMALL = {"buffer_episodes": 16, "batch_episodes": 4, "target_update_episodes": 3, "epsilon_anneal_steps": 200}


def small(seed: int = 1, red: str = "all", **config) -> QmixLearner:
    return QmixLearner("paper-small", seed=seed, config={**SMALL, **config}, episode_length=10, red=red)


def _files(run) -> dict[str, bytes]:
    return {name: (run / name).read_bytes() for name in (ckpt.MODEL_FILE, ckpt.TRAINER_FILE, ckpt.META_FILE)}


@pytest.mark.parametrize("algo", ["qmix", "dial-sau"])
def test_weights_do_not_depend_on_the_callers_threads_and_their_setting_is_restored(tmp_path, algo):
    """The audit's case: torch's default of 2 threads on this machine gave other weights than the CLI's 1."""
    before = torch.get_num_threads()
    weights = []
    try:
        for threads in (2, 1):
            torch.set_num_threads(threads)
            learner = make_learner(algo, "paper-small", seed=1, red="all", simulator="twin")
            train(learner, 120, tmp_path / str(threads), progress=False)
            assert torch.get_num_threads() == threads
            weights.append(ckpt.load_model_state(tmp_path / str(threads)))
    finally:
        torch.set_num_threads(before)
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_training_threads_follow_the_environment_variable(monkeypatch):
    monkeypatch.setenv("CAGEKIT_TORCH_THREADS", "2")
    before = torch.get_num_threads()
    threads = training_threads()
    with pinned_torch_threads(threads):
        assert threads == torch.get_num_threads() == 2
    assert torch.get_num_threads() == before
    monkeypatch.setenv("CAGEKIT_TORCH_THREADS", "two")
    with pytest.raises(ValueError, match="CAGEKIT_TORCH_THREADS must be an integer >= 1 .*got 'two'"), \
            pinned_torch_threads(training_threads()):
        pass
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("value", ["", "  "])
def test_an_empty_torch_threads_variable_is_the_default(monkeypatch, tmp_path, value):
    """`CAGEKIT_TORCH_THREADS= cagekit train ...` (set to nothing, as unsetting it in a script often reads) was
    refused as not an integer; an empty value is the default, one thread, as if it were unset."""
    monkeypatch.setenv("CAGEKIT_TORCH_THREADS", value)
    assert training_threads() == 1
    learner = make_learner("qmix", "paper-small", seed=1, red="all", simulator="twin")
    train(learner, 60, tmp_path / "run", progress=False)
    monkeypatch.setenv("CAGEKIT_TORCH_THREADS", "0")  # other bad values are still refused
    with pytest.raises(ValueError, match="CAGEKIT_TORCH_THREADS must be an integer >= 1 .*got '0'"):
        training_threads()


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"steps": "100"}, TypeError, r"steps must be an integer >= 1 .*got '100' \(str\)"),
    ({"steps": 0}, ValueError, "steps must be >= 1"),
    ({"steps": 10.0}, TypeError, "steps must be an integer"),
    ({"checkpoint_every": -1}, ValueError, "checkpoint_every must be >= 0"),
    ({"checkpoint_every": True}, TypeError, "checkpoint_every must be an integer"),
    ({"snapshots": -1}, ValueError, "snapshots must be >= 0"),
    ({"max_updates": "3"}, TypeError, "max_updates must be an integer"),
    ({"resume": "no"}, TypeError, "resume must be True or False"),
], ids=["steps-text", "steps-zero", "steps-float", "checkpoint-negative", "checkpoint-bool", "snapshots-negative",
        "max-updates-text", "resume-text"])
def test_bad_arguments_are_named_before_anything_is_written(tmp_path, kwargs, error, message):
    args = {"steps": 100, **kwargs}
    with pytest.raises(error, match=message):
        train(small(), args.pop("steps"), tmp_path / "run", progress=False, **args)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("other", "named"), [
    (lambda: small(seed=2), "seed: 1 -> 2"),
    (lambda: small(lr=0.05), "hyperparameters.lr: 0.0005 -> 0.05"),
    (lambda: small(red="SleepAgent"), "env.red: 'all' -> 'SleepAgent'"),
    (lambda: QmixLearner("paper-small", seed=1, config=SMALL, episode_length=12, red="all"),
     "env.episode_length: 10 -> 12"),
], ids=["seed", "config", "red", "env"])
def test_resume_refuses_a_learner_built_with_other_settings(tmp_path, other, named):
    run = tmp_path / "run"
    train(small(), 20, run, progress=False)
    saved = _files(run)
    log = (run / "log.csv").read_bytes()
    with pytest.raises(ValueError, match=rf"cannot resume {run} with this learner: .*{named}.*saved -> given"):
        train(other(), 40, run, resume=True, progress=False)
    assert _files(run) == saved and (run / "log.csv").read_bytes() == log


def test_resume_with_the_runs_settings_equals_the_uninterrupted_run(tmp_path):
    """The same settings however spelt (red "all" or its list), or rebuilt by from_checkpoint, are accepted."""
    from cagekit.scenarios import get_scenario

    full = small()
    train(full, 40, tmp_path / "full", progress=False)
    train(small(), 20, tmp_path / "half", progress=False)
    every_red = ",".join(get_scenario("paper-small").red_agents)
    train(small(red=every_red), 30, tmp_path / "half", resume=True, progress=False)
    resumed = QmixLearner.from_checkpoint(tmp_path / "half")
    train(resumed, 40, tmp_path / "half", resume=True, progress=False)
    a, b = ckpt.load_model_state(tmp_path / "full"), ckpt.load_model_state(tmp_path / "half")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_refuses_another_torch_thread_count_and_on_the_runs_equals_the_uninterrupted_run(tmp_path,
                                                                                                 monkeypatch):
    """CAGEKIT_TORCH_THREADS changes the weights' last bits, and a resume took it from the environment of the
    moment: a run started on 2 threads, stopped and resumed in a shell without the setting went on on 1 and
    ended on other weights than the uninterrupted run, silently. meta.json records the count; another is
    refused before anything is written, and the run's own resumes exactly."""
    monkeypatch.setenv("CAGEKIT_TORCH_THREADS", "2")
    train(small(), 40, tmp_path / "full", progress=False)
    run = tmp_path / "half"
    train(small(), 20, run, progress=False)
    assert ckpt.load_meta(run)["torch_threads"] == 2
    saved, log = _files(run), (run / "log.csv").read_bytes()
    monkeypatch.delenv("CAGEKIT_TORCH_THREADS")
    with pytest.raises(ValueError, match=rf"cannot resume {run} on 1 torch thread\(s\): it trained on 2.*"
                                         r"CAGEKIT_TORCH_THREADS=2"):
        train(small(), 40, run, resume=True, progress=False)
    assert _files(run) == saved and (run / "log.csv").read_bytes() == log
    monkeypatch.setenv("CAGEKIT_TORCH_THREADS", "2")
    train(small(), 40, run, resume=True, progress=False)
    a, b = ckpt.load_model_state(tmp_path / "full"), ckpt.load_model_state(run)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_the_readmes_python_training_gives_the_weights_of_cagekit_train(tmp_path, monkeypatch):
    """The README calls its Python block "what `cagekit train` runs", but make_learner's and train_sb3's own
    defaults are the engine and the scenario's default red, the command's the twin and every red: as written,
    the block trained other weights (on another simulator, against one red). Run as written, budgets cut down,
    it gives the command's weights."""
    import re
    from pathlib import Path

    from sb3_contrib import MaskablePPO

    from cagekit.cli import main

    root = Path(__file__).resolve().parents[1]
    text = (root / "README.md").read_text()
    found = re.search(r"```python\n(from cagekit.agents import load_team\n.*?)```", text, re.S)
    assert found, "README has no python block of training"
    block = found.group(1).replace("train(learner, 3000,", "train(learner, 600,").replace("steps=2048", "steps=768")
    assert "600" in block and "768" in block
    monkeypatch.chdir(root)  # the block names configs/dial-sau-fast.yaml and writes runs/...: those go to tmp_path
    block = block.replace('"runs/', f'"{tmp_path}/')
    exec(compile(block, "README.md", "exec"), {"__name__": "readme"})
    config = "configs/dial-sau-fast.yaml"
    assert main(["train", "--algo", "dial-sau", "--config", config, "--steps", "600", "--out",
                 str(tmp_path / "dial-cli"), "--no-progress"]) == 0
    assert main(["train", "--algo", "maskable-ppo", "--steps", "768", "--out", str(tmp_path / "mppo-cli"),
                 "--no-progress"]) == 0
    a, b = ckpt.load_model_state(tmp_path / "dial-py"), ckpt.load_model_state(tmp_path / "dial-cli")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    a, b = (MaskablePPO.load(tmp_path / run / "model.zip").policy.state_dict() for run in ("mppo-py", "mppo-cli"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_load_team_names_a_checkpoint_that_does_not_exist_as_given(tmp_path):
    """A mistyped run folder was reported as "no checkpoint metadata at runs/dial-O.json": a file nobody named."""
    from cagekit.agents import load_team

    missing = tmp_path / "dial-O"
    with pytest.raises(FileNotFoundError, match=f"no checkpoint at {missing}: it does not exist") as raised:
        load_team(missing)
    assert ".json" not in str(raised.value).split("(")[0]


def test_load_team_names_a_submission_and_how_to_open_it(tmp_path):
    """A submission zip was reported as "no checkpoint metadata at submissions/X.json", a file no submission has,
    and an unpacked one as lacking meta.json, with no word of open_submission."""
    from cagekit.agents import load_team

    shipped = Path(__file__).resolve().parents[1] / "submissions" / "react-paper-small.zip"
    with pytest.raises(ValueError, match="is a submission \\(a packaged team\\), not a checkpoint: open it with "
                                         "cagekit.submissions.open_submission") as raised:
        load_team(shipped)
    assert ".json" not in str(raised.value)
    unpacked = tmp_path / "sub"
    with zipfile.ZipFile(shipped) as archive:
        archive.extractall(unpacked)
    with pytest.raises(ValueError, match=f"{unpacked} is a submission"):
        load_team(unpacked)


def _resume_in_a_process_with_kernels(run: Path, kernels: str) -> subprocess.CompletedProcess[str]:
    """`train(small(), 40, run, resume=True)` in a fresh process whose torch runs `kernels` (ATEN_CPU_CAPABILITY)."""
    import os
    import sys

    import cagekit

    code = ("from cagekit.agents.qmix import QmixLearner\n"
            "from cagekit.agents.training import train\n"
            f"learner = QmixLearner('paper-small', seed=1, config={SMALL!r}, episode_length=10, red='all')\n"
            f"train(learner, 40, {str(run)!r}, resume=True, progress=False)\n")
    env = {**os.environ, cagekit.KERNELS_ENV: kernels}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)


def test_resume_refuses_other_torch_cpu_kernels_and_tolerates_a_run_that_did_not_record_them(tmp_path):
    """torch's CPU kernels (AVX2, AVX512, DEFAULT) round differently, and meta.json recorded the run's, but a
    resume did not compare them: a run resumed under others (another machine, ATEN_CPU_CAPABILITY set otherwise)
    ended on other weights than the uninterrupted run, silently. Another is refused before anything is written,
    naming both and the setting that matches; a run saved before they were recorded is not checked."""
    running = torch.backends.cpu.get_cpu_capability()
    if running == "DEFAULT":
        pytest.skip("torch runs its DEFAULT kernels here: no other kernels to resume under")
    train(small(), 40, tmp_path / "full", progress=False)
    run = tmp_path / "half"
    train(small(), 20, run, progress=False)
    assert ckpt.load_meta(run)["torch_cpu_kernels"] == running
    saved, log = _files(run), (run / "log.csv").read_bytes()
    refused = _resume_in_a_process_with_kernels(run, "default")
    assert refused.returncode != 0
    assert (f"cannot resume {run} with torch's DEFAULT CPU kernels: it trained with its {running} ones"
            in refused.stderr), refused.stderr
    assert f"ATEN_CPU_CAPABILITY={running.lower()}" in refused.stderr
    assert _files(run) == saved and (run / "log.csv").read_bytes() == log
    train(small(), 40, run, resume=True, progress=False)  # under the run's own kernels: the uninterrupted run
    a, b = ckpt.load_model_state(tmp_path / "full"), ckpt.load_model_state(run)
    assert all(torch.equal(a[k], b[k]) for k in a)

    old = tmp_path / "old"  # meta.json without torch_cpu_kernels, as a run saved before it was recorded
    train(small(), 20, old, progress=False)
    meta = json.loads((old / ckpt.META_FILE).read_text())
    del meta["torch_cpu_kernels"]
    (old / ckpt.META_FILE).write_text(json.dumps(meta))
    resumed = _resume_in_a_process_with_kernels(old, "default")
    assert resumed.returncode == 0, resumed.stderr
    assert ckpt.load_meta(old)["torch_cpu_kernels"] == "DEFAULT"  # recorded from then on


def _sha256s(folder: Path, names: tuple[str, ...]) -> dict[str, str]:
    import hashlib

    return {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in names}


def test_two_processes_training_one_seed_write_the_same_checkpoint_bytes(tmp_path):
    """trainer.pt saves python's and numpy's global RNG states (a resume restores them); unseeded, each process
    started them from the OS's entropy, so two runs of one seed wrote trainer.pt in other bytes though their
    weights were equal, and a run could not be checked by its files' digests. A learner seeds them from its seed."""
    import sys

    code = ("import sys\n"
            "from cagekit.agents.training import make_learner, train\n"
            "for algo, config in (('qmix', {'buffer_episodes': 8, 'batch_episodes': 2}),"
            " ('dial-sau', {'batch_episodes': 2, 'hidden': 16})):\n"
            "    learner = make_learner(algo, 'paper-small', seed=3, config=config, episode_length=5)\n"
            "    train(learner, 20, f'{sys.argv[1]}/{algo}', progress=False)\n")
    for run in ("a", "b"):
        subprocess.run([sys.executable, "-c", code, str(tmp_path / run)], check=True, capture_output=True)
    files = (ckpt.MODEL_FILE, ckpt.TRAINER_FILE, ckpt.META_FILE)
    for algo in ("qmix", "dial-sau"):
        assert _sha256s(tmp_path / "a" / algo, files) == _sha256s(tmp_path / "b" / algo, files), algo


@pytest.mark.parametrize("algo", ["qmix", "dial-sau"])
def test_a_resumed_run_writes_the_uninterrupted_runs_trainer_state_byte_for_byte(tmp_path, algo):
    """A resumed QMix run ended on the uninterrupted run's weights but not its trainer.pt bytes: pickle writes a
    text once and refers back to it where the same object recurs, and the optimizer keys a resume read back
    from trainer.pt were other objects than the config's equal keys. The texts are interned before saving."""
    config = {"buffer_episodes": 8, "batch_episodes": 2} if algo == "qmix" else {"batch_episodes": 2, "hidden": 16}

    def learner():
        return make_learner(algo, "paper-small", seed=3, config=config, episode_length=5)

    train(learner(), 40, tmp_path / "full", progress=False)
    train(learner(), 20, tmp_path / "half", progress=False)
    train(learner(), 40, tmp_path / "half", resume=True, progress=False)
    assert _files(tmp_path / "half") == _files(tmp_path / "full")


def test_the_trainer_state_keeps_a_modules_state_dict_as_torch_made_it(tmp_path):
    """Interning the trainer state's texts (so that equal runs write equal bytes) rebuilt every dict as a plain one:
    a module's state dict lost its OrderedDict type and torch's `_metadata`, the record of each layer's version
    that `load_state_dict` reads (a BatchNorm saved at an older version is loaded by other rules)."""
    from collections import OrderedDict

    from torch import nn

    from cagekit.agents import checkpoint as ckpt

    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    state = net.state_dict()
    ckpt.save_checkpoint(tmp_path, state, {"algo": "qmix", "scenario": "paper-small"}, {"model": state, "step": 1})
    loaded = ckpt.load_trainer_state(tmp_path)["model"]
    assert type(loaded) is OrderedDict and list(loaded) == list(state)
    assert loaded._metadata == state._metadata and loaded._metadata["1"]["version"] == 2
    nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)).load_state_dict(loaded)


def test_a_checkpoint_save_that_fails_leaves_the_one_before_and_no_temporary(tmp_path, monkeypatch):
    """model.pt and trainer.pt went to a `.tmp` renamed over them, left behind when torch.save failed (a full
    disk); they go through `written_whole` now, which removes it."""
    meta = {"algo": "qmix", "scenario": "paper-small"}
    ckpt.save_checkpoint(tmp_path, {"w": torch.zeros(2)}, meta, {"step": 1})
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    save = torch.save

    def full_disk(obj, f, *args, **kwargs):
        save(obj, f, *args, **kwargs)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OSError, match="No space left"):
        ckpt.save_checkpoint(tmp_path, {"w": torch.ones(2)}, meta, {"step": 2})
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_a_log_row_cut_short_by_a_kill_is_dropped_on_resume(tmp_path):
    """A kill while a row was written left it cut ('1' of update 12's row, say): the resume kept it as update 1
    with no figures (a TypeError once it was the last row; else a log that plot refused). Text after the last
    line end is dropped, as the journal drops a cut line; the whole rows are kept."""
    import pandas as pd

    run = tmp_path / "run"
    train(small(), 60, run, checkpoint_every=1, progress=False)
    log = run / "log.csv"
    whole = log.read_text()
    log.write_text(whole + "1")
    summary = train(small(), 120, run, checkpoint_every=1, resume=True, progress=False)
    rows = pd.read_csv(log)
    assert summary["new_updates"] > 0 and rows["update"].tolist() == list(range(1, summary["updates"] + 1))
    assert log.read_text().startswith(whole) and not rows.isna().any().any()
