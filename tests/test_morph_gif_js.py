"""The Morph tab's strip and animated GIF made in a real browser (Debian's headless Chromium):
"Make strip and GIF" sends nothing to the server; the page decodes the frames of
FacePipeline.morph_frames (facevae/web/morph_strip.js), draws them on canvases in #morph-strip and
encodes the GIF in JavaScript (the vendored gifenc), an <img> in #morph-gif; without WebAssembly
the server makes both and the page shows them the same way."""
import base64
import io

import numpy as np
import pytest
import torch
from PIL import Image, ImageSequence

from conftest import needs_chromium
from test_app import client, server  # noqa: F401  (the app server and its API client)
from test_browser import browser, browser_page, decoding_mode, shots  # noqa: F401  (the session's Chromium)

pytestmark = needs_chromium
SERVER_CALLS = ("queue/join", "/call/", "/run/")
# A GIF frame has at most 256 colours (gifenc's PnnQuant, a palette per frame): its pixels differ from
# the strip's canvas by at most GIF_MEAN on average and GIF_MAX at worst, per channel. Measured on
# seeds 1 and 2, 5 frames: 2.5-3.0/255 and 14-16/255 (Pillow's GIF of the server: 2.5/255, 39/255).
GIF_MEAN, GIF_MAX = 4 / 255, 20 / 255
STRIP_JS = """() => [...document.querySelectorAll('#morph-strip canvas')].map((canvas) => {
    const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    return Array.from(data.filter((_, i) => i % 4 !== 3));
})"""
GIF_BYTES_JS = """async () => {
    const bytes = new Uint8Array(await (await fetch(document.querySelector('#morph-gif img').src)).arrayBuffer());
    let text = '';
    for (const byte of bytes) text += String.fromCharCode(byte);
    return btoa(text);
}"""


def make_strip(page, frames: int) -> list[str]:
    """Set the Frames slider, press "Make strip and GIF" and wait for the strip and its GIF; the
    requests to the app meanwhile (and for half a second after). The strip is the blend's: the
    button waits for the blend's first face (the page's load event asks the server for it)."""
    page.wait_for_function("() => document.querySelector('#blend canvas')?.dataset.frames >= 1", timeout=90_000)
    count = page.locator(".block", has=page.get_by_text("Frames", exact=True)).locator("input[type=number]").first
    count.fill(str(frames))
    count.press("Enter")
    before, requests = strips(page), len(page.app_requests)
    page.get_by_role("button", name="Make strip and GIF").click()
    page.wait_for_function(f"() => Number(document.querySelector('#morph-strip').dataset.draws) > {before}",
                           timeout=60_000)
    page.wait_for_timeout(500)
    return page.app_requests[requests:]


def strips(page) -> int:
    return int(page.locator("#morph-strip").get_attribute("data-draws"))


def strip_frames(page) -> np.ndarray:
    """The strip's canvases, N×128×128×3 in [0, 1]."""
    return np.array(page.evaluate(STRIP_JS), np.float32).reshape(-1, 128, 128, 3) / 255


def gif_frames(data: bytes) -> tuple[list[np.ndarray], Image.Image]:
    gif = Image.open(io.BytesIO(data))
    assert gif.format == "GIF"
    return [np.asarray(frame.convert("RGB"), np.float32) / 255 for frame in ImageSequence.Iterator(gif)], gif


def there_and_back(frames: int) -> list[int]:
    """animated_gif's order of the strip's frames: forwards, then back (more than two frames)."""
    return [*range(frames), *range(frames - 2, 0, -1)] if frames > 2 else list(range(frames))


def servers_strip(client, frames: int) -> tuple[np.ndarray, bytes]:  # noqa: F811
    """/morph_animation's strip and GIF for the tab's opening faces: seeds 1 and 2, spherical."""
    gallery, gif = client.predict(None, 1, None, 2, "spherical", frames, api_name="/morph_animation")
    strip = np.stack([np.asarray(Image.open(item["image"]).convert("RGB"), np.float32) / 255 for item in gallery])
    with open(gif, "rb") as file:
        return strip, file.read()


def test_the_page_makes_the_strip_and_gif_with_no_request(server, browser_page, client, shots):  # noqa: F811
    page = browser_page(server.local_url)
    page.get_by_role("tab", name="Morph").click()
    assert decoding_mode(page, "#blend") == "browser"
    frames = 5
    assert not [url for url in make_strip(page, frames) if any(call in url for call in SERVER_CALLS)]
    assert page.locator("#morph-animation [data-mode]").get_attribute("data-mode") == "browser"
    source = page.locator("#morph-gif img").get_attribute("src")
    assert source.startswith(("blob:", "data:image/gif"))
    page.locator("#morph-animation").scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "morph_strip.png"), full_page=True)

    strip = strip_frames(page)
    expected, server_gif = servers_strip(client, frames)
    assert strip.shape == (frames, 128, 128, 3)
    assert np.abs(strip - expected).max() <= 2 / 255  # float16 weights in the page

    animation, gif = gif_frames(base64.b64decode(page.evaluate(GIF_BYTES_JS)))
    server_frames, server_animation = gif_frames(server_gif)
    assert len(animation) == len(server_frames) == len(there_and_back(frames))
    assert gif.info["loop"] == server_animation.info["loop"] == 0
    for i, (frame, index) in enumerate(zip(animation, there_and_back(frames))):
        error = np.abs(frame - strip[index])
        gif.seek(i)
        server_animation.seek(i)
        assert gif.info["duration"] == server_animation.info["duration"]
        assert error.mean() <= GIF_MEAN and error.max() <= GIF_MAX

    with page.expect_download() as download:
        page.locator("#morph-animation a.gif-download").click()
    assert download.value.suggested_filename == "morph.gif"
    with open(download.value.path(), "rb") as file:
        assert file.read() == base64.b64decode(page.evaluate(GIF_BYTES_JS))

    # the page's t's are torch.linspace's (to float32's rounding, which in torch depends on the CPU)
    from app import WEB, web_url
    times = page.evaluate("async ([url, counts]) => { const m = await import(url); return counts.map(m.frameTimes); }",
                          [server.local_url + web_url(WEB / "morph_strip.js"), [2, 3, 5, 10, 32]])
    for count, ts in zip([2, 3, 5, 10, 32], times):
        assert np.allclose(ts, torch.linspace(0, 1, count).numpy(), rtol=0, atol=1e-7)


def test_without_webassembly_the_server_makes_the_same_strip_and_gif(server, browser_page, client):  # noqa: F811
    page = browser_page(server.local_url, init_script="delete window.WebAssembly")
    page.get_by_role("tab", name="Morph").click()
    make_strip(page, 3)
    assert page.locator("#morph-animation [data-mode]").get_attribute("data-mode") == "server"
    assert "Made on the server" in page.locator("#morph-animation .strip-mode").inner_text()
    assert page.locator("#morph-gif img").get_attribute("src").startswith("data:image/gif")
    expected, server_gif = servers_strip(client, 3)
    assert np.abs(strip_frames(page) - expected).max() <= 1 / 255  # the same decoder and PNG
    assert base64.b64decode(page.evaluate(GIF_BYTES_JS)) == server_gif  # the same frames, the same encoder


def test_the_vendored_gif_encoder_is_the_npm_packages():
    from app import WEB
    from train.fetch_web_runtime import check_manifest

    assert check_manifest(WEB / "vendor" / "gifenc", ["gifenc.esm.js", "LICENSE.md"]) == []
    assert "MIT License" in (WEB / "vendor" / "gifenc" / "LICENSE.md").read_text()
