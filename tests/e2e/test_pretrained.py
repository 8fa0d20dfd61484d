"""The networks shipped in ``lfmri/pretrained`` predict a generated volume with the right geometry.

In-process, but a whole volume through the full networks: ``lowfield-sim`` writes the 179 x 221 x 200
3 T grid its card names (about a minute on 2 CPU cores).
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from lfmri.checkpoints.load import METADATA_KEY, load_checkpoint
from lfmri.cli.predict import run_predict
from lfmri.inference.predictor import PredictConfig
from lfmri.pretrained import checkpoint_path
from tests.helpers.checkpoints import SHIPPED
from tests.helpers.volumes import oblique_affine, write_phantom

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_network_predicts_a_generated_volume_with_the_right_geometry(name, tmp_path):
    src = write_phantom(tmp_path / "scan.nii.gz", shape=(40, 48, 20), affine=oblique_affine())
    done, failed = run_predict(PredictConfig(pretrained=name, inputs=[str(src)], output_dir=str(tmp_path / "out"),
                                             progress=False, preview=False))
    assert not failed, failed
    img_in, img_out = nib.load(src), nib.load(done[str(src)]["sr"])
    assert nib.aff2axcodes(img_out.affine) == nib.aff2axcodes(img_in.affine)
    data = img_out.get_fdata()
    assert np.isfinite(data).all() and data.max() > 0
    card = load_checkpoint(checkpoint_path(name))[METADATA_KEY]
    zooms_in, zooms_out = np.array(img_in.header.get_zooms()), np.array(img_out.header.get_zooms())
    if "hf_spacing" in card["config"]["data"]:  # paired low-field layout: the 3T grid
        assert np.allclose(sorted(zooms_out), sorted(card["config"]["data"]["hf_spacing"]), atol=1e-4)
    else:  # axial slices (canonical axis 2 = stored axis 1 here) at twice the in-plane resolution
        assert np.allclose(zooms_out[[0, 2]], zooms_in[[0, 2]] / 2, rtol=0.3) and np.isclose(zooms_out[1], zooms_in[1])
