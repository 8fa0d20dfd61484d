"""One comparison: networks and the zero-fill and bicubic baselines scored on the same degraded slices.

Each volume is sliced along the training slice axis, prepared and degraded slice by slice with the
same seeds the test dataloader uses, so the numbers match ``train.py``'s test table; metrics count
the slices that contain anatomy; the SR, LR, HR reference and baseline volumes are written with
affines that match their grids, in the input's orientation and intensity range.

Over 300 lines because it is one class whose parts share the per-volume state (methods, seeds, loop,
classical pre-pass, multi-slice context): splitting it would pass that state between modules.
"""

from __future__ import annotations

import csv
import functools
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lfmri.contracts import context_slices, input_mode
from lfmri.data.datasets import degraded_sample, slice_generator, stacked_context
from lfmri.degrade.baselines import make_baselines
from lfmri.degrade.degradations import Degradation
from lfmri.degrade.denoise3d import VolumeDenoiser, make_denoisers
from lfmri.evaluation.classical import classical_outputs
from lfmri.errors import ConfigError, ExistingOutputError
from lfmri.evaluation.volumes import EvalVolume
from lfmri.files import written_together
from lfmri.geometry.affines import output_affines, slab_affine
from lfmri.geometry.nifti import NiftiError, voxel_sizes
from lfmri.geometry.slicing import context_indices, in_plane_axes, take_slices
from lfmri.inference.network import model_input, network_forward, predict, resolve_device
from lfmri.inference.uncertainty import DIHEDRAL, error_correlation
from lfmri.inference.volume import NetworkRunner, VolumeLoop, carry_out_of_window
from lfmri.run_options import RunOptions
from lfmri.scoring.figures import comparison_figure, slice_name
from lfmri.scoring.metrics import brain_mask, slice_metrics
from lfmri.scoring.report import MetricsTable

log = logging.getLogger(__name__)

@dataclass
class Method:
    """One row of the table: a network or a baseline, how to run it and the file its output goes to."""

    module: nn.Module
    run: Callable[[torch.Tensor], torch.Tensor]  # (B, C, h, w) -> float32 output
    kind: str  # output file suffix: NAME_<kind>.nii.gz


def file_label(name: str) -> str:
    """A method name as a file-name part: ``srdensenet (run1)`` -> ``srdensenet_run1``."""
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", name).strip("_") or "model"


def sample_mode(nets: Iterable[nn.Module]) -> str:
    """The ``degraded_sample`` mode that yields every view ``nets`` read (LR and complex LR always)."""
    return "upsampled" if any(input_mode(net) == "upsampled" for net in nets) else "lr"


