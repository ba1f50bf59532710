"""Hyperparameter files and the learners' config dataclasses (one shared base)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cagekit.agents.config_file import HyperparameterConfig, load_mapping
from cagekit.agents.dial import DialConfig
from cagekit.agents.qmix import QmixConfig


@pytest.mark.parametrize(("cls", "field", "value", "learner"), [(DialConfig, "hidden", 32, "DIAL"),
                                                                 (QmixConfig, "rnn_hidden", 32, "QMix")])
def test_config_from_every_kind_of_source(tmp_path, cls, field, value, learner):
    assert issubclass(cls, HyperparameterConfig)
    built = cls.from_dict({field: value})
    assert getattr(built, field) == value
    assert cls.coerce(built) is built
    assert cls.coerce(None) == cls()
    assert cls.coerce({field: value}) == built
    yml = tmp_path / "c.yaml"
    yml.write_text(f"{field}: {value}\n")
    assert cls.coerce(str(yml)) == built and cls.coerce(yml) == built
    assert cls.from_dict(built.to_dict()) == built  # the round trip checkpoints rely on
    with pytest.raises(ValueError, match=f"unknown {learner} config key.*'nope'.*valid:.*{field}"):
        cls.coerce({"nope": 1})
    with pytest.raises(TypeError, match=f"a {learner} config must be a {cls.__name__}, a mapping, a file's path"):
        cls.coerce(32)  # not taken for a path


def test_load_mapping_names_the_file_and_the_problem(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="config file .*bad.json is not valid JSON"):
        load_mapping(bad)
    listed = tmp_path / "list.yaml"
    listed.write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="must hold a mapping of hyperparameters, got list"):
        load_mapping(listed)
    with pytest.raises(ValueError, match="config file .*missing.yaml cannot be read"):
        load_mapping(tmp_path / "missing.yaml")


def test_a_key_given_twice_is_refused_not_overwritten(tmp_path):
    """YAML and JSON parsers keep the last of a key given twice: a config's second `lr:` or a scenario file's second
    `hosts:` silently replaced the first. It is refused, naming the key (and, in YAML, both lines); YAML's merge
    keys (`<<: *base` then `lr: 2`) still override as written."""
    from cagekit.scenarios.files import load_scenario_file

    twice = tmp_path / "twice.yaml"
    twice.write_text("lr: 0.1\ngamma: 0.9\nlr: 0.2\n")
    with pytest.raises(ValueError, match=r"config file .*twice.yaml is not valid YAML: .*key 'lr' is given twice "
                                         r"\(lines 1 and 3\); give each key once"):
        load_mapping(twice)
    (tmp_path / "twice.json").write_text('{"lr": 0.1, "nested": {"a": 1, "a": 2}}')
    with pytest.raises(ValueError, match=r"is not valid JSON: key\(s\) 'a' given twice in one object"):
        load_mapping(tmp_path / "twice.json")
    (tmp_path / "tiny.yaml").write_text("name: tiny\nname: other\n")
    with pytest.raises(ValueError, match=r"scenario file .*tiny.yaml is not valid YAML: .*key 'name' is given twice"):
        load_scenario_file(tmp_path / "tiny.yaml")
    merged = tmp_path / "merged.yaml"
    merged.write_text("base: &b {lr: 1, gamma: 0.5}\nrun:\n  <<: *b\n  lr: 2\n")
    assert load_mapping(merged)["run"] == {"lr": 2, "gamma": 0.5}


def test_yaml_exponents_without_a_dot_are_numbers(tmp_path):
    """PyYAML (YAML 1.1) reads `lr: 3e-4` as the text '3e-4', which was then refused as no number; they are
    read as YAML 1.2 and JSON read them. Text that only starts like a number stays text."""
    yml = tmp_path / "c.yaml"
    yml.write_text("lr: 3e-4\neps_anneal_steps: 5e4\nneg: -1E+2\nplain: 7\nword: 3e4x\n")
    assert load_mapping(yml) == {"lr": 3e-4, "eps_anneal_steps": 50000.0, "neg": -100.0, "plain": 7, "word": "3e4x"}
    (tmp_path / "d.yaml").write_text("lr: 3e-4\neps_anneal_steps: 5e4\n")
    built = DialConfig.coerce(str(tmp_path / "d.yaml"))
    assert (built.lr, built.eps_anneal_steps) == (3e-4, 50000) and isinstance(built.eps_anneal_steps, int)


@pytest.mark.parametrize(("cls", "data", "message"), [
    (DialConfig, {"sigma": "2"}, "DIAL config key 'sigma' must be a finite number, got '2'"),
    (DialConfig, {"hidden": 12.7}, "DIAL config key 'hidden' must be a whole number, got 12.7"),
    (DialConfig, {"gate_messages": "false"}, "DIAL config key 'gate_messages' must be true or false"),
    (QmixConfig, {"lr": float("nan")}, "QMix config key 'lr' must be a finite number"),
    (QmixConfig, {"double_q": 1}, "QMix config key 'double_q' must be true or false, got 1"),
])
def test_a_value_of_the_wrong_type_is_named_not_trained_on(cls, data, message):
    """The text "false" is true to Python and "2" is no number to torch: refused when the config is read."""
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        cls.from_dict(data)


def test_whole_numbers_are_accepted_where_they_mean_the_same():
    config = DialConfig.from_dict({"eps_anneal_steps": 50000.0, "lr": 1, "gate_messages": False})
    assert config.eps_anneal_steps == 50000 and isinstance(config.eps_anneal_steps, int) and config.lr == 1


@pytest.mark.parametrize(("cls", "data", "message"), [
    (DialConfig, {"hidden": 0}, "DIAL config key 'hidden' must be >= 1, got 0"),  # was an IndexError mid-run
    (DialConfig, {"gru_layers": 0}, "DIAL config key 'gru_layers' must be >= 1, got 0"),  # was torch's RuntimeError
    (DialConfig, {"target_update": 0}, "DIAL config key 'target_update' must be >= 1, got 0"),
    (DialConfig, {"eps_start": 5}, "DIAL config key 'eps_start' must be in [0, 1], got 5"),
    (DialConfig, {"eps_end": -0.1}, "DIAL config key 'eps_end' must be in [0, 1], got -0.1"),
    (DialConfig, {"sigma": -1}, "DIAL config key 'sigma' must be >= 0, got -1"),
    (DialConfig, {"lr": 0}, "DIAL config key 'lr' must be > 0, got 0"),
    (DialConfig, {"gamma": 1.5}, "DIAL config key 'gamma' must be in [0, 1], got 1.5"),
    (DialConfig, {"momentum": 1}, "DIAL config key 'momentum' must be in [0, 1), got 1"),
    (DialConfig, {"replay_batches": -1}, "DIAL config key 'replay_batches' must be >= 0, got -1"),
    (DialConfig, {"norm": "group"}, "DIAL config key 'norm' must be 'batch', 'layer' or 'none', got 'group'"),
    (QmixConfig, {"rnn_hidden": 0}, "QMix config key 'rnn_hidden' must be >= 1, got 0"),
    (QmixConfig, {"epsilon_start": 2}, "QMix config key 'epsilon_start' must be in [0, 1], got 2"),
    (QmixConfig, {"epsilon_finish": -1}, "QMix config key 'epsilon_finish' must be in [0, 1], got -1"),
    (QmixConfig, {"lr": -5e-4}, "QMix config key 'lr' must be > 0, got -0.0005"),
    (QmixConfig, {"grad_clip": 0}, "QMix config key 'grad_clip' must be > 0, got 0"),  # clips every gradient to 0
    (QmixConfig, {"gamma": 1.01}, "QMix config key 'gamma' must be in [0, 1], got 1.01"),
])
def test_a_value_out_of_its_range_is_named_not_trained_on(cls, data, message):
    """A zero-sized network failed deep in torch after the run's folder was made; an epsilon of 2 trained."""
    with pytest.raises(ValueError, match=re.escape(message)):
        cls.from_dict(data)


