"""Headshots cut close around the face: how align_face finds and frames them, and what the
model makes of the frame filled beyond the photo, against the same faces given whole.

    python -m train.studies.measure_headshots --data ../shared/data/celeba [--faces 200] [--png sheet.png]
        [--no-identity] [--sizes 2.5 0.8]
    python -m train.studies.measure_headshots --examples runs/headshots_examples.png  # no CelebA
    python -m train.studies.measure_headshots --timing 3  # what the retry and completion cost

Each of --faces val images (178×218, aligned by CelebA) is cut to a forehead-to-chin box (x 39–139,
y 65–185), enlarged 2.5× (a 250×300 headshot) and 0.8× (80×96, LFW's size), saved as a JPEG and
given to the face search; the whole image is the reference (its crop_celeba, and its landmarks),
and so is the whole image pasted into a roomy photo and aligned by align_face. Prints, for each size:
- found, and the five landmarks' error against the whole image's (in eye distances), for the
  search as it was (find_faces) and align_face's (with its bordered retry);
- for each way of filling the frame beyond the photo: PSNR of the reconstruction inside the box
  (the part the photo showed) against crop_celeba of the whole image and against its own input,
  over the whole crop against crop_celeba, and the share of reconstructions dlib's face descriptor takes for the person (distance
  to the whole image's crop below 0.6), beside the same figures for the whole image.

Reproduces: docs/headshots.md, "Measured": the finding and reconstruction tables (--data), the
cost table (--timing 3), and the example sheet docs/headshots_examples.jpg (--examples to a PNG,
then saved as a JPEG, quality 90, no chroma subsampling).
"""
import argparse
import io
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image, ImageOps

from facevae import crop_celeba, load_model, to_tensor
from facevae.align import (CELEBA_SIZE, align_face, complete_frame, distance_outside, draw_detections, find_faces,
                           five_points, growing_blur, photo_share, to_photo, warp)
from facevae.data import find_splits
from facevae.identity import SAME_PERSON, face_descriptors
from facevae.metrics import masked_psnr, psnr
from facevae.preprocess import to_grid
from train.studies.measure_align import background, photo_with

BOX = (39, 65, 139, 185)  # left, top, right, bottom in CelebA's 178×218 frame: forehead to chin
ENLARGEMENTS = (2.5, 0.8)
FACE_SIDE = 144  # FFHQ's crop side (its qsize) for a face of CelebA's size in CelebA's frame


