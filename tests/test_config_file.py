"""Hyperparameter files and the learners' config dataclasses (one shared base)."""

from __future__ import annotations

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
    with pytest.raises(ValueError, match="cannot read config file .*bad.json"):
        load_mapping(bad)
    listed = tmp_path / "list.yaml"
    listed.write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="must hold a mapping of hyperparameters, got list"):
        load_mapping(listed)
    with pytest.raises(ValueError, match="cannot read config file .*missing.yaml"):
        load_mapping(tmp_path / "missing.yaml")


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
