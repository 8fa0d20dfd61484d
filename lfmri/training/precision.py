"""``trainer.precision`` for the machine a run is on: ``auto`` as predict's ``precision=auto`` decides it.

``auto`` is ``bf16-mixed`` only where the CPU or GPU runs bfloat16 natively and ``32-true`` otherwise;
whether it does is :func:`lfmri.inference.network.bf16_supported`, the one detection that
``lfmri-predict`` and ``evaluate.py`` use too. Without native support (AVX2-only CPUs, GPUs before
Ampere) bf16 autocast is emulated: the shipped recipe took 45 s a step in bf16-mixed against 6 s in
32-true on a 2-core AVX2 CPU. An explicit ``bf16-mixed`` there is honoured with a warning, never
refused (it gives the same numbers, only slower).
"""

from __future__ import annotations

import logging
from typing import get_args

import torch

from lfmri.errors import ConfigError
from lfmri.inference import network

log = logging.getLogger(__name__)

AUTO = "auto"
BF16 = ("bf16", "bf16-mixed", "bf16-true")


def lightning_precisions() -> tuple[str, ...]:
    """The precision strings this Lightning accepts (``Trainer(precision=...)``)."""
    # Lightning declares them only as typing Literals (no public list): their values, aliases ("32") included
    from lightning.fabric.connector import _PRECISION_INPUT

    def values(kind) -> list[str]:
        args = get_args(kind)
        return [str(a) for a in args if not hasattr(a, "__args__")] + [v for a in args if hasattr(a, "__args__") for v in values(a)]

    return tuple(dict.fromkeys(values(_PRECISION_INPUT)))


def accelerator_device(accelerator: str | None) -> torch.device | None:
    """The device type behind ``trainer.accelerator`` (``auto`` takes CUDA when it is there);
    ``None`` for accelerators whose bf16 lfmri does not judge (mps, tpu, ...)."""
    name = str(accelerator or "auto").lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name in ("gpu", "cuda"):
        return torch.device("cuda")
    if name == "cpu":
        return torch.device("cpu")
    return None


def native_bf16_note(device: torch.device | None, native: bool) -> str:
    """Why ``native`` (:func:`lfmri.inference.network.bf16_supported` of ``device``), in words."""
    if device is None:
        return "this accelerator is not known to run bfloat16 natively"
    if device.type == "cuda":
        return "this GPU runs bfloat16 natively (Ampere or newer)" if native else \
            "this GPU has no native bfloat16 (it needs Ampere or newer)"
    return "this CPU runs bfloat16 natively (AVX512-BF16 or AMX)" if native else \
        "this CPU has no native bfloat16 (no AVX512-BF16 or AMX)"


def trainer_precision(requested, accelerator: str | None) -> tuple[str, str]:
    """(the ``Trainer(precision=...)`` value, the one-line reason) for ``trainer.precision=requested``.

    ``auto``: ``bf16-mixed`` where the device runs bf16 natively, else ``32-true``. Any value
    Lightning accepts is kept as given; a bf16 one on a device without native bf16 logs a warning
    (about 8x slower than float32 there). Anything else is a :class:`~lfmri.errors.ConfigError`.
    """
    value = str(requested)
    device = accelerator_device(accelerator)
    native = device is not None and network.bf16_supported(device)
    if value == AUTO:
        chosen = "bf16-mixed" if native else "32-true"
        return chosen, f"trainer.precision=auto chose {chosen}: {native_bf16_note(device, native)}"
    accepted = lightning_precisions()
    if value not in accepted:
        raise ConfigError(f"trainer.precision={value!r}: expected auto or one of {', '.join(accepted)}")
    if value in BF16 and not native:
        log.warning("trainer.precision=%s: %s, so bf16 is emulated and training runs about 8x slower than in "
                    "float32 (45 s against 6 s a step measured on an AVX2 CPU); trainer.precision=auto picks 32-true here",
                    value, native_bf16_note(device, native))
    return value, f"trainer.precision={value} as given; {native_bf16_note(device, native)}"
