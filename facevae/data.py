"""Training data: find the images of a split, decode them once into a uint8 cache, reuse it.

Two CPU cores cannot afford to decode and resize every JPEG every epoch, so each split is
decoded once into an N×H×W×3 uint8 .npy file, keyed by the file list and the preprocessing, and
memory-mapped afterwards; encode_all gives the posterior means of such an array (the latent
statistics, the attribute directions and the studies fit on them).

Two preprocessings: "crop" (crop_celeba: a CelebA-aligned image's training framing) and "align"
(align_face: any portrait found, aligned and brought to that framing, the frame completed beyond
the photo). An aligned cache also keeps how much of each pixel the photo covers (`coverage`), so
that training can leave the completed fill out of its loss; a portrait with no face found is
skipped, as a centre crop would teach a badly framed face.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import random
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .preprocess import IMAGE_SIZE, crop_celeba, images_to_tensor, upright

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}
CELEBA_PARTITIONS = {"0": "train", "1": "val", "2": "test"}
# Bump when crop_celeba, align_face or the cache layout changes, so old caches are not reused.
PREPROCESS_VERSION = 1
PREPROCESSINGS = ("crop", "align")


def find_splits(root: str | Path, val_fraction: float = 0.1, seed: int = 0) -> dict[str, list[Path]]:
    """{"train": [...], "val": [...], "test": [...]} image paths under root.

    A CelebA layout (img_align_celeba/ + list_eval_partition.txt) uses the official partition;
    any other folder is searched recursively for jpg/png/webp and split by a fixed seed."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data folder not found: {root}")
    partition = root / "list_eval_partition.txt"
    if partition.is_file() and (root / "img_align_celeba").is_dir():
        return _celeba_splits(root, partition)
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise FileNotFoundError(f"no .jpg, .png or .webp images under {root}")
    random.Random(seed).shuffle(files)
    n_val = round(len(files) * val_fraction) if len(files) > 1 else 0
    n_val = max(n_val, 1) if len(files) > 1 and val_fraction > 0 else n_val
    return {"train": sorted(files[n_val:]), "val": sorted(files[:n_val]), "test": []}


def _celeba_splits(root: Path, partition: Path) -> dict[str, list[Path]]:
    splits: dict[str, list[Path]] = {name: [] for name in CELEBA_PARTITIONS.values()}
    present = set(os.listdir(root / "img_align_celeba"))
    for line in partition.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in present and parts[1] in CELEBA_PARTITIONS:
            splits[CELEBA_PARTITIONS[parts[1]]].append(root / "img_align_celeba" / parts[0])
    return {name: sorted(files) for name, files in splits.items()}


@dataclass
class CachedImages:
    """Decoded training faces: `array` is N×H×W×3 uint8, one row per entry of `files`;
    `coverage` (aligned caches only) N×H×W uint8, 255 where the photo covers the pixel in full,
    0 where the frame was completed beyond it."""

    array: np.ndarray
    files: list[str]
    skipped: int
    coverage: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.array)


def default_cache_dir() -> Path:
    return Path(os.environ.get("FACEVAE_CACHE", Path.home() / ".cache" / "facevae"))


def cache_images(files: list[Path], size: int = IMAGE_SIZE, cache_dir: str | Path | None = None,
                 workers: int | None = None, preprocessing: str = "crop") -> CachedImages:
    """Decode `files` through crop_celeba ("crop") or align_face ("align") into a uint8 cache
    (or reuse the cache already made for the same files and preprocessing). Unreadable files,
    and with "align" portraits with no face found, are skipped with a warning and counted."""
    if preprocessing not in PREPROCESSINGS:
        raise ValueError(f"preprocessing must be one of {PREPROCESSINGS}, got {preprocessing!r}")
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    key = _cache_key(files, size, preprocessing)
    array_path, index_path = cache_dir / f"{key}.npy", cache_dir / f"{key}.json"
    if not (array_path.is_file() and index_path.is_file()):
        _build_cache(files, size, array_path, index_path, workers, preprocessing)
    index = json.loads(index_path.read_text())
    array = np.load(array_path, mmap_mode="r")[: len(index["files"])]
    if preprocessing == "crop":
        return CachedImages(array, index["files"], index["skipped"])
    return CachedImages(array[..., :3], index["files"], index["skipped"], array[..., 3])


