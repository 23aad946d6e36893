"""Shared fixtures: small synthetic images, made here (no real faces are stored in tests); one
cache of decoded images, one app server and one headless Chromium for the whole session."""
from __future__ import annotations

import hashlib
import os
import shutil
import socket
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import numpy as np
import pytest
from PIL import Image, ImageDraw

from train.browser import CHROMIUM, CHROMIUM_FLAGS

needs_chromium = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                    reason="Debian's chromium is not installed (.ci/run installs it)")


def synthetic_face(seed: int, size=(178, 218)) -> Image.Image:
    """A smooth face-like picture: skin-coloured ellipse, eyes and mouth on a gradient."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    background = rng.uniform(40, 200, 3)
    arr = np.empty((h, w, 3), np.float32)
    for c in range(3):
        arr[..., c] = background[c] + 40 * (yy / h) * (1 if c % 2 else -1)
    img = Image.fromarray(arr.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    skin = tuple(int(v) for v in rng.uniform([150, 100, 80], [240, 190, 160]))
    cx, cy = w / 2 + rng.uniform(-6, 6), h * 0.55 + rng.uniform(-6, 6)
    rx, ry = w * rng.uniform(0.25, 0.32), h * rng.uniform(0.28, 0.34)
    draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=skin)
    for side in (-1, 1):
        ex = cx + side * rx * 0.45
        draw.ellipse([ex - 8, cy - ry * 0.3 - 5, ex + 8, cy - ry * 0.3 + 5], fill=(40, 30, 30))
    draw.rectangle([cx - rx * 0.35, cy + ry * 0.45, cx + rx * 0.35, cy + ry * 0.52], fill=(150, 50, 60))
    return img


@pytest.fixture(scope="session")
def faces() -> list[Image.Image]:
    return [synthetic_face(i) for i in range(16)]


@pytest.fixture(scope="session")
def celeba_dir(tmp_path_factory):
    """A tiny folder in CelebA's layout: 40 train, 10 val, 5 test images."""
    root = tmp_path_factory.mktemp("celeba")
    (root / "img_align_celeba").mkdir()
    lines = []
    for i in range(55):
        name = f"{i + 1:06d}.jpg"
        synthetic_face(i).save(root / "img_align_celeba" / name, quality=95)
        lines.append(f"{name} {0 if i < 40 else 1 if i < 50 else 2}")
    (root / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="session", autouse=True)
def _cache_in_tmp(tmp_path_factory):
    """Decoded images are cached in a folder of this session's, not in ~/.cache: shared by its tests,
    as the cache is keyed by each file's path and size (a test's own files are in its own tmp_path)."""
    before = os.environ.get("FACEVAE_CACHE")
    os.environ["FACEVAE_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if before is None:
        os.environ.pop("FACEVAE_CACHE")
    else:
        os.environ["FACEVAE_CACHE"] = before


@pytest.fixture(scope="session")
def _onnx_exports(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("onnx_exports")


@pytest.fixture
def onnx_exported_once(_onnx_exports, monkeypatch):
    """push_model's ONNX export (facevae.export.export_all: 10 s and more for the full model) made
    once a session for each set of weights, and its files copied for every later push of the same
    weights. The export is deterministic (the same weights give the same bytes: test_publish checks
    them against the shipped files), so a push sends what it would have sent."""
    from facevae import export, loading

    def export_all(model, folder) -> dict[str, Path]:
        done = _onnx_exports / weights_digest(model)
        if not done.is_dir():
            export.export_all(model, done.with_suffix(".partial"))
            done.with_suffix(".partial").rename(done)
        copies = {}
        for name, (file, _, _) in export.ONNX_EXPORTS.items():
            (Path(folder) / file).parent.mkdir(parents=True, exist_ok=True)
            copies[name] = Path(shutil.copyfile(done / file, Path(folder) / file))
        return copies

    monkeypatch.setattr(loading, "export_all", export_all)


def weights_digest(model) -> str:
    """A digest of a model's architecture, image size and weights: what its export depends on."""
    from safetensors.torch import save

    state = {name: tensor.contiguous() for name, tensor in model.state_dict().items()}
    return hashlib.sha256(f"{model!r} {model.image_size}".encode() + save(state)).hexdigest()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def app_server():
    """The app with the bundled model, served on a free port of 127.0.0.1 for the whole session (its
    build and launch take seconds); the launched Blocks (local_url: its address)."""
    from app import CSS, build_demo
    from facevae import load_model
    from facevae.pipeline import FacePipeline

    demo = build_demo(FacePipeline(load_model()))
    demo.queue(default_concurrency_limit=2).launch(server_name="127.0.0.1", server_port=free_port(), css=CSS,
                                                   prevent_thread_lock=True, max_file_size=20 * 2**20, quiet=True)
    yield demo
    demo.close()


@pytest.fixture(scope="session")
def playwright():
    """Playwright's sync API for the session. While it runs, this thread has a running event loop
    (asyncio.run fails in it): the tests that use it run last (pytest_collection_modifyitems)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def chromium(playwright):
    """Debian's headless Chromium, launched once for the session: each test opens a context of its own
    (its own cookies, storage and cache: a person of its own)."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
    yield browser
    browser.close()


# The files that took longest, slowest first (--durations, 2 cores, beside other work): each worker
# takes the next file as it finishes one (--dist loadfile; --no-loadscope-reorder keeps this order),
# so the long ones start early and the two workers end together. A file not named runs after them.
SLOWEST_FIRST = ["test_train.py", "test_align.py", "test_app.py", "test_face_recognition.py", "test_evaluate.py",
                 "test_publish.py", "test_readme.py", "test_hub.py", "test_onnx.py", "test_feature_net.py",
                 "test_identity.py",
                 # the browser's, run last (see below)
                 "test_browser.py", "test_random_faces_js.py", "test_morph_gif_js.py", "test_mirror_js.py",
                 "test_refine_js.py", "test_align_js.py"]


def pytest_collection_modifyitems(items):
    """The test files that use the browser run last, the rest before them: from the first browser
    test on the session's Playwright holds an event loop in this thread (see playwright). Within
    each part the slowest files go first (SLOWEST_FIRST). Their tests are marked `browser` (a quick
    local run: -m "not browser")."""
    uses_browser = {item.module for item in items if "playwright" in getattr(item, "fixturenames", ())}
    for item in items:
        if "playwright" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.browser)

    def order(item) -> tuple[bool, int]:
        name = Path(str(item.fspath)).name
        return (getattr(item, "module", None) in uses_browser,
                SLOWEST_FIRST.index(name) if name in SLOWEST_FIRST else len(SLOWEST_FIRST))

    items.sort(key=order)
