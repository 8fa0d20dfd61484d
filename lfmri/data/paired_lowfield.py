"""Real paired low-field (64 mT) / high-field (3T) volumes, optionally mixed with simulated pairs.

Layouts under ``root`` (globs and name pattern configurable):

- ``volumes``: one NIfTI per subject and field, ``lf/{subject}.nii.gz`` and ``hf/{subject}.nii.gz``;
  the subject is the ``subject`` group of ``name_regex`` matched on the file name;
- ``slices``: one NIfTI per slice, as 64 mT/3T collections ship them; ``name_regex`` has named
  groups ``subject`` and ``slice``; slices are grouped by subject, sorted by slice index, singleton
  dimensions squeezed, and stacked along ``stack_axis`` (the first slice's affine places the stack).

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
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

from lfmri.data.datamodule import NormalisedVolume, SliceDataModule
from lfmri.data.datasets import PatchDataset, PreparedSegment, SliceDataset, derive_seed
from lfmri.geometry.nifti import NiftiError, Volume, check_header, glob_files, load_nifti, volume_from_image
from lfmri.data.normalize import Intensity, percentile_intensity
from lfmri.data.pair_validation import FIELDS, PairReport, enforce
from lfmri.geometry.resample import hr_grid_shape, lr_grid, resample_onto, resample_volume
from lfmri.geometry.slicing import take_slices
from lfmri.data.splits import Segment, Split, explicit_split, split_to_dict, subject_split
from lfmri.errors import ConfigError

log = logging.getLogger(__name__)

VOLUME_REGEX = r"(?P<subject>.+?)\.nii(\.gz)?$"
SLICE_REGEX = r"(?P<subject>.+?)_(?:slice)?(?P<slice>\d+)\.nii(\.gz)?$"


# --- reading a collection --------------------------------------------------------------------------
def _glob(root: Path, pattern: str) -> list[Path]:
    return glob_files(root / pattern)


def _compile(regex: str, groups: Sequence[str]) -> re.Pattern:
    try:
        compiled = re.compile(regex)
    except re.error as err:
        raise ValueError(f"data.name_regex={regex!r} is not a valid regular expression: {err}") from err
    missing = [g for g in groups if g not in compiled.groupindex]
    if missing:
        raise ValueError(f"data.name_regex={regex!r} needs the named groups {list(groups)}; missing {missing}")
    return compiled


def read_volume_layout(root: Path, globs: Mapping[str, str], regex: str, report: PairReport) -> dict[str, dict[str, Volume]]:
    """``{field: {subject: Volume}}`` for one file per subject and field; problems go to ``report``."""
    pattern = _compile(regex, ["subject"])
    found: dict[str, dict[str, Volume]] = {f: {} for f in FIELDS}
    for field_name in FIELDS:
        files: dict[str, list[Path]] = {}
        for path in _glob(root, globs[field_name]):
            match = pattern.search(path.name)
            if not match:
                report.add(None, field_name, f"file name does not match data.name_regex={regex!r}", [path])
                continue
            files.setdefault(match["subject"], []).append(path)
        for subject, paths in files.items():
            if len(paths) > 1:
                report.add(subject, field_name, "several files for one subject", paths)
                continue
            try:
                found[field_name][subject] = load_nifti(paths[0])
            except NiftiError as err:
                report.add(subject, field_name, err.problem, [err.path])
    return found


def _read_slice(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A 2D slice (singleton dimensions squeezed) and its file's affine; NiftiError names the file."""
    try:
        img = nib.load(str(path))
    except Exception as err:  # noqa: BLE001 - any reader failure is a bad file, reported with its name
        raise NiftiError(path, f"is not a readable NIfTI file ({type(err).__name__}: {err})") from err
    check_header(img, str(path))  # complex, RGB, degenerate affine, oversized header: before reading
    try:
        data = np.asarray(img.get_fdata(dtype=np.float32))
    except Exception as err:  # noqa: BLE001 - any reader failure is a bad file, reported with its name
        raise NiftiError(path, f"is not a readable NIfTI file ({type(err).__name__}: {err})") from err
    squeezed = data.squeeze()
    if squeezed.ndim != 2:
        raise NiftiError(path, f"has shape {data.shape}; a slice file must hold one 2D slice")
    bad = int(squeezed.size - np.count_nonzero(np.isfinite(squeezed)))
    if bad:
        raise NiftiError(path, f"contains {bad} NaN/Inf voxels")
    return squeezed, np.asarray(img.affine, dtype=np.float64)


