"""Training-step speed: a plain PyTorch loop of FaceVAE against the project's training step,
measured side by side in one run, plus the steps in between to show what each change buys.

    python -m train.studies.benchmark [--steps 15] [--rounds 3] [--batch-size 32]

All train the same model (the write-up's, dropout 0.2, parameters in fp32) on the same loss
(Bernoulli BCE + KL, summed over pixels); the rounds interleave the variants so machine noise
hits all alike. The first line names the CPU and whether it has bf16 units: bf16 autocast pays
only where it does (train.train's --precision auto decides by the same test).

Reproduces: docs/speed.md, "Training step": the table of images/s per variant (2.30x on an
Intel Xeon with AMX-BF16).
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from facevae import FaceVAE
from facevae.losses import kl_divergence
from facevae.model import FastDropout
from train.train import (CPU_BF16_FLAGS, PRECISIONS, Objective, autocast_dtype, cpu_has_bf16_units,
                         make_optimizer, precision_name, training_step)


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


def variants(precision: str):
    """(name, step function), from the plain loop to the project's step (train.train's default
    --precision auto, resolved for this CPU), then the dropout-0 step of the fine-tuning runs in
    fp32 and bf16."""
    def project(model, optimizer, dtype=None):
        return lambda batch: training_step(model, optimizer, batch, Objective("bce", 1.0), 1.0, dtype)

    def fresh(make=FaceVAE):
        model = make()
        return model, torch.optim.Adam(model.parameters(), lr=1e-3)

    plain, plain_adam = fresh(plain_model)
    yield "plain PyTorch loop (fp32)", lambda b: plain_step(plain, plain_adam, b)
    cheap, cheap_adam = fresh()
    yield "+ cheaper dropout masks", lambda b: plain_step(cheap, cheap_adam, b)
    logits, logits_adam = fresh()
    yield "+ BCE with logits, channels_last input", project(logits, logits_adam)
    fused = FaceVAE()
    yield "+ fused Adam (the fp32 step)", project(fused, make_optimizer(fused, 1e-3))
    dtype = autocast_dtype(precision, torch.device("cpu"))
    own = FaceVAE()
    yield f"project step (--precision {precision}: {precision_name(dtype)})", project(own, make_optimizer(own, 1e-3), dtype)
    for name, dtype in [("fp32", None), ("bf16", torch.bfloat16)]:  # what fine-tuning runs (dropout 0) cost
        model = FaceVAE(dropout=0.0)
        yield f"  dropout 0 (fine-tuning), {name}", project(model, make_optimizer(model, 1e-3), dtype)


def cpu_line() -> str:
    """The CPU's model name and whether it has bf16 units: the context of every figure."""
    try:
        names = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("model name")]
    except OSError:
        names = []
    name = names[0] if names else platform.processor() or platform.machine()
    units = "yes" if cpu_has_bf16_units() else "no (bf16 rows are emulated, slower)"
    return f"CPU: {name}, {os.cpu_count()} cores; bf16 units ({' or '.join(CPU_BF16_FLAGS)}): {units}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=15, help="timed steps per variant per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--precision", default="auto", choices=PRECISIONS, help="the project step's, as in train.train")
    args = parser.parse_args()
    torch.manual_seed(0)
    batch = torch.randint(0, 256, (args.batch_size, 128, 128, 3), dtype=torch.uint8)
    runs = list(variants(args.precision))
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
    print(cpu_line())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch_size}, "
          f"{args.rounds} rounds × {args.steps} steps; median images/s")
    for name, _ in runs:
        rate = statistics.median(rates[name])
        print(f"  {name:42s} {rate:7.1f} images/s  {rate / base:4.2f}×")


if __name__ == "__main__":
    main()
