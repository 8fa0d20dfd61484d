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
