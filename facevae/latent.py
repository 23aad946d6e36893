"""Latent-space tools: interpolation, and the statistics of the training posteriors that the
app's sampling and explorer use (active dimensions, principal directions, a mixture prior)."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

STATS_FILE = "latent_stats.safetensors"
ACTIVE_KL = 0.01  # nats: a latent dimension whose average KL to the prior exceeds this is "active"
# CelebA's attribute names as people say them, most wanted first; -1: the slider runs the other
# way ("Beard" is CelebA's No_Beard reversed). Attributes not listed keep their own name.
ATTRIBUTE_LABELS = {
    "Smiling": ("Smile", 1), "Eyeglasses": ("Glasses", 1), "Young": ("Younger", 1), "Male": ("Masculine", 1),
    "Blond_Hair": ("Blond hair", 1), "Black_Hair": ("Black hair", 1), "No_Beard": ("Beard", -1),
    "Bangs": ("Bangs", 1), "Heavy_Makeup": ("Make-up", 1), "Wearing_Lipstick": ("Lipstick", 1),
    "Mouth_Slightly_Open": ("Open mouth", 1), "Goatee": ("Goatee", 1), "5_o_Clock_Shadow": ("Stubble", 1),
    "Receding_Hairline": ("Receding hairline", 1), "Bushy_Eyebrows": ("Bushy eyebrows", 1),
    "Arched_Eyebrows": ("Arched eyebrows", 1), "High_Cheekbones": ("High cheekbones", 1), "Chubby": ("Chubby", 1),
    "Wearing_Necktie": ("Necktie", 1), "Wearing_Earrings": ("Earrings", 1), "Gray_Hair": ("Gray hair", 1),
    "Brown_Hair": ("Brown hair", 1), "Wavy_Hair": ("Wavy hair", 1), "Wearing_Hat": ("Hat", 1),
}


class UnknownAttribute(KeyError):
    """An attribute name that the shipped statistics have no direction for."""


def attribute_order(names: list[str]) -> list[str]:
    """Attribute names, the most wanted first (ATTRIBUTE_LABELS' order), then the rest."""
    known = [name for name in ATTRIBUTE_LABELS if name in names]
    return known + sorted(set(names) - set(known))


def attribute_label(name: str) -> tuple[str, int]:
    """A CelebA attribute's name for people, and the sign that turns its slider that way."""
    return ATTRIBUTE_LABELS.get(name, (name.replace("_", " "), 1))


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
    attribute_names: CelebA attribute names ("Smiling", "Male", "Young", "Eyeglasses", ...);
    attribute_directions: A×D, what one slider unit adds to a latent (train.attributes);
    attribute_weights: A×D and attribute_bias: A, the attribute classifiers on latents.
    """

    mean: torch.Tensor
    std: torch.Tensor
    kl: torch.Tensor
    pca_directions: torch.Tensor
    pca_variances: torch.Tensor
    mixture_weights: torch.Tensor
    mixture_means: torch.Tensor
    mixture_scale_trils: torch.Tensor
    attribute_names: list[str] = field(default_factory=list)
    attribute_directions: torch.Tensor = field(default_factory=lambda: torch.zeros(0))
    attribute_weights: torch.Tensor = field(default_factory=lambda: torch.zeros(0))
    attribute_bias: torch.Tensor = field(default_factory=lambda: torch.zeros(0))

    def attribute_direction(self, name: str) -> torch.Tensor:
        """The latent vector (D) that one slider unit of attribute `name` adds: from faces
        without the attribute towards faces with it (+1 on "Young" makes a face younger)."""
        if name not in self.attribute_names:
            raise UnknownAttribute(f"no attribute {name!r}; these weights have {', '.join(self.attribute_names) or 'none'}")
        return self.attribute_directions[self.attribute_names.index(name)]

    def attribute_probabilities(self, z: torch.Tensor) -> torch.Tensor:
        """N×A: how likely each attribute is for latents z (N×D), by the attribute classifiers."""
        return torch.sigmoid(z @ self.attribute_weights.T + self.attribute_bias)

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
        tensors = {k: v.contiguous().float() for k, v in vars(self).items() if isinstance(v, torch.Tensor)}
        save_file(tensors, str(Path(folder) / STATS_FILE), metadata={"attribute_names": json.dumps(self.attribute_names)})

    @classmethod
    def load(cls, path: str | os.PathLike) -> "LatentStats":
        with safe_open(str(path), "pt") as f:
            names = json.loads((f.metadata() or {}).get("attribute_names", "[]"))
            return cls(**{k: f.get_tensor(k) for k in f.keys()}, attribute_names=names)

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
