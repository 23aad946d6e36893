"""Selfies in, model-ready faces out: safe decoding of any photo, face detection, and a crop
with the same framing as crop_celeba gives for CelebA's aligned images.

The detector is OpenCV's frontal-face Haar cascade, whose model file ships inside the
opencv-python-headless wheel (no download). The crop is calibrated on CelebA by
`python -m train.calibrate_align`: on aligned training images, the cascade's box (x, y, w)
relates to crop_celeba's 178×178 square by centre = box centre + (0, -0.144·w) and
side = 1.695·w (medians over the 701 of 750 images where a face was found).
"""
from __future__ import annotations

import io
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageSequence, UnidentifiedImageError
from pillow_heif import register_heif_opener

from .preprocess import IMAGE_SIZE, celeba_square, to_rgb, upright

CROP_SIDE_PER_BOX = 1.695
CROP_SHIFT_Y_PER_BOX = -0.144
MIN_CONFIDENCE = 1.5  # the cascade's level weight; 99% of CelebA's faces score above it
MAX_BYTES = 20 * 1024 * 1024
MAX_PIXELS = 64_000_000  # a 20000×20000 "decompression bomb" is refused before decoding
MIN_SIDE = 32
register_heif_opener()  # iPhone photos (HEIC/HEIF); Pillow itself reads AVIF, JPEG, PNG, WebP, ...
# The coarse search runs on a small copy of the photo, (long side, smallest face) in pixels: a
# 320-px copy finds faces down to 1/13 of the photo's long side in a quarter of the time of a
# 640-px one, which runs only when the first found none (faces down to 1/20).
COARSE_SEARCHES = ((320, 24), (640, 32))
REFINE_WIDTH = 96  # the canonical face width of the second detection pass
DECODE_SIDE = 1000  # JPEGs are decoded at the smallest 1/2, 1/4, 1/8 scale whose long side is still this big

_CASCADE_FILE = os.path.join(cv2.data.haarcascades, "haarcascade_frontalface_default.xml")
_per_thread = threading.local()


def _cascade() -> cv2.CascadeClassifier:
    """This thread's detector: a CascadeClassifier must not be used by two threads at once
    (the app serves requests from several)."""
    if not hasattr(_per_thread, "cascade"):
        _per_thread.cascade = cv2.CascadeClassifier(_CASCADE_FILE)
    return _per_thread.cascade


class PhotoError(ValueError):
    """A photo that cannot be used, with a message meant for the person who sent it."""


@dataclass
class FaceInfo:
    found: bool  # False: no face was detected and a centre crop was used
    faces: list[tuple[int, int, int, int]]  # detected boxes (x, y, w, h) in the photo, largest first
    chosen: int | None  # index into faces
    crop_box: tuple[float, float, float, float]  # the square taken from the photo (left, top, right, bottom)
    photo_size: tuple[int, int]
    notes: list[str] = field(default_factory=list)  # things worth telling the user

    @property
    def message(self) -> str:
        if self.found:
            head = f"Found {len(self.faces)} face{'s' if len(self.faces) > 1 else ''}; using face {self.chosen + 1}."
        else:
            head = "No face found: used a centre crop, so the result may not look like a face."
        return " ".join([head, *self.notes])


