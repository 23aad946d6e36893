"""FacePipeline's speed-ups keep the results: channels_last decoding, OpenCV's PNG writer."""
import io

import numpy as np
from PIL import Image

from facevae import load_model
from facevae.pipeline import FacePipeline, jpeg_bytes, png_bytes
from facevae.preprocess import to_image


def test_the_pipeline_decodes_the_same_faces_as_the_model():
    model = load_model()
    z = model.sample_latents(4, 0.8, "normal")
    expected = [np.asarray(to_image(y), np.int16) for y in model.decode(z)]
    faces = FacePipeline(load_model()).decode(z)
    assert all(np.abs(np.asarray(face, np.int16) - e).max() <= 1 for face, e in zip(faces, expected))


def test_png_bytes_is_lossless_and_jpeg_bytes_keeps_the_size():
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (40, 60, 3), dtype=np.uint8))
    decoded = Image.open(io.BytesIO(png_bytes(image)))
    assert decoded.format == "PNG" and np.array_equal(np.asarray(decoded), np.asarray(image))
    grey = Image.fromarray(rng.integers(0, 256, (40, 60), dtype=np.uint8))
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png_bytes(grey)))), np.asarray(grey.convert("RGB")))
    photo = Image.open(io.BytesIO(jpeg_bytes(image)))
    assert photo.format == "JPEG" and photo.size == image.size
