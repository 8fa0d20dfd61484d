"""Real paired low-field (64 mT) / high-field (3T) volumes, optionally mixed with simulated pairs.

The files under ``root`` (``layout=volumes``: one per subject and field; ``slices``: one per slice)
are read by :mod:`lfmri.data.pair_reading`.

Every subject's volumes then go through the same steps:

1. cubic resampling of the low-field volume to ``lf_shape``/``lf_spacing`` and of the high-field
   one to ``hf_shape``/``hf_spacing`` (centred grids, ``lfmri.geometry.resample``);
2. percentile normalisation per volume (``percentiles``, clipped to [0, 1]);
3. the model grids. The high-field grid, its in-plane size trimmed to a multiple of the
   degradation's ``grid_scale``, is the target. The low-field volume is resampled (cubic) onto
   that grid with the in-plane axes ``grid_scale`` x coarser, its pixels placed where the
   degradation's ``lr_maps`` put LR pixels (so the zero-fill and bicubic baselines and the
   patch geometry of the synthetic degradations hold unchanged), and for pre-upsampled models also
   onto the high-field grid itself. The two fields share a field of view (the high-field scan is
   registered to the low-field one), so the low-field volume is centred on the high-field one:
   with the default grids each axis is a zoom by the shape ratio.

Why: the default grids (112 x 138 x 40 at 1.6 x 1.6 x 5 mm and 179 x 221 x 200 at 1 mm) are not
an integer scale apart. Networks with an integer ``scale`` therefore read the low-field data
resampled to ``high-field shape / scale`` in-plane (``lr`` models) or to the high-field grid
(``upsampled`` models), and always predict the high-field slice. Slices are taken along
``slice_axis`` (default 0, sagittal), the split is by subject.

``synthetic_pattern``: high-field volumes (e.g. IXI T1) turned into pairs by the low-field
simulation of ``degradation=lowfield``, one draw of its parameters per subject. With real pairs
in ``root`` they join the training set only, and a training patch comes from them with
probability ``synthetic_ratio``; without ``root`` they are the collection, split by subject.

A little over 300 lines: the data module keeps the steps of one subject together (resampling,
simulation draws, splits); reading the files and the datasets are modules of their own.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lfmri.data.datamodule import NormalisedVolume, SliceDataModule
from lfmri.data.datasets import derive_seed
from lfmri.data.normalize import Intensity, percentile_intensity
from lfmri.data.pair_reading import SLICE_REGEX, VOLUME_REGEX, check_pairs, read_slice_layout, read_volume_layout
from lfmri.data.pair_validation import FIELDS, PairReport, enforce, pair_overlap, pair_similarity
from lfmri.data.paired_datasets import PairedPatchDataset, PairedSegment, PairedSliceDataset
from lfmri.data.splits import Segment, Split, explicit_split, split_to_dict, subject_split
from lfmri.errors import ConfigError, DataError, MissingFileError
from lfmri.geometry.nifti import Volume, load_nifti
from lfmri.geometry.resample import (centred_on, hr_grid_shape, lr_grid, resample_onto, resample_volume,
                                     thick_slice_neighbours)
from lfmri.geometry.slicing import take_slices

log = logging.getLogger(__name__)


@dataclass
class PairedVolume:
    """One subject on the model grids, normalised; affines place every grid in world space."""

    name: str
    hr: np.ndarray
    hr_affine: np.ndarray
    lr: np.ndarray
    lr_affine: np.ndarray
    lr_up: np.ndarray | None
    hr_intensity: Intensity
    lr_intensity: Intensity
    source: str
    axcodes: tuple[str, str, str]
    synthetic: bool = False
    # multi-slice input (context_slices=K): (2K+1, *grid) views of the low-field volume a thick slice
    # apart along the slice axis, the centre channel being ``lr`` (``lr_up``)
    lr_context: np.ndarray | None = None
    lr_up_context: np.ndarray | None = None


def normalised(volume: Volume, percentiles: Sequence[float]) -> tuple[Volume, Intensity]:
    intensity = percentile_intensity(volume.data, percentiles, volume.source)
    return Volume(intensity.apply(volume.data), volume.affine, volume.source, volume.axcodes), intensity


def _clip(data: np.ndarray) -> np.ndarray:
    return np.clip(data, 0.0, 1.0).astype(np.float32)


class PairedLowFieldDataModule(SliceDataModule):
    OUTPUT_OPTIONS = (*SliceDataModule.OUTPUT_OPTIONS, "report_file")  # the pair-validation report

    def __init__(
        self,
        root: str | None = None,
        layout: str = "volumes",
        lf_glob: str = "lf/*.nii*",
        hf_glob: str = "hf/*.nii*",
        name_regex: str | None = None,
        stack_axis: int = 2,
        lf_shape: Sequence[int] = (112, 138, 40),
        lf_spacing: Sequence[float] = (1.6, 1.6, 5.0),
        hf_shape: Sequence[int] = (179, 221, 200),
        hf_spacing: Sequence[float] = (1.0, 1.0, 1.0),
        strict: bool = True,
        fractions: Sequence[float] = (0.8, 0.1, 0.1),
        subjects: Mapping[str, Sequence[str]] | None = None,
        synthetic_pattern: str | None = None,
        synthetic_ratio: float = 0.5,
        synthetic_draws: int = 1,
        report_file: str | None = None,
        slice_axis: int = 0,
        **kwargs,
    ) -> None:
        super().__init__(slice_axis=slice_axis, **kwargs)
        if layout not in ("volumes", "slices"):
            raise ValueError(f"data.layout must be 'volumes' or 'slices', got {layout!r}")
        if not root and not synthetic_pattern:
            raise ConfigError("data=paired_lowfield needs data.root (a paired collection) and/or data.synthetic_pattern "
                              "(high-field volumes to simulate pairs from), e.g. data.synthetic_pattern='/data/IXI-T1/*.nii.gz'")
        self.root = Path(root).expanduser() if root else None
        self.layout = layout
        self.globs = {"lf": lf_glob, "hf": hf_glob}
        self.name_regex = name_regex or (VOLUME_REGEX if layout == "volumes" else SLICE_REGEX)
        self.stack_axis = int(stack_axis)
        self.lf_shape, self.lf_spacing = tuple(int(n) for n in lf_shape), tuple(float(s) for s in lf_spacing)
        self.hf_shape, self.hf_spacing = tuple(int(n) for n in hf_shape), tuple(float(s) for s in hf_spacing)
        self.strict = bool(strict)
        self.fractions = tuple(fractions)
        self.subjects = {k: list(v) for k, v in (subjects or {}).items()}
        self.synthetic_pattern = synthetic_pattern
        self.synthetic_ratio = float(synthetic_ratio)
        if int(synthetic_draws) != synthetic_draws or synthetic_draws < 1:
            raise ConfigError(f"data.synthetic_draws must be a whole number >= 1, got {synthetic_draws!r}")
        self.synthetic_draws = int(synthetic_draws)
        # normalised high-field volumes kept between reading and the split, for the extra draws
        self._simulation_sources: dict[str, tuple[Volume, Path]] = {}
        self.report_file = report_file
        self.pairs: dict[str, PairedVolume] = {}
        self.synthetic: list[PairedSegment] = []
        if synthetic_pattern and not hasattr(self.degradation, "simulate_volume"):
            raise ValueError(
                f"data.synthetic_pattern makes pairs with the low-field simulation; set degradation=lowfield "
                f"(got {type(self.degradation).__name__})"
            )

    # --- reading ---------------------------------------------------------------------------------
    def read_collection(self) -> tuple[dict[str, dict[str, Volume]], list[str], PairReport]:
        root = self.root
        if not root.is_dir():
            raise MissingFileError(f"data.root={str(root)!r} is not a directory")
        report = PairReport(str(root))
        if self.layout == "volumes":
            found = read_volume_layout(root, self.globs, self.name_regex, report)
        else:
            found = read_slice_layout(root, self.globs, self.name_regex, self.stack_axis, report)
        for field_name in FIELDS:
            if not found[field_name] and not any(p.field == field_name and p.subject for p in report.problems):
                report.add(None, field_name, f"no usable file matches {str(root / self.globs[field_name])!r}")
        subjects = check_pairs(found, report)
        return found, subjects, report

    def load_pairs(self) -> dict[str, PairedVolume]:
        found, subjects, report = self.read_collection()
        if any(p.subject is None for p in report.problems) and self.strict is False:
            log.warning("files that belong to no subject are ignored")
        pairs = {}
        for s in subjects:
            if s in report.bad_subjects:
                continue
            lf, hf = found["lf"][s], found["hf"][s]
            # the grids below centre one field on the other: a pair that is not one head is caught here
            apart = pair_overlap(lf.affine, lf.data.shape, hf.affine, hf.data.shape)
            if apart:
                report.add(s, None, apart, [lf.source, hf.source])
                continue
            pair = self.model_grids(s, lf, hf)
            unlike = pair_similarity(pair.lr, pair.hr)
            if unlike:
                report.add(s, None, unlike, [lf.source, hf.source])
                continue
            pairs[s] = pair
        drop = enforce(report, self.strict, self.report_file)
        kept = {s: p for s, p in pairs.items() if s not in drop}
        if not kept:
            raise DataError(f"no complete low-field/high-field pair is left in {self.root}: {report.format().splitlines()[0]}")
        return kept

    def load_synthetic(self) -> dict[str, PairedVolume]:
        """The first simulation of every volume of ``synthetic_pattern``, by ``sim-`` name."""
        from lfmri.data.folder import find_volumes

        pairs = {}
        for path in find_volumes(self.synthetic_pattern):
            hf = load_nifti(path)
            name = f"sim-{hf.name}"
            hf_target, _ = normalised(resample_volume(hf, self.hf_shape, self.hf_spacing), self.percentiles)
            pairs[name] = self.simulated_pair(name, hf_target, path, draw=0)
            if self.synthetic_draws > 1:
                self._simulation_sources[name] = (hf_target, path)
        return pairs

    def simulated_pair(self, name: str, hf_target: Volume, path: Path, draw: int) -> PairedVolume:
        """Draw ``draw`` of the low-field simulation of one normalised high-field volume.

        Each draw has its own blur, gamma, SNR and noise, seeded by the volume's name and the draw
        index; draw 0 is the one validation and test score against (unchanged by ``synthetic_draws``).
        """
        source_name = name.removeprefix("sim-")
        parts = ("lowfield", self.seed, source_name) if draw == 0 else ("lowfield", self.seed, source_name, int(draw))
        # simulated onto the grid the real low-field volumes are resampled to (data.lf_shape/lf_spacing)
        lf, lf_affine, params = self.degradation.simulate_volume(
            hf_target.data, hf_target.affine, derive_seed(*parts), grid=(self.lf_shape, self.lf_spacing)
        )
        log.info("%s: simulated low-field pair%s %s", path, f" (draw {draw})" if draw else "", params)
        lf_volume = Volume(lf, lf_affine, f"{path} (simulated low field)", hf_target.axcodes)
        return self.model_grids(name, lf_volume, hf_target, synthetic=True)

    def extra_draws(self, subjects: Sequence[str]) -> list[PairedSegment]:
        """Draws 1 .. synthetic_draws - 1 of the simulated ``subjects``, as training segments.

        Only training subjects get them: validation and test keep their single draw 0, so no draw
        of a held-out brain is ever trained on and scores stay comparable across settings.
        """
        segments = []
        for name in subjects:
            hf_target, path = self._simulation_sources[name]
            for draw in range(1, self.synthetic_draws):
                pair = self.simulated_pair(name, hf_target, path, draw)
                segments.append(self._prepare_pair(Segment(name, 0, pair.hr.shape[self.slice_axis]), pair))
        return segments

    # --- geometry --------------------------------------------------------------------------------
    def model_grids(self, name: str, lf: Volume, hf: Volume, synthetic: bool = False) -> PairedVolume:
        lf_target, lf_intensity = normalised(resample_volume(lf, self.lf_shape, self.lf_spacing), self.percentiles)
        hf_target, hf_intensity = normalised(resample_volume(hf, self.hf_shape, self.hf_spacing), self.percentiles)
        shape = hr_grid_shape(self.hf_shape, self.slice_axis, self.degradation.grid_scale)
        hr = hf_target.data[tuple(slice(0, n) for n in shape)]
        lr_shape, lr_affine = lr_grid(shape, hf_target.affine, self.slice_axis, self.degradation)
        # the two fields share a field of view: centre the low-field grid on the high-field one
        lf_affine = centred_on(lf_target.affine, self.lf_shape, hf_target.affine, self.hf_shape)
        upsampled = self.input_mode == "upsampled"
        lr_context = lr_up_context = None
        if self.context_slices:
            # neighbours a low-field slice apart (data.lf_spacing along the slice axis): the 1 mm grid's own
            # neighbours are interpolated from the same thick slices (lfmri.geometry.resample.thick_slice_neighbours)
            step_mm = self.lf_spacing[self.slice_axis]
            lr_context = _clip(thick_slice_neighbours(lf_target.data, lf_affine, lr_shape, lr_affine, self.slice_axis,
                                                      step_mm, self.context_slices))
            lr = lr_context[self.context_slices]
            if upsampled:
                lr_up_context = _clip(thick_slice_neighbours(lf_target.data, lf_affine, shape, hf_target.affine,
                                                             self.slice_axis, step_mm, self.context_slices))
            lr_up = lr_up_context[self.context_slices] if upsampled else None
        else:
            lr = _clip(resample_onto(lf_target.data, lf_affine, lr_shape, lr_affine))
            lr_up = _clip(resample_onto(lf_target.data, lf_affine, shape, hf_target.affine)) if upsampled else None
        return PairedVolume(name, hr, hf_target.affine, lr, lr_affine, lr_up, hf_intensity, lf_intensity,
                            hf.source, hf.axcodes, synthetic, lr_context, lr_up_context)

    # --- setup and loaders -----------------------------------------------------------------------
    def default_split(self, volumes: Mapping[str, NormalisedVolume]) -> Split:
        lengths = {name: nv.volume.data.shape[self.slice_axis] for name, nv in volumes.items()}
        if not self.subjects:
            return subject_split(lengths, self.fractions, self.seed)
        return explicit_split(lengths, self.subjects)

    def normalised_volumes(self) -> dict[str, NormalisedVolume]:
        """The high-field volumes of the pairs as the subjects (what the split and evaluation see);
        the pairs themselves, and the simulated training pairs, are kept for :meth:`_prepare`."""
        pairs = self.load_pairs() if self.root else {}
        synthetic = self.load_synthetic() if self.synthetic_pattern else {}
        self.pairs = pairs or synthetic  # without real pairs the simulated ones are the collection
        self.synthetic = [self._prepare_pair(Segment(n, 0, p.hr.shape[self.slice_axis]), p) for n, p in synthetic.items()] if pairs else []
        return {
            name: NormalisedVolume(Volume(p.hr, p.hr_affine, p.source, p.axcodes), p.hr_intensity) for name, p in self.pairs.items()
        }

    def _prepare(self, segment: Segment) -> PairedSegment:
        return self._prepare_pair(segment)

    def setup(self, stage: str | None = None) -> None:
        super().setup(stage)  # once: later calls find the split and no sources left
        if self.synthetic_draws > 1 and self._simulation_sources:
            # an extra draw joins the pool of its first draw: the training split when the simulated
            # pairs are the collection, the synthetic pool when they are mixed with real pairs
            if self.synthetic:
                self.synthetic += self.extra_draws(sorted(self._simulation_sources))
            else:
                train = sorted({seg.subject for seg in self.split.get("train", [])} & set(self._simulation_sources))
                self.prepared["train"] += self.extra_draws(train)
            log.info("%d simulation draws per training volume; training slices now %d (real) + %d (synthetic pool)",
                     self.synthetic_draws, sum(len(s.hr) for s in self.prepared["train"]), sum(len(s.hr) for s in self.synthetic))
        self._simulation_sources = {}

    def split_note(self) -> str:
        return f"; synthetic training slices: {sum(len(s.hr) for s in self.synthetic)}"

    def _prepare_pair(self, segment: Segment, pair: PairedVolume | None = None) -> PairedSegment:
        pair = pair or self.pairs[segment.subject]
        indices = self.selected_slices(pair.hr, segment)

        def slices(data: np.ndarray | None) -> torch.Tensor | None:
            if data is None:
                return None
            return torch.from_numpy(np.ascontiguousarray(take_slices(data, self.slice_axis)[indices]))

        def channel_slices(stack: np.ndarray | None) -> torch.Tensor | None:  # (n, 2K+1, h, w)
            return None if stack is None else torch.stack([slices(channel) for channel in stack], dim=1)

        return PairedSegment(segment.subject, indices, slices(pair.hr), slices(pair.lr), slices(pair.lr_up), pair.synthetic,
                             channel_slices(pair.lr_context), channel_slices(pair.lr_up_context))

    def eval_pair(self, subject: str):
        """For ``evaluate.py``: (slice index -> real-pair sample, LR-grid affine) of one subject."""
        pair = self.pairs[subject]

        def sample(index: int) -> dict[str, torch.Tensor]:
            views = {"hr": pair.hr, "lr": pair.lr, "lr_up": pair.lr_up}
            out = {k: torch.from_numpy(np.ascontiguousarray(take_slices(v, self.slice_axis)[index]))[None]
                   for k, v in views.items() if v is not None}
            for key, stack in (("lr_context", pair.lr_context), ("lr_up_context", pair.lr_up_context)):
                if stack is not None:  # the thick-slice neighbours, as training read them
                    out[key] = torch.from_numpy(np.stack([np.ascontiguousarray(take_slices(c, self.slice_axis)[index]) for c in stack]))
            out["lr_complex"] = out["lr"].to(torch.complex64)
            return out

        return sample, pair.lr_affine

    def split_dict(self) -> dict:
        if self.split is None:
            raise RuntimeError("the datamodule has not been set up yet")
        return split_to_dict(self.split)

    def train_dataset(self) -> PairedPatchDataset:
        if self.degrade_on == "device":
            log.info("data.degrade_on=device is not available for precomputed low-field pairs: "
                     "training patches are cut in the data loader")
        return PairedPatchDataset(
            self.prepared["train"], self.synthetic, self.degradation, self.patch_size, self.input_mode, self.seed,
            self.foreground_prob, self.foreground_threshold, self.synthetic_ratio, self.augment,
        )

    def eval_dataset(self, stage: str) -> PairedSliceDataset:
        return PairedSliceDataset(self.prepared[stage], self.degradation, self.input_mode, self.seed)
