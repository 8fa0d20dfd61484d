"""AMIR: all-in-one medical image restoration via task-adaptive routing (Yang et al., MICCAI 2024).

Following the official ``model/Model_AMIR.py`` of the AMIR repository: a Restormer U-net
(MDTA attention + gated-Dconv FFN blocks, pixel unshuffle/shuffle between 4 levels, refinement
stage, global residual) with three routing modules driven by a task "prompt":

- Routing Instruction Network (RIN): a small strided CNN on the input, global pooling, a softmax
  over 32 learnable 256-d atoms; the prompt is GELU(weighted atom sum).
- Spatial Routing at the input of encoder levels 1-3: a token-wise mixture of 4 MLP experts with
  noisy top-2 gating on (features, projected prompt). The experts are combined as in the official
  dispatcher, log(sum_k g_k exp(y_k)) (a gated log-sum-exp, kept for faithfulness), plus a residual.
  Each returns the load-balancing loss cv^2(importance) + cv^2(load).
- Channel Routing at the latent and decoder levels: x + (gamma x + beta) * sigmoid(Linear(prompt)),
  gamma and beta initialised to 0 (identity at start).

Official defaults: dim 42, blocks [5, 7, 7, 9], 4 refinement blocks, heads [1, 2, 4, 8], FFN
expansion 2.66, no biases in the backbone, 'WithBias' channel LayerNorm (timm ``LayerNorm2d``):
23,540,498 parameters. The low-field project reported 22.25 M for its variant, which no nearby
configuration reproduces exactly; lfmri keeps the official defaults.

Input and output have the same size (``input_mode = "upsampled"``: the LR on the HR grid, e.g.
k-space zero-filled or interpolated); any H, W works: :func:`lfmri.inference.network.predict` pads to a
multiple of 8 (``size_multiple``) and crops back. Training returns an :class:`SROutput` whose
``aux_loss`` is ``aux_loss_weight`` (0.001, the official recipe) times the summed load-balancing
loss; evaluation returns the image only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from timm.layers import LayerNorm2d
from torch import nn

from lfmri.contracts import SROutput, check_scale


class MDTA(nn.Module):
    """Multi-Dconv-head transposed attention: attention across channels, O(C^2) per head."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv = nn.Conv2d(dim, dim * 3, 1, bias=False)
        self.qkv_dwconv = nn.Conv2d(dim * 3, dim * 3, 3, padding=1, groups=dim * 3, bias=False)
        self.project_out = nn.Conv2d(dim, dim, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        q, k, v = self.qkv_dwconv(self.qkv(x)).chunk(3, dim=1)
        q, k, v = (rearrange(t, "b (head c) h w -> b head c (h w)", head=self.heads) for t in (q, k, v))
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        attn = ((q @ k.transpose(-2, -1)) * self.temperature).softmax(dim=-1)
        out = rearrange(attn @ v, "b head c (h w) -> b (head c) h w", h=h, w=w)
        return self.project_out(out)


class GDFN(nn.Module):
    """Gated-Dconv feed-forward network."""

    def __init__(self, dim: int, expansion: float) -> None:
        super().__init__()
        hidden = int(dim * expansion)
        self.project_in = nn.Conv2d(dim, hidden * 2, 1, bias=False)
        self.dwconv = nn.Conv2d(hidden * 2, hidden * 2, 3, padding=1, groups=hidden * 2, bias=False)
        self.project_out = nn.Conv2d(hidden, dim, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(x1) * x2)


class TransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, expansion: float) -> None:
        super().__init__()
        self.norm1 = LayerNorm2d(dim, eps=1e-5)
        self.attn = MDTA(dim, heads)
        self.norm2 = LayerNorm2d(dim, eps=1e-5)
        self.ffn = GDFN(dim, expansion)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


def _blocks(n: int, dim: int, heads: int, expansion: float) -> nn.Sequential:
    return nn.Sequential(*(TransformerBlock(dim, heads, expansion) for _ in range(n)))


