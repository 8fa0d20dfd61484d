"""GPU readiness check: everything lfmri would want measured the first time a GPU is lent, in one run.

    python benchmarks/gpu_check.py [--out gpu_check.md]          # on a GPU, under 8 minutes
    python benchmarks/gpu_check.py --dry-run [--out FILE]        # same code paths, CPU, tiny sizes

Installs nothing: it runs the project as installed. In one process it measures
  1. the device's bf16 (and float32) matrix-product rate, the reference for every other figure;
  2. training patches/s through lfmri's own LightningModule and a Lightning Trainer, for SRDenseNet
     and AMIR, in float32, bf16-mixed, bf16-mixed + channels_last and bf16-mixed + channels_last +
     torch.compile, with peak memory and achieved FLOP/s (3x the forward FLOP) / bf16 matmul rate;
  3. the training data path: patches/s and the time per step spent waiting for data, with the
     patches degraded in loader workers or on the device (``data.degrade_on``);
  4. predict (``lfmri.cli.predict.Predictor``) volumes/s for SRDenseNet x2, float32 and bf16;
  5. one ``train.py trainer=ddp trainer.devices=1`` run on generated volumes (the DDP code path).
Each figure is printed as soon as it exists and the markdown table is written to ``--out``; a
failing variant is reported in its row and the others still run (exit status 1 if any failed).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
sys.path.insert(0, str(ROOT))

import lfmri.training.resolvers  # noqa: E402,F401  registers the resolvers of the composed configs


class Sizes:
    """Problem sizes: real ones on a GPU, tiny ones for ``--dry-run`` on a CPU."""

    def __init__(self, dry: bool) -> None:
        self.dry = dry
        self.gemm = 256 if dry else 8192
        self.batch = 2 if dry else 64  # training patches per step
        self.patch = 16 if dry else 64  # HR patch side
        self.warmup, self.steps = (1, 2) if dry else (5, 30)
        self.slices, self.slice_size = (2, 16) if dry else (150, 128)  # predict: LR slices of a volume
        self.ddp_patches = 8 if dry else 2000
        # the dry run shrinks the networks too (same classes, same code paths)
        self.model_overrides = {
            "srdensenet": ["model.blocks=2", "model.layers_per_block=2", "model.bottleneck_channels=16"] if dry else [],
            "amir": ["model.dim=8", "model.num_blocks=[1,1,1,1]", "model.num_refinement_blocks=1", "model.prompt_dim=16",
                     "model.atoms=4"] if dry else [],
        }


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_rate(device: torch.device, n: int, dtype: torch.dtype, repeats: int = 10) -> float:
    """FLOP/s of an n^3 matrix product in ``dtype`` (median of ``repeats`` after a warm-up)."""
    a, b = torch.rand(n, n, device=device, dtype=dtype), torch.rand(n, n, device=device, dtype=dtype)
    a @ b
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        a @ b
        sync(device)
        times.append(time.perf_counter() - start)
    return 2 * n**3 / sorted(times)[len(times) // 2]


def compose(*overrides: str):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return hydra_compose("train", overrides=["output_dir=/tmp/lfmri-gpu-check", *overrides])


def training_rate(model: str, precision: str, channels_last: bool, compile_: bool, sizes: Sizes,
                  device: torch.device) -> tuple[float, float, float]:
    """(patches/s, forward FLOP per patch, peak memory GiB) of lfmri's training step under Lightning."""
    import lightning as L
    from hydra.utils import instantiate
    from torch.utils.flop_counter import FlopCounterMode

    from lfmri.contracts import input_mode

    cfg = compose(f"model={model}", *sizes.model_overrides[model], f"module.channels_last={str(channels_last).lower()}", f"module.compile={str(compile_).lower()}")
    net = instantiate(cfg.model)
    module = instantiate(cfg.module, net=net, loss=instantiate(cfg.loss), baselines={}, name=model)
    scale, hr = int(cfg.scale), sizes.patch
    lr_side = hr if input_mode(net) == "upsampled" else hr // scale
    batch = {"hr": torch.rand(sizes.batch, 1, hr, hr), "lr": torch.rand(sizes.batch, 1, hr // scale, hr // scale)}
    batch["lr_up"] = torch.rand(sizes.batch, 1, hr, hr)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net.eval()(torch.rand(1, 1, lr_side, lr_side))
    net.train()
    total = sizes.warmup + sizes.steps
    loader = torch.utils.data.DataLoader([batch] * total, batch_size=None)
    marks: dict[str, float] = {}

    class Timer(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if batch_idx == sizes.warmup:
                sync(device)
                marks["start"] = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if batch_idx == total - 1:
                sync(device)
                marks["end"] = time.perf_counter()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    trainer = L.Trainer(accelerator=device.type, devices=1, precision=precision, max_steps=total, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[Timer()], num_sanity_val_steps=0, limit_val_batches=0)
    trainer.fit(module, train_dataloaders=loader)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    return sizes.batch * sizes.steps / (marks["end"] - marks["start"]), counter.get_total_flops(), peak


def data_path_rate(degrade_on: str, workers: int, sizes: Sizes, device: torch.device, resident: bool = False) -> tuple[float, float]:
    """(patches/s, ms per step waiting for data) of SRDenseNet in bf16-mixed trained through the real
    data module (the embedded MNI152, the shipped recipe's k-space degradation and augmentation) with
    the training patches degraded in ``workers`` loader workers or on the device. Waiting for data: the
    time from one step's end to the next one's start (the loader's batch, its transfer and, on the
    device path, the batched degradation)."""
    import lightning as L
    from hydra.utils import instantiate

    from lfmri.checkpoints.load import build
    from lfmri.contracts import input_mode

    recipe = compose("experiment=srdensenet_kspace_x2", "data=mni152", "model=srdensenet", *sizes.model_overrides["srdensenet"],
                     f"degradation.hr_size={sizes.slice_size * 2}", f"data.patch_size={sizes.patch}", f"data.batch_size={sizes.batch}",
                     f"data.patches_per_epoch={sizes.batch * (sizes.warmup + sizes.steps + 1)}", f"data.num_workers={workers}",
                     f"data.degrade_on={degrade_on}", f"data.resident={str(resident).lower()}", "data.split_file=null")
    net = instantiate(recipe.model)
    degradation = instantiate(recipe.degradation)
    datamodule = build(recipe.data, degradation=degradation, input_mode=input_mode(net))
    module = instantiate(recipe.module, net=net, loss=instantiate(recipe.loss), baselines={}, name="srdensenet")
    total = sizes.warmup + sizes.steps
    marks: dict[str, float] = {}
    waits: list[float] = []

    class Timer(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if batch_idx == sizes.warmup:
                sync(device)
                marks["start"] = time.perf_counter()
            if batch_idx > sizes.warmup:
                sync(device)
                waits.append(time.perf_counter() - marks["end_of_step"])

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            sync(device)
            marks["end_of_step"] = time.perf_counter()
            if batch_idx == total - 1:
                marks["end"] = marks["end_of_step"]

    trainer = L.Trainer(accelerator=device.type, devices=1, precision="bf16-mixed", max_steps=total, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[Timer()], num_sanity_val_steps=0, limit_val_batches=0)
    trainer.fit(module, datamodule=datamodule)
    return sizes.batch * sizes.steps / (marks["end"] - marks["start"]), 1e3 * sum(waits) / max(1, len(waits))


def data_path_rows(sizes: Sizes, device: torch.device, emit) -> int:
    """The training data path on this device: loader workers against the device path (data.degrade_on)."""
    failures = 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    workers = 0 if sizes.dry else max(1, min(8, cores - 1))
    emit(f"| data path (SRDenseNet bf16-mixed, batch {sizes.batch}, {sizes.patch}px HR from {2 * sizes.slice_size}px slices) "
         "| loader workers | patches/s | waiting for data, ms/step |")
    emit("|---|---:|---:|---:|")
    for degrade_on, n, resident in (("loader", workers, False), ("device", workers, False), ("device", 0, True)):
        label = f"data.degrade_on={degrade_on}" + (" data.resident=true (hardware=gpu)" if resident else "")
        try:
            rate, wait = data_path_rate(degrade_on, n, sizes, device, resident)
            emit(f"| {label} | {n} | {rate:,.1f} | {wait:.2f} |")
        except Exception as err:  # one broken variant must not hide the others
            failures += 1
            traceback.print_exc()
            emit(f"| {label} | {n} | FAILED: {type(err).__name__}: {str(err)[:120]} | |")
    return failures


def predict_rate(precision: str, sizes: Sizes, device: torch.device) -> tuple[float, float]:
    """(volumes/s, peak memory GiB) of ``Predictor`` on one volume of LR slices (SRDenseNet x2, untrained)."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from lfmri.checkpoints.stored_run import StoredRun
    from lfmri.inference.predictor import PredictConfig, Predictor

    cfg = compose()
    config = OmegaConf.to_container(cfg, resolve=True)
    net = instantiate(cfg.model)
    predictor = Predictor(StoredRun.of_network(net, config, source="gpu-check"), PredictConfig(ckpt_path="gpu-check", inputs=[], output_dir="/tmp", device=str(device),
                                                    precision=precision, batch_size=16, progress=False))
    lr = torch.rand(sizes.slices, 1, sizes.slice_size, sizes.slice_size)
    predictor.slices(lr[:2])
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    sync(device)
    start = time.perf_counter()
    for first in range(0, sizes.slices, 16):
        predictor.slices(lr[first : first + 16])
    sync(device)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    return 1 / (time.perf_counter() - start), peak


def predict_rows(sizes: Sizes, device: torch.device, emit) -> int:
    """The predict rows (fp32, bf16); returns the number of failures.

    On a device without native bfloat16 (many x86-64 CPUs) ``precision=bf16`` must be refused with
    the option named, not run emulated: there the row checks the refusal (a run is the failure).
    """
    from lfmri.inference import network

    failures = 0
    for precision in ("fp32", "bf16"):
        native = precision != "bf16" or network.bf16_supported(device)
        try:
            rate, peak = predict_rate(precision, sizes, device)
            if not native:
                failures += 1
                emit(f"| predict {precision} | FAILED: ran, but this {device.type} has no native bf16 and should refuse it | |")
            else:
                emit(f"| predict {precision} | {rate:.3f} | {peak:.2f} |")
        except ValueError as err:
            if not native and "precision=bf16" in str(err):
                emit(f"| predict {precision} | refused as expected (no native bf16 on this {device.type}) | |")
                continue
            failures += 1
            traceback.print_exc()
            emit(f"| predict {precision} | FAILED: {type(err).__name__}: {str(err)[:120]} | |")
        except Exception as err:
            failures += 1
            traceback.print_exc()
            emit(f"| predict {precision} | FAILED: {type(err).__name__}: {str(err)[:120]} | |")
    return failures


def ddp_run(sizes: Sizes, device: torch.device) -> float:
    """Seconds of one ``train.py trainer=ddp trainer.devices=1`` run (fit + test) on generated volumes."""
    import nibabel as nib
    import numpy as np

    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(0)
        for i in range(4):
            grid = np.stack(np.meshgrid(*(np.linspace(-1, 1, n) for n in (40, 48, 24)), indexing="ij"))
            head = (np.sqrt((grid**2).sum(0)) < 0.8) * (1 + 0.2 * rng.standard_normal((40, 48, 24)))
            nib.save(nib.Nifti1Image(head.astype(np.float32), np.eye(4)), f"{tmp}/s{i}.nii.gz")
        args = [sys.executable, str(ROOT / "train.py"), "trainer=ddp", "trainer.devices=1", "data=folder",
                f"data.pattern={tmp}/s*.nii.gz", "degradation.hr_size=32", "data.patch_size=16", "data.num_workers=0",
                "data.fractions=[0.5,0.25,0.25]", f"data.patches_per_epoch={sizes.ddp_patches}", f"data.batch_size={min(20, sizes.ddp_patches)}", "trainer.max_epochs=1",
                f"hydra.run.dir={tmp}/run", "logger={}"]
        args += [f"model={'srdensenet'}", *sizes.model_overrides["srdensenet"]]
        if device.type != "cuda":  # the dry run: the same DDPStrategy on the CPU, gloo instead of nccl
            args += ["trainer.accelerator=cpu", "trainer.strategy.process_group_backend=gloo"]
        start = time.perf_counter()
        proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=420)
        if proc.returncode != 0:
            raise RuntimeError(f"train.py trainer=ddp exited {proc.returncode}: {proc.stderr[-1500:]}")
        return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes: checks the code paths, not the speed")
    parser.add_argument("--out", default="gpu_check.md", help="markdown report")
    args = parser.parse_args()
    if not args.dry_run and not torch.cuda.is_available():
        print("gpu_check: no CUDA device visible; run with --dry-run to check the code paths on CPU", file=sys.stderr)
        return 2
    device = torch.device("cpu" if args.dry_run else "cuda")
    if args.dry_run:
        # one thread: on a small shared CPU, OpenMP barriers waiting for descheduled threads made a
        # tiny training step take seconds
        torch.set_num_threads(1)
        # dynamo still captures the network, but inductor's C++ code generation (minutes on a small
        # loaded CPU) is skipped: the dry run checks the code path, the GPU run measures the compiler
        import functools

        torch.compile = functools.partial(torch.compile, backend="eager")
    sizes = Sizes(args.dry_run)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU dry run ({os.cpu_count()} CPUs)"
    lines = [f"# lfmri GPU check: {name}, torch {torch.__version__}{' (DRY RUN: tiny sizes, figures meaningless)' if args.dry_run else ''}", ""]
    failures = 0

    def emit(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    began = time.perf_counter()
    bf16 = matmul_rate(device, sizes.gemm, torch.bfloat16)
    fp32 = matmul_rate(device, sizes.gemm, torch.float32)
    emit(f"bf16 matmul {sizes.gemm}^3: {bf16 / 1e12:.2f} TFLOP/s; float32: {fp32 / 1e12:.2f} TFLOP/s (the reference below)")
    emit("")
    emit(f"| training | precision | layout | compile | patches/s (batch {sizes.batch}, {sizes.patch}px HR) | achieved / bf16 matmul | peak GiB |")
    emit("|---|---|---|---|---:|---:|---:|")
    variants = [("32-true", False, False), ("bf16-mixed", False, False), ("bf16-mixed", True, False), ("bf16-mixed", True, True)]
    for model in ("srdensenet", "amir"):
        for precision, channels_last, compile_ in variants:
            layout = "channels_last" if channels_last else "NCHW"
            if args.dry_run and compile_ and model == "amir":
                # dynamo's capture of AMIR's data-dependent expert routing takes minutes on a small CPU;
                # the compile path itself is checked by SRDenseNet's row, AMIR's is measured on the GPU
                emit(f"| {model} | {precision} | {layout} | {compile_} | not run in the dry run | | |")
                continue
            try:
                rate, flop, peak = training_rate(model, precision, channels_last, compile_, sizes, device)
                emit(f"| {model} | {precision} | {layout} | {compile_} | {rate:,.1f} | {3 * flop * rate / bf16:.3f} | {peak:.2f} |")
            except Exception as err:  # one broken variant must not hide the others
                failures += 1
                traceback.print_exc()
                emit(f"| {model} | {precision} | {layout} | {compile_} | FAILED: {type(err).__name__}: {str(err)[:120]} | | |")
    emit("")
    failures += data_path_rows(sizes, device, emit)
    emit("")
    emit(f"| predict (SRDenseNet x2, {sizes.slices} slices {sizes.slice_size}->{2 * sizes.slice_size}) | volumes/s | peak GiB |")
    emit("|---|---:|---:|")
    failures += predict_rows(sizes, device, emit)
    emit("")
    try:
        emit(f"1-GPU `train.py trainer=ddp` ({sizes.ddp_patches} patches, fit + test): {ddp_run(sizes, device):.1f} s, exit 0")
    except Exception as err:
        failures += 1
        emit(f"1-GPU `train.py trainer=ddp`: FAILED: {str(err)[:1500]}")
    emit(f"\ntotal {time.perf_counter() - began:.0f} s")
    Path(args.out).write_text("\n".join(lines) + "\n")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
