"""The images every export is checked on: a real brain slice as the network reads it, and a second size."""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lfmri.contracts import input_mode, size_multiple
from lfmri.data.datasets import degraded_sample
from lfmri.degrade.degradations import BicubicDegradation, Degradation
from lfmri.export.contract import _check_exportable

@functools.lru_cache(maxsize=1)
def _mni_slice() -> np.ndarray:
    from lfmri.data.mni152 import load_mni152

    data = load_mni152(1).data
    image = data[:, :, data.shape[2] // 2]
    return np.clip(image / np.percentile(data, 99), 0, 1).astype(np.float32)


def mni_slice() -> torch.Tensor:
    """The middle axial slice of nilearn's MNI152 T1 (1 mm), divided by its 99th percentile, in [0, 1]."""
    return torch.from_numpy(_mni_slice().copy())


def _pad_to(x: torch.Tensor, multiple: int) -> torch.Tensor:
    pad_h, pad_w = (-x.shape[-2]) % multiple, (-x.shape[-1]) % multiple
    return F.pad(x, (0, pad_w, 0, pad_h), mode="reflect") if pad_h or pad_w else x


def reference_images(net: nn.Module, hr: torch.Tensor | None = None, degradation: Degradation | None = None) -> list[torch.Tensor]:
    """What exports are checked on: a real slice as the model reads it, and a batch of 2 of another size.

    ``hr`` (default :func:`mni_slice`) is the HR slice; ``degradation`` (default: the checkpoint's,
    as :func:`export_checkpoint` passes it; else noise-free bicubic at the network's scale) prepares
    and degrades it with a fixed seed, and the network reads the view it declares (the LR, or the
    LR upsampled onto the HR grid), reflect-padded to a multiple of ``size_multiple(net)``. The
    second input is a centred crop of about 60 % per side, flipped and unflipped, so batch, height
    and width all change.
    """
    _check_exportable(net)
    hr = mni_slice() if hr is None else hr
    s = int(getattr(net, "scale", 1))
    if degradation is None:
        degradation = BicubicDegradation(scale=s)
    prepared = degradation.prepare_hr(hr.reshape(1, *hr.shape[-2:]).float())
    sample = degraded_sample(prepared, degradation, torch.Generator().manual_seed(0), input_mode(net))
    # the network reads normalised intensities: ringing of the downsampling is clipped to [0, 1]
    x = (sample["lr_up"] if input_mode(net) == "upsampled" else sample["lr"])[None].float().clamp(0, 1)
    m = size_multiple(net)
    first = _pad_to(x, m)
    ch, cw = max(m, round(0.6 * x.shape[-2] / m) * m), max(m, round(0.6 * x.shape[-1] / m) * m)
    if (ch, cw) == tuple(first.shape[-2:]):
        ch += m
    top, left = max(0, (x.shape[-2] - ch) // 2), max(0, (x.shape[-1] - cw) // 2)
    crop = _pad_to(x[..., top : top + ch, left : left + cw], m)
    second = torch.cat([crop, crop.flip(-1)])
    return [first.contiguous(), second.contiguous()]
