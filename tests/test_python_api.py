"""The Python API refuses a caller's mistake with a ValueError or TypeError that names it (never SystemExit, a
deep traceback or a failure blamed on the team), and reads what a caller naturally gives: a command line as one
string, paths as Path objects, numpy numbers, one include path."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import cagekit
from cagekit.evaluation import EvalConfig, HeuristicSource, JournalMismatch, cli_main, evaluate, run_command
from cagekit.evaluation.journal import JOURNAL

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--episodes", "1", "--lengths", "3", "--reds", "SleepAgent", "--no-progress"]


def _config(**kw: Any) -> EvalConfig:
    base: dict[str, Any] = dict(scenario="paper-small", layout=None, team=HeuristicSource("sleep").identity(),
                                episodes=1, lengths=(3,), reds=("SleepAgent",), seed=0, message_cost=0.1,
                                sau=True, channel=True)
    base.update(kw)
    return EvalConfig(**base)


# 1. run_command: bad options raise ValueError; a string is a command line, Paths are paths

@pytest.mark.parametrize(("argv", "message"), [
    (["react", "--bogus"], "unrecognized arguments: --bogus"),
    (["react", "--episodes", "x"], "argument --episodes: invalid int value: 'x'"),
    ("react out --episodes x", "argument --episodes: invalid int value: 'x'"),
])
def test_run_command_raises_value_error_for_bad_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       argv: Any, message: str) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=message):
        run_command(argv)
    assert not any(tmp_path.iterdir())


def test_the_command_line_still_prints_usage_and_exits_2(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(ROOT / "evaluation.py"), "react", str(tmp_path / "o"), "--episodes",
                           "x"], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 2
    assert done.stderr.startswith("usage: evaluation.py")
    assert "evaluation.py: error: argument --episodes: invalid int value: 'x'" in done.stderr
    with pytest.raises(SystemExit) as exit_:
        cli_main(["--bogus"], prog="cagekit evaluate")
    assert exit_.value.code == 2


def test_run_command_takes_a_string_and_paths(tmp_path: Path) -> None:
    out = tmp_path / "as string"
    assert run_command(f"react '{out}' " + " ".join(TINY), brief=True) == out
    assert (out / JOURNAL).is_file()
    other = tmp_path / "as path"
    assert run_command(["react", other, *TINY], brief=True) == other
    assert (out / "summary.txt").read_bytes() == (other / "summary.txt").read_bytes()


@pytest.mark.parametrize(("argv", "message"), [
    (["react", 3], "argv items must be strings or paths, got int 3"),
    (Path("react"), "argv must be a list of strings .* got PosixPath"),
    (b"react", "argv must be a list of strings .* got bytes"),
])
def test_run_command_names_an_argv_of_another_type(argv: Any, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        run_command(argv)


# 2. a config built in Python carries the installed version; the CLI's journals still resume

def test_a_python_config_carries_the_installed_version(tmp_path: Path) -> None:
    assert cagekit.__version__ and _config().cagekit_version == cagekit.__version__
    _, summary = evaluate(_config(), HeuristicSource("sleep"), tmp_path / "py", progress=False)
    assert summary["cagekit_version"] == cagekit.__version__
    # a journal the command line wrote resumes from Python with nothing to play, and the other way round
    cli = tmp_path / "cli"
    assert cli_main(["sleep", str(cli), *TINY]) == 0
    before = {f.name: f.read_bytes() for f in cli.iterdir()}
    config = _config(team_name="sleep", technique="heuristic sleep", author="anonymous")
    evaluate(config, HeuristicSource("sleep"), cli, progress=False)
    assert {f.name: f.read_bytes() for f in cli.iterdir()} == before
    assert cli_main(["sleep", str(tmp_path / "py"), *TINY]) == 0


def test_a_journal_without_a_version_reads_as_unknown_and_is_not_resumed(tmp_path: Path) -> None:
    evaluate(_config(), HeuristicSource("sleep"), tmp_path, progress=False)
    journal = tmp_path / JOURNAL
    lines = journal.read_text().splitlines(keepends=True)
    header = json.loads(lines[0])
    del header["config"]["cagekit_version"]
    journal.write_text(json.dumps(header) + "\n" + "".join(lines[1:]))
    assert EvalConfig.from_json(header["config"]).cagekit_version == ""
    with pytest.raises(JournalMismatch, match=f"cagekit_version: journal has None, this run has "
                                              f"'{cagekit.__version__}'"):
        evaluate(_config(), HeuristicSource("sleep"), tmp_path, progress=False)


# 3. the twin is a simulator, not a backend

def test_backend_twin_says_where_the_twin_is_chosen(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"valid: serial, processes, ray \(the twin is no backend: build the "
                                         r"EvalConfig with simulator='twin'\)"):
        evaluate(_config(), HeuristicSource("sleep"), tmp_path / "o", backend="twin")
    assert not (tmp_path / "o").exists()


# 4. no layout and the scenario's default layout are the same run

@pytest.mark.parametrize(("first", "second"), [(None, "team"), ("team", None)])
def test_the_default_layout_named_or_not_resumes_the_same_journal(tmp_path: Path, first: str | None,
                                                                   second: str | None) -> None:
    evaluate(_config(layout=first), HeuristicSource("sleep"), tmp_path, progress=False)
    before = {f.name: f.read_bytes() for f in tmp_path.iterdir()}
    report, _ = evaluate(_config(layout=second), HeuristicSource("sleep"), tmp_path, progress=False)
    assert {f.name: f.read_bytes() for f in tmp_path.iterdir()} == before  # journal and reports as they were
    assert report.config.layout == first  # the reports name the layout as the journal's run did


def test_cage2s_default_is_classic_not_team(tmp_path: Path) -> None:
    """Only the scenario's own default stands for None: on cage2 that is classic, and team is another run."""
    cage2 = dict(scenario="cage2", reds=("SleepAgent",), channel=False, sau=False)
    evaluate(_config(**cage2), HeuristicSource("sleep"), tmp_path, progress=False)
    evaluate(_config(**cage2, layout="classic"), HeuristicSource("sleep"), tmp_path, progress=False)
    with pytest.raises(JournalMismatch, match="layout: journal has None, this run has 'team'"):
        evaluate(_config(**cage2, layout="team"), HeuristicSource("sleep"), tmp_path, progress=False)


