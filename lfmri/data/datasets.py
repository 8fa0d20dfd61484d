"""Torch datasets and samplers over prepared HR slices, degraded on the fly.

Randomness never comes from global or per-worker RNG state: every sample builds its own
generator from (seed, epoch, index) for training patches and from (seed, subject, slice) for
whole validation/test slices. A sample is therefore the same whatever the number of workers or
processes, a resumed run sees the same data as an uninterrupted one, and validation metrics
compare across epochs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import KW_ONLY, dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from lfmri.data.augment import SliceAugmentation
from lfmri.degrade.degradations import Degradation
from lfmri.errors import ConfigError
from lfmri.geometry.slicing import context_indices

# the samplers have a module of their own; their names stay importable from here
from lfmri.data.samplers import EpochSampler, ShapeBatchSampler  # noqa: E402,F401


def derive_seed(*parts: object) -> int:
    """A stable 63-bit seed from any printable parts (same on every machine and Python run)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def patch_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """The generator of training patch ``(epoch, index)``: its slice, and on the loader path every draw."""
    return torch.Generator().manual_seed(derive_seed("patch", seed, int(epoch), int(index)))


def slice_generator(seed: int, subject: str, slice_index: int) -> torch.Generator:
    """The generator that fixes the degradation of one evaluation slice."""
    return torch.Generator().manual_seed(derive_seed("slice", seed, subject, int(slice_index)))


@dataclass
class PreparedSegment:
    """Prepared HR slices (n, H, W) of one split segment, with their indices in the volume.

    For multi-slice input (``context > 0``), ``stack`` holds every prepared slice of the segment,
    from volume index ``stack_start`` on, so that each selected slice finds its neighbours
    (:meth:`neighbours`), including those with too little anatomy to be scored themselves.
    """

    subject: str
    slice_indices: np.ndarray
    hr: torch.Tensor
    # keyword-only: subclasses (PairedSegment) add positional fields of their own after ``hr``
    _: KW_ONLY
    context: int = 0
    stack: torch.Tensor | None = None
    stack_start: int = 0

    def neighbour_indices(self, i: int) -> list[int]:
        """Volume indices of the ``2 * context + 1`` slices centred on selected slice ``i``."""
        start = self.stack_start
        stop = start + (len(self.stack) if self.stack is not None else 0)
        return context_indices(int(self.slice_indices[i]), self.context, start, stop)

    def neighbours(self, i: int) -> tuple[torch.Tensor, list[int], list[int]]:
        """The distinct prepared HR slices (n, H, W) around selected slice ``i``, for each of the
        ``2 * context + 1`` input channels the row of its slice (edges repeat a slice), and the
        volume indices of the distinct slices."""
        indices = self.neighbour_indices(i)
        distinct = sorted(set(indices))
        rows = [distinct.index(j) for j in indices]
        return self.stack[[j - self.stack_start for j in distinct]], rows, distinct


def degraded_sample(
    hr: torch.Tensor, degradation: Degradation, generator: torch.Generator, input_mode: str
) -> dict[str, torch.Tensor]:
    """Degrade one (1, H, W) HR slice into the dict a model and the metrics need."""
    lr, lr_complex = degradation.degrade(hr, generator)
    sample = {"hr": hr, "lr": lr, "lr_complex": lr_complex}
    if input_mode == "upsampled":
        sample["lr_up"] = degradation.upsample(lr[None], hr.shape)[0]
    return sample


