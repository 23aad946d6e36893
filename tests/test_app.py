"""The app through its HTTP API, as gradio_client users (and the browser) reach it."""
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

gr = pytest.importorskip("gradio")
from gradio_client import Client, handle_file  # noqa: E402

from facevae import load_model  # noqa: E402

ASTRONAUT = "assets/examples/astronaut.jpg"


@pytest.fixture(scope="module")
def server(app_server):
    """The app with the bundled model: the session's (conftest.app_server)."""
    return app_server


@pytest.fixture(scope="module")
def client(server):
    return Client(server.local_url, verbose=False)


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).astype(np.float32) / 255


def gallery_pixels(gallery) -> list[np.ndarray]:
    return [pixels(item["image"]) for item in gallery]


def test_reconstruct_is_closer_to_its_input_than_to_another_face(client):
    aligned, reconstruction, summary, detections = client.predict(handle_file(ASTRONAUT), 1, api_name="/reconstruct")
    face, recon = pixels(aligned), pixels(reconstruction)
    assert face.shape == recon.shape == (128, 128, 3)
    other = pixels(client.predict(1, 5, 0.8, "normal", api_name="/sample"))[2:130, 2:130]
    assert ((recon - face) ** 2).mean() < ((recon - other) ** 2).mean() / 2
    assert "PSNR" in summary and "Found 1 face" in summary and "Error on the face" in summary and "Refined in" in summary and "dlib" in summary
    assert Image.open(detections).size[0] <= 320


def test_same_seed_same_faces_and_a_grid_to_download(client):
    gallery, grid_file = client.predict(16, 7, 0.8, "mixture", api_name="/sample_gallery")
    again, _ = client.predict(16, 7, 0.8, "mixture", api_name="/sample_gallery")
    other, _ = client.predict(16, 8, 0.8, "mixture", api_name="/sample_gallery")
    faces = gallery_pixels(gallery)
    assert len(faces) == 16 and all(f.shape == (128, 128, 3) for f in faces)
    assert all(np.array_equal(a, b) for a, b in zip(faces, gallery_pixels(again)))
    assert not np.array_equal(faces[0], gallery_pixels(other)[0])
    grid = pixels(grid_file)
    assert grid.shape == (2 * 128 + 3 * 2, 8 * 128 + 9 * 2, 3)
    assert np.array_equal(grid[132:260, 132:260], faces[9])  # row 2, column 2
    # /sample: the same faces as one PNG, for API callers
    assert np.array_equal(pixels(client.predict(16, 7, 0.8, "mixture", api_name="/sample")), grid)


def test_morph_ends_are_the_two_reconstructions(client):
    a_recon = pixels(client.predict(handle_file(ASTRONAUT), 1, api_name="/reconstruct")[1])
    seed_face = pixels(client.predict(None, 1, None, 11, 1.0, "spherical", api_name="/morph"))
    start = pixels(client.predict(handle_file(ASTRONAUT), 0, None, 11, 0.0, "spherical", api_name="/morph"))
    end = pixels(client.predict(handle_file(ASTRONAUT), 0, None, 11, 1.0, "linear", api_name="/morph"))
    middle = pixels(client.predict(handle_file(ASTRONAUT), 0, None, 11, 0.5, "spherical", api_name="/morph"))
    assert np.abs(start - a_recon).max() <= 1 / 255
    assert np.abs(end - seed_face).max() <= 1 / 255
    assert np.abs(middle - start).mean() > 0.01 and np.abs(middle - end).mean() > 0.01
    strip, gif = client.predict(handle_file(ASTRONAUT), 0, None, 11, "spherical", 6, api_name="/morph_animation")
    frames = gallery_pixels(strip)
    assert len(frames) == 6
    assert np.abs(frames[0] - a_recon).max() <= 1 / 255 and np.abs(frames[-1] - seed_face).max() <= 1 / 255
    animation = Image.open(gif)
    assert animation.format == "GIF" and animation.n_frames == 10  # there and back


