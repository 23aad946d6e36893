"""Average the weights of several fine-tuned runs of one model (a uniform "model soup",
Wortsman et al. 2022), then recompute the BatchNorm statistics for the averaged weights.

    python -m train.average_weights --data ../shared/data/celeba --out runs/soup run_a/model run_b/model

Runs started from the same weights sit in one basin of the loss, and their average often
generalises better than any one of them. Each BatchNorm's running statistics belong to its own
run's weights, so they are measured anew over the training faces (train.train.precise_batchnorm);
with --encoder-only (all runs share a frozen decoder) only the encoder's are.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from facevae import load_model
from facevae.data import cache_images, find_splits
from facevae.model import FaceVAE
from train.train import decoder_parts, precise_batchnorm


def average_state(models: list[FaceVAE]) -> dict[str, torch.Tensor]:
    """The mean of every floating-point tensor; counters (num_batches_tracked) from the first."""
    states = [m.state_dict() for m in models]
    if any(s.keys() != states[0].keys() for s in states):
        raise ValueError("the models differ in their layers; only runs of one architecture can be averaged")
    return {name: torch.stack([s[name] for s in states]).mean(0) if tensor.is_floating_point() else tensor
            for name, tensor in states[0].items()}


def decoders_equal(models: list[FaceVAE]) -> bool:
    """The parts --freeze-decoder keeps (the latent's Linear too) hold the same tensors in every model."""
    def decoder_state(model: FaceVAE) -> list[torch.Tensor]:
        return [t for part in decoder_parts(model) for t in part.state_dict().values()]
    first = decoder_state(models[0])
    return all(all(torch.equal(a, b) for a, b in zip(first, decoder_state(m))) for m in models[1:])


def main(argv=None) -> FaceVAE:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", help="save_pretrained folders of runs from the same start")
    parser.add_argument("--data", required=True, help="the training data, for the BatchNorm statistics")
    parser.add_argument("--out", required=True, help="folder to save the averaged model in")
    parser.add_argument("--encoder-only", action="store_true",
                        help="the runs share one frozen decoder: average and re-measure the encoder alone")
    args = parser.parse_args(argv)
    if len(args.models) < 2:
        parser.error("give at least two models to average")

    models = [load_model(path) for path in args.models]
    if args.encoder_only and not decoders_equal(models):
        parser.error("--encoder-only: the models' decoders differ (were they trained with --freeze-decoder from one start?)")
    try:
        averaged = average_state(models)
    except (ValueError, RuntimeError) as error:  # other layers, or layers of other sizes
        parser.error(f"these models cannot be averaged: {error}")
    soup = models[0]
    soup.load_state_dict(averaged)
    train_set = cache_images(find_splits(args.data)["train"], soup.image_size)
    images = torch.from_numpy(np.array(train_set.array))
    precise_batchnorm(soup, images, torch.device("cpu"), soup.encoder if args.encoder_only else None)
    soup.eval()
    soup.save_pretrained(Path(args.out))
    print(f"saved the average of {len(models)} models to {args.out}")
    return soup


if __name__ == "__main__":
    main()
