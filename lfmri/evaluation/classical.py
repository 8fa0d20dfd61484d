"""The classical 3D rows of an evaluation: a denoiser applied to the whole zero-filled volume.

The evaluator steps through a volume in batches of slices, but a 3D denoiser needs the whole
volume at once. :func:`classical_outputs` is a pre-pass over the volume's slices, run once per
volume before the batched loop: it degrades every slice exactly as the loop will (the same seeded
sample function, so the same noise), zero-fills it with the table's own zero-fill baseline, stacks
the slices into a volume, estimates the noise level per slice on the degradation's measurement of
each LR view (:func:`lfmri.degrade.denoise3d.measurement_sigmas`: the complex LR under ``kspace``,
the zero-filled view cropped back to its measured k-space block under ``kspace_zerofill``, the real
LR under ``bicubic`` and ``lowfield``) and denoises the volume with each classical denoiser. The loop's step then reads its batch's slices of the denoised volumes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from lfmri.degrade.degradations import Degradation
from lfmri.degrade.denoise3d import VolumeDenoiser, measurement_sigmas
from lfmri.inference.network import model_input

log = logging.getLogger(__name__)


def classical_outputs(
    label: str,
    indices: Sequence[int],
    sample: Callable[[int], Mapping[str, torch.Tensor]],
    zerofill: nn.Module,
    degradation: Degradation,
    denoisers: Mapping[str, VolumeDenoiser],
    batch_size: int,
    device: str = "cpu",
) -> dict[str, torch.Tensor]:
    """``{name: (len(indices), H, W) float32}``: each denoiser on the zero-filled slices ``indices``.

    ``sample(i)`` is the degraded sample of slice ``i`` (the evaluator's seeded one); ``zerofill``
    the zero-fill baseline the table reports (:class:`lfmri.degrade.baselines.ZeroFill`); the noise is
    estimated on ``degradation``'s measurement of each slice (:func:`measurement_sigmas`).
    """
    filled, measured = [], []
    for first in range(0, len(indices), batch_size):
        samples = [sample(i) for i in indices[first : first + batch_size]]
        batch = {k: torch.stack([s[k] for s in samples]).to(device) for k in samples[0]}
        with torch.no_grad():
            filled.append(zerofill(model_input(zerofill, batch))[:, 0].float().cpu())
        measured.append(batch.get("lr_complex", batch["lr"])[:, 0].cpu())
    volume = torch.cat(filled).numpy()
    sigmas = measurement_sigmas(degradation, torch.cat(measured).numpy())
    log.info("%s: noise std estimated per slice on the measurement (wavelet MAD): median %.4f, range %.4f-%.4f",
             label, float(np.median(sigmas)), float(sigmas.min()), float(sigmas.max()))
    return {name: torch.from_numpy(np.ascontiguousarray(denoiser(volume, sigmas), dtype=np.float32))
            for name, denoiser in denoisers.items()}
