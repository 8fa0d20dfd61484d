"""Training patches augmented, degraded and cut on the training device, one batch at a time.

With ``data.degrade_on=device`` the data loader only picks a slice per sample (its index, drawn as
the loader path draws it) and hands over the clean prepared HR slice; after the batch reaches the
device (``LightningDataModule.on_after_batch_transfer``), :class:`DevicePatches` does the per-sample
work the loader path does in :class:`lfmri.data.datasets.PatchDataset`, batched: the slice
augmentations, the degradation (k-space truncation and complex noise, or bicubic), the
pre-upsampled input and the foreground-centred patch crop. On a GPU that work costs next to
nothing, and a loader worker per sample only indexes and copies (``benchmarks/bench.py --section
data``); Real-ESRGAN/BasicSR synthesise their degraded inputs on the GPU for the same reason.

With ``data.resident=true`` the training slices are one tensor on the device (host memory where
they do not fit: one log line) and the loader hands over only each batch's seed: the batch draws its
slices there, and no loader worker is needed at all.

Randomness: one generator per batch on the batch's device, seeded from the run's seed and the
batch's own sampler keys ``(epoch, i)``. The same batch is degraded the same way every time (a
resumed run sees exactly the batches an uninterrupted one does), DDP ranks, whose keys differ, draw
different noise, and the number of loader workers changes nothing. Draws differ from the loader
path's per-sample draws (one generator per patch there); the distributions are the same, and a
noise-free, unaugmented patch is the loader path's patch exactly (tests/unit/data/test_device_patches.py).

Supported: the synthetic degradations of single slices (``kspace``, ``kspace_zerofill``,
``bicubic``) with any ``data.augment``; other data (multi-slice context, unpaired patches, the 64 mT
simulation, precomputed pairs) keeps the loader path, and the data module says so in one line.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from lfmri.data.augment import SliceAugmentation
from lfmri.degrade.degradations import BicubicDegradation, Degradation, KSpaceDegradation, KSpaceZeroFillDegradation

DEGRADE_ON = ("loader", "device")  # data.degrade_on: where the training patches are degraded
BATCHED_DEGRADE = (KSpaceDegradation.degrade, KSpaceZeroFillDegradation.degrade, BicubicDegradation.degrade)


RESIDENT_SHARE = 0.5  # at most this share of the device's free memory holds the resident training slices


def resident_placement(slices: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, str | None]:
    """``slices`` on ``device`` if they take at most ``RESIDENT_SHARE`` of its free memory, else where
    they are (host memory) and the one line that says so."""
    if device.type != "cuda":
        return slices.to(device), None
    free, _ = torch.cuda.mem_get_info(device)
    need = slices.numel() * slices.element_size()
    if need > RESIDENT_SHARE * free:
        return slices.pin_memory(), (f"data.resident: the {len(slices)} training slices ({need / 2**30:.1f} GiB) do not fit in "
                                     f"{RESIDENT_SHARE:.0%} of the {free / 2**30:.1f} GiB free on {device}: they stay in host memory, "
                                     "each batch copied over")
    return slices.to(device), None


def device_support(degradation: Degradation, context_slices: int, unpaired: bool) -> str | None:
    """Why the device path cannot make these training patches (``None``: it can)."""
    if context_slices:
        return "multi-slice context (data.context_slices > 0)"
    if unpaired:
        return "unpaired patches (data.unpaired=true)"
    # a degradation whose degrade() is one of these batches along its leading index and draws from the
    # generator's device; a subclass with its own (LowFieldDegradation's 64 mT simulation) is not known to
    if type(degradation).degrade not in BATCHED_DEGRADE:
        return f"the {type(degradation).__name__} degradation"
    return None


def crop(images: torch.Tensor, y0: torch.Tensor, x0: torch.Tensor, size: int) -> torch.Tensor:
    """``size`` x ``size`` windows of ``images`` (B, C, H, W) at per-sample corners ``y0``, ``x0`` (B,),
    by indexing (no host round trip for the corners)."""
    steps = torch.arange(size, device=images.device)
    rows, cols = y0[:, None] + steps, x0[:, None] + steps
    batch = torch.arange(images.shape[0], device=images.device)[:, None, None]
    # advanced indices around a slice: the indexed dimensions come first -> (B, size, size, C)
    return images[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2).contiguous()


class DevicePatches:
    """The loader path's training patches, made from a batch of clean HR slices on their device.

    Args:
        degradation: the run's degradation (``conf/degradation``).
        patch_size: HR patch side in pixels (``data.patch_size``).
        input_mode: what the network reads (``lr`` or ``upsampled``).
        foreground_prob: probability that a patch is centred on a pixel above ``foreground_threshold``.
        foreground_threshold: the intensity that counts as foreground.
        augment: the slice augmentations (``data.augment``), applied before the degradation.
    """

    def __init__(self, degradation: Degradation, patch_size: int, input_mode: str, foreground_prob: float = 0.9,
                 foreground_threshold: float = 0.05, augment: SliceAugmentation | None = None) -> None:
        self.degradation = degradation
        self.train_degradation = augment.training_degradation(degradation) if augment else degradation
        self.augment = augment
        self.input_mode = input_mode
        self.foreground_prob = float(foreground_prob)
        self.foreground_threshold = float(foreground_threshold)
        self.hr_patch = int(patch_size)
        self.lr_patch = self.hr_patch // degradation.grid_scale

    def patch_origins(self, hr: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """LR-grid corners (B,) of each sample's patch, as :meth:`PatchGeometry._patch_origin` places
        them: with probability ``foreground_prob`` centred on the LR cell of a uniformly drawn
        foreground HR pixel (drawn as an LR cell weighted by its foreground pixels: the same
        distribution, from a quarter of the numbers), otherwise (and in a slice without foreground)
        anywhere."""
        batch, height, width = hr.shape[0], hr.shape[-2], hr.shape[-1]
        step, device = self.degradation.grid_scale, hr.device
        lr_h, lr_w = height // step, width // step
        foreground = (hr[:, : lr_h * step, : lr_w * step] > self.foreground_threshold).to(hr.dtype)
        weights = foreground.reshape(batch, lr_h, step, lr_w, step).sum(dim=(2, 4)).reshape(batch, -1)
        has_foreground = weights.sum(dim=1) > 0
        cell = torch.multinomial(weights + (~has_foreground)[:, None].to(weights.dtype), 1, generator=generator)[:, 0]
        use_foreground = (torch.rand(batch, generator=generator, device=device) < self.foreground_prob) & has_foreground
        anywhere_y = torch.randint(lr_h, (batch,), generator=generator, device=device)
        anywhere_x = torch.randint(lr_w, (batch,), generator=generator, device=device)
        cy = torch.where(use_foreground, torch.div(cell, lr_w, rounding_mode="floor"), anywhere_y)
        cx = torch.where(use_foreground, cell % lr_w, anywhere_x)
        half = self.lr_patch // 2
        return (cy - half).clamp(0, lr_h - self.lr_patch), (cx - half).clamp(0, lr_w - self.lr_patch)

    def from_resident(self, slices: torch.Tensor, batch_size: int, seed: int, device: torch.device) -> dict[str, torch.Tensor]:
        """Training patches of ``batch_size`` slices drawn uniformly from ``slices`` (N, 1, H, W), the
        training split held as one tensor (on ``device``, or in host memory where it did not fit
        there), every draw from one generator seeded with ``seed`` on ``device``."""
        generator = torch.Generator(device=device).manual_seed(int(seed))
        index = torch.randint(len(slices), (int(batch_size),), generator=generator, device=device)
        hr = slices[index] if slices.device == index.device else slices[index.cpu()].to(device, non_blocking=True)
        return self(hr, seed, generator)

    def __call__(self, hr: torch.Tensor, seed: int, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Training patches ``{"hr", "lr"[, "lr_up"]}`` from clean HR slices ``hr`` (B, 1, H, W) on any
        device, every draw from one generator seeded with ``seed`` on that device (or ``generator``)."""
        generator = generator if generator is not None else torch.Generator(device=hr.device).manual_seed(int(seed))
        hr = hr.float()
        if self.augment is not None:
            hr = augment_batch(self.augment, hr, generator)
        lr, _ = self.train_degradation.degrade(hr, generator)
        views = {"hr": hr, "lr": lr}
        if self.input_mode == "upsampled":
            views["lr_up"] = self.degradation.upsample(lr, hr.shape)
        y0, x0 = self.patch_origins(hr[:, 0], generator)
        step = self.degradation.grid_scale
        return {name: crop(image, y0, x0, self.lr_patch) if name == "lr" else crop(image, y0 * step, x0 * step, self.hr_patch)
                for name, image in views.items()}


