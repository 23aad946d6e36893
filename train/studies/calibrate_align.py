"""Measure CelebA's landmark template, which facevae.align warps every face onto.

    python -m train.studies.calibrate_align --data ../shared/data/celeba [--images 3000] [--out FILE]

On aligned training images (every k-th, `--images` of them): first dlib's HOG detector, whose
mean box in CelebA's 178×218 frame is where align_face places the landmarks of a face already
warped into that frame; then dlib's 68 landmarks placed from that mean box, averaged. Writes
facevae/celeba_landmarks.json (or --out) and prints the five points align_face fits to.

Reproduces: docs/alignment.md, "The template": facevae/celeba_landmarks.json (3,000 training
images, 2,910 faces found).
"""
import argparse
import json

import dlib
import numpy as np
from PIL import Image

from facevae.align import TEMPLATE_FILE, five_points, place_landmarks
from facevae.data import find_splits


def detector_box(detector, image: np.ndarray) -> list[float] | None:
    """The most confident HOG box (left, top, right, bottom), upsampled once: CelebA's faces
    are about 90 px wide and HOG's window is 80."""
    boxes, scores, _ = detector.run(image, 1, 0.0)
    if not boxes:
        return None
    box = boxes[int(np.argmax(scores))]
    return [box.left(), box.top(), box.right(), box.bottom()]


def calibrate(files) -> dict:
    detector = dlib.get_frontal_face_detector()
    images = [np.asarray(Image.open(path).convert("RGB")) for path in files]
    boxes = {i: box for i, image in enumerate(images) if (box := detector_box(detector, image)) is not None}
    mean_box = np.mean(list(boxes.values()), axis=0)
    placed = dlib.rectangle(*(round(v) for v in mean_box))
    landmarks = np.mean([place_landmarks(images[i], placed) for i in boxes], axis=0)
    return {"images": len(files), "faces_found": len(boxes), "box": np.round(mean_box, 2).tolist(),
            "landmarks": np.round(landmarks, 2).tolist()}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--images", type=int, default=3000)
    parser.add_argument("--out", default=str(TEMPLATE_FILE))
    args = parser.parse_args(argv)
    train_files = find_splits(args.data)["train"]
    files = train_files[:: max(1, len(train_files) // args.images)][: args.images]
    result = calibrate(files)
    with open(args.out, "w") as f:
        json.dump(result, f)
        f.write("\n")
    names = ["left eye", "right eye", "nose tip", "left mouth corner", "right mouth corner"]
    points = ", ".join(f"{name} ({x:.1f}, {y:.1f})" for name, (x, y) in zip(names, five_points(np.array(result["landmarks"]))))
    print(f"{result['faces_found']} of {result['images']} faces found; box {result['box']}; {points}; wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
