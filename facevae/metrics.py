"""Image quality measures, per image (N×3×H×W in [0, 1])."""
from __future__ import annotations

import torch


def mse(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (x - y).pow(2).flatten(1).mean(1)


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB, per image (peak 1.0)."""
    return -10.0 * torch.log10(mse(x, y).clamp_min(1e-10))


def ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Structural similarity per image (Gaussian window 11, σ 1.5, as in Wang et al. 2004)."""
    # Imported here: torchmetrics pulls in torchvision and scipy, seconds of start-up the app never needs.
    from torchmetrics.functional.image import structural_similarity_index_measure

    return structural_similarity_index_measure(x, y, data_range=1.0, reduction="none")
