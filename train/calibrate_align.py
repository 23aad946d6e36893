"""Measure how facevae.align's face detector frames CelebA faces, to calibrate align_face.

    python -m train.calibrate_align --data ../shared/data/celeba [--images 706]

For each aligned training image, the largest detected box (x, y, w) is compared with
crop_celeba's square (centre (89, 109), side 178); prints the medians that align.py uses.
"""
import argparse

import numpy as np
from PIL import Image

from facevae.align import detect_faces
from facevae.data import find_splits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--images", type=int, default=750)
    args = parser.parse_args()
    files = find_splits(args.data)["train"][: 2 * args.images: 2]
    rows = []
    for path in files:
        boxes = detect_faces(Image.open(path).convert("RGB"))
        if boxes:
            x, y, w, h = boxes[0]
            rows.append(((89 - (x + w / 2)) / w, (109 - (y + h / 2)) / w, 178 / w))
    shift_x, shift_y, side = np.median(np.array(rows), axis=0)
    print(f"{len(rows)} of {len(files)} faces detected; per box width: "
          f"centre shift x {shift_x:+.3f}, y {shift_y:+.3f}; crop side {side:.3f}")


if __name__ == "__main__":
    main()
