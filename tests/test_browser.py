"""A real browser (Debian's headless Chromium, driven by Playwright) uses the app: uploads a
photo, reconstructs it, morphs, draws faces; screenshots go to $FACEVAE_SCREENSHOTS or a tmp dir."""
import os
import shutil
from pathlib import Path

import pytest

from test_app import ASTRONAUT, client, server  # noqa: F401  (the app server fixtures)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (.ci/run installs it)")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def page(server, tmp_path):  # noqa: F811
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(server.local_url, wait_until="networkidle")
        yield page
        browser.close()


@pytest.fixture
def shots(tmp_path) -> Path:
    folder = Path(os.environ.get("FACEVAE_SCREENSHOTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def loaded_images(locator) -> int:
    """How many <img> inside the locator have finished loading real pixels."""
    return locator.evaluate("el => [...el.querySelectorAll('img')].filter(i => i.complete && i.naturalWidth > 0).length")


def test_upload_reconstruct_morph_and_sample_in_a_browser(page, shots):
    page.get_by_text("Weights:").wait_for()
    page.locator("input[type=file]").first.set_input_files(ASTRONAUT)
    page.wait_for_function("() => [...document.querySelectorAll('img')].filter(i => i.src.includes('/file=') || i.src.includes('gradio_api/file')).length >= 3",
                           timeout=60_000)
    page.get_by_text("PSNR").wait_for(timeout=60_000)
    page.screenshot(path=str(shots / "reconstruct.png"), full_page=True)
    assert "Found 1 face" in page.content()

    page.get_by_role("tab", name="Morph").click()
    page.locator("input[type=file]").nth(1).set_input_files(ASTRONAUT)
    page.get_by_role("button", name="Make strip and GIF").click()
    page.locator("a[href*='.gif']").first.wait_for(state="attached", timeout=60_000)  # the GIF's download link
    page.wait_for_function("() => !document.body.innerText.includes('processing')", timeout=60_000)
    page.wait_for_timeout(500)
    page.screenshot(path=str(shots / "morph.png"), full_page=True)

    page.get_by_role("tab", name="Random faces").click()
    page.get_by_role("button", name="Draw faces").click()
    page.locator("a[href*='.png']").first.wait_for(state="attached", timeout=60_000)  # the grid's download link
    page.wait_for_function("() => !document.body.innerText.includes('processing')", timeout=60_000)
    page.wait_for_timeout(500)
    page.screenshot(path=str(shots / "random_faces.png"), full_page=True)

    page.get_by_role("tab", name="Latent explorer").click()
    page.wait_for_timeout(1500)
    page.screenshot(path=str(shots / "explorer.png"), full_page=True)
    assert "active of 200" in page.content() or page.locator("img").count() > 0
