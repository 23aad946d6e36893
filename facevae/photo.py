"""Photos in, RGB images out, safely: size and pixel limits checked before decoding, EXIF
orientation applied, the first frame of an animation, any mode converted to RGB, big JPEGs
decoded at reduced size, and iPhone (HEIC/HEIF) and AVIF photos opened. Every refusal is a
PhotoError whose message is meant for the person who sent the file."""
from __future__ import annotations

import io
import os
from pathlib import Path

from PIL import Image, ImageSequence, UnidentifiedImageError
from pillow_heif import register_heif_opener

from .preprocess import to_rgb, upright

MAX_BYTES = 20 * 1024 * 1024
MAX_PIXELS = 64_000_000  # a 20000×20000 "decompression bomb" is refused before decoding
MIN_SIDE = 32
DECODE_SIDE = 1000  # JPEGs are decoded at the smallest 1/2, 1/4, 1/8 scale whose long side is still this big
register_heif_opener()  # iPhone photos (HEIC/HEIF); Pillow itself reads AVIF, JPEG, PNG, WebP, ...


class PhotoError(ValueError):
    """A photo that cannot be used, with a message meant for the person who sent it."""


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
