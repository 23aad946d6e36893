"""The VAE objective: reconstruction + β·KL, both *summed* over their dimensions and averaged
over the batch, i.e. a negative ELBO per image in nats.

Why sums: a mean over the 49,152 pixels of a 3×128×128 image would silently divide the
reconstruction term by 49,152 and so multiply the effective β by the same factor, drowning
the reconstruction and leaving blurry averages.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

RECONSTRUCTIONS = ("bce", "mse", "l1", "gaussian")
LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601
DETAIL_BLURS = (1.0, 2.0)  # σ in px of the two Gaussian blurs whose difference is the detail band


@dataclass
class LossTerms:
    total: torch.Tensor  # what is minimised: reconstruction + beta * kl_weight * kl
    reconstruction: torch.Tensor  # per image, summed over pixels
    kl: torch.Tensor  # per image, summed over latent dimensions
    identity: torch.Tensor | None = None  # 1 − cosine of identity embeddings, when trained for it
    perceptual: torch.Tensor | None = None  # feature distance (train.feature_net), when trained for it
    lattice: torch.Tensor | None = None  # lattice_loss, when trained with it
    detail: torch.Tensor | None = None  # detail_loss, when trained with it


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per image, summed over latent dims (closed form)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1)


def reconstruction_loss(logits: torch.Tensor, x: torch.Tensor, kind: str,
                        pixel_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Per-image reconstruction loss, summed over pixels (each weighted by pixel_weights, a map
    of mean 1 broadcast over the batch and channels, when given: see face_weights).

    bce: Bernoulli likelihood on the decoder logits (binary_cross_entropy_with_logits is fused
         and numerically safe). mse, l1: on sigmoid(logits).
    gaussian: the calibrated decoder of σ-VAE (Rybkin et al. 2021) with the analytically optimal
         shared variance σ² = the batch's MSE: D/2·log(2πσ²) + D/2 nats per image. It weighs
         reconstruction against KL by how well the model currently reconstructs.
    """
    w = 1.0 if pixel_weights is None else pixel_weights
    if kind == "bce":
        return (w * F.binary_cross_entropy_with_logits(logits, x, reduction="none")).flatten(1).sum(1)
    y = torch.sigmoid(logits)
    if kind == "mse":
        return (w * (y - x).pow(2)).flatten(1).sum(1)
    if kind == "l1":
        return (w * (y - x).abs()).flatten(1).sum(1)
    if kind == "gaussian":
        return calibrated_gaussian_nll((w * (y - x).pow(2)).flatten(1))
    raise ValueError(f"reconstruction must be one of {RECONSTRUCTIONS}, got {kind!r}")


def calibrated_gaussian_nll(sq: torch.Tensor) -> torch.Tensor:
    """Per-row Gaussian negative log-likelihood of N×D squared errors, with the one σ² that is
    optimal for the whole batch (their mean, held constant for the gradient)."""
    variance = sq.mean().detach().clamp_min(1e-6)
    return 0.5 * (sq / variance + math.log(2 * math.pi) + variance.log()).sum(1)


