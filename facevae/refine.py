"""Refining a photo's latent at upload: a few optimiser steps from the encoder's posterior mean
towards the latent that reconstructs this face best.

The encoder is amortised: one network guesses a latent for every face, and its guess is not the
best latent for any one of them (the amortisation gap). Here Adam moves the latent itself to
lower the pixel error, the inner face's pixels weighted most, as who a person is lies mostly in
the eyes, nose and mouth (and, with an identity weight, an identity loss: facevae.identity.IdentityNet's
embedding of the reconstruction against the photo's; measured to buy nothing yet, so off by
default), while a pull towards the encoder's guess keeps it among the faces the explorer's
sliders and the morph were fitted on. The defaults are the app's, chosen by measurement
(train.studies.measure_refine, docs/identity.md).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .identity import IdentityNet, identity_loss
from .losses import boost_detail, face_weights


@dataclass(frozen=True)
class Refinement:
    steps: int = 20
    lr: float = 0.05
    identity_weight: float = 0.0  # per face, in units of the summed squared pixel error (see docs/identity.md)
    face_weight: float = 16.0  # the inner face's pixels weigh this many times the rest, as training's --face-weight
    anchor_weight: float = 0.5  # per face, on the squared distance from the encoder's latent
    # the pixel error is taken to the photo with its detail band this much stronger (1.9×): towards
    # the photo itself the refinement would undo the shipped decoder's sharpening (it was trained
    # towards 1.7×, train.train's --detail-boost 0.7), and aiming a little beyond that lifts the
    # detail the user sees to 0.6 of the photo's while the PSNR keeps above 23.5 dB (docs/training.md)
    detail_boost: float = 0.9


def refine_latents(model, x: torch.Tensor, z0: torch.Tensor, settings: Refinement = Refinement(),
                   identity_net: IdentityNet | None = None,
                   on_step: Callable[[int, float], None] | None = None) -> tuple[torch.Tensor, list[float]]:
    """Latents N×latent_dim refined for faces x (N×3×H×W in [0, 1]) from z0 (the encoder's).
    Returns them and the mean loss before each step and after the last (settings.steps + 1
    values). on_step(step, loss) is called after each step (for a progress bar)."""
    target = identity_net(x) if identity_net is not None and settings.identity_weight else None
    aim = boost_detail(x, settings.detail_boost) if settings.detail_boost else x
    z0 = z0.detach().clone()  # a plain tensor, even when the encoder ran in inference mode
    z = z0.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([z], lr=settings.lr)
    losses = []
    with torch.inference_mode(False), torch.enable_grad():
        for step in range(settings.steps + 1):
            loss = objective(model, x, aim, z, z0, settings, identity_net, target)
            losses.append(loss.item())
            if step == settings.steps:
                break
            z.grad, = torch.autograd.grad(loss, [z])  # the latent's gradient alone, not the weights'
            optimizer.step()
            if on_step is not None:
                on_step(step + 1, losses[-1])
    return z.detach(), losses


def objective(model, x, aim, z, z0, settings: Refinement, identity_net, target) -> torch.Tensor:
    """Mean over the faces of: summed squared pixel error to aim (x, its detail boosted; weighted
    by face_weights, of mean 1) + identity_weight × (1 − cos) + anchor_weight × |z − z0|²."""
    y = model.decode(z)
    weights = face_weights(x.shape[-1], settings.face_weight)
    loss = (weights * (y - aim).pow(2)).flatten(1).sum(1) + settings.anchor_weight * (z - z0).pow(2).sum(1)
    if target is not None:
        loss = loss + settings.identity_weight * identity_loss(identity_net, y, target)
    return loss.mean()
