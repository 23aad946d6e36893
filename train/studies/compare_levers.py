"""What buys identity: trained variants of the model judged side by side, as the issue asks.

    python -m train.studies.compare_levers --data ../shared/data/celeba \
        base=~/runs/levers/base/model face3=~/runs/levers/face3/model [--identity-from 0 --identity-images 500]

Each NAME=FOLDER is a save_pretrained model (a train.train run's model/). For each, the latent
statistics are fitted afresh on the training split (as train.latent_stats does, mixture sizes
--components on --mixture-dims principal components; or, with --components saved, read from the
folder as train.latent_stats wrote them), then train.evaluate's figures are taken on the val
split: PSNR and SSIM over the whole split, the Fréchet distance of mixture-prior samples, and
identity over --identity-images val faces from --identity-from (0: to the end; a lever chosen on
some faces is scored on others): dlib same person and rank-1 (dlib is in no loss), and a
second judge, the CelebA-trained IdentityNet (in no loss but an --identity-weight run's): the
mean cosine of each reconstruction's embedding to its photo's, and its rank-1. Rank-1 is among
the first 1,000 faces judged. Prints a markdown table and writes a sheet of mixture samples
(temperature 0.8, the same draws for every model), a row per model, to --sheet.

Reproduces: docs/identity.md, "The levers at equal compute" (dlib same person and rank-1 of
faces 0-499 per lever), and the dlib rows of phases 6-8 there ("Phase 6", "Phase 7", "Phase 8").
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from facevae import FaceVAE, load_model
from facevae.data import cache_images, encode_all, find_splits
from facevae.identity import load_identity_net
from facevae.preprocess import images_to_tensor, to_grid
from train.evaluate import RANK1_FACES, evaluate, identity_report, reconstructions_uint8
from train.latent_stats import MIXTURE_COMPONENTS, add_mixture_dims_option, compute_stats

SHEET_SAMPLES = 8


def fit_latent_stats(model: FaceVAE, train_images, sizes: list[int], dims: int | None) -> None:
    mu, logvar = encode_all(model, train_images)
    model.latent_stats, _ = compute_stats(mu, logvar, sizes, dims)


def identity_net_verdict(photos: np.ndarray, reconstructions: np.ndarray, batch_size: int = 500) -> dict[str, float]:
    """IdentityNet's reading of N reconstructions against their N photos (uint8): the mean cosine
    of their embeddings, and rank-1 (the own photo's embedding the nearest) among the first 1,000."""
    net = load_identity_net()
    embed = lambda images: torch.cat([net(images_to_tensor(images[s:s + batch_size]))  # noqa: E731
                                      for s in range(0, len(images), batch_size)])
    a, b = embed(photos), embed(reconstructions)
    n = min(RANK1_FACES, len(a))
    rank1 = ((b[:n] @ a[:n].T).argmax(1) == torch.arange(n)).float().mean()
    return dict(net_cosine=float((a * b).sum(1).mean()), net_rank1=float(rank1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="NAME=FOLDER of each model to judge")
    parser.add_argument("--data", required=True)
    parser.add_argument("--identity-from", type=int, default=0, help="the first val face judged for identity")
    parser.add_argument("--identity-images", type=int, default=500, help="val faces judged for identity (0: to the end)")
    parser.add_argument("--components", default=str(MIXTURE_COMPONENTS),
                        help="mixture sizes tried (train.latent_stats keeps the best); saved: the folder's own latent statistics")
    add_mixture_dims_option(parser)
    parser.add_argument("--samples", type=int, default=2000, help="samples for the Fréchet distance")
    parser.add_argument("--sheet", default="runs/levers_samples.png")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    splits = find_splits(args.data)
    train_images = cache_images(splits["train"], 128).array
    val_images = cache_images(splits["val"], 128).array
    judged = val_images[args.identity_from:][: args.identity_images or None]
    rows, sheet = [], []
    for name, folder in (spec.split("=", 1) for spec in args.models):
        folder = str(Path(folder).expanduser())
        if args.components == "saved":
            model = load_model(folder)
        else:
            model = FaceVAE.from_pretrained(folder).eval()
            sizes = [int(k) for k in args.components.split(",")]
            fit_latent_stats(model, train_images, sizes, args.mixture_dims)
        r = evaluate(model, val_images, None, args.samples, None, identity_images=-1)
        r.update(identity_report(model, judged), **identity_net_verdict(judged, reconstructions_uint8(model, judged)))
        rows.append(f"| {name} | {r['psnr']:.2f} dB | {r['ssim']:.3f} | {r['kl_nats']:.0f} | "
                    f"{100 * r['identity_same_person']:.1f}% | {100 * r['identity_rank1']:.1f}% | "
                    f"{r['net_cosine']:.3f} | {100 * r['net_rank1']:.1f}% | {r['frechet_distance_mixture']:.2f} |")
        print(rows[-1], flush=True)
        sheet.append(model.sample(SHEET_SAMPLES, prior="mixture", temperature=0.8,
                                  generator=torch.Generator().manual_seed(0)))
    print(f"\nval PSNR/SSIM/KL over {len(val_images)} faces; identity over {len(judged)} from face {args.identity_from}")
    print("| model | PSNR | SSIM | KL (nats) | dlib same person | dlib rank-1 | IdentityNet cosine | IdentityNet rank-1 "
          "| FD mixture |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    print("\n".join(rows))
    Path(args.sheet).parent.mkdir(parents=True, exist_ok=True)
    to_grid(torch.cat(sheet), columns=SHEET_SAMPLES).save(args.sheet)
    print(f"samples: {args.sheet}, a row per model in the order given")


if __name__ == "__main__":
    main()
