"""``lfmri.inference.volume``: written outputs keep the input's intensity range."""

from __future__ import annotations

import nibabel as nib
import numpy as np

from lfmri.data.normalize import Intensity
from lfmri.inference.volume import VolumeLoop


def test_images_are_clipped_to_the_input_window_and_maps_are_not(tmp_path):
    """Overshoot (negative magnitudes, ringing above the brightest tissue) never reaches the file;
    a standard-deviation map is scaled back but not clipped."""
    image = np.linspace(-0.3, 1.4, 24, dtype=np.float32).reshape(2, 3, 4)
    paths = {"sr": tmp_path / "sr.nii.gz", "uncertainty": tmp_path / "std.nii.gz"}
    VolumeLoop.write(paths, {"sr": image, "uncertainty": image}, {k: np.eye(4) for k in paths}, ("R", "A", "S"),
                     Intensity(10.0, 510.0), maps=("uncertainty",))
    sr = nib.load(paths["sr"]).get_fdata()
    assert sr.min() == 10.0 and sr.max() == 510.0
    inside = (image >= 0) & (image <= 1)
    np.testing.assert_allclose(sr[inside], 10.0 + 500.0 * image[inside], rtol=1e-6)
    np.testing.assert_allclose(nib.load(paths["uncertainty"]).get_fdata(), 500.0 * image, rtol=1e-6)