# 5. evaluate refuses a step timeout no step could keep, blaming no agent

@pytest.mark.parametrize("timeout", [-1, 0, float("nan"), float("inf"), 1e9, "5", True])
def test_evaluate_refuses_a_step_timeout_that_is_no_positive_number(tmp_path: Path, timeout: Any) -> None:
    with pytest.raises(ValueError, match=rf"step_timeout must be a positive number of seconds up to 86,400 \(a "
                                         rf"day\), got {timeout!r}"):
        evaluate(_config(), HeuristicSource("sleep"), tmp_path / "o", step_timeout=timeout, progress=False)
    assert not (tmp_path / "o").exists()


# 6. open_submission refuses timeouts as validate does, before anything is unpacked

@pytest.mark.parametrize("kw", [{"act_timeout": 0}, {"act_timeout": -1}, {"boot_timeout": -1},
                                {"import_timeout": float("nan")}, {"act_timeout": "10"}])
def test_open_submission_and_validate_refuse_impossible_timeouts(kw: dict[str, Any]) -> None:
    from cagekit.submissions import open_submission, validate

    (key, value), = kw.items()
    message = rf"the {key.removesuffix('_timeout')} timeout must be a positive number of seconds"
    shipped = ROOT / "submissions" / "react-paper-small.zip"
    for call in (open_submission, validate):
        with pytest.raises(ValueError, match=message):
            call(shipped, **kw)


# 7. EvalConfig names a field of the wrong type and takes numpy numbers