def test_explorer_offsets_change_the_face_and_moving_back_restores_it(client):
    dims = load_model().latent_stats.ranked_dimensions()[:2]
    base = pixels(client.predict(None, 3, {}, {}, {}, api_name="/explore"))
    moved = pixels(client.predict(None, 3, {}, {}, {str(dims[0]): 2.5}, api_name="/explore"))
    along_pc = pixels(client.predict(None, 3, {}, {"1": 2.5}, {}, api_name="/explore"))
    back = pixels(client.predict(None, 3, {}, {"1": 0.0}, {str(dims[0]): 0.0}, api_name="/explore"))
    assert np.abs(moved - base).mean() > 0.005 and np.abs(along_pc - base).mean() > 0.005
    assert np.array_equal(back, base)
    from_photo = pixels(client.predict(handle_file(ASTRONAUT), 3, {}, {}, {}, api_name="/explore"))
    assert np.abs(from_photo - pixels(client.predict(handle_file(ASTRONAUT), 1, api_name="/reconstruct")[1])).max() <= 1 / 255


def test_explorer_takes_attribute_offsets_by_name(client):
    names = load_model().latent_stats.attribute_names
    assert "Smiling" in names
    base = pixels(client.predict(None, 3, {}, {}, {}, api_name="/explore"))
    smile = pixels(client.predict(None, 3, {"Smiling": 2.0}, {}, {}, api_name="/explore"))
    frown = pixels(client.predict(None, 3, {"Smiling": -2.0}, {}, {}, api_name="/explore"))
    assert np.abs(smile - base).mean() > 0.005 and np.abs(frown - base).mean() > 0.005
    # the mouth (lower middle of the face) is where a smile shows most
    mouth, rest = (slice(85, 110), slice(40, 88)), (slice(10, 40), slice(0, 128))
    assert np.abs(smile - base)[mouth].mean() > np.abs(smile - base)[rest].mean()
    with pytest.raises(Exception, match="no attribute 'Grinning'"):
        client.predict(None, 3, {"Grinning": 1.0}, {}, {}, api_name="/explore")
    with pytest.raises(Exception, match="principal direction 9"):
        client.predict(None, 3, {}, {"9": 1.0}, {}, api_name="/explore")
    with pytest.raises(Exception, match="offsets are JSON objects of numbers"):
        client.predict(None, 3, ["Smiling"], {}, {"x": "big"}, api_name="/explore")
    assert client.predict(api_name="/ping") == "ok"


@pytest.mark.parametrize("offsets", [({"Smiling": "nan"}, {}, {}), ({}, {"1": "inf"}, {}), ({}, {}, {"39": 1e308}),
                                     ({"Smiling": -1e5}, {}, {})])
def test_explorer_offsets_that_are_no_numbers_or_absurd_get_a_message(client, offsets):
    with pytest.raises(Exception, match="is not a number from -100 to 100"):
        client.predict(None, 3, *offsets, api_name="/explore")


def test_any_whole_number_is_a_seed(client):
    huge = pixels(client.predict(4, 2**80, 0.8, "mixture", api_name="/sample"))
    assert np.array_equal(huge, pixels(client.predict(4, 2**80 % 2**64, 0.8, "mixture", api_name="/sample")))
    negative = pixels(client.predict(None, -5, {}, {}, {}, api_name="/explore"))
    assert negative.shape == (128, 128, 3)


