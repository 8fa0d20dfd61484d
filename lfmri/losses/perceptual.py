"""VGG-19 perceptual loss: mean squared difference of ImageNet VGG-19 features (Johnson et al. 2016).

GAN-CPCE (Shan et al. 2018; Lyu et al. 2018) compares the features after the ReLU of the 16th and
last conv (conv5_4), ``layer=16``. The network is timm's ``vgg19`` (torchvision's ImageNet weights,
hub id ``timm/vgg19.tv_in1k``); grey images in [0, 1] are replicated to 3 channels and normalised
with the ImageNet mean and std. The official code used Caffe weights on BGR input x 255 with the
means subtracted and no std division, so its features, and the weight that suits them, are larger.

The VGG is frozen and kept out of the module tree: it is neither trained nor stored in checkpoints
(weights come from timm each run), and it follows the input's device on first use.
"""

from __future__ import annotations

import logging
from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger(__name__)

VGG19_CONVS = 16
HUB_ID = "timm/vgg19.tv_in1k"


def _frozen_features(vgg: nn.Module, layer: int) -> nn.Sequential:
    """``vgg.features`` up to and including the ReLU after conv number ``layer`` (1-based)."""
    kept, convs = [], 0
    for module in vgg.features:
        kept.append(module)
        if isinstance(module, nn.Conv2d):
            convs += 1
        if convs == layer and isinstance(module, nn.ReLU):
            break
    features = nn.Sequential(*kept).eval()
    for module in features:
        if isinstance(module, nn.ReLU):
            module.inplace = False  # the target's features must stay intact for the loss
    features.requires_grad_(False)
    return features


def load_vgg19(weights: str | None, allow_random_weights: bool, option: str = "loss.terms.perceptual") -> nn.Module:
    """ImageNet VGG-19 from a local file, else from timm (its cache or the hub); fails with how to fix it."""
    if weights:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"{option}.weights={weights}: no such file")
        try:
            # timm reads .safetensors or .pth/.bin, in timm's or torchvision's key layout
            return timm.create_model("vgg19", pretrained=True, pretrained_cfg_overlay={"file": str(path)})
        except Exception as err:
            raise ValueError(f"{option}.weights={weights}: not VGG-19 weights timm can load ({err})") from err
    try:
        return timm.create_model("vgg19", pretrained=True)
    except Exception as err:  # no network, no cache: huggingface_hub raises several kinds
        if not allow_random_weights:
            raise RuntimeError(
                f"{option}: the perceptual loss needs ImageNet VGG-19 weights and timm could not get them "
                f"({type(err).__name__}: {str(err)[:200]}). Either run once with internet access (timm caches "
                f"them under ~/.cache/huggingface), or download model.safetensors from "
                f"https://huggingface.co/{HUB_ID} (or torchvision's vgg19-dcbb9e9d.pth) and pass "
                f"{option}.weights=PATH. On offline machines set HF_HUB_OFFLINE=1 to skip the download attempt. "
                f"{option}.allow_random_weights=true trains with untrained VGG features (for tests only)."
            ) from err
        reason = type(err).__name__
    log.warning(
        "%s: no ImageNet VGG-19 weights (%s); using RANDOM VGG-19 weights because allow_random_weights=true: "
        "the perceptual term does not measure what the paper's does",
        option,
        reason,
    )
    return timm.create_model("vgg19", pretrained=False)


class VGGPerceptualLoss(nn.Module):
    """``mean((phi(pred) - phi(target))^2)``, phi = VGG-19 features through the ReLU of conv ``layer``."""

    def __init__(self, layer: int = 16, weights: str | None = None, allow_random_weights: bool = False) -> None:
        super().__init__()
        if not 1 <= layer <= VGG19_CONVS:
            raise ValueError(f"loss.terms.perceptual.layer={layer}: VGG-19 has convs 1..{VGG19_CONVS}")
        vgg = load_vgg19(weights, allow_random_weights)
        mean, std = vgg.pretrained_cfg["mean"], vgg.pretrained_cfg["std"]
        self.layer = int(layer)
        # a plain attribute, not a submodule: frozen, and not part of state dicts (see module docstring)
        self.__dict__["features"] = _frozen_features(vgg, layer)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def extract(self, image: torch.Tensor) -> torch.Tensor:
        if next(self.features.parameters()).device != image.device:
            self.features.to(image.device)
        rgb = image.expand(-1, 3, -1, -1) if image.shape[1] == 1 else image
        return self.features((rgb - self.mean.to(image)) / self.std.to(image))

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target_features = self.extract(target)
        return F.mse_loss(self.extract(pred), target_features)
