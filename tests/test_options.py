"""Comma-separated list options: an empty item is refused, never dropped (it is most likely a lost name)."""

from __future__ import annotations

from pathlib import Path

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
