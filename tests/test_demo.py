"""`cagekit demo`: one short episode, printed step by step, for a heuristic, a checkpoint or a submission."""

from __future__ import annotations

import re
from pathlib import Path

from cagekit import make_env
from cagekit.agents import make_team
from cagekit.cli import main

SHIPPED = Path(__file__).resolve().parents[1] / "submissions" / "dial-sau-paper-small.zip"


def test_demo_prints_every_agent_and_red_and_the_episodes_return(capsys):
    assert main(["demo", "--team", "random", "--steps", "5", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("scenario paper-small, red KillChainAgent, team random, agents ['blue_user', 'blue_ops']")
    assert len(re.findall(r"^t= \d blue_(user|ops) +obs=[01]+ action=", out, re.M)) == 10
    reds = re.findall(r"^ +red: (.+)$", out, re.M)
    assert len(reds) == 5 and reds[0].startswith("PingSweep")
    # the same episode played here: the demo's return is the environment's
    env = make_env("paper-small", seed=3, episode_length=5)
    team = make_team("random", env, seed=3)
    obs, _ = env.reset(seed=3)
    total = 0.0
    while env.agents:
        obs, _, _, _, infos = env.step(team.act(obs))
        total += infos["blue_user"]["env_reward"]
    assert out.rstrip().endswith(f"env return so far {total:8.2f}")


def test_demo_plays_a_submission_in_the_environment_it_was_packaged_for(capsys, monkeypatch):
    import cagekit.evaluation.sources as sources

    assert main(["demo", "--team", str(SHIPPED), "--steps", "2"]) == 0
    out = capsys.readouterr().out
    # named by its file and, as the evaluation's reports name it, by the TEAM and TECHNIQUE its manifest declares
    assert out.startswith("scenario paper-small, red KillChainAgent, team dial-sau-paper-small (declares team "
                          "'cagekit', technique 'DIAL + SAU (configs/dial-sau-fast.yaml")
    opened: list[sources.TeamSource] = []
    resolve = sources.resolve_source
    monkeypatch.setattr(sources, "resolve_source", lambda *a, **k: opened.append(resolve(*a, **k)) or opened[-1])
    assert main(["demo", "--team", str(SHIPPED), "--scenario", "paper-large"]) == 2
    assert "--scenario paper-large contradicts the team, which was made for paper-small" in capsys.readouterr().err
    # refused, the demo closes the worker the submission's source checked it with (it ran on until collected)
    assert len(opened) == 1 and getattr(opened[0], "_team", "") is None


def test_demo_names_its_own_options_when_refusing(tmp_path, capsys):
    """A length below one is refused as --steps (the demo's option, not make_env's episode_length), and a path
    that is no team is refused without evaluation.py's advice on output folders, which the demo has none of."""
    for steps in ("0", "-2"):
        assert main(["demo", "--steps", steps]) == 2
        assert f"--steps must be >= 1 (the demo episode's length), got {steps}" in capsys.readouterr().err
    for team in (str(tmp_path / "missing"), str(tmp_path)):
        assert main(["demo", "--team", team, "--steps", "1"]) == 2
        err = capsys.readouterr().err
        assert f"no team {team!r}" in err and "output folder" not in err and "evaluation.py" not in err


def test_a_reader_that_stops_early_ends_the_demo_quietly():
    """`cagekit demo | head`: the reader's end is no error (it used to print one and exit 2), and the exit
    code is a shell's for SIGPIPE."""
    import subprocess
    import sys

    # 500 steps print more than a pipe holds, so the demo is still writing when the reader goes
    proc = subprocess.Popen([sys.executable, "-m", "cagekit.cli", "demo", "--steps", "500"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline().startswith(b"scenario paper-small")
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert err == ""


def test_demo_plays_a_python_team_with_the_calls_the_harness_makes(tmp_path, capsys):
    # an agent that readies itself in set_initial_values and acts on begin_step's whole step, as CAGE and the
    # harness allow: the demo must make those calls too, or it plays (here: fails) where evaluation.py scores
    (tmp_path / "ready.py").write_text(
        "from cagekit.agents import Agent\n\n\n"
        "class Ready(Agent):\n"
        "    def __init__(self, slot):\n"
        "        self.slot, self.space, self.step = slot, None, None\n\n"
        "    def set_initial_values(self, action_space=None, observation=None):\n"
        "        self.space = action_space\n\n"
        "    def begin_step(self, observations):\n"
        "        self.step = observations\n\n"
        "    def get_action(self, observation, action_space=None):\n"
        "        if self.space is None or self.step is None:\n"
        "            raise RuntimeError('not readied: no set_initial_values or begin_step')\n"
        "        return self.slot.encode(0, 0)\n")
    assert main(["demo", "--team", f"{tmp_path / 'ready.py'}:Ready", "--steps", "2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("scenario paper-small, red KillChainAgent, team ready, agents ['blue_user', 'blue_ops']")
    assert len(re.findall(r"^t= \d blue_(user|ops) +obs=[01]+ action=", out, re.M)) == 4


def test_a_team_that_raises_is_named_with_its_agent_and_step_not_a_traceback(tmp_path, capsys):
    """As the harness names a failing agent, so does the demo, after the steps it played; exit code 2, as a team
    that fails at import (and every cagekit command's error): it was 1, a team failing at import 2."""
    (tmp_path / "breaks.py").write_text(
        "from cagekit.agents import Agent\n\n\nclass Breaks(Agent):\n    def __init__(self, slot):\n"
        "        self.calls = 0\n\n    def get_action(self, observation, action_space):\n        self.calls += 1\n"
        "        if self.calls > 2:\n            raise KeyError('boom')\n        return 0\n")
    assert main(["demo", "--team", f"{tmp_path / 'breaks.py'}:Breaks", "--steps", "5"]) == 2
    said = capsys.readouterr()
    assert "cagekit demo: error: agent 'blue_user' raised KeyError: 'boom' at step 2" in said.err
    assert "Traceback" not in said.err and len(re.findall(r"^t= \d blue_", said.out, re.M)) == 4


def test_a_team_that_cannot_be_built_is_named_not_a_traceback(tmp_path, capsys):
    """The harness refuses a builder that raises, returns no team or leaves an agent out with one line; the demo
    let each escape as a traceback (TypeError, RuntimeError, KeyError: 'blue_ops')."""
    (tmp_path / "teams.py").write_text(
        "from cagekit.agents import Agent\n\n\n"
        "class Quiet(Agent):\n    def __init__(self, slot=None):\n        pass\n\n"
        "    def get_action(self, observation, action_space=None):\n        return 0\n\n\n"
        "class NoWeights(Quiet):\n    def __init__(self, slot):\n        raise RuntimeError('no weights here')\n\n\n"
        "def listed(env):\n    return [Quiet()]\n\n\n"
        "def half(env):\n    return {'blue_user': Quiet()}\n")
    for name, said in (("NoWeights", "RuntimeError: no weights here"),
                       ("listed", "TypeError: teams.py:listed(env) returned list"),
                       ("half", "the team has no agent for ['blue_ops'] (it has ['blue_user'])")):
        assert main(["demo", "--team", f"{tmp_path / 'teams.py'}:{name}", "--steps", "2"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("cagekit demo: error: ") and said in err and "Traceback" not in err


def test_a_ctrl_c_lost_in_a_finalizer_still_ends_a_cagekit_command_with_130(tmp_path, capsys, monkeypatch):
    """A Ctrl-C landing in a `__del__` is printed as "Exception ignored" and lost, and the command went on to exit
    0; as evaluation.py, every cagekit command notes the interrupt when it arrives and ends with 130."""
    import signal
    import sys

    lost = []
    monkeypatch.setattr(sys, "unraisablehook", lambda unraisable: lost.append(unraisable.exc_type))
    (tmp_path / "lost.py").write_text(
        "import signal\n\nfrom cagekit.agents.heuristics import SleepAgent\n\n\n"
        "class _Finalized:\n"
        "    def __del__(self):\n"
        "        signal.raise_signal(signal.SIGINT)\n\n\n"
        "class Lost(SleepAgent):\n"
        "    def get_action(self, observation, action_space=None):\n"
        "        _Finalized()\n"
        "        return super().get_action(observation, action_space)\n")
    assert main(["demo", "--team", f"{tmp_path / 'lost.py'}:Lost", "--steps", "2"]) == 130
    assert KeyboardInterrupt in lost
    assert "interrupted" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back


def test_a_team_failing_at_import_or_in_play_exits_alike(tmp_path, capsys):
    """The demo exited 2 for a team whose file failed at import and 1 for one that failed in play: one exit code,
    2, as every cagekit command's error."""
    (tmp_path / "fails.py").write_text("raise RuntimeError('boom at import')\n")
    (tmp_path / "plays.py").write_text("def make_team(env):\n    raise RuntimeError('boom when built')\n")
    for team in ("fails.py", "plays.py"):
        assert main(["demo", "--team", str(tmp_path / team), "--steps", "1"]) == 2
        assert capsys.readouterr().err.startswith("cagekit demo: error: ")