def test_the_defaults_and_the_shipped_configs_are_in_range():
    """The ranges refuse nonsense only: every setting the project documents still loads."""
    assert DialConfig() and QmixConfig()
    configs = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))
    assert configs
    for path in configs:
        DialConfig.from_file(path)
    DialConfig.from_dict({"sigma": 0, "grad_clip": 0, "eps_anneal_steps": 0, "gamma": 0, "eps_start": 1, "eps_end": 0})


@pytest.mark.parametrize(("text", "key", "spelt"), [
    ("1: a\n01: b\n", "1", "'1' and '01'"),
    ("lr: 1\ntrue: 1\nTrue: 2\n", "True", "'true' and 'True'"),
    ("1: a\n0x1: b\n", "1", "'1' and '0x1'"),
])
def test_a_key_written_twice_in_two_spellings_is_refused(tmp_path, text, key, spelt):
    """The YAML duplicate check compared keys as written, so `1:` and `01:` (or `true:` and `True:`), one key
    once read, slipped through and the second value replaced the first."""
    path = tmp_path / "twice.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=re.escape(f"key {key} is given twice (lines {text.count(chr(10)) - 1} and "
                                                   f"{text.count(chr(10))}, written {spelt}); give each key once")):
        load_mapping(path)


def test_a_yaml_error_is_placed_in_the_file_not_in_a_unicode_string(tmp_path):
    """PyYAML placed an error 'in "<unicode string>", line 2' after naming the file: now in the file itself."""
    path = tmp_path / "bad.yaml"
    path.write_text("lr: [\n")
    with pytest.raises(ValueError, match=re.escape(f'in "{path}", line 2, column 1')) as caught:
        load_mapping(path)
    assert "<unicode string>" not in str(caught.value)


def test_unknown_keys_of_mixed_types_are_named(tmp_path):
    """A config with an unknown word and a number for keys (`a:` and `1:`) failed with a TypeError traceback
    ('<' not supported between 'int' and 'str') while its unknown keys were sorted for the message."""
    path = tmp_path / "mixed.yaml"
    path.write_text("a: 1\n1: 2\n")
    with pytest.raises(ValueError, match=re.escape("unknown QMix config key(s) [1, 'a']; valid: ")):
        QmixConfig.from_file(path)
