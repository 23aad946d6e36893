"""FacePipeline: its speed-ups keep the results (channels_last decoding, OpenCV's PNG writer); the live mirror."""
import io
from pathlib import Path

import numpy as np
from PIL import Image

from facevae import load_model
from facevae.pipeline import FacePipeline, jpeg_bytes, png_bytes
from conftest import synthetic_face
from facevae.preprocess import to_image

ASTRONAUT = Path(__file__).resolve().parent.parent / "assets" / "examples" / "astronaut.jpg"


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


def test_the_live_mirror_follows_a_face_across_frames():
    pipeline = FacePipeline(load_model())
    face = np.asarray(Image.open(ASTRONAUT).convert("RGB").resize((360, 360)))
    frames = []
    for shift in range(0, 100, 20):  # the person moves right across a 640×480 webcam frame
        frame = np.full((480, 640, 3), 100, np.uint8)
        frame[60:420, 60 + shift: 420 + shift] = face
        frames.append(frame)
    results = [pipeline.mirror(frame) for frame in frames]
    assert all(info.found and aligned.size == reconstruction.size == (128, 128) and psnr > 20
               for aligned, reconstruction, psnr, info in results)
    lefts = [info.crop_box[0] for *_, info in results]
    assert np.allclose(np.diff(lefts), 20, atol=2)  # the crop moves with the face...
    first, last = (np.asarray(aligned, np.float32) for aligned, *_ in (results[0], results[-1]))
    assert np.abs(first - last).mean() < 4  # ...so the aligned face stays the same
    aligned, _, _, info = pipeline.mirror(np.full((480, 640, 3), 100, np.uint8))
    assert not info.found and aligned.size == (128, 128)  # nobody in view: the middle of the picture


def test_a_headshot_is_reconstructed_in_a_completed_frame_and_the_thumbnail_shows_the_whole_crop(tmp_path):
    path = tmp_path / "headshot.jpg"
    Image.open(ASTRONAUT).convert("RGB").crop((170, 48, 282, 182)).save(path, quality=90)  # forehead to chin
    result = FacePipeline(load_model()).reconstruct(str(path))
    assert result.info.found and result.info.completed
    assert "the frame was completed beyond your photo" in result.info.message
    assert result.detections.width > 112 * 1.5 and result.detections.height > 134 * 1.3  # the crop, beyond the photo
    assert result.psnr > 20


def test_refining_a_tight_photo_brings_the_face_closer_and_the_summary_says_so(tmp_path):
    from app import refined_summary

    path = tmp_path / "tight.jpg"
    synthetic_face(6, (400, 480)).crop((80, 110, 320, 420)).save(path, quality=95)  # brows to chin, tight (seed 6: with phase 16 the frame gets worse, seed 1 no longer)
    pipeline = FacePipeline(load_model())
    encoded = pipeline.reconstruct(str(path))
    refined = pipeline.refined_reconstruction(encoded)
    assert encoded.info.found and encoded.info.completed
    assert refined.psnr < encoded.psnr  # the case the summary must explain: the whole frame gets worse...
    assert refined.face_psnr > encoded.face_psnr + 0.5  # ...while the face, which the refinement weighs, gets closer
    summary = refined_summary(encoded, refined, pipeline.refinement.steps)
    assert f"**Error on the face** (brows to mouth): PSNR {refined.face_psnr:.2f} dB refined, " \
           f"{encoded.face_psnr:.2f} dB from the encoder alone" in summary
    assert f"{refined.psnr:.2f} dB refined, {encoded.psnr:.2f} dB from the encoder alone" in summary
    assert "The explorer and the morph start from this refined face." in summary
