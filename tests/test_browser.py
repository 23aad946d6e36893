"""A real browser (Debian's headless Chromium, driven by Playwright) uses the app: uploads a
photo, reconstructs it, morphs, draws faces; screenshots go to $FACEVAE_SCREENSHOTS or a tmp dir."""
import os
import shutil
from pathlib import Path

import pytest

from test_app import ASTRONAUT, server  # noqa: F401  (the app server fixture)

HOPPER = "assets/examples/grace_hopper.jpg"

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (.ci/run installs it)")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def browser_page(browser):
    """Opens a URL in a page of its own (a person of their own: a new browser context)."""
    def open_page(url):
        page = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
        # "load", not "networkidle": the app's session state keeps a heartbeat stream open
        page.goto(url, wait_until="load", timeout=90_000)
        page.get_by_text("Weights:").wait_for(timeout=60_000)
        return page

    return open_page


@pytest.fixture
def page(server, browser_page):  # noqa: F811
    return browser_page(server.local_url)


@pytest.fixture
def shots(tmp_path) -> Path:
    folder = Path(os.environ.get("FACEVAE_SCREENSHOTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


FACES_JS = ("() => [...document.querySelectorAll('img')].filter(i => i.complete && i.naturalWidth === 128"
            " && i.offsetParent !== null).length")


def visible_faces(page, expected: int) -> int:
    """Model outputs (128×128 images) loaded and visible, once `expected` have arrived or after
    30 s (a gallery's images load one by one after the event itself has finished)."""
    try:
        page.wait_for_function(f"() => ({FACES_JS})() >= {expected}", timeout=30_000)
    except Exception:
        pass  # the assertion that follows reports the count
    return page.evaluate(FACES_JS)


def run_and_wait(page, button: str):
    """Click a button and wait until Gradio has finished the event."""
    page.get_by_role("button", name=button).click()
    page.wait_for_timeout(300)
    page.wait_for_function("() => !document.body.innerText.includes('processing')", timeout=60_000)


def test_upload_reconstruct_morph_and_sample_in_a_browser(page, shots, browser_page):
    page.get_by_text("Weights:").wait_for()
    page.locator("input[type=file]").first.set_input_files(ASTRONAUT)  # an upload runs the reconstruction
    page.get_by_text("PSNR").wait_for(timeout=60_000)
    run_and_wait(page, "Reconstruct")
    assert "Found 1 face" in page.content()
    assert visible_faces(page, 2) == 2  # the aligned face and its reconstruction
    page.screenshot(path=str(shots / "reconstruct.png"), full_page=True)

    page.get_by_role("tab", name="Morph").click()
    page.locator("input[type=file]").nth(1).set_input_files(ASTRONAUT)
    page.locator("input[type=file]").nth(2).set_input_files(HOPPER)
    run_and_wait(page, "Make strip and GIF")
    assert visible_faces(page, 11) == 1 + 10  # the blend and a strip of 10 frames
    page.screenshot(path=str(shots / "morph.png"), full_page=True)
    assert page.locator("a[href*='.gif']").count() >= 1
    link = share_link(page, "morph")
    other = browser_page(link)  # the same two faces, halfway, from the link alone (no photos in it)
    wait_for_tab(other, "Morph")
    other.locator("#blend img").first.wait_for(timeout=30_000)
    other.wait_for_function("() => !document.body.innerText.includes('processing')", timeout=60_000)
    shared, original = image_pixels(other, "#blend img"), image_pixels(page, "#blend img")
    assert len(shared) == len(original) and max(abs(a - b) for a, b in zip(shared, original)) <= 3

    page.get_by_role("tab", name="Random faces").click()
    seed = page.locator(".block", has=page.get_by_text("Seed", exact=True)).locator("input[type=number]").first
    seed.fill("2024")
    run_and_wait(page, "Draw faces")
    assert visible_faces(page, 16) == 16
    page.screenshot(path=str(shots / "random_faces.png"), full_page=True)
    link = share_link(page, "random")
    other = browser_page(link)  # the same faces open from the link
    wait_for_tab(other, "Random faces")
    assert visible_faces(other, 16) == 16
    assert other.locator(".block", has=other.get_by_text("Seed", exact=True)).locator(
        "input[type=number]").first.input_value() == "2024"
    other.screenshot(path=str(shots / "random_faces_shared.png"), full_page=True)

    page.get_by_role("tab", name="Latent explorer").click()
    assert visible_faces(page, 1) == 1 and "PC 1" in page.content()
    page.screenshot(path=str(shots / "explorer.png"), full_page=True)


def wait_for_tab(page, name: str) -> None:
    """The page's load event (which reads a share link) has selected this tab."""
    page.wait_for_function(f"() => [...document.querySelectorAll('[role=tab]')].some("
                           f"t => t.innerText.trim() === {name!r} && t.getAttribute('aria-selected') === 'true')",
                           timeout=30_000)


def share_link(page, tab: str) -> str:
    """Press a tab's Share link button and read the link it shows."""
    page.locator(f"#{tab}-share-link").locator("xpath=../..").get_by_role("button", name="Share link").click()
    page.wait_for_function(f"() => document.querySelector('#{tab}-share-link textarea')?.value.includes('?share=')",
                           timeout=30_000)
    link = page.locator(f"#{tab}-share-link textarea").input_value()
    assert link.startswith("http://127.0.0.1") and "?share=" in link
    return link


def face_src(page) -> str:
    return page.locator("#explored img").first.get_attribute("src")


def test_smile_slider_edits_the_face_and_its_share_link_reopens_it(page, shots, browser_page):
    page.get_by_role("tab", name="Latent explorer").click()
    page.locator("#explored img").first.wait_for()
    before = face_src(page)
    smile = page.locator(".block", has=page.get_by_text("Smile", exact=True)).locator("input[type=number]").first
    smile.fill("2.5")
    smile.press("Enter")
    page.wait_for_function(f"() => document.querySelector('#explored img')?.src !== {before!r}", timeout=30_000)
    edited = face_src(page)
    assert edited != before
    width = page.locator("#explored img").first.bounding_box()["width"]
    assert width >= 256  # a 128-px face shown at least twice its size
    page.screenshot(path=str(shots / "explorer_smile.png"), full_page=True)

    link = share_link(page, "explore")

    other = browser_page(link)  # a second person opens the link
    wait_for_tab(other, "Latent explorer")
    other.locator("#explored img").first.wait_for(timeout=30_000)
    smile_value = other.locator(".block", has=other.get_by_text("Smile", exact=True)).locator("input[type=number]").first
    assert float(smile_value.input_value()) == 2.5
    other.wait_for_function("() => !document.body.innerText.includes('processing')", timeout=60_000)
    shared, original = image_pixels(other, "#explored img"), image_pixels(page, "#explored img")
    assert len(shared) == len(original) == 128 * 128 * 4
    assert max(abs(a - b) for a, b in zip(shared, original)) <= 3  # the link carries the latent in float16
    other.screenshot(path=str(shots / "explorer_shared.png"), full_page=True)


def image_pixels(page, selector: str) -> list[int]:
    """The RGBA values of a shown image, read through a canvas.

    The image is loaded afresh from the element's current address and decoded before it is
    read: a streamed image may be between two frames, its element not yet holding pixels.
    """
    return page.evaluate(f"""async () => {{
        const img = new Image();
        img.src = document.querySelector({selector!r}).src;
        await img.decode();
        const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
        const g = c.getContext('2d'); g.drawImage(img, 0, 0);
        return Array.from(g.getImageData(0, 0, c.width, c.height).data);
    }}""")


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


def test_the_live_mirror_reconstructs_the_webcam_stream(server, shots, tmp_path):  # noqa: F811
    from playwright.sync_api import sync_playwright

    video = fake_camera_video(tmp_path / "camera.y4m")
    camera_flags = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                    f"--use-file-for-fake-video-capture={video}"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS + camera_flags)
        page = browser.new_context(viewport={"width": 1280, "height": 1000}, permissions=["camera"]).new_page()
        page.goto(server.local_url, wait_until="load", timeout=90_000)
        camera = page.locator("#mirror-camera")
        camera.get_by_text("Click to Access Webcam").click()
        camera.get_by_role("button", name="capture photo").click()  # Gradio's record button
        srcs = set()
        for _ in range(40):  # 4 s of streaming
            page.wait_for_timeout(100)
            srcs.add(page.evaluate("() => document.querySelector('#mirror-reconstruction img')?.src"))
        srcs.discard(None)
        assert len(srcs) >= 3  # new reconstructions keep arriving while the face moves
        assert "PSNR" in page.locator("#mirror-status").inner_text()  # a face was found
        assert len(image_pixels(page, "#mirror-reconstruction img")) == 128 * 128 * 4
        page.locator("#mirror-camera").scroll_into_view_if_needed()
        page.screenshot(path=str(shots / "live_mirror.png"))
        browser.close()