def read_slice_layout(
    root: Path, globs: Mapping[str, str], regex: str, stack_axis: int, report: PairReport
) -> dict[str, dict[str, Volume]]:
    """``{field: {subject: Volume}}`` stacked from one file per slice; problems go to ``report``."""
    pattern = _compile(regex, ["subject", "slice"])
    found: dict[str, dict[str, Volume]] = {f: {} for f in FIELDS}
    for field_name in FIELDS:
        groups: dict[str, dict[int, list[Path]]] = {}
        for path in _glob(root, globs[field_name]):
            match = pattern.search(path.name)
            if not match:
                report.add(None, field_name, f"file name does not match data.name_regex={regex!r}", [path])
                continue
            groups.setdefault(match["subject"], {}).setdefault(int(match["slice"]), []).append(path)
        for subject, by_index in sorted(groups.items()):
            volume = _stack_subject(subject, field_name, by_index, stack_axis, report)
            if volume is not None:
                found[field_name][subject] = volume
    return found


def _stack_subject(subject: str, field_name: str, by_index: Mapping[int, list[Path]], stack_axis: int, report: PairReport) -> Volume | None:
    ok = True
    for index, paths in sorted(by_index.items()):
        if len(paths) > 1:
            report.add(subject, field_name, f"slice index {index} appears {len(paths)} times", paths)
            ok = False
    indices = sorted(by_index)
    missing = sorted(set(range(indices[0], indices[-1] + 1)) - set(indices))
    if missing:
        report.add(subject, field_name, f"missing slice indices {missing} (found {indices[0]}..{indices[-1]})",
                   [by_index[indices[0]][0].parent])
        ok = False
    slices, affines, files = [], [], []
    for index in indices:
        path = by_index[index][0]
        try:
            data, affine = _read_slice(path)
        except NiftiError as err:
            report.add(subject, field_name, err.problem, [err.path])
            ok = False
            continue
        slices.append(data)
        affines.append(affine)
        files.append(path)
    shapes = {}
    for data, path in zip(slices, files):
        shapes.setdefault(data.shape, []).append(path)
    if len(shapes) > 1:
        common = max(shapes, key=lambda s: len(shapes[s]))
        odd = [p for s, paths in shapes.items() if s != common for p in paths]
        report.add(subject, field_name, f"slices of different shapes {sorted(shapes)}; most are {common}", odd)
        ok = False
    if not ok or not slices:
        return None
    source = str(files[0].parent / f"{subject}_*")
    stacked = np.stack(slices, axis=stack_axis)
    try:
        return volume_from_image(nib.Nifti1Image(stacked, affines[0]), source)
    except NiftiError as err:
        report.add(subject, field_name, err.problem, files)
        return None


def check_pairs(found: Mapping[str, Mapping[str, Volume]], report: PairReport) -> list[str]:
    """Subjects with both fields; one-field subjects (and fields with no file at all) are reported."""
    lf, hf = set(found["lf"]), set(found["hf"])
    failed = report.bad_subjects
    for subject in sorted((lf ^ hf) - failed):
        have = "lf" if subject in lf else "hf"
        other = "hf" if have == "lf" else "lf"
        report.add(subject, other, f"present in {have} only; no {other} data", [found[have][subject].source])
    return sorted(lf & hf)


# --- the model grids -------------------------------------------------------------------------------
@dataclass
class PairedSegment(PreparedSegment):
    """Paired slices of one split segment: ``hr`` (n, H, W), ``lr`` on the LR grid, ``lr_up`` on HR."""

    lr: torch.Tensor = None  # type: ignore[assignment]
    lr_up: torch.Tensor | None = None
    synthetic: bool = False


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


def normalised(volume: Volume, percentiles: Sequence[float]) -> tuple[Volume, Intensity]:
    intensity = percentile_intensity(volume.data, percentiles, volume.source)
    return Volume(intensity.apply(volume.data), volume.affine, volume.source, volume.axcodes), intensity


def _clip(data: np.ndarray) -> np.ndarray:
    return np.clip(data, 0.0, 1.0).astype(np.float32)


# --- datasets --------------------------------------------------------------------------------------
def _pair_sample(seg: PairedSegment, i: int) -> dict[str, torch.Tensor]:
    lr = seg.lr[i][None]
    sample = {"hr": seg.hr[i][None], "lr": lr, "lr_complex": lr.to(torch.complex64)}
    if seg.lr_up is not None:
        sample["lr_up"] = seg.lr_up[i][None]
    return sample


