"""Volume-wise evaluation behind ``evaluate.py``: degrade, super-resolve, score, write NIfTI and PNG.

Each volume (an input file, or a test segment of the checkpoint's own data) is sliced along the
training slice axis, prepared and degraded slice by slice with the same seeds the test dataloader
uses, so the numbers match ``train.py``'s test table. The network and the zero-fill and bicubic
baselines run on every slice; metrics count the slices that contain anatomy; the SR, LR, HR
reference and baseline volumes are written with affines that match their grids, in the input's
orientation and intensity range.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from lfmri.checkpoint import METADATA_KEY, build_network, load_checkpoint
from lfmri.data.datamodule import SliceDataModule
from lfmri.data.datasets import degraded_sample, slice_generator
from lfmri.data.degradations import Degradation
from lfmri.data.grid import AxisMap, map_affine
from lfmri.data.io import NiftiError, Volume, load_nifti, save_nifti
from lfmri.data.normalize import Intensity, percentile_intensity
from lfmri.data.slicing import in_plane_axes, put_slices, take_slices
from lfmri.data.splits import Segment
from lfmri.figures import comparison_figure
from lfmri.inference import channels_last_forward, model_input, predict
from lfmri.metrics import brain_mask, slice_metrics
from lfmri.models.base import input_mode
from lfmri.report import MetricsTable
from lfmri.training import make_baselines

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


def volumes_from_files(paths: Sequence[str], datamodule: SliceDataModule) -> list[EvalVolume]:
    """Load every input and preprocess it as ``datamodule`` does (normalisation, slice selection).

    All files are read before any work, so one bad file fails the call early, with every problem.
    """
    volumes, problems = [], []
    for path in paths:
        try:
            volumes.append(load_nifti(path))
        except NiftiError as err:
            problems.append(str(err))
    names = [v.name for v in volumes]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        problems.append(f"inputs share output names {duplicates}; rename or evaluate them separately")
    if problems:
        raise NiftiError(", ".join(paths), "cannot evaluate:\n  " + "\n  ".join(problems))
    out = []
    for volume in volumes:
        intensity = percentile_intensity(volume.data, datamodule.percentiles, volume.source)
        volume.data = intensity.apply(volume.data)
        whole = Segment(volume.name, 0, volume.data.shape[datamodule.slice_axis])
        scored = datamodule.selected_slices(volume.data, whole)
        out.append(EvalVolume(volume.name, volume.name, volume, intensity, 0, whole.stop, scored))
    return out


def volumes_from_datamodule(datamodule: SliceDataModule) -> list[EvalVolume]:
    """The test segments of a set-up datamodule."""
    segments = datamodule.split["test"]
    out = []
    for segment in segments:
        entry = datamodule.volumes[segment.subject]
        several = sum(s.subject == segment.subject for s in segments) > 1
        name = f"{segment.subject}_{segment.start}-{segment.stop}" if several else segment.subject
        scored = datamodule.selected_slices(entry.volume.data, segment)
        out.append(EvalVolume(name, segment.subject, entry.volume, entry.intensity, segment.start, segment.stop, scored))
    return out


OUTPUT_KINDS = ("sr", "lr", "hr", "zerofill", "bicubic")


def output_paths(output_dir: Path, volumes: Sequence[EvalVolume]) -> list[Path]:
    files = [output_dir / "metrics.csv", output_dir / "metrics.md"]
    for v in volumes:
        files += [output_dir / f"{v.name}_{kind}.nii.gz" for kind in OUTPUT_KINDS]
        files.append(output_dir / f"{v.name}_comparison.png")
    return files


class Evaluator:
    def __init__(
        self,
        net: nn.Module,
        degradation: Degradation,
        slice_axis: int,
        seed: int,
        batch_size: int = 8,
        device: str = "cpu",
        brain_threshold: float = 0.05,
        channels_last: bool = True,
        name: str | None = None,
    ) -> None:
        self.net = net.to(device).eval()
        self.forward = channels_last_forward(self.net) if channels_last else self.net
        self.degradation = degradation
        self.baselines = make_baselines(degradation)
        self.slice_axis = slice_axis
        self.seed = seed
        self.batch_size = batch_size
        self.device = device
        self.brain_threshold = brain_threshold
        self.method = name or type(net).__name__.lower()
        self.mode = input_mode(net)

    @torch.no_grad()
    def run_volume(self, v: EvalVolume) -> tuple[dict[str, torch.Tensor], MetricsTable]:
        """Outputs ``{kind: (n, H, W)}`` for slices start:stop, and the metrics of the scored ones."""
        hr_all = self.degradation.prepare_hr(torch.from_numpy(np.ascontiguousarray(
            take_slices(v.volume.data, self.slice_axis, v.start, v.stop)
        )))
        outputs: dict[str, list[torch.Tensor]] = {kind: [] for kind in OUTPUT_KINDS}
        table = MetricsTable()
        scored = set(int(i) for i in v.scored)
        for first in range(0, len(hr_all), self.batch_size):
            indices = list(range(v.start + first, min(v.start + first + self.batch_size, v.stop)))
            samples = [
                degraded_sample(hr_all[i - v.start][None], self.degradation, slice_generator(self.seed, v.subject, i), self.mode)
                for i in indices
            ]
            batch = {k: torch.stack([s[k] for s in samples]).to(self.device) for k in samples[0]}
            preds = {"sr": predict(self.net, model_input(self.net, batch), forward=self.forward).float()}
            for kind, baseline in self.baselines.items():
                preds[kind] = predict(baseline, model_input(baseline, batch)).float()
            keep = [j for j, i in enumerate(indices) if i in scored]
            if keep:
                hr = batch["hr"][keep]
                mask = brain_mask(hr, self.brain_threshold)
                for kind, pred in preds.items():
                    method = self.method if kind == "sr" else kind
                    table.add([v.name] * len(keep), [indices[j] for j in keep], method, slice_metrics(pred[keep], hr, mask))
            for kind, pred in {**preds, "lr": batch["lr"], "hr": batch["hr"]}.items():
                outputs[kind].append(pred[:, 0].cpu())
        return {k: torch.cat(x) for k, x in outputs.items()}, table

    def affines(self, v: EvalVolume) -> dict[str, np.ndarray]:
        """Affines of the HR-grid outputs and of the LR volume for slab ``start:stop``."""
        in_shape = [v.volume.data.shape[a] for a in in_plane_axes(self.slice_axis)]
        hr_maps = self.degradation.hr_maps(in_shape)
        hr_shape = self.degradation.hr_shape(in_shape)
        lr_maps = [lr.then(hr) for lr, hr in zip(self.degradation.lr_maps(hr_shape), hr_maps)]
        slab = {self.slice_axis: AxisMap(1.0, float(v.start))}
        axes = in_plane_axes(self.slice_axis)
        return {
            "hr": map_affine(v.volume.affine, {**slab, **dict(zip(axes, hr_maps))}),
            "lr": map_affine(v.volume.affine, {**slab, **dict(zip(axes, lr_maps))}),
        }

    def run(self, volumes: Sequence[EvalVolume], output_dir: str | Path, overwrite: bool = False) -> MetricsTable:
        output_dir = Path(output_dir)
        if not overwrite:
            existing = [str(p) for p in output_paths(output_dir, volumes) if p.exists()]
            if existing:
                raise FileExistsError(
                    f"{len(existing)} output file(s) already exist (pass overwrite=true to replace them): "
                    + ", ".join(existing[:5]) + (" ..." if len(existing) > 5 else "")
                )
        table = MetricsTable()
        for v in volumes:
            log.info("evaluating %s (slices %d:%d along axis %d)", v.name, v.start, v.stop, self.slice_axis)
            outputs, volume_table = self.run_volume(v)
            table.rows += volume_table.rows
            affines = self.affines(v)
            for kind, slices in outputs.items():
                data = v.intensity.restore(put_slices(slices.numpy(), self.slice_axis))
                affine = affines["lr" if kind == "lr" else "hr"]
                save_nifti(output_dir / f"{v.name}_{kind}.nii.gz", data, affine, v.volume.axcodes, overwrite=True)
            self._figure(output_dir / f"{v.name}_comparison.png", v, outputs, volume_table)
        table.write_csv(output_dir / "metrics.csv")
        (output_dir / "metrics.md").write_text(table.to_markdown(f"Evaluation: {self.method} vs baselines"))
        return table

    def _figure(self, path: Path, v: EvalVolume, outputs: Mapping[str, torch.Tensor], table: MetricsTable) -> None:
        """The middle scored slice (or the middle slice when none is scored)."""
        index = int(v.scored[len(v.scored) // 2]) if len(v.scored) else (v.start + v.stop) // 2
        j = index - v.start
        scores = {}
        for row in table.rows:
            if row["slice"] == index:
                label = "SR" if row["method"] == self.method else row["method"]
                scores[label] = {"PSNR": row["psnr_brain"], "SSIM": row["ssim_brain"]}
        images = {
            "LR": outputs["lr"][j].numpy(),
            "zerofill": outputs["zerofill"][j].clamp(0, 1).numpy(),
            "bicubic": outputs["bicubic"][j].clamp(0, 1).numpy(),
            "SR": outputs["sr"][j].clamp(0, 1).numpy(),
        }
        comparison_figure(
            path,
            outputs["hr"][j].numpy(),
            images,
            scores,
            title=f"{v.name}, slice {index} (axis {self.slice_axis}); scores inside the brain mask",
        )


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def evaluate(cfg: DictConfig) -> MetricsTable:
    """``evaluate.py``: a checkpoint on its own test split, or on the HR volumes in ``cfg.inputs``."""
    checkpoint = load_checkpoint(cfg.ckpt_path)
    meta = checkpoint[METADATA_KEY]
    train_cfg = OmegaConf.create(meta["config"])
    degradation = instantiate(train_cfg.degradation)
    net = build_network(checkpoint)
    # the checkpoint's split: data added to a folder since training cannot leak into the test set
    datamodule = instantiate(
        train_cfg.data,
        degradation=degradation,
        input_mode=input_mode(net),
        split=meta.get("split"),
        split_file=None,
        num_workers=0,
    )
    if cfg.get("inputs"):
        volumes = volumes_from_files(list(cfg.inputs), datamodule)
    else:
        datamodule.setup("test")
        volumes = volumes_from_datamodule(datamodule)
    evaluator = Evaluator(
        net,
        degradation,
        slice_axis=int(train_cfg.data.slice_axis),
        seed=int(train_cfg.data.seed),
        batch_size=int(cfg.batch_size),
        device=resolve_device(cfg.device),
        brain_threshold=float(train_cfg.module.get("brain_threshold", 0.05)),
        channels_last=bool(cfg.channels_last),
        name=meta.get("card", {}).get("name"),
    )
    table = evaluator.run(volumes, cfg.output_dir, overwrite=bool(cfg.overwrite))
    print("\n" + table.to_markdown(f"Evaluation of {cfg.ckpt_path}"))
    log.info("outputs written to %s", cfg.output_dir)
    return table
