"""``lfmri-pretrained list | show name=NAME | pack checkpoint=CKPT name=NAME ...``: the shipped networks.

(Also ``python -m lfmri.cli.pretrained``; ``python -m lfmri.pretrained``, its old name, still runs it.)

``pack`` is for maintainers: it turns a trained checkpoint and its evaluation on unseen subjects
into ``lfmri/pretrained/NAME.ckpt`` (half-precision weights) and ``NAME.md`` (the card).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from omegaconf import MISSING

from lfmri.cli.options import fail, parse_command
from lfmri.files import written_together
from lfmri.pretrained import NAME_PATTERN, PRETRAINED_DIR, available, card_text, checkpoint_path

MAX_BYTES = 10 * 1024 * 1024
# degradations whose networks are scored against their cubic-resampled input (the simulated 64 mT scan)
CUBIC_INPUT_BASELINE = ("LowFieldDegradation",)
PROG = "lfmri-pretrained"


def summary_line(name: str) -> str:
    from lfmri.checkpoints.stored_run import StoredRun  # torch: after the options are read
    from lfmri.geometry.scan_contract import contract_of

    card = StoredRun.load(checkpoint_path(name)).card
    unseen = (card.get("pretrained", {}).get("unseen") or {}).get("pooled", {}).get("all unseen")
    degradation = (card.get("degradation") or {}).get("_target_", "?").rsplit(".", 1)[-1]
    if not unseen:
        headline = "-"
    elif degradation in CUBIC_INPUT_BASELINE:
        # its input is the low-field scan resampled cubically onto the output grid: that (the bicubic row) is
        # what it improves on; zero-filling is no measured reference for an image-domain simulation
        headline = (f"{unseen['psnr_brain']:.2f} dB, {unseen['brain_vs_bicubic']:+.2f} dB over the cubic-resampled input "
                    f"({unseen['slices']} slices)")
    else:
        headline = (f"{unseen['psnr_brain']:.2f} dB, {unseen['brain_vs_zerofill']:+.2f} dB over zero-fill, "
                    f"{unseen['brain_vs_bicubic']:+.2f} over bicubic ({unseen['slices']} slices)")
    expects = (contract_of(card) or {}).get("summary", "not stated")
    return f"{name:24s} {card.get('model', '?'):12s} x{card.get('scale', '?')}  {degradation:28s} {expects:52s} {headline}"


def cmd_list(_: object) -> int:
    names = available()
    if not names:
        print("no pretrained networks are installed")
        return 0
    print(f"{'name':24s} {'model':12s} {'scale':4s} {'degradation':28s} {'expected input (lfmri-predict scan)':52s} "
          "unseen subjects (in-brain PSNR, gain over the baseline)")
    for name in names:
        print(summary_line(name))
    print(f"\nexpected input: the scans each network was trained on; others get a warning naming what fits instead"
          f"\ncards: {PROG} show name=NAME; use: lfmri-predict pretrained=NAME inputs=... output_dir=...")
    return 0


def cmd_show(args: ShowOptions) -> int:
    print(card_text(args.name))
    return 0


def unseen_table(unseen: dict) -> str:
    """The per-subject and pooled gains of ``benchmarks/quality.py`` as Markdown."""
    # the classical 3D rows quality.py measured (nlm3d, bm4d), when the facts have them
    classical = [row for row in ("nlm3d", "bm4d") if f"{row}_vs_zerofill" in unseen["pooled"].get("all unseen", {})]
    head = ("| subject | group | slices | in-brain PSNR (dB) | vs zero-fill | vs bicubic | in-brain SSIM vs zero-fill "
            "| whole-slice PSNR vs zero-fill | vs bicubic | bf16 - fp32 (dB) | TTA Spearman |"
            + "".join(f" {row} in-brain vs zero-fill | network vs {row} |" for row in classical))
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    rows = [(s, g["group"], g) for s, g in unseen["subjects"].items()]
    rows += [(f"**{label}**", "pooled", g) for label, g in unseen["pooled"].items()]
    for label, group, g in rows:
        rho = g.get("spearman")
        lines.append(
            f"| {label} | {group} | {g['slices']} | {g['psnr_brain']:.2f} | {g['brain_vs_zerofill']:+.2f} | "
            f"{g['brain_vs_bicubic']:+.2f} | {g['ssim_vs_zerofill']:+.4f} | {g['whole_vs_zerofill']:+.2f} | "
            f"{g['whole_vs_bicubic']:+.2f} | {g.get('bf16_delta_brain', float('nan')):+.3f} | "
            f"{'' if rho is None else f'{rho:.3f}'} |"
            + "".join(f" {g.get(f'{row}_vs_zerofill', float('nan')):+.2f} | {g.get(f'brain_vs_{row}', float('nan')):+.2f} |"
                      for row in classical)
        )
    return "\n".join(lines)


def _ranges(bounds) -> str:
    return " x ".join("any" if b is None else f"{b[0]:g}-{b[1]:g}" for b in bounds) + " mm"


def contract_lines(contract: dict) -> list[str]:
    """The card's "Expected input" section, from the contract (:mod:`lfmri.geometry.scan_contract`)."""
    lines = [f"- in short: {contract.get('summary', '')}",
             f"- contrast: {contract.get('contrast', 'not stated')}",
             f"- orientation: {contract.get('orientation', 'not stated')}"]
    if contract.get("scan_voxel_mm"):
        lines.append(f"- scans for lfmri-predict: voxels {_ranges(contract['scan_voxel_mm'])} (R-L x A-P x S-I; "
                     f"slice axis {contract.get('slice_axis')})")
    if contract.get("reference_voxel_mm"):
        lines.append(f"- references for evaluate.py: voxels {_ranges(contract['reference_voxel_mm'])}")
    lines.append(f"- field of view: {contract.get('field_of_view', 'not stated')}")
    lines.append("- outside these, lfmri-predict and evaluate.py warn (contract=refuse stops, contract=ignore silences)")
    return lines


