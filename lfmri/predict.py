"""Apply a trained checkpoint to real low-field volumes: ``python -m lfmri.predict`` / ``lfmri-predict``.

    python -m lfmri.predict ckpt_path=CKPT inputs='[scan.nii.gz,folder/]' output_dir=DIR \
        [data_consistency=true] [tta=true] [mc_samples=N] [tile_size=256] [device=cuda precision=bf16]
        [precision=auto|fp32|bf16] [backend=torch|onnxruntime [onnx_path=FILE]] [workers=N]
    python -m lfmri.predict pretrained=srdensenet-kspace-x2 inputs=scan.nii.gz output_dir=DIR   # a shipped network

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

import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Optional
from pathlib import Path

import numpy as np
import torch
from omegaconf import MISSING, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from torch import nn

from lfmri import consistency
from lfmri.checkpoint import METADATA_KEY, CheckpointError, build_network, instantiate_stored, load_checkpoint
from lfmri.data.degradations import Degradation
from lfmri.data.grid import lr_axis_map, map_affine
from lfmri.data.inputs import expand_inputs
from lfmri.data.io import NiftiError, Volume, load_nifti, safe_name, save_nifti, subject_name, voxel_sizes, written_together
from lfmri.data.kspace import resize_complex
from lfmri.data.normalize import percentile_intensity
from lfmri.data.paired_lowfield import scan_on_model_grid
from lfmri.data.slicing import in_plane_axes, put_slices, take_slices
from lfmri.evaluation import provenance, resolve_device
from lfmri.figures import orthogonal_views
from lfmri.inference import network_forward, output_scale, predict
from lfmri.progress import progress
from lfmri.models.base import input_mode
from lfmri.pretrained import resolve as resolve_checkpoint
from lfmri.tiling import tiled
from lfmri.uncertainty import DIHEDRAL, IDENTITY, mc_dropout, predictive_spread

log = logging.getLogger(__name__)


@dataclass
class PredictConfig:
    ckpt_path: Optional[str] = None  # a trained checkpoint, or:
    pretrained: Optional[str] = None  # a network shipped with lfmri (python -m lfmri.pretrained list)
    inputs: list[str] = MISSING  # files, folders and/or globs of NIfTI/MGH volumes (lfmri.data.inputs)
    output_dir: str = MISSING
    overwrite: bool = False
    device: str = "auto"  # auto | cpu | cuda | cuda:1 ...
    # fp32 (or 32) | bf16 | auto | 16 (GPU only). bf16: autocast, channels_last, native bf16 only (AVX512-BF16/AMX,
    # Ampere+). auto: bf16 where native and the model card records bf16_psnr_brain_delta < 0.05 dB, else fp32
    precision: str = "auto"
    backend: str = "torch"  # torch | onnxruntime (CPU, float32; exported on the fly unless onnx_path, checked against PyTorch)
    onnx_path: str | None = None  # an lfmri-export .onnx file of this checkpoint, for backend=onnxruntime
    threads: int | None = None  # CPU threads (default: torch's)
    workers: int = 1  # volumes predicted at once, in separate processes with one thread each (CPU)
    batch_size: int = 8  # slices per forward pass
    tile_size: int = 256  # model-input pixels; larger slices are tiled
    tile_overlap: int = 32  # pixels shared by neighbouring tiles (exact for receptive radius <= overlap/4)
    channels_last: bool = True
    data_consistency: bool = False  # k-space-trained checkpoints: keep the measured central k-space
    tta: bool = False  # uncertainty from the 8 flips/rotations
    mc_samples: int = 0  # uncertainty from N Monte-Carlo dropout passes (networks with dropout)
    progress: bool = True
    preview: bool = True  # NAME_views.png: three orthogonal views of the scan and the SR output
    trust_targets: list[str] = field(default_factory=list)  # module prefixes (besides lfmri) a checkpoint may name


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
        self.degradation: Degradation = instantiate_stored(train_cfg.degradation, cfg.ckpt_path, cfg.trust_targets, f"{METADATA_KEY}.config.degradation")
        self.slice_axis = int(train_cfg.data.slice_axis)
        self.percentiles = list(train_cfg.data.percentiles)
        self.device = torch.device(resolve_device(cfg.device))
        self.net: nn.Module = build_network(checkpoint, cfg.trust_targets, cfg.ckpt_path).to(self.device)
        self.mode = input_mode(self.net)
        if self.mode == "lr_complex":
            raise CheckpointError(f"{cfg.ckpt_path}: {type(self.net).__name__} reads complex k-space data, which NIfTI magnitude scans do not hold")
        self.scale = int(self.degradation.scale)
        if cfg.mc_samples > 0 and cfg.backend != "torch":
            raise ValueError(f"mc_samples={cfg.mc_samples} needs backend=torch (dropout is fixed in an exported file)")
        if cfg.workers < 1:
            raise ValueError(f"workers={cfg.workers}; expected a number of processes >= 1")
        if cfg.workers > 1 and self.device.type != "cpu":
            raise ValueError(f"workers={cfg.workers} runs volumes in parallel CPU processes; use device=cpu or workers=1")
        # the same forward as evaluate.py: memory format, precision, backend (lfmri.inference)
        self.forward = network_forward(self.net, self.device, cfg.precision, cfg.backend, cfg.channels_last,
                                       self.card, cfg.onnx_path)
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
        """The network on a (B, 1, h, w) input of any size: padded, tiled, in the chosen precision."""

        def one(tile: torch.Tensor) -> torch.Tensor:
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
        name = safe_name(subject_name(source), "volume")
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
        """Super-resolve one volume and write its outputs (all of them, or none when anything fails)."""
        paths = self.output_paths(Path(volume.source))
        Path(self.cfg.output_dir).mkdir(parents=True, exist_ok=True)
        with written_together(paths) as staging:
            self._volume(volume, staging)
        return paths

    def _volume(self, volume: Volume, paths: dict[str, Path]) -> None:
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
            save_nifti(paths[kind], data, affine, volume.axcodes, overwrite=True,  # staging names
                       description=f"{kind} {self.description}")


_WORKER: Predictor | None = None  # the Predictor of a workers=N process


def _start_worker(cfg: PredictConfig) -> None:
    global _WORKER
    # one thread per process: N single-threaded forwards beat one N-threaded forward on small CPUs,
    # where ~270 short parallel regions per forward each wait for the slowest (descheduled) thread
    torch.set_num_threads(1)
    _WORKER = Predictor(load_checkpoint(cfg.ckpt_path, cfg.trust_targets), cfg)


def _predict_file(predictor: Predictor, path: Path) -> tuple[dict[str, Path] | None, str | None]:
    """(outputs, None) or (None, error message) for one input; bad inputs do not stop the others."""
    try:
        return predictor.volume(load_nifti(path)), None
    except (NiftiError, FileExistsError, ValueError) as err:  # messages that name the file already
        return None, str(err)
    except (OSError, MemoryError, RuntimeError) as err:  # full disk, unwritable folder, out of memory
        return None, f"{path}: {type(err).__name__}: {err}"


def _predict_in_worker(path: Path) -> tuple[dict[str, Path] | None, str | None]:
    return _predict_file(_WORKER, path)


def run_predict(cfg: PredictConfig) -> tuple[dict[str, dict[str, Path]], dict[str, str]]:
    """Predict every input; returns (outputs per input, error message per failed input).

    ``workers=N > 1`` predicts N volumes at once in spawned processes, one thread each (the
    checkpoint is read again in each); every volume's output is the one a single-threaded
    ``workers=1`` run writes.
    """
    problem = option_problem(cfg)
    if problem:
        raise ValueError(problem)
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    cfg.ckpt_path = str(resolve_checkpoint(cfg.ckpt_path, cfg.pretrained))  # messages name the file
    predictor = Predictor(load_checkpoint(cfg.ckpt_path, cfg.trust_targets), cfg)
    done, failed = {}, {}
    try:
        paths = nifti_inputs(cfg.inputs)
    except NiftiError as err:
        return done, {err.path: str(err)}
    names = [subject_name(p) for p in paths]
    todo = []
    for path in paths:
        try:
            if names.count(subject_name(path)) > 1:
                raise NiftiError(path, f"shares the output name {subject_name(path)!r} with another input; predict them separately")
            existing = [str(p) for p in predictor.output_paths(path).values() if p.exists()]
            if existing and not cfg.overwrite:
                raise FileExistsError(f"{path}: outputs already exist ({', '.join(existing)}); pass overwrite=true to replace them")
            todo.append(path)
        except (NiftiError, FileExistsError) as err:
            failed[str(path)] = str(err)
            log.error("%s", err)
    if cfg.workers > 1 and len(todo) > 1:
        # spawn, not fork: a forked child of a process that has run OpenMP regions can deadlock
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(min(cfg.workers, len(todo)), context, initializer=_start_worker, initargs=(cfg,)) as pool:
            results = list(pool.map(_predict_in_worker, todo))
    else:
        results = (_predict_file(predictor, path) for path in todo)
    for path, (outputs, error) in zip(todo, results):
        if error is not None:
            failed[str(path)] = error
            log.error("%s", error)
        else:
            done[str(path)] = outputs
            log.info("%s -> %s", path, ", ".join(str(p) for p in outputs.values()))
    return done, failed


def option_problem(cfg: PredictConfig) -> str | None:
    """The first option with an impossible value, as one line naming it, or ``None``."""
    for name in ("batch_size", "tile_size"):
        if int(getattr(cfg, name)) < 1:
            return f"bad value for option '{name}': {getattr(cfg, name)}; must be a positive integer"
    if cfg.threads is not None and int(cfg.threads) < 1:
        return f"bad value for option 'threads': {cfg.threads}; must be a positive integer (or leave it out)"
    if int(cfg.tile_overlap) < 0 or int(cfg.mc_samples) < 0:
        return "bad value for option 'tile_overlap' or 'mc_samples': must not be negative"
    if len(cfg.inputs) == 0:
        return "option 'inputs' is empty: give NIfTI files and/or folders, e.g. inputs='[scan.nii.gz]'"
    try:
        resolve_device(cfg.device)
    except ValueError as err:
        return f"bad value for option 'device': {err}"
    return None


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
        missing = [k for k in ("inputs", "output_dir") if OmegaConf.is_missing(cfg, k)]
        if cfg.ckpt_path is None and cfg.pretrained is None:
            missing.insert(0, "ckpt_path (or pretrained=NAME)")
    except OmegaConfBaseException as err:
        raise SystemExit(f"lfmri.predict: bad option: {err.msg if hasattr(err, 'msg') else err}") from None
    if not missing:
        problem = option_problem(cfg)
        if problem:
            raise SystemExit(f"lfmri.predict: {problem}")
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