def load_photo(source, max_bytes: int = MAX_BYTES, max_pixels: int = MAX_PIXELS) -> tuple[Image.Image, list[str]]:
    """Open an uploaded photo safely: path, bytes, file object or PIL image -> (RGB image, notes).

    Refuses, with a PhotoError, files that are too big, not images, corrupt, truncated, too small
    or too many pixels (checked from the header, before decoding). Applies EXIF orientation,
    takes the first frame of an animation, converts any mode to RGB, and decodes big JPEGs at
    reduced size (Pillow's draft) to save time and memory."""
    notes: list[str] = []
    if isinstance(source, Image.Image):
        img = source
    else:
        if isinstance(source, (str, Path)):
            size = os.path.getsize(source)
            if size > max_bytes:
                raise PhotoError(f"The file is {size / 2**20:.0f} MB; the limit is {max_bytes / 2**20:.0f} MB.")
        elif isinstance(source, (bytes, bytearray)):
            if len(source) > max_bytes:
                raise PhotoError(f"The file is {len(source) / 2**20:.0f} MB; the limit is {max_bytes / 2**20:.0f} MB.")
            source = io.BytesIO(source)
        try:
            img = Image.open(source)
        except UnidentifiedImageError:
            raise PhotoError("This file is not an image Pillow can read (try a JPEG, PNG or WebP photo).") from None
        except Image.DecompressionBombError:
            raise PhotoError("This image has far too many pixels to be a photo; it was not opened.") from None
        except OSError as error:
            raise PhotoError(f"The image could not be read: {error}.") from None
    width, height = img.size
    if width * height > max_pixels:
        raise PhotoError(f"The image is {width}×{height} pixels; the limit is {max_pixels / 1e6:.0f} megapixels.")
    if min(width, height) < MIN_SIDE:
        raise PhotoError(f"The image is only {width}×{height} pixels; a face needs at least {MIN_SIDE}×{MIN_SIDE}.")
    if getattr(img, "n_frames", 1) > 1:
        notes.append("This is an animation: its first frame was used.")
        img = ImageSequence.Iterator(img)[0]
    try:
        if img.format == "JPEG":
            img.draft("RGB", draft_size(img.size))
        img = to_rgb(upright(img))
        img.load()
    except (OSError, SyntaxError, ValueError) as error:
        raise PhotoError(f"The image is damaged or truncated and could not be decoded ({error}).") from None
    return img, notes


def draft_size(size: tuple[int, int], long_side: int = DECODE_SIDE) -> tuple[int, int]:
    """The size to ask Pillow's draft for: it picks the smallest scale at which both sides are
    still at least this big, so asking for a square would keep a 4:3 photo at full size."""
    shrink = max(1.0, max(size) / long_side)
    return max(1, int(size[0] / shrink)), max(1, int(size[1] / shrink))


def detect_faces(img: Image.Image) -> list[tuple[int, int, int, int]]:
    """Face boxes (x, y, w, h) in img's pixels, largest first.

    Two passes: a coarse search on a small copy (see COARSE_SEARCHES), then each face again in
    a crop resampled so that it is REFINE_WIDTH wide. The cascade's box sizes come in steps of
    its scale factor, so a face seen at another size would be framed a few percent differently;
    at one canonical size every photo of the same face gives the same box."""
    grey = img.convert("L")
    for side, min_face in COARSE_SEARCHES:
        scale = min(1.0, side / max(img.size))
        small = grey.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.BILINEAR) if scale < 1 else grey
        boxes = detect_boxes(np.asarray(small), size_range=(min_face, None))
        if boxes or scale == 1:
            break
    faces = [refine(grey, tuple(v / scale for v in box)) for box in boxes]
    return sorted(faces, key=lambda b: b[2] * b[3], reverse=True)


def refine(grey: Image.Image, box) -> tuple[int, int, int, int]:
    """The box found again at the canonical size, in grey's pixels (the coarse box if lost)."""
    x, y, w, h = (int(round(v)) for v in box)
    # about 2w × 2w around the face: room for the largest size searched (1.25w); crop pads with black
    margin = w // 2
    region = (x - margin, y - margin, x + w + margin, y + w + margin)
    zoom = 2 * REFINE_WIDTH / (w + 2 * margin)
    crop = grey.crop(region).resize((2 * REFINE_WIDTH, 2 * REFINE_WIDTH), Image.Resampling.BILINEAR)
    found = detect_boxes(np.asarray(crop), scale_factor=1.02, size_range=(0.8 * REFINE_WIDTH, 1.25 * REFINE_WIDTH))
    if not found:
        return tuple(int(round(v)) for v in box)
    centre = REFINE_WIDTH
    fx, fy, fw, fh = min(found, key=lambda b: abs(b[0] + b[2] / 2 - centre) + abs(b[1] + b[3] / 2 - centre))
    return tuple(int(round(v)) for v in (region[0] + fx / zoom, region[1] + fy / zoom, fw / zoom, fh / zoom))