class PairedPatchDataset(PatchDataset):
    """Random training patches of paired slices; a patch comes from the synthetic pairs with
    probability ``synthetic_ratio`` (when there are any), from the real ones otherwise."""

    def __init__(self, real: Sequence[PairedSegment], synthetic: Sequence[PairedSegment], degradation, patch_size: int,
                 input_mode: str, seed: int, foreground_prob: float, foreground_threshold: float, synthetic_ratio: float,
                 augment=None) -> None:
        # PatchDataset's checks and patch geometry, without concatenating every slice into one copy
        segments = [*real, *synthetic]
        if not any(len(s.hr) for s in segments):
            raise ValueError("the training split has no slices with foreground")
        if patch_size % degradation.scale:
            raise ValueError(f"data.patch_size={patch_size} must be a multiple of the scale x{degradation.scale}")
        smallest = min(min(s.hr.shape[-2:]) for s in segments if len(s.hr))
        if patch_size > smallest:
            raise ValueError(f"data.patch_size={patch_size} is larger than the HR slices ({smallest} pixels)")
        self.degradation, self.seed = degradation, seed
        self.foreground_prob, self.foreground_threshold = foreground_prob, foreground_threshold
        self.hr_patch, self.lr_patch = patch_size, patch_size // degradation.grid_scale
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
        for name in ("hr", "lr", "lr_up"):
            if name not in sample or (name == "lr_up" and self.input_mode != "upsampled"):
                continue
            size, (oy, ox) = (self.lr_patch, (y0, x0)) if name == "lr" else (self.hr_patch, (y0 * step, x0 * step))
            crops[name] = sample[name][..., oy : oy + size, ox : ox + size]
        return self.augment.pair(crops, gen) if self.augment is not None else crops


class PairedSliceDataset(SliceDataset):
    """Whole paired slices for validation and test (the real LR: nothing is drawn)."""

    def __getitem__(self, index: int) -> dict:
        seg, i = self.items[index]
        sample = _pair_sample(seg, i)
        if self.input_mode != "upsampled":
            sample.pop("lr_up", None)
        return {**sample, "subject": seg.subject, "slice": int(seg.slice_indices[i])}


# --- the datamodule --------------------------------------------------------------------------------
class PairedLowFieldDataModule(SliceDataModule):
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
        if self.context_slices:
            # the measured LR here is a thick-slice volume on its own grid, paired slice by slice with the
            # HR: neighbours would have to come from that LR grid, which this module does not build yet
            raise ConfigError("data=paired_lowfield reads one slice per sample: multi-slice input (context_slices="
                              f"{self.context_slices}) is available for the synthetic data modules (folder, ixi, mni152, "
                              "fastmri); set context_slices=0")
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
            raise FileNotFoundError(f"data.root={str(root)!r} is not a directory")
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
        drop = enforce(report, self.strict, self.report_file)
        kept = [s for s in subjects if s not in drop]
        if not kept:
            raise ValueError(f"no complete low-field/high-field pair is left in {self.root}\n{report.format()}")
        return {s: self.model_grids(s, found["lf"][s], found["hf"][s]) for s in kept}

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
        lf_affine = lf_target.affine.copy()
        hf_centre = hf_target.affine @ np.r_[(np.asarray(self.hf_shape) - 1) / 2, 1.0]
        lf_centre = lf_affine @ np.r_[(np.asarray(self.lf_shape) - 1) / 2, 1.0]
        lf_affine[:3, 3] += (hf_centre - lf_centre)[:3]
        lr = _clip(resample_onto(lf_target.data, lf_affine, lr_shape, lr_affine))
        lr_up = _clip(resample_onto(lf_target.data, lf_affine, shape, hf_target.affine)) if self.input_mode == "upsampled" else None
        return PairedVolume(name, hr, hf_target.affine, lr, lr_affine, lr_up, hf_intensity, lf_intensity,
                            hf.source, hf.axcodes, synthetic)

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

        return PairedSegment(segment.subject, indices, slices(pair.hr), slices(pair.lr), slices(pair.lr_up), pair.synthetic)

    def eval_pair(self, subject: str):
        """For ``evaluate.py``: (slice index -> real-pair sample, LR-grid affine) of one subject."""
        pair = self.pairs[subject]

        def sample(index: int) -> dict[str, torch.Tensor]:
            views = {"hr": pair.hr, "lr": pair.lr, "lr_up": pair.lr_up}
            out = {k: torch.from_numpy(np.ascontiguousarray(take_slices(v, self.slice_axis)[index]))[None]
                   for k, v in views.items() if v is not None}
            out["lr_complex"] = out["lr"].to(torch.complex64)
            return out

        return sample, pair.lr_affine

    def split_dict(self) -> dict:
        if self.split is None:
            raise RuntimeError("the datamodule has not been set up yet")
        return split_to_dict(self.split)

    def train_dataset(self) -> PairedPatchDataset:
        return PairedPatchDataset(
            self.prepared["train"], self.synthetic, self.degradation, self.patch_size, self.input_mode, self.seed,
            self.foreground_prob, self.foreground_threshold, self.synthetic_ratio, self.augment,
        )

    def eval_dataset(self, stage: str) -> PairedSliceDataset:
        return PairedSliceDataset(self.prepared[stage], self.degradation, self.input_mode, self.seed)
