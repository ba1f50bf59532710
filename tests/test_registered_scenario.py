"""A scenario of the user's own, registered (`cagekit.scenarios.register`) or read from a file (`--scenario
FILE`), through the whole pipeline on the real engine: environment, training, checkpoint, loading in a fresh
process, evaluation in worker processes, and the refusals."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tiny_network import TINY

import cagekit.scenarios as scenarios
from cagekit import make_env
from cagekit.agents import load_team, make_team
from cagekit.agents.training import make_learner, train
from cagekit.evaluation.harness import evaluate
from cagekit.evaluation.journal import read_journal
from cagekit.evaluation.protocol import EvalConfig
from cagekit.evaluation.runners import START_METHOD_ENV
from cagekit.evaluation.sources import CheckpointSource, HeuristicSource
from cagekit.scenarios import ScenarioSpec, get_scenario, register
from cagekit.scenarios.files import read_scenario_file
from cagekit.scenarios.paper import LINUX_WEB, PAPER_SMALL
from cagekit.scenarios.records import spec_from_dict, spec_to_dict

ROOT = Path(__file__).resolve().parent.parent

#: a tiny DIAL run: a few hundred engine steps
FAST = {"batch_episodes": 2, "hidden": 16, "target_update": 2, "eps_anneal_steps": 100}

#: the same network as a user writes it in YAML: images by name, the paper's agents and reward left out
TINY_YAML = """
name: tiny-yaml
description: a web host, a gateway, the OT server
hosts:
  - {name: User0, image: foothold, confidentiality: None, availability: None}
  - {name: Web, image: linux_web, availability: None, reveals: [Gate]}
  - {name: Gate, image: gateway, confidentiality: Medium, availability: None, reveals: [Op_Server0]}
  - {name: Op_Server0, image: ot_server, confidentiality: High, availability: None, info_services: [OTService]}
  - {name: Defender, image: monitor, confidentiality: None, availability: None, ping: false}
subnets:
  - {name: Front, hosts: [User0, Web]}
  - {name: Back, hosts: [Gate, Op_Server0, Defender]}
blue_layouts:
  team:
    - {name: front, hosts: [Web], block_subnets: [Back]}
    - {name: back, hosts: [Gate, Op_Server0], block_subnets: [Front]}
"""


@pytest.fixture(autouse=True)
def fresh_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with no scenario registered, and leaves none behind for the other test files."""
    monkeypatch.setattr(scenarios, "_REGISTERED", {})


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`code` in a fresh interpreter: nothing registered there but what it reads itself."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


# registering ---------------------------------------------------------------------------------------

def test_register_makes_the_name_known_to_make_env_and_make_team() -> None:
    with pytest.raises(ValueError, match=r"unknown scenario 'tiny'; valid scenarios: paper-small, paper-large, "
                                         r"cage2 \(a scenario of your own: cagekit.scenarios.register\(spec\) first, "
                                         r"or on the command line its file, --scenario FILE.yaml or .json\)$"):
        make_env("tiny")
    assert register(TINY) is TINY
    assert register(dataclasses.replace(TINY)) is TINY  # the same spec again: nothing to do
    assert scenarios.scenario_names() == ["paper-small", "paper-large", "cage2", "tiny"]
    env = make_env("tiny", seed=0, episode_length=5)
    assert env.spec is TINY and env.possible_agents == ["front", "back"]
    team = make_team("react", env)
    assert team.scenario == "tiny"
    with pytest.raises(ValueError, match=r"unknown scenario 'nope'; valid scenarios: paper-small, paper-large, "
                                         r"cage2, tiny$"):
        get_scenario("nope")


def test_register_refusals() -> None:
    with pytest.raises(ValueError, match="'paper-small' is built in and cannot be registered"):
        register(PAPER_SMALL)
    with pytest.raises(ValueError, match="'paper-large' is built in"):
        register(dataclasses.replace(TINY, name="paper-large"))
    with pytest.raises(TypeError, match="register takes a cagekit.scenarios.ScenarioSpec, got dict"):
        register(spec_to_dict(TINY))  # type: ignore[arg-type]
    register(TINY)
    with pytest.raises(ValueError, match="'tiny' is already registered with a different spec"):
        register(dataclasses.replace(TINY, detection=0.5))

    class Drawn:  # an Image of the user's own class: no record of it could rebuild it
        name = "drawn"

        def to_cyborg(self) -> dict[str, Any]:
            return LINUX_WEB.to_cyborg()

    odd = dataclasses.replace(TINY, name="odd", hosts=(*TINY.hosts[:1], dataclasses.replace(TINY.hosts[1],
                                                                                            image=Drawn()),
                                                       *TINY.hosts[2:]))
    with pytest.raises(TypeError, match="host 'Web' has an image of type Drawn; only .*HostImage"):
        register(odd)
    assert scenarios.scenario_names() == ["paper-small", "paper-large", "cage2", "tiny"]