def card_markdown(name: str, card: dict) -> str:
    """The human-readable model card of a shipped network, from its card facts."""
    facts = card.get("pretrained", {})
    data = facts.get("training_data", {})
    lines = [
        f"# {name}",
        "",
        facts.get("summary", ""),
        "",
        f"- network: {card.get('model')} x{card.get('scale')} (`input_mode={card.get('input_mode')}`), "
        f"{card.get('parameters'):,} parameters, weights stored in float16",
        f"- degradation: `{(card.get('degradation') or {}).get('_target_', '?')}` "
        + ", ".join(f"{k}={v}" for k, v in (card.get("degradation") or {}).items() if k != "_target_"),
        f"- training data: {data.get('description', '')}",
        f"  - train: {', '.join(data.get('train', []))}",
        f"  - validation (checkpoint selection): {', '.join(data.get('val', []))}",
        f"  - unseen (never trained or validated on): {', '.join(data.get('test', []))}",
        f"- command: `{facts.get('command')}`",
        f"- lfmri commit: {facts.get('commit')}; steps: {facts.get('steps')}; wall time: {facts.get('wall_time')}",
        "",
        "## Metrics on the unseen subjects",
        "",
        unseen_table(facts["unseen"]) if facts.get("unseen") else "(not measured)",
        "",
        "Produced by `python benchmarks/quality.py --pretrained " + name + "`. Gains are the network's mean minus "
        "the baseline's over the same slices; in-brain = reference > 0.05, dilated 2 px; zero-fill reconstructs from "
        "the complex LR (it has the phase). TTA Spearman: per-slice rank correlation of the 8-fold flip/rotation "
        "std with |error| inside the brain.",
        "",
    ]
    from lfmri.geometry.scan_contract import contract_of

    contract = contract_of(card)
    if contract:
        lines += ["## Expected input", "", *contract_lines(contract), ""]
    for heading, key in (("Notes", "notes"), ("Limits", "limits")):
        if facts.get(key):
            lines += [f"## {heading}", "", *[f"- {n}" for n in facts[key]], ""]
    return "\n".join(lines)


