"""Refining a photo's latent at upload (facevae.refine): what it buys in pixels and identity,
and what it costs in time.

    python -m train.studies.measure_refine --data ../shared/data/celeba
    python -m train.studies.measure_refine --data ../shared/data/celeba --steps 200 --anchor-weight 0 --weights 0

The second asks what the decoder can draw at all: the latent moved freely, for many steps,
towards the pixels of each face. The identity weight is chosen on val faces 1,000–1,099 and
scored on the first 300, by dlib's verdict (facevae.identity), a network the refinement never
sees: the refinement's identity loss is the CelebA-trained IdentityNet. Time: one face at a
time, as the app refines an upload.
"""
from __future__ import annotations

import argparse
import statistics
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

TUNING, SCORING = slice(1000, 1100), slice(0, 300)


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


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None)
    parser.add_argument("--data", required=True)
    parser.add_argument("--steps", type=int, default=Refinement.steps)
    parser.add_argument("--weights", default="0,300,1000", help="identity weights to choose from")
    parser.add_argument("--anchor-weight", type=float, default=Refinement.anchor_weight,
                        help="the pull towards the encoder's latent (0: the latent moves freely)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default, one per core)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(args.model).eval().requires_grad_(False)
    val = cache_images(find_splits(args.data)["val"]).array
    photos = cached_descriptors(val[:1000], "photos")
    tuning_photos = face_descriptors(val[TUNING])

    print(f"choosing the identity weight on val faces {TUNING.start}–{TUNING.stop - 1} ({args.steps} steps):")
    base = Refinement(steps=args.steps, anchor_weight=args.anchor_weight)
    tried = {}
    for weight in (float(w) for w in args.weights.split(",")):
        tried[weight] = judge(model, val[TUNING], tuning_photos, replace(base, identity_weight=weight))
        print(f"  identity weight {weight:g}: " + ", ".join(f"{k} {v:.3f}" for k, v in tried[weight].items()), flush=True)
    best = max(tried, key=lambda w: (tried[w]["same_person"], tried[w]["rank1"]))
    chosen = replace(base, identity_weight=best)
    print(f"chosen: {chosen}")

    print(f"\nscored on the first {SCORING.stop} val faces (rank-1 among them):")
    print("| reconstruction | PSNR (dB) | dlib same person | rank-1 | mean distance |\n|---|---|---|---|---|")
    pixels_only = replace(base, identity_weight=0.0)
    rows = {"encoder (posterior mean)": None, f"refined, pixels only, {pixels_only}": pixels_only}
    if best:  # the identity loss won on the tuning faces
        rows[f"refined, {chosen}"] = chosen
    for name, settings in rows.items():
        r = judge(model, val[SCORING], photos[SCORING], settings)
        print(f"| {name} | {r['psnr']:.2f} | {r['same_person']:.1%} | {r['rank1']:.1%} | {r['distance']:.3f} |", flush=True)
    times = seconds_per_face(model, val[2000:], chosen)
    print(f"\none face, {torch.get_num_threads()} threads: median {statistics.median(times):.2f} s, "
          f"max {max(times):.2f} s over {len(times)} faces")


if __name__ == "__main__":
    main()
