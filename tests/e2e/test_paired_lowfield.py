"""train.py / evaluate.py on generated paired collections, as a user runs them; fine-tuning runs."""

from __future__ import annotations

import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from lfmri.checkpoints.load import METADATA_KEY, CheckpointError, load_checkpoint, network_state
from lfmri.models.srdensenet import SRDenseNet
from lfmri.scoring.report import MetricsTable
from lfmri.training.transfer import load_network_weights
from tests.helpers.paired import (
    GRID_OVERRIDES,
    add_volume_faults,
    write_slice_layout,
    write_volume_layout,
)
from tests.helpers.run import check, run_script
from tests.helpers.volumes import write_phantom

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A fast_dev_run of the default model on the volume layout."""
    root = tmp_path_factory.mktemp("paired")
    write_volume_layout(root / "pairs")
    run = root / "run"
    check(run_script("train.py", "data=paired_lowfield", f"data.root={root / 'pairs'}", *GRID_OVERRIDES,
                     "trainer.fast_dev_run=true", f"hydra.run.dir={run}"))
    return root, run


def test_train_on_paired_volumes_then_evaluate_its_checkpoint(pretrained, tmp_path):
    root, run = pretrained
    for rel in ["checkpoints/last.ckpt", "split.json", "test/metrics.csv"]:
        assert (run / rel).is_file(), rel
    meta = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)[METADATA_KEY]
    assert meta["config"]["data"]["_target_"].endswith("PairedLowFieldDataModule") and meta["split"]["test"]
    assert set(MetricsTable.read_csv(run / "test" / "metrics.csv").methods) == {"srdensenet", "zerofill", "bicubic"}
    out = tmp_path / "eval"
    check(run_script("evaluate.py", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}", f"output_dir={out}"))
    subject = meta["split"]["test"][0]["subject"]
    sr, lr = nib.load(out / f"{subject}_sr.nii.gz"), nib.load(out / f"{subject}_lr.nii.gz")
    assert sr.shape == (19, 22, 30) and np.allclose(sr.header.get_zooms(), (1, 1, 1))
    assert lr.shape == (19, 11, 15) and np.allclose(lr.header.get_zooms(), (1, 2, 2))  # x2 in the sagittal plane
    # scored on the measured low field: the LR written is the real one, not a degraded HR
    table = MetricsTable.read_csv(out / "metrics.csv")
    assert {r["subject"] for r in table.rows} == {subject}


def test_pre_upsampled_multi_slice_model_trains_on_slices_mixed_with_simulated_pairs_and_evaluates(tmp_path):
    """SRCNN reading one neighbour on each side, axial slices (the 5 mm axis): the real and the
    simulated pairs carry neighbours a low-field slice apart through training, test and evaluate."""
    write_slice_layout(tmp_path / "pairs")
    for i in range(2):
        write_phantom(tmp_path / "ixi" / f"IXI00{i}-T1.nii.gz", shape=(19, 22, 30), seed=20 + i, affine=np.eye(4))
    run = tmp_path / "run"
    proc = check(run_script("train.py", "data=paired_lowfield", "data.layout=slices", f"data.root={tmp_path / 'pairs'}", "model=srcnn",
                            "degradation=lowfield", f"data.synthetic_pattern={tmp_path / 'ixi'}/*.nii.gz", *GRID_OVERRIDES,
                            "context_slices=1", "data.slice_axis=2", "trainer.fast_dev_run=true", f"hydra.run.dir={run}"))
    assert "simulated low-field pair" in proc.stderr + proc.stdout
    assert "srcnn" in MetricsTable.read_csv(run / "test" / "metrics.csv").methods
    out = tmp_path / "eval"
    check(run_script("evaluate.py", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}", f"output_dir={out}", "classical=[]"))
    assert "srcnn" in MetricsTable.read_csv(out / "metrics.csv").methods


def test_a_faulty_collection_stops_in_one_line_with_the_report_in_a_file(tmp_path):
    root = write_volume_layout(tmp_path / "pairs")
    add_volume_faults(root)
    proc = run_script("train.py", "data=paired_lowfield", f"data.root={root}", *GRID_OVERRIDES, "trainer.fast_dev_run=true",
                      f"hydra.run.dir={tmp_path / 'run'}")
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    line = next(line for line in proc.stderr.splitlines() if "pair validation of" in line)
    assert "data.strict=false" in line and "3 subject(s)" in line
    report = Path(re.search(r"the full report: (\S+?);", line)[1])
    for text in ("only_lf", "present in lf only", "nan_sub.nii.gz", "NaN/Inf", "broken.nii.gz"):
        assert text in report.read_text(), text
    report.unlink()
    assert not (tmp_path / "run").exists()  # a refused run leaves no folder


def test_fine_tuning_starts_from_the_checkpoint_with_frozen_layers(pretrained, tmp_path):
    root, run = pretrained
    ckpt = run / "checkpoints" / "last.ckpt"
    tuned = tmp_path / "tuned"
    check(run_script("train.py", "data=paired_lowfield", f"data.root={root / 'pairs'}", *GRID_OVERRIDES, "trainer.fast_dev_run=true",
                     f"init_from={ckpt}", "freeze=[low_level,blocks.0]", f"hydra.run.dir={tuned}"))
    before = network_state(load_checkpoint(ckpt))
    after = network_state(load_checkpoint(tuned / "checkpoints" / "last.ckpt"))
    frozen = [k for k in before if k.startswith(("low_level.", "blocks.0."))]
    assert frozen and all(torch.equal(before[k], after[k]) for k in frozen)  # loaded, then not trained
    assert not all(torch.equal(before[k], after[k]) for k in before if k.startswith("reconstruction."))  # trained


def test_a_checkpoint_of_another_shape_names_the_layers_that_differ(pretrained):
    _, run = pretrained
    with pytest.raises(CheckpointError, match=r"blocks\.0\.convs\.0\.weight: checkpoint \(16, 16, 3, 3\) vs network \(8, 16, 3, 3\)"):
        load_network_weights(SRDenseNet(scale=2, growth=8), run / "checkpoints" / "last.ckpt")
    with pytest.raises(CheckpointError, match=r"layers missing from the checkpoint: \['upsample.2.bias'"):
        load_network_weights(SRDenseNet(scale=4), run / "checkpoints" / "last.ckpt")  # x4: a second upsampling stage


def test_finetune_recipe_composes(tmp_path):
    proc = check(run_script("train.py", "experiment=lowfield_finetune", "data.root=/data/pairs", "init_from=/runs/pre.ckpt",
                            "--cfg", "job"))
    assert "init_from: /runs/pre.ckpt" in proc.stdout and "- blocks.0" in proc.stdout
    assert "PairedLowFieldDataModule" in proc.stdout and "LowFieldDegradation" in proc.stdout and "lr: 2.0e-05" in proc.stdout
