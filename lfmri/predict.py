"""Apply a trained checkpoint to real low-field volumes: ``python -m lfmri.predict`` / ``lfmri-predict``.

    python -m lfmri.predict ckpt_path=CKPT inputs='[scan.nii.gz,folder/]' output_dir=DIR \
        [data_consistency=true] [tta=true] [mc_samples=N] [tile_size=256] [device=cuda precision=bf16]

Everything about the network comes from the checkpoint (its config and model card): scale, input
mode, the percentile normalisation, the slice axis and the sampling grid of its degradation. Each
volume is read in canonical orientation, normalised, cut into slices along the training axis,
super-resolved in batches (tiled above ``tile_size`` so memory stays bounded), mapped back to the
input's intensity range and written as float32 NIfTI in the input's orientation. The in-plane voxel
sizes are divided by the scale and the affine places the output grid where the degradation's grid
says it sits, so the field of view stays aligned with the input (within half an output voxel).
Checkpoints trained on real pairs (``data=paired_lowfield``) first resample the scan as training
did (``data.lf_shape``/``lf_spacing``, then the LR grid of ``data.hf_shape``/``hf_spacing``, or that
high-field grid for pre-upsampled networks), so the output lies on the configured 3T grid.

Outputs per input ``NAME``: ``NAME_sr.nii.gz``; with ``data_consistency=true`` the SR after data
consistency plus ``NAME_consistency.nii.gz`` (|D(SR) - LR| of the network's raw output, on the
input grid); with ``tta=true`` or ``mc_samples>0`` ``NAME_uncertainty.nii.gz`` (per-voxel std of
the predictions); ``NAME_views.png``, three orthogonal views of scan and SR (``preview=false`` skips). Existing files are never replaced unless ``overwrite=true``; a bad input is
reported by name and the other volumes still run (exit status 1 if any failed).
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import MISSING, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from torch import nn

from lfmri import consistency
from lfmri.checkpoint import METADATA_KEY, CheckpointError, build_network, load_checkpoint
from lfmri.data.degradations import Degradation
from lfmri.data.grid import lr_axis_map, map_affine
from lfmri.data.inputs import expand_inputs
from lfmri.data.io import NiftiError, Volume, load_nifti, save_nifti, subject_name, voxel_sizes
from lfmri.data.kspace import resize_complex
from lfmri.data.normalize import percentile_intensity
from lfmri.data.paired_lowfield import scan_on_model_grid
from lfmri.data.slicing import in_plane_axes, put_slices, take_slices
from lfmri.evaluation import provenance, resolve_device
from lfmri.figures import orthogonal_views
from lfmri.progress import progress
from lfmri.inference import channels_last_forward, output_scale, predict
from lfmri.models.base import input_mode
from lfmri.tiling import tiled
from lfmri.uncertainty import DIHEDRAL, IDENTITY, mc_dropout, predictive_spread

log = logging.getLogger(__name__)

PRECISIONS = {"32": None, "bf16": torch.bfloat16, "16": torch.float16}


@dataclass
class PredictConfig:
    ckpt_path: str = MISSING
    inputs: list[str] = MISSING  # files, folders and/or globs of NIfTI/MGH volumes (lfmri.data.inputs)
    output_dir: str = MISSING
    overwrite: bool = False
    device: str = "auto"  # auto | cpu | cuda | cuda:1 ...
    precision: str = "32"  # 32 | bf16 | 16 (16 on GPU only): autocast for the network
    threads: int | None = None  # CPU threads (default: torch's)
    batch_size: int = 8  # slices per forward pass
    tile_size: int = 256  # model-input pixels; larger slices are tiled
    tile_overlap: int = 32  # pixels shared by neighbouring tiles (exact for receptive radius <= overlap/4)
    channels_last: bool = True
    data_consistency: bool = False  # k-space-trained checkpoints: keep the measured central k-space
    tta: bool = False  # uncertainty from the 8 flips/rotations
    mc_samples: int = 0  # uncertainty from N Monte-Carlo dropout passes (networks with dropout)
    progress: bool = True
    preview: bool = True  # NAME_views.png: three orthogonal views of the scan and the SR output


def nifti_inputs(entries: Sequence[str] | str) -> list[Path]:
    """The volume files named by ``inputs``: the grammar shared with evaluate.py (a file, a list,
    a folder or a glob), see :mod:`lfmri.data.inputs`."""
    return expand_inputs(entries)


def output_grid(affine: np.ndarray, slice_axis: int, scale: int, grid: str, lr_shape: Sequence[int]) -> np.ndarray:
    """Affine of the SR volume: in-plane, HR pixel i sits where the degradation's grid puts it."""
    axes = in_plane_axes(slice_axis)
    return map_affine(affine, {a: lr_axis_map(grid, scale, n).inverse() for a, n in zip(axes, lr_shape)})


