"""``python -m lfmri.pretrained list | show NAME | pack CKPT NAME ...``: the shipped networks.

``pack`` is for maintainers: it turns a trained checkpoint and its evaluation on unseen subjects
into ``lfmri/pretrained/NAME.ckpt`` (half-precision weights) and ``NAME.md`` (the card).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from lfmri.checkpoint import METADATA_KEY, CheckpointError, load_checkpoint, network_state
from lfmri.pretrained import NAME_PATTERN, PRETRAINED_DIR, available, card_text, checkpoint_path, half_state

MAX_BYTES = 10 * 1024 * 1024


def summary_line(name: str) -> str:
    card = load_checkpoint(checkpoint_path(name))[METADATA_KEY]["card"]
    shipped = card.get("pretrained", {})
    headline = shipped.get("headline", "")
    degradation = (card.get("degradation") or {}).get("_target_", "?").rsplit(".", 1)[-1]
    return f"{name:24s} {card.get('model', '?'):12s} x{card.get('scale', '?')}  {degradation:28s} {headline}"


def cmd_list(_: argparse.Namespace) -> int:
    names = available()
    if not names:
        print("no pretrained networks are installed")
        return 0
    print(f"{'name':24s} {'model':12s} {'scale':4s} {'degradation':28s} unseen subjects (in-brain PSNR vs zero-fill)")
    for name in names:
        print(summary_line(name))
    print("\ncards: python -m lfmri.pretrained show NAME; use: lfmri-predict pretrained=NAME inputs=... output_dir=...")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    print(card_text(args.name))
    return 0


def cmd_pack(args: argparse.Namespace) -> int:
    """Write NAME.ckpt (weights in float16) and NAME.md from a checkpoint and a card body."""
    if not NAME_PATTERN.match(args.name):
        raise ValueError(f"name {args.name!r}: use lower-case letters, digits, '-', '_' and '.'")
    checkpoint = load_checkpoint(args.checkpoint)
    meta = checkpoint[METADATA_KEY]
    state = network_state(checkpoint)
    card = dict(meta["card"])
    card["name"] = args.name
    card["pretrained"] = json.loads(Path(args.facts).read_text()) if args.facts else {}
    shipped = {
        "state_dict": {f"net.{k}": v for k, v in half_state(state).items()},
        METADATA_KEY: {"schema": meta["schema"], "config": meta["config"], "split": meta.get("split"), "card": card},
    }
    out = Path(args.dest or PRETRAINED_DIR) / f"{args.name}.ckpt"
    torch.save(shipped, out)
    size = out.stat().st_size
    if size > MAX_BYTES:
        out.unlink()
        raise ValueError(f"{out}: {size} bytes is over the 10 MB limit for shipped weights")
    if args.card:
        out.with_suffix(".md").write_text(Path(args.card).read_text())
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lfmri.pretrained", description="lfmri's shipped networks")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="the shipped networks, one line each").set_defaults(run=cmd_list)
    show = sub.add_parser("show", help="print a model card")
    show.add_argument("name")
    show.set_defaults(run=cmd_show)
    pack = sub.add_parser("pack", help="(maintainers) ship a trained checkpoint")
    pack.add_argument("checkpoint")
    pack.add_argument("name")
    pack.add_argument("--facts", help="JSON file of card facts (command, commit, steps, wall time, metrics)")
    pack.add_argument("--card", help="Markdown card to install as NAME.md")
    pack.add_argument("--dest", help="folder to write to (default: the installed lfmri/pretrained)")
    pack.set_defaults(run=cmd_pack)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (CheckpointError, ValueError, OSError) as err:
        print(f"lfmri.pretrained: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
