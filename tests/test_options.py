"""Comma-separated list options: an empty item is refused, never dropped (it is most likely a lost name)."""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cagekit.cli import main
from cagekit.evaluation import cli_main
from cagekit.scenarios.options import comma_list


def test_comma_list_strips_items_and_refuses_an_empty_one() -> None:
    assert comma_list(" a, b ,c", "--x") == ["a", "b", "c"]
    for text in ("a,,b", "a,", ",a", "a, ,b", ""):
        with pytest.raises(ValueError, match=f"--x {text!r} has an empty item"):
            comma_list(text, "--x")


@pytest.mark.parametrize(("extra", "message"), [
    (["--reds", "KillChainAgent,,SleepAgent"], "--reds 'KillChainAgent,,SleepAgent' has an empty item"),
    (["--reds", "KillChainAgent,"], "--reds 'KillChainAgent,' has an empty item"),
    (["--lengths", "5,,8"], "--lengths '5,,8' has an empty item"),
])
def test_evaluation_refuses_an_empty_item(tmp_path: Path, capsys: pytest.CaptureFixture, extra: list[str],
                                          message: str) -> None:
    assert cli_main(["react", str(tmp_path / "out"), "--episodes", "1", "--lengths", "5", "--no-progress",
                     *extra]) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("argv", "message"), [
    (["benchmark", "--algos", "react,,sleep"], "--algos 'react,,sleep' has an empty item"),
    (["benchmark", "--algos", "react", "--train-red", "SleepAgent,"], "'SleepAgent,' has an empty item"),
    (["train", "--algo", "nocomm", "--red", "SleepAgent,,KillChainAgent"], "has an empty item"),
])
def test_cagekit_refuses_an_empty_item(tmp_path: Path, capsys: pytest.CaptureFixture, argv: list[str],
                                       message: str) -> None:
    out = tmp_path / "out"
    assert main([*argv, "--steps", "10", "--out", str(out), "--no-progress"]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_evaluation_notes_more_workers_than_cpus(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """More worker processes than CPUs are the user's choice, said once (they add memory, not speed); as many as
    the CPUs are not remarked on."""
    monkeypatch.setattr("cagekit.evaluation.cli.usable_cpus", lambda: 1)
    argv = ["--episodes", "1", "--lengths", "5", "--no-progress"]
    assert cli_main(["react", str(tmp_path / "three"), *argv, "--reds", "KillChainAgent,SleepAgent",
                     "--workers", "3"]) == 0
    err = " ".join(capsys.readouterr().err.split())  # rich wraps the line at the console's width
    assert "note: 2 worker processes on 1 CPU:" in err  # capped at the two episodes, as the runner caps them
    assert "--workers 1 uses every CPU" in err
    assert cli_main(["react", str(tmp_path / "one"), *argv, "--workers", "1"]) == 0
    assert "worker processes on" not in capsys.readouterr().err


@contextlib.contextmanager
def one_cpu() -> Iterator[None]:
    """This process (and the workers it starts) allowed on one of its CPUs, as a container or taskset allows."""
    if not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs CPU affinity and at least two CPUs to allow one of")
    allowed = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(allowed)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, allowed)


def test_evaluation_counts_the_cpus_it_may_use_and_the_episodes_a_rerun_plays(tmp_path: Path,
                                                                               capsys: pytest.CaptureFixture) -> None:
    """The workers went by os.cpu_count(), the machine's CPUs, though a container or taskset may allow the process
    fewer: 4 default workers on 1 allowed CPU, and no note. They go by the CPUs it may use; and the note counts the
    workers of the episodes a rerun plays (the runner starts no more), not all the run's episodes."""
    from cagekit.evaluation.cli import PARALLEL_FROM, backend_and_workers

    defaults = argparse.Namespace(backend=None, workers=None, step_timeout=None)
    with one_cpu():
        assert backend_and_workers(defaults, PARALLEL_FROM) == ("serial", 1)
        out = tmp_path / "run"
        argv = ["react", str(out), "--episodes", "2", "--lengths", "5", "--reds", "KillChainAgent,SleepAgent",
                "--no-progress"]
        assert cli_main([*argv, "--workers", "1"]) == 0
        journal = out / "journal.jsonl"
        lines = journal.read_bytes().splitlines(keepends=True)
        journal.write_bytes(b"".join(lines[:-2]))  # killed with 2 of its 4 episodes to play
        capsys.readouterr()
        assert cli_main([*argv, "--workers", "3"]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "note: 2 worker processes on 1 CPU:" in err, err


@pytest.fixture
def read_only(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], None]:
    """Make a folder read-only as this user sees it (os.access says so, as for a read-only mount or another user's
    folder): chmod does not stop root, which the tests may run as."""
    denied: list[Path] = []
    allowed = os.access

    def access(path: Any, mode: int, **kwargs: Any) -> bool:
        if mode & os.W_OK and Path(path) in denied:
            return False
        return allowed(path, mode, **kwargs)

    monkeypatch.setattr(os, "access", access)
    return denied.append


@pytest.mark.parametrize(("argv", "code", "option"), [
    (["train", "--algo", "nocomm", "--steps", "10", "--no-progress", "--out"], 2, "--out"),
    (["benchmark", "--algos", "react", "--seeds", "1", "--episodes", "1", "--lengths", "5", "--out"], 2, "--out"),
    (["evaluate", "react", "--episodes", "1", "--lengths", "5", "--no-progress"], 1, "output folder"),
])
def test_an_unwritable_output_folder_is_named_with_its_option(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                              read_only: Callable[[Path], None], argv: list[str],
                                                              code: int, option: str) -> None:
    """A read-only folder was met as 'Read-only file system: PATH' (evaluation.py: '[Errno 30] ...') once the
    command was under way: now refused first, naming the option, the path and what to give (evaluation.py exits
    1 on every refusal, the cagekit commands 2)."""
    shut = tmp_path / "shut"
    shut.mkdir()
    read_only(shut)
    for out, expected in ((shut / "x", f"{option} {shut / 'x'} cannot be made: {shut}, where it would be, is not "
                                       f"writable (read-only, or another user's); give "),
                          (shut, f"{option} {shut} is not writable (read-only, or another user's); give ")):
        assert main([*argv, str(out)]) == code
        err = " ".join(capsys.readouterr().err.split())
        assert expected in err and err.endswith("where you can write")
    assert list(shut.iterdir()) == []


def test_plot_names_an_out_it_cannot_write(tmp_path: Path, capsys: pytest.CaptureFixture,
                                           read_only: Callable[[Path], None]) -> None:
    """plot's --out under a file was 'File exists: afile', in a read-only folder 'Read-only file system: PATH'."""
    shut, afile = tmp_path / "shut", tmp_path / "afile"
    shut.mkdir()
    read_only(shut)
    afile.write_text("mine")
    assert main(["plot", str(tmp_path), "--out", str(afile / "c.png")]) == 2
    assert capsys.readouterr().err == (f"cagekit plot: error: --out {afile / 'c.png'}: its folder {afile} is a file; "
                                       f"give an image file in a folder\n")
    assert main(["plot", str(tmp_path), "--out", str(shut / "c.png")]) == 2
    assert capsys.readouterr().err == (f"cagekit plot: error: --out {shut / 'c.png'}: its folder {shut} is not "
                                       f"writable (read-only, or another user's); give an image file in a folder "
                                       f"where you can write\n")
    assert afile.read_text() == "mine" and list(shut.iterdir()) == []


def test_plot_writes_over_an_earlier_plot_but_not_a_file_of_the_user_s(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture) -> None:
    """`cagekit plot --out FILE` wrote over any file there, a picture of the user's own too: now an earlier
    plot (a figure that names matplotlib) is drawn again, as reruns on a training run expect, and any other file
    is kept unless --replace."""
    run = tmp_path / "run"
    assert main(["train", "--algo", "qmix", "--steps", "60", "--out", str(run), "--no-progress"]) == 0
    curves, mine = tmp_path / "curves.svg", tmp_path / "mine.png"
    for _ in range(2):
        assert main(["plot", str(run), "--out", str(curves)]) == 0
    mine.write_bytes(b"\x89PNG my holiday")
    capsys.readouterr()
    assert main(["plot", str(run), "--out", str(mine)]) == 2
    assert (f"--out {mine} exists and is no figure matplotlib drew" in capsys.readouterr().err
            and mine.read_bytes() == b"\x89PNG my holiday")
    assert main(["plot", str(run), "--out", str(mine), "--replace"]) == 0
    assert b"matplotlib" in mine.read_bytes().lower()


@pytest.mark.parametrize("lengths", [["--lengths", "-5,abc"], ["--lengths=-5,abc"], ["--lengths", "-5"],
                                     ["--lengths", "0,30"]])
def test_lengths_that_start_with_a_minus_are_named_as_lengths(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                              lengths: list[str]) -> None:
    """`--lengths -5,abc` was taken for an unknown option: argparse's 'argument --lengths: expected one
    argument', with the usage; benchmark's `--lengths=-5,abc` printed evaluation.py's usage. Both now say what
    lengths are."""
    text = lengths[-1].removeprefix("--lengths=")
    message = f"--lengths must be positive integers, comma-separated (e.g. 30,50,100), got {text!r}"
    assert cli_main(["react", str(tmp_path / "out"), "--episodes", "1", "--no-progress", *lengths]) == 1
    assert message in " ".join(capsys.readouterr().err.split())
    assert main(["benchmark", "--algos", "react", "--out", str(tmp_path / "bm"), *lengths]) == 2
    assert capsys.readouterr().err == f"cagekit benchmark: error: {message}\n"
    assert not (tmp_path / "out").exists() and not (tmp_path / "bm").exists()


def test_a_rerun_with_few_episodes_left_plays_them_without_worker_processes(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Whether the default starts worker processes went by all the run's episodes: a rerun of a run of 40, killed
    with 2 left, started a pool of 2 processes for them (a fork each, and its engine). It goes by the episodes the
    rerun plays, as the number of workers the runner starts does: those 2 are played serially."""
    from cagekit.evaluation.cli import PARALLEL_FROM
    from cagekit.evaluation.runners import RUNNERS

    monkeypatch.setattr("cagekit.evaluation.cli.usable_cpus", lambda: 4)  # the default's pool, on any machine
    ran: list[tuple[str, int]] = []
    for name, runner in list(RUNNERS.items()):
        def recording(config: Any, source: Any, tasks: Any, *args: Any, _name: str = name, _runner: Any = runner,
                      **kwargs: Any) -> None:
            ran.append((_name, len(tasks)))
            _runner(config, source, tasks, *args, **kwargs)

        monkeypatch.setitem(RUNNERS, name, recording)
    out = tmp_path / "run"
    argv = ["react", str(out), "--episodes", str(PARALLEL_FROM // 2), "--lengths", "5",
            "--reds", "KillChainAgent,SleepAgent", "--no-progress"]
    assert cli_main([*argv, "--workers", "1"]) == 0
    assert ran == [("serial", PARALLEL_FROM)]
    journal = out / "journal.jsonl"
    lines = journal.read_bytes().splitlines(keepends=True)
    journal.write_bytes(b"".join(lines[:-2]))  # killed with 2 of its 40 episodes to play
    assert cli_main(argv) == 0
    assert ran[1:] == [("serial", 2)]


@pytest.mark.parametrize("suffix", ["jpg", "tiff", "webp", "gif", "svgz"])
def test_plot_draws_its_own_figure_again_in_a_format_matplotlib_leaves_unmarked(tmp_path: Path, suffix: str,
                                                                              capsys: pytest.CaptureFixture) -> None:
    """matplotlib names itself in its PNG, SVG, PDF and EPS files, not in its JPEG, TIFF, WebP or GIF (nor in a
    compressed SVG, unread): a rerun of `plot --out curves.jpg` refused the plot it had drawn as a picture of the
    user's own. Those now carry a mark of the plot's (the SVG is read unpacked); a picture of the user's own in
    such a format is still kept."""
    import gzip

    run = tmp_path / "run"
    assert main(["train", "--algo", "qmix", "--steps", "60", "--out", str(run), "--no-progress"]) == 0
    curves, mine = tmp_path / f"curves.{suffix}", tmp_path / f"mine.{suffix}"
    for _ in range(2):
        assert main(["plot", str(run), "--out", str(curves)]) == 0, capsys.readouterr().err
    mine.write_bytes(gzip.compress(b"<svg>my own</svg>") if suffix == "svgz" else b"my holiday")
    kept = mine.read_bytes()
    assert main(["plot", str(run), "--out", str(mine)]) == 2
    assert "exists and is no figure matplotlib drew" in capsys.readouterr().err and mine.read_bytes() == kept
