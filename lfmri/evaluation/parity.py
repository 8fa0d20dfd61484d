"""How much bf16 inference moves a checkpoint's in-brain PSNR: the number ``precision=auto`` reads."""

from __future__ import annotations

from pathlib import Path

from lfmri.checkpoints.stored_run import StoredRun
from lfmri.evaluation.comparison import Evaluator, sample_mode
from lfmri.evaluation.volumes import volumes_from_files
from lfmri.inference.network import BF16_PARITY_KEY
from lfmri.run_options import RunOptions


def measure_bf16_parity(ckpt_path: str | Path, inputs: list[str], batch_size: int = 8) -> dict[str, float]:
    """How much bf16 inference moves a checkpoint's in-brain PSNR, on real HR volumes ``inputs``.

    Each volume is normalised and degraded with the checkpoint's own degradation and seeds, exactly
    as ``evaluate.py inputs=...`` does, and the network's output is scored against the HR inside the
    brain mask in float32 and in bf16 (autocast, channels_last). Returns ``{BF16_PARITY_KEY: mean
    bf16 PSNR - mean float32 PSNR (dB), "psnr_brain_fp32", "psnr_brain_bf16", "slices"}``; store
    the first in the model card (``card[BF16_PARITY_KEY]``) and ``precision=auto`` may pick bf16.
    Needs a CPU (or GPU) with native bf16.
    """
    run = StoredRun.load(ckpt_path)
    train_cfg = run.config
    degradation = run.degradation()
    net = run.network()
    datamodule = run.datamodule(degradation=degradation, input_mode=sample_mode([net]),
                                split=run.split, num_workers=0)
    volumes, failed = volumes_from_files(list(inputs), datamodule)
    if failed:
        raise ValueError("; ".join(failed.values()))
    psnr: dict[str, list[float]] = {}
    for precision in ("fp32", "bf16"):
        evaluator = Evaluator({"net": net}, degradation, slice_axis=int(train_cfg.data.slice_axis),
                              seed=int(train_cfg.data.seed),
                              options=RunOptions(device="cpu", precision=precision, batch_size=batch_size),
                              brain_threshold=float(train_cfg.module.get("brain_threshold", 0.05)))
        rows = [row for v in volumes for row in evaluator.run_volume(v)[1].rows if row["method"] == "net"]
        psnr[precision] = [float(r["psnr_brain"]) for r in rows if r["psnr_brain"] == r["psnr_brain"]]  # no NaN
    mean = {k: sum(v) / max(1, len(v)) for k, v in psnr.items()}
    return {BF16_PARITY_KEY: mean["bf16"] - mean["fp32"], "psnr_brain_fp32": mean["fp32"],
            "psnr_brain_bf16": mean["bf16"], "slices": float(len(psnr["fp32"]))}
