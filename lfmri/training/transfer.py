"""Transfer learning: start a new run from another run's network weights, optionally freezing layers.

Both low-field seed papers expect few real pairs: pre-train on simulated pairs, then fine-tune on
the real ones (``experiment=lowfield_finetune``). ``init_from=CKPT`` copies the checkpoint's
network weights into the freshly built network; the optimizer, scheduler, epoch counter and data
split start fresh (unlike ``resume=true``). ``freeze=[blocks.0,blocks.1]`` stops gradients of
every parameter under those module names.

A 2D checkpoint can start a multi-slice network (``context_slices=K``): the layers that read the
input slices get the 2D weights on the centre slice and zeros on the neighbours, so the new network
starts as exactly the 2D one and learns what the neighbours add (:func:`inflate_to_context`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from lfmri.checkpoints.load import METADATA_KEY, CheckpointError, load_checkpoint, network_state
from lfmri.contracts import context_slices

log = logging.getLogger(__name__)


def load_network_weights(net: nn.Module, path: str | Path, trust_targets: Sequence[str] | None = None,
                         known_targets: Sequence[str] = ()) -> None:
    """Copy a checkpoint's network weights into ``net``; every mismatch is named before anything loads."""
    checkpoint = load_checkpoint(path, trust_targets, known_targets)
    state = network_state(checkpoint)
    own = net.state_dict()
    stored_context = int(((checkpoint.get(METADATA_KEY) or {}).get("config") or {}).get("model", {}).get("context_slices", 0) or 0)
    if context_slices(net) and not stored_context:
        state = inflate_to_context(state, own, context_slices(net), path)
    shapes = [f"{k}: checkpoint {tuple(v.shape)} vs network {tuple(own[k].shape)}"
              for k, v in state.items() if k in own and v.shape != own[k].shape]
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if shapes or missing or unexpected:
        parts = [f"{path}: its network does not fit {type(net).__name__} as configured"]
        if shapes:
            parts.append("layers of different shape:\n  " + "\n  ".join(shapes))
        if missing:
            parts.append(f"layers missing from the checkpoint: {missing}")
        if unexpected:
            parts.append(f"layers the network does not have: {unexpected}")
        parts.append("use the same model= and model options (e.g. scale=) as the run it comes from")
        raise CheckpointError("\n".join(parts))
    net.load_state_dict(state)
    log.info("initialised %s from %s (%d tensors)", type(net).__name__, path, len(state))


def inflate_to_context(state: dict[str, torch.Tensor], own: dict[str, torch.Tensor], context: int, path) -> dict[str, torch.Tensor]:
    """2D weights for a network reading ``2 * context + 1`` slices: every tensor whose input-channel
    axis (dim 1) is ``2 * context + 1`` times the stored one keeps the stored weights on the centre
    slice's channels and zeros elsewhere; the network's output is then the 2D network's."""
    slices = 2 * context + 1
    out = dict(state)
    for name, stored in state.items():
        target = own.get(name)
        if (target is None or target.shape == stored.shape or target.dim() < 2 or stored.dim() != target.dim()
                or target.shape[1] != stored.shape[1] * slices or target.shape[2:] != stored.shape[2:]
                or target.shape[0] != stored.shape[0]):
            continue
        inflated = stored.new_zeros(target.shape)
        inflated[:, context * stored.shape[1] : (context + 1) * stored.shape[1]] = stored
        out[name] = inflated
        log.info("%s: %s widened from %d to %d input slices (neighbours start at zero)", path, name, 1, slices)
    return out


def freeze_layers(net: nn.Module, prefixes: Sequence[str]) -> list[str]:
    """Stop gradients of the parameters under each module-name prefix; returns the frozen names."""
    names = [name for name, _ in net.named_parameters()]
    frozen = []
    for prefix in prefixes:
        prefix = str(prefix).rstrip(".")
        hits = [n for n in names if n == prefix or n.startswith(prefix + ".")]
        if not hits:
            modules = sorted({n.split(".")[0] for n in names})
            raise ValueError(f"freeze={prefix!r} matches no parameter of {type(net).__name__}; its modules are {modules}")
        frozen += hits
    params = dict(net.named_parameters())
    for name in frozen:
        params[name].requires_grad_(False)
    if frozen and len(set(frozen)) == len(names):
        raise ValueError(f"freeze={list(prefixes)} freezes every parameter of {type(net).__name__}; nothing would train")
    if frozen:
        log.info("frozen %d of %d parameter tensors under %s", len(set(frozen)), len(names), list(prefixes))
    return sorted(set(frozen))


def init_network(net: nn.Module, init_from: str | None, freeze: Sequence[str] | None,
                 trust_targets: Sequence[str] | None = None, known_targets: Sequence[str] = ()) -> None:
    """``train.py``'s ``init_from`` and ``freeze`` options, applied to the freshly built network."""
    if init_from:
        load_network_weights(net, init_from, trust_targets, known_targets)
    if freeze:
        freeze_layers(net, freeze)