class Predictor:
    """A checkpoint's network with its preprocessing, applied slice by slice to whole volumes."""

    def __init__(self, checkpoint: dict, cfg: PredictConfig) -> None:
        meta = checkpoint[METADATA_KEY]
        self.card = meta.get("card", {})
        train_cfg = OmegaConf.create(meta["config"])
        self.degradation: Degradation = instantiate(train_cfg.degradation)
        self.slice_axis = int(train_cfg.data.slice_axis)
        self.percentiles = list(train_cfg.data.percentiles)
        self.device = torch.device(resolve_device(cfg.device))
        self.net: nn.Module = build_network(checkpoint).to(self.device)
        self.mode = input_mode(self.net)
        if self.mode == "lr_complex":
            raise CheckpointError(f"{cfg.ckpt_path}: {type(self.net).__name__} reads complex k-space data, which NIfTI magnitude scans do not hold")
        self.scale = int(self.degradation.scale)
        self.forward = channels_last_forward(self.net) if cfg.channels_last else self.net
        if cfg.precision not in PRECISIONS:
            raise ValueError(f"precision={cfg.precision!r}; expected one of {list(PRECISIONS)}")
        if cfg.precision == "16" and self.device.type != "cuda":
            raise ValueError("precision=16 needs a GPU (device=cuda); use precision=bf16 or 32 on CPU")
        self.dtype = PRECISIONS[cfg.precision]
        if cfg.data_consistency and not self.degradation.has_phase:
            raise ValueError(
                f"data_consistency=true needs a checkpoint trained with a k-space degradation; "
                f"{cfg.ckpt_path} used {type(self.degradation).__name__}"
            )
        # trained on real pairs (data=paired_lowfield): scans are resampled onto the grid of training
        self.paired_data = train_cfg.data if str(train_cfg.data.get("_target_", "")).endswith("PairedLowFieldDataModule") else None
        if cfg.data_consistency and self.paired_data is not None:
            raise ValueError(
                f"data_consistency=true assumes the scan is the central k-space of the output; {cfg.ckpt_path} was "
                "trained on real low-field pairs resampled onto a model grid, where that does not hold"
            )
        self.cfg = cfg
        self.description = provenance(self.card, self.scale, cfg.ckpt_path)

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

    def run(self, x: torch.Tensor) -> torch.Tensor:
        """The network on a (B, 1, h, w) input of any size: padded, tiled, autocast."""
        autocast = (torch.autocast(self.device.type, dtype=self.dtype) if self.dtype is not None
                    else contextlib.nullcontext())

        def one(tile: torch.Tensor) -> torch.Tensor:
            with autocast:
                return predict(self.net, tile, forward=self.forward).float()

        return tiled(one, x, output_scale(self.net), self.cfg.tile_size, self.cfg.tile_overlap)

    @torch.no_grad()
    def slices(self, lr: torch.Tensor) -> dict[str, torch.Tensor]:
        """Outputs for a batch of (B, 1, h, w) LR slices: ``sr`` and the optional maps."""
        lr = lr.to(self.device)
        x = self.network_input(lr)
        sr = self.run(x)
        out = {}
        if self.cfg.data_consistency:  # the scan itself is the measurement, on the LR grid
            out["consistency"] = consistency.consistency_error(sr, lr, self.scale)
            sr = consistency.enforce(sr, lr, self.scale).abs()
        if self.cfg.tta or self.cfg.mc_samples > 0:
            with mc_dropout(self.net, self.cfg.mc_samples > 0):
                transforms = DIHEDRAL if self.cfg.tta else IDENTITY
                _, out["uncertainty"] = predictive_spread(self.run, x, transforms, max(1, self.cfg.mc_samples))
        out["sr"] = sr
        return {k: v[:, 0].cpu() for k, v in out.items()}

    def output_paths(self, source: Path) -> dict[str, Path]:
        name = subject_name(source)
        kinds = ["sr"]
        if self.cfg.data_consistency:
            kinds.append("consistency")
        if self.cfg.tta or self.cfg.mc_samples > 0:
            kinds.append("uncertainty")
        suffix = ".mgz" if str(source).endswith(".mgz") else ".nii.gz"  # FreeSurfer input, FreeSurfer output
        paths = {k: Path(self.cfg.output_dir) / f"{name}_{k}{suffix}" for k in kinds}
        if self.cfg.preview:
            paths["views"] = Path(self.cfg.output_dir) / f"{name}_views.png"
        return paths

    def volume(self, volume: Volume) -> dict[str, Path]:
        """Super-resolve one volume and write its outputs."""
        paths = self.output_paths(Path(volume.source))
        if self.paired_data is not None:
            volume = scan_on_model_grid(volume, self.paired_data, self.degradation, upsampled=self.input_on_hr_grid)
        intensity = percentile_intensity(volume.data, self.percentiles, volume.source)
        lr_all = torch.from_numpy(np.ascontiguousarray(take_slices(intensity.apply(volume.data), self.slice_axis)))
        outputs: dict[str, list[torch.Tensor]] = {}
        bar = progress(len(lr_all), volume.name, "slice", enabled=self.cfg.progress)
        for first in range(0, len(lr_all), self.cfg.batch_size):
            for kind, value in self.slices(lr_all[first : first + self.cfg.batch_size, None]).items():
                outputs.setdefault(kind, []).append(value)
            bar.update(min(self.cfg.batch_size, len(lr_all) - first))
        bar.close()
        lr_shape = lr_all.shape[-2:]
        hr_affine = (volume.affine if self.input_on_hr_grid
                     else output_grid(volume.affine, self.slice_axis, self.scale, self.degradation.grid, lr_shape))
        volumes = {k: put_slices(torch.cat(v).numpy(), self.slice_axis) for k, v in outputs.items()}
        if self.cfg.preview:
            views = {"scan": (intensity.apply(volume.data), volume.zooms), "SR": (volumes["sr"].clip(0, 1), voxel_sizes(hr_affine))}
            if "consistency" in volumes:  # |D(SR) - LR|, on the scan's grid
                views["consistency"] = (volumes["consistency"], volume.zooms)
            if "uncertainty" in volumes:
                views["uncertainty"] = (volumes["uncertainty"], voxel_sizes(hr_affine))
            orthogonal_views(paths["views"], views, title=f"{volume.name}: {self.card.get('name', 'model')} x{self.scale}",
                             colour_maps=("consistency", "uncertainty"))
        for kind, data in volumes.items():
            if kind == "sr":
                data = intensity.restore(data)
            else:  # std and |difference| maps: scaled, not shifted, back to the input's units
                data = data * (intensity.high - intensity.low)
            affine = volume.affine if kind == "consistency" else hr_affine
            save_nifti(paths[kind], data, affine, volume.axcodes, overwrite=self.cfg.overwrite, description=f"{kind} {self.description}")
        return paths


