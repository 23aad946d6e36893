"""Likeness group by group: how often a reconstruction is verified as the person in its photo,
by race group, age band and gender, on UTKFace portraits no model was trained on.

    python -m train.studies.group_likeness --utkface ../shared/data/utkface --celeba ../shared/data/celeba \\
        assets/facevae-celeba-128 ~/runs/trial/model

The faces: train.utkface's held-out validation part (50 of each race × gender, 500), aligned by
align_face as the app aligns an upload. For each model, the encoder's reconstruction and the
face the app shows after refining the latent (facevae.refine's defaults, or --refine-steps /
--refine-boost to try others); beside them, the photos blurred by σ = 2.5 px, the anchor.

Two judges, each verifying a face against its own photo (and "rank1": MobileFaceNet finds its
own photo nearest among all 499, a finer measure where verification nears its ceiling):
- MobileFaceNet (train.likeness), in no training loss: cosine at or above the threshold
  that accepts 1% of different-person pairs among CelebA val photos 1,000-2,999 (as judge_levers);
- dlib's face recognition ResNet (train.face_recognition's port of it, which the identity loss
  of training also reads, so a second opinion, not an independent one): descriptor distance
  below 0.6.
Also per group: the PSNR over the pixels the photo covers (the completed frame is no target).
CelebA's own figures (val PSNR, identity, rank-1, the samples' face-descriptor FD) come from
train.evaluate and train.studies.judge_levers.

Reproduces: docs/likeness.md, "The shipped model, group by group" (the tables per race group, age
band and gender), and the model card's "Bias and limitations" table.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from facevae import load_model
from facevae.metrics import masked_psnr
from facevae.preprocess import images_to_tensor
from facevae.refine import Refinement
from train.evaluate import BLUR_SIGMA, gaussian_blur
from train.face_recognition import SAME_PERSON, descriptors, load_face_recognition_net
from train.likeness import THRESHOLD_FACES, identified, load_judge, reconstructions, split_faces, threshold_at_false_accepts
from train.utkface import AGE_BANDS, GENDERS, RACES, Portrait, age_band, load_part

GROUPINGS = {"race": list(RACES), "age": [age_band(low) for low, _ in AGE_BANDS], "gender": list(GENDERS)}


def verified(photos: np.ndarray, faces: np.ndarray, judge: str, threshold: float) -> np.ndarray:
    """Per face, whether the judge calls it the person of the photo in the same row:
    "mobilefacenet", unit embeddings, cosine >= threshold; "dlib", descriptors, distance < threshold."""
    if judge == "dlib":
        return np.linalg.norm(faces - photos, axis=1) < threshold
    return np.einsum("ij,ij->i", faces, photos) >= threshold


def group_table(portraits: list[Portrait], columns: dict[str, np.ndarray]) -> list[dict]:
    """One row per group of every grouping (and "all"): the group, its count, and each column's
    mean over its faces (a verified share, or a PSNR)."""
    rows = []
    labels = [p.groups for p in portraits]
    for grouping, names in [("all", ["all"]), *GROUPINGS.items()]:
        for name in names:
            members = np.array([grouping == "all" or label[grouping] == name for label in labels])
            row = dict(grouping=grouping, group=name, faces=int(members.sum()))
            row.update({column: float(values[members].mean()) if members.any() else float("nan")
                        for column, values in columns.items()})
            rows.append(row)
    return rows


def format_table(rows: list[dict]) -> str:
    """The rows as an aligned text table, shares in percent and PSNRs in dB."""
    columns = [key for key in rows[0] if key not in ("grouping", "group", "faces")]
    lines = [f"{'group':<16}{'faces':>6}" + "".join(f"{c:>{max(10, len(c) + 2)}}" for c in columns)]
    for row in rows:
        cells = "".join(f"{row[c] if 'psnr' in c else 100 * row[c]:>{max(10, len(c) + 2)}.1f}" for c in columns)
        lines.append(f"{row['grouping'] + ' ' + row['group'] if row['grouping'] != 'all' else 'all':<16}{row['faces']:>6}{cells}")
    return "\n".join(lines)


class Judges:
    """Both judges with their thresholds, and the photos' embeddings under each."""

    def __init__(self, photos: torch.Tensor, mobilefacenet_threshold: float):
        self.mobilefacenet, self.dlib = load_judge(), load_face_recognition_net()
        self.thresholds = {"mobilefacenet": mobilefacenet_threshold, "dlib": SAME_PERSON}
        self.photos = self.embed(photos)

    @torch.no_grad()
    def embed(self, faces: torch.Tensor, batch_size: int = 100) -> dict[str, np.ndarray]:
        dlib = [descriptors(self.dlib, faces[s:s + batch_size]) for s in range(0, len(faces), batch_size)]
        return {"mobilefacenet": self.mobilefacenet.embed(faces, batch_size), "dlib": torch.cat(dlib).numpy()}

    def columns(self, name: str, faces: torch.Tensor) -> dict[str, np.ndarray]:
        """"{name} {judge}": per face, verified (0 or 1) by each judge; "{name} rank1": identified
        among all the photos by MobileFaceNet."""
        embedded = self.embed(faces)
        columns = {f"{name} {judge}": verified(self.photos[judge], embedded[judge], judge, threshold).astype(float)
                   for judge, threshold in self.thresholds.items()}
        columns[f"{name} rank1"] = identified(self.photos["mobilefacenet"], embedded["mobilefacenet"]).astype(float)
        return columns


def celeba_threshold(root: Path) -> float:
    """MobileFaceNet's cosine at 1% false accepts among CelebA val photos 1,000-2,999 (judge_levers')."""
    faces, people, _ = split_faces(root, "val")
    return threshold_at_false_accepts(load_judge().embed_uint8(faces[THRESHOLD_FACES]), people[THRESHOLD_FACES])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="save_pretrained folders")
    parser.add_argument("--utkface", required=True, type=Path, help="a UTKFace folder (train.utkface)")
    parser.add_argument("--celeba", required=True, type=Path, help="CelebA, for MobileFaceNet's threshold")
    parser.add_argument("--refine-steps", type=int, default=Refinement().steps)
    parser.add_argument("--refine-boost", type=float, default=Refinement().detail_boost)
    parser.add_argument("--json", type=Path, help="also write the tables here")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    part = load_part(args.utkface, "val")
    x = images_to_tensor(part.images.array)
    coverage = torch.from_numpy(np.array(part.images.coverage)).float().div(255)[:, None]
    judges = Judges(x, celeba_threshold(args.celeba))
    print(f"{len(part.portraits)} held-out UTKFace portraits ({part.images.skipped} skipped: no face found); "
          f"MobileFaceNet threshold {judges.thresholds['mobilefacenet']:.4f}", flush=True)
    anchor = judges.columns(f"blur {BLUR_SIGMA}", images_to_tensor(gaussian_blur(np.asarray(part.images.array), BLUR_SIGMA)))
    refinement = replace(Refinement(), steps=args.refine_steps, detail_boost=args.refine_boost)
    tables = {}
    for folder in args.models:
        model = load_model(folder)
        columns = dict(anchor)
        for name, settings in (("encoder", None), ("refined", refinement)):
            y = reconstructions(model, x, settings)
            columns.update(judges.columns(name, y))
            columns[f"{name} psnr"] = masked_psnr(x, y, coverage).numpy()  # the completed frame is no target
        tables[folder] = group_table(part.portraits, columns)
        print(f"\n{folder} (refined: {args.refine_steps} steps, detail boost {args.refine_boost})\n"
              f"{format_table(tables[folder])}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(tables, indent=1))


if __name__ == "__main__":
    main()
