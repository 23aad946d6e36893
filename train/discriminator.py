"""The adversarial patch loss (`--adversarial-weight`): a small PatchGAN discriminator trained
from scratch beside the VAE, a hinge loss, and VQGAN's adaptive weight. A training-time tool:
the discriminator is never shipped (its weights live in the run's checkpoint only).

PatchGAN (pix2pix, Isola et al. 2017; VQGAN's NLayerDiscriminator, Esser et al. 2021): strided
4×4 convolutions that score each overlapping patch of the image real or fake, so the loss asks
for texture that looks like the photos' patch by patch, where a pixel loss accepts the blur that
averages every possible strand of hair. With `layers` = 3 each score sees 70×70 px.

Spectral norm instead of BatchNorm: the real and the reconstructed batch go through in one
pass, BatchNorm would then mix their statistics; spectral norm bounds each layer's Lipschitz
constant, which keeps the hinge loss's gradients tame (SN-GAN, Miyato et al. 2018).

The adaptive weight (VQGAN, eq. 7): λ = ||∇_L rec|| / (||∇_L gan|| + 1e-4) on the decoder's last
layer L, clamped to [0, max_weight] and detached, so that the adversarial gradient reaching the
decoder is `weight` times the reconstruction's, whatever the scale of either loss.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


class PatchDiscriminator(nn.Module):
    """N×3×H×W images in [0, 1] -> N×1×h×w patch scores (logits; > 0: looks real).

    pix2pix's NLayerDiscriminator with `layers` stride-2 convolutions (channels×1, ×2, ×4, …,
    capped at ×8), one stride-1 convolution, and a 1-channel stride-1 output, all 4×4, LeakyReLU
    0.2, spectral norm on every convolution."""

    def __init__(self, channels: int = 32, layers: int = 3, in_channels: int = 3):
        super().__init__()
        widths = [in_channels] + [channels * min(2 ** i, 8) for i in range(layers + 1)]
        blocks = []
        for index, (a, b) in enumerate(zip(widths, widths[1:])):
            stride = 2 if index < layers else 1
            blocks += [spectral_norm(nn.Conv2d(a, b, 4, stride=stride, padding=1)), nn.LeakyReLU(0.2)]
        blocks.append(spectral_norm(nn.Conv2d(widths[-1], 1, 4, stride=1, padding=1)))
        self.net = nn.Sequential(*blocks)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images * 2 - 1)


def hinge_discriminator_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """½ (mean relu(1 − D(real)) + mean relu(1 + D(fake))), as VQGAN's hinge_d_loss."""
    return 0.5 * (F.relu(1 - real_scores).mean() + F.relu(1 + fake_scores).mean())


def generator_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """The reconstructions' adversarial loss: −mean D(fake)."""
    return -fake_scores.mean()


def adaptive_weight(reconstruction_loss: torch.Tensor, adversarial_loss: torch.Tensor, last_layer: torch.Tensor,
                    max_weight: float = 1e4) -> torch.Tensor:
    """VQGAN's λ = ||∇_L rec|| / (||∇_L gan|| + 1e-4), clamped to [0, max_weight], detached.
    last_layer: the decoder's last weight (or, with the decoder frozen, its output: the logits)."""
    rec_grad, = torch.autograd.grad(reconstruction_loss, last_layer, retain_graph=True)
    gan_grad, = torch.autograd.grad(adversarial_loss, last_layer, retain_graph=True)
    return (rec_grad.norm() / (gan_grad.norm() + 1e-4)).clamp(0.0, max_weight).detach()


@dataclass
class Adversary:
    """What train.train's training_step needs for the adversarial term: the discriminator and its
    optimizer, the flag's weight, the clamp of λ, whether the generator term is on yet (the
    discriminator may learn alone first), and the decoder's last weight for λ (None: the decoder's
    output, for a frozen decoder). `last` holds the step's figures for the log."""
    discriminator: PatchDiscriminator
    optimizer: torch.optim.Optimizer
    weight: float
    max_weight: float = 1e4
    generator_on: bool = True
    last_layer: torch.Tensor | None = None
    last: dict = field(default_factory=dict)


def make_discriminator_optimizer(discriminator: nn.Module, lr: float) -> torch.optim.Optimizer:
    """Adam with VQGAN's betas (0.5, 0.9)."""
    return torch.optim.Adam(discriminator.parameters(), lr=lr, betas=(0.5, 0.9))


def discriminator_step(adversary: Adversary, real: torch.Tensor, fake: torch.Tensor,
                       dtype: torch.dtype | None = None) -> torch.Tensor:
    """One optimizer step of the discriminator on photos and reconstructions (N×3×H×W in
    [0, 1]; the reconstructions are detached here, so nothing reaches the VAE). Both go through
    in one batch. Returns the hinge loss (not stepped if it is not finite)."""
    disc = adversary.discriminator
    disc.requires_grad_(True)
    with torch.autocast(real.device.type, dtype=dtype, enabled=dtype is not None):
        scores = disc(torch.cat([real, fake.detach()])).float()
    loss = hinge_discriminator_loss(*scores.chunk(2))
    if torch.isfinite(loss):
        adversary.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if dist.is_available() and dist.is_initialized():  # one discriminator across processes, like DDP
            for p in disc.parameters():
                dist.all_reduce(p.grad)
                p.grad /= dist.get_world_size()
        adversary.optimizer.step()
    return loss.detach()
