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