def cmd_pack(args: PackOptions) -> int:
    """Write NAME.ckpt (weights in float16) and NAME.md from a checkpoint and a card body."""
    import torch

    from lfmri.checkpoints.stored_run import StoredRun
    from lfmri.geometry.scan_contract import CONTRACT_KEY, contract_of
    from lfmri.inference.network import BF16_PARITY_KEY

    if not NAME_PATTERN.match(args.name):
        raise ValueError(f"name {args.name!r}: use lower-case letters, digits, '-', '_' and '.'")
    run = StoredRun.load(args.checkpoint)
    card = dict(run.card)
    card["name"] = args.name
    card["pretrained"] = json.loads(Path(args.facts).read_text()) if args.facts else {}
    if BF16_PARITY_KEY in card["pretrained"]:  # where precision=auto looks for the measured bf16 parity
        card[BF16_PARITY_KEY] = float(card["pretrained"][BF16_PARITY_KEY])
    # the input the network expects travels with the weights, where predict and evaluate look for it;
    # repacking a shipped checkpoint without a new one keeps its own
    contract = card["pretrained"].get(CONTRACT_KEY) or contract_of(run.card)
    if contract:
        card[CONTRACT_KEY] = contract
    shipped = run.shipped(card).checkpoint
    out = Path(args.dest or PRETRAINED_DIR) / f"{args.name}.ckpt"
    card_file = out.with_suffix(".md")
    existing = [str(p) for p in (out, card_file) if p.exists()]
    if existing and not args.overwrite:
        raise FileExistsError(f"{' and '.join(existing)} already exist{'s' if len(existing) == 1 else ''}; "
                              "pass overwrite=true to replace them")
    text = Path(args.card).read_text() if args.card else card_markdown(args.name, card)
    out.parent.mkdir(parents=True, exist_ok=True)
    # both files or neither: a too-large or failed checkpoint leaves the shipped pair as it was
    with written_together({"ckpt": out, "card": card_file}) as staging:
        torch.save(shipped, staging["ckpt"])
        size = staging["ckpt"].stat().st_size
        if size > MAX_BYTES:
            raise ValueError(f"{out}: {size} bytes is over the 10 MB limit for shipped weights")
        staging["card"].write_text(text)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")
    return 0


@dataclass
class ListOptions:
    """``list`` takes no options."""


@dataclass
class ShowOptions:
    name: str = MISSING  # a shipped network (lfmri-pretrained list)


@dataclass
class PackOptions:
    checkpoint: str = MISSING  # a trained checkpoint
    name: str = MISSING  # the shipped name (lower-case letters, digits, '-', '_', '.')
    facts: Optional[str] = None  # JSON file of card facts (command, commit, steps, wall time, metrics, input_contract)
    card: Optional[str] = None  # Markdown card to install as NAME.md (default: generated from the facts)
    dest: Optional[str] = None  # folder to write to (default: the installed lfmri/pretrained)
    overwrite: bool = False  # replace an existing NAME.ckpt / NAME.md


COMMANDS = {
    "list": (ListOptions, {}),
    "show": (ShowOptions, {"required": ["name"]}),
    "pack": (PackOptions, {"required": ["checkpoint", "name"]}),  # for maintainers: ship a trained checkpoint
}
RUN = {"list": cmd_list, "show": cmd_show, "pack": cmd_pack}


def main(argv: list[str] | None = None) -> int:
    command, options = parse_command(PROG, COMMANDS, sys.argv[1:] if argv is None else argv, __doc__)
    from lfmri.checkpoints.load import CheckpointError

    try:
        return RUN[command](options)
    except (CheckpointError, ValueError, OSError) as err:
        fail(f"{PROG} {command}", str(err))


if __name__ == "__main__":
    sys.exit(main())