def test_spec_records_round_trip() -> None:
    for spec in (*scenarios.builtin_specs(), TINY):
        # as meta.json and manifest.json write it: keys sorted, which reordered the red agents (the reports' order)
        data = json.loads(json.dumps(spec_to_dict(spec), sort_keys=True))
        again = spec_from_dict(data)
        assert again == spec, spec.name
        assert list(again.red_agents) == list(spec.red_agents), spec.name
        def orders(s: ScenarioSpec) -> list[list[str]]:
            return [list(s.blue_layouts), list(s.green_agents), *(list(n.nacls) for n in s.subnets)]

        assert orders(again) == orders(spec), spec.name


# training, checkpoints, a fresh process ------------------------------------------------------------------

def _trained(out: Path) -> Path:
    learner = make_learner("dial-sau", TINY, seed=0, config=FAST, episode_length=10)  # a spec: registered
    assert learner.scenario == "tiny" and get_scenario("tiny") is TINY
    train(learner, 200, out, checkpoint_every=5, progress=False)
    return out


def test_checkpoint_records_the_spec_and_loads_in_a_fresh_process(tmp_path: Path) -> None:
    run = _trained(tmp_path / "run")
    meta = json.loads((run / "meta.json").read_text())
    assert meta["scenario"] == "tiny" and spec_from_dict(meta["scenario_spec"]) == TINY
    assert load_team(run).scenario == "tiny"
    probe = _python(f"from cagekit.agents import load_team; from cagekit.scenarios import get_scenario\n"
                    f"team = load_team({str(run)!r}); print(team.scenario, sorted(team.agents), "
                    f"get_scenario('tiny').host_names)", tmp_path)
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split("\n")[0] == "tiny ['back', 'front'] ('User0', 'Web', 'Gate', 'Op_Server0', 'Defender')"
    # a fresh process that registered another spec under the name refuses the checkpoint, naming both
    clash = _python(f"import dataclasses\nfrom cagekit.scenarios import register\n"
                    f"from cagekit.scenarios.paper import PAPER_SMALL\nfrom cagekit.agents import load_team\n"
                    f"register(dataclasses.replace(PAPER_SMALL, name='tiny'))\nload_team({str(run)!r})", tmp_path)
    assert clash.returncode != 0
    assert "meta.json records scenario 'tiny', which cannot be registered: scenario 'tiny' is already registered " \
           "with a different spec" in clash.stderr
    # the record cannot be renamed: the advice is about the spec registered there, not "give this one another name"
    assert "give the one registered here another name" in clash.stderr and "give this one" not in clash.stderr
    # and the evaluation command line scores it in a fresh process (its scenario from the checkpoint)
    scored = subprocess.run([sys.executable, str(ROOT / "evaluation.py"), str(run), str(tmp_path / "eval"),
                             "--episodes", "1", "--lengths", "5", "--reds", "KillChainAgent", "--no-progress"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert scored.returncode == 0, scored.stderr
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert summary["parameters"]["scenario"] == "tiny"


@pytest.mark.parametrize("start_method", ["fork", "forkserver"])  # forkserver: its workers inherit no registry
def test_serial_and_two_workers_score_a_registered_scenario_alike(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   start_method: str) -> None:
    monkeypatch.setenv(START_METHOD_ENV, start_method)
    register(TINY)
    source = HeuristicSource("react")
    config = EvalConfig(scenario="tiny", layout=None, team=source.identity(), episodes=2, lengths=(6,),
                        reds=("KillChainAgent", "ExplorerAgent"), seed=3, message_cost=0.1, sau=True, channel=True)
    assert config.scenario_spec == spec_to_dict(TINY)  # carried to the workers and named in the journal
    _, serial = evaluate(config, source, tmp_path / "serial", progress=False, chart=False)
    _, workers = evaluate(config, source, tmp_path / "workers", backend="processes", workers=2, progress=False,
                          chart=False)
    for summary in (serial, workers):
        summary.pop("time")
    assert serial == workers
    journals = [sorted((tmp_path / d / "journal.jsonl").read_text().splitlines()[1:]) for d in ("serial", "workers")]
    assert journals[0] == journals[1] and len(journals[0]) == 4


def test_checkpoint_scored_in_forkserver_workers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(START_METHOD_ENV, "forkserver")
    run = _trained(tmp_path / "run")
    source = CheckpointSource(str(run))
    config = EvalConfig(scenario="tiny", layout=None, team=source.identity(), episodes=2, lengths=(5,),
                        reds=("KillChainAgent",), seed=0, message_cost=0.1, sau=True, channel=True)
    _, serial = evaluate(config, source, tmp_path / "serial", progress=False, chart=False)
    _, workers = evaluate(config, source, tmp_path / "workers", backend="processes", workers=2, progress=False,
                          chart=False)
    serial.pop("time"), workers.pop("time")
    assert serial == workers


def test_journal_of_another_spec_is_not_resumed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    register(TINY)
    source = HeuristicSource("sleep")
    config = EvalConfig(scenario="tiny", layout=None, team=source.identity(), episodes=1, lengths=(4,),
                        reds=("SleepAgent",), seed=0, message_cost=0.1, sau=True, channel=True)
    evaluate(config, source, tmp_path / "eval", progress=False, chart=False)
    monkeypatch.setattr(scenarios, "_REGISTERED", {})
    register(dataclasses.replace(TINY, green_rate=0.5))  # the same name, another network
    again = EvalConfig(**{**config.to_json(), "scenario_spec": None, "lengths": (4,), "reds": ("SleepAgent",)})
    with pytest.raises(ValueError, match="scenario_spec") as refused:
        evaluate(again, source, tmp_path / "eval", progress=False, chart=False)
    # the refusal names what changed in the network, not both specs whole (they printed 12 kB)
    assert "green_rate: journal has 0.05, this run has 0.5" in str(refused.value)
    assert len(str(refused.value)) < 600
    # reading that journal here (compare) meets another network of its name: said so, not "another version"
    with pytest.raises(ValueError, match=r"journal.jsonl: .*'tiny' is already registered with a different spec in "
                                         r"this process \(green_rate: registered 0.5, this one 0.05\)") as unread:
        read_journal(tmp_path / "eval")
    assert "score the team again" not in str(unread.value)


def test_a_submission_for_a_registered_scenario_carries_it_and_scores_in_a_fresh_process(tmp_path: Path) -> None:
    """A manifest records the spec of a scenario of the packager's own; validation, the worker's own
    environment (Submission.wrap) and the evaluation register it from there, in any process."""
    from cagekit.submissions import package, validate

    register(TINY)
    team_zip = package("react", name="me", team="t", technique="react", out=tmp_path / "react.zip", scenario="tiny")
    ckpt_zip = package(str(_trained(tmp_path / "run")), name="me", team="t", technique="dial-sau",
                       out=tmp_path / "dial.zip")
    for path in (team_zip, ckpt_zip):
        with zipfile.ZipFile(path) as archive:
            manifest = json.loads(archive.read("manifest.json"))
        assert manifest["scenario"] == "tiny" and spec_from_dict(manifest["scenario_spec"]) == TINY
        report = validate(path)  # the wrap check builds the scenario in the worker, which never registered it
        assert report.ok, report.text()
    scored = []
    for workers in ("1", "2"):
        out = tmp_path / f"eval-{workers}"
        run = subprocess.run([sys.executable, str(ROOT / "evaluation.py"), str(ckpt_zip), str(out), "--episodes",
                              "2", "--lengths", "5", "--workers", workers, "--no-progress"],
                             cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr
        assert json.loads((out / "summary.json").read_text())["parameters"]["scenario"] == "tiny"
        scored.append((out / "results.csv").read_bytes())
    assert scored[0] == scored[1]
    # a process where the name means another network refuses the submission, naming the manifest
    clash = _python(f"import dataclasses\nfrom cagekit.scenarios import register\n"
                    f"from cagekit.scenarios.paper import PAPER_SMALL\nfrom cagekit.submissions import validate\n"
                    f"register(dataclasses.replace(PAPER_SMALL, name='tiny'))\n"
                    f"print(validate({str(team_zip)!r}).text())", tmp_path)
    assert "manifest.json records scenario 'tiny', which cannot be registered" in clash.stdout, clash.stdout


def _resume_with_journal_config(tmp_path: Path, change: Callable[[dict[str, Any]], Any]) -> None:
    """Score the sleeping team on tiny once, `change` the configuration its journal records, and score again: the
    second run resumes that journal (refused, it raises) and has nothing left to score."""
    source = HeuristicSource("sleep")
    config = EvalConfig(scenario="tiny", layout=None, team=source.identity(), episodes=1, lengths=(4,),
                        reds=("SleepAgent",), seed=0, message_cost=0.1, sau=True, channel=True)
    evaluate(config, source, tmp_path / "eval", progress=False, chart=False)
    journal = tmp_path / "eval" / "journal.jsonl"
    lines = journal.read_text().splitlines()
    header = json.loads(lines[0])
    change(header["config"])
    journal.write_text("\n".join([json.dumps(header), *lines[1:]]) + "\n")
    evaluate(config, source, tmp_path / "eval", progress=False, chart=False)


def test_journal_recording_mappings_as_objects_resumes(tmp_path: Path) -> None:
    """Journals written before spec records kept mappings as [key, value] pairs hold them as objects: the same
    network, which was refused on resume ("image.services: journal has {}, this run has []")."""
    register(TINY)

    def as_they_were_written(config: dict[str, Any]) -> None:
        config["scenario_spec"] = json.loads(json.dumps(dataclasses.asdict(TINY)))

    _resume_with_journal_config(tmp_path, as_they_were_written)


def test_a_record_written_before_red_target_loads_with_op_server0(tmp_path: Path) -> None:
    """Checkpoints, runs, journals and manifests written before the spec named red's target record no
    `red_target`: they are the same network (red went for Op_Server0), registered and resumed as such."""
    from cagekit.agents.checkpoint import adopt_spec

    old = spec_to_dict(TINY)
    assert old.pop("red_target") == "Op_Server0"
    assert spec_from_dict(old).red_target == "Op_Server0" and spec_from_dict(old) == TINY
    register(TINY)
    adopt_spec({"scenario": "tiny", "scenario_spec": old}, "meta.json")  # as load_team reads an old meta.json
    assert get_scenario("tiny") is TINY
    # an old journal resumes: its network is this run's
    _resume_with_journal_config(tmp_path, lambda config: config["scenario_spec"].pop("red_target"))
    # and in a fresh process, where nothing is registered, the old record registers the network it was
    probe = _python(f"from cagekit.scenarios import register_recorded\n"
                    f"print(register_recorded({old!r}, 'meta.json', 'tiny').red_target)", tmp_path)
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip() == "Op_Server0"


def test_a_record_before_red_target_of_a_network_without_op_server0_loads_with_no_target(tmp_path: Path) -> None:
    """A record written before the field, of a network with no host called Op_Server0: its red went for that name
    and impacted nothing. It loads as that network (`red_target` None) rather than being refused for a target it
    never named; a scenario file of that network without the field is refused, naming the choices."""
    from cagekit.scenarios import register_recorded

    plant = dataclasses.replace(TINY, name="plant", hosts=tuple(
        dataclasses.replace(h, name="Plant") if h.name == "Op_Server0" else
        dataclasses.replace(h, reveals=tuple("Plant" if r == "Op_Server0" else r for r in h.reveals))
        for h in TINY.hosts), subnets=tuple(
        dataclasses.replace(s, hosts=tuple("Plant" if h == "Op_Server0" else h for h in s.hosts))
        for s in TINY.subnets), blue_layouts={"team": tuple(
            dataclasses.replace(a, hosts=tuple("Plant" if h == "Op_Server0" else h for h in a.hosts))
            for a in TINY.layout())}, red_target=None)
    old = spec_to_dict(plant)
    del old["red_target"]
    with pytest.raises(ValueError, match=re.escape("red_target 'Op_Server0' (the default) is not among the hosts; "
                                                   "name the host red impacts, one that runs the OT service (here: "
                                                   "Plant), or give red_target None (null in a file)")):
        spec_from_dict(old, "plant.yaml")
    assert register_recorded(old, "meta.json", "plant") == plant
    probe = _python(f"from cagekit.scenarios import register_recorded\n"
                    f"print(register_recorded({old!r}, 'meta.json', 'plant').red_target)", tmp_path)
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip() == "None"


def test_validating_one_submission_does_not_decide_the_next(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two teams' zips for a scenario named alike but packaged from other versions of its file: each validates on
    its own, and validating one first made the other FAIL ("already registered with a different spec") in a
    batch; a manifest refused for recording another scenario's spec left that spec registered."""
    from cagekit.submissions import validate
    from cagekit.submissions.manifest import adopt_spec

    register(TINY)
    first = package_react(tmp_path / "first.zip")
    with zipfile.ZipFile(first) as archive:  # the manifest is not among the hashed files
        entries = {name: archive.read(name) for name in archive.namelist()}
    manifest = json.loads(entries["manifest.json"])
    manifest["scenario_spec"]["hosts"][1]["confidentiality"] = "High"
    entries["manifest.json"] = json.dumps(manifest).encode()
    second = tmp_path / "second.zip"
    with zipfile.ZipFile(second, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    monkeypatch.setattr(scenarios, "_REGISTERED", {})
    for path in (first, second):
        report = validate(path)
        assert report.ok, report.text()
    assert scenarios.registered_specs() == ()
    manifest["scenario_spec"]["name"] = "other"
    with pytest.raises(ValueError, match="records the spec of scenario 'other' for scenario 'tiny'"):
        adopt_spec(manifest)
    assert scenarios.registered_specs() == ()
    # a small zip recording a huge network is refused before anything is built from it
    manifest["scenario_spec"].update(name="tiny", hosts=manifest["scenario_spec"]["hosts"] * 101)
    with pytest.raises(ValueError, match="a scenario of 505 hosts; a submission's own scenario may have at most 500"):
        adopt_spec(manifest)
    assert scenarios.registered_specs() == ()


def test_differences_of_a_mapping_are_named_by_key_and_an_order_change_as_such() -> None:
    from cagekit.scenarios.records import describe_differences

    reds = dict(TINY.red_agents)
    other = spec_to_dict(dataclasses.replace(TINY, red_agents={**reds, "ExplorerAgent": "SleepAgent"}))
    assert describe_differences(spec_to_dict(TINY), other, "journal has", "this run has") == \
        "red_agents.ExplorerAgent: journal has 'ExplorerAgent', this run has 'SleepAgent'"
    reordered = spec_to_dict(dataclasses.replace(TINY, red_agents=dict(reversed(list(reds.items())))))
    assert describe_differences(spec_to_dict(TINY), reordered, "journal has", "this run has") == \
        f"red_agents (order): journal has {list(reds)}, this run has {list(reversed(list(reds)))}"


def package_react(out: Path) -> Path:
    from cagekit.submissions import package

    return Path(package("react", name="me", team="t", technique="react", out=out, scenario="tiny"))


# scenario files and the command line -------------------------------------------------------------------

def test_yaml_file_with_named_images_and_paper_defaults(tmp_path: Path) -> None:
    file = tmp_path / "tiny.yaml"
    file.write_text(TINY_YAML)
    spec = read_scenario_file(file)
    assert spec == dataclasses.replace(TINY, name="tiny-yaml")


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d.pop("hosts"), r"missing field\(s\) 'hosts' of ScenarioSpec"),
    (lambda d: d["hosts"][1].update(image="windows_xp"), r"hosts\[1\]\.image: unknown image 'windows_xp'; give one "
                                                         r"of .*linux_web"),
    (lambda d: d["hosts"][2].update(confidentiality="Huge"), r"hosts\[2\]\.confidentiality: must be one of 'None', "
                                                             r"'Low', 'Medium', 'High', got str 'Huge'"),
    (lambda d: d.update(detection="0.1"), r"detection: must be a number, got str '0.1'"),
    # a record's mapping is [key, value] pairs: blue_layouts[0] is ["team", [agents]]
    (lambda d: d["blue_layouts"][0][1][0].update(hosts=["Mail"]), r"agent 'front' defends 'Mail', which is not "
                                                                  r"among the hosts"),
    (lambda d: d.update(colour="red"), r"unknown field\(s\) 'colour' for ScenarioSpec"),
])
def test_scenario_file_errors_name_the_file_and_the_field(tmp_path: Path, change: Any, message: str) -> None:
    data = spec_to_dict(dataclasses.replace(TINY, name="bad"))
    data["hosts"][1]["image"] = "linux_web"
    change(data)
    file = tmp_path / "bad.json"
    file.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=f"scenario file {file}: .*{message}"):
        read_scenario_file(file)


def test_cagekit_scenarios_lists_a_scenario_file_and_names_a_wrong_field(tmp_path: Path, capsys: Any) -> None:
    from cagekit.cli import main

    (tmp_path / "tiny.yaml").write_text(TINY_YAML)
    assert main(["scenarios", str(tmp_path / "tiny.yaml")]) == 0
    assert "tiny-yaml" in capsys.readouterr().out
    # its texts as written: rich read "[red]" in them as markup and dropped it
    marked = TINY_YAML.replace("name: tiny-yaml", "name: marked")
    (tmp_path / "marked.yaml").write_text(marked.replace("a web host, a gateway, the OT server", "a[red]b"))
    assert main(["scenarios", str(tmp_path / "marked.yaml")]) == 0
    assert "a[red]b" in capsys.readouterr().out
    (tmp_path / "bad.yaml").write_text(TINY_YAML.replace("image: linux_web", "image: windows_xp"))
    assert main(["scenarios", str(tmp_path / "bad.yaml")]) == 2
    assert "bad.yaml: hosts[1].image: unknown image 'windows_xp'" in capsys.readouterr().err


def test_a_yaml_scenario_file_reads_exponents_as_numbers_as_a_config_file_does(tmp_path: Path) -> None:
    """`detection: 5e-2` was refused as "must be a number, got str '5e-2'", where `--config` took `lr: 3e-4`:
    scenario files read YAML as the config files do (YAML 1.2 numbers)."""
    file = tmp_path / "tiny.yaml"
    file.write_text(TINY_YAML + "detection: 5e-2\nmessage_cost: 2E-1\n")
    spec = read_scenario_file(file)
    assert (spec.detection, spec.message_cost) == (0.05, 0.2)
    (tmp_path / "far.yaml").write_text(TINY_YAML + "detection: 5e-1x\n")  # text that only starts like a number
    with pytest.raises(ValueError, match="far.yaml: detection: must be a number, got str '5e-1x'"):
        read_scenario_file(tmp_path / "far.yaml")


def test_unreadable_scenario_files(tmp_path: Path) -> None:
    from cagekit.scenarios.files import scenario_option

    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ValueError, match="broken.json is not valid JSON"):
        scenario_option(str(tmp_path / "broken.json"))
    with pytest.raises(ValueError, match="--scenario .*missing.yaml: no such scenario file"):
        scenario_option(str(tmp_path / "missing.yaml"))
    assert scenario_option("paper-small") == "paper-small"
    (tmp_path / "pl.json").write_text(json.dumps(spec_to_dict(scenarios.builtin_specs()[1])))
    with pytest.raises(ValueError, match="pl.json: scenario 'paper-large' is built in"):
        scenario_option(str(tmp_path / "pl.json"))


