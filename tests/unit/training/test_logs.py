"""Lightning's noise filters: each drops its one message and nothing else."""

from __future__ import annotations

import shutil
import warnings

import lightning as L
import pytest

from lfmri.training.logs import quiet_lightning

SRUN_HINT = "The `srun` command is available on your system but is not used"


@pytest.mark.parametrize(("in_allocation", "shown"), [(False, False), (True, True)])
def test_srun_hint_is_dropped_outside_slurm_allocations_only(monkeypatch, in_allocation, shown):
    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: "/usr/bin/srun" if name == "srun" else real_which(name, *a, **k))
    for var in ("SLURM_NTASKS", "SLURM_JOB_NAME", "SLURM_JOB_ID"):
        monkeypatch.delenv(var, raising=False)
    if in_allocation:  # inside sbatch/salloc without srun: the hint is right, it stays
        monkeypatch.setenv("SLURM_JOB_ID", "123")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_lightning()
        L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    assert any(SRUN_HINT in str(w.message) for w in caught) is shown


def test_weights_only_notice_of_lightnings_checkpoint_connector_is_dropped_and_nothing_else(caplog):
    import logging

    from lfmri.training.logs import WEIGHTS_ONLY_LOGGER

    quiet_lightning()
    connector = logging.getLogger(WEIGHTS_ONLY_LOGGER)
    with caplog.at_level(logging.INFO, logger=WEIGHTS_ONLY_LOGGER):
        connector.info("`weights_only` was not set, defaulting to `False`.")
        connector.info("Restored all states from the checkpoint at last.ckpt")
    assert [r.getMessage() for r in caplog.records] == ["Restored all states from the checkpoint at last.ckpt"]