def detect_boxes(grey: np.ndarray, scale_factor: float = 1.1, size_range=(32, None)) -> list[tuple[int, int, int, int]]:
    """The cascade on a uint8 grayscale array: confident boxes, largest first."""
    low, high = size_range
    boxes, _, weights = _cascade().detectMultiScale3(
        grey, scaleFactor=scale_factor, minNeighbors=5, minSize=(int(low), int(low)),
        maxSize=(int(high), int(high)) if high else (0, 0), outputRejectLevels=True)
    confident = [tuple(int(v) for v in box) for box, weight in zip(boxes, np.ravel(weights)) if weight >= MIN_CONFIDENCE]
    return sorted(confident, key=lambda b: b[2] * b[3], reverse=True)


def face_crop_box(box: tuple[int, int, int, int]) -> tuple[float, float, float, float]:
    """The CelebA-framed square for a detected face box."""
    x, y, w, h = box
    side = CROP_SIDE_PER_BOX * w
    cx, cy = x + w / 2, y + h / 2 + CROP_SHIFT_Y_PER_BOX * w
    return cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2


def crop_square(img: Image.Image, box, size: int = IMAGE_SIZE) -> Image.Image:
    """Resample the square box (which may reach past the photo's edges) to size×size; the
    parts outside the photo repeat its edge pixels, as a face cut off by the frame would."""
    left, top, right, bottom = box
    outside = max(-left, -top, right - img.width, bottom - img.height)
    if outside > 0:
        pad = int(outside) + 1
        padded = np.pad(np.asarray(img), ((pad, pad), (pad, pad), (0, 0)), mode="edge")
        img, box = Image.fromarray(padded), (left + pad, top + pad, right + pad, bottom + pad)
    return img.resize((size, size), Image.Resampling.BILINEAR, box=box, reducing_gap=3.0)


def align_face(source, face_index: int | None = None, size: int = IMAGE_SIZE) -> tuple[Image.Image, FaceInfo]:
    """Any photo -> (size×size RGB face framed as the model was trained, FaceInfo).

    Several faces: the largest unless face_index picks another. No face: a centre crop,
    reported in FaceInfo. Raises PhotoError for unusable files (see load_photo)."""
    img, notes = load_photo(source)
    faces = detect_faces(img)
    if not faces:
        box = celeba_square(*img.size)
        return crop_square(img, box, size), FaceInfo(False, [], None, box, img.size, notes)
    chosen = face_index if face_index is not None and 0 <= face_index < len(faces) else 0
    if face_index is not None and chosen != face_index:
        notes.append(f"There is no face {face_index + 1}; used the largest.")
    box = face_crop_box(faces[chosen])
    return crop_square(img, box, size), FaceInfo(True, faces, chosen, box, img.size, notes)


def draw_detections(img: Image.Image, info: FaceInfo, max_side: int = 320) -> Image.Image:
    """A thumbnail of the photo with the detected faces outlined and the chosen crop in green."""
    scale = min(1.0, max_side / max(img.size))
    thumb = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), reducing_gap=2.0)
    draw = ImageDraw.Draw(thumb)
    for i, (x, y, w, h) in enumerate(info.faces):
        if i != info.chosen:
            draw.rectangle([x * scale, y * scale, (x + w) * scale, (y + h) * scale], outline=(255, 200, 0), width=2)
    draw.rectangle([v * scale for v in info.crop_box], outline=(0, 220, 0), width=3)
    return thumb
