"""``lfmri.scoring.figures``: panels keep the physical aspect and label the orientation."""

from __future__ import annotations

import numpy as np
import pytest


def test_comparison_panels_keep_the_physical_aspect_and_label_orientation():
    import matplotlib.pyplot as plt

    from lfmri.scoring.figures import comparison_panels

    hr = np.zeros((40, 30), dtype=np.float32)
    hr[10:30, 5:25] = 0.8
    fig = comparison_panels(hr, {"LR": hr[::2, ::2], "model": hr}, {"model": {"PSNR": 30.0, "SSIM": 0.9}},
                            pixel_sizes=(1.0, 1.5), axes=(0, 1))
    top = fig.axes[0]
    assert top.get_aspect() == pytest.approx(1.5)  # rows (the slice's second axis) are 1.5 mm, columns 1 mm
    height, width = np.diff(top.get_ylim())[0], np.diff(top.get_xlim())[0]
    assert abs(height) == pytest.approx(30) and abs(width) == pytest.approx(40)  # turned for display: 30 rows, 40 columns
    fig.canvas.draw()
    box = top.get_window_extent()
    assert box.height / box.width == pytest.approx(30 * 1.5 / (40 * 1.0), rel=0.03)  # 45 mm high, 40 mm wide on screen
    assert {t.get_text() for t in top.texts} == {"L", "R", "A", "P"}
    assert "PSNR 30" in fig.axes[1].get_title()
    plt.close(fig)
