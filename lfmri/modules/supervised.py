"""Supervised training of any lfmri network with a composite pixel loss."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path

import lightning as L
import torch
import torch.distributed as dist
from lightning.pytorch.loggers import TensorBoardLogger
from matplotlib.image import imread
from torch import nn
from torchmetrics.aggregation import MeanMetric

from lfmri.data.splits import subject_groups
from lfmri.scoring.figures import comparison_figure
from lfmri.inference.network import model_input, predict
from lfmri.losses.composite import CompositeLoss, without_autocast
from lfmri.losses.shares import ShareMonitor, gradient_norms, shares
from lfmri.scoring.metrics import METRICS, brain_mask, slice_metrics
from lfmri.contracts import SROutput, as_image
from lfmri.scoring.report import MetricsTable

log = logging.getLogger(__name__)


BASELINE_VAL_METRICS = ("psnr_brain", "ssim_brain", "psnr")  # what the baselines log per validation
GAIN_METRICS = ("psnr_brain", "ssim_brain")  # logged as the network's gain over each baseline: val/psnr_brain_vs_zerofill

class SupervisedModule(L.LightningModule):
    """Trains ``net`` on (LR, HR) patches; validates and tests on whole slices.

    Models may return an :class:`~lfmri.contracts.SROutput` in training: auxiliary images add
    ``aux_weight`` times their loss, an auxiliary loss is added as is.

    Training logs each loss term as it enters the total (``train/loss_<name>``, weighted) and,
    every ``grad_share_every_n_steps`` updates of the network, each term's share of the gradient norm
    (``train/grad_share_<name>``, the epoch's mean of its measurements, :mod:`lfmri.losses.shares`); a term under 1 % of it in every
    measurement of its first 200 steps is named in one warning line with the weight that would give
    it 10 %. Losses are computed in float32 whatever the trainer's precision.

    Validation logs ``val/loss`` and PSNR/SSIM over the whole slice and inside a brain mask.
    Test scores the network and the non-learned ``baselines`` on every test slice, prints a
    per-subject table and writes ``test/metrics.csv`` and ``test/metrics.md`` in the run directory.
    Validation and test run the network in float32 (autocast off) under any trainer precision, as
    ``evaluate.py`` does by default: the test table of a checkpoint and evaluate's agree on any machine.

    ``optimizer`` and ``scheduler`` are partials (Hydra ``_partial_: true``) completed here with
    the parameters, so config never holds live parameter objects. ``scheduler_interval`` says
    whether the scheduler steps once per ``epoch`` or once per optimiser ``step`` (warm-up and
    cosine schedules over ``trainer.max_steps``, e.g. :class:`lfmri.training.schedules.WarmupCosineLR`).
    """

    supports_unpaired = False  # whether it can train on data.unpaired=true (LR and HR from different slices)

    def __init__(
        self,
        net: nn.Module,
        loss: CompositeLoss,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None = None,
        scheduler_interval: str = "epoch",
        baselines: Mapping[str, nn.Module] | None = None,
        aux_weight: float = 1.0,
        panel_every_n_epochs: int = 5,
        brain_threshold: float = 0.05,
        channels_last: bool = True,
        compile: bool = False,
        name: str | None = None,
        grad_share_every_n_steps: int = 50,
    ) -> None:
        super().__init__()
        self.net = net
        self.loss = loss
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        if scheduler_interval not in ("epoch", "step"):
            raise ValueError(f"module.scheduler_interval={scheduler_interval!r}; expected epoch or step")
        self.scheduler_interval = scheduler_interval
        # plain dict: baselines have no parameters and must not enter the state dict
        self.baselines = dict(baselines or {})
        self.aux_weight = float(aux_weight)
        self.panel_every_n_epochs = int(panel_every_n_epochs)
        self.brain_threshold = float(brain_threshold)
        self.channels_last = bool(channels_last)
        self.compile = compile
        self.method_name = name or type(net).__name__.lower()  # the row label in metric tables
        if int(grad_share_every_n_steps) < 0:
            raise ValueError(f"module.grad_share_every_n_steps={grad_share_every_n_steps}: must be >= 0 (0: never)")
        self.grad_share_every_n_steps = int(grad_share_every_n_steps)
        self.share_monitor = ShareMonitor()
        self.test_note: str | None = None  # a line for the test table (set by the run: e.g. the init was tested)
        self._panel_candidates: list[dict] = []  # validation slices the epoch's panel is chosen among
        self.val_means = nn.ModuleDict({name: MeanMetric() for name in METRICS})
        # the baselines on the validation slices, logged beside the network every validation so a
        # dashboard plots the gain over zero-fill as training goes (in-brain first)
        self.baseline_val_means = nn.ModuleDict({
            f"{baseline}_{name}": MeanMetric() for baseline in self.baselines for name in BASELINE_VAL_METRICS
        })
        self._test_table = MetricsTable()
        self.test_table: MetricsTable | None = None

    def setup(self, stage: str) -> None:
        if self.channels_last:
            # NHWC convolutions are 1.3-1.7x faster on CPU (oneDNN) and on tensor-core GPUs
            self.net.to(memory_format=torch.channels_last)
        if self.compile and stage == "fit":
            # compile the inner network only: checkpoints keep plain parameter names
            self.net = torch.compile(self.net)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last and not x.is_complex():
            x = x.contiguous(memory_format=torch.channels_last)
        return self.net(x)

    # --- training ---------------------------------------------------------------------------------
    def supervised_loss(self, out: torch.Tensor | SROutput, target: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """The composite loss of a training-mode output, with its auxiliary images and loss: (the total,
        each part as it enters the total)."""
        total, parts = self.loss(as_image(out), target)
        if isinstance(out, SROutput):
            if out.aux_images:
                # every auxiliary prediction is scored like the final image (e.g. MRLN's branches)
                parts["aux_images"] = self.aux_weight * sum(self.loss(image, target)[0] for image in out.aux_images)
                total = total + parts["aux_images"]
            if out.aux_loss is not None:
                parts["aux"] = out.aux_loss.float()
                total = total + parts["aux"]
        return total, parts

    def term_weights(self) -> dict[str, float]:
        """Each part's weight in the config, keyed as :meth:`supervised_loss` names the parts."""
        return {**self.loss.weights, "aux_images": self.aux_weight}

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        target = batch["hr"]
        total, parts = self.supervised_loss(self(model_input(self._net, batch)), target)
        size = target.shape[0]
        self.log("train/loss", total, prog_bar=True, batch_size=size)
        for name, value in parts.items():
            self.log(f"train/loss_{name}", value, batch_size=size)
        self.measure_gradient_shares(parts, self.net.parameters(), self.term_weights())
        return total

    def updates_of_trained_network(self) -> int:
        """How many times the network has been updated (the adversarial modules: the generator)."""
        return self.global_step

    def measure_gradient_shares(self, parts: Mapping[str, torch.Tensor], parameters, weights: Mapping[str, float]) -> None:
        """Every ``grad_share_every_n_steps`` steps: log each part's share of the gradient norm over
        ``parameters`` and warn once about a term that does not act (:class:`~lfmri.losses.shares.ShareMonitor`).

        Each part is differentiated on its own (one extra backward per part at those steps only)."""
        every, step = self.grad_share_every_n_steps, self.updates_of_trained_network()
        if every <= 0 or step % every != 0 or sum(1 for v in parts.values() if v.requires_grad) < 2:
            return
        norms = gradient_norms(parts, list(parameters))
        for name, share in shares(norms).items():
            # the epoch's mean over its measurements: a logged step value would reach the logs only when a
            # measured step is also one of Lightning's log_every_n_steps
            self.log(f"train/grad_share_{name}", share, on_step=False, on_epoch=True, batch_size=1)
        for line in self.share_monitor.update(step, norms, weights):
            if self.trainer.is_global_zero:
                log.warning("%s", line)

    def check_setup(self, datamodule) -> None:
        """Fail before training when the data cannot train this module (called by ``train``)."""
        if getattr(datamodule, "unpaired", False) and not self.supports_unpaired:
            raise ValueError(
                f"data.unpaired=true draws LR and HR from different slices, but {type(self).__name__} needs "
                "(LR, HR) pairs; use module=cycle for unpaired training"
            )

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        # logged per batch, reported per epoch: an epoch resumed mid-way still reports it
        self.log_learning_rates()

    def log_learning_rates(self) -> None:
        optimizer = self.optimizers(use_pl_optimizer=False)
        self.log("train/lr", optimizer.param_groups[0]["lr"], on_step=False, on_epoch=True, batch_size=1)

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(params=self.net.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer=optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": self.scheduler_interval}}

    @property
    def _net(self) -> nn.Module:
        """The uncompiled network (its declarations: scale, input_mode)."""
        return getattr(self.net, "_orig_mod", self.net)

    # --- validation -------------------------------------------------------------------------------
    def _score(self, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        # float32 whatever the trainer's precision (Lightning wraps validation and test in its autocast):
        # one number per checkpoint, the one evaluate.py gives for it on any machine
        with without_autocast(batch["hr"].device):
            pred = predict(self._net, model_input(self._net, batch), forward=self).float()
            mask = brain_mask(batch["hr"], self.brain_threshold)
            return pred, slice_metrics(pred, batch["hr"], mask), mask

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        pred, metrics, mask = self._score(batch)
        size = batch["hr"].shape[0]
        total, _ = self.loss(pred, batch["hr"])
        self.log("val/loss", total, sync_dist=True, batch_size=size)
        # metric objects sum values and counts over all ranks: the mean over every slice, exactly
        for name in METRICS:
            self.val_means[name].update(metrics[name])
            self.log(f"val/{name}", self.val_means[name], prog_bar=name == "psnr", batch_size=size)
        self.log("val/slices", float(size), reduce_fx="sum", sync_dist=True, batch_size=size)
        for baseline, module in self.baselines.items():
            with without_autocast(batch["hr"].device):
                scores = slice_metrics(predict(module, model_input(module, batch)).float(), batch["hr"], mask)
            for name in BASELINE_VAL_METRICS:
                key = f"{baseline}_{name}"
                self.baseline_val_means[key].update(scores[name])
                self.log(f"baselines/val/{key}", self.baseline_val_means[key], batch_size=size)
        self._keep_panel(batch, pred, mask)

    def on_validation_epoch_end(self) -> None:
        # the gain over each baseline on the same slices, one number per validation: what a sweep is
        # ranked by (lfmri-sweep summarize) and what a dashboard groups runs on (wandb reads the same)
        if not self.trainer.sanity_checking:
            for baseline in self.baselines:
                for name in GAIN_METRICS:
                    ours, theirs = self.val_means[name], self.baseline_val_means[f"{baseline}_{name}"]
                    if ours.update_count and theirs.update_count:
                        self.log(f"val/{name}_vs_{baseline}", ours.compute() - theirs.compute(), batch_size=1)
        self._write_panel()

    PANEL_CANDIDATES = 32  # validation slices with the most anatomy kept for the panel (a few small tensors each)
    PANEL_AREA_SHARE = 0.7  # of the largest area: the slices a mid-brain panel is chosen among

    def _keep_panel(self, batch: dict, pred: torch.Tensor, mask: torch.Tensor) -> None:
        """Keep the validation slices with the most anatomy (the brain mask's largest areas) as panel
        candidates; :meth:`_panel_slice` picks the mid-brain one among them at the end of validation."""
        area = mask.flatten(1).sum(dim=1)
        candidates = self._panel_candidates
        floor = min((c["area"] for c in candidates), default=-1.0) if len(candidates) >= self.PANEL_CANDIDATES else -1.0
        for i in torch.argsort(area, descending=True)[: self.PANEL_CANDIDATES].tolist():
            if float(area[i]) <= floor:
                break
            panel = {"sr": pred[i, 0].detach(), "area": float(area[i]), **{k: batch[k][i] for k in ("lr", "lr_complex", "hr")}}
            if "subject" in batch:
                panel.update(subject=batch["subject"][i], slice=int(batch["slice"][i]))
            candidates.append(panel)
        candidates.sort(key=lambda c: -c["area"])
        del candidates[self.PANEL_CANDIDATES :]

    @classmethod
    def _panel_slice(cls, candidates: list[dict]) -> dict | None:
        """The panel among ``candidates``: of the slices of the subject with the largest one whose area is
        at least :attr:`PANEL_AREA_SHARE` of it, the one in the middle of their slice indices.

        The largest cross-section alone can be a skull-base slice (face and neck make a large head
        outline below the brain); the middle of the slices that are nearly as large lies in the brain.
        """
        if not candidates:
            return None
        top = max(candidates, key=lambda c: c["area"])
        near = [c for c in candidates if c["area"] >= cls.PANEL_AREA_SHARE * top["area"]
                and c.get("subject") == top.get("subject") and "slice" in c]
        if len(near) < 2:
            return top
        near.sort(key=lambda c: c["slice"])
        return near[(len(near) - 1) // 2]

    def _write_panel(self) -> None:
        panel, self._panel_candidates = self._panel_slice(self._panel_candidates), []
        epoch = self.current_epoch  # 0-based, as in metrics.csv and the checkpoints
        # max_epochs -1 (a run bounded by steps) never makes an epoch the last one
        max_epochs = self.trainer.max_epochs
        last = (max_epochs is not None and max_epochs > 0 and epoch + 1 >= max_epochs) or (
            self.trainer.max_steps > 0 and self.global_step >= self.trainer.max_steps)  # a run bounded by steps: its last validation
        # validation on a step interval (budget=quick) runs several times an epoch: a panel at each one
        by_steps = self.trainer.check_val_every_n_epoch is None
        if (
            panel is None
            or self.trainer.sanity_checking
            or not self.trainer.is_global_zero
            or self.panel_every_n_epochs <= 0
            or not (by_steps or (epoch + 1) % self.panel_every_n_epochs == 0 or last)
        ):
            return
        images = {"LR": panel["lr"][0]}
        if "zerofill" in self.baselines:
            images["zero-fill"] = self.baselines["zerofill"](panel["lr_complex"][None])[0, 0]
        images[self.method_name] = panel["sr"]
        hr = panel["hr"][None].float()
        mask = brain_mask(hr, self.brain_threshold)
        scores = {}
        for name, image in images.items():
            if name != "LR":  # the LR image is on another grid: no per-pixel score
                m = slice_metrics(image[None, None].float(), hr, mask)
                scores[name] = {"PSNR": float(m["psnr_brain"][0]), "SSIM": float(m["ssim_brain"][0])}
        pixel_sizes, axes = self._panel_geometry(panel.get("subject"))
        where = f"{panel['subject']} slice {panel['slice']}, " if "subject" in panel else ""
        name = f"step_{self.global_step:07d}.png" if by_steps else f"epoch_{epoch:04d}.png"
        path = Path(self.trainer.default_root_dir) / "panels" / name
        comparison_figure(
            path,
            panel["hr"][0].float().cpu().numpy(),
            {k: v.float().clamp(0, 1).cpu().numpy() for k, v in images.items()},
            scores,
            title=f"validation, epoch {epoch} (0-based, as in metrics.csv), step {self.global_step}: {where}scores in the brain mask",
            pixel_sizes=pixel_sizes,
            axes=axes,
        )
        for logger in self.loggers:
            if hasattr(logger, "log_image"):
                logger.log_image(key="val/panel", images=[str(path)], step=self.global_step)
            elif isinstance(logger, TensorBoardLogger):  # no log_image there: its SummaryWriter takes the pixels
                rgb = imread(path)[..., :3]  # the PNG as floats in [0, 1], alpha dropped
                logger.experiment.add_image("val/panel", rgb, self.global_step, dataformats="HWC")

    def _panel_geometry(self, subject: str | None) -> tuple[tuple[float, float] | None, tuple[int, int] | None]:
        """Pixel sizes (mm) of the HR slice grid and the slice's canonical axes, from the datamodule's
        volume; (None, None) where the data does not say (the panel is then drawn square, unlabelled)."""
        datamodule = getattr(self.trainer, "datamodule", None)
        entry = getattr(datamodule, "volumes", {}).get(subject) if subject is not None else None
        degradation = getattr(datamodule, "degradation", None)
        if entry is None or degradation is None or not hasattr(entry, "volume"):
            return None, None
        from lfmri.geometry.affines import output_affines
        from lfmri.geometry.nifti import voxel_sizes
        from lfmri.geometry.slicing import in_plane_axes

        axes = in_plane_axes(int(datamodule.slice_axis))
        hr_affine = output_affines(entry.volume.affine, entry.volume.data.shape, int(datamodule.slice_axis), degradation)["hr"]
        zooms = voxel_sizes(hr_affine)
        return (float(zooms[axes[0]]), float(zooms[axes[1]])), axes

    # --- test -------------------------------------------------------------------------------------
    def on_test_epoch_start(self) -> None:
        self._test_table = MetricsTable()

    def test_step(self, batch: dict, batch_idx: int) -> None:
        pred, metrics, mask = self._score(batch)
        subjects, slices = list(batch["subject"]), batch["slice"].tolist()
        self._test_table.add(subjects, slices, self.method_name, metrics)
        for name, baseline in self.baselines.items():
            with without_autocast(batch["hr"].device):
                out = predict(baseline, model_input(baseline, batch)).float()
                self._test_table.add(subjects, slices, name, slice_metrics(out, batch["hr"], mask))

    def on_test_epoch_end(self) -> None:
        rows = self._test_table.rows
        if dist.is_available() and dist.is_initialized():
            gathered: list = [None] * dist.get_world_size()
            dist.all_gather_object(gathered, rows)
            rows = [row for part in gathered for row in part]
        # one row per (subject, slice, method): ranks never share slices, but be explicit
        unique = {(r["subject"], r["slice"], r["method"]): r for r in rows}
        table = MetricsTable(sorted(unique.values(), key=lambda r: (r["subject"], r["slice"])))
        self.test_table = table
        means = table.means()
        for name, value in means.get(self.method_name, {}).items():
            self.log(f"test/{name}", value, rank_zero_only=True)
        # the baselines on the same slices: dashboards (wandb, metrics.csv) show the gain over them
        for baseline in self.baselines:
            for name, value in means.get(baseline, {}).items():
                self.log(f"baselines/test/{baseline}_{name}", value, rank_zero_only=True)
                if name in GAIN_METRICS and name in means.get(self.method_name, {}):
                    self.log(f"test/{name}_vs_{baseline}", means[self.method_name][name] - value, rank_zero_only=True)
        if self.trainer.is_global_zero:
            out = Path(self.trainer.default_root_dir) / "test"
            table.write_csv(out / "metrics.csv")
            split = getattr(self.trainer.datamodule, "split", None)
            groups = subject_groups(table.subjects, split)
            markdown = table.to_markdown("Test slices: model vs baselines", groups)
            if self.test_note:
                markdown += f"\n**Note:** {self.test_note}.\n"
            (out / "metrics.md").write_text(markdown)
            print("\n" + markdown)
