"""How much of a mixture FD is the model, and how much the seeds: the Fréchet distance of
mixture samples (train.evaluate's, 2,000 samples against the val split) for each model, with
the mixture refitted from several seeds and the samples drawn with several.

    python -m train.studies.fd_spread --data ../shared/data/celeba \
        phase10=assets/facevae-celeba-128 candidate=~/runs/candidate/model [--fit-seeds 0,1,2 --draw-seeds 0,1,2]

One fit and one draw (seed 0, as train.evaluate and compare_levers take it) scatters by 0.1-0.2
for one model; the mean over fits × draws estimates the same quantity (same sample count, so
the same bias) with less of the spread. The yardstick beside them: disjoint sets of as many
training photos, scored the same way (what real faces score at this count: the FD of a finite
set is biased upwards, and the val photos are other people). Prints each model's figures, the
photos', and a markdown table.

Reproduces: docs/training.md, "The samples' pixel FD": the mean of 30 fits x draws per release
and the training photos' 1.11; docs/identity.md, "Phase 12's FD on more seeds" (the mean of 18)
and "The mixture prior on the top principal components" (fresh seeds 6-8).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from facevae import FaceVAE
from facevae.data import cache_images, encode_all, find_splits
from facevae.preprocess import images_to_tensor
from train.evaluate import FeatureSpace, disjoint_sets, draw, frechet_distance
from train.latent_stats import MIXTURE_COMPONENTS, add_mixture_dims_option, stats_with_mixture, subspace_mixture


def seeds(text: str) -> list[int]:
    return [int(s) for s in text.split(",")]


def fd_grid(model: FaceVAE, train_images, features: FeatureSpace, real_features: np.ndarray,
            fit_seeds: list[int], draw_seeds: list[int], samples: int, components: int,
            dims: int | None) -> np.ndarray:
    """FD of mixture samples: a row per mixture fit seed, a column per draw seed."""
    mu, logvar = encode_all(model, train_images)
    points = mu.numpy().astype(np.float64)
    grid = np.zeros((len(fit_seeds), len(draw_seeds)))
    for i, fit_seed in enumerate(fit_seeds):
        # seed 0 is the mixture train.latent_stats and compare_levers keep for this size
        model.latent_stats = stats_with_mixture(mu, logvar, subspace_mixture(points, components, dims, fit_seed))
        for j, draw_seed in enumerate(draw_seeds):
            grid[i, j] = frechet_distance(features(draw(model, samples, "mixture", draw_seed)), real_features)
    return grid


def photo_fds(photos: np.ndarray, features: FeatureSpace, real_features: np.ndarray, samples: int,
              sets: int, seed: int = 0) -> np.ndarray:
    """FD of `sets` disjoint sets of `samples` photos each (N×H×W×3 uint8), drawn at random."""
    return np.array([frechet_distance(features(images_to_tensor(photos[index])), real_features)
                     for index in disjoint_sets(len(photos), samples, sets, seed)])


def table_row(name: str, figures: np.ndarray) -> str:
    return f"| {name} | {figures.flat[0]:.2f} | {figures.mean():.2f} ± {figures.std(ddof=1):.2f} | {figures.min():.2f}–{figures.max():.2f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="NAME=FOLDER of each model (a save_pretrained folder)")
    parser.add_argument("--data", required=True)
    parser.add_argument("--fit-seeds", type=seeds, default=[0, 1, 2], help="seeds of the mixture fits")
    parser.add_argument("--draw-seeds", type=seeds, default=[0, 1, 2], help="seeds of the sample draws")
    parser.add_argument("--samples", type=int, default=2000, help="samples per draw (train.evaluate's count)")
    parser.add_argument("--components", type=int, default=MIXTURE_COMPONENTS, help="mixture components")
    add_mixture_dims_option(parser)
    parser.add_argument("--photo-sets", type=int, default=9, help="disjoint sets of training photos scored as a yardstick")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    splits = find_splits(args.data)
    train_images = cache_images(splits["train"], 128).array
    real = images_to_tensor(cache_images(splits["val"], 128).array)
    features = FeatureSpace(real)
    real_features = features(real)
    try:  # first, so that too many sets stop the study before its fits
        photos = photo_fds(train_images, features, real_features, args.samples, args.photo_sets)
    except ValueError as error:
        parser.error(str(error))
    print(f"training photos, {args.photo_sets} disjoint sets of {args.samples}: {np.array2string(photos, precision=3)}", flush=True)
    rows = []
    for name, folder in (spec.split("=", 1) for spec in args.models):
        model = FaceVAE.from_pretrained(str(Path(folder).expanduser())).eval()
        grid = fd_grid(model, train_images, features, real_features, args.fit_seeds, args.draw_seeds,
                       args.samples, args.components, args.mixture_dims)
        print(f"{name}: FD by fit seed (rows {args.fit_seeds}) and draw seed (columns {args.draw_seeds}):\n"
              f"{np.array2string(grid, precision=3)}", flush=True)
        rows.append(table_row(name, grid))
    rows.append(table_row(f"training photos ({args.samples} a set)", photos))
    print(f"\n| model | FD, fit and draw seed {args.fit_seeds[0]}/{args.draw_seeds[0]} (photos: the first set) "
          f"| mean of {len(args.fit_seeds)}×{len(args.draw_seeds)} (photos: of the sets) ± sd | range |")
    print("| --- | --- | --- | --- |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
