"""Refining a photo's latent at upload (facevae.refine): what it buys in pixels and identity,
and what it costs in time.

    python -m train.studies.measure_refine --data ../shared/data/celeba
    python -m train.studies.measure_refine --data ../shared/data/celeba --steps 200 --weights 0 \
        --face-weights 1 --anchor-weights 0

The second asks what the decoder can draw at all: the latent moved freely, for many steps,
towards the pixels of each face. The identity, face and anchor weights are chosen on val faces
1,000–1,299 (--tune-images: dlib's best among the settings whose PSNR is at least the encoder's)
and scored on the first 1,000 (--score-images), by dlib's verdict
(facevae.identity), a network the refinement never sees: the refinement's identity loss is the
CelebA-trained IdentityNet. Time: one face at a time, as the app refines an upload.

Reproduces: docs/identity.md, "The refinement: weighting the face" (face weight 16, anchor 0.5:
the first 1,000 val faces), "The refinement's identity term" and "What the decoder can draw"
(--steps 200 --anchor-weights 0).
"""
from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from dataclasses import replace

import numpy as np
import torch

from facevae import load_model
from facevae.data import cache_images, find_splits
from facevae.identity import face_descriptors, identity_scores, load_identity_net
from facevae.metrics import psnr
from facevae.preprocess import images_to_tensor, to_image
from facevae.refine import Refinement, refine_latents
from train.evaluate import cached_descriptors

TUNE_FROM = 1000


def as_uint8(y: torch.Tensor) -> np.ndarray:
    return np.stack([np.asarray(to_image(image)) for image in y])


def judge(model, images: np.ndarray, photo_descriptors: np.ndarray, settings: Refinement | None) -> dict[str, float]:
    """PSNR and dlib's verdict of the reconstructions of images, refined with settings (None: the encoder's)."""
    x = images_to_tensor(images)
    with torch.no_grad():
        z = model.encode(x)[0]
    if settings is not None:
        z = torch.cat([refine_latents(model, x[s:s + 50], z[s:s + 50], settings, load_identity_net())[0]
                       for s in range(0, len(x), 50)])
    with torch.no_grad():
        y = model.decode(z)
    scores = identity_scores(photo_descriptors, face_descriptors(as_uint8(y)))
    return dict(psnr=float(psnr(x, y).mean()), **scores)


def seconds_per_face(model, images: np.ndarray, settings: Refinement, repeats: int = 5) -> list[float]:
    net, times = load_identity_net(), []
    for image in images[:repeats + 1]:
        x = images_to_tensor(image[None])
        with torch.no_grad():
            z = model.encode(x)[0]
        start = time.perf_counter()
        refine_latents(model, x, z, settings, net)
        times.append(time.perf_counter() - start)
    return times[1:]  # the first pays for oneDNN's kernel set-up


def candidates(steps: int, args: argparse.Namespace) -> list[Refinement]:
    """Every combination of the identity, face and anchor weights given (comma-separated)."""
    def values(text: str) -> list[float]:
        return [float(v) for v in text.split(",")]

    return [Refinement(steps=steps, identity_weight=i, face_weight=f, anchor_weight=a) for i, f, a in
            itertools.product(values(args.weights), values(args.face_weights), values(args.anchor_weights))]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None)
    parser.add_argument("--data", required=True)
    parser.add_argument("--steps", type=int, default=Refinement.steps)
    parser.add_argument("--weights", default="0",
                        help="identity weights to choose from (docs/identity.md: they bought nothing)")
    parser.add_argument("--face-weights", default="1,4,16,32",
                        help="face weights to choose from (facevae.losses.face_weights)")
    parser.add_argument("--anchor-weights", default="1,0.5",
                        help="pulls towards the encoder's latent to choose from (0: the latent moves freely)")
    parser.add_argument("--tune-images", type=int, default=300, help=f"val faces from {TUNE_FROM} the choice is made on")
    parser.add_argument("--score-images", type=int, default=1000, help="the first val faces the choice is scored on "
                        f"(at most {TUNE_FROM}: never those it was made on)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default, one per core)")
    args = parser.parse_args(argv)
    if args.score_images > TUNE_FROM:
        parser.error(f"--score-images must be at most {TUNE_FROM}")
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(args.model).eval().requires_grad_(False)
    val = cache_images(find_splits(args.data)["val"]).array
    tuning, scoring = slice(TUNE_FROM, TUNE_FROM + args.tune_images), slice(0, args.score_images)
    photos = cached_descriptors(val[scoring], "photos")
    tuning_photos = cached_descriptors(val[tuning], "photos")

    print(f"choosing the weights on val faces {tuning.start}–{tuning.stop - 1} ({args.steps} steps):")
    tried = {}
    for settings in [None, *candidates(args.steps, args)]:
        tried[settings] = judge(model, val[tuning], tuning_photos, settings)
        scores = ", ".join(f"{k} {v:.3f}" for k, v in tried[settings].items())
        print(f"  {settings or 'encoder'}: {scores}", flush=True)
    # dlib's best, among the settings that keep the pixels at least as near the photo as the encoder's
    encoder = tried.pop(None)
    eligible = [s for s in tried if tried[s]["psnr"] >= encoder["psnr"]]
    if not eligible:
        sys.exit("no setting tried kept the encoder's PSNR on the tuning faces: try a stronger --anchor-weights")
    chosen = max(eligible, key=lambda s: (tried[s]["same_person"], tried[s]["rank1"]))
    print(f"chosen: {chosen}")

    print(f"\nscored on the first {scoring.stop} val faces (rank-1 among them):")
    print("| reconstruction | PSNR (dB) | dlib same person | rank-1 | mean distance |\n|---|---|---|---|---|")
    pixels_alone = replace(chosen, identity_weight=0.0, face_weight=1.0)
    rows = dict.fromkeys([None, replace(pixels_alone, anchor_weight=1.0), pixels_alone, chosen])
    for settings in rows:
        r = judge(model, val[scoring], photos, settings)
        name = "encoder (posterior mean)" if settings is None else f"refined, {settings}"
        print(f"| {name} | {r['psnr']:.2f} | {r['same_person']:.1%} | {r['rank1']:.1%} | {r['distance']:.3f} |", flush=True)
    times = seconds_per_face(model, val[2000:], chosen)
    print(f"\none face, {torch.get_num_threads()} threads: median {statistics.median(times):.2f} s, "
          f"max {max(times):.2f} s over {len(times)} faces")


if __name__ == "__main__":
    main()
