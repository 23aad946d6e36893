"""Diverse faces for training (issue 47): UTKFace's labels, its held-out part, its portraits
aligned and cached once with how much of each pixel the photo covers, and the training loss
that leaves the completed frame out. The portraits here are chips cut close around the
example photos' faces, as UTKFace cuts its own (no dataset image is stored in the tests)."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from facevae.align import find_faces, warp
from facevae.preprocess import CELEBA_SIZE
from train.train import Objective, training_images, training_step
from train.utkface import RACES, Portrait, age_band, aligned, read_portraits, split

EXAMPLES = Path(__file__).resolve().parent.parent / "assets" / "examples"
CHIP_BOX = (34, 60, 144, 170)  # in CelebA's 178×218 frame: brow to chin, cheek to cheek, as UTKFace's chips


def chip(name: str) -> Image.Image:
    """A 200×200 portrait cut close around an example photo's face."""
    photo = np.asarray(Image.open(EXAMPLES / name).convert("RGB"))
    framed = Image.fromarray(warp(photo, find_faces(photo)[0].matrix, CELEBA_SIZE))
    return framed.crop(CHIP_BOX).resize((200, 200), Image.Resampling.LANCZOS)


@pytest.fixture(scope="module")
def utkface(tmp_path_factory) -> Path:
    """A UTKFace-like folder: two real chips, a picture of no face, a broken file, and label rows
    of which three do not parse and one names a missing file."""
    root = tmp_path_factory.mktemp("utkface")
    (root / "images").mkdir()
    chip("astronaut.jpg").save(root / "images" / "00000.jpg", quality=95)
    chip("grace_hopper.jpg").save(root / "images" / "00001.jpg", quality=95)
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8)).save(root / "images" / "00002.jpg")
    (root / "images" / "00003.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    (root / "labels.csv").write_text("file,age,gender,race\n"
                                     "00000.jpg,45,0,0\n00001.jpg,79,1,0\n00002.jpg,30,1,1\n00003.jpg,8,0,2\n"
                                     "00004.jpg,twelve,0,1\n00005.jpg,20,0,9\n00006.jpg,20\n00007.jpg,33,1,3\n")
    return root


def test_labels_are_parsed_and_bad_rows_skipped_with_a_count(utkface, capsys):
    portraits = read_portraits(utkface)
    assert [p.file.name for p in portraits] == ["00000.jpg", "00001.jpg", "00002.jpg", "00003.jpg"]
    assert portraits[1] == Portrait(utkface / "images" / "00001.jpg", 79, 1, 0)
    assert portraits[1].groups == {"race": "White", "age": "60+", "gender": "female"}
    message = capsys.readouterr().err
    assert "skipped 4 of 8 label rows" in message
    assert "line 6" in message and "no file 00007.jpg" in message


def test_age_bands_cover_every_age_once():
    assert [age_band(a) for a in (0, 12, 13, 19, 20, 39, 40, 59, 60, 116)] == \
        ["0-12", "0-12", "13-19", "13-19", "20-39", "20-39", "40-59", "40-59", "60+", "60+"]


def test_the_held_out_part_is_balanced_fixed_and_never_in_training():
    portraits = [Portrait(Path(f"{i:05d}.jpg"), 20 + i % 50, i % 2, (i // 2) % len(RACES)) for i in range(400)]
    parts = split(portraits, per_group=6)
    assert len(parts["val"]) == 60 and len(parts["train"]) == 340
    assert not set(parts["val"]) & set(parts["train"])
    for race in range(len(RACES)):
        for gender in (0, 1):
            assert sum(p.race == race and p.gender == gender for p in parts["val"]) == 6
    assert split(portraits, per_group=6) == parts


def test_portraits_are_aligned_with_their_coverage_and_cached_once(utkface, tmp_path, caplog):
    portraits = read_portraits(utkface)
    with caplog.at_level(logging.WARNING):
        part = aligned(portraits, cache_dir=tmp_path, workers=1)
    assert [p.file.name for p in part.portraits] == ["00000.jpg", "00001.jpg"]
    assert part.images.skipped == 2 and "skipped 2 of 4" in caplog.text
    assert "no face found" in caplog.text and "00003.jpg" in caplog.text
    assert part.images.array.shape == (2, 128, 128, 3) and part.images.coverage.shape == (2, 128, 128)
    coverage = np.asarray(part.images.coverage)
    assert (coverage[:, 60:70, 60:70] == 255).all()  # the face itself: all photo
    assert (coverage[:, :8] == 0).all()  # above the brows' chip edge: completed, beyond the photo
    made = sorted(p.stat().st_mtime_ns for p in tmp_path.iterdir())
    again = aligned(portraits, cache_dir=tmp_path, workers=1)
    assert np.array_equal(again.images.array, part.images.array)
    assert sorted(p.stat().st_mtime_ns for p in tmp_path.iterdir()) == made  # reused, not aligned again


class FixedOutput(torch.nn.Module):
    """A stand-in model whose reconstruction does not depend on its input: only the target moves."""

    def __init__(self, size: int = 16):
        super().__init__()
        self.logits = torch.nn.Parameter(torch.zeros(1, 3, size, size))

    def forward(self, x):
        return self.logits.expand(len(x), -1, -1, -1), torch.zeros(len(x), 4), torch.zeros(len(x), 4)


def reconstruction_term(batch: np.ndarray) -> float:
    model = FixedOutput()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    return training_step(model, optimizer, torch.from_numpy(batch), Objective("gaussian", 1.0), 1.0).reconstruction.item()


def test_a_pixel_outside_the_photo_adds_nothing_to_the_loss():
    rng = np.random.default_rng(0)
    batch = np.concatenate([rng.integers(0, 256, (2, 16, 16, 3), dtype=np.uint8), np.full((2, 16, 16, 1), 255, np.uint8)], 3)
    batch[:, :, :5, 3] = 0  # the left columns lie beyond the photo
    changed = batch.copy()
    changed[:, :, :5, :3] = 255 - changed[:, :, :5, :3]
    assert reconstruction_term(changed) == pytest.approx(reconstruction_term(batch), rel=1e-6)
    covered = changed.copy()
    covered[..., 3] = 255  # the same change inside the photo counts
    assert reconstruction_term(covered) != pytest.approx(reconstruction_term(batch), rel=1e-3)


def test_training_images_carry_the_coverage_and_repeat_the_diverse_faces():
    from facevae.data import CachedImages

    main = CachedImages(np.full((3, 8, 8, 3), 10, np.uint8), ["a", "b", "c"], 0)
    diverse = CachedImages(np.full((2, 8, 8, 3), 20, np.uint8), ["d", "e"], 0, np.full((2, 8, 8), 7, np.uint8))
    images = training_images(main, diverse, repeat=2)
    assert images.shape == (7, 8, 8, 4)
    assert (images[:3, ..., 3] == 255).all() and (images[3:, ..., 3] == 7).all() and (images[3:, ..., 0] == 20).all()
    assert training_images(main).shape == (3, 8, 8, 3)