class Evaluator:
    """Scores named networks and the zero-fill and bicubic baselines on the same degraded slices.

    ``nets`` maps table names to networks. Every slice is degraded once (seeded by ``seed``, the
    subject and the slice index, as the test dataloader does) into every view any network reads,
    so each network sees exactly the input a single-network evaluation gives it. One network
    writes ``NAME_sr.nii.gz``; several write ``NAME_sr_<name>.nii.gz`` each.

    Args:
        nets: table name -> network (built from its checkpoint).
        degradation: the first checkpoint's degradation; every slice is degraded with it.
        slice_axis, seed: the training slice axis and data seed (seeds of the degradation).
        options: where and how networks run, as predict runs them (:class:`lfmri.run_options.RunOptions`:
            device, precision, backend, batch_size, tile_size, tile_overlap, channels_last, progress;
            :func:`lfmri.inference.network.network_forward`); default: its defaults.
        brain_threshold: reference intensity above which a pixel is brain (before dilation).
        cards: table name -> model card (its bf16 parity decides ``precision=auto``).
        tta: also score each network's test-time-augmentation uncertainty against its error.
        self_ensemble: each network's output is the mean over the 8 flips/rotations of its input
            (:class:`lfmri.inference.volume.NetworkRunner`).
        classical: 3D denoisers of the zero-filled volume reported as baseline rows, by name (``nlm3d``,
            ``bm4d``: :mod:`lfmri.degrade.denoise3d`) or as ``{row name: denoiser}``, computed once per volume before the batches
            (:func:`lfmri.evaluation.classical.classical_outputs`).
    """

    def __init__(
        self,
        nets: Mapping[str, nn.Module],
        degradation: Degradation,
        slice_axis: int,
        seed: int,
        options: RunOptions | None = None,
        brain_threshold: float = 0.05,
        tta: bool = False,
        cards: Mapping[str, Mapping] | None = None,
        self_ensemble: bool = False,
        classical: Sequence[str] | Mapping[str, VolumeDenoiser] = (),
    ) -> None:
        if not nets:
            raise ValueError("Evaluator needs at least one network")
        options = options or RunOptions()
        device, precision, backend, channels_last = resolve_device(options.device), options.precision, options.backend, options.channels_last
        batch_size, tile_size, tile_overlap = options.batch_size, options.tile_size, options.tile_overlap
        self.classical = dict(classical) if isinstance(classical, Mapping) else make_denoisers(classical)
        baselines = {**make_baselines(degradation), **self.classical}
        clash = sorted(set(nets) & set(baselines))
        if clash:
            raise ValueError(f"network names {clash} are taken by the baselines; rename them")
        self.networks = list(nets)
        self.baselines = list(baselines)
        self.methods: dict[str, Method] = {}
        for name, net in nets.items():
            net = net.to(device).eval()
            kind = "sr" if len(nets) == 1 else f"sr_{file_label(name)}"
            # precision/backend as predict runs them (lfmri.inference.network.network_forward); the card's bf16 parity record decides precision=auto
            forward = network_forward(net, device, precision, backend, channels_last, (cards or {}).get(name))
            # the runner predict uses: tiled above tile_size, so evaluate fits in predict's memory
            self.methods[name] = Method(net, NetworkRunner(net, forward, tile_size, tile_overlap, self_ensemble, degradation), kind)
        for name, baseline in baselines.items():
            if name in self.classical:  # its rows are read from the volume run_volume denoised beforehand
                self.methods[name] = Method(nn.Identity(), nn.Identity(), name)
            else:
                self.methods[name] = Method(baseline, lambda x, b=baseline: predict(b, x).float(), name)
        kinds = [m.kind for m in self.methods.values()]
        if len(set(kinds)) < len(kinds):
            raise ValueError(f"network names {self.networks} give clashing output file names {kinds}")
        self.kinds = (*kinds, "lr", "hr")
        self.mode = sample_mode(nets.values())
        # multi-slice networks read neighbours: the batch carries the most any network reads
        self.context = max([context_slices(net) for net in nets.values()], default=0)
        self.degradation = degradation
        self.slice_axis = slice_axis
        self.seed = seed
        self.loop = VolumeLoop(slice_axis, batch_size, options.progress)
        self.device = device
        self.brain_threshold = brain_threshold
        self.tta = tta  # also score the TTA uncertainty map against the actual error
        self.uncertainty_rows: list[dict] = []
        # subject -> "unseen" / "seen in training": tables pool subjects within a group only
        self.groups: dict[str, str] | None = None
        self.input_failures: dict[str, str] = {}
        self.description = ""  # provenance written into every NIfTI header (descrip)

    @property
    def ensemble_note(self) -> str:
        """What table titles say when the networks run as self-ensembles."""
        runners = [self.methods[n].run for n in self.networks]
        return " (networks as x8 flip/rotation self-ensembles)" if any(r.self_ensemble for r in runners) else ""

    def output_paths(self, output_dir: Path, volumes: Sequence[EvalVolume]) -> list[Path]:
        files = [output_dir / "metrics.csv", output_dir / "metrics.md"]
        for v in volumes:
            files += [output_dir / f"{v.name}_{kind}.nii.gz" for kind in self.kinds]
            files.append(output_dir / f"{v.name}_comparison.png")
        if self.tta:
            files += [output_dir / "uncertainty.csv", output_dir / "uncertainty.md"]
        return files

    @property
    def progress(self) -> bool:
        """A bar per volume (log lines without a terminal)."""
        return self.loop.show_progress

    @progress.setter
    def progress(self, value: bool) -> None:
        self.loop.show_progress = bool(value)

    @torch.no_grad()
    def run_volume(self, v: EvalVolume) -> tuple[dict[str, np.ndarray], MetricsTable]:
        """Output volumes ``{kind: slices start:stop along the slice axis}`` (normalised), and the
        metrics of the scored slices."""
        hr_all = torch.from_numpy(np.ascontiguousarray(take_slices(v.volume.data, self.slice_axis, v.start, v.stop)))
        if v.pair is None:
            hr_all = self.degradation.prepare_hr(hr_all)
        table = MetricsTable()
        scored = set(int(i) for i in v.scored)

        # the classical pre-pass reads every slice before the batches do: then the whole volume's
        # samples are kept (freed with this volume), else just the neighbours a batch reaches
        @functools.lru_cache(maxsize=None if self.classical else 4 * self.context + 2 * self.loop.batch_size)
        def sample(i: int) -> dict[str, torch.Tensor]:
            # each slice degraded once with its own seed, whether it is scored or a neighbour
            if v.pair is not None:
                return v.pair(i)
            return degraded_sample(hr_all[i - v.start][None], self.degradation, slice_generator(self.seed, v.subject, i), self.mode)

        excess_all = None
        if v.excess is not None and v.pair is None:
            full = take_slices(v.volume.data + v.excess, self.slice_axis, v.start, v.stop)
            excess_all = self.degradation.prepare_hr(torch.from_numpy(np.ascontiguousarray(full)), clip=False) - hr_all

        def beyond_window(indices: list[int], hr_shape) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
            """What the window took from slices ``indices``: on the HR grid, on the LR grid (the same
            slice degraded with the same seed without the clip, minus the clipped one's LR) and carried
            onto the output grid. Methods read the clipped slices, as networks were trained; their
            outputs get the carried part back (lfmri.inference.volume.carry_out_of_window)."""
            if excess_all is None:
                return None
            hr_parts, lr_parts = [], []
            for i in indices:
                hr_ex = excess_all[i - v.start][None]
                clipped = sample(i)
                if bool(hr_ex.any()):
                    full = degraded_sample(clipped["hr"] + hr_ex, self.degradation, slice_generator(self.seed, v.subject, i), "lr")
                    lr_parts.append(full["lr"] - clipped["lr"])
                else:
                    lr_parts.append(torch.zeros_like(clipped["lr"]))
                hr_parts.append(hr_ex)
            hr_ex, lr_ex = torch.stack(hr_parts).to(self.device), torch.stack(lr_parts).to(self.device)
            if not (bool(hr_ex.any()) or bool(lr_ex.any())):
                return None
            return hr_ex, lr_ex, carry_out_of_window(lr_ex, hr_shape, self.degradation.lr_maps(hr_shape))

        classical = classical_outputs(v.name, range(v.start, v.stop), sample, self.methods["zerofill"].module,
                                      self.degradation, self.classical, self.loop.batch_size, self.device) if self.classical else {}

        def step(indices: list[int]) -> dict[str, torch.Tensor]:
            samples = [sample(i) for i in indices]
            if self.context and v.pair is not None:
                # measured pairs carry their neighbours, a low-field slice apart (data.context_slices)
                if "lr_context" not in samples[0]:
                    raise ConfigError(f"the networks read {self.context} neighbouring slice(s) on each side but the paired "
                                      "data was read without them: set context_slices= (data.context_slices) to at least that")
            elif self.context:
                samples = [{**s, **stacked_context([sample(j) for j in context_indices(i, self.context, v.start, v.stop)])}
                           for i, s in zip(indices, samples)]
            batch = {k: torch.stack([s[k] for s in samples]).to(self.device) for k in samples[0]}
            preds = {name: m.run(model_input(m.module, batch)) for name, m in self.methods.items() if name not in classical}
            rows = [i - v.start for i in indices]
            preds.update({name: volume[rows][:, None].to(self.device) for name, volume in classical.items()})
            keep = [j for j, i in enumerate(indices) if i in scored]
            if keep:
                hr = batch["hr"][keep]
                mask = brain_mask(hr, self.brain_threshold)
                for name, pred in preds.items():
                    table.add([v.name] * len(keep), [indices[j] for j in keep], name, slice_metrics(pred[keep], hr, mask))
                if self.tta:
                    self._score_uncertainty(v.name, [indices[j] for j in keep], batch, keep, hr, mask, preds)
            out = {self.methods[name].kind: pred[:, 0] for name, pred in preds.items()}
            out.update(lr=batch["lr"][:, 0], hr=batch["hr"][:, 0])
            beyond = beyond_window(indices, batch["hr"].shape[-2:])  # scored above on the window; written whole
            if beyond is not None:
                hr_ex, lr_ex, carried = beyond
                out = {kind: image + (hr_ex if kind == "hr" else lr_ex if kind == "lr" else carried)[:, 0]
                       for kind, image in out.items()}
            return out

        return self.loop.run(v.name, range(v.start, v.stop), step), table

    def affines(self, v: EvalVolume) -> dict[str, np.ndarray]:
        """Affines of the HR-grid outputs and of the LR volume for slab ``start:stop``."""
        if v.lr_affine is not None:  # real pairs: both grids are given
            return {"hr": slab_affine(v.volume.affine, self.slice_axis, v.start),
                    "lr": slab_affine(v.lr_affine, self.slice_axis, v.start)}
        return output_affines(v.volume.affine, v.volume.data.shape, self.slice_axis, self.degradation, "hr", v.start)

    def _score_uncertainty(self, subject, slices, batch, keep, hr, mask, preds) -> None:
        """Spearman correlation, per slice, between each network's TTA std and its actual |error|."""
        for name in self.networks:
            m = self.methods[name]
            _, std = m.run.spread(model_input(m.module, batch)[keep], DIHEDRAL)
            rho = error_correlation(std, preds[name][keep] - hr, mask)
            self.uncertainty_rows += [
                {"subject": subject, "slice": i, "method": name, "spearman": float(r)} for i, r in zip(slices, rho)
            ]

    def write_uncertainty(self, output_dir: Path) -> None:
        rows = self.uncertainty_rows
        with open(output_dir / "uncertainty.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["subject", "slice", "method", "spearman"])
            writer.writeheader()
            writer.writerows(rows)
        lines = [
            "TTA uncertainty (std over 8 flips/rotations) vs actual |error| inside the brain mask:",
            "Spearman correlation per slice, mean ± std over slices (1 = the map ranks errors perfectly).",
            "",
            "| subject | method | slices | Spearman |",
            "|---|---|---|---|",
        ]
        subjects = list(dict.fromkeys(r["subject"] for r in rows))
        for subject in [*subjects, None] if len(subjects) > 1 else subjects:
            for name in self.networks:
                values = np.array([r["spearman"] for r in rows
                                   if r["method"] == name and subject in (None, r["subject"])], dtype=float)
                values = values[np.isfinite(values)]
                if len(values):
                    label = subject if subject is not None else "all"
                    lines.append(f"| {label} | {name} | {len(values)} | {values.mean():.3f} ± {values.std():.3f} |")
        (output_dir / "uncertainty.md").write_text("\n".join(lines) + "\n")
        print("\n" + "\n".join(lines))

    def run(self, volumes: Sequence[EvalVolume], output_dir: str | Path, overwrite: bool = False) -> MetricsTable:
        output_dir = Path(output_dir)
        if not overwrite:
            existing = [str(p) for p in self.output_paths(output_dir, volumes) if p.exists()]
            if existing:
                raise ExistingOutputError(
                    f"{len(existing)} output file(s) already exist (pass overwrite=true to replace them): "
                    + ", ".join(existing[:5]) + (" ..." if len(existing) > 5 else "")
                )
        table = MetricsTable()
        output_dir.mkdir(parents=True, exist_ok=True)
        for v in volumes:
            log.info("evaluating %s (slices %d:%d along axis %d)", v.name, v.start, v.stop, self.slice_axis)
            paths = {kind: output_dir / f"{v.name}_{kind}.nii.gz" for kind in self.kinds}
            paths["figure"] = output_dir / f"{v.name}_comparison.png"
            try:
                # one volume's files appear together or not at all; a failure never stops the others
                with written_together(paths, overwrite=overwrite) as staging:
                    outputs, volume_table = self.run_volume(v)
                    grids = self.affines(v)
                    affines = {kind: grids["lr" if kind == "lr" else "hr"] for kind in outputs}
                    self.loop.write(staging, outputs, affines, v.volume.axcodes, v.intensity, self.description,
                                    space_code=v.volume.space_code)
                    self._figure(staging["figure"], v, outputs, volume_table)
            except Exception as err:  # one volume's failure (full disk, out of memory, a NaN output...) never stops the others
                table.failures[v.volume.source] = str(err) if isinstance(err, NiftiError) else f"{v.volume.source}: {type(err).__name__}: {err}"
                log.error("%s", table.failures[v.volume.source])
                log.debug("the failure of %s", v.volume.source, exc_info=True)
                continue
            table.rows += volume_table.rows
        title = f"Evaluation: {', '.join(self.networks)} vs baselines" + self.ensemble_note
        # not clobbering at the final step either: a concurrent evaluation into this folder keeps its tables
        with written_together({"csv": output_dir / "metrics.csv", "md": output_dir / "metrics.md"}, overwrite) as tables:
            table.write_csv(tables["csv"])
            tables["md"].write_text(table.to_markdown(title, self.groups))
        if self.tta:
            self.write_uncertainty(output_dir)
        return table

    def _figure(self, path: Path, v: EvalVolume, outputs: Mapping[str, np.ndarray], table: MetricsTable) -> None:
        """The middle scored slice (or the middle slice when none is scored): LR, baselines, networks, HR."""
        index = int(v.scored[len(v.scored) // 2]) if len(v.scored) else (v.start + v.stop) // 2
        j = index - v.start
        scores = {
            row["method"]: {"PSNR": row["psnr_brain"], "SSIM": row["ssim_brain"]}
            for row in table.rows
            if row["slice"] == index
        }
        def plane(kind: str) -> np.ndarray:
            return take_slices(outputs[kind], self.slice_axis, j, j + 1)[0]

        images = {"LR": plane("lr")}
        for name in (*self.baselines, *self.networks):
            images[name] = np.clip(plane(self.methods[name].kind), 0, 1)
        axes = in_plane_axes(self.slice_axis)
        zooms = voxel_sizes(self.affines(v)["hr"])  # the HR grid's pixels, in mm
        comparison_figure(
            path,
            plane("hr"),
            images,
            scores,
            title=f"{v.name}, slice {slice_name(v.volume.axcodes, v.volume.data.shape, self.slice_axis, index)} of the file; "
                  "scores inside the brain mask",
            pixel_sizes=(float(zooms[axes[0]]), float(zooms[axes[1]])),
            axes=axes,
        )