def _down(dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(dim, dim // 2, 3, padding=1, bias=False), nn.PixelUnshuffle(2))


def _up(dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(dim, dim * 2, 3, padding=1, bias=False), nn.PixelShuffle(2))


class RoutingInstructionNetwork(nn.Module):
    """The task prompt: a softmax-weighted sum of learnable atoms, chosen from the input image."""

    def __init__(self, channels: int = 1, atoms: int = 32, atom_dim: int = 256, width: int = 64) -> None:
        super().__init__()
        act = lambda: nn.LeakyReLU(0.1)  # noqa: E731
        self.features = nn.Sequential(
            nn.Conv2d(channels, width, 3, stride=3), act(),
            nn.Conv2d(width, width, 3, stride=3), act(),
            nn.Conv2d(width, width, 1), act(),
            nn.Conv2d(width, width, 1), act(),
            nn.Conv2d(width, atoms, 1),
        )  # fmt: skip
        self.logits = nn.Linear(atoms, atoms)
        self.atoms = nn.Parameter(torch.randn(atoms, atom_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = self.logits(self.features(x).mean(dim=(-2, -1))).softmax(dim=-1)
        return F.gelu(weights @ self.atoms)


def _cv_squared(x: torch.Tensor) -> torch.Tensor:
    """Squared coefficient of variation (0 for a single value), the MoE balance measure."""
    if x.numel() <= 1:
        return x.new_zeros(())
    x = x.float()
    return x.var() / (x.mean() ** 2 + 1e-10)


class SpatialRouting(nn.Module):
    """Token-wise noisy top-k mixture of MLP experts, conditioned on the prompt (Shazeer et al. 2017)."""

    def __init__(self, dim: int, prompt_dim: int = 256, experts: int = 4, top_k: int = 2, expansion: float = 2.66) -> None:
        super().__init__()
        self.experts_n, self.top_k = experts, top_k
        self.prompt_proj = nn.Linear(prompt_dim, dim)
        self.w_gate = nn.Parameter(torch.randn(2 * dim, experts))
        self.w_noise = nn.Parameter(torch.zeros(2 * dim, experts))
        hidden = int(dim * expansion)
        self.experts = nn.ModuleList(
            nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)) for _ in range(experts)
        )
        self.register_buffer("_mean", torch.tensor([0.0]), persistent=False)
        self.register_buffer("_std", torch.tensor([1.0]), persistent=False)

    def _gates(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        clean = tokens @ self.w_gate
        if self.training:
            noise_std = F.softplus(tokens @ self.w_noise) + 0.01
            logits = clean + torch.randn_like(clean) * noise_std
        else:
            logits = clean
        top_logits, top_idx = logits.topk(min(self.top_k + 1, self.experts_n), dim=1)
        gates = torch.zeros_like(logits).scatter(1, top_idx[:, : self.top_k], top_logits[:, : self.top_k].softmax(1))
        if self.training and self.top_k < self.experts_n:
            load = self._prob_in_top_k(clean, logits, noise_std, top_logits).sum(0)
        else:
            load = (gates > 0).sum(0).float()
        return gates, _cv_squared(gates.sum(0)) + _cv_squared(load)

    def _prob_in_top_k(self, clean, noisy, noise_std, top_logits) -> torch.Tensor:
        """Smooth estimate of each expert being in the top k (differentiable load)."""
        normal = torch.distributions.Normal(self._mean, self._std)
        threshold_in = top_logits[:, self.top_k : self.top_k + 1]
        threshold_out = top_logits[:, self.top_k - 1 : self.top_k]
        is_in = noisy > threshold_in
        prob_in = normal.cdf((clean - threshold_in) / noise_std)
        prob_out = normal.cdf((clean - threshold_out) / noise_std)
        return torch.where(is_in, prob_in, prob_out)

    def forward(self, x: torch.Tensor, prompt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, c, h, w = x.shape
        feats = rearrange(x, "b c h w -> (b h w) c")
        cond = self.prompt_proj(prompt).repeat_interleave(h * w, dim=0)
        gates, balance = self._gates(torch.cat([feats, cond], dim=1))
        combined = feats.new_zeros(feats.shape)
        for e, expert in enumerate(self.experts):
            idx = torch.nonzero(gates[:, e], as_tuple=True)[0]
            if len(idx):
                combined.index_add_(0, idx, gates[idx, e, None] * expert(feats[idx]).exp())
        # the official dispatcher's gated log-sum-exp (exact zeros replaced by machine epsilon)
        combined = torch.where(combined == 0, torch.finfo(combined.dtype).eps, combined).log()
        return x + rearrange(combined, "(b h w) c -> b c h w", b=b, h=h, w=w), balance


class ChannelRouting(nn.Module):
    """Prompt-gated channel affine, the identity at initialisation."""

    def __init__(self, dim: int, prompt_dim: int = 256) -> None:
        super().__init__()
        self.proj = nn.Linear(prompt_dim, dim)
        self.gamma = nn.Parameter(torch.zeros(1, dim, 1, 1))
        self.beta = nn.Parameter(torch.zeros(1, dim, 1, 1))

    def forward(self, x: torch.Tensor, prompt: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid(self.proj(prompt))[:, :, None, None]
        return x + (self.gamma * x + self.beta) * gate


class AMIR(nn.Module):
    input_mode = "upsampled"
    size_multiple = 8  # three pixel-unshuffle levels

    def __init__(
        self,
        scale: int = 2,
        channels: int = 1,
        dim: int = 42,
        num_blocks: tuple[int, int, int, int] = (5, 7, 7, 9),
        num_refinement_blocks: int = 4,
        heads: tuple[int, int, int, int] = (1, 2, 4, 8),
        ffn_expansion: float = 2.66,
        atoms: int = 32,
        prompt_dim: int = 256,
        experts: int = 4,
        top_k: int = 2,
        aux_loss_weight: float = 1e-3,
    ) -> None:
        super().__init__()
        self.scale = check_scale(self, scale)
        self.aux_loss_weight = aux_loss_weight
        d1, d2, d3, d4 = dim, dim * 2, dim * 4, dim * 8
        e = ffn_expansion
        self.embed = nn.Conv2d(channels, dim, 3, padding=1, bias=False)
        self.rin = RoutingInstructionNetwork(channels, atoms, prompt_dim)
        self.route1, self.route2, self.route3 = (SpatialRouting(d, prompt_dim, experts, top_k) for d in (d1, d2, d3))
        self.enc1 = _blocks(num_blocks[0], d1, heads[0], e)
        self.down1_2, self.enc2 = _down(d1), _blocks(num_blocks[1], d2, heads[1], e)
        self.down2_3, self.enc3 = _down(d2), _blocks(num_blocks[2], d3, heads[2], e)
        self.down3_4, self.route_latent = _down(d3), ChannelRouting(d4, prompt_dim)
        self.latent = _blocks(num_blocks[3], d4, heads[3], e)
        self.up4_3, self.reduce3 = _up(d4), nn.Conv2d(d4, d3, 1, bias=False)
        self.route_dec3, self.dec3 = ChannelRouting(d3, prompt_dim), _blocks(num_blocks[2], d3, heads[2], e)
        self.up3_2, self.reduce2 = _up(d3), nn.Conv2d(d3, d2, 1, bias=False)
        self.route_dec2, self.dec2 = ChannelRouting(d2, prompt_dim), _blocks(num_blocks[1], d2, heads[1], e)
        self.up2_1 = _up(d2)
        # level 1 keeps the concatenated width (2 * dim): no reduction, as in Restormer
        self.route_dec1, self.dec1 = ChannelRouting(d2, prompt_dim), _blocks(num_blocks[0], d2, heads[0], e)
        self.refinement = _blocks(num_refinement_blocks, d2, heads[0], e)
        self.output = nn.Conv2d(d2, channels, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor | SROutput:
        if any(n % self.size_multiple for n in x.shape[-2:]) or min(x.shape[-2:]) < 9:
            raise ValueError(
                f"AMIR needs H and W divisible by 8 and at least 9, got {tuple(x.shape[-2:])}; "
                "lfmri.inference.network.predict pads whole slices for it"
            )
        prompt = self.rin(x)
        h, b1 = self.route1(self.embed(x), prompt)
        e1 = self.enc1(h)
        h, b2 = self.route2(self.down1_2(e1), prompt)
        e2 = self.enc2(h)
        h, b3 = self.route3(self.down2_3(e2), prompt)
        e3 = self.enc3(h)
        h = self.latent(self.route_latent(self.down3_4(e3), prompt))
        h = self.reduce3(torch.cat([self.up4_3(h), e3], dim=1))
        h = self.dec3(self.route_dec3(h, prompt))
        h = self.reduce2(torch.cat([self.up3_2(h), e2], dim=1))
        h = self.dec2(self.route_dec2(h, prompt))
        h = torch.cat([self.up2_1(h), e1], dim=1)
        h = self.refinement(self.dec1(self.route_dec1(h, prompt)))
        image = self.output(h) + x
        if self.training:
            return SROutput(image, aux_loss=self.aux_loss_weight * (b1 + b2 + b3))
        return image
