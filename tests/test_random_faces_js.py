"""The Random faces tab in a real browser (Debian's headless Chromium): the page draws the seed's
latents with its own seeded generator (facevae/web/seeded.js, random.js), the numbers of Python's
facevae.seeded, decodes them, and gets /sample's faces; Count, Seed and Temperature redraw them with
no request to the server."""
import numpy as np
import pytest
from PIL import Image

from conftest import needs_chromium
from test_app import client, server  # noqa: F401  (the app server and its API client)

pytestmark = needs_chromium
CANVASES_JS = """() => [...document.querySelectorAll('#random-faces canvas')].map((canvas) => {
    const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    return Array.from(data.filter((_, i) => i % 4 !== 3));
})"""
SERVER_CALLS = ("queue/join", "/call/", "/run/")
SIDE, GAP = 128, 2


def open_app(chromium, server, init_script=None, query=""):  # noqa: F811
    """The app in a context of its own, every other host refused, init_script run before the page's
    own, on the Random faces tab; page.app_requests: its requests."""
    context = chromium.new_context(viewport={"width": 1280, "height": 1000})
    context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(server.local_url)
                  else route.abort())
    if init_script:
        context.add_init_script(init_script)
    page = context.new_page()
    page.app_requests = []
    page.on("request", lambda request: page.app_requests.append(request.url))
    page.goto(server.local_url + query, wait_until="load", timeout=90_000)
    page.get_by_text("Weights:").wait_for(timeout=60_000)
    page.get_by_role("tab", name="Random faces").click()
    return page


@pytest.fixture(scope="module")
def app_page(server, chromium):  # noqa: F811
    """One page of the app for the module, on the Random faces tab; page.first_faces: its first draw."""
    page = open_app(chromium, server)
    page.first_faces = drawn_faces(page, 0)
    yield page
    page.context.close()


@pytest.fixture
def open_page(server, chromium):  # noqa: F811
    pages = []

    def opened(**kwargs):
        pages.append(open_app(chromium, server, **kwargs))
        return pages[-1]

    yield opened
    for page in pages:
        page.context.close()


def draws(page) -> int:
    return int(page.locator("#random-faces").get_attribute("data-draws"))


def drawn_faces(page, after: int) -> np.ndarray:
    """The faces on the page's canvases (N×128×128×3 in [0, 1]) once more than `after` redraws are done."""
    page.wait_for_function(f"() => Number(document.querySelector('#random-faces').dataset.draws) > {after}",
                           timeout=60_000)
    return np.array(page.evaluate(CANVASES_JS), np.float32).reshape(-1, SIDE, SIDE, 3) / 255