def augment_batch(augment: SliceAugmentation, hr: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """:meth:`SliceAugmentation.hr` for a batch (B, C, H, W): per sample a symmetry of the square (flips
    only for other slices; with ``rot90`` alone, any rotation and any flip, as flips after a transpose
    make them) and the intensity changes, drawn from ``generator`` on the batch's device."""
    batch, device = hr.shape[0], hr.device
    square = hr.shape[-1] == hr.shape[-2]
    per_sample = (batch, 1, 1, 1)
    # flips and quarter turns as an optional transpose and two optional flips: every element of the
    # square's symmetry group equally likely, as the loader path's flips x quarter turns make them
    # (three selections instead of four rotated copies)
    rotate = augment.rot90 and square
    if rotate and not augment.flips:  # quarter turns only: rot90 by k is a transpose (k odd) and flips
        turns = torch.randint(4, (batch,), generator=generator, device=device)
        transpose, flip_lr, flip_ud = turns % 2 == 1, turns >= 2, (turns == 1) | (turns == 2)
    elif rotate or augment.flips:
        bits = torch.randint(2, (batch, 3), generator=generator, device=device).bool()
        transpose, flip_lr, flip_ud = bits[:, 0] & rotate, bits[:, 1], bits[:, 2]
    if rotate or augment.flips:
        if rotate:
            hr = torch.where(transpose.view(per_sample), hr.transpose(-2, -1), hr)
        hr = torch.where(flip_lr.view(per_sample), hr.flip(-1), hr)
        hr = torch.where(flip_ud.view(per_sample), hr.flip(-2), hr)
    if augment.changes_intensity:
        values = [_uniform(bounds, batch, generator, device).view(per_sample)
                  for bounds in (augment.scale, augment.gamma, augment.contrast)]
        scale, gamma, contrast = values
        hr = hr.clamp(0, 1).pow(gamma) * scale
        inside = (hr > augment.foreground_threshold).to(hr.dtype)
        count = inside.sum(dim=(1, 2, 3), keepdim=True)
        pivot = torch.where(count > 0, (hr * inside).sum(dim=(1, 2, 3), keepdim=True) / count.clamp_min(1),
                            hr.mean(dim=(1, 2, 3), keepdim=True))
        hr = (pivot + contrast * (hr - pivot)).clamp(0, 1)
    return hr.contiguous()


def _uniform(bounds: Sequence[float], n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    low, high = bounds
    return low + (high - low) * torch.rand(n, generator=generator, device=device)
