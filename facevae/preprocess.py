"""The one place that defines how an image becomes model input, and back.

Training (train/) and the app both go through crop_celeba/to_tensor, so the model always
sees the framing it was trained on.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageOps

IMAGE_SIZE = 128
CELEBA_SIZE = (178, 218)  # width, height of CelebA's aligned images


def celeba_square(width: int, height: int) -> tuple[int, int, int, int]:
    """The centred square crop box (left, top, right, bottom), rounded as torchvision's
    CenterCrop rounds it: rows 20 to 197 of a 178×218 CelebA image."""
    side = min(width, height)
    left = int(round((width - side) / 2.0))
    top = int(round((height - side) / 2.0))
    return left, top, left + side, top + side


def crop_celeba(img: Image.Image, size: int = IMAGE_SIZE) -> Image.Image:
    """A CelebA-aligned image -> the size×size RGB training face (centred square, antialiased)."""
    img = to_rgb(img)
    return img.resize((size, size), Image.Resampling.BILINEAR, box=celeba_square(*img.size), reducing_gap=None)


def to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode (RGBA, LA, P, CMYK, I;16, L, ...) -> RGB; transparency goes on white."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit grayscale: scale to 8 bits rather than clipping at 255.
        arr = np.asarray(img, dtype=np.float32)
        peak = 65535.0 if arr.max() > 255 else 255.0
        return Image.fromarray((arr * (255.0 / peak)).round().astype(np.uint8), "L").convert("RGB")
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, img.convert("RGBA")).convert("RGB")
    return img.convert("RGB")


def upright(img: Image.Image) -> Image.Image:
    """Apply the EXIF orientation, so a phone photo is the right way up."""
    return ImageOps.exif_transpose(img)


def to_tensor(images: Image.Image | Sequence[Image.Image]) -> torch.Tensor:
    """PIL image(s) -> N×3×H×W float32 in [0, 1]."""
    if isinstance(images, Image.Image):
        images = [images]
    arrays = np.stack([np.asarray(to_rgb(img)) for img in images])
    return uint8_to_tensor(torch.from_numpy(arrays))


def uint8_to_tensor(batch: torch.Tensor) -> torch.Tensor:
    """N×H×W×3 uint8 -> N×3×H×W float32 in [0, 1]. The result is a permuted view, which is
    torch's channels_last layout: convolutions on CPU run faster on it."""
    return batch.permute(0, 3, 1, 2).float().div_(255.0)


def images_to_tensor(array) -> torch.Tensor:
    """A slice of a uint8 image cache (N×H×W×3, possibly a read-only memmap) -> N×3×H×W float."""
    return uint8_to_tensor(torch.from_numpy(np.array(array)))


def to_image(tensor: torch.Tensor) -> Image.Image:
    """3×H×W (or 1×3×H×W) float in [0, 1] -> PIL RGB image."""
    if tensor.dim() == 4:
        if tensor.shape[0] != 1:
            raise ValueError(f"to_image takes one image, got a batch of {tensor.shape[0]}")
        tensor = tensor[0]
    arr = tensor.detach().float().clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(arr, "RGB")


def to_grid(images: torch.Tensor, columns: int = 8, padding: int = 2) -> Image.Image:
    """N×3×H×W in [0, 1] -> one PIL image: a grid with `columns` images a row on white, the
    layout of torchvision's make_grid (which is not used: importing torchvision costs the app
    about two seconds)."""
    n, channels, height, width = images.shape
    columns = min(columns, n)
    rows = -(-n // columns)
    canvas = images.new_ones(channels, padding + rows * (height + padding), padding + columns * (width + padding))
    for i, image in enumerate(images.clamp(0, 1)):
        top, left = padding + (i // columns) * (height + padding), padding + (i % columns) * (width + padding)
        canvas[:, top:top + height, left:left + width] = image
    return to_image(canvas)