def png_header_only(width: int, height: int) -> bytes:
    """A valid PNG that claims width×height pixels: a decompression bomb's header."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def bad_files(tmp_path):
    files = {}
    (tmp_path / "notes.jpg").write_text("this is not an image")
    files["notes.jpg"] = "not an image"
    data = open(ASTRONAUT, "rb").read()
    (tmp_path / "truncated.jpg").write_bytes(data[: len(data) // 3])
    files["truncated.jpg"] = "damaged or truncated"
    Image.new("RGB", (1, 1)).save(tmp_path / "tiny.png")
    files["tiny.png"] = "only 1×1"
    (tmp_path / "bomb.png").write_bytes(png_header_only(20000, 20000))
    files["bomb.png"] = "pixels"
    (tmp_path / "huge.jpg").write_bytes(b"\xff\xd8" + bytes(21 * 2**20))
    files["huge.jpg"] = "size"
    return files


@pytest.mark.parametrize("name", ["notes.jpg", "truncated.jpg", "tiny.png", "bomb.png", "huge.jpg"])
def test_bad_files_get_a_clear_message_and_the_server_keeps_serving(client, tmp_path, name):
    expected = bad_files(tmp_path)[name]
    with pytest.raises(Exception) as raised:
        client.predict(handle_file(str(tmp_path / name)), 1, api_name="/reconstruct")
    assert expected in str(raised.value).replace("x", "×") or expected in str(raised.value), str(raised.value)
    assert client.predict(api_name="/ping") == "ok"


@pytest.mark.parametrize("kind", ["gif", "png16", "cmyk", "grey", "heic", "avif"])
def test_unusual_but_valid_images_are_converted(client, tmp_path, kind):
    astronaut = Image.open(ASTRONAUT)
    path = tmp_path / f"photo.{ {'gif': 'gif', 'png16': 'png', 'cmyk': 'jpg', 'grey': 'png'}.get(kind, kind) }"
    if kind in ("heic", "avif"):  # phone formats: iPhones save HEIC
        astronaut.save(path, quality=90)
        assert Image.open(path).format == {"heic": "HEIF", "avif": "AVIF"}[kind]
    elif kind == "gif":
        frames = [astronaut.convert("P"), astronaut.rotate(180).convert("P")]
        frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    elif kind == "png16":
        Image.fromarray(np.asarray(astronaut.convert("L")).astype(np.uint16) * 257).save(path)
    elif kind == "cmyk":
        astronaut.convert("CMYK").save(path)
    else:
        astronaut.convert("L").save(path)
    aligned, reconstruction, summary, _ = client.predict(handle_file(str(path)), 1, api_name="/reconstruct")
    assert pixels(aligned).shape == (128, 128, 3) and "Found 1 face" in summary
    if kind == "gif":
        assert "first frame" in summary


def test_out_of_range_api_values_get_a_message(client):
    # Gradio checks slider values against their ranges: an API caller cannot ask for 5,000 faces
    with pytest.raises(Exception, match="5000 is greater than maximum value 64"):
        client.predict(5000, 0, 0.8, "normal", api_name="/sample")
    with pytest.raises(Exception, match="greater than maximum value 32"):
        client.predict(None, 1, None, 2, "spherical", 10_000, api_name="/morph_animation")
    assert client.predict(api_name="/ping") == "ok"


def test_concurrent_identical_requests_all_get_their_images(server):
    # Many people asking for the same faces at once (the same example, the default seed): each
    # result file must download whole while another request produces the same one.
    from concurrent.futures import ThreadPoolExecutor

    def draw(_):
        client = Client(server.local_url, verbose=False)
        return [pixels(client.predict(64, 0, 0.8, "normal", api_name="/sample")) for _ in range(4)]

    with ThreadPoolExecutor(6) as pool:
        grids = [grid for batch in pool.map(draw, range(6)) for grid in batch]
    assert len(grids) == 24 and all(np.array_equal(grid, grids[0]) for grid in grids)


def test_output_files_have_their_own_names_and_old_ones_are_removed(tmp_path, monkeypatch):
    import os
    import time

    import app

    monkeypatch.setattr(app, "OUTPUT_DIR", tmp_path)
    monkeypatch.setattr(app, "_next_cleanup", 0.0)
    first, second = app.save_output(b"a", "morph.gif"), app.save_output(b"b", "morph.gif")
    assert first != second and os.path.basename(first) == "morph.gif" and open(first, "rb").read() == b"a"
    hour_ago = time.time() - 3600
    os.utime(os.path.dirname(first), (hour_ago, hour_ago))
    app.save_output(b"c", "x.png")  # within the minute: no sweep yet
    assert os.path.exists(first)
    monkeypatch.setattr(app, "_next_cleanup", 0.0)
    app.save_output(b"d", "y.png")
    assert not os.path.exists(first) and os.path.exists(second)


def test_the_readmes_client_example_runs_against_the_app(server, tmp_path, monkeypatch):
    """README.md's gradio_client block (fence "python app"), as pasted, with its URL pointed
    at this test's server; run as its own __main__ in this process, in a folder of its own."""
    import os

    from readme_blocks import readme_blocks

    blocks = [b for b in readme_blocks() if b.marker == "app"]
    assert blocks
    (tmp_path / "assets").symlink_to(os.path.abspath("assets"))
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        assert "http://127.0.0.1:7860/" in block.code
        code = block.code.replace("http://127.0.0.1:7860/", server.local_url)
        exec(compile(code, str(block), "exec"), {"__name__": "__main__"})
