import logging

import numpy as np
from PIL import Image

from facevae import crop_celeba
from facevae.data import cache_images, find_splits


def test_celeba_layout_uses_the_official_partition(celeba_dir):
    splits = find_splits(celeba_dir)
    assert [len(splits[s]) for s in ("train", "val", "test")] == [40, 10, 5]
    assert splits["val"][0].name == "000041.jpg"


def test_cache_matches_crop_celeba_and_is_reused(celeba_dir, tmp_path):
    files = find_splits(celeba_dir)["val"]
    cached = cache_images(files, cache_dir=tmp_path)
    assert cached.array.shape == (10, 128, 128, 3) and cached.array.dtype == np.uint8 and cached.skipped == 0
    assert np.array_equal(cached.array[3], np.asarray(crop_celeba(Image.open(files[3]))))
    made = sorted(p.stat().st_mtime_ns for p in tmp_path.iterdir())
    again = cache_images(files, cache_dir=tmp_path)
    assert np.array_equal(again.array, cached.array)
    assert sorted(p.stat().st_mtime_ns for p in tmp_path.iterdir()) == made  # reused, not rebuilt
    other_size = cache_images(files, size=64, cache_dir=tmp_path)
    assert other_size.array.shape == (10, 64, 64, 3)


def test_mixed_folder_converts_or_skips_with_a_count(faces, tmp_path, caplog):
    root = tmp_path / "photos"
    (root / "nested" / "deeper").mkdir(parents=True)
    faces[0].save(root / "a.jpg")
    faces[1].save(root / "nested" / "b.png")
    faces[2].save(root / "nested" / "deeper" / "c.webp")
    faces[3].convert("L").save(root / "grey.png")
    faces[4].convert("RGBA").save(root / "alpha.png")
    faces[5].resize((300, 200)).save(root / "LANDSCAPE.JPG")
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (root / "truncated.png").write_bytes((root / "nested" / "b.png").read_bytes()[:200])
    (root / "notes.txt").write_text("not an image")
    splits = find_splits(root, val_fraction=0.25)
    files = splits["train"] + splits["val"]
    assert len(files) == 8 and not any(f.suffix == ".txt" for f in files)
    assert len(splits["val"]) == 2
    assert find_splits(root, val_fraction=0.25) == splits  # a fixed seed: the same split every time
    with caplog.at_level(logging.WARNING):
        cached = cache_images(files, cache_dir=tmp_path / "cache")
    assert len(cached) == 6 and cached.skipped == 2
    assert "skipped 2 of 8" in caplog.text and "broken.jpg" in caplog.text
    assert cached.array.shape == (6, 128, 128, 3)
    grey = cached.array[cached.files.index(str(root / "grey.png"))]
    assert np.array_equal(grey[..., 0], grey[..., 1])  # grayscale became 3 equal channels
