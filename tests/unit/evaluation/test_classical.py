"""``lfmri.evaluation.classical``: the 3D denoiser rows of evaluate's tables, computed once per volume."""

from __future__ import annotations

import numpy as np
import torch

from lfmri.data.normalize import Intensity
from lfmri.degrade.degradations import KSpaceDegradation
from lfmri.degrade.denoise3d import NonLocalMeans3D
from lfmri.evaluation.evaluator import EvalVolume, Evaluator
from lfmri.geometry.nifti import Volume
from lfmri.models.espcn import ESPCN
from lfmri.run_options import RunOptions
from lfmri.scoring.report import MetricsTable
from tests.helpers.volumes import phantom


class CountingNLM(NonLocalMeans3D):
    """Non-local means that counts the volumes it is given (one per evaluated volume)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[int, ...]] = []

    def __call__(self, volume, sigmas):
        self.calls.append(tuple(volume.shape))
        return super().__call__(volume, sigmas)


def noisy_volume(slices: int = 10) -> EvalVolume:
    data = (phantom((48, 48, slices)) / 1000).astype("float32")
    volume = Volume(data, np.diag([1.0, 1.0, 2.0, 1.0]), "x.nii.gz", ("R", "A", "S"))
    return EvalVolume("x", "x", volume, Intensity(0.0, 1.0), 0, slices, np.arange(1, slices - 1))


def evaluator(classical) -> Evaluator:
    torch.manual_seed(0)
    degradation = KSpaceDegradation(scale=2, hr_size=None, noise_std=(0.08, 0.1))
    ev = Evaluator({"net": ESPCN(scale=2).eval()}, degradation, slice_axis=2, seed=0,
                   options=RunOptions(device="cpu", precision="fp32", batch_size=3), classical=classical)
    ev.progress = False
    return ev


def test_the_classical_row_runs_once_per_volume_and_beats_zero_fill_on_a_noisy_phantom():
    nlm = CountingNLM()
    ev = evaluator({"nlm3d": nlm})
    outputs, table = ev.run_volume(noisy_volume())
    assert nlm.calls == [(10, 48, 48)]  # the whole zero-filled volume at once, not one call per batch of 3
    means = table.means()
    assert list(means) == ["net", "zerofill", "bicubic", "nlm3d"]
    assert means["nlm3d"]["psnr_brain"] > means["zerofill"]["psnr_brain"] + 0.3
    assert outputs["nlm3d"].shape == outputs["zerofill"].shape
    # the rows score the same slices as every other method
    slices = {m: sorted(r["slice"] for r in table.rows if r["method"] == m) for m in means}
    assert slices["nlm3d"] == slices["zerofill"] == list(range(1, 9))


def test_the_classical_input_is_exactly_the_tables_zero_fill():
    """Same seeded noise as the batched loop: an identity 'denoiser' reproduces the zero-fill row."""

    class Identity(NonLocalMeans3D):
        def denoise(self, volume, sigma):
            return volume

    outputs, table = evaluator({"same": Identity()}).run_volume(noisy_volume(6))
    np.testing.assert_allclose(outputs["same"], outputs["zerofill"], atol=1e-6)


def test_the_classical_row_is_in_the_written_tables_in_brain_first(tmp_path):
    ev = evaluator(["nlm3d"])
    table = ev.run([noisy_volume(6)], tmp_path)
    assert "nlm3d" in MetricsTable.read_csv(tmp_path / "metrics.csv").methods
    markdown = (tmp_path / "metrics.md").read_text()
    header = next(line for line in markdown.splitlines() if line.startswith("| subject |"))
    assert header.index("PSNR brain") < header.index("PSNR (dB)")
    assert "| x | nlm3d |" in markdown and (tmp_path / "x_nlm3d.nii.gz").is_file()
    assert set(table.methods) == {"net", "zerofill", "bicubic", "nlm3d"}
