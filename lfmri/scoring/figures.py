"""Comparison figures: every method beside the reference, a zoomed inset and error maps."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on clusters and CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from lfmri.geometry.nifti import CANONICAL, file_index  # noqa: E402

FILE_AXES = "ijk"  # voxel axes of a NIfTI file, as viewers name them


def save_figure(fig, path: str | Path, title: str = "", dpi: int = 100) -> Path:
    """Title, write (creating the folder) and close a figure."""
    if title:
        fig.suptitle(title, fontsize=10)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return path


def display(image: np.ndarray) -> np.ndarray:
    """Rotate a slice of a canonical (RAS+) volume so the second in-plane axis points up."""
    return np.rot90(np.asarray(image, dtype=np.float32))


def nearest_resize(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize for showing an LR image beside HR ones."""
    rows = np.minimum((np.arange(shape[0]) * image.shape[0]) // shape[0], image.shape[0] - 1)
    cols = np.minimum((np.arange(shape[1]) * image.shape[1]) // shape[1], image.shape[1] - 1)
    return image[np.ix_(rows, cols)]


def auto_inset(reference: np.ndarray, threshold: float = 0.05) -> tuple[int, int, int]:
    """A square (row, col, size) window, a quarter of the slice wide, centred on the anatomy."""
    size = max(8, min(reference.shape) // 4)
    rows, cols = np.nonzero(reference > threshold)
    cy, cx = (int(rows.mean()), int(cols.mean())) if len(rows) else (reference.shape[0] // 2, reference.shape[1] // 2)
    y0 = int(np.clip(cy - size // 2, 0, reference.shape[0] - size))
    x0 = int(np.clip(cx - size // 2, 0, reference.shape[1] - size))
    return y0, x0, size


# canonical (RAS+) voxel axis -> labels of its (low, high) ends
AXIS_ENDS = {0: ("L", "R"), 1: ("P", "A"), 2: ("I", "S")}


def label_orientation(ax, axes: tuple[int, int], fontsize: int = 7, mirrored: bool = False) -> None:
    """L/R, A/P, S/I at the edges of a :func:`display`-ed slice whose in-plane canonical axes are
    ``axes`` (columns run along ``axes[0]``, low end left, or right when ``mirrored``; rows along
    ``axes[1]``, high end up)."""
    (left, right), (bottom, top) = AXIS_ENDS[axes[0]], AXIS_ENDS[axes[1]]
    if mirrored:
        left, right = right, left
    style = dict(transform=ax.transAxes, color="yellow", fontsize=fontsize, fontweight="bold")
    ax.text(0.02, 0.5, left, ha="left", va="center", **style)
    ax.text(0.98, 0.5, right, ha="right", va="center", **style)
    ax.text(0.5, 0.98, top, ha="center", va="top", **style)
    ax.text(0.5, 0.02, bottom, ha="center", va="bottom", **style)


def slice_name(axcodes: tuple[str, ...], shape: tuple[int, ...], axis: int, index: int) -> str:
    """``k=45``: canonical slice ``index`` along ``axis`` as the file's own voxel index."""
    file_axis, at = file_index(axcodes, shape, axis, index)
    return f"{FILE_AXES[file_axis]}={at}"


def comparison_figure(
    path: str | Path,
    reference: np.ndarray,
    images: Mapping[str, np.ndarray],
    scores: Mapping[str, Mapping[str, float]] | None = None,
    title: str = "",
    reference_name: str = "HR",
    error_scale: float = 0.2,
    pixel_sizes: tuple[float, float] | None = None,
    axes: tuple[int, int] | None = None,
) -> Path:
    """Save :func:`comparison_panels` to ``path``."""
    fig = comparison_panels(reference, images, scores, reference_name, error_scale, pixel_sizes, axes)
    return save_figure(fig, path, title, dpi=110)


def comparison_panels(
    reference: np.ndarray,
    images: Mapping[str, np.ndarray],
    scores: Mapping[str, Mapping[str, float]] | None = None,
    reference_name: str = "HR",
    error_scale: float = 0.2,
    pixel_sizes: tuple[float, float] | None = None,
    axes: tuple[int, int] | None = None,
):
    """A grid: row 1 the images, row 2 a zoomed inset, row 3 |image - reference|.

    ``images`` maps column titles to 2D arrays (LR images are shown nearest-upsampled); ``scores``
    adds e.g. PSNR/SSIM under a title. Arrays are in slice orientation and rotated for display.
    ``pixel_sizes`` (mm along the slice's first and second axis, on the reference's grid) draws
    pixels in their physical aspect, so non-square voxels do not distort the anatomy; ``axes``
    (the slice's canonical RAS+ axes, e.g. ``(0, 1)`` for an axial slice) adds L/R, P/A, I/S labels.
    (Drawn with matplotlib rather than nilearn's plot_anat: the grid of methods, insets and error
    maps on the exact slice grid the metrics were computed on has no nilearn counterpart.)
    """
    scores = scores or {}
    aspect = float(pixel_sizes[1]) / float(pixel_sizes[0]) if pixel_sizes is not None else 1.0
    ref = display(reference)
    columns = {name: display(nearest_resize(np.asarray(img), reference.shape)) for name, img in images.items()}
    columns[reference_name] = ref
    y0, x0, size = auto_inset(ref)
    n = len(columns)
    height = 2.6 * min(2.0, max(0.5, aspect * ref.shape[0] / ref.shape[1]))
    fig, grid = plt.subplots(3, n, figsize=(2.6 * n, 3 * height + 0.4), squeeze=False)
    for col, (name, img) in enumerate(columns.items()):
        label = name
        if name in scores:
            label += "\n" + "  ".join(f"{k} {v:.4g}" for k, v in scores[name].items())
        grid[0, col].imshow(img, cmap="gray", vmin=0, vmax=1, aspect=aspect)
        grid[0, col].add_patch(Rectangle((x0, y0), size, size, fill=False, edgecolor="yellow", linewidth=1))
        grid[0, col].set_title(label, fontsize=8)
        if axes is not None:
            label_orientation(grid[0, col], axes)
        grid[1, col].imshow(img[y0 : y0 + size, x0 : x0 + size], cmap="gray", vmin=0, vmax=1, aspect=aspect)
        if name == reference_name:
            grid[2, col].axis("off")
        else:
            err = grid[2, col].imshow(np.abs(img - ref), cmap="inferno", vmin=0, vmax=error_scale, aspect=aspect)
        for row in range(3):
            grid[row, col].set_xticks([])
            grid[row, col].set_yticks([])
    grid[1, 0].set_ylabel("inset", fontsize=8)
    grid[2, 0].set_ylabel(f"|error| (0-{error_scale:g})", fontsize=8)
    if n > 1:  # the colour bar sits in the empty error cell of the reference column
        fig.colorbar(err, cax=grid[2, -1].inset_axes([0.05, 0.05, 0.08, 0.9]))
    return fig


# view -> its canonical in-plane axes (columns, rows) as drawn by orthogonal_views
VIEW_AXES = {"sagittal": (1, 2), "coronal": (0, 2), "axial": (0, 1)}
# views drawn with their columns reversed: the sagittal with anterior on the left, as radiology
# viewers (and FreeView, ITK-SNAP, FSLeyes) show it; nilearn's plot_anat puts anterior on the right
MIRRORED = {"sagittal"}
VIEW_INCHES = 4.2  # per view: about 400 px at 100 dpi


def difference_on_grid(image: np.ndarray, affine: np.ndarray, other: np.ndarray, other_affine: np.ndarray) -> np.ndarray:
    """``|image - other|`` on ``image``'s grid, ``other`` resampled there (linear) through both
    affines (nibabel), so scan and SR are compared where they sit in the world, whatever their grids."""
    from nibabel.processing import resample_from_to
    import nibabel as nib

    moved = resample_from_to(nib.Nifti1Image(np.asarray(other, dtype=np.float32), other_affine),
                             (image.shape, affine), order=1, mode="nearest")
    return np.abs(np.asarray(image, dtype=np.float32) - moved.get_fdata(dtype=np.float32))


def intensity_window(data: np.ndarray, percentiles: tuple[float, float] = (1.0, 99.5)) -> tuple[float, float]:
    """The grey-scale window of a head volume: ``percentiles`` of its brain voxels (above a tenth of
    its 99th percentile, i.e. not the background), so white matter is not saturated and a lesion
    above the window still stands out; (min, max) when that window is empty."""
    data = np.asarray(data, dtype=np.float32)
    finite = data[np.isfinite(data)]
    if not finite.size:
        return 0.0, 1.0
    foreground = finite[finite > 0.1 * float(np.percentile(finite, 99))]
    low, high = (float(v) for v in np.percentile(foreground if foreground.size else finite, percentiles))
    if not high > low:
        low, high = float(finite.min()), float(finite.max())
    return (low, high) if high > low else (low, low + 1.0)


def change_window(change: np.ndarray, size: int) -> tuple[int, int]:
    """(row, col) of the ``size`` x ``size`` window of a 2-D map holding the most change (a box
    filter, scipy's, then its maximum): where the zoomed inset looks."""
    from scipy.ndimage import uniform_filter

    change = np.nan_to_num(np.asarray(change, dtype=np.float32))
    size = max(1, min(size, *change.shape))
    summed = uniform_filter(change, size=size, mode="constant")
    cy, cx = np.unravel_index(int(np.argmax(summed)), summed.shape)
    return (int(np.clip(cy - size // 2, 0, change.shape[0] - size)), int(np.clip(cx - size // 2, 0, change.shape[1] - size)))


def orthogonal_views(
    path: str | Path,
    volumes: Mapping[str, tuple[np.ndarray, np.ndarray]],
    title: str = "",
    colour_maps: Sequence[str] = (),
    axcodes: tuple[str, ...] = CANONICAL,
    **options,
) -> Path:
    """Save :func:`orthogonal_panels` to ``path`` (``options``: its keyword arguments)."""
    return save_figure(orthogonal_panels(volumes, colour_maps, axcodes, **options), path, title, dpi=100)


def orthogonal_panels(
    volumes: Mapping[str, tuple[np.ndarray, np.ndarray]],
    colour_maps: Sequence[str] = (),
    axcodes: tuple[str, ...] = CANONICAL,
    window: tuple[float, float] | None = None,
    map_unit: str = "",
    inset_from: str | None = None,
):
    """Sagittal, coronal and axial views through the centre of canonical (RAS+) volumes.

    ``volumes`` maps row titles to ``(data, voxel_sizes)``; each row is drawn with its own voxel
    aspect, so an LR scan with thick slices and its SR output show the same anatomy at the same
    place and size: the quickest check that orientation and geometry survived. Grey rows share one
    intensity window (``window``, default :func:`intensity_window` of the first grey row: the
    1st-99.5th percentile of the brain, so white matter is not saturated). Rows named in
    ``colour_maps`` (a difference, consistency error, uncertainty) are drawn in colour on their own
    scale, each with a colour bar labelled ``map_unit``. ``inset_from`` names the colour row whose
    axial view decides where each grey axial view gets a zoomed inset (matplotlib's
    ``indicate_inset_zoom``): the window with the most change. Each view names its slice by the
    voxel index of the file (``axcodes``: the orientation of the file the volumes came from, and are
    written in), as a viewer shows it.
    """
    grey = [data for name, (data, _) in volumes.items() if name not in colour_maps]
    vmin, vmax = window if window is not None else intensity_window(grey[0]) if grey else (0.0, 1.0)
    zoom_at = None
    if inset_from in volumes:
        change = volumes[inset_from][0]
        axial = display(change[:, :, change.shape[2] // 2])
        size = max(8, min(axial.shape) // 4)
        zoom_at = (*change_window(axial, size), size, axial.shape)  # on the displayed axial view of that row
    fig, axes = plt.subplots(len(volumes), 3, figsize=(3 * VIEW_INCHES, (VIEW_INCHES + 0.3) * len(volumes)), squeeze=False)
    for row, (name, (data, zooms)) in enumerate(volumes.items()):
        centre = [n // 2 for n in data.shape]
        views = [  # (image rows = second axis after rot90, columns), voxel sizes (vertical, horizontal)
            ("sagittal", 0, data[centre[0], :, :], (zooms[2], zooms[1])),
            ("coronal", 1, data[:, centre[1], :], (zooms[2], zooms[0])),
            ("axial", 2, data[:, :, centre[2]], (zooms[1], zooms[0])),
        ]
        scaled = name in colour_maps
        for col, (view, axis, image, (dy, dx)) in enumerate(views):
            ax = axes[row, col]
            shown = display(image)
            if view in MIRRORED:
                shown = shown[:, ::-1]
            if scaled:  # a map (|difference|, std): its own colour scale, up to its 99th percentile
                top = float(np.percentile(data, 99)) or 1.0
                drawn = ax.imshow(shown, cmap="inferno", vmin=0, vmax=top, aspect=dy / dx)
                if col == 2:
                    bar = fig.colorbar(drawn, ax=ax, fraction=0.04)
                    bar.set_label(f"{name}{f' ({map_unit})' if map_unit else ''}", fontsize=8)
            else:
                ax.imshow(shown, cmap="gray", vmin=vmin, vmax=vmax, aspect=dy / dx)
                if view == "axial" and zoom_at is not None:
                    _zoomed_inset(ax, shown, zoom_at, vmin, vmax, dy / dx)
            label_orientation(ax, VIEW_AXES[view], fontsize=8, mirrored=view in MIRRORED)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{name}: {view}, {slice_name(axcodes, data.shape, axis, centre[axis])}", fontsize=9)
    return fig


def _zoomed_inset(ax, shown: np.ndarray, zoom_at, vmin: float, vmax: float, aspect: float) -> None:
    """A zoom of ``zoom_at`` = (row, col, size, shape of the view it was found on), moved onto ``shown``'s
    grid (a scan's LR grid is coarser than its SR output's), in the view's upper-right corner."""
    row, col, size, (rows, cols) = zoom_at
    fy, fx = shown.shape[0] / rows, shown.shape[1] / cols
    inset = ax.inset_axes([0.62, 0.62, 0.37, 0.37])
    inset.imshow(shown, cmap="gray", vmin=vmin, vmax=vmax, aspect=aspect)
    inset.set_xlim(col * fx - 0.5, (col + size) * fx - 0.5)
    inset.set_ylim((row + size) * fy - 0.5, row * fy - 0.5)
    inset.set_xticks([])
    inset.set_yticks([])
    ax.indicate_inset_zoom(inset, edgecolor="yellow")
