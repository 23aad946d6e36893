"""Issue 34's levers judged by a face network that is in no loss: MobileFaceNet
(train.likeness), beside PSNR, SSIM and the detail figure, for the encoder alone and
for the latent refined as the app refines an upload (facevae.refine's defaults; --refine-boost
tries other detail boosts for the refinement's aim).

    python -m train.studies.judge_levers --data ../shared/data/celeba assets/facevae-celeba-128 ~/runs/trial/model

The first --images val faces (default 300) are scored. The judge's threshold, at 1% false
accepts, is chosen on the photos of val faces 1,000-2,999, which are never scored. Figures:
- same person: the reconstruction's cosine to its own photo passes the threshold;
- rank-1: its nearest photo among the N is its own;
- rank-1 other photo: its nearest among a gallery of one *other* photo of each face's person
  (the photo itself can be matched by colours and hair; another photo only by the person).
- grid_U_V: the luminance power at the decoder's lattice's frequencies (U, V cycles per 128 px)
  over the photos' (about 1: no pattern tied to the pixel grid).
The photos themselves and their blurs by σ = 2.5 and 2 px are scored the same way, as yardsticks.
With --samples N, each model's mixture-prior samples get a face-descriptor FD: the Fréchet distance
between the judge's embeddings of N samples and of all the split's photos; three disjoint sets of N
training photos are scored the same way, the yardstick (real faces of other people, at that count).

Reproduces: docs/training.md, "Its figures, and how to reproduce them" (phase 16's MobileFaceNet
figures and the table's MobileFaceNet rows, --images 1000; the face-descriptor FD, --samples
2000; quoted in docs/identity.md, "What ships", and docs/likeness.md's CelebA paragraph) and the
tables of "Identity through dlib's ResNet", "Detail the decoder can afford" and "The
refinement's aim" (--refine-boost).
"""
from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import torch

from facevae import load_model
from facevae.losses import luminance
from facevae.metrics import detail_energy, psnr, ssim
from facevae.preprocess import images_to_tensor
from facevae.refine import Refinement
from train.evaluate import disjoint_sets, draw, frechet_distance, gaussian_blur
from train.likeness import (THRESHOLD_FACES, load_judge, other_photos, reconstructions, split_faces,
                            threshold_at_false_accepts, verification_report)


# Frequencies (cycles per 128 px, vertical and horizontal) of the decoder's lattices of 2, 4 and 8 px,
# those where faces have little power of their own (which a pattern of that period would swamp).
GRID_FREQUENCIES = ((64, 64), (64, 32), (32, 64), (32, 32), (16, 16))


def grid_power(x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """The luminance power of y over x's at the lattice's frequencies, averaged over the images:
    about 1 for faces drawn without a pattern tied to the pixel grid."""
    def power(images):
        luma = luminance(images)[:, 0]
        return torch.fft.fft2(luma - luma.mean((1, 2), keepdim=True)).abs().pow(2).mean(0)
    ratio = power(y) / power(x)
    size = x.shape[-1]
    return {f"grid_{u}_{v}": float(ratio[u * size // 128, v * size // 128]) for u, v in GRID_FREQUENCIES}


def pixel_figures(x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    return dict(psnr=float(psnr(x, y).mean()), ssim=float(ssim(x, y).mean()),
                detail=float(detail_energy(y).sum() / detail_energy(x).sum()), **grid_power(x, y))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="save_pretrained folders")
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--no-refine", action="store_true", help="the encoder alone")
    parser.add_argument("--refine-boost", type=float, nargs="+", default=[Refinement().detail_boost],
                        help="the refinement's detail boost(s) (facevae.refine.Refinement.detail_boost; default the app's); "
                             "after the model folders, or it takes them for boosts")
    parser.add_argument("--samples", type=int, default=0, help="mixture samples for the face-descriptor FD (0: none)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    faces, people, _ = split_faces(args.data, "val")
    n = args.images
    if n > THRESHOLD_FACES.start:
        parser.error(f"--images is at most {THRESHOLD_FACES.start}: the faces after it set the threshold")
    judge = load_judge()
    every_photo = judge.embed_uint8(faces) if args.samples else None  # the samples' FD reads them all

    def embed_photos(index):
        return judge.embed_uint8(faces[index]) if every_photo is None else every_photo[index]

    photos = embed_photos(slice(0, n))
    threshold = threshold_at_false_accepts(embed_photos(THRESHOLD_FACES), people[THRESHOLD_FACES])
    gallery_index = other_photos(list(people[:n]), list(people))
    gallery, gallery_people = embed_photos(gallery_index), people[gallery_index]
    x = images_to_tensor(faces[:n])

    def row(name: str, y: torch.Tensor) -> None:
        figures = pixel_figures(x, y)
        figures.update(verification_report(photos, judge.embed(y), people[:n], threshold, gallery, gallery_people))
        print(name, json.dumps({k: round(v, 4) for k, v in figures.items()}), flush=True)

    row("photos", x)
    if args.samples:
        training_faces = split_faces(args.data, "train")[0]
        yardstick = [frechet_distance(judge.embed_uint8(training_faces[index]), every_photo)
                     for index in disjoint_sets(len(training_faces), args.samples, 3)]
        print("training photos", json.dumps({"face_descriptor_fd": [round(fd, 4) for fd in yardstick]}), flush=True)
    for sigma in (2.5, 2.0):
        row(f"photos blurred by {sigma} px", images_to_tensor(gaussian_blur(faces[:n], sigma)))
    for folder in args.models:
        model = load_model(folder)
        row(f"{folder}: encoder", reconstructions(model, x, None))
        for boost in [] if args.no_refine else args.refine_boost:
            refinement = replace(Refinement(), detail_boost=boost)
            row(f"{folder}: refined (detail boost {boost})", reconstructions(model, x, refinement))
        if args.samples:
            samples = judge.embed(draw(model, args.samples, "mixture"))
            print(f"{folder}: samples", json.dumps({"face_descriptor_fd": round(frechet_distance(samples, every_photo), 4)}),
                  flush=True)


if __name__ == "__main__":
    main()
