"""Transfer learning: start a new run from another run's network weights, optionally freezing layers.

Both low-field seed papers expect few real pairs: pre-train on simulated pairs, then fine-tune on
the real ones (``experiment=lowfield_finetune``). ``init_from=CKPT`` copies the checkpoint's
network weights into the freshly built network; the optimizer, scheduler, epoch counter and data
split start fresh (unlike ``resume=true``). ``freeze=[blocks.0,blocks.1]`` stops gradients of
every parameter under those module names.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from torch import nn

from lfmri.checkpoints.load import CheckpointError, load_checkpoint, network_state

log = logging.getLogger(__name__)


def load_network_weights(net: nn.Module, path: str | Path, trust_targets: Sequence[str] | None = None,
                         known_targets: Sequence[str] = ()) -> None:
    """Copy a checkpoint's network weights into ``net``; every mismatch is named before anything loads."""
    state = network_state(load_checkpoint(path, trust_targets, known_targets))
    own = net.state_dict()
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
