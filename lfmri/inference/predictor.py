"""A checkpoint's network applied to real scans, volume by volume: what ``lfmri-predict`` runs.

Everything about the network comes from the checkpoint (its config and model card): scale, input
mode, the percentile normalisation, the slice axis and the sampling grid of its degradation. Each
volume is read in canonical orientation, normalised, cut into slices along the training axis and
run through the loop evaluate uses (:mod:`lfmri.inference.volume`: batches, tiles above
``tile_size``, the chosen precision), mapped back to the input's intensity range and written as
float32 NIfTI (or MGH) in the input's orientation. The output grid is where the degradation's
``scan_maps`` put the scan's pixels (:func:`lfmri.geometry.affines.output_affines`), so the field
of view stays aligned with the input. Checkpoints trained on real pairs (``data=paired_lowfield``)
first resample the scan as training did (:func:`lfmri.geometry.resample.scan_on_model_grid`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from lfmri.checkpoints.load import CheckpointError
from lfmri.checkpoints.stored_run import StoredRun, shipped_contracts
from lfmri.contracts import centre_slice, check_compatible, context_slices, input_mode
from lfmri.errors import ConfigError
from lfmri.data.normalize import percentile_intensity
from lfmri.data.paired_lowfield import PairedLowFieldDataModule
from lfmri.degrade.degradations import Degradation
from lfmri.degrade.kspace import resize_complex
from lfmri.geometry.affines import output_affines
from lfmri.files import safe_name, written_together
from lfmri.geometry.inputs import Input, input_name
from lfmri.geometry.nifti import NiftiError, Volume, voxel_sizes
from lfmri.geometry.resample import scan_neighbours_on_model_grid, scan_on_model_grid
from lfmri.geometry.scan_contract import check_mode, contract_of, enforce_contract
from lfmri.geometry.slicing import context_stack, plane_problem, take_slices
from lfmri.inference import consistency
from lfmri.inference.network import network_forward, resolve_device
from lfmri.inference.options import PredictConfig  # noqa: F401  (declared without torch, for a fast --help)
from lfmri.inference.uncertainty import DIHEDRAL, IDENTITY, mc_dropout
from lfmri.inference.volume import NetworkRunner, VolumeLoop, carry_out_of_window
from lfmri.scoring.figures import difference_on_grid, orthogonal_views


class Predictor:
    """A checkpoint's network with its preprocessing, applied slice by slice to whole volumes.

    Args:
        run: the checkpoint (:class:`lfmri.checkpoints.stored_run.StoredRun`): its config rebuilds
            degradation and network; its card names the outputs' provenance.
        cfg: the options of ``lfmri-predict`` (:class:`PredictConfig`).
    """

    def __init__(self, run: StoredRun, cfg: PredictConfig) -> None:
        self.card = run.card
        train_cfg = run.config
        self.degradation: Degradation = run.degradation()
        self.slice_axis = int(train_cfg.data.slice_axis)
        if self.slice_axis not in (0, 1, 2):
            raise CheckpointError(f"{run.source}: its stored data.slice_axis={self.slice_axis} is not an axis of a volume (0, 1 or 2)")
        self.percentiles = list(train_cfg.data.percentiles)
        self.device = torch.device(resolve_device(cfg.device))
        self.net: nn.Module = run.network().to(self.device)
        try:
            check_compatible(self.net, self.degradation)  # a checkpoint whose model.scale and degradation disagree
        except ConfigError as err:
            raise CheckpointError(f"{run.source}: {err}") from None
        self.mode = input_mode(self.net)
        self.context = context_slices(self.net)  # neighbouring slices on each side it reads
        if self.mode == "lr_complex":
            raise CheckpointError(f"{cfg.ckpt_path}: {type(self.net).__name__} reads complex k-space data, which NIfTI magnitude scans do not hold")
        self.scale = int(self.degradation.scale)
        if cfg.mc_samples > 0 and cfg.backend != "torch":
            raise ValueError(f"mc_samples={cfg.mc_samples} needs backend=torch (dropout is fixed in an exported file)")
        if cfg.workers < 1:
            raise ValueError(f"workers={cfg.workers}; expected a number of processes >= 1")
        if cfg.workers > 1 and self.device.type != "cpu":
            raise ValueError(f"workers={cfg.workers} runs volumes in parallel CPU processes; use device=cpu or workers=1")
        # the same forward as evaluate.py: memory format, precision, backend (lfmri.inference.network)
        forward = network_forward(self.net, self.device, cfg.precision, cfg.backend, cfg.channels_last,
                                  self.card, cfg.onnx_path)
        self.runner = NetworkRunner(self.net, forward, cfg.tile_size, cfg.tile_overlap, cfg.self_ensemble, self.degradation)  # evaluate's runner too
        self.loop = VolumeLoop(self.slice_axis, cfg.batch_size, cfg.progress)
        if cfg.data_consistency and not self.degradation.has_phase:
            raise ValueError(
                f"data_consistency=true needs a checkpoint trained with a k-space degradation; "
                f"{cfg.ckpt_path} used {type(self.degradation).__name__}"
            )
        # trained on real pairs (data=paired_lowfield): scans are resampled onto the grid of training
        self.paired_data = train_cfg.data if issubclass(run.data_class(), PairedLowFieldDataModule) else None
        if cfg.data_consistency and self.paired_data is not None:
            raise ValueError(
                f"data_consistency=true assumes the scan is the central k-space of the output; {cfg.ckpt_path} was "
                "trained on real low-field pairs resampled onto a model grid, where that does not hold"
            )
        self.cfg = cfg
        self.description = run.provenance(self.scale)
        self.contract = contract_of(self.card)
        check_mode(cfg.contract)

    @property
    def input_on_hr_grid(self) -> bool:
        """Pre-upsampled networks trained on real pairs read the scan resampled onto the HR grid."""
        return self.paired_data is not None and self.mode == "upsampled"

    def network_input(self, lr: torch.Tensor) -> torch.Tensor:
        """(B, 1, h, w) LR slices as the network reads them (LR grid, or upsampled to the HR grid)."""
        if self.mode != "upsampled" or self.input_on_hr_grid:
            return lr
        hr_shape = (lr.shape[-2] * self.scale, lr.shape[-1] * self.scale)
        if self.degradation.grid_scale == 1:  # trained on zero-filled k-space: zero-fill the scan
            return resize_complex(lr, hr_shape).abs()
        return self.degradation.upsample(lr, hr_shape)

    @torch.no_grad()
    def slices(self, lr: torch.Tensor, excess: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Outputs for a batch of (B, 1, h, w) LR slices (B, 2K+1, h, w with their K neighbours on each
        side for a multi-slice network), normalised and clipped to the window as in training: ``sr``
        and the optional maps. ``excess`` (B, 1, h, w): what the clip took from the centre slices
        (:func:`lfmri.inference.volume.carry_out_of_window`), added to ``sr`` on its grid."""
        lr = lr.to(self.device)
        x = self.network_input(lr)
        lr = centre_slice(lr, self.context)
        out = {}
        spread = None
        if self.cfg.tta or self.cfg.mc_samples > 0:
            with mc_dropout(self.net, self.cfg.mc_samples > 0):
                transforms = DIHEDRAL if self.cfg.tta else IDENTITY
                spread = self.runner.spread(x, transforms, max(1, self.cfg.mc_samples))
            out["uncertainty"] = spread[1]
        # the TTA mean is the self-ensemble: no second set of 8 passes (not so with dropout active)
        sr = spread[0] if spread is not None and self.runner.self_ensemble and self.cfg.mc_samples == 0 else self.runner(x)
        if self.cfg.data_consistency:  # the scan itself is the measurement, on the LR grid
            out["consistency"] = consistency.consistency_error(sr, lr, self.scale)
            sr = consistency.enforce(sr, lr, self.scale).abs()
        if excess is not None:
            hr_shape = sr.shape[-2:]
            sr = sr + carry_out_of_window(excess.to(sr.device, sr.dtype), hr_shape, self.degradation.scan_maps(hr_shape))
        out["sr"] = sr
        return {k: v[:, 0] for k, v in out.items()}

    def output_paths(self, source: Input | Volume) -> dict[str, Path]:
        """The files written for ``source`` (an input of :func:`~lfmri.geometry.inputs.expand_inputs` or its volume)."""
        name = safe_name(input_name(source), "volume")
        kinds = ["sr"]
        if self.cfg.data_consistency:
            kinds.append("consistency")
        if self.cfg.tta or self.cfg.mc_samples > 0:
            kinds.append("uncertainty")
        # FreeSurfer input, FreeSurfer output; NIfTI for everything else (DICOM series included)
        suffix = ".mgz" if str(source.source if isinstance(source, Volume) else source).lower().endswith(".mgz") else ".nii.gz"
        paths = {k: Path(self.cfg.output_dir) / f"{name}_{k}{suffix}" for k in kinds}
        if self.cfg.preview:
            paths["views"] = Path(self.cfg.output_dir) / f"{name}_views.png"
        return paths

    def volume(self, volume: Volume) -> dict[str, Path]:
        """Super-resolve one volume and write its outputs (all of them, or none when anything fails)."""
        paths = self.output_paths(volume)
        Path(self.cfg.output_dir).mkdir(parents=True, exist_ok=True)
        with written_together(paths, overwrite=self.cfg.overwrite) as staging:
            self._volume(volume, staging)
        return paths

    def _volume(self, volume: Volume, paths: dict[str, Path]) -> None:
        enforce_contract(volume, self.contract, self.card.get("name") or str(self.cfg.ckpt_path), self.cfg.contract, "scan",
                         alternatives=shipped_contracts)
        neighbours = None
        if self.paired_data is not None and self.context:
            # as in training: neighbours a low-field slice apart, not the 1 mm grid's own
            volume, neighbours = scan_neighbours_on_model_grid(volume, self.paired_data, self.degradation,
                                                               self.input_on_hr_grid, self.context)
        elif self.paired_data is not None:
            volume = scan_on_model_grid(volume, self.paired_data, self.degradation, upsampled=self.input_on_hr_grid)
        problem = plane_problem(volume.data.shape, self.slice_axis)
        if problem:
            raise NiftiError(volume.source, problem)
        intensity = percentile_intensity(volume.data, self.percentiles, volume.source)
        # the network reads the scan clipped to its window, as in training; what lies beyond the window
        # (a lesion brighter than the 99.5th percentile) is carried past it and added to its output
        full = intensity.scale(volume.data)
        scan = np.clip(full, 0.0, 1.0)
        lr_all = torch.from_numpy(np.ascontiguousarray(take_slices(scan, self.slice_axis)))
        excess_all = torch.from_numpy(np.ascontiguousarray(take_slices(full - scan, self.slice_axis)))
        # a multi-slice network reads each slice with its neighbours (edges repeat the outermost slice)
        if neighbours is not None:  # (n, 2K+1, h, w), clipped to the window like the centre
            stack = intensity.apply(neighbours)
            context_all = torch.stack([torch.from_numpy(np.ascontiguousarray(take_slices(c, self.slice_axis))) for c in stack], 1)
            batch_input = lambda indices: context_all[list(indices)]  # noqa: E731
        else:
            batch_input = lambda indices: context_stack(lr_all, indices, self.context)  # noqa: E731
        volumes = self.loop.run(volume.name, range(len(lr_all)),
                                lambda indices: self.slices(batch_input(indices), excess_all[list(indices)][:, None]))
        given = "output" if self.input_on_hr_grid else "scan"
        grids = output_affines(volume.affine, volume.data.shape, self.slice_axis, self.degradation, given)
        affines = {kind: grids["lr" if kind == "consistency" else "hr"] for kind in volumes}  # |D(SR) - LR|: the scan's grid
        if self.cfg.preview:
            # in the scan's own units (as written), on one grey window from the scan's brain (1st-99.5th
            # percentile: white matter not saturated), maps with a labelled colour bar, a zoom where SR differs
            sr = intensity.restore_bounded(volumes["sr"])
            original = np.asarray(volume.data, dtype=np.float32)
            width = intensity.high - intensity.low
            views = {"scan": (original, volume.zooms), "SR": (sr, voxel_sizes(affines["sr"])),
                     "|SR - scan|": (difference_on_grid(sr, affines["sr"], original, volume.affine), voxel_sizes(affines["sr"]))}
            for kind in ("consistency", "uncertainty"):
                if kind in volumes:
                    views[kind] = (volumes[kind] * width, voxel_sizes(affines[kind]))
            orthogonal_views(paths["views"], views, title=f"{volume.name}: {self.card.get('name', 'model')} x{self.scale}",
                             colour_maps=("|SR - scan|", "consistency", "uncertainty"), axcodes=volume.axcodes,
                             map_unit="scan intensity units", inset_from="|SR - scan|")
        # std and |difference| maps are scaled, not shifted, back to the input's units
        self.loop.write(paths, volumes, affines, volume.axcodes, intensity, self.description, maps=("consistency", "uncertainty"),
                        space_code=volume.space_code)
