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


def test_orthogonal_views_are_large_show_the_sagittal_anterior_left_and_name_slices_by_file_index():
    import matplotlib.pyplot as plt

    from lfmri.scoring.figures import orthogonal_panels

    data = np.zeros((20, 30, 24), dtype=np.float32)
    data[:, 20:, :] = 1.0  # the anterior third (canonical y high) is bright
    fig = orthogonal_panels({"scan": (data, np.ones(3))}, axcodes=("L", "P", "S"))
    sagittal, coronal, axial = fig.axes[:3]
    shown = sagittal.images[0].get_array()
    assert shown[:, :10].mean() == 1.0 and shown[:, -10:].mean() == 0.0  # anterior on the left
    left = min(sagittal.texts, key=lambda t: t.get_position()[0]).get_text()
    assert left == "A"
    # the file is L-P-S: canonical x (R+) is the file's i reversed, canonical y (A+) its j reversed
    assert sagittal.get_title() == "scan: sagittal, i=9" and coronal.get_title() == "scan: coronal, j=14"
    assert axial.get_title() == "scan: axial, k=12"
    fig.canvas.draw()
    boxes = [ax.get_window_extent() for ax in fig.axes[:3]]
    assert min(max(b.width, b.height) for b in boxes) > 250  # pixels per view at the saved 100 dpi (was ~180)
    plt.close(fig)


def test_difference_map_compares_the_scan_where_it_sits_in_the_world():
    from lfmri.scoring.figures import difference_on_grid

    scan = np.random.default_rng(0).random((8, 8, 4)).astype(np.float32)
    coarse = np.diag([2.0, 2.0, 2.0, 1.0])
    fine = np.diag([1.0, 1.0, 2.0, 1.0])
    fine[:2, 3] = -0.5  # the x2 grid's voxel centres, half a fine voxel before the coarse ones
    upsampled = np.repeat(np.repeat(scan, 2, axis=0), 2, axis=1)
    difference = difference_on_grid(upsampled, fine, scan, coarse)
    assert difference.shape == upsampled.shape
    assert difference[4:12, 4:12].mean() < np.abs(upsampled - upsampled.mean()).mean()  # aligned: small, not noise


def test_views_window_the_brain_zoom_where_the_change_is_and_label_the_difference_bar():
    import matplotlib.pyplot as plt

    from lfmri.scoring.figures import intensity_window, orthogonal_panels
    from tests.helpers.volumes import phantom

    scan = phantom((40, 48, 24))
    scan[30:34, 30:34, 10:14] = 3 * scan.max()  # a lesion far above everything else
    vmin, vmax = intensity_window(scan)
    brain = scan[scan > 0.1 * np.percentile(scan, 99)]
    assert 0 < vmin < vmax < scan.max() / 2  # the lesion does not set the window ...
    assert np.mean(brain > vmax) <= 0.006  # ... and at most the brightest 0.5 % of the brain saturates
    change = np.zeros_like(scan)
    change[4:10, 36:44, :] = 50.0  # where SR and scan differ: near the anterior left edge
    fig = orthogonal_panels({"scan": (scan, np.ones(3)), "SR": (scan, np.ones(3)), "|SR - scan|": (change, np.ones(3))},
                            colour_maps=("|SR - scan|",), map_unit="scan intensity units", inset_from="|SR - scan|")
    for row in (0, 1):
        axial = fig.axes[3 * row + 2]
        assert axial.images[0].get_clim() == (vmin, vmax)
        inset = next(child for child in axial.child_axes)
        # the change sits at canonical x 4-10, y 36-44: displayed (rot90) rows 48-44..48-36, columns 4-10
        (x0, x1), (y1, y0) = inset.get_xlim(), inset.get_ylim()
        assert x0 <= 4 and x1 >= 9 and y0 <= 48 - 44 and y1 >= 48 - 37, (inset.get_xlim(), inset.get_ylim())
    labels = [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel()]
    assert "|SR - scan| (scan intensity units)" in labels
    plt.close(fig)
