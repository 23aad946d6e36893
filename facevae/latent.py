"""Latent-space tools: interpolation, and the statistics of the training posteriors that the
app's sampling and explorer use (active dimensions, principal directions, a mixture prior)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

STATS_FILE = "latent_stats.safetensors"
ACTIVE_KL = 0.01  # nats: a latent dimension whose average KL to the prior exceeds this is "active"


def lerp(z0: torch.Tensor, z1: torch.Tensor, t: float) -> torch.Tensor:
    """Linear interpolation: z0 at t=0, z1 at t=1."""
    return torch.lerp(z0, z1, t)


def slerp(z0: torch.Tensor, z1: torch.Tensor, t: float, eps: float = 1e-7) -> torch.Tensor:
    """Spherical interpolation along the great circle between z0 and z1 (per row), with the
    norm interpolated linearly; it keeps intermediate latents at a typical distance from the
    origin, where a Gaussian prior puts its mass, instead of cutting through the middle."""
    n0, n1 = z0.norm(dim=-1, keepdim=True), z1.norm(dim=-1, keepdim=True)
    u0, u1 = z0 / n0.clamp_min(eps), z1 / n1.clamp_min(eps)
    omega = torch.acos((u0 * u1).sum(-1, keepdim=True).clamp(-1 + eps, 1 - eps))
    sin = torch.sin(omega)
    direction = (torch.sin((1 - t) * omega) * u0 + torch.sin(t * omega) * u1) / sin
    return direction * torch.lerp(n0, n1, t)


@dataclass
class LatentStats:
    """Statistics of the posterior means over a training split (all tensors float32).

    mean, std, kl: per latent dimension (D); kl is the average KL to the prior, nats.
    pca_directions: K×D unit rows, by decreasing variance; pca_variances: K.
    mixture_weights: C; mixture_means: C×D; mixture_scale_trils: C×D×D (Cholesky factors of
    the component covariances) of a Gaussian mixture fitted to the posterior means.
    """

    mean: torch.Tensor
    std: torch.Tensor
    kl: torch.Tensor
    pca_directions: torch.Tensor
    pca_variances: torch.Tensor
    mixture_weights: torch.Tensor
    mixture_means: torch.Tensor
    mixture_scale_trils: torch.Tensor

    def ranked_dimensions(self, active_threshold: float = 0.0) -> list[int]:
        """Latent dimensions by decreasing average KL (the most informative first), keeping
        those with KL above the threshold (ACTIVE_KL is the usual 'active unit' cut)."""
        order = torch.argsort(self.kl, descending=True)
        return [int(i) for i in order if self.kl[i] > active_threshold]

    def principal_directions(self, k: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The top-k PCA directions (k×D) and their standard deviations (k)."""
        return self.pca_directions[:k], self.pca_variances[:k].sqrt()

    def sample_mixture(self, n: int, temperature: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
        """n latents from the fitted mixture; the temperature scales each component's spread."""
        components = torch.multinomial(self.mixture_weights, n, replacement=True, generator=generator)
        eps = torch.randn(n, self.mean.shape[0], 1, generator=generator)
        offsets = (self.mixture_scale_trils[components] @ eps).squeeze(-1)
        return self.mixture_means[components] + temperature * offsets

    def save(self, folder: str | os.PathLike) -> None:
        save_file({k: v.contiguous().float() for k, v in vars(self).items()}, str(Path(folder) / STATS_FILE))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "LatentStats":
        return cls(**load_file(str(path)))

    @classmethod
    def find(cls, source: str | os.PathLike) -> "LatentStats | None":
        """The statistics saved beside the weights in a local folder or Hub repo, if any."""
        local = Path(source) / STATS_FILE
        if local.is_file():
            return cls.load(local)
        if Path(source).exists():
            return None
        from huggingface_hub import hf_hub_download

        try:
            return cls.load(hf_hub_download(str(source), STATS_FILE))
        except Exception:  # a Hub repo without statistics: sampling falls back to N(0, I)
            return None
