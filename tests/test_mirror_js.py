"""The live mirror in a real browser: Chromium's fake camera shows a face moving across the frame,
and the page aligns, encodes and decodes each frame itself (or, without WebAssembly, sends it)."""
from pathlib import Path

import numpy as np
import pytest
from gradio_client import handle_file

from conftest import CHROMIUM, CHROMIUM_FLAGS, needs_chromium
from test_app import ASTRONAUT, client, server  # noqa: F401  (the app server and its API client)
from test_browser import png_pixels, reconstruct_in, shots, shown_face  # noqa: F401

pytestmark = needs_chromium


def fake_camera_video(path: Path, frames: int = 20) -> Path:
    """A 640×480 y4m video of the example face drifting sideways, for Chromium's fake camera."""
    import cv2
    import numpy as np
    from PIL import Image

    face = np.asarray(Image.open(ASTRONAUT).convert("RGB").resize((400, 400)))
    with open(path, "wb") as f:
        f.write(b"YUV4MPEG2 W640 H480 F10:1 Ip A1:1 C420jpeg\n")
        for i in range(frames):
            frame = np.full((480, 640, 3), 110, np.uint8)
            frame[40:440, 100 + 4 * i: 500 + 4 * i] = face
            f.write(b"FRAME\n" + cv2.cvtColor(frame, cv2.COLOR_RGB2YUV_I420).tobytes())
    return path


@pytest.fixture(scope="module")
def camera_browser(playwright, tmp_path_factory):
    """A second Chromium, launched once for the camera's tests: its camera shows fake_camera_video."""
    video = fake_camera_video(tmp_path_factory.mktemp("camera") / "camera.y4m")
    camera_flags = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                    f"--use-file-for-fake-video-capture={video}"]
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS + camera_flags)
    yield browser
    browser.close()


@pytest.fixture
def camera_page(camera_browser, server):  # noqa: F811
    """Opens a page of the app (with an init_script, if given) in a context of its own whose camera
    shows fake_camera_video; page.sent as browser_page keeps it."""
    contexts = []

    def open_page(init_script=None):
        context = camera_browser.new_context(viewport={"width": 1280, "height": 1000}, permissions=["camera"])
        contexts.append(context)
        if init_script:
            context.add_init_script(init_script)
        page = context.new_page()
        page.sent = []
        page.on("request", lambda request: page.sent.append(request.url) if request.post_data_buffer else None)
        page.goto(server.local_url, wait_until="load", timeout=90_000)
        return page

    yield open_page
    for context in contexts:
        context.close()


def run_mirror(page, frames: int) -> None:
    """Press Start and wait until the mirror has drawn this many faces."""
    page.locator("#mirror").get_by_role("button", name="Start").click()
    page.wait_for_function(f"() => document.querySelector('#mirror-reconstruction').dataset.frames >= {frames}",
                           timeout=90_000)


def test_the_live_mirror_reconstructs_the_camera_in_the_page_and_sends_nothing(camera_page, shots):
    page = camera_page()
    page.wait_for_selector("#mirror [data-mode=browser]", state="attached", timeout=60_000)
    before = len(page.sent)
    run_mirror(page, 10)
    assert page.sent[before:] == []  # not one frame, nor anything else, was sent
    assert "PSNR" in page.locator("#mirror-status").inner_text()  # a face was found
    assert shown_face(page, "#mirror-reconstruction canvas").std() > 10  # a face, not a blank canvas
    page.locator("#mirror-reconstruction").scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "live_mirror.png"))
    page.get_by_role("button", name="Stop").click()


def test_without_webassembly_photos_and_the_mirror_take_the_server_path(camera_page, client):  # noqa: F811
    page = camera_page(init_script="delete window.WebAssembly")
    page.wait_for_selector("#reconstruct-page [data-mode=server]", state="attached", timeout=60_000)
    assert "photos are sent to the server" in page.locator("#reconstruct-page .photo-note").inner_text()
    reconstruct_in(page, ASTRONAUT)
    assert "sent to the server" in page.locator("#reconstruct-page .status").inner_text()
    aligned, reconstruction = (png_pixels(path) for path in
                               client.predict(handle_file(ASTRONAUT), 1, api_name="/reconstruct")[:2])
    assert np.abs(shown_face(page, "#reconstruct-aligned canvas") - aligned).max() <= 1  # the server's own
    assert np.abs(shown_face(page, "#reconstruct-refined canvas") - reconstruction).max() <= 1
    assert page.locator("#mirror").get_by_role("button", name="Start").inner_text() == \
        "Start (frames go to the server)"
    run_mirror(page, 3)
    assert "each frame is sent to the server" in page.locator("#mirror-status").inner_text()
