"""Datasets of paired slices: random training patches (real and simulated pools) and whole slices."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

from lfmri.data.datasets import PatchGeometry, PreparedSegment, SliceDataset, derive_seed


@dataclass
class PairedSegment(PreparedSegment):
    """Paired slices of one split segment: ``hr`` (n, H, W), ``lr`` on the LR grid, ``lr_up`` on HR."""

    lr: torch.Tensor = None  # type: ignore[assignment]
    lr_up: torch.Tensor | None = None
    synthetic: bool = False
    lr_context: torch.Tensor | None = None      # (n, 2K+1, h, w): neighbours a thick slice apart (context_slices=K)
    lr_up_context: torch.Tensor | None = None   # the same on the HR grid, for pre-upsampled networks


def _pair_sample(seg: PairedSegment, i: int) -> dict[str, torch.Tensor]:
    lr = seg.lr[i][None]
    sample = {"hr": seg.hr[i][None], "lr": lr, "lr_complex": lr.to(torch.complex64)}
    if seg.lr_up is not None:
        sample["lr_up"] = seg.lr_up[i][None]
    for key in ("lr_context", "lr_up_context"):
        if getattr(seg, key) is not None:
            sample[key] = getattr(seg, key)[i]
    return sample


class PairedPatchDataset(PatchGeometry, Dataset):
    """Random training patches of paired slices; a patch comes from the synthetic pairs with
    probability ``synthetic_ratio`` (when there are any), from the real ones otherwise."""

    def __init__(self, real: Sequence[PairedSegment], synthetic: Sequence[PairedSegment], degradation, patch_size: int,
                 input_mode: str, seed: int, foreground_prob: float, foreground_threshold: float, synthetic_ratio: float,
                 augment=None) -> None:
        # the patch geometry of PatchDataset, without concatenating every slice into one copy
        segments = [*real, *synthetic]
        if not any(len(s.hr) for s in segments):
            raise ValueError("the training split has no slices with foreground")
        super().__init__(degradation, patch_size, foreground_prob, foreground_threshold)
        smallest = min(min(s.hr.shape[-2:]) for s in segments if len(s.hr))
        if patch_size > smallest:
            raise ValueError(f"data.patch_size={patch_size} is larger than the HR slices ({smallest} pixels)")
        self.seed = seed
        if not 0 <= synthetic_ratio <= 1:
            raise ValueError(f"data.synthetic_ratio must be in [0, 1], got {synthetic_ratio}")
        self.pools = [[(s, i) for s in pool for i in range(len(s.hr))] for pool in (real, synthetic)]
        self.synthetic_ratio = float(synthetic_ratio) if self.pools[1] else 0.0
        if not self.pools[0]:
            self.synthetic_ratio = 1.0
        self.input_mode = input_mode
        self.augment = augment  # applied to the cropped views: exact on the pixel-area grid of pairs
        if augment is not None and augment.noise_std is not None:
            raise ValueError("data.augment.noise_std needs an on-the-fly degradation; paired data is precomputed")
        if augment is not None and (augment.flips or augment.rot90) and degradation.grid != "area" and degradation.grid_scale > 1:
            # on the k-space grid LR pixel j sits on HR pixel 2j: mirroring the pair would shift it by one
            raise ValueError(f"data.augment flips/rotations of precomputed pairs need the pixel-area grid; "
                             f"degradation.grid={degradation.grid!r} (set data.augment.flips=false rot90=false)")

    def __len__(self) -> int:
        return sum(len(pool) for pool in self.pools)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        epoch, index = key
        gen = torch.Generator().manual_seed(derive_seed("paired-patch", self.seed, int(epoch), int(index)))
        pool = self.pools[int(float(torch.rand(1, generator=gen)) < self.synthetic_ratio)]
        seg, i = pool[int(torch.randint(len(pool), (1,), generator=gen))]
        sample = _pair_sample(seg, i)
        step = self.degradation.grid_scale
        y0, x0 = self._patch_origin(sample["hr"][0], gen)
        crops = {"synthetic": torch.tensor(seg.synthetic)}
        for name in ("hr", "lr", "lr_up", "lr_context", "lr_up_context"):
            if name not in sample or (name.startswith("lr_up") and self.input_mode != "upsampled"):
                continue
            on_lr_grid = name in ("lr", "lr_context")
            size, (oy, ox) = (self.lr_patch, (y0, x0)) if on_lr_grid else (self.hr_patch, (y0 * step, x0 * step))
            crops[name] = sample[name][..., oy : oy + size, ox : ox + size]
        return self.augment.pair(crops, gen) if self.augment is not None else crops


class PairedSliceDataset(SliceDataset):
    """Whole paired slices for validation and test (the real LR: nothing is drawn)."""

    def __getitem__(self, index: int) -> dict:
        seg, i = self.items[index]
        sample = _pair_sample(seg, i)
        if self.input_mode != "upsampled":
            sample.pop("lr_up", None)
            sample.pop("lr_up_context", None)
        return {**sample, "subject": seg.subject, "slice": int(seg.slice_indices[i])}
