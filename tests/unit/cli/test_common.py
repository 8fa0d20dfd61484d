"""``lfmri.cli.common.run_entry``: interrupts and refused option values end in one line, never a traceback."""

from __future__ import annotations

import os
import signal

import pytest
from omegaconf import OmegaConf


@pytest.mark.parametrize("signum", ["SIGTERM", "SIGINT"])
def test_an_interrupted_evaluation_is_one_line_and_cleans_up(tmp_path, capsys, signum):
    """Ctrl-C printed a KeyboardInterrupt traceback; SIGTERM killed evaluate.py mid-write, leaving temporaries."""
    from lfmri.cli.common import run_entry
    from lfmri.files import written_together

    target = tmp_path / "a_sr.nii.gz"

    def task(cfg):
        with written_together({"sr": target}) as staging:
            staging["sr"].write_bytes(b"half")
            os.kill(os.getpid(), getattr(signal, signum))
        raise AssertionError("the signal did not stop the task")

    with pytest.raises(SystemExit) as stopped:
        run_entry("evaluate.py", task, OmegaConf.create({}))
    err = capsys.readouterr().err
    assert stopped.value.code == 128 + getattr(signal, signum) and f"evaluate.py: interrupted ({signum})" in err
    assert list(tmp_path.iterdir()) == [] and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_a_value_a_constructor_refuses_is_the_options_one_line_error(capsys):
    """``train.py scale=abc``: the degradation's ValueError came out as Hydra's multi-line error, exit 1."""
    from hydra.utils import instantiate

    from lfmri.cli.common import run_entry

    def task(cfg):
        return instantiate(cfg.degradation)

    cfg = OmegaConf.create({"degradation": {"_target_": "lfmri.degrade.degradations.KSpaceDegradation", "scale": "abc", "hr_size": 32}})
    with pytest.raises(SystemExit) as stopped:
        run_entry("train.py", task, cfg)
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and "train.py: error: degradation.scale must be a positive integer, got 'abc'" in err
