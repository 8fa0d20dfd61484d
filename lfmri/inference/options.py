"""The options of ``lfmri-predict``, declared without importing torch.

``lfmri-predict --help`` builds its text from this dataclass (field comments are the descriptions,
:func:`lfmri.cli.options.descriptions`), so this module imports nothing heavy: help stays fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from omegaconf import MISSING

from lfmri.run_options import RunOptions


@dataclass
class PredictConfig(RunOptions):
    """The options of ``lfmri-predict`` (``key=value``; :mod:`lfmri.cli.predict`): where and how the
    network runs (:class:`lfmri.run_options.RunOptions`: device, precision, backend, batch_size,
    tile_size, tile_overlap, channels_last, progress), then these."""

    ckpt_path: Optional[str] = None  # a trained checkpoint, or:
    pretrained: Optional[str] = None  # a network shipped with lfmri (lfmri-pretrained list)
    inputs: list[str] = MISSING  # files, folders and/or globs of NIfTI/MGH volumes, DICOM folders (lfmri.geometry.inputs)
    output_dir: str = MISSING  # folder for NAME_sr.nii.gz and the other outputs (created if missing)
    overwrite: bool = False  # replace outputs that already exist (otherwise that input is refused)
    onnx_path: str | None = None  # an lfmri-export .onnx file of this checkpoint, for backend=onnxruntime
    threads: int | None = None  # CPU threads (default: torch's)
    workers: int = 1  # volumes predicted at once, in separate processes with one thread each (CPU)
    data_consistency: bool = False  # k-space-trained checkpoints: keep the measured central k-space
    tta: bool = False  # uncertainty from the 8 flips/rotations
    self_ensemble: bool = False  # the SR image is the mean over the 8 flips/rotations (8x the time; with tta=true, free)
    mc_samples: int = 0  # uncertainty from N Monte-Carlo dropout passes (networks with dropout)
    preview: bool = True  # NAME_views.png: three orthogonal views of the scan and the SR output
    trust_targets: list[str] = field(default_factory=list)  # module prefixes (besides lfmri) a checkpoint may name
    # each scan is compared with the input the checkpoint's card says it expects (voxel sizes, slice
    # thickness, field of view): warn (default: the output is still written, the log names what is off),
    # refuse (that scan fails with the reason, the others run) or ignore. lfmri.geometry.scan_contract
    contract: str = "warn"
