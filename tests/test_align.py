"""align_face: a CelebA-framed face out of any photo."""
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from facevae import crop_celeba
from facevae.align import COARSE_SEARCHES, PhotoError, align_face, crop_square, detect_faces, face_crop_box, load_photo

ROOT = Path(__file__).resolve().parent.parent
CELEBA = ROOT.parent / "shared" / "data" / "celeba"


@pytest.fixture(scope="module")
def astronaut() -> Image.Image:
    return Image.open(ROOT / "assets" / "examples" / "astronaut.jpg").convert("RGB")


def celeba_like(photo: Image.Image) -> Image.Image:
    """A 178×218 image framed as CelebA's aligned images are, made from a photo's face."""
    left, top, right, bottom = face_crop_box(detect_faces(photo)[0])
    per_pixel, border = (right - left) / 178, 64  # the border: the frame may reach past the photo's top
    box = (left + border, top - 20 * per_pixel + border, right + border, bottom + 20 * per_pixel + border)
    return ImageOps.expand(photo, border).resize((178, 218), Image.Resampling.LANCZOS, box=box)


def paste(face: Image.Image, scale: float, offset: tuple[int, int], size=(900, 700)) -> Image.Image:
    rng = np.random.default_rng(0)
    background = Image.fromarray(rng.integers(90, 160, (size[1] // 10, size[0] // 10, 3), dtype=np.uint8)).resize(size)
    background.paste(face.resize((round(178 * scale), round(218 * scale)), Image.Resampling.LANCZOS), offset)
    return background


def box_error_in_model_pixels(info, scale, offset) -> float:
    """How far align_face's square is from the known placement, in pixels of the 128² face."""
    expected = np.array([offset[0], offset[1] + 20 * scale, offset[0] + 178 * scale, offset[1] + 198 * scale])
    return float(np.abs(np.array(info.crop_box) - expected).max() * 128 / (178 * scale))


@pytest.mark.parametrize("scale, offset", [(1.0, (300, 200)), (2.0, (100, 150)), (1.6, (520, 90))])
def test_a_pasted_celeba_framed_face_comes_back_with_the_same_framing(astronaut, scale, offset):
    original = celeba_like(astronaut)
    face, info = align_face(paste(original, scale, offset))
    assert info.found and face.size == (128, 128)
    assert box_error_in_model_pixels(info, scale, offset) <= 4
    difference = np.abs(np.asarray(face, np.float32) - np.asarray(crop_celeba(original), np.float32)).mean() / 255
    assert difference < 0.08  # a 3-pixel shift of a detailed face already costs about 0.06


def test_the_largest_face_by_default_and_another_on_request(astronaut):
    original = celeba_like(astronaut)
    photo = paste(original, 1.0, (60, 200), size=(1000, 700))
    photo.paste(original.resize((356, 436)), (560, 120))
    big, info = align_face(photo)
    assert len(info.faces) == 2 and info.chosen == 0 and info.crop_box[0] > 500
    small, info_small = align_face(photo, face_index=1)
    assert info_small.chosen == 1 and info_small.crop_box[0] < 300
    assert "2 faces" in info.message
    _, fallback = align_face(photo, face_index=5)
    assert fallback.chosen == 0 and "no face 6" in fallback.message


def test_a_face_too_small_for_the_first_search_is_found_by_the_second(astronaut):
    photo = paste(celeba_like(astronaut), 1.0, (800, 500), size=(1600, 1200))
    _, info = align_face(photo)
    (first_side, first_min_face), _ = COARSE_SEARCHES
    assert info.found and info.faces[0][2] < first_min_face * photo.width / first_side
    assert box_error_in_model_pixels(info, 1.0, (800, 500)) <= 6


def test_no_face_gives_a_centre_crop_and_says_so():
    gradient = Image.fromarray(np.tile(np.linspace(0, 255, 300, dtype=np.uint8), (200, 1)))
    face, info = align_face(gradient)
    assert not info.found and face.size == (128, 128) and face.mode == "RGB"
    assert info.crop_box == (50, 0, 250, 200)
    assert "No face found" in info.message


def test_a_square_reaching_a_fraction_of_a_pixel_past_the_edge_is_padded():
    photo = Image.new("RGB", (100, 120), (200, 100, 50))
    face = crop_square(photo, (-0.4, 10, 99.6, 110))
    assert face.size == (128, 128) and face.getpixel((0, 64)) == (200, 100, 50)


def test_exif_orientation_is_applied(astronaut):
    sideways = astronaut.rotate(90, expand=True)  # stored on its side, as a phone does...
    exif = Image.Exif()
    exif[0x0112] = 6  # ...with the tag that says "rotate 90° clockwise to view"
    buffer = io.BytesIO()
    sideways.save(buffer, format="JPEG", exif=exif)
    photo, _ = load_photo(buffer.getvalue())
    assert photo.size == astronaut.size
    assert align_face(buffer.getvalue())[1].found


@pytest.mark.parametrize("size, decoded", [((4096, 4096), (1024, 1024)), ((4000, 3000), (1000, 750)),
                                           ((3000, 4000), (750, 1000)), ((1600, 1200), (1600, 1200))])
def test_a_large_jpeg_is_decoded_at_reduced_size(astronaut, size, decoded):
    buffer = io.BytesIO()
    astronaut.resize(size).save(buffer, format="JPEG", quality=90)
    photo, _ = load_photo(buffer.getvalue())
    assert photo.size == decoded  # Pillow's draft: 1/4 scale for a 12 MP photo of either orientation
    assert align_face(buffer.getvalue())[1].found


def test_unusable_files_raise_a_photo_error():
    with pytest.raises(PhotoError, match="not an image"):
        load_photo(b"plain text")
    with pytest.raises(PhotoError, match="limit is 1 MB"):
        load_photo(bytes(3 * 2**20), max_bytes=2**20)


@pytest.mark.skipif(not CELEBA.is_dir(), reason="the CelebA data is not on this machine")
def test_real_celeba_faces_pasted_into_photos_are_framed_as_crop_celeba():
    from facevae.data import find_splits

    errors, found = [], 0
    files = find_splits(CELEBA)["val"][:60]
    for i, path in enumerate(files):
        scale = 1.0 + (i % 5) * 0.4
        offset = (40 + 37 * (i % 7), 30 + 23 * (i % 5))
        _, info = align_face(paste(Image.open(path).convert("RGB"), scale, offset, size=(1000, 1000)))
        if info.found:
            found += 1
            errors.append(box_error_in_model_pixels(info, scale, offset))
    assert found >= 0.9 * len(files)
    assert np.median(errors) <= 6, sorted(errors)


def test_concurrent_requests_detect_safely(astronaut):
    """The app aligns photos for several users at once; OpenCV's cascade is not thread-safe."""
    from concurrent.futures import ThreadPoolExecutor

    expected = detect_faces(astronaut)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: detect_faces(astronaut), range(24)))
    assert all(r == expected for r in results)
