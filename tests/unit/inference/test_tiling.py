"""``lfmri.inference.tiling``: tiles with enough overlap equal the whole slice."""

from __future__ import annotations

import pytest
import torch

from lfmri.inference.tiling import tiled


@pytest.mark.parametrize("size, tile", [((70, 53), 24), ((33, 40), 28)])
def test_tiled_prediction_equals_whole_slice_prediction(size, tile):
    torch.manual_seed(0)
    from lfmri.inference.network import predict
    from lfmri.models.espcn import ESPCN

    net = ESPCN(scale=2).eval()  # receptive radius 4 LR pixels
    x = torch.rand(2, 1, *size)
    with torch.no_grad():
        whole = predict(net, x)
        pieces = tiled(lambda t: predict(net, t), x, scale=2, tile=tile, overlap=16)
    assert pieces.shape == whole.shape
    assert (pieces - whole).abs().max() < 1e-5


def test_tiling_with_too_little_overlap_differs_and_bad_overlap_is_refused():
    torch.manual_seed(0)
    from lfmri.models.vdsr import VDSR

    net = VDSR().eval()  # receptive radius 20 pixels: overlap 8 cannot be exact
    x = torch.rand(1, 1, 48, 48)
    with torch.no_grad():
        assert (tiled(net, x, 1, 24, 8) - net(x)).abs().max() > 1e-4
    with pytest.raises(ValueError, match="tile_overlap"):
        tiled(net, x, 1, 16, 16)
