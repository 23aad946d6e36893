"""Image quality measures, per image (N×3×H×W in [0, 1])."""
from __future__ import annotations

import torch

from .losses import detail_band, face_box


def mse(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (x - y).pow(2).flatten(1).mean(1)


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB, per image (peak 1.0)."""
    return -10.0 * torch.log10(mse(x, y).clamp_min(1e-10))


def masked_psnr(x: torch.Tensor, y: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """PSNR in dB per image over the pixels `weight` marks (H×W or N×1×H×W, in [0, 1]), each
    counted by its weight: the pixels a photo covers, or a region of the face."""
    weight = weight.expand(len(x), 1, *x.shape[2:])
    error = (weight * (y - x).pow(2)).flatten(1).sum(1) / (weight.flatten(1).sum(1) * x.shape[1]).clamp_min(1e-10)
    return -10.0 * torch.log10(error.clamp_min(1e-10))


def face_psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """PSNR over the inner face alone (losses.FACE_BOX, brows to below the mouth): the region the
    refinement at upload weighs most, and the one a person looks at."""
    left, top, right, bottom = face_box(x.shape[-1])
    return psnr(x[..., top:bottom, left:right], y[..., top:bottom, left:right])


def ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Structural similarity per image (Gaussian window 11, σ 1.5, as in Wang et al. 2004)."""
    # Imported here: torchmetrics pulls in torchvision and scipy, seconds of start-up the app never needs.
    from torchmetrics.functional.image import structural_similarity_index_measure

    return structural_similarity_index_measure(x, y, data_range=1.0, reduction="none")



def detail_energy(images: torch.Tensor) -> torch.Tensor:
    """Per image, the mean energy of the luminance between Gaussian blurs of σ = 1 and σ = 2 px:
    the band of eyelashes, creases and strands of hair, which a pixel loss averages away. It
    counts beside identity and the eye only (noise raises it too)."""
    with torch.no_grad():
        return detail_band(images.float()).pow(2).flatten(1).mean(1).cpu()
