"""How a network runs on a machine: one declaration, one set of defaults.

``lfmri-predict`` (:class:`lfmri.inference.predictor.PredictConfig` derives from it),
``evaluate.py`` (``conf/evaluate.yaml`` lists the same keys with the same defaults, which
``tests/unit/test_run_options.py`` checks, and :func:`lfmri.evaluation.evaluator.prepare` reads
them with :meth:`RunOptions.from_config`), the bf16 parity measure and the benchmarks all run
networks with these options. ``lfmri-export`` has none of them: it always exports and checks in
float32 on the CPU, where its tolerance is defined.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from lfmri.errors import ConfigError


@dataclass
class RunOptions:
    """Where and how a network runs (:func:`lfmri.inference.network.network_forward`, :mod:`lfmri.inference.volume`)."""

    device: str = "auto"  # auto | cpu | cuda | cuda:1 ...
    # fp32 (or 32) | bf16 | auto | 16 (GPU only). bf16: autocast, channels_last, native bf16 only (AVX512-BF16/AMX,
    # Ampere+). auto: bf16 where native and the model card records bf16_psnr_brain_delta < 0.05 dB, else fp32
    precision: str = "auto"
    backend: str = "torch"  # torch | onnxruntime (CPU, float32; exported on the fly and checked against PyTorch)
    batch_size: int = 8  # slices per forward pass
    tile_size: int = 256  # model-input pixels; larger slices run in overlapping tiles (memory stays bounded)
    tile_overlap: int = 32  # pixels shared by neighbouring tiles (exact for receptive radius <= overlap/4)
    channels_last: bool = True  # NHWC convolutions: faster on CPU and tensor-core GPUs, same results
    progress: bool = True  # a progress bar per volume on a terminal, a log line per tenth of it otherwise

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> RunOptions:
        """The run options among ``cfg``'s keys (e.g. ``evaluate.py``'s config); defaults for the others.

        A value of the wrong type is a :class:`~lfmri.errors.ConfigError` naming the option.
        """
        given = {f.name: cfg[f.name] for f in dataclasses.fields(cls) if f.name in cfg}
        try:
            return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(cls), given))
        except OmegaConfBaseException as err:
            key = getattr(err, "full_key", None) or getattr(err, "key", None)
            message = str(getattr(err, "msg", err)).strip().splitlines()[0]
            raise ConfigError(f"bad value for option '{key}': {message}") from err
