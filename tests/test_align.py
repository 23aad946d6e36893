"""align_face: a CelebA-framed face out of any photo, found by its landmarks."""
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facevae import crop_celeba
from facevae.align import (TEMPLATE_FILE, align_face, complete_frame, crop_square, draw_detections, find_faces,
                           five_points, photo_share, warp)
from facevae.photo import PhotoError, load_photo
from facevae.preprocess import CELEBA_SIZE

ROOT = Path(__file__).resolve().parent.parent
CELEBA = ROOT.parent / "shared" / "data" / "celeba"
BACKGROUND = (120, 130, 140)


@pytest.fixture(scope="module")
def celeba_like() -> Image.Image:
    """A 178×218 image framed as CelebA's aligned images are, made from the example photo's face."""
    photo = np.asarray(Image.open(ROOT / "assets" / "examples" / "astronaut.jpg").convert("RGB"))
    return Image.fromarray(warp(photo, find_faces(photo)[0].matrix, CELEBA_SIZE))


def paste(face: Image.Image, scale: float, offset: tuple[int, int], size=(900, 700)) -> Image.Image:
    rng = np.random.default_rng(0)
    background = Image.fromarray(rng.integers(90, 160, (size[1] // 10, size[0] // 10, 3), dtype=np.uint8)).resize(size)
    background.paste(face.resize((round(178 * scale), round(218 * scale)), Image.Resampling.LANCZOS), offset)
    return background


def expected_corners(scale: float, offset: tuple[int, int]) -> np.ndarray:
    """Where crop_celeba's square of the pasted image lies in the photo."""
    left, top = offset[0], offset[1] + 20 * scale
    side = 178 * scale
    return np.array([(left, top), (left + side, top), (left + side, top + side), (left, top + side)])


def corner_error(corners: np.ndarray, expected: np.ndarray, scale: float) -> float:
    """How far two crop squares' corners are apart, in pixels of the 128² face."""
    return float(np.abs(corners - expected).max() * 128 / (178 * scale))


def mean_difference(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(np.asarray(a, np.float32) - np.asarray(b, np.float32)).mean() / 255)


@pytest.mark.parametrize("scale, offset", [(1.0, (300, 200)), (2.0, (100, 150)), (1.6, (520, 90))])
def test_a_pasted_celeba_framed_face_comes_back_with_the_same_framing(celeba_like, scale, offset):
    face, info = align_face(paste(celeba_like, scale, offset))
    assert info.found and face.size == (128, 128)
    assert corner_error(info.crop_corners, expected_corners(scale, offset), scale) <= 3
    assert mean_difference(face, crop_celeba(celeba_like)) < 0.06  # a 3-pixel shift already costs about 0.06


@pytest.mark.parametrize("degrees", [20, -20])
def test_a_rolled_face_comes_back_upright_with_the_same_crop(celeba_like, degrees):
    scale, offset = 2.0, (250, 150)
    photo = paste(celeba_like, scale, offset, size=(1000, 900))
    centre = (offset[0] + 89 * scale, offset[1] + 109 * scale)
    upright_face, upright = align_face(photo)
    rolled_face, rolled = align_face(photo.rotate(degrees, Image.Resampling.BICUBIC, center=centre, fillcolor=BACKGROUND))
    # Pillow rotates counter-clockwise on screen: the upright crop's corners, rolled alike
    angle = np.radians(degrees)
    rotation = np.array([[np.cos(angle), np.sin(angle)], [-np.sin(angle), np.cos(angle)]])
    expected = (upright.crop_corners - centre) @ rotation.T + centre
    assert rolled.found and corner_error(rolled.crop_corners, expected, scale) <= 4
    assert abs(abs(rolled.faces[0].roll - upright.faces[0].roll) - 20) < 3 and "straightened" in rolled.message
    assert mean_difference(rolled_face, upright_face) < 0.06


def test_a_face_rolled_past_what_the_detector_sees_is_found_on_a_rolled_copy(celeba_like):
    photo = paste(celeba_like, 2.0, (250, 150), size=(1000, 900)).rotate(45, Image.Resampling.BICUBIC, fillcolor=BACKGROUND)
    assert not find_faces(np.asarray(photo), rolls=(0,), cnn=False)
    assert len(find_faces(np.asarray(photo), cnn=False)) == 1  # HOG on the copy rolled by 30°
    assert len(find_faces(np.asarray(photo), rolls=(0,))) == 1  # and, without rolled copies, the CNN detector
    face, info = align_face(photo)
    assert len(info.faces) == 1 and mean_difference(face, crop_celeba(celeba_like)) < 0.06


def test_the_largest_face_by_default_and_another_on_request(celeba_like):
    photo = paste(celeba_like, 1.0, (60, 200), size=(1000, 700))
    photo.paste(celeba_like.resize((356, 436)), (560, 120))
    big, info = align_face(photo)
    assert len(info.faces) == 2 and info.chosen == 0 and info.crop_box[0] > 500
    small, info_small = align_face(photo, face_index=1)
    assert info_small.chosen == 1 and info_small.crop_box[0] < 300
    assert "2 faces" in info.message
    _, fallback = align_face(photo, face_index=5)
    assert fallback.chosen == 0 and "no face 6" in fallback.message


def test_a_small_face_is_found_on_the_bigger_copy(celeba_like):
    photo = paste(celeba_like, 1.0, (1200, 700), size=(1600, 1200))  # eyes 19 px apart on the 800-px copy
    assert not find_faces(np.asarray(photo), upsamples=(0,))
    _, info = align_face(photo)
    assert info.found and corner_error(info.crop_corners, expected_corners(1.0, (1200, 700)), 1.0) <= 3


def test_the_thumbnail_shows_the_landmarks_and_the_rolled_crop(celeba_like):
    photo = paste(celeba_like, 2.0, (250, 150), size=(1000, 900)).rotate(15, Image.Resampling.BICUBIC, fillcolor=BACKGROUND)
    _, info = align_face(photo)
    thumb = np.asarray(draw_detections(photo, info, max_side=500)).astype(int)
    scale = 500 / 1000
    for x, y in five_points(info.faces[0].landmarks) * scale:  # a red dot on each of the five landmarks
        r, g, b = thumb[round(y), round(x)]
        assert r > 200 and g < 100 and b < 100
    top_edge = (info.crop_corners[0] + info.crop_corners[1]) / 2 * scale  # the green square's rolled edge
    assert tuple(thumb[round(top_edge[1]), round(top_edge[0])]) == (0, 220, 0)


HEADSHOT_BOX = (39, 65, 139, 185)  # forehead to chin in CelebA's frame


def headshot(celeba_like: Image.Image, enlarge: float) -> Image.Image:
    """The face cut close on all four sides, as a profile picture is."""
    width, height = HEADSHOT_BOX[2] - HEADSHOT_BOX[0], HEADSHOT_BOX[3] - HEADSHOT_BOX[1]
    return celeba_like.crop(HEADSHOT_BOX).resize((round(width * enlarge), round(height * enlarge)), Image.Resampling.LANCZOS)


def longest_run(image: Image.Image, where: np.ndarray) -> int:
    """The longest run of identical pixels along a row or a column, among those where is True."""
    pixels, longest = np.asarray(image), 1
    for lines, mask in ((pixels, where), (pixels.transpose(1, 0, 2), where.T)):
        same = np.all(lines[1:] == lines[:-1], axis=2) & mask[1:] & mask[:-1]
        run = np.zeros(same.shape[1], int)
        for row in same:
            run = np.where(row, run + 1, 0)
            longest = max(longest, int(run.max()) + 1)
    return longest


@pytest.mark.parametrize("enlarge", [2.5, 0.8])  # a 250×300 profile picture; an 80×96 one, LFW's size
def test_a_face_cut_close_on_all_four_sides_is_found_and_its_frame_completed_without_streaks(celeba_like, enlarge):
    photo = headshot(celeba_like, enlarge)
    face, info = align_face(photo)
    assert info.found and info.completed and "the frame was completed beyond your photo" in info.message
    # the face is fitted as in the whole image: CelebA's frame within about two pixels
    left, top, right, bottom = (round(v * 128 / 178) for v in (HEADSHOT_BOX[0], HEADSHOT_BOX[1] - 20, HEADSHOT_BOX[2], HEADSHOT_BOX[3] - 20))
    inside = (slice(top + 3, bottom - 3), slice(left + 3, right - 3))
    assert np.abs(np.asarray(face, np.float32)[inside] - np.asarray(crop_celeba(celeba_like), np.float32)[inside]).mean() < 12
    assert info.photo_area[inside].min() == 1 and info.photo_area[:top - 3].max() == 0
    edges_repeated = crop_celeba(Image.fromarray(warp(np.asarray(photo), info.faces[0].matrix, CELEBA_SIZE)))
    beyond = info.photo_area < 1
    assert longest_run(edges_repeated, beyond) > 20  # what the frame held before: streaks
    assert longest_run(face, beyond) <= 4


def test_the_fill_never_overwrites_the_photos_pixels(celeba_like):
    photo = np.asarray(headshot(celeba_like, 2.5))
    _, info = align_face(Image.fromarray(photo))
    matrix = info.faces[0].matrix
    frame, share = complete_frame(photo, matrix)
    as_warped = warp(photo, matrix, CELEBA_SIZE)
    covered = share >= 1
    assert covered.mean() > 0.3 and (~covered).mean() > 0.3
    assert np.array_equal(frame[covered], as_warped[covered])
    assert np.array_equal(share, photo_share(matrix, (photo.shape[1], photo.shape[0])))


def test_a_photo_with_a_roomy_frame_is_aligned_exactly_as_before(celeba_like):
    photo = paste(celeba_like, 2.0, (100, 150))
    face, info = align_face(photo)
    before = crop_celeba(Image.fromarray(warp(np.asarray(photo), info.faces[0].matrix, CELEBA_SIZE)))
    assert not info.completed and "completed" not in info.message
    assert np.abs(np.asarray(face, np.int16) - np.asarray(before, np.int16)).max() <= 1


def test_the_hidden_margin_keeps_the_faces_in_the_photos_pixels(celeba_like):
    photo = np.asarray(paste(celeba_like, 2.0, (100, 150)))
    plain, padded = find_faces(photo), find_faces(photo, margin=0.25)
    assert len(plain) == len(padded) == 1
    assert np.abs(plain[0].landmarks - padded[0].landmarks).max() < 3
    assert np.abs(plain[0].crop_corners - padded[0].crop_corners).max() < 3


def test_the_thumbnail_outlines_the_photo_in_the_completed_crop(celeba_like):
    photo = headshot(celeba_like, 2.5)
    _, info = align_face(photo)
    thumb = draw_detections(photo, info, max_side=400)
    left, top, right, bottom = info.crop_box
    scale = 400 / max(right - left, bottom - top)
    assert thumb.width > photo.width * scale + 20 and thumb.height > photo.height * scale + 20  # all of the crop
    pixels = np.asarray(thumb).astype(int)
    x0, y0 = round(-left * scale), round(-top * scale)  # the photo's top left corner
    x1, y1 = x0 + round(photo.width * scale) - 1, y0 + round(photo.height * scale) - 1
    for x, y in [((x0 + x1) // 2, y0), ((x0 + x1) // 2, y1), (x0, (y0 + y1) // 2), (x1, (y0 + y1) // 2)]:
        assert tuple(pixels[y, x]) == (255, 255, 255)  # the white outline on each side
    assert tuple(pixels[y0 - 10, x0 - 10]) == (128, 128, 128)  # grey beyond the photo


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


def test_a_shrinking_warp_averages_instead_of_aliasing():
    stripes = np.zeros((800, 800, 3), np.uint8)
    stripes[:, ::2] = 255  # one-pixel stripes: point sampling at 1/8 scale gives all black or all white
    quarter = np.array([[0.125, 0, 0], [0, 0.125, 0]])
    assert np.abs(warp(stripes, quarter, (100, 100)).astype(int) - 127.5).max() <= 2


def test_exif_orientation_is_applied(celeba_like):
    photo = paste(celeba_like, 2.0, (100, 100), size=(600, 700))
    sideways = photo.rotate(90, expand=True)  # stored on its side, as a phone does...
    exif = Image.Exif()
    exif[0x0112] = 6  # ...with the tag that says "rotate 90° clockwise to view"
    buffer = io.BytesIO()
    sideways.save(buffer, format="JPEG", exif=exif)
    loaded, _ = load_photo(buffer.getvalue())
    assert loaded.size == photo.size
    assert align_face(buffer.getvalue())[1].found


@pytest.mark.parametrize("size, decoded", [((4096, 4096), (1024, 1024)), ((4000, 3000), (1000, 750)),
                                           ((3000, 4000), (750, 1000)), ((1600, 1200), (1600, 1200))])
def test_a_large_jpeg_is_decoded_at_reduced_size(celeba_like, size, decoded):
    buffer = io.BytesIO()
    paste(celeba_like, 2.0, (300, 100), size=(1000, 750)).resize(size).save(buffer, format="JPEG", quality=90)
    photo, _ = load_photo(buffer.getvalue())
    assert photo.size == decoded  # Pillow's draft: 1/4 scale for a 12 MP photo of either orientation
    assert align_face(buffer.getvalue())[1].found


def test_unusable_files_raise_a_photo_error():
    with pytest.raises(PhotoError, match="not an image"):
        load_photo(b"plain text")
    with pytest.raises(PhotoError, match="limit is 1 MB"):
        load_photo(bytes(3 * 2**20), max_bytes=2**20)


def test_concurrent_requests_align_alike(celeba_like):
    """The app aligns photos for several people at once."""
    from concurrent.futures import ThreadPoolExecutor

    photo = paste(celeba_like, 1.5, (200, 100))
    expected = align_face(photo)[1].crop_corners
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: align_face(photo)[1].crop_corners, range(16)))
    assert all(np.array_equal(r, expected) for r in results)


@pytest.mark.skipif(not CELEBA.is_dir(), reason="the CelebA data is not on this machine")
def test_the_template_script_reproduces_the_shipped_template(tmp_path):
    """Slow by nature: dlib's landmarks on 300 real faces, the fewest whose mean lands within a
    pixel of the shipped template's 3,000."""
    from train.studies.calibrate_align import main

    fresh = main(["--data", str(CELEBA), "--images", "300", "--out", str(tmp_path / "template.json")])
    shipped = json.loads(TEMPLATE_FILE.read_text())
    # the shipped one averages 3,000 images: 300 others land within a pixel
    assert np.abs(five_points(np.array(fresh["landmarks"])) - five_points(np.array(shipped["landmarks"]))).max() < 1.0
    assert np.abs(np.array(fresh["box"]) - shipped["box"]).max() < 1.0
    assert shipped["faces_found"] >= 0.95 * shipped["images"] >= 0.95 * 3000


@pytest.mark.skipif(not CELEBA.is_dir(), reason="the CelebA data is not on this machine")
def test_real_celeba_faces_rolled_in_photos_are_framed_as_crop_celeba():
    """Slow by nature: 31 real faces, each rolled into a photo of its own, found and aligned there
    (dlib's detector on every rolled copy it tries)."""
    from facevae import to_tensor
    from facevae.data import find_splits
    from facevae.metrics import psnr
    from train.studies.measure_align import photo_with

    rng = np.random.default_rng(1)
    scores, files = [], find_splits(CELEBA)["val"][5::150]
    for i, path in enumerate(files):
        original = Image.open(path).convert("RGB")
        crop, info = align_face(photo_with(np.asarray(original), i, rng.uniform(-25, 25)))
        if info.found:
            scores.append(psnr(to_tensor(crop), to_tensor(crop_celeba(original))).item())
    assert len(scores) >= 0.9 * len(files)
    assert np.median(scores) >= 18.5, sorted(scores)
