"""Shared fixtures: small synthetic images, made here (no real faces are stored in tests)."""
from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import numpy as np
import pytest
from PIL import Image, ImageDraw


def synthetic_face(seed: int, size=(178, 218)) -> Image.Image:
    """A smooth face-like picture: skin-coloured ellipse, eyes and mouth on a gradient."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    background = rng.uniform(40, 200, 3)
    arr = np.empty((h, w, 3), np.float32)
    for c in range(3):
        arr[..., c] = background[c] + 40 * (yy / h) * (1 if c % 2 else -1)
    img = Image.fromarray(arr.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    skin = tuple(int(v) for v in rng.uniform([150, 100, 80], [240, 190, 160]))
    cx, cy = w / 2 + rng.uniform(-6, 6), h * 0.55 + rng.uniform(-6, 6)
    rx, ry = w * rng.uniform(0.25, 0.32), h * rng.uniform(0.28, 0.34)
    draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=skin)
    for side in (-1, 1):
        ex = cx + side * rx * 0.45
        draw.ellipse([ex - 8, cy - ry * 0.3 - 5, ex + 8, cy - ry * 0.3 + 5], fill=(40, 30, 30))
    draw.rectangle([cx - rx * 0.35, cy + ry * 0.45, cx + rx * 0.35, cy + ry * 0.52], fill=(150, 50, 60))
    return img


@pytest.fixture(scope="session")
def faces() -> list[Image.Image]:
    return [synthetic_face(i) for i in range(16)]


@pytest.fixture(scope="session")
def celeba_dir(tmp_path_factory):
    """A tiny folder in CelebA's layout: 40 train, 10 val, 5 test images."""
    root = tmp_path_factory.mktemp("celeba")
    (root / "img_align_celeba").mkdir()
    lines = []
    for i in range(55):
        name = f"{i + 1:06d}.jpg"
        synthetic_face(i).save(root / "img_align_celeba" / name, quality=95)
        lines.append(f"{name} {0 if i < 40 else 1 if i < 50 else 2}")
    (root / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEVAE_CACHE", str(tmp_path / "cache"))
