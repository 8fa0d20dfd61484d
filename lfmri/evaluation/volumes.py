"""The volumes an evaluation scores: input files, or the test segments of the checkpoint's own data,
normalised and cut as the datamodule does."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from lfmri.data.datamodule import SliceDataModule
from lfmri.data.normalize import Intensity, percentile_intensity
from lfmri.data.splits import Segment
from lfmri.files import safe_name
from lfmri.geometry.inputs import Input, input_name, load_input
from lfmri.geometry.nifti import NiftiError, Volume
from lfmri.geometry.slicing import plane_problem

log = logging.getLogger(__name__)

@dataclass
class EvalVolume:
    """Slices ``start:stop`` of a normalised volume, of which ``scored`` count in the metrics."""

    name: str
    subject: str  # seeds the degradation, as in the datamodule
    volume: Volume
    intensity: Intensity
    start: int
    stop: int
    scored: np.ndarray
    # real pairs (data=paired_lowfield): slice index -> sample with the measured LR, and the LR grid
    pair: Callable[[int], dict[str, torch.Tensor]] | None = None
    lr_affine: np.ndarray | None = None
    # normalised intensities beyond the window [0, 1] that ``volume.data`` was clipped to (a bright
    # lesion above the 99.5th percentile); ``None`` where nothing lies beyond it or it is not kept
    excess: np.ndarray | None = None


def volumes_from_files(paths: Sequence[Input | str], datamodule: SliceDataModule) -> tuple[list[EvalVolume], dict[str, str]]:
    """Load every input and preprocess it as ``datamodule`` does (normalisation, slice selection).

    ``paths`` are files or DICOM series (:func:`lfmri.geometry.inputs.expand_inputs`). Returns the
    usable volumes and ``{input: problem}`` for the others: one bad file or series is reported by
    name and the rest are still evaluated.
    """
    if not paths:
        raise ValueError("inputs=[] names no volume; give inputs='[a.nii.gz,...]' or leave inputs out for the test split")
    names = [safe_name(input_name(p), "volume") for p in paths]
    out, failed = [], {}
    for path, name in zip(paths, names):
        try:
            if names.count(name) > 1:
                raise NiftiError(path, f"shares the output name {name!r} with another input; evaluate them separately")
            volume = load_input(path)
            problem = plane_problem(volume.data.shape, datamodule.slice_axis)
            if problem:
                raise NiftiError(path, problem)
            intensity = percentile_intensity(volume.data, datamodule.percentiles, volume.source)
            full = intensity.scale(volume.data)
            volume.data = np.clip(full, 0.0, 1.0)  # as the data modules read volumes: the window, clipped
            excess = full - volume.data
            whole = Segment(volume.name, 0, volume.data.shape[datamodule.slice_axis])
            scored = datamodule.selected_slices(volume.data, whole)
            out.append(EvalVolume(name, volume.name, volume, intensity, 0, whole.stop, scored,
                                  excess=excess if excess.any() else None))
        except Exception as err:  # whatever one input raises is its failure: the others are still evaluated
            failed[str(path)] = str(err) if isinstance(err, ValueError) else f"{path}: {type(err).__name__}: {err}"
            log.error("%s", failed[str(path)])
            log.debug("the failure of %s", path, exc_info=True)
    return out, failed


def volumes_from_datamodule(datamodule: SliceDataModule) -> list[EvalVolume]:
    """The test segments of a set-up datamodule."""
    segments = datamodule.split["test"]
    out = []
    for segment in segments:
        entry = datamodule.volumes[segment.subject]
        several = sum(s.subject == segment.subject for s in segments) > 1
        name = f"{segment.subject}_{segment.start}-{segment.stop}" if several else segment.subject
        scored = datamodule.selected_slices(entry.volume.data, segment)
        pair, lr_affine = datamodule.eval_pair(segment.subject) if hasattr(datamodule, "eval_pair") else (None, None)
        out.append(EvalVolume(safe_name(name, "volume"), segment.subject, entry.volume, entry.intensity, segment.start, segment.stop, scored, pair, lr_affine))
    return out
