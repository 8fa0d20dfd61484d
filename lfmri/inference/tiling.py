"""Bounded-memory inference on large slices: overlapping tiles, blended back together.

A fully convolutional network gives the same output on a tile as on the whole slice wherever the
tile contains the pixel's whole receptive field. Tiles therefore overlap by ``overlap`` input
pixels, and each tile's contribution is weighted by a window that is zero on the outer quarter of
every overlap (where padding effects live), ramps linearly across the middle half, and is one
elsewhere. Complementary ramps sum to one, so the blend is exact for any network whose receptive
field radius is at most ``overlap / 4`` and smooth for deeper ones. Image borders keep weight one.
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start indices of tiles of ``tile`` pixels covering ``length`` with at least ``overlap``."""
    if tile >= length:
        return [0]
    if not 0 <= overlap < tile:
        raise ValueError(f"tile overlap must be in [0, tile size {tile}), got {overlap}")
    stride = tile - overlap
    starts = list(range(0, length - tile, stride)) + [length - tile]
    return sorted(set(starts))


def edge_ramp(length: int, overlap: int, scale: int) -> torch.Tensor:
    """Weights over ``length`` output pixels for one tile edge region of ``overlap`` input pixels.

    Zero over the first quarter of the overlap, linear over the middle half, one after.
    """
    position = (torch.arange(length, dtype=torch.float32) + 0.5) / scale  # in input pixels
    quarter = overlap / 4
    if quarter == 0:
        return torch.ones(length)
    return ((position - quarter) / (2 * quarter)).clamp(0, 1)


def axis_window(start: int, size: int, length: int, overlap: int, scale: int) -> torch.Tensor:
    """1D blending window of a tile at ``start`` of ``size`` input pixels on an axis of ``length``."""
    window = torch.ones(size * scale)
    ramp = edge_ramp(size * scale, overlap, scale)
    if start > 0:
        window = window * ramp
    if start + size < length:
        window = window * ramp.flip(0)
    return window


def tiled(
    run: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    scale: int,
    tile: int,
    overlap: int,
) -> torch.Tensor:
    """``run`` (B, C, h, w) -> (B, C', s*h, s*w) applied tile by tile when h or w exceeds ``tile``.

    ``run`` must handle any tile size (e.g. :func:`lfmri.inference.network.predict`, which pads).
    """
    h, w = x.shape[-2:]
    if h <= tile and w <= tile:
        return run(x)
    if overlap >= tile:
        raise ValueError(f"tile_overlap={overlap} must be smaller than tile_size={tile}")
    out = weight = None
    for top in tile_starts(h, tile, overlap):
        for left in tile_starts(w, tile, overlap):
            th, tw = min(tile, h), min(tile, w)
            piece = run(x[..., top : top + th, left : left + tw])
            window = axis_window(top, th, h, overlap, scale)[:, None] * axis_window(left, tw, w, overlap, scale)[None, :]
            window = window.to(piece.device, piece.dtype)
            if out is None:
                out = piece.new_zeros((*piece.shape[:-2], h * scale, w * scale))
                weight = piece.new_zeros((h * scale, w * scale))
            rows = slice(top * scale, (top + th) * scale)
            cols = slice(left * scale, (left + tw) * scale)
            out[..., rows, cols] += piece * window
            weight[rows, cols] += window
    return out / weight


def receptive_radius(run: Callable[[torch.Tensor], torch.Tensor], channels: int, size: int, scale: int) -> int:
    """How many input pixels around a pixel change its output: ``run``'s receptive radius, measured.

    The gradient of the centre output pixel of a ``size`` x ``size`` random input reaches exactly
    the input pixels that pixel depends on (exact zeros elsewhere, whatever the weights); the
    result is at most ``size // 2`` (a network that sees the whole probe, e.g. with global pooling).
    """
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(1, channels, size, size, generator=generator).requires_grad_(True)
    with torch.enable_grad():
        out = run(x)
        centre = size // 2
        out[..., centre * scale + scale // 2, centre * scale + scale // 2].sum().backward()
    reached = x.grad.abs().sum(dim=(0, 1)) > 0
    rows = torch.nonzero(reached.any(dim=1)).flatten()
    cols = torch.nonzero(reached.any(dim=0)).flatten()
    if len(rows) == 0:
        return 0
    return int(max(centre - rows.min(), rows.max() - centre, centre - cols.min(), cols.max() - centre))