@pytest.mark.parametrize(("kw", "message"), [
    ({"message_cost": "0.1"}, "message_cost must be a number, got str '0.1'"),
    ({"detection": "0.5"}, r"detection must be a number or None \(the scenario's\), got str '0.5'"),
    ({"episodes": "2"}, "episodes must be an integer, got str '2'"),
    ({"episodes": True}, "episodes must be an integer, got bool True"),
    ({"message_cost": True}, "message_cost must be a number, got bool True"),
])
def test_eval_config_names_the_field_of_the_wrong_type(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _config(**kw)


def test_eval_config_takes_numpy_numbers_as_pythons(tmp_path: Path) -> None:
    config = _config(episodes=np.int64(1), seed=np.int32(0), lengths=(np.int64(3),), message_cost=np.float32(0.5),
                     detection=np.float64(0.25))
    assert config == _config(message_cost=0.5, detection=0.25)
    assert [type(v) for v in (config.episodes, config.seed, *config.lengths, config.message_cost,
                              config.detection)] == [int, int, int, float, float]
    evaluate(config, HeuristicSource("sleep"), tmp_path, progress=False)  # its journal is JSON
    assert json.loads((tmp_path / JOURNAL).read_text().splitlines()[0])["config"]["episodes"] == 1


# 8. package's include takes one path as one file

def test_package_include_takes_a_single_path(tmp_path: Path) -> None:
    from cagekit.submissions.build import build_files
    from cagekit.submissions.package import package

    team = tmp_path / "weighted.py"
    team.write_text("import json\nfrom pathlib import Path\n\nfrom cagekit.agents import make_team as _make\n\n"
                    "KIND = json.loads((Path(__file__).parent / 'weights.json').read_text())['kind']\n\n\n"
                    "def make_team(env):\n    return _make(KIND, env)\n")
    (tmp_path / "weights.json").write_text('{"kind": "react"}')
    labels: dict[str, Any] = dict(name="a", team="b", technique="c")
    files = build_files(str(team), **labels, include="weights.json")
    assert files["team/weights.json"] == b'{"kind": "react"}'
    assert build_files(str(team), **labels, include=Path("weights.json")) == files
    assert build_files(str(team), **labels, include=["weights.json"]) == files
    out = package(str(team), **labels, out=tmp_path / "w.zip", include=Path("weights.json"))
    assert "team/weights.json" in zipfile.ZipFile(out).namelist()
    with pytest.raises(TypeError, match="include holds paths .* got int 3"):
        build_files(str(team), **labels, include=("weights.json", 3))  # type: ignore[arg-type]


@pytest.mark.parametrize("settings", [{"scenario": "paper-small", "view": "team"},
                                      {"scenario": "cage2", "layout": "team", "message_cost": 0.5}])
def test_a_heuristic_team_names_the_environment_it_was_made_for(settings):
    """make_team's env_settings() left out the layout and view, so the size error's advice,
    make_env(**team.env_settings()), rebuilt the mismatch (view) or failed (cage2's team layout: 'the message
    channel needs two or more blue agents')."""
    from cagekit.agents import make_team

    team = make_team("react", cagekit.make_env(**settings, seed=0))
    env = cagekit.make_env(**team.env_settings(), seed=0)
    assert all(getattr(env, k) == v for k, v in settings.items() if k in ("view", "message_cost"))
    obs, _ = env.reset(seed=0)
    assert set(team.act(obs)) == set(env.possible_agents)


@pytest.mark.parametrize("kind", ["react", "random", "dial-sau", "qmix"])
def test_an_agent_called_on_its_own_names_an_observation_of_another_shape(kind):
    """CAGE's loop calls each agent's get_action, not Team.act (whose check named the mismatch): a channel team's
    agent given a channel-off observation failed deep in numpy ('cannot reshape array of size 9 into shape (10)'),
    in torch ('The expanded size of the tensor (9) must match ...') or, a heuristic, read the wrong bits and
    returned a channel-encoded action the other environment took for another defence."""
    from cagekit.agents import make_team
    from cagekit.agents.training import make_learner

    if kind in ("react", "random"):
        team = make_team(kind, cagekit.make_env("paper-small", seed=0), seed=0)
    else:
        team = make_learner(kind, "paper-small", seed=0).team()
    settings = team.env_settings()
    other = cagekit.make_env(**{**settings, "channel": not settings.get("channel", True)}, seed=0)
    obs, _ = other.reset(seed=0)
    agent = team.agents["blue_user"]
    expected = agent.slot.obs_size  # type: ignore[attr-defined]
    given = obs["blue_user"]["observation"].size
    assert given != expected
    for observation in (obs["blue_user"], obs["blue_user"]["observation"]):  # CAGE's bare vector too
        with pytest.raises(ValueError, match=f"agent 'blue_user' got an observation of {given} values, expected "
                                             f"{expected}.*: play it on the environment its team was made for"):
            agent.get_action(observation, other.action_space("blue_user"))
    own = cagekit.make_env(**settings, seed=0)
    mine, _ = own.reset(seed=0)
    assert own.action_space("blue_user").contains(agent.get_action(mine["blue_user"], own.action_space("blue_user")))


@pytest.mark.parametrize(("scenario", "view"),
                         [("paper-small", "own"), ("paper-large", "own"), ("paper-small", "team")])
def test_a_bare_vector_gets_the_sau_mask_the_environment_sends(scenario, view):
    """The mask rebuilt from an agent's bare observation vector (its rows and received bits) is the one the
    environment sends beside it, at every step of an episode with messages flowing."""
    from cagekit.agents import make_team
    from cagekit.agents.base import slot_observation

    env = cagekit.make_env(scenario, red="KillChainAgent", seed=3, view=view)
    team = make_team("random", env, seed=3)  # random bits: messages arrive, and SAU unmasks Analyse
    obs, _ = env.reset(seed=3)
    arrived = 0
    while env.agents:
        for name, o in obs.items():
            slot = team.agents[name].slot  # type: ignore[attr-defined]
            _, rebuilt = slot_observation(slot, o["observation"], sau=True)
            assert rebuilt is not None and np.array_equal(rebuilt, o["action_mask"]), name
            arrived += int(slot.split(o["observation"])[2].any())
        obs, *_ = env.step(team.act(obs))
    assert arrived > 0


@pytest.mark.parametrize("kind", ["random", "react", "sleep"])
def test_a_heuristic_plays_a_bare_vector_as_the_observation_with_its_mask(kind):
    """CAGE's loop hands agents the bare vector: `random` then drew among every action, and most of its draws were
    actions SAU masks, which the environment refused and played as Sleep. It now rebuilds the mask, as the
    trained teams do (`react` and `sleep` never choose a masked action: checked here all the same)."""
    from cagekit.agents import make_team

    env = cagekit.make_env("paper-small", red="KillChainAgent", seed=5)
    with_mask, bare = make_team(kind, env, seed=2), make_team(kind, env, seed=2)
    obs, _ = env.reset(seed=5)
    refused = 0
    while env.agents:
        actions = {n: with_mask.agents[n].get_action(o, env.action_space(n)) for n, o in obs.items()}
        assert {n: bare.agents[n].get_action(o["observation"], env.action_space(n)) for n, o in obs.items()} == actions
        obs, _, _, _, infos = env.step(actions)
        refused += sum(int(info["invalid_action"]) for info in infos.values())
    assert refused == 0


@pytest.mark.parametrize("kind", ["dial-sau", "qmix"])
def test_a_team_trained_with_sau_plays_a_bare_vector_as_the_observation_with_its_mask(kind):
    """CAGE's loop hands agents the bare vector. A team trained with SAU masks then chose among every action,
    masked ones too, which the environment plays as Sleep (the shipped dial-sau team: -82.7 against -56.5 in
    one episode); it now rebuilds the mask and acts as on the environment's own observation."""
    from cagekit.agents.training import make_learner

    learner = make_learner(kind, "paper-small", seed=1, red="KillChainAgent")
    with_mask, bare = learner.team(), learner.team()
    env = cagekit.make_env(**with_mask.env_settings(), seed=5)
    obs, _ = env.reset(seed=5)
    masked = 0
    while env.agents:
        actions = {n: with_mask.agents[n].get_action(o, env.action_space(n)) for n, o in obs.items()}
        assert {n: bare.agents[n].get_action(o["observation"], env.action_space(n)) for n, o in obs.items()} == actions
        masked += sum(int(not o["action_mask"].all()) for o in obs.values())
        obs, *_ = env.step(actions)
    assert masked > 0  # the masks did mask something


@pytest.mark.parametrize("package", ["cagekit.engine", "cagekit.agents.dial", "cagekit.agents.qmix"])
def test_a_package_with_lazy_names_gives_every_public_name(package: str) -> None:
    """These packages import their modules when a name is first asked for (PEP 562, so that loading a team imports
    neither CybORG nor a learner): every name of their __all__ is still there, in dir() too, and one they do not
    have is an AttributeError, as for any module."""
    import importlib

    module = importlib.import_module(package)
    for name in module.__all__:
        assert getattr(module, name) is not None, name
    assert set(module.__all__) <= set(dir(module))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        module.nope  # noqa: B018


def test_a_printed_team_leaves_out_its_meta() -> None:
    # a loaded team's meta holds its checkpoint's meta.json, a registered scenario's whole spec included
    from cagekit.agents.base import Team

    team = Team(agents={}, scenario="tiny", kind="dial-sau", meta={"scenario_spec": {"hosts": ["x" * 1000]}})
    assert repr(team) == "Team(agents={}, scenario='tiny', kind='dial-sau')"
    assert team.meta["scenario_spec"]  # still there to read