def context_sample(
    hr_slices: torch.Tensor, rows: Sequence[int], degradation: Degradation, generator: torch.Generator, input_mode: str
) -> dict[str, torch.Tensor]:
    """Degrade distinct neighbouring HR slices (n, H, W) for a multi-slice network.

    ``rows`` (2K+1 entries, centre in the middle) picks the slice of ``hr_slices`` at each input
    channel; at a volume edge a slice appears twice and is then the same LR slice twice, as in a
    measured volume. Returns the centre slice's views as :func:`degraded_sample` does, plus
    ``lr_context`` (and ``lr_up_context`` for pre-upsampled networks). Every distinct slice has its
    own noise draw: the degradation draws its noise level per leading index, as evaluation slices,
    each degraded with its own seed, have theirs.
    """
    centre = rows[len(rows) // 2]
    lr, lr_complex = degradation.degrade(hr_slices, generator)
    context = lr[list(rows)]
    sample = {"hr": hr_slices[centre : centre + 1], "lr": lr[centre : centre + 1],
              "lr_complex": lr_complex[centre : centre + 1], "lr_context": context}
    if input_mode == "upsampled":
        sample["lr_up_context"] = degradation.upsample(context[None], hr_slices.shape)[0]
        k = len(rows) // 2
        sample["lr_up"] = sample["lr_up_context"][k : k + 1]
    return sample


def stacked_context(samples: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The ``lr_context`` (and ``lr_up_context``) views of a slice from the samples of its
    neighbours, each degraded on its own (evaluation: every slice keeps its own seed, so the
    neighbours a network reads are the same LR slices the volume holds)."""
    out = {"lr_context": torch.cat([s["lr"] for s in samples])}
    if all("lr_up" in s for s in samples):
        out["lr_up_context"] = torch.cat([s["lr_up"] for s in samples])
    return out


class PatchGeometry:
    """Where training patches are cut: ``patch_size`` HR pixels (``patch_size / grid_scale`` on the LR
    grid), centred on a pixel above ``foreground_threshold`` with probability ``foreground_prob``.
    Shared by :class:`PatchDataset` and :class:`lfmri.data.paired_datasets.PairedPatchDataset`."""

    def __init__(self, degradation: Degradation, patch_size: int, foreground_prob: float, foreground_threshold: float) -> None:
        if patch_size % degradation.scale:
            raise ConfigError(f"data.patch_size={patch_size} must be a multiple of the scale x{degradation.scale}")
        self.degradation = degradation
        self.foreground_prob = foreground_prob
        self.foreground_threshold = foreground_threshold
        self.hr_patch = patch_size
        self.lr_patch = patch_size // degradation.grid_scale

    def _patch_origin(self, hr: torch.Tensor, gen: torch.Generator) -> tuple[int, int]:
        """Top-left corner of the LR patch; HR patch corner is ``scale`` times it (same grid map)."""
        step = self.degradation.grid_scale
        lr_h, lr_w = hr.shape[-2] // step, hr.shape[-1] // step
        centre = None
        if float(torch.rand(1, generator=gen)) < self.foreground_prob:
            fg = torch.nonzero(hr > self.foreground_threshold)
            if len(fg):
                cy, cx = fg[int(torch.randint(len(fg), (1,), generator=gen))].tolist()
                centre = (cy // step, cx // step)
        if centre is None:
            centre = (int(torch.randint(lr_h, (1,), generator=gen)), int(torch.randint(lr_w, (1,), generator=gen)))
        half = self.lr_patch // 2
        y0 = min(max(centre[0] - half, 0), lr_h - self.lr_patch)
        x0 = min(max(centre[1] - half, 0), lr_w - self.lr_patch)
        return y0, x0


class PatchDataset(PatchGeometry, Dataset):
    """Random (LR, HR) training patches, indexed by ``(epoch, i)`` keys from :class:`EpochSampler`.

    Each key draws a slice, a noise level and a patch position. With probability
    ``foreground_prob`` the patch is centred on a voxel above ``foreground_threshold`` so that
    training sees brain rather than background.

    ``unpaired=True`` (for cycle-consistent training) replaces the HR patch by one from another
    slice, of another subject whenever the training split has more than one, at its own position:
    the LR and HR of a sample then show different anatomy.

    ``augment`` (a :class:`~lfmri.data.augment.SliceAugmentation`) transforms the HR slice before
    it is degraded, drawing from the patch's generator, and may widen the training noise range.
    """

    def __init__(
        self,
        segments: Sequence[PreparedSegment],
        degradation: Degradation,
        patch_size: int,
        input_mode: str,
        seed: int,
        foreground_prob: float = 0.9,
        foreground_threshold: float = 0.05,
        unpaired: bool = False,
        augment: SliceAugmentation | None = None,
    ) -> None:
        # one tensor per slice, not one stacked tensor: volumes of a folder differ in size, and a
        # degradation that keeps each slice's size (bicubic with hr_size null) keeps them different
        self.hr = [hr for seg in segments for hr in seg.hr]
        self.subjects = [seg.subject for seg in segments for _ in range(len(seg.hr))]
        # multi-slice input: (segment, slice) of every training slice, to find its neighbours
        self.rows = [(seg, i) for seg in segments for i in range(len(seg.hr))]
        self.context = segments[0].context if segments else 0
        self.unpaired = bool(unpaired)
        if len(self.hr) == 0:
            raise ValueError("the training split has no slices with foreground")
        super().__init__(degradation, patch_size, foreground_prob, foreground_threshold)
        self.augment = augment
        self.train_degradation = augment.training_degradation(degradation) if augment else degradation
        self.input_mode = input_mode
        self.seed = seed
        smallest = min(self.hr, key=lambda hr: min(hr.shape[-2:]))
        if patch_size > min(smallest.shape[-2:]):
            raise ConfigError(f"data.patch_size={patch_size} is larger than the HR slices {tuple(smallest.shape[-2:])}")

    def __len__(self) -> int:
        return len(self.hr)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        epoch, i = key
        gen = patch_generator(self.seed, epoch, i)
        index = int(torch.randint(len(self.hr), (1,), generator=gen))
        if self.context:  # the centre slice and its neighbours, augmented alike, each with its own noise
            seg, i = self.rows[index]
            stack, rows, _ = seg.neighbours(i)
            if self.augment is not None:
                stack = self.augment.hr(stack, gen)
            sample = context_sample(stack, rows, self.train_degradation, gen, self.input_mode)
            hr = sample["hr"]
        else:
            hr = self.hr[index][None]
            if self.augment is not None:
                hr = self.augment.hr(hr, gen)
            sample = degraded_sample(hr, self.train_degradation, gen, self.input_mode)
        step = self.degradation.grid_scale
        y0, x0 = self._patch_origin(hr[0], gen)
        crops = {}
        for name, image in sample.items():
            if name == "lr_complex":
                continue  # complex LR is for whole-slice baselines only
            on_lr_grid = name in ("lr", "lr_context")
            size = self.lr_patch if on_lr_grid else self.hr_patch
            oy, ox = (y0, x0) if on_lr_grid else (y0 * step, x0 * step)
            crops[name] = image[..., oy : oy + size, ox : ox + size]
        if self.unpaired:
            crops["hr"] = self._unpaired_hr(index, gen)
        return crops

    def _unpaired_hr(self, index: int, gen: torch.Generator) -> torch.Tensor:
        """An HR patch from another subject (or, with one subject, another slice) than slice ``index``."""
        others = [i for i, s in enumerate(self.subjects) if s != self.subjects[index]]
        others = others or [i for i in range(len(self.hr)) if i != index] or [index]
        hr = self.hr[others[int(torch.randint(len(others), (1,), generator=gen))]][None]
        step = self.degradation.grid_scale
        y0, x0 = self._patch_origin(hr[0], gen)
        return hr[..., y0 * step : y0 * step + self.hr_patch, x0 * step : x0 * step + self.hr_patch]


class CleanSlices(Dataset):
    """The training slices of ``data.degrade_on=device``: per ``(epoch, i)`` key, the clean prepared HR
    slice (1, H, W) that :class:`PatchDataset` would degrade for it (the same slice: drawn from the same
    generator), and the key. Indexing and nothing else: augmentation, degradation and the patch crop
    happen on the training device (:class:`lfmri.data.device_patches.DevicePatches`)."""

    def __init__(self, segments: Sequence[PreparedSegment], seed: int) -> None:
        self.hr = [hr for seg in segments for hr in seg.hr]
        if len(self.hr) == 0:
            raise ValueError("the training split has no slices with foreground")
        self.seed = int(seed)

    def __len__(self) -> int:
        return len(self.hr)

    def __getitem__(self, key: tuple[int, int]) -> dict:
        epoch, i = key
        index = int(torch.randint(len(self.hr), (1,), generator=patch_generator(self.seed, epoch, i)))
        return {"hr_slice": self.hr[index][None], "key": (int(epoch), int(i))}


class SliceKeys(Dataset):
    """The training "samples" of resident slices (``data.resident=true``): only the sampler's keys.
    The slices live on the training device as one tensor and each batch draws its slices there
    (:meth:`lfmri.data.device_patches.DevicePatches.from_resident`); ``__getitems__`` hands a whole
    batch of keys to the collate function at once, so a loader does next to nothing per patch."""

    def __init__(self, count: int) -> None:
        self.count = int(count)

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, key: tuple[int, int]) -> dict:
        return {"key": (int(key[0]), int(key[1]))}

    def __getitems__(self, keys: Sequence[tuple[int, int]]) -> list[dict]:
        return [{"key": (int(e), int(i))} for e, i in keys]


class SeededBatches:
    """``collate_fn`` of :class:`CleanSlices`: the stacked slices and one ``seed`` per batch, derived
    from the run's seed and the batch's keys (the device path's generator: the same batch always
    draws the same, and ranks, whose keys differ, draw differently)."""

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)

    def __call__(self, samples: Sequence[dict]) -> dict:
        keys = tuple(sample["key"] for sample in samples)
        seed = derive_seed("batch", self.seed, keys)
        if "hr_slice" not in samples[0]:  # resident slices: the batch is its size and its seed
            return {"batch_size": len(keys), "seed": seed}
        return {"hr_slice": torch.stack([sample["hr_slice"] for sample in samples]), "seed": seed}


class SliceDataset(Dataset):
    """Whole prepared slices with a degradation fixed per (subject, slice) for val/test."""

    def __init__(
        self, segments: Sequence[PreparedSegment], degradation: Degradation, input_mode: str, seed: int
    ) -> None:
        self.items = [(seg, i) for seg in segments for i in range(len(seg.hr))]
        self.degradation = degradation
        self.input_mode = input_mode
        self.seed = seed

    def __len__(self) -> int:
        return len(self.items)

    def shape(self, index: int) -> tuple[int, int]:
        seg, i = self.items[index]
        return tuple(seg.hr.shape[-2:])  # type: ignore[return-value]

    def __getitem__(self, index: int) -> dict:
        seg, i = self.items[index]
        slice_index = int(seg.slice_indices[i])
        gen = slice_generator(self.seed, seg.subject, slice_index)
        sample = degraded_sample(seg.hr[i][None], self.degradation, gen, self.input_mode)
        if seg.context:  # each neighbour degraded with its own slice's seed, as the volume holds it
            stack, rows, distinct = seg.neighbours(i)
            views = [
                sample if j == slice_index else
                degraded_sample(hr[None], self.degradation, slice_generator(self.seed, seg.subject, j), self.input_mode)
                for j, hr in zip(distinct, stack)
            ]
            sample.update(stacked_context([views[r] for r in rows]))
        return {**sample, "subject": seg.subject, "slice": slice_index}
