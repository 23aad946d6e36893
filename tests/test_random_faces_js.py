"""The Random faces tab in a real browser (Debian's headless Chromium): the page draws the faces
(facevae/web/random.js) from the seed's latents (app.latent_parts), the same faces as /sample_gallery,
and the Temperature slider redraws them with no request to the server."""
import numpy as np
import pytest
import torch
from PIL import Image

from conftest import needs_chromium
from test_app import client, server  # noqa: F401  (the app server and its API client)

pytestmark = needs_chromium
CANVASES_JS = """() => [...document.querySelectorAll('#random-faces canvas')].map((canvas) => {
    const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    return Array.from(data.filter((_, i) => i % 4 !== 3));
})"""
SERVER_CALLS = ("queue/join", "/call/", "/run/")


@pytest.fixture
def open_page(server, chromium):  # noqa: F811
    """Opens the app in a context of its own, every other host refused, init_script run before the
    page's own; page.app_requests: its requests."""
    contexts = []

    def opened(init_script=None):
        context = chromium.new_context(viewport={"width": 1280, "height": 1000})
        contexts.append(context)
        context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(server.local_url)
                      else route.abort())
        if init_script:
            context.add_init_script(init_script)
        page = context.new_page()
        page.app_requests = []
        page.on("request", lambda request: page.app_requests.append(request.url))
        page.goto(server.local_url, wait_until="load", timeout=90_000)
        page.get_by_text("Weights:").wait_for(timeout=60_000)
        return page

    yield opened
    for context in contexts:
        context.close()


@pytest.fixture
def page(open_page):
    return open_page()


def draws(page) -> int:
    return int(page.locator("#random-faces").get_attribute("data-draws"))


def drawn_faces(page, after: int) -> np.ndarray:
    """The faces on the page's canvases (N×128×128×3 in [0, 1]) once more than `after` redraws are done."""
    page.wait_for_function(f"() => Number(document.querySelector('#random-faces').dataset.draws) > {after}",
                           timeout=60_000)
    return np.array(page.evaluate(CANVASES_JS), np.float32).reshape(-1, 128, 128, 3) / 255


def server_faces(client, count, seed, temperature, prior) -> np.ndarray:  # noqa: F811
    gallery, _ = client.predict(count, seed, temperature, prior, api_name="/sample_gallery")
    return np.stack([np.asarray(Image.open(item["image"]).convert("RGB"), np.float32) / 255 for item in gallery])


def test_the_page_draws_the_servers_faces_and_the_temperature_redraws_them_in_the_page(page, client):  # noqa: F811
    page.get_by_role("tab", name="Random faces").click()
    first = drawn_faces(page, 0)  # the page opens with the default draw: 16 faces, seed 0, the mixture
    assert first.shape == (16, 128, 128, 3)
    assert page.locator("#random-faces-block [data-mode]").get_attribute("data-mode") == "browser"
    assert np.abs(first - server_faces(client, 16, 0, 1.0, "mixture")).max() <= 2 / 255  # float16 weights

    seed = page.locator(".block", has=page.get_by_text("Seed", exact=True)).locator("input[type=number]").first
    before = draws(page)
    seed.fill("7")
    page.get_by_role("button", name="Draw faces").click()
    seven = drawn_faces(page, before)
    assert np.abs(seven - server_faces(client, 16, 7, 1.0, "mixture")).max() <= 2 / 255
    assert np.abs(seven - first).mean() > 0.05  # other faces

    slider = page.locator(".block", has=page.get_by_text("Temperature", exact=True)).locator("input[type=range]").first
    slider.focus()
    before, requests = draws(page), len(page.app_requests)
    for _ in range(8):  # 1.0 -> 0.6, a step every 30 ms: faster than the faces may be drawn
        page.keyboard.press("ArrowLeft")
        page.wait_for_timeout(30)
    cooler = drawn_faces(page, before)
    page.wait_for_timeout(500)
    assert not [url for url in page.app_requests[requests:] if any(call in url for call in SERVER_CALLS)]
    assert draws(page) > before
    assert np.abs(cooler - server_faces(client, 16, 7, 0.6, "mixture")).max() <= 2 / 255


def test_without_webassembly_the_server_draws_the_same_faces(open_page, client):  # noqa: F811
    page = open_page("delete window.WebAssembly")
    page.get_by_role("tab", name="Random faces").click()
    faces = drawn_faces(page, 0)
    assert page.locator("#random-faces-block [data-mode]").get_attribute("data-mode") == "server"
    assert "Drawn on the server" in page.locator("#random-faces-block .random-mode").inner_text()
    assert np.abs(faces - server_faces(client, 16, 0, 1.0, "mixture")).max() <= 1 / 255  # the same decoder and PNG


def test_the_seed_gives_the_same_latents_on_every_run_and_the_pipelines():
    from app import float32_text, latent_parts, random_latents
    from facevae import load_model
    from facevae.pipeline import FacePipeline

    pipeline = FacePipeline(load_model())
    for prior in ("mixture", "normal"):
        centers, offsets = latent_parts(pipeline, 5, 2024, prior)
        again = latent_parts(pipeline, 5, 2024, prior)
        assert torch.equal(centers, again[0]) and torch.equal(offsets, again[1])
        for temperature in (0.3, 1.0, 1.5):
            expected = pipeline.seed_latents(2024, 5, temperature, prior)
            assert torch.equal(centers + temperature * offsets, expected)
            value = dict(centers=float32_text(centers), offsets=float32_text(offsets), count=5, temperature=temperature)
            assert torch.equal(random_latents(value, pipeline.model.latent_dim), expected)  # what the page is sent
