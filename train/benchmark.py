"""Training-step speed: a plain PyTorch loop of FaceVAE against the project's training step,
measured side by side in one run, plus the steps in between to show what each change buys.

    python -m train.benchmark [--steps 15] [--rounds 3] [--batch-size 32]

Both train the same model (same parameters, fp32) on the same loss (Bernoulli BCE + KL,
summed over pixels); the rounds interleave the variants so machine noise hits all alike.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from facevae import FaceVAE
from facevae.losses import kl_divergence
from facevae.model import FastDropout
from train.train import make_optimizer, training_step


def plain_model() -> FaceVAE:
    """FaceVAE with torch's own nn.Dropout, as a straightforward implementation would have it."""
    model = FaceVAE()
    for module in model.modules():
        for name, child in module.named_children():
            if isinstance(child, FastDropout):
                setattr(module, name, nn.Dropout(child.p))
    return model


def plain_step(model, optimizer, batch_uint8):
    """Float NCHW input, sigmoid then BCE, default Adam: nothing tuned."""
    x = batch_uint8.permute(0, 3, 1, 2).contiguous().float() / 255.0
    logits, mu, logvar = model(x)
    y = torch.sigmoid(logits)
    rec = F.binary_cross_entropy(y, x, reduction="sum") / len(x)
    loss = rec + kl_divergence(mu, logvar).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def variants():
    """(name, model, optimizer, step function), from the plain loop to the project's step."""
    def project(model, optimizer):
        return lambda batch: training_step(model, optimizer, batch, "bce", 1.0, 1.0)

    plain = plain_model()
    yield "plain PyTorch loop", lambda b, m=plain, o=torch.optim.Adam(plain.parameters(), lr=1e-3): plain_step(m, o, b)
    fast_dropout = FaceVAE()
    yield "+ cheaper dropout masks", lambda b, m=fast_dropout, o=torch.optim.Adam(fast_dropout.parameters(), lr=1e-3): plain_step(m, o, b)
    logits_loss = FaceVAE()
    yield "+ BCE with logits, channels_last input", project(logits_loss, torch.optim.Adam(logits_loss.parameters(), lr=1e-3))
    full = FaceVAE()
    yield "project step (+ fused Adam)", project(full, make_optimizer(full, 1e-3))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=15, help="timed steps per variant per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    torch.manual_seed(0)
    batch = torch.randint(0, 256, (args.batch_size, 128, 128, 3), dtype=torch.uint8)
    runs = list(variants())
    for _, step in runs:  # warm-up: allocator, kernels, Adam state
        for _ in range(3):
            step(batch)
    rates = {name: [] for name, _ in runs}
    for _ in range(args.rounds):
        for name, step in runs:
            start = time.perf_counter()
            for _ in range(args.steps):
                step(batch)
            rates[name].append(args.steps * args.batch_size / (time.perf_counter() - start))
    base = statistics.median(rates[runs[0][0]])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch_size}, "
          f"{args.rounds} rounds × {args.steps} steps; median images/s")
    for name, _ in runs:
        rate = statistics.median(rates[name])
        print(f"  {name:42s} {rate:7.1f} images/s  {rate / base:4.2f}×")


if __name__ == "__main__":
    main()