def run_predict(cfg: PredictConfig) -> tuple[dict[str, dict[str, Path]], dict[str, str]]:
    """Predict every input; returns (outputs per input, error message per failed input)."""
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    predictor = Predictor(load_checkpoint(cfg.ckpt_path), cfg)
    done, failed = {}, {}
    try:
        paths = nifti_inputs(cfg.inputs)
    except NiftiError as err:
        return done, {err.path: str(err)}
    names = [subject_name(p) for p in paths]
    for path in paths:
        try:
            if names.count(subject_name(path)) > 1:
                raise NiftiError(path, f"shares the output name {subject_name(path)!r} with another input; predict them separately")
            existing = [str(p) for p in predictor.output_paths(path).values() if p.exists()]
            if existing and not cfg.overwrite:
                raise FileExistsError(f"{path}: outputs already exist ({', '.join(existing)}); pass overwrite=true to replace them")
            done[str(path)] = predictor.volume(load_nifti(path))
            log.info("%s -> %s", path, ", ".join(str(p) for p in done[str(path)].values()))
        except (NiftiError, FileExistsError, ValueError) as err:
            failed[str(path)] = str(err)
            log.error("%s", err)
    return done, failed


def usage() -> str:
    """``--help``: the module docstring and every option with its default."""
    schema = OmegaConf.structured(PredictConfig)
    options = "\n".join(
        f"  {name}={'(required)' if OmegaConf.is_missing(schema, name) else schema[name]}" for name in schema
    )
    return f"{__doc__.strip()}\n\nOptions (key=value):\n{options}\n\ninputs: a file, a list '[a.nii.gz,b.mgz]', a folder or a quoted glob 'dir/*.nii.gz'"


def parse_args(argv: Sequence[str]) -> PredictConfig:
    """``key=value`` arguments (Hydra-style) over :class:`PredictConfig`; clear errors for bad keys."""
    if any(arg in ("-h", "--help", "help") for arg in argv):
        print(usage())
        raise SystemExit(0)
    schema = OmegaConf.structured(PredictConfig)
    try:
        cli = OmegaConf.from_dotlist(list(argv))
        if isinstance(cli.get("inputs"), str):  # inputs=scan.nii.gz: one file
            cli.inputs = [cli.inputs]
        cfg = OmegaConf.merge(schema, cli)
        missing = [k for k in ("ckpt_path", "inputs", "output_dir") if OmegaConf.is_missing(cfg, k)]
    except OmegaConfBaseException as err:
        raise SystemExit(f"lfmri.predict: bad option: {err.msg if hasattr(err, 'msg') else err}") from None
    if missing:
        raise SystemExit(f"lfmri.predict: missing required option(s) {', '.join(missing)} (e.g. ckpt_path=RUN/checkpoints/best.ckpt inputs='[scan.nii.gz]' output_dir=DIR)")
    return OmegaConf.to_object(cfg)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    cfg = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        done, failed = run_predict(cfg)
    except (CheckpointError, ValueError) as err:
        print(f"lfmri.predict: {err}", file=sys.stderr)
        return 2
    print(f"{len(done)} volume(s) written to {cfg.output_dir}")
    if failed:
        print(f"{len(failed)} input(s) failed:", file=sys.stderr)
        for message in failed.values():
            print(f"  {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
