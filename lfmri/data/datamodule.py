"""LightningDataModule for single-volume (HR-only) data degraded synthetically.

Subclasses say where the volumes come from (``load_volumes``) and how to split them
(``default_split``); everything else is shared: percentile normalisation, slicing along
``slice_axis``, slice selection, HR preparation by the degradation, training patches, whole-slice
validation and test, the split file in the run directory.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from lfmri.data.augment import SliceAugmentation
from lfmri.data.datasets import (CleanSlices, EpochSampler, PatchDataset, PatchGeometry, PreparedSegment, SeededBatches,
                                 ShapeBatchSampler, SliceDataset, SliceKeys)
from lfmri.data.device_patches import DEGRADE_ON, DevicePatches, device_support, resident_placement
from lfmri.degrade.degradations import Degradation
from lfmri.geometry.nifti import Volume
from lfmri.data.normalize import Intensity, percentile_intensity
from lfmri.data.resumable import ResumableLoader
from lfmri.geometry.slicing import check_axis, foreground_fraction, take_slices
from lfmri.data.splits import STAGES, Segment, Split, split_from_dict, split_to_dict, write_split
from lfmri.contracts import INPUT_MODES, check_context_slices
from lfmri.errors import ConfigError, DataError

log = logging.getLogger(__name__)


@dataclass
class NormalisedVolume:
    """A volume mapped to [0, 1], with the map that restores its original intensities."""

    volume: Volume
    intensity: Intensity


def _worker_init(worker_id: int) -> None:
    # each worker process gets one intra-op thread: the main process does the heavy maths
    torch.set_num_threads(1)


class SliceDataModule(L.LightningDataModule):
    # constructor options naming files the data module writes: a training run's own record, never
    # taken from a stored config (StoredRun.datamodule sets them to None; tests/unit/data check that
    # every *_file/*_dir option is listed here or is read-only)
    OUTPUT_OPTIONS: tuple[str, ...] = ("split_file",)

    def __init__(
        self,
        degradation: Degradation,
        input_mode: str = "lr",
        slice_axis: int = 2,
        percentiles: Sequence[float] = (1.0, 99.0),
        foreground_threshold: float = 0.05,
        min_foreground_fraction: float = 0.05,
        patch_size: int = 32,
        patches_per_epoch: int = 2000,
        foreground_prob: float = 0.9,
        batch_size: int = 20,
        eval_batch_size: int = 8,
        num_workers: int = 0,
        pin_memory: bool = True,
        seed: int = 0,
        split: Mapping | None = None,
        split_file: str | None = None,
        unpaired: bool = False,
        augment: SliceAugmentation | None = None,
        context_slices: int = 0,
        degrade_on: str = "loader",
        resident: bool = False,
    ) -> None:
        """Arguments are the ``data.*`` options of ``conf/data/*.yaml`` (commented there);
        ``context_slices``: neighbouring slices on each side fed with every slice as extra input
        channels (2.5D; ``lr_context`` in the samples), each degraded with its own noise;
        ``degrade_on``: ``loader`` (each training patch augmented and degraded in the data loader) or
        ``device`` (the loader hands over clean slices, the batch is augmented, degraded and cut on the
        training device: :mod:`lfmri.data.device_patches`); ``resident`` (with ``degrade_on=device``):
        the training split's slices as one tensor on the training device, each batch drawing its
        slices there (no loader work per patch; host memory where they do not fit)."""
        super().__init__()
        if input_mode not in INPUT_MODES:
            raise ValueError(f"data.input_mode={input_mode!r}; expected one of {sorted(INPUT_MODES)}")
        self.degradation = degradation
        self.input_mode = input_mode
        self.slice_axis = check_axis(slice_axis)
        self.percentiles = tuple(percentiles)
        self.foreground_threshold = float(foreground_threshold)
        self.min_foreground_fraction = float(min_foreground_fraction)
        self.patch_size = int(patch_size)
        self.patches_per_epoch = int(patches_per_epoch)
        self.foreground_prob = float(foreground_prob)
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size)
        self.num_workers = int(num_workers)
        self.pin_memory = bool(pin_memory)
        self.seed = int(seed)
        self.requested_split = split_from_dict(split) if split is not None else None
        self.split_file = split_file
        self.unpaired = bool(unpaired)  # training LR and HR patches from different slices (module=cycle)
        if augment is not None and not isinstance(augment, SliceAugmentation):
            raise ValueError(f"data.augment must be a SliceAugmentation config (with _target_), got {augment!r}")
        self.augment = augment
        self.context_slices = check_context_slices(context_slices, "data")
        if degrade_on not in DEGRADE_ON:
            raise ConfigError(f"data.degrade_on={degrade_on!r}: expected one of {', '.join(DEGRADE_ON)}")
        self.degrade_on = degrade_on
        if resident and degrade_on != "device":
            raise ConfigError("data.resident=true keeps the training slices on the device for the device path: "
                              "set data.degrade_on=device too")
        self.resident = bool(resident)
        self.device_patches: DevicePatches | None = None  # set by train_dataset when the device path is taken
        self.resident_slices: torch.Tensor | None = None  # data.resident: the training slices, moved on the first batch
        self._first_seed_logged = False
        if self.context_slices and self.unpaired:
            raise ConfigError("data.context_slices > 0 with data.unpaired=true: cycle-consistent training reads one slice; "
                              "set context_slices=0")
        for name in ("patch_size", "batch_size", "eval_batch_size", "patches_per_epoch"):
            if getattr(self, name) < 1:
                raise ValueError(f"data.{name}={getattr(self, name)}: must be a positive integer")
        if self.num_workers < 0:
            raise ValueError(f"data.num_workers={self.num_workers}: must be 0 (main process) or more")
        if self.patches_per_epoch < self.batch_size:
            # drop_last=True: an epoch of fewer patches than one batch trains nothing at all
            raise ValueError(
                f"data.patches_per_epoch={self.patches_per_epoch} is below data.batch_size={self.batch_size}: "
                "no batch would be trained; raise data.patches_per_epoch"
            )
        self.split: Split | None = None
        self.volumes: dict[str, NormalisedVolume] = {}
        self.prepared: dict[str, list[PreparedSegment]] = {}
        self._train_loader: ResumableLoader | None = None

    # --- to be provided by subclasses -----------------------------------------------------------
    def load_volumes(self) -> list[Volume]:
        raise NotImplementedError

    def default_split(self, volumes: Mapping[str, NormalisedVolume]) -> Split:
        raise NotImplementedError

    # --- shared ---------------------------------------------------------------------------------
    def selected_slices(self, data: np.ndarray, segment: Segment) -> np.ndarray:
        """Volume indices of the slices of ``segment`` that contain enough anatomy to score."""
        fractions = foreground_fraction(data, self.slice_axis, self.foreground_threshold)
        indices = np.arange(segment.start, segment.stop)
        return indices[fractions[segment.start : segment.stop] >= self.min_foreground_fraction]

    def normalised_volumes(self) -> dict[str, NormalisedVolume]:
        """Every subject's volume, normalised to [0, 1] by its percentiles, by subject name."""
        volumes = {}
        for volume in self.load_volumes():
            if volume.name in volumes:
                raise ValueError(f"two volumes are named {volume.name!r}: {volumes[volume.name].volume.source} and {volume.source}")
            intensity = percentile_intensity(volume.data, self.percentiles, volume.source)
            volume.data = intensity.apply(volume.data)
            volumes[volume.name] = NormalisedVolume(volume, intensity)
        return volumes

    def setup(self, stage: str | None = None) -> None:
        """Read and normalise the volumes, split them by subject (the stored split when resuming or
        evaluating), and prepare the slices of each stage (:meth:`_prepare`)."""
        if self.split is not None:
            return
        volumes = self.normalised_volumes()
        split = self.requested_split or self.default_split(volumes)
        if self.requested_split is not None:
            unused = sorted(set(volumes) - {seg.subject for segs in split.values() for seg in segs})
            if unused:  # e.g. volumes added to the folder since the run that is resumed started
                log.warning("the given split leaves out %d volume(s) found now, not used: %s", len(unused), unused)
        missing = sorted({seg.subject for segs in split.values() for seg in segs} - set(volumes))
        if missing:
            raise ValueError(f"the split names volumes that were not found: {missing}")
        self.volumes = volumes
        self.prepared = {name: [self._prepare(seg) for seg in split.get(name, [])] for name in STAGES}
        self.split = split
        counts = {name: sum(len(p.hr) for p in segs) for name, segs in self.prepared.items()}
        log.info("split (slices with anatomy): %s%s", counts, self.split_note())
        self.check_stages(counts, stage)
        if self.split_file and self.trainer is not None and self.trainer.is_global_zero:
            write_split(split, self.split_file)

    def split_note(self) -> str:
        """Anything a subclass adds to the split's log line."""
        return ""

    def check_stages(self, counts: Mapping[str, int], stage: str | None) -> None:
        """Refuse, at setup, a stage the run will use that has no slice with anatomy.

        ``fit`` needs training and validation slices, and test slices too: ``lfmri-train`` tests
        what it trained, so an empty test split found only then would cost the whole training. A
        stage the trainer skips (``trainer.limit_val_batches=0``) may be empty.
        """
        needed = {"fit": ("train", "val", "test"), "validate": ("val",), "test": ("test",)}.get(stage or "", ())
        limits = {"val": "limit_val_batches", "test": "limit_test_batches"}
        if self.trainer is not None:
            needed = tuple(name for name in needed if getattr(self.trainer, limits.get(name, ""), 1) != 0)
        empty = [name for name in needed if not counts.get(name)]
        if empty:
            sizes = ", ".join(f"{name}: {len({seg.subject for seg in self.split.get(name, [])})} subject(s), {counts.get(name, 0)} slice(s)"
                              for name in STAGES)
            raise DataError(
                f"the {' and '.join(empty)} split{'s have' if len(empty) > 1 else ' has'} no slices with anatomy ({sizes}); "
                "give it subjects with data.fractions or data.subjects (or more volumes)"
            )

    def _prepare(self, segment: Segment) -> PreparedSegment:
        data = self.volumes[segment.subject].volume.data
        indices = self.selected_slices(data, segment)
        slices = torch.from_numpy(np.ascontiguousarray(take_slices(data, self.slice_axis)[indices]))
        hr = self.degradation.prepare_hr(slices) if len(indices) else slices
        if not self.context_slices or not len(indices):
            return PreparedSegment(segment.subject, indices, hr.contiguous())
        # multi-slice input: every slice of the segment prepared, neighbours of unselected slices too
        stack = self.degradation.prepare_hr(torch.from_numpy(np.ascontiguousarray(
            take_slices(data, self.slice_axis, segment.start, segment.stop))))
        return PreparedSegment(segment.subject, indices, hr.contiguous(), context=self.context_slices,
                               stack=stack.contiguous(), stack_start=segment.start)

    def split_dict(self) -> dict:
        if self.split is None:
            raise RuntimeError("the datamodule has not been set up yet")
        return split_to_dict(self.split)

    def _loader(self, dataset, loader_class: type[DataLoader] = DataLoader, **kwargs) -> DataLoader:
        return loader_class(
            dataset,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory and torch.cuda.is_available(),
            persistent_workers=False,
            worker_init_fn=_worker_init if self.num_workers else None,
            **kwargs,
        )

    def device_path_refusal(self) -> str | None:
        """Why ``data.degrade_on=device`` cannot make this data's training patches (``None``: it can)."""
        why = device_support(self.degradation, self.context_slices, self.unpaired)
        shapes = {tuple(hr.shape[-2:]) for seg in self.prepared["train"] for hr in seg.hr}
        if why is None and len(shapes) > 1:
            why = f"training slices of {len(shapes)} different sizes (set degradation.hr_size)"
        return why

    def train_dataset(self) -> Dataset:
        """Random training patches of the training split (seeded by epoch and index); with
        ``degrade_on=device`` (where the data allows it) the clean slices they are cut from."""
        self.device_patches = None
        if self.degrade_on == "device":
            why = self.device_path_refusal()
            if why is None:
                self.device_patches = DevicePatches(self.degradation, self.patch_size, self.input_mode,
                                                    self.foreground_prob, self.foreground_threshold, self.augment)
                PatchGeometry(self.degradation, self.patch_size, self.foreground_prob, self.foreground_threshold)  # checks the sizes
                smallest = min(min(hr.shape[-2:]) for seg in self.prepared["train"] for hr in seg.hr)
                if self.patch_size > smallest:
                    raise ConfigError(f"data.patch_size={self.patch_size} is larger than the HR slices ({smallest} pixels)")
                log.info("data.degrade_on=device: training patches are augmented, degraded and cut on the training device")
                if self.resident:
                    self.resident_slices = torch.stack([hr for seg in self.prepared["train"] for hr in seg.hr])[:, None]
                    return SliceKeys(len(self.resident_slices))
                return CleanSlices(self.prepared["train"], self.seed)
            log.info("data.degrade_on=device is not available for %s: training patches are degraded in the data loader", why)
        return PatchDataset(
            self.prepared["train"],
            self.degradation,
            self.patch_size,
            self.input_mode,
            self.seed,
            self.foreground_prob,
            self.foreground_threshold,
            unpaired=self.unpaired,
            augment=self.augment,
        )  # multi-slice context travels in the prepared segments

    def train_dataloader(self) -> DataLoader:
        # a loader built when resuming starts at the restored epoch (Lightning calls set_epoch later);
        # ResumableLoader lets a run killed mid-epoch continue with exactly the batches it had left
        epoch = self.trainer.current_epoch if self.trainer is not None else 0
        sampler = EpochSampler(self.patches_per_epoch, epoch)
        dataset = self.train_dataset()
        collate = {"collate_fn": SeededBatches(self.seed)} if isinstance(dataset, (CleanSlices, SliceKeys)) else {}
        self._train_loader = self._loader(
            dataset, ResumableLoader, sampler=sampler, batch_size=self.batch_size, drop_last=True, **collate
        )
        return self._train_loader

    def on_before_batch_transfer(self, batch, dataloader_idx: int):
        # count the batches that reach training_step: the loader's mid-epoch resume state
        loader = self._train_loader
        if loader is not None and self.trainer is not None and self.trainer.training:
            loader.trained_batches += 1
        return batch

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        # the device path: clean slices in, training patches out, on the device the batch is on
        if self.device_patches is not None and isinstance(batch, dict) and "seed" in batch and not self._first_seed_logged:
            self._first_seed_logged = True  # each rank says once where its draws start: ranks never share them
            rank = self.trainer.global_rank if self.trainer is not None else 0
            log.info("data.degrade_on=device: rank %d's first batch seed %d", rank, batch["seed"])
        if self.device_patches is not None and isinstance(batch, dict) and "hr_slice" in batch:
            return self.device_patches(batch["hr_slice"], batch["seed"])
        if self.device_patches is not None and self.resident_slices is not None and isinstance(batch, dict) and "batch_size" in batch:
            device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
            if self.resident_slices.device != device and not self.resident_slices.is_pinned():
                self.resident_slices, why = resident_placement(self.resident_slices, device)
                log.info(why or f"data.resident: the {len(self.resident_slices)} training slices are on {device}")
            return self.device_patches.from_resident(self.resident_slices, batch["batch_size"], batch["seed"], device)
        return batch

    def eval_dataset(self, stage: str) -> Dataset:
        """Whole slices of a validation or test split, degraded with fixed per-slice seeds."""
        return SliceDataset(self.prepared[stage], self.degradation, self.input_mode, self.seed)

    def _eval_loader(self, stage: str) -> DataLoader:
        dataset = self.eval_dataset(stage)
        if len(dataset) == 0:
            raise DataError(f"the {stage} split has no slices with anatomy (check data.slabs, data.fractions or data.subjects)")
        return self._loader(dataset, batch_sampler=ShapeBatchSampler(dataset, self.eval_batch_size))

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")
