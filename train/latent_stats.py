"""Fit the latent statistics that ship beside the weights: per-dimension mean, std and KL,
a PCA, a Gaussian-mixture prior over the posterior means of the training split, and, where the
data has CelebA's attribute labels, the named attribute directions (train.attributes).

    python -m train.latent_stats --model runs/celeba/model --data ../shared/data/celeba

Writes latent_stats.safetensors into the model folder (facevae.load_model picks it up) and
prints the held-out log-likelihood of each mixture size tried, and the attribute tables.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from sklearn.mixture import GaussianMixture

from facevae import load_model
from facevae.data import cache_images, encode_all, find_splits
from facevae.latent import ACTIVE_KL, LatentStats
from train.attributes import ATTRIBUTE_FILE, Labels, fit_and_measure, read_labels, report


def gaussian_mixture(components: int, seed: int = 0) -> GaussianMixture:
    return GaussianMixture(components, covariance_type="full", reg_covar=1e-4, max_iter=200, random_state=seed)


def fit_mixture(mu: np.ndarray, sizes: list[int], seed: int = 0) -> tuple[GaussianMixture, dict[int, float]]:
    """The mixture size with the best held-out log-likelihood (10% held out), refitted on all."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(mu))
    held_out, fit_part = mu[order[: len(mu) // 10]], mu[order[len(mu) // 10:]]
    scores = {}
    for k in sizes:
        scores[k] = float(gaussian_mixture(k, seed).fit(fit_part).score(held_out))
        print(f"  {k:3d} components: held-out log-likelihood {scores[k]:.2f} per point", flush=True)
    best = max(scores, key=scores.get)
    return gaussian_mixture(best, seed).fit(mu), scores


def compute_stats(mu: torch.Tensor, logvar: torch.Tensor, sizes: list[int]) -> tuple[LatentStats, dict[int, float]]:
    gmm, scores = fit_mixture(mu.numpy().astype(np.float64), sizes)
    return stats_with_mixture(mu, logvar, gmm), scores


def stats_with_mixture(mu: torch.Tensor, logvar: torch.Tensor, gmm: GaussianMixture) -> LatentStats:
    """The posterior means' statistics and PCA, around a fitted mixture prior."""
    kl = (0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar)).mean(0)
    centred = mu - mu.mean(0)
    _, singular, directions = torch.linalg.svd(centred, full_matrices=False)
    return LatentStats(
        mean=mu.mean(0), std=mu.std(0), kl=kl,
        pca_directions=directions, pca_variances=singular.pow(2) / (len(mu) - 1),
        mixture_weights=torch.tensor(gmm.weights_, dtype=torch.float32),
        mixture_means=torch.tensor(gmm.means_, dtype=torch.float32),
        mixture_scale_trils=torch.linalg.cholesky(torch.tensor(gmm.covariances_)).float(),
    )


def add_attributes(stats: LatentStats, model, mu: torch.Tensor, files: list[str], labels) -> None:
    """Fit the attribute directions on the labelled training images' posterior means."""
    row = {name: i for i, name in enumerate(files)}
    present = [i for i, f in enumerate(labels.files) if f in row]
    labels = Labels(labels.names, [labels.files[i] for i in present], labels.values[present], labels.identities[present])
    fit, change = fit_and_measure(model, mu[[row[f] for f in labels.files]], labels)
    stats.attribute_names = fit.names
    stats.attribute_directions = torch.from_numpy(fit.directions)
    stats.attribute_weights, stats.attribute_bias = torch.from_numpy(fit.weights), torch.from_numpy(fit.bias)
    print(report(fit, change), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a save_pretrained folder; the statistics are written into it")
    parser.add_argument("--data", required=True)
    parser.add_argument("--components", default="1,2,4,8,16,32", help="mixture sizes to compare")
    args = parser.parse_args()
    model = load_model(args.model)
    train_set = cache_images(find_splits(args.data)["train"], model.image_size)
    mu, logvar = encode_all(model, train_set.array)
    stats, _ = compute_stats(mu, logvar, [int(k) for k in args.components.split(",")])
    if (Path(args.data) / ATTRIBUTE_FILE).is_file():
        add_attributes(stats, model, mu, [Path(f).name for f in train_set.files], read_labels(args.data))
    stats.save(args.model)
    active = len(stats.ranked_dimensions(ACTIVE_KL))
    print(f"{len(mu)} training images; {active} active dimensions (KL > {ACTIVE_KL}); "
          f"{len(stats.mixture_weights)} mixture components; written to {args.model}")


if __name__ == "__main__":
    main()
