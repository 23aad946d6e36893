"""Fit the latent statistics that ship beside the weights: per-dimension mean, std and KL,
a PCA, a Gaussian-mixture prior over the posterior means of the training split, and, where the
data has CelebA's attribute labels, the named attribute directions (train.attributes).

    python -m train.latent_stats --model runs/celeba/model --data ../shared/data/celeba
    python -m train.latent_stats --model ... --data ../shared/data/celeba --diverse-data ../shared/data/utkface

With --diverse-data (a UTKFace folder, train.utkface), the statistics, the PCA and the mixture
are fitted on that folder's training part too (each face once), as the model was trained on it:
random faces and the principal directions then cover those faces as well. The attribute
directions are fitted on CelebA's labelled faces alone (UTKFace has no such labels).

Writes latent_stats.safetensors into the model folder (facevae.load_model picks it up) and
prints the held-out log-likelihood of each mixture size tried, and the attribute tables.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.special import logsumexp
from scipy.stats import multivariate_normal
from sklearn.mixture import GaussianMixture

from facevae import load_model
from facevae.data import cache_images, encode_all, find_splits
from facevae.latent import ACTIVE_KL, LatentStats
from train.attributes import ATTRIBUTE_FILE, Labels, fit_and_measure, read_labels, report
from train.utkface import load_part

# The mixture prior: components over the posterior means' top principal components
# (subspace_mixture). Chosen by the FD of samples, on seeds the release is not judged on.
MIXTURE_COMPONENTS, MIXTURE_DIMS = 64, 64
REG_COVAR = 1e-4  # added to each covariance's diagonal, so that no component collapses


def gaussian_mixture(components: int, seed: int = 0) -> GaussianMixture:
    return GaussianMixture(components, covariance_type="full", reg_covar=REG_COVAR, max_iter=200, random_state=seed)


@dataclass
class Mixture:
    """A Gaussian mixture over the whole latent: C weights, C×D means, C×D×D covariances."""

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray

    def score(self, points: np.ndarray) -> float:
        """The mean log-likelihood of N×D points."""
        logp = [np.log(w) + multivariate_normal(m, c).logpdf(points)
                for w, m, c in zip(self.weights, self.means, self.covariances)]
        return float(logsumexp(np.stack(logp), axis=0).mean())


def subspace_mixture(points: np.ndarray, components: int, dims: int | None = MIXTURE_DIMS, seed: int = 0) -> Mixture:
    """A mixture with full covariances on the points' top `dims` principal components, and one
    Gaussian on the remaining directions (dims=None: the mixture on all of them).

    Why not all 200: a full-covariance component in 200 dimensions has 20,100 parameters, so
    28,000 posterior means support only about 8 of them (more lower the held-out likelihood).
    On the top principal components, which carry most of what the decoder draws, the mixture
    can afford many more; its samples then score a lower FD (docs/identity.md), though the
    likelihood over all 200 dimensions is lower, the rest being one Gaussian."""
    centre = points.mean(0)
    # all D principal axes and their variances, largest first (an SVD of the points gives only N when N < D)
    variances, axes = np.linalg.eigh(np.atleast_2d(np.cov(points, rowvar=False)))
    variances, axes = variances[::-1], axes[:, ::-1].T
    split = len(axes) if dims is None else dims
    top, rest = axes[:split], axes[split:]
    gmm = gaussian_mixture(components, seed).fit((points - centre) @ top.T)
    covariances = np.stack([top.T @ c @ top for c in gmm.covariances_])
    # one Gaussian on the other directions, in every component (their covariance, regularised as sklearn does)
    covariances += rest.T @ np.diag(variances[split:] + REG_COVAR) @ rest
    return Mixture(gmm.weights_, centre + gmm.means_ @ top, covariances)


def add_mixture_dims_option(parser: argparse.ArgumentParser) -> None:
    """--mixture-dims, as subspace_mixture takes it (0 on the command line: None, all dimensions)."""
    parser.add_argument("--mixture-dims", type=lambda text: int(text) or None, default=MIXTURE_DIMS,
                        help="principal components the mixture models in full (0: all); see subspace_mixture")


def fit_mixture(mu: np.ndarray, sizes: list[int], dims: int | None = MIXTURE_DIMS,
                seed: int = 0) -> tuple[Mixture, dict[int, float]]:
    """The mixture size with the best held-out log-likelihood (10% held out), refitted on all."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(mu))
    held_out, fit_part = mu[order[: len(mu) // 10]], mu[order[len(mu) // 10:]]
    scores = {}
    for k in sizes:
        scores[k] = subspace_mixture(fit_part, k, dims, seed).score(held_out)
        print(f"  {k:3d} components: held-out log-likelihood {scores[k]:.2f} per point", flush=True)
    best = max(scores, key=scores.get)
    return subspace_mixture(mu, best, dims, seed), scores


def compute_stats(mu: torch.Tensor, logvar: torch.Tensor, sizes: list[int],
                  dims: int | None = MIXTURE_DIMS) -> tuple[LatentStats, dict[int, float]]:
    mixture, scores = fit_mixture(mu.numpy().astype(np.float64), sizes, dims)
    return stats_with_mixture(mu, logvar, mixture), scores


def stats_with_mixture(mu: torch.Tensor, logvar: torch.Tensor, mixture: Mixture) -> LatentStats:
    """The posterior means' statistics and PCA, around a fitted mixture prior."""
    kl = (0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar)).mean(0)
    centred = mu - mu.mean(0)
    _, singular, directions = torch.linalg.svd(centred, full_matrices=False)
    return LatentStats(
        mean=mu.mean(0), std=mu.std(0), kl=kl,
        pca_directions=directions, pca_variances=singular.pow(2) / (len(mu) - 1),
        mixture_weights=torch.tensor(mixture.weights, dtype=torch.float32),
        mixture_means=torch.tensor(mixture.means, dtype=torch.float32),
        mixture_scale_trils=torch.linalg.cholesky(torch.tensor(mixture.covariances)).float(),
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
    parser.add_argument("--components", default=str(MIXTURE_COMPONENTS),
                        help="mixture size, or sizes to compare by held-out log-likelihood (the best is kept)")
    parser.add_argument("--diverse-data", help="a UTKFace folder whose training part the model was also trained on")
    add_mixture_dims_option(parser)
    args = parser.parse_args()
    model = load_model(args.model)
    train_set = cache_images(find_splits(args.data)["train"], model.image_size)
    mu, logvar = encode_all(model, train_set.array)
    if args.diverse_data:
        diverse_mu, diverse_logvar = encode_all(model, load_part(args.diverse_data, "train", model.image_size).images.array)
        print(f"{len(diverse_mu)} faces of {args.diverse_data} beside {len(mu)} of {args.data}", flush=True)
        mu_all, logvar_all = torch.cat([mu, diverse_mu]), torch.cat([logvar, diverse_logvar])
    else:
        mu_all, logvar_all = mu, logvar
    sizes = [int(k) for k in args.components.split(",")]
    stats, _ = compute_stats(mu_all, logvar_all, sizes, args.mixture_dims)
    if (Path(args.data) / ATTRIBUTE_FILE).is_file():
        add_attributes(stats, model, mu, [Path(f).name for f in train_set.files], read_labels(args.data))
    stats.save(args.model)
    active = len(stats.ranked_dimensions(ACTIVE_KL))
    print(f"{len(mu_all)} training images; {active} active dimensions (KL > {ACTIVE_KL}); "
          f"{len(stats.mixture_weights)} mixture components; written to {args.model}")


if __name__ == "__main__":
    main()
