"""A command line that does not compose into a config is one line and exit status 2, with the valid
or closest names (Hydra's own report is several lines, ``logger=null`` a traceback)."""

from __future__ import annotations

import sys

import pytest


@pytest.mark.parametrize(("args", "expected"), [
    (["debug=fast"], "debug=fast: debug has no option 'fast'; options: default | fdr | limit | overfit | profiler"),
    (["model=srdensnet"], "did you mean model=srdensenet?"),
    (["-m", "loss=l1,msee"], "loss=l1,msee: loss has no option 'msee' (did you mean loss=mse?)"),
    (["logger=null"], "logger=null: a config group takes one of its options (csv | many | tensorboard | wandb); to drop"),
    (["trainr.max_steps=3"], "trainr.max_steps: no such option; did you mean trainer? to add a new key write +trainr.max_steps="),
])
def test_a_config_mistake_is_one_line_with_exit_2(args, expected, monkeypatch, capsys, tmp_path):
    from lfmri.cli.train import main

    monkeypatch.setattr(sys, "argv", ["lfmri-train", *args, f"hydra.run.dir={tmp_path / 'run'}",
                                      f"hydra.sweep.dir={tmp_path / 'sweep'}"])
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    with pytest.raises(SystemExit) as stopped:
        main()
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith("lfmri-train: error: ") and expected in err
    assert not (tmp_path / "run").exists() and not (tmp_path / "sweep").exists()
    import os

    assert "HYDRA_FULL_ERROR" not in os.environ


def test_the_template_trainer_options_compose():
    from tests.helpers.config import compose

    assert compose("trainer=gpu").trainer.accelerator == "gpu"
    assert compose("trainer=cpu").trainer.accelerator == "cpu"


@pytest.mark.parametrize(("args", "expected"), [
    (["scale=0"], "lfmri-train: error: scale must be a positive integer, got 0"),
    (["scale=abc"], "lfmri-train: error: scale must be a positive integer, got 'abc'"),
    (["batch_scale=-1"], "lfmri-train: error: batch_scale=-1: must be a positive number (or null: 1)"),
    (["data.patch_size=-4"], "lfmri-train: error: data.patch_size=-4: must be a positive integer"),
    (["data.num_workers=-1"], "lfmri-train: error: data.num_workers=-1: must be 0 (main process) or more"),
])
def test_a_value_a_resolver_or_the_data_module_refuses_is_one_line(args, expected, monkeypatch, capsys, tmp_path):
    from lfmri.cli.train import main

    monkeypatch.setattr(sys, "argv", ["lfmri-train", *args, "trainer.fast_dev_run=true", f"hydra.run.dir={tmp_path / 'run'}"])
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    with pytest.raises(SystemExit) as stopped:
        main()
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and "Traceback" not in err and err.strip().splitlines()[-1] == expected, err[-1500:]
    assert not (tmp_path / "run").exists()  # a fresh run that failed leaves nothing
