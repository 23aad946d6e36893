"""train.studies.card_images' animation: the README's morph.gif."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageSequence

from facevae import load_model
from facevae.preprocess import to_grid
from train.studies.card_images import MORPH_FACE_SIZE, morph_frames, save_gif

SHIPPED_GIF = Path(__file__).resolve().parent.parent / "assets" / "facevae-celeba-128" / "morph.gif"


def test_the_morph_loops_through_mixture_faces_and_fits_in_a_small_gif(tmp_path):
    model = load_model()
    frames = morph_frames(model, faces=2, keys=3, steps=4, temperature=0.9, seed=7)
    assert len(frames) == 12 and {f.size for f in frames} == {(2 * MORPH_FACE_SIZE, MORPH_FACE_SIZE)}
    # the first frame is the first faces themselves, and each frame moves a little from the last
    first = model.latent_stats.sample_mixture(6, 0.9, torch.Generator().manual_seed(7))[:2]
    expected = to_grid(model.decode(first), columns=2, padding=0).resize(frames[0].size, Image.Resampling.LANCZOS)
    assert np.abs(np.asarray(frames[0], float) - np.asarray(expected, float)).max() <= 1
    pixels = [np.asarray(frame, float) for frame in frames]
    steps = [np.abs(a - b).mean() for a, b in zip(pixels, pixels[1:] + pixels[:1])]
    assert min(steps) > 0.5 and max(steps) < 12 * np.median(steps)  # it moves, with no jump where the loop closes
    save_gif(frames, tmp_path / "morph.gif")
    gif = Image.open(tmp_path / "morph.gif")
    assert gif.n_frames == 12 and gif.info["loop"] == 0


def test_the_shipped_gif_is_small_and_animated():
    gif = Image.open(SHIPPED_GIF)
    assert SHIPPED_GIF.stat().st_size < 1_000_000 and gif.n_frames >= 16
    assert len({frame.convert("RGB").tobytes() for frame in ImageSequence.Iterator(gif)}) == gif.n_frames
