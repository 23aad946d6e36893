"""How well align_face frames real faces in photos, against CelebA's own crop of the same face.

    python -m train.studies.measure_align --data ../shared/data/celeba [--faces 200] [--png sheet.png]

Each of --faces val images (178×218, aligned by CelebA) is pasted at 1.5–3× into a 1–2 MP photo
(smooth, blotchy or noisy background: detectors fire on texture), upright and rolled by a
random angle in ±25°, and saved as a JPEG. align_face's crop is compared with crop_celeba of
the original image (crop PSNR), and the model's reconstruction of that crop with its
reconstruction of the direct crop (each against its own input). Prints the figures the issue
sets targets for; --png draws the first faces: photo with detections, aligned crop, direct crop.

Reproduces: docs/alignment.md, "The measure": found, crop PSNR and reconstruction loss, upright
and rolled (also quoted in docs/headshots.md, "Roomy photos keep their alignment").
"""
import argparse
import io

import cv2
import numpy as np
import torch
from PIL import Image, ImageOps

from facevae import crop_celeba, load_model, to_tensor
from facevae.align import align_face, draw_detections
from facevae.data import find_splits
from facevae.metrics import psnr
from facevae.preprocess import to_grid


def background(rng: np.random.Generator, width: int, height: int, kind: int) -> np.ndarray:
    """0: smooth colour gradient; 1: soft blotches; 2: blotches under strong pixel noise."""
    if kind == 0:
        corners = rng.integers(0, 256, (2, 2, 3)).astype(np.uint8)
        return cv2.resize(corners, (width, height), interpolation=cv2.INTER_LINEAR)
    blotches = cv2.resize(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8), (width, height), interpolation=cv2.INTER_CUBIC)
    if kind == 1:
        return blotches
    return np.clip(blotches + rng.normal(0, 40, blotches.shape), 0, 255).astype(np.uint8)


def paste(face: np.ndarray, canvas: np.ndarray, scale: float, degrees: float, centre) -> np.ndarray:
    """The face image scaled and rolled about its centre onto canvas at centre."""
    height, width = face.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, scale)
    matrix[:, 2] += np.array(centre) - np.array([width / 2, height / 2])
    size = (canvas.shape[1], canvas.shape[0])
    warped = cv2.warpAffine(face, matrix, size, flags=cv2.INTER_CUBIC)
    mask = cv2.warpAffine(np.ones(face.shape[:2], np.float32), matrix, size, flags=cv2.INTER_LINEAR)[..., None]
    return (warped * mask + canvas * (1 - mask)).round().astype(np.uint8)


def photo_with(face: np.ndarray, seed: int, degrees: float) -> bytes:
    """The face pasted into a 1–2 MP photo made from seed (the same seed, the same photo and
    placement), as a JPEG."""
    rng = np.random.default_rng(seed)
    megapixels, landscape = rng.uniform(1.0, 2.0), rng.random() < 0.5
    long_side, short_side = int(np.sqrt(megapixels * 1e6 * 4 / 3)), int(np.sqrt(megapixels * 1e6 * 3 / 4))
    width, height = (long_side, short_side) if landscape else (short_side, long_side)
    scale = rng.uniform(1.5, 3.0)
    reach = scale * np.hypot(*face.shape[:2]) / 2  # room for the rolled face
    centre = (rng.uniform(reach, max(reach + 1, width - reach)), rng.uniform(reach, max(reach + 1, height - reach)))
    canvas = paste(face, background(rng, width, height, seed % 3), scale, degrees, centre)
    buffer = io.BytesIO()
    Image.fromarray(canvas).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


@torch.inference_mode()
def reconstruction_psnr(model, faces: list[Image.Image]) -> np.ndarray:
    x = to_tensor(faces)
    return psnr(x, model.reconstruct(x)).numpy()


def measure(files, model, rng: np.random.Generator, sheet_faces: int = 0):
    rows, sheet = [], []
    for i, path in enumerate(files):
        original = Image.open(path).convert("RGB")
        truth = crop_celeba(original)
        degrees = rng.uniform(-25, 25)
        row = {"truth": truth}
        for name, roll in (("upright", 0.0), ("rolled", degrees)):
            photo = photo_with(np.asarray(original), i, roll)
            crop, info = align_face(photo)
            row[name] = dict(found=info.found, crop=crop, crop_psnr=psnr(to_tensor(crop), to_tensor(truth)).item())
            if i < sheet_faces and name == "rolled":
                thumb = draw_detections(Image.open(io.BytesIO(photo)).convert("RGB"), info, max_side=128)
                sheet += [ImageOps.pad(thumb, (128, 128), color=(255, 255, 255)), crop, truth]
        rows.append(row)
    direct = reconstruction_psnr(model, [row["truth"] for row in rows])
    for name in ("upright", "rolled"):
        aligned = reconstruction_psnr(model, [row[name]["crop"] for row in rows])
        for row, a, d in zip(rows, aligned, direct):
            row[name]["reconstruction_loss"] = d - a
    return rows, sheet


def report(rows) -> dict:
    figures = {}
    for name in ("upright", "rolled"):
        found = [row[name] for row in rows if row[name]["found"]]
        figures[name] = dict(
            found=len(found) / len(rows),
            crop_psnr_median=float(np.median([r["crop_psnr"] for r in found])),
            crop_psnr_p10=float(np.percentile([r["crop_psnr"] for r in found], 10)),
            reconstruction_loss_median=float(np.median([r["reconstruction_loss"] for r in found])),
            reconstruction_loss_mean=float(np.mean([r["reconstruction_loss"] for r in found])))
        f = figures[name]
        print(f"{name:8s} found {f['found']:.1%} of {len(rows)}; crop PSNR median {f['crop_psnr_median']:.2f} dB "
              f"(10th percentile {f['crop_psnr_p10']:.2f}); reconstruction PSNR below the direct crop's: "
              f"median {f['reconstruction_loss_median']:.2f} dB, mean {f['reconstruction_loss_mean']:.2f} dB")
    return figures


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--faces", type=int, default=200)
    parser.add_argument("--model", default=None, help="weights (default: the app's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--png", default="", help="write a sheet of the first 8 rolled faces here")
    args = parser.parse_args(argv)
    val = find_splits(args.data)["val"]
    files = val[:: max(1, len(val) // args.faces)][: args.faces]
    model = load_model(args.model).eval()
    rows, sheet = measure(files, model, np.random.default_rng(args.seed), sheet_faces=8 if args.png else 0)
    figures = report(rows)
    if args.png:
        to_grid(to_tensor(sheet), columns=6).save(args.png)
        print(f"wrote {args.png}: photo with detections, aligned crop, CelebA's crop (two faces a row)")
    return figures


if __name__ == "__main__":
    main()
