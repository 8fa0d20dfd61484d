"""Each loss term's share of the gradient on real batches of the shipped recipe: do the terms act?

For every loss config (``conf/loss``) with an auxiliary term, and for ``module=cycle``'s generator
terms, this prints the gradient norm of each weighted term on the network's parameters (float32),
its ratio to the pixel loss's, the weight that would give it 10 % and 20 % of the pixel loss's
gradient, and the cosine between each term's gradient under bf16 autocast and in float32. The
network is the shipped ``srdensenet-kspace-x2`` (the optimum the weights are chosen at) and, for
comparison, the same network at random initialisation; the batches are real training batches of
``experiment=srdensenet_kspace_x2`` on the given volumes (the default training subjects of
docs/models.md). module=cycle is measured on GAN-CIRCLE's generators at initialisation (no trained
one ships) on ``experiment=lyu2018_gan_circle``'s batches.

    python benchmarks/loss_shares.py --data '../shared/data/nichart_Subj1[0-9]_T1.nii.gz' --batches 4
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import lfmri.training.resolvers  # noqa: E402,F401  registers the resolvers the configs use
from lfmri.checkpoints.load import build  # noqa: E402
from lfmri.contracts import as_image, input_mode  # noqa: E402
from lfmri.inference.network import model_input  # noqa: E402
from lfmri.losses.shares import gradient_norms  # noqa: E402

LOSSES = ("l1_hfen", "hfen", "l1_tv", "ssim")


def composed(*overrides: str):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("train", overrides=["output_dir=/tmp/lfmri-loss-shares", *overrides])


def batches(cfg, count: int) -> list[dict]:
    degradation = instantiate(cfg.degradation)
    net = instantiate(cfg.model)
    datamodule = build(cfg.data, degradation=degradation, input_mode=input_mode(net))
    datamodule.setup("fit")
    loader = iter(datamodule.train_dataloader())
    return [next(loader) for _ in range(count)]


def term_gradients(net, terms_of, batch, bf16: bool) -> dict[str, torch.Tensor]:
    """Each weighted term's gradient on ``net``'s parameters, flattened (float32 values)."""
    params = [p for p in net.parameters() if p.requires_grad]
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        parts = terms_of(batch)
    out = {}
    for name, value in parts.items():
        grads = torch.autograd.grad(value, params, retain_graph=True, allow_unused=True)
        out[name] = torch.cat([(g if g is not None else torch.zeros_like(p)).flatten().float() for g, p in zip(grads, params)])
    return out


def report(label: str, pixel: str, weights: dict, per_batch: list[tuple[dict, dict]]) -> None:
    names = list(per_batch[0][0])
    print(f"\n{label}  (pixel term: {pixel}; {len(per_batch)} batches; mean over batches)")
    print(f"| term | weight | grad norm | % of {pixel}'s | weight for 10 % | weight for 20 % | bf16 cosine |")
    print("|---|---|---|---|---|---|---|")
    for name in names:
        norms = [float(f32[name].norm()) for f32, _ in per_batch]
        ratios = [float(f32[name].norm() / f32[pixel].norm()) for f32, _ in per_batch]
        cosines = [float(torch.nn.functional.cosine_similarity(f32[name], b16[name], dim=0)) for f32, b16 in per_batch]
        ratio = sum(ratios) / len(ratios)
        w = weights.get(name)
        for10 = f"{w * 0.1 / ratio:.3g}" if w and name != pixel and ratio > 0 else ""
        for20 = f"{w * 0.2 / ratio:.3g}" if w and name != pixel and ratio > 0 else ""
        print(f"| {name} | {w if w is not None else ''} | {sum(norms) / len(norms):.3g} | {100 * ratio:.2f} | {for10} | {for20} "
              f"| {min(cosines):.3f} (min) |")


def supervised(args) -> None:
    from lfmri.pretrained import checkpoint_path
    from lfmri.checkpoints.stored_run import StoredRun

    cfg = composed("experiment=srdensenet_kspace_x2", f"data.pattern='{args.data}'", f"seed={args.seed}")
    real = batches(cfg, args.batches)
    shipped = StoredRun.load(checkpoint_path("srdensenet-kspace-x2")).network().float()
    torch.manual_seed(args.seed)
    fresh = instantiate(cfg.model)
    for loss_name in LOSSES:
        loss = instantiate(composed("experiment=srdensenet_kspace_x2", f"loss={loss_name}").loss)
        pixel = next(iter(loss.weights))
        for label, net in (("shipped srdensenet-kspace-x2", shipped), ("random init", fresh)):
            net.train()

            def terms_of(batch, net=net, loss=loss):
                out = as_image(net(model_input(net, batch)))
                return loss(out, batch["hr"])[1]

            per_batch = [(term_gradients(net, terms_of, b, False), term_gradients(net, terms_of, b, True)) for b in real]
            report(f"loss={loss_name}, {label}", pixel, loss.weights, per_batch)


def cycle(args) -> None:
    cfg = composed("experiment=lyu2018_gan_circle", "data=folder", f"data.pattern='{args.data}'", f"seed={args.seed}")
    real = batches(cfg, args.batches)
    torch.manual_seed(args.seed)
    net = instantiate(cfg.model)
    module = instantiate(cfg.module, net=net, loss=instantiate(cfg.loss), baselines={})
    module.check_setup(type("D", (), {"unpaired": False, "patch_size": cfg.data.patch_size})())

    class Generators(torch.nn.Module):  # both generators' parameters, as the generator optimiser sees them
        def __init__(self):
            super().__init__()
            self.g, self.f = module.net, module.inverse_net

    generators = Generators()

    def terms_of(batch):
        _, parts = module.generator_step(batch)
        return {k: v for k, v in parts.items() if v.requires_grad}

    per_batch = [(term_gradients(generators, terms_of, b, False), term_gradients(generators, terms_of, b, True)) for b in real]
    report("module=cycle (experiment=lyu2018_gan_circle), generators at initialisation", "cycle", module.weights, per_batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared/data/nichart_Subj1[0-9]_T1.nii.gz"),
                        help="volumes the training batches come from (a glob)")
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=["supervised", "cycle"], default=None)
    args = parser.parse_args()
    torch.set_grad_enabled(True)
    if args.only in (None, "supervised"):
        supervised(args)
    if args.only in (None, "cycle"):
        cycle(args)


if __name__ == "__main__":
    main()