def headshot(original: Image.Image, enlarge: float) -> np.ndarray:
    """The face cut to BOX, enlarged, through a JPEG as an upload would be."""
    width, height = BOX[2] - BOX[0], BOX[3] - BOX[1]
    cut = original.crop(BOX).resize((round(width * enlarge), round(height * enlarge)), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    cut.save(buffer, format="JPEG", quality=90)
    return np.asarray(Image.open(buffer).convert("RGB"))


def box_mask(size: int = 128) -> torch.Tensor:
    """BOX in crop_celeba's size×size crop (rows 20–197 of the frame): 1 inside."""
    left, top, right, bottom = (v * size / CELEBA_SIZE[0] for v in (BOX[0], BOX[1] - 20, BOX[2], BOX[3] - 20))
    centres = torch.arange(size) + 0.5
    rows = (centres >= top) & (centres <= bottom)
    columns = (centres >= left) & (centres <= right)
    return (rows[:, None] & columns[None, :]).float()


def to_original(points: np.ndarray, enlarge: float) -> np.ndarray:
    """Headshot pixels -> pixels of the whole 178×218 image."""
    return np.array(BOX[:2]) + (points + 0.5) / enlarge - 0.5


# Ways of filling the frame beyond the photo, each (photo, matrix) -> the 178×218 frame (uint8).
def edge_fill(photo, matrix):
    """As align_face did: the photo's edge pixels repeat outward."""
    return warp(photo, matrix, CELEBA_SIZE)


def blend_outside(photo, matrix, border, fill):
    """The photo's pixels where it covers the frame, fill(frame, share, distance) elsewhere."""
    frame = warp(photo, matrix, CELEBA_SIZE, border).astype(np.float32)
    share = photo_share(matrix, (photo.shape[1], photo.shape[0]))
    filled = fill(frame, share, distance_outside(share))
    share = share[..., None]
    return (share * frame + (1 - share) * filled).round().clip(0, 255).astype(np.uint8)


def toward_median(frame, share, distance, filled):
    """FFHQ's blend toward the photo's median colour, complete at 0.3 face sides out (or the frame's edge)."""
    ramp = max(distance.max() + 0.1 * FACE_SIDE, 0.3 * FACE_SIDE)
    median = np.median(frame[share >= 1], axis=0)
    return filled + (median - filled) * np.clip(distance / ramp, 0, 1)[..., None]


def ffhq_fill(photo, matrix):
    """FFHQ's recreate_aligned_images: reflected, blurred (σ 2% of the face side), blended toward the median."""
    def fill(frame, share, distance):
        return toward_median(frame, share, distance, cv2.GaussianBlur(frame, (0, 0), 0.02 * FACE_SIDE))
    return blend_outside(photo, matrix, cv2.BORDER_REFLECT_101, fill)


def growing_fill(border, median: bool, rate: float = 0.5):
    def fill(frame, share, distance):
        blurred = growing_blur(frame, distance, rate)
        return toward_median(frame, share, distance, blurred) if median else blurred
    return lambda photo, matrix: blend_outside(photo, matrix, border, fill)


CHOSEN = "edge + growing blur σ = d (align_face)"
FILLS = {
    "edge (as before)": edge_fill,
    "FFHQ": ffhq_fill,
    "edge + growing blur σ = d/2": growing_fill(cv2.BORDER_REPLICATE, median=False, rate=0.5),
    CHOSEN: lambda photo, matrix: complete_frame(photo, matrix)[0],
}
MODEL_ROUNDS = (2,)  # encode/decode rounds keeping the photo's pixels, from CHOSEN (1 and 4: alike on 30 faces)
NO_IDENTITY = {"edge + growing blur σ = d/2"}  # dlib's same-person test takes most of the time: not on these


def crop_share(matrix, photo) -> torch.Tensor:
    """photo_share in the 128² crop, 1×1×128×128."""
    share = Image.fromarray((photo_share(matrix, (photo.shape[1], photo.shape[0])) * 255).round().astype(np.uint8))
    return torch.from_numpy(np.asarray(crop_celeba(share))[..., 0].astype(np.float32) / 255)[None, None]


@torch.inference_mode()
def model_fill(model, x: torch.Tensor, share: torch.Tensor, rounds: int) -> torch.Tensor:
    for _ in range(rounds):
        x = share * x + (1 - share) * model.reconstruct(x)
    return x


def landmark_error(faces, reference, enlarge) -> float:
    """Mean distance of the five landmarks from the whole image's, in its eye distances."""
    points = five_points(to_original(faces[0].landmarks, enlarge))
    return float(np.linalg.norm(points - five_points(reference.landmarks), axis=1).mean() / reference.size)


def search(name: str, photo: np.ndarray):
    """The faces found by one of SEARCHES, and the seconds it took."""
    start = time.perf_counter()
    if name == "align_face":
        _, info = align_face(Image.fromarray(photo))
        faces = [info.faces[info.chosen]] if info.found else []
    else:
        faces = find_faces(photo)
    return faces, time.perf_counter() - start


SEARCHES = ("as before", "align_face")


def measure(files, model, enlarge: float, sheet: list | None = None, identity: bool = True) -> dict:
    box = box_mask()
    detection = {name: dict(found=[], error=[], seconds=[]) for name in SEARCHES}
    crops = {name: [] for name in FILLS}
    truths, shares, roomy = [], [], []
    for i, path in enumerate(files):
        original = Image.open(path).convert("RGB")
        truths.append(crop_celeba(original))
        roomy.append(align_face(photo_with(np.asarray(original), i, 0.0))[0])
        reference = find_faces(np.asarray(original))
        photo = headshot(original, enlarge)
        for name in SEARCHES:
            faces, seconds = search(name, photo)
            detection[name]["seconds"].append(seconds)
            detection[name]["found"].append(bool(faces))
            if faces and reference:
                detection[name]["error"].append(landmark_error(faces, reference[0], enlarge))
        if faces:  # align_face's
            for name, fill in FILLS.items():
                crops[name].append(crop_celeba(Image.fromarray(fill(photo, faces[0].matrix))))
            shares.append(crop_share(faces[0].matrix, photo))
        else:  # align_face's centre crop
            for name in FILLS:
                crops[name].append(align_face(Image.fromarray(photo))[0])
            shares.append(torch.ones(1, 1, 128, 128))
    truth = to_tensor(truths)
    share = torch.cat(shares)
    inputs = {name: to_tensor(images) for name, images in crops.items()}
    for rounds in MODEL_ROUNDS:
        inputs[f"model, {rounds} rounds from {CHOSEN}"] = model_fill(model, inputs[CHOSEN], share, rounds)
    regions = {name: (share >= 1).float() for name in inputs}
    inputs["whole image (crop_celeba)"] = truth
    inputs["whole image in a roomy photo (align_face)"] = to_tensor(roomy)
    regions["whole image (crop_celeba)"] = regions["whole image in a roomy photo (align_face)"] = box
    truth_descriptors = face_descriptors(np.stack([np.asarray(t) for t in truths])) if identity else None
    results = {}
    with torch.inference_mode():
        for name, x in inputs.items():
            y = model.reconstruct(x)
            images = (y.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()
            same = (np.linalg.norm(face_descriptors(images) - truth_descriptors, axis=1) < SAME_PERSON
                    if identity and name not in NO_IDENTITY else np.full(len(images), np.nan))
            results[name] = dict(inside=masked_psnr(y, truth, box).mean().item(),
                                 inside_own=masked_psnr(y, x, regions[name]).mean().item(),
                                 whole=psnr(y, truth).mean().item(), input_whole=psnr(x, truth).mean().item(),
                                 same_person=float(same.mean()))
            if sheet is not None:
                sheet.append((name, x[:16], y[:16]))
    return dict(detection={k: dict(found=float(np.mean(v["found"])), error_median=float(np.median(v["error"])),
                                   error_mean=float(np.mean(v["error"])), ms_median=1000 * float(np.median(v["seconds"])))
                           for k, v in detection.items()},
                fills=results)


EXAMPLES = Path(__file__).resolve().parents[2] / "assets" / "examples"
# Cuts of an example photo: the box (BOX's corners in the photo) moved by (dx, dy) and scaled
# by zoom, all as shares of its width, then resized to `width` pixels.
CUTS = {"forehead to chin": (0, 0, 1.0, 250), "the same, LFW's size": (0, 0, 1.0, 80),
        "tighter, to the left": (-0.08, 0, 0.85, 200), "lower, to the right": (0.1, 0.12, 1.0, 200)}


def example_headshots(path: Path) -> list[np.ndarray]:
    """The example photo's face cut as in CUTS."""
    photo = np.asarray(Image.open(path).convert("RGB"))
    corners = to_photo(find_faces(photo)[0].matrix, np.array([BOX[:2], BOX[2:]], np.float64))
    (left, top), (right, bottom) = corners
    cuts = []
    for dx, dy, zoom, width in CUTS.values():
        centre = np.array([(left + right) / 2 + dx * (right - left), (top + bottom) / 2 + dy * (right - left)])
        half = np.array([right - left, bottom - top]) * zoom / 2
        (x0, y0), (x1, y1) = np.round(centre - half).astype(int), np.round(centre + half).astype(int)
        cut = Image.fromarray(photo[y0:y1, x0:x1])
        cuts.append(np.asarray(cut.resize((width, round(width * cut.height / cut.width)), Image.Resampling.LANCZOS)))
    return cuts


@torch.inference_mode()
def example_sheet(model, path: str) -> None:
    """A sheet of the example photos (not CelebA's) cut close: per row the headshot, its crop as
    align_face framed it before (edge pixels repeated) and that crop's reconstruction, the crop
    now and its reconstruction, and the thumbnail the Reconstruct tab shows."""
    tiles = []
    for example in sorted(EXAMPLES.glob("*.jpg")):
        for photo in example_headshots(example):
            face, info = align_face(Image.fromarray(photo))
            before = crop_celeba(Image.fromarray(edge_fill(photo, info.faces[info.chosen].matrix)))
            x = to_tensor([before, face])
            y = model.reconstruct(x)
            shown = [Image.fromarray(photo), draw_detections(Image.fromarray(photo), info, max_side=128)]
            tiles += [to_tensor(ImageOps.pad(shown[0], (128, 128), color=(255, 255, 255))), x[:1], y[:1], x[1:], y[1:],
                      to_tensor(ImageOps.pad(shown[1], (128, 128), color=(255, 255, 255)))]
    to_grid(torch.cat(tiles), columns=6).save(path)
    print(f"wrote {path}: per row the headshot; before: crop, reconstruction; now: crop, reconstruction; the thumbnail")


def timing(repeats: int) -> None:
    """What the completion and the second search cost where they are not needed, side by side
    in one run: align_face as it is against align_face with them switched off (as before), on
    roomy 1–2 MP photos of the example face, a 1.5 MP photo without a face and a blank 128-px one."""
    from facevae import align

    example = np.asarray(Image.open(EXAMPLES / "astronaut.jpg").convert("RGB"))
    face = warp(example, find_faces(example)[0].matrix, CELEBA_SIZE)
    roomy = [Image.open(io.BytesIO(photo_with(face, seed, 0.0))).convert("RGB") for seed in range(4)]
    faceless = Image.fromarray(background(np.random.default_rng(0), 1400, 1050, 1))
    blank = Image.new("RGB", (128, 128), (128, 128, 128))
    plain_search, plain_complete = align.find_faces, align.complete_frame

    def as_before(switch: bool) -> None:
        align.find_faces = (lambda photo, margin=0.0, **search: [] if margin else plain_search(photo, **search)) if switch else plain_search
        align.complete_frame = (lambda photo, matrix: (warp(photo, matrix, CELEBA_SIZE), None)) if switch else plain_complete

    for name, photos in (("roomy 1–2 MP photo", roomy), ("1.5 MP photo without a face", [faceless]), ("blank 128-px photo", [blank])):
        seconds = {False: [], True: []}
        for _ in range(repeats):
            for switch in (False, True):
                as_before(switch)
                for photo in photos:
                    start = time.perf_counter()
                    align_face(photo)
                    seconds[switch].append(time.perf_counter() - start)
        as_before(False)
        print(f"{name}: align_face {1000 * np.median(seconds[False]):.1f} ms, as before {1000 * np.median(seconds[True]):.1f} ms "
              f"(medians of {len(seconds[False])})")


def report(enlarge: float, figures: dict, faces: int) -> None:
    print(f"\n## Headshots enlarged {enlarge}× ({faces} val faces)")
    for name, f in figures["detection"].items():
        print(f"search {name:14s}: found {f['found']:.1%}; landmark error median {f['error_median']:.3f}, "
              f"mean {f['error_mean']:.3f} eye distances; {f['ms_median']:.0f} ms median")
    print("| frame filled by | reconstruction PSNR inside the box: against CelebA's crop | against its input "
          "| over the whole crop | input's PSNR, whole crop | dlib same person |\n|---|---|---|---|---|---|")
    for name, f in figures["fills"].items():
        print(f"| {name} | {f['inside']:.2f} dB | {f['inside_own']:.2f} dB | {f['whole']:.2f} dB | {f['input_whole']:.2f} dB "
              f"| {f['same_person']:.1%} |")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/celeba")
    parser.add_argument("--faces", type=int, default=200)
    parser.add_argument("--model", default=None, help="weights (default: the app's)")
    parser.add_argument("--png", default="", help="a sheet of the first 16 faces, inputs and reconstructions per fill (CelebA: keep it out of the repo)")
    parser.add_argument("--examples", default="", help="write the sheet of the example photos cut close here, and stop")
    parser.add_argument("--timing", type=int, default=0, metavar="REPEATS", help="time photos that need neither, and stop")
    parser.add_argument("--sizes", type=float, nargs="+", default=list(ENLARGEMENTS), help="enlargements of the box")
    parser.add_argument("--no-identity", action="store_true", help="skip dlib's same-person test (most of the time)")
    args = parser.parse_args(argv)
    model = load_model(args.model).eval()
    if args.examples:
        return example_sheet(model, args.examples)
    if args.timing:
        return timing(args.timing)
    val = find_splits(args.data)["val"]
    files = val[len(val) // args.faces // 2:: max(1, len(val) // args.faces)][: args.faces]
    figures = {}
    for enlarge in args.sizes:
        sheet = [] if args.png else None
        figures[enlarge] = measure(files, model, enlarge, sheet, identity=not args.no_identity)
        report(enlarge, figures[enlarge], len(files))
        if sheet:
            rows = [t for _, x, y in sheet for t in (x, y)]
            path = args.png.replace(".png", f"_{enlarge}x.png")
            to_grid(torch.cat(rows), columns=16).save(path)
            print(f"wrote {path}: per fill two rows (input, reconstruction): " + "; ".join(n for n, *_ in sheet))
    return figures


if __name__ == "__main__":
    main()
