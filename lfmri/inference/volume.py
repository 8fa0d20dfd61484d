"""The one loop from a volume to written output volumes, run by ``evaluate.py`` and ``lfmri-predict``.

normalised volume -> slices along the training axis -> batches -> network (padded, tiled above
``tile_size``, in the chosen precision: :class:`NetworkRunner`) -> slices put back -> intensity
restored -> affine of the output grid (:func:`lfmri.geometry.affines.output_affines`) -> staged
write (every file of a volume appears, or none does).

What differs between the two callers is only the per-batch step: evaluate degrades HR slices and
scores every method against the reference; predict feeds the scan and adds consistency and
uncertainty maps. Both hand that step to :meth:`VolumeLoop.run` and the outputs to
:meth:`VolumeLoop.write`, so batching, tiling, precision, restoring and writing cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lfmri.degrade.degradations import Degradation
from lfmri.geometry.grid import interpolate_to_grid
from lfmri.geometry.nifti import save_nifti
from lfmri.geometry.slicing import put_slices
from lfmri.inference.network import output_scale, predict
from lfmri.errors import ConfigError
from lfmri.inference.tiling import receptive_radius, tiled
from lfmri.inference.uncertainty import DIHEDRAL, Transform, mirror_shifts, predictive_spread
from lfmri.progress import progress


@dataclass
class NetworkRunner:
    """A network as both entry points run it on slices of any size.

    Args:
        net: the network (``eval()`` mode, on its device).
        forward: what runs ``net`` (memory format, precision, backend), from
            :func:`lfmri.inference.network.network_forward`; ``None`` runs ``net`` itself.
        tile_size: model-input pixels; larger slices are cut into overlapping tiles so memory
            stays bounded (:func:`lfmri.inference.tiling.tiled`).
        tile_overlap: input pixels shared by neighbouring tiles.
        self_ensemble: the output is the mean over the 8 flips and quarter turns of the input,
            each put back on the output grid (8 passes; the "+" of EDSR+). It smooths away
            orientation-dependent errors: +0.08 dB in-brain PSNR for ``srdensenet-kspace-x2`` on
            unseen subjects (docs/models.md, "Trained networks shipped with lfmri").
        degradation: the checkpoint's degradation; where a mirrored input's output lies depends on
            its grid (:func:`lfmri.inference.uncertainty.mirror_shifts`). Needed for
            ``self_ensemble`` and :meth:`spread`.
    """

    net: nn.Module
    forward: Callable[[torch.Tensor], torch.Tensor] | None = None
    tile_size: int = 256
    tile_overlap: int = 32
    self_ensemble: bool = False
    degradation: Degradation | None = None

    def __post_init__(self) -> None:
        if self.self_ensemble and self.degradation is None:
            raise ValueError("self_ensemble needs the checkpoint's degradation (where mirrored outputs lie)")
        if int(self.tile_size) < 1 or not 0 <= int(self.tile_overlap) < int(self.tile_size):
            raise ConfigError(f"tile_size={self.tile_size}, tile_overlap={self.tile_overlap}: need tile_size >= 1 "
                              "and 0 <= tile_overlap < tile_size")
        self.check_tile_size()

    def check_tile_size(self) -> None:
        """Refuse tiles smaller than what the network sees around a pixel, before any volume is read.

        A tile narrower than the receptive field gives every output pixel a padded, wrong context:
        plausible-looking but wrong output. Measured (:func:`lfmri.inference.tiling.receptive_radius`)
        only for tiles below :data:`PROBED_TILES` pixels: no network of lfmri sees that far.
        """
        tile = int(self.tile_size)
        if tile >= PROBED_TILES or isinstance(self.net, nn.Identity):
            return
        multiple = int(getattr(self.net, "size_multiple", 1) or 1)
        size = -(-max(4 * tile + 1, 65) // multiple) * multiple  # wide enough to measure what it refuses
        try:
            was_training = self.net.training
            self.net.eval()
            channels = next((m.in_channels for m in self.net.modules() if hasattr(m, "in_channels")), 1)
            radius = receptive_radius(lambda x: predict(self.net, x.to(next(self.net.parameters()).device)).float().cpu(),
                                      int(channels), size, output_scale(self.net))
            self.net.train(was_training)
        except Exception:  # no parameters, complex input, a size it refuses: not measurable, not refused
            return
        if 2 * radius + 1 > tile:
            raise ConfigError(
                f"tile_size={tile} is smaller than what {type(self.net).__name__} sees around each pixel "
                f"({2 * radius + 1} pixels): tiles would give wrong output; use tile_size >= {2 * radius + 1} (default 256)"
            )

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) -> float32 output, padded to the network's size multiple and cropped back."""
        return self.spread(x)[0] if self.self_ensemble else self.single(x)

    def single(self, x: torch.Tensor) -> torch.Tensor:
        """One pass of the network, whatever ``self_ensemble`` says."""

        def one(tile: torch.Tensor) -> torch.Tensor:
            return predict(self.net, tile, forward=self.forward).float()

        if x.is_complex():  # complex inputs (k-space reading networks) are never tiled
            return one(x)
        return tiled(one, x, output_scale(self.net), self.tile_size, self.tile_overlap)

    def spread(
        self, x: torch.Tensor, transforms: tuple[Transform, ...] = DIHEDRAL, repeats: int = 1
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and std of single passes over ``transforms`` x ``repeats`` (TTA / MC dropout)."""
        scale = output_scale(self.net)
        out_shape = (x.shape[-2] * scale, x.shape[-1] * scale)
        if self.degradation is None:
            raise ValueError("NetworkRunner.spread needs the checkpoint's degradation (where mirrored outputs lie)")
        shifts = mirror_shifts(self.degradation, x.shape, out_shape)
        return predictive_spread(self.single, x, transforms, repeats, shifts)


def carry_out_of_window(excess: torch.Tensor, out_shape, maps=None) -> torch.Tensor:
    """What the normalisation window took from a network's input, carried onto its output grid.

    Networks read their input clipped to the window [0, 1], as in training (the data modules clip
    every volume: :meth:`lfmri.data.normalize.Intensity.apply`); feeding them values of 3 or 4 where
    training never went above 1 would give outputs nobody validated. What the clip took away (zero
    except above the window's top or below its bottom) is carried past the network by this function
    and added to its output, so a lesion brighter than the window keeps its intensity instead of
    being cut at the window (a contrast-enhanced T1 of maximum 1,653 came out at 616).

    ``excess`` (B, 1, h, w) on the output grid (B, 1, H, W): cubic interpolation on the grid maps
    ``maps`` (where the input's pixels sit on the output grid, :mod:`lfmri.geometry.grid`), the
    interpolation the baselines use. An input already on the output grid is returned as it is; an
    all-zero excess (most slices) costs nothing."""
    if tuple(excess.shape[-2:]) == tuple(out_shape[-2:]) or not bool(excess.any()):
        return excess if tuple(excess.shape[-2:]) == tuple(out_shape[-2:]) else excess.new_zeros((*excess.shape[:-2], *out_shape[-2:]))
    return interpolate_to_grid(excess, out_shape[-2:], maps)


PROBED_TILES = 128  # tiles at least this large are not probed against the receptive field (lfmri's networks see < 64 pixels)
Step = Callable[[list[int]], Mapping[str, torch.Tensor]]


class VolumeLoop:
    """Batches of slices through a per-batch step, and the step's outputs written as volumes.

    Args:
        slice_axis: the axis slices are cut along (the training slice axis).
        batch_size: slices per step.
        show_progress: a bar on a terminal, log lines otherwise (:func:`lfmri.progress.progress`).
    """

    def __init__(self, slice_axis: int, batch_size: int, show_progress: bool = True) -> None:
        if int(batch_size) < 1:
            raise ValueError(f"batch_size={batch_size}: must be a positive number of slices")
        self.slice_axis = int(slice_axis)
        self.batch_size = int(batch_size)
        self.show_progress = show_progress

    @torch.no_grad()
    def run(self, label: str, indices: Sequence[int], step: Step) -> dict[str, np.ndarray]:
        """Run ``step`` on batches of slice ``indices``; returns ``{kind: volume}`` with the slices
        of each output kind put back along the slice axis (float32, normalised intensities)."""
        outputs: dict[str, list[torch.Tensor]] = {}
        bar = progress(len(indices), label, "slice", enabled=self.show_progress)
        for first in range(0, len(indices), self.batch_size):
            batch = list(indices[first : first + self.batch_size])
            for kind, value in step(batch).items():  # (b, H, W) per kind
                outputs.setdefault(kind, []).append(value.detach().float().cpu())
            bar.update(len(batch))
        bar.close()
        return {kind: put_slices(torch.cat(parts).numpy(), self.slice_axis) for kind, parts in outputs.items()}

    @staticmethod
    def write(
        paths: Mapping[str, Path],
        volumes: Mapping[str, np.ndarray],
        affines: Mapping[str, np.ndarray],
        axcodes: tuple[str, ...],
        intensity,
        description: str = "",
        maps: Collection[str] = (),
        space_code: int = 1,
    ) -> None:
        """Write each ``volumes[kind]`` to ``paths[kind]`` with ``affines[kind]``, in the input's
        orientation ``axcodes``, space (``space_code``, :attr:`lfmri.geometry.nifti.Volume.space_code`)
        and intensity range (``intensity.restore``). Images are bounded by the input's own minimum and
        maximum (:meth:`lfmri.data.normalize.Intensity.restore_bounded`), not by the normalisation window: the
        callers add back what lay beyond the window (:func:`carry_out_of_window`). Kinds in ``maps``
        (standard deviations, absolute differences) are scaled back, neither shifted nor bounded.

        A network output with NaN or Inf voxels (diverged or overflowing weights, a bf16 overflow) is
        refused (``ValueError`` naming the volume and the output) before anything is written: a NaN
        volume with exit status 0 looks like a result.
        """
        for kind, data in volumes.items():
            bad = int(np.size(data) - np.count_nonzero(np.isfinite(data)))
            if bad:
                raise ValueError(f"{Path(paths[kind]).name}: the network gave {bad} NaN/Inf voxels of {np.size(data)}; "
                                 "nothing written (non-finite weights or an overflow in this precision?)")
        for kind, data in volumes.items():
            if kind in maps:
                data = data * (intensity.high - intensity.low)
            else:
                # bounded by the input's own [min, max] (mapped): overshoot beyond what the scan holds
                # (Gibbs ringing, negative magnitudes) is not anatomy, but a lesion above the window is
                data = intensity.restore_bounded(data)
            save_nifti(paths[kind], data, affines[kind], axcodes, overwrite=True,  # staging names
                       description=f"{kind} {description}".strip(), space_code=space_code)
