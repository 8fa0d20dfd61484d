"""``lfmri.run_options``: predict and evaluate run networks with one set of options and defaults."""

from __future__ import annotations

import dataclasses

import pytest
from omegaconf import OmegaConf

from lfmri.cli.predict import parse_args
from lfmri.errors import ConfigError
from lfmri.inference.predictor import PredictConfig
from lfmri.run_options import RunOptions
from tests.helpers.config import CONF, evaluate_config

NAMES = [f.name for f in dataclasses.fields(RunOptions)]


def test_evaluate_yaml_lists_every_run_option_with_its_default():
    listed = OmegaConf.to_container(OmegaConf.load(CONF / "evaluate.yaml"))
    assert {name: listed.get(name, "<missing>") for name in NAMES} == dataclasses.asdict(RunOptions())


def test_predict_takes_the_same_options_with_the_same_defaults():
    assert issubclass(PredictConfig, RunOptions)
    parsed = parse_args(["ckpt_path=x.ckpt", "inputs=a.nii.gz", "output_dir=out"])
    assert {name: getattr(parsed, name) for name in NAMES} == dataclasses.asdict(RunOptions())


def test_evaluate_config_reads_as_run_options_and_left_out_keys_take_the_defaults():
    assert RunOptions.from_config(evaluate_config(precision="bf16", tile_size=64)) == RunOptions(precision="bf16", tile_size=64)
    assert RunOptions.from_config({"batch_size": 2, "output_dir": "x"}) == RunOptions(batch_size=2)


def test_a_value_of_the_wrong_type_names_the_option():
    with pytest.raises(ConfigError, match="'batch_size'"):
        RunOptions.from_config({"batch_size": "many"})