@torch.no_grad()
def encode_all(model, images: np.ndarray, batch_size: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior means and log-variances of N×H×W×3 uint8 images (a CachedImages array)."""
    mus, logvars = [], []
    for start in range(0, len(images), batch_size):
        mu, logvar = model.encode(images_to_tensor(images[start:start + batch_size]))
        mus.append(mu)
        logvars.append(logvar)
    return torch.cat(mus), torch.cat(logvars)


def _cache_key(files: list[Path], size: int, preprocessing: str) -> str:
    # "crop" keys as before the aligned caches existed, so that existing caches are reused
    named = "" if preprocessing == "crop" else f" {preprocessing}"
    digest = hashlib.sha1(f"v{PREPROCESS_VERSION} size={size}{named}\n".encode())
    for f in files:
        digest.update(f"{Path(f).resolve()}:{os.path.getsize(f)}\n".encode())
    return digest.hexdigest()[:20]


def _build_cache(files, size, array_path: Path, index_path: Path, workers: int | None, preprocessing: str) -> None:
    array_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = array_path.with_suffix(f".tmp{os.getpid()}.npy")
    channels = 3 if preprocessing == "crop" else 4  # aligned: the photo's coverage as a fourth channel
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(max(len(files), 1), size, size, channels))
    kept, failures = [], []
    workers = workers or os.cpu_count() or 1
    jobs = [(str(f), size) for f in files]
    decode = _decode if preprocessing == "crop" else _align
    with get_context("spawn").Pool(workers) if workers > 1 and len(files) > 64 else _InlinePool() as pool:
        for path, face, error in pool.imap(decode, jobs, chunksize=16 if preprocessing == "align" else 64):
            if error:
                failures.append(f"{path} ({error})")
            else:
                out[len(kept)] = face
                kept.append(path)
    out.flush()
    del out
    if failures:
        log.warning("skipped %d of %d images (unreadable, or no face found): %s%s", len(failures), len(files),
                    "; ".join(failures[:5]), " ..." if len(failures) > 5 else "")
    os.replace(tmp, array_path)
    index_tmp = index_path.with_suffix(f".tmp{os.getpid()}")
    index_tmp.write_text(json.dumps({"files": kept, "skipped": len(failures), "failures": failures}))
    os.replace(index_tmp, index_path)


def _decode(job: tuple[str, int]) -> tuple[str, np.ndarray | None, str | None]:
    path, size = job
    try:
        with Image.open(path) as img:
            img.draft("RGB", (size * 2, size * 2))  # JPEG: decode at reduced scale, still > 2× the target
            return path, np.asarray(crop_celeba(upright(img), size)), None
    except Exception as error:  # a corrupt or unsupported file must never stop a run
        return path, None, f"{type(error).__name__}: {error}"


def _align(job: tuple[str, int]) -> tuple[str, np.ndarray | None, str | None]:
    """A portrait through align_face: H×W×4, RGB and how much of each pixel the photo covers."""
    from .align import align_face  # dlib, loaded only where a cache is aligned

    path, size = job
    try:
        face, info = align_face(path, size=size)
    except Exception as error:  # a corrupt or unsupported file must never stop a run
        return path, None, f"{type(error).__name__}: {error}"
    if not info.found:
        return path, None, "no face found"
    coverage = np.full((size, size), 255, np.uint8) if info.photo_area is None else \
        (info.photo_area * 255).round().astype(np.uint8)
    return path, np.dstack([np.asarray(face), coverage]), None


class _InlinePool:
    """Pool stand-in for small jobs, where starting worker processes costs more than it saves."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    @staticmethod
    def imap(fn, jobs, chunksize=1):
        return map(fn, jobs)