def test_cli_trains_and_scores_a_scenario_file(tmp_path: Path) -> None:
    """`cagekit train --scenario FILE` records the spec in run.json and meta.json; a fresh process scores the
    run with `evaluation.py --scenario FILE` (the file registers the same spec: no conflict)."""
    from cagekit.cli import main

    file = tmp_path / "tiny.yaml"
    file.write_text(TINY_YAML)
    config = tmp_path / "fast.json"
    config.write_text(json.dumps(FAST))
    run = tmp_path / "run"
    assert main(["train", "--algo", "dial-sau", "--scenario", str(file), "--steps", "100", "--config", str(config),
                 "--out", str(run), "--red", "KillChainAgent", "--no-progress"]) == 0
    recorded = json.loads((run / "run.json").read_text())
    assert recorded["scenario"] == "tiny-yaml" and recorded["scenario_spec"]["name"] == "tiny-yaml"
    assert json.loads((run / "meta.json").read_text())["scenario_spec"] == recorded["scenario_spec"]
    scored = subprocess.run([sys.executable, str(ROOT / "evaluation.py"), str(run), str(tmp_path / "eval"),
                             "--scenario", str(file), "--episodes", "1", "--lengths", "5", "--no-progress"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert scored.returncode == 0, scored.stderr
    assert json.loads((tmp_path / "eval" / "summary.json").read_text())["parameters"]["scenario"] == "tiny-yaml"


def test_spec_type_is_a_dataclass_field_list() -> None:
    """Every field of the spec classes has a reader (a field added without one fails here, not in a user's file)."""
    data = spec_to_dict(TINY)
    assert set(data) == {f.name for f in dataclasses.fields(ScenarioSpec)}