def server_faces(client, count, seed, temperature, prior) -> np.ndarray:  # noqa: F811
    """/sample's grid cut into its faces (8 a row, 2 px apart)."""
    grid = np.asarray(Image.open(client.predict(count, seed, temperature, prior, api_name="/sample")).convert("RGB"),
                      np.float32) / 255
    return np.stack([grid[GAP + (i // 8) * (SIDE + GAP):][:SIDE, GAP + (i % 8) * (SIDE + GAP):][:, :SIDE]
                     for i in range(count)])


def control(page, label: str, kind: str):
    return page.locator(".block", has=page.get_by_text(label, exact=True)).locator(f"input[type={kind}]").first


def press(page, label: str, key: str, times: int) -> None:
    control(page, label, "range").focus()
    for _ in range(times):  # a step every 30 ms: faster than the faces may be drawn
        page.keyboard.press(key)
        page.wait_for_timeout(30)


def test_the_pages_generator_gives_pythons_numbers(app_page):
    from app import WEB, page_mixture_file, web_url
    from facevae import load_model
    from facevae.pipeline import FacePipeline
    from facevae.seeded import Seeded, seed_state

    pipeline = FacePipeline(load_model(), refinement=None)  # the app's weights, so its mixture file
    seeds = [0, 1, 7, 123456789, -5, 2**40 + 3]
    normals, latents = app_page.evaluate("""async ([seededUrl, randomUrl, mixtureUrl, seeds]) => {
        const seeded = await import(new URL(seededUrl, location.href));
        const random = await import(new URL(randomUrl, location.href));
        const normals = seeds.map((seed) => Array.from(seeded.normals(seeded.mulberry32(seeded.seedState(seed)), 1000)));
        const mixture = random.mixtureOf(await (await fetch(new URL(mixtureUrl, location.href))).arrayBuffer(), 200);
        const latents = [...random.seededLatents({seed: 2024, count: 5, temperature: 0.7, prior: 'mixture'}, 200, mixture),
                         ...random.seededLatents({seed: 3, count: 4, temperature: 1.3, prior: 'normal'}, 200)];
        return [normals, latents.map((z) => Array.from(z))];
    }""", [web_url(WEB / "seeded.js"), web_url(WEB / "random.js"), web_url(page_mixture_file(pipeline)), seeds])
    for seed, numbers in zip(seeds, normals):
        assert np.abs(np.array(numbers) - Seeded(seed_state(seed)).normals(1000)).max() < 1e-6
    expected = np.concatenate([pipeline.seed_latents(2024, 5, 0.7, "mixture"), pipeline.seed_latents(3, 4, 1.3, "normal")])
    assert np.abs(np.array(latents) - expected).max() < 1e-5


def test_the_page_draws_the_servers_faces_and_every_control_redraws_them_in_the_page(app_page, client):  # noqa: F811
    page = app_page
    assert page.locator("#random-faces-block [data-mode]").get_attribute("data-mode") == "browser"
    assert page.first_faces.shape == (16, SIDE, SIDE, 3)  # the default draw: 16 faces, seed 0, the mixture
    assert np.abs(page.first_faces - server_faces(client, 16, 0, 1.0, "mixture")).max() <= 2 / 255  # float16 weights

    before, requests = draws(page), len(page.app_requests)
    press(page, "Count", "ArrowLeft", 4)  # 16 -> 12
    control(page, "Seed", "number").fill("7")
    press(page, "Temperature", "ArrowLeft", 8)  # 1.0 -> 0.6
    page.wait_for_timeout(500)
    moved = drawn_faces(page, before)
    assert not [url for url in page.app_requests[requests:] if any(call in url for call in SERVER_CALLS)]
    assert draws(page) > before + 1
    assert np.abs(moved - server_faces(client, 12, 7, 0.6, "mixture")).max() <= 2 / 255

    before = draws(page)
    page.get_by_role("radio", name="normal").check()
    normal = drawn_faces(page, before)
    assert np.abs(normal - server_faces(client, 12, 7, 0.6, "normal")).max() <= 2 / 255
    before = draws(page)
    page.get_by_role("button", name="Draw faces").click()  # draws the same value again
    assert np.array_equal(drawn_faces(page, before), normal)
    assert not [url for url in page.app_requests[requests:] if any(call in url for call in SERVER_CALLS)]


def test_a_share_link_gives_its_faces_and_another_page_load_the_same_faces(app_page, open_page, client):  # noqa: F811
    from facevae.share import encode_state

    state = dict(tab="random", count=5, seed=123456789, temperature=0.8, prior="normal")
    page = open_page(query="?share=" + encode_state(state))
    page.wait_for_function("() => document.querySelectorAll('#random-faces canvas').length === 5", timeout=60_000)
    faces = drawn_faces(page, draws(page) - 1)
    assert np.abs(faces - server_faces(client, 5, 123456789, 0.8, "normal")).max() <= 2 / 255

    before = draws(page)  # back to the first page's draw: 16 faces, seed 0, temperature 1, the mixture
    press(page, "Count", "ArrowRight", 11)
    press(page, "Temperature", "ArrowRight", 4)
    control(page, "Seed", "number").fill("0")
    page.get_by_role("radio", name="mixture").check()
    page.wait_for_timeout(500)
    assert np.array_equal(drawn_faces(page, before), app_page.first_faces)


def test_without_webassembly_the_server_draws_the_same_faces(open_page, client):  # noqa: F811
    page = open_page(init_script="delete window.WebAssembly")
    faces = drawn_faces(page, 0)
    assert page.locator("#random-faces-block [data-mode]").get_attribute("data-mode") == "server"
    assert "Drawn on the server" in page.locator("#random-faces-block .random-mode").inner_text()
    assert np.abs(faces - server_faces(client, 16, 0, 1.0, "mixture")).max() <= 1 / 255  # the same decoder and PNG