def edge_loss(logits: torch.Tensor, x: torch.Tensor, pixel_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Per-image Gaussian negative log-likelihood of the image's edges: the differences between
    horizontal and vertical neighbours, with σ² calibrated to the batch as in the gaussian
    reconstruction (pixel_weights as there, each difference weighted by its right or lower pixel).

    Why: the pixel loss is content with a face whose eyes, nostrils and lips are drawn soft or a
    pixel off, as their error is small beside that of hair and background; their outlines are
    where most of a face's edges are, and who a person is lies in those outlines."""
    residual = torch.sigmoid(logits) - x
    w = torch.ones_like(residual[:1, :1]) if pixel_weights is None else pixel_weights
    sq = torch.cat([(w[..., :, 1:] * (residual[..., :, 1:] - residual[..., :, :-1]).pow(2)).flatten(1),
                    (w[..., 1:, :] * (residual[..., 1:, :] - residual[..., :-1, :]).pow(2)).flatten(1)], 1)
    return calibrated_gaussian_nll(sq)


LATTICE_SQUARE = 32  # px: the squares within which lattice_loss looks for a repeating part


def lattice_components(residual: torch.Tensor, period: int = 4, patch: int = LATTICE_SQUARE) -> torch.Tensor:
    """N×C×H×W -> the part of each patch×patch square that repeats every `period` pixels across
    it (the mean of the pixels of each phase, less the square's mean), scaled so that the
    components' squared sum is that part's energy in pixels. Shape N×C×(H/patch)×period×(W/patch)×period."""
    n, c, h, w = residual.shape
    cells = patch // period
    phases = residual.reshape(n, c, h // patch, cells, period, w // patch, cells, period).mean(dim=(3, 6))
    return cells * (phases - phases.mean(dim=(3, 5), keepdim=True))


def lattice_loss(reconstructions: torch.Tensor, x: torch.Tensor, period: int = 4) -> torch.Tensor:
    """Per-image Gaussian negative log-likelihood (σ² calibrated to the batch, as in the gaussian
    reconstruction) of the error's part that repeats every `period` px within 32-px squares (which
    holds the lattices of every period that divides it: 4 holds 2 and 4, 8 holds 2, 4 and 8).

    Why: the decoder's stride-2 transposed convolutions of 3×3 cover their output pixels unevenly,
    so a lattice of period 2 (the last upsampling), 4 or 8 (the ones before) costs it nothing to draw.
    Every loss that asks for detail (feature distance, a patch discriminator) was met partly by
    that lattice (docs/training.md). Photos have no lattice aligned to the pixel grid, so this term
    makes any such pattern cost, while detail at other places and frequencies stays free."""
    components = lattice_components(reconstructions - x, period)
    return calibrated_gaussian_nll(components.pow(2).flatten(1))


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """N×C×H×W blurred by a Gaussian of σ px, as cv2.GaussianBlur does for float images: a
    kernel of 2·round(4σ)+1 taps, the edges mirrored without repeating the border pixel."""
    radius = round(4 * sigma)
    taps = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device) / sigma) ** 2)
    taps = taps / taps.sum()
    channels = images.shape[1]
    out = F.pad(images, (radius, radius, radius, radius), mode="reflect")
    out = F.conv2d(out, taps.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    return F.conv2d(out, taps.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)


def luminance(images: torch.Tensor) -> torch.Tensor:
    """N×3×H×W RGB -> N×1×H×W luminance (LUMA's weights)."""
    return (images * torch.tensor(LUMA, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)).sum(1, keepdim=True)


def detail_band(images: torch.Tensor) -> torch.Tensor:
    """N×3×H×W in [0, 1] -> N×1×H×W: the luminance between Gaussian blurs of σ = 1 and 2 px, the
    band of eyelashes, creases and strands of hair that a pixel loss averages away."""
    luma = luminance(images)
    low, high = DETAIL_BLURS
    return gaussian_blur(luma, low) - gaussian_blur(luma, high)


def boost_detail(images: torch.Tensor, amount: float) -> torch.Tensor:
    """N×C×H×W in [0, 1] with each channel's detail band (σ = 1 to 2 px) made 1 + amount times as
    strong, clipped to [0, 1]: unsharp masking.

    Why, as a reconstruction target: the best a pixel loss can draw is the mean of the faces that
    share a latent, whose detail band is already about as strong as its guess deserves (the
    photos' band regressed on the reconstructions' has a slope of 0.96). Detail drawn on top of
    that mean costs pixel error; amplifying the band it already knows costs the least: about half
    the PSNR that detail_loss spends on the same gain (docs/training.md)."""
    low, high = DETAIL_BLURS
    return (images + amount * (gaussian_blur(images, low) - gaussian_blur(images, high))).clamp(0, 1)


def detail_loss(reconstructions: torch.Tensor, x: torch.Tensor, patch: int = 16) -> torch.Tensor:
    """Per-image Gaussian negative log-likelihood (σ² calibrated to the batch, as in the gaussian
    reconstruction) of the difference between the detail band's amplitude (root mean square) in
    each patch×patch square of the reconstruction and of the photo.

    Why: the pixel loss charges detail drawn a little off its place twice (once where it is, once
    where it should be), so it prefers none. This term asks for as much detail as the photo has in
    each square and leaves where it lies free: eyes, brows and hair get their crispness back and
    smooth skin stays smooth. The lattice loss keeps the decoder from paying it with a pixel grid."""
    def amplitude(images):
        return F.avg_pool2d(detail_band(images).pow(2), patch).add(1e-6).sqrt()
    return calibrated_gaussian_nll((amplitude(reconstructions) - amplitude(x)).pow(2).flatten(1))


# The inner face in a 128-px CelebA crop (left, top, right, bottom): from the brows to below the
# mouth. CelebA is aligned, so the eyes, nose and mouth, which carry who a person is, sit inside
# it in every image.
FACE_BOX = (32, 44, 96, 108)


def face_box(size: int) -> tuple[int, int, int, int]:
    """FACE_BOX for a size-px crop."""
    return tuple(round(v * size / 128) for v in FACE_BOX)


def face_weights(size: int, weight: float) -> torch.Tensor:
    """A 1×1×size×size map of mean 1 that weighs the pixels of the inner face (FACE_BOX) `weight`
    times as much as the rest."""
    left, top, right, bottom = face_box(size)
    w = torch.ones(1, 1, size, size)
    w[..., top:bottom, left:right] = weight
    return w / w.mean()


def vae_loss(logits, x, mu, logvar, reconstruction: str = "bce", beta: float = 1.0, kl_weight: float = 1.0,
             pixel_weights: torch.Tensor | None = None, edge_weight: float = 0.0) -> LossTerms:
    """Batch means of the per-image terms; kl_weight is the warm-up factor in [0, 1]. The
    reconstruction term includes edge_weight × edge_loss when edge_weight is not 0."""
    rec = reconstruction_loss(logits, x, reconstruction, pixel_weights).mean()
    if edge_weight:
        rec = rec + edge_weight * edge_loss(logits, x, pixel_weights).mean()
    kl = kl_divergence(mu, logvar).mean()
    return LossTerms(rec + beta * kl_weight * kl, rec, kl)


def kl_warmup(step: int, warmup_steps: int) -> float:
    """Linear KL warm-up: 0 at step 0, 1 from warmup_steps on (always 1 without warm-up)."""
    return 1.0 if warmup_steps <= 0 else min(1.0, step / warmup_steps)
