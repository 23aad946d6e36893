"""FaceVAE web app: reconstruct a selfie, draw random faces, morph two faces, explore the latent space.

    python app.py [--host 127.0.0.1] [--port 7860] [--share] [--model REPO_ID_OR_FOLDER]

A thin Gradio UI over facevae.pipeline; every event has an api_name for gradio_client. Each tab
is one function that lays out its components and wires its events, with its handlers beside it.
"""
from __future__ import annotations

import argparse
import asyncio
import atexit
import base64
import contextlib
import functools
import gzip
import hashlib
import inspect
import json
import logging
import math
import os
import shutil
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import parse_qs

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import brotli  # Gradio's own dependency (its BrotliMiddleware)
import gradio as gr
import numpy as np
import pandas as pd
import torch
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.responses import Response

import facevae
from facevae import load_model
from facevae.align import TEMPLATE_FILE, align_face
from facevae.losses import face_box
from facevae.photo import MAX_BYTES, PhotoError, load_photo
from facevae.latent import ACTIVE_KL, UnknownAttribute, attribute_label, attribute_order
from facevae.pipeline import INTERPOLATIONS, FacePipeline, animated_gif, grid_png, jpeg_bytes, png_bytes
from facevae.refine import Refinement
from facevae.seeded import mixture_bytes
from facevae.share import ShareError, decode_state, encode_state, latent_text, text_latent

log = logging.getLogger("facevae.app")
EXAMPLES = sorted(str(p) for p in (Path(__file__).parent / "assets" / "examples").glob("*.jpg"))
DIMENSION_SLIDERS = 8
PC_SLIDERS = 6
FIRST_ATTRIBUTE_SLIDERS = 8  # shown at once; the others under "More attributes"
SEED_INFO = "Any whole number; very large ones are taken modulo 2⁶⁴."
OUTPUT_DIR = Path(tempfile.mkdtemp(prefix="facevae-"))
atexit.register(shutil.rmtree, OUTPUT_DIR, ignore_errors=True)
PAGE_CACHE = Path(tempfile.mkdtemp(prefix="facevae-page-"))  # files the app makes for the page (page_mixture_file)
atexit.register(shutil.rmtree, PAGE_CACHE, ignore_errors=True)
# Gradio copies each returned file into its own cache as the event ends; ours are kept a while
# only so that a slow event never loses its file.
OUTPUT_MAX_AGE_SECONDS = 600
_next_cleanup = 0.0
_cleanup_lock = threading.Lock()
CSS = """
#explored { min-height: 420px; }
"""
WEB = Path(facevae.__file__).parent / "web"  # the face component's module and the vendored ONNX Runtime Web
MIRROR_SIDE = 640  # the page's mirror reads camera frames at most this wide
MAX_OFFSET = 100.0  # a slider goes from -3 to 3; far past 100 a latent decodes to nothing but a blot
# Completes a share link in the browser: the server only knows the state, not the page's address.
SHARE_LINK_JS = """(query) => query ? window.location.origin + window.location.pathname + query : ''"""


class PhotoInput(gr.Image):
    """gr.Image whose upload reaches facevae.align as a file path, undecoded: align's checks
    give clear messages for non-images, damaged files and decompression bombs, where Gradio's
    own decoding would fail with a cryptic error, or decode the bomb."""

    is_template = True  # drawn by the frontend's ordinary Image component

    def preprocess(self, payload):
        if payload is not None and payload.path:
            return payload.path
        return super().preprocess(payload)


def user_errors(fn):
    """Turn a bad photo, seed or attribute name into a message in the UI (and the API's error),
    not a traceback. Generator handlers (results in steps) stay generators, as Gradio needs."""

    @contextlib.contextmanager
    def messages():
        try:
            yield
        except (PhotoError, ShareError) as error:
            raise gr.Error(str(error)) from None
        except UnknownAttribute as error:
            raise gr.Error(error.args[0]) from None

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def steps(*args, **kwargs):
            with messages():
                yield from fn(*args, **kwargs)

        return steps

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with messages():
            return fn(*args, **kwargs)

    return wrapper


def save_output(data: bytes, filename: str) -> str:
    """Write a download under its own name, in a folder of its own so that requests never
    overwrite each other's files. Once a minute, folders older than OUTPUT_MAX_AGE_SECONDS go."""
    global _next_cleanup
    now = time.time()
    if now >= _next_cleanup and _cleanup_lock.acquire(blocking=False):  # one thread cleans, the others go on
        try:
            _next_cleanup = now + 60
            for old in OUTPUT_DIR.iterdir():
                if old.stat().st_mtime < now - OUTPUT_MAX_AGE_SECONDS:
                    shutil.rmtree(old, ignore_errors=True)
        finally:
            _cleanup_lock.release()
    path = Path(tempfile.mkdtemp(dir=OUTPUT_DIR)) / filename
    path.write_bytes(data)
    return str(path)


def image_file(image, filename: str) -> str:
    """Images leave the handlers as PNG files of their own. Handed a PIL image, Gradio would
    write it to a path named by its content, in place: two requests with the same result (two
    people on the same example) could then rewrite the file while the first is downloading
    it, and that download fails ("Too little data for declared Content-Length"). Files that we
    pass are copied into Gradio's cache atomically. PNG unless the name ends in .jpg."""
    return save_output(jpeg_bytes(image) if filename.endswith(".jpg") else png_bytes(image), filename)


# An HTML block's module (props.module_url, one of facevae/web/) mounts itself on the block.
PAGE_MODULE_JS = "import(new URL(props.module_url, location.href)).then(m => m.mount(element, props, server, watch, trigger));"


# Buttons, captions and example thumbnails of the page's own blocks, in the theme's colours.
PAGE_BLOCK_STYLE = """
  button { padding: 6px 14px; border-radius: var(--button-large-radius); cursor: pointer;
           border: 1px solid var(--button-secondary-border-color); background: var(--button-secondary-background-fill);
           color: var(--button-secondary-text-color); font-weight: var(--button-large-text-weight); }
  button:disabled { opacity: 0.5; cursor: default; }
  button.start { background: var(--button-primary-background-fill); color: var(--button-primary-text-color);
                 border-color: var(--button-primary-border-color); }
  figcaption { font-size: var(--block-label-text-size); color: var(--block-label-text-color); }
  .examples { display: flex; flex-wrap: wrap; gap: 6px; align-items: center; }
  .examples img { cursor: pointer; border-radius: 4px; }
  .photo-note { color: var(--body-text-color-subdued); }
"""


def web_url(path: Path) -> str:
    """The address of a static file or folder (gr.set_static_paths) relative to the page, so that the
    app works under a path prefix too, with its content's version (?v=): a new release's files have
    new addresses, so the browser may keep each one for a year (PageFiles). A folder's address ends
    in / before the version; runtime.js's fileUrl puts its files' names there."""
    path = path.resolve()
    return f"gradio_api/file={path}{'/' if path.is_dir() else ''}?v={content_version(path)}"


@functools.cache
def content_version(path: Path) -> str:
    """A short hash of a file's bytes, or of a folder's files' names and bytes."""
    digest = hashlib.sha256()
    for file in sorted(path.rglob("*")) if path.is_dir() else [path]:
        if file.is_file():
            digest.update(file.relative_to(path).as_posix().encode() if path.is_dir() else b"")
            digest.update(file.read_bytes())
    return digest.hexdigest()[:12]


class PageFiles:
    """ASGI middleware in front of Gradio's /file= route, for the page's own modules, runtime, models
    and mixture prior (.js, .mjs, .wasm, .onnx, .f16 under `roots`): each is sent brotli- or
    gzip-compressed where the browser takes it (compressed once, on its first request, and kept), with an ETag, and cached: for
    a year and never revalidated when its URL carries its version (web_url), else revalidated on each
    use (modules a module imports by a relative path). Anything else goes on to Gradio.
    docs/browser.md measures what each encoding saves."""

    SUFFIXES = {".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm",
                ".onnx": "application/octet-stream", ".f16": "application/octet-stream"}
    BROTLI_QUALITY = 9  # on the runtime's .wasm: 2.69 MB in 5 s, against 2.83 MB in 0.8 s at 5 (gzip -9: 3.65 MB)
    YEAR = "public, max-age=31536000, immutable"

    def __init__(self, app, roots: list[Path]):
        self.app, self.roots = app, [root.resolve() for root in roots]
        self.encoded: dict[tuple[Path, str], bytes] = {}
        self.lock = asyncio.Lock()

    async def __call__(self, scope, receive, send):
        file = self.own_file(scope)
        if file is None:
            return await self.app(scope, receive, send)
        response = await self.response(file, Headers(scope=scope), scope.get("query_string", b"").decode())
        await response(scope, receive, send)

    def own_file(self, scope) -> Path | None:
        """The file a GET of /file=… asks for, when it is one of ours."""
        if scope["type"] != "http" or scope["method"] != "GET" or "/file=" not in scope["path"]:
            return None
        file = Path(scope["path"].split("/file=", 1)[1]).resolve()
        ours = any(file.is_relative_to(root) for root in self.roots)
        return file if ours and file.suffix in self.SUFFIXES and file.is_file() else None

    async def response(self, file: Path, headers: Headers, query: str) -> Response:
        version = content_version(file)
        accepted = {part.split(";")[0].strip() for part in headers.get("accept-encoding", "").split(",")}
        encoding = next((name for name in ("br", "gzip") if name in accepted), "identity")
        etag = f'"{version}-{encoding}"'
        # the version of the file, or of a folder it is in (runtime.js's fileUrl keeps the folder's)
        versions = {content_version(folder) for folder in [file, *file.parents]
                    if any(folder.is_relative_to(root) for root in self.roots)}
        cache = self.YEAR if set(parse_qs(query).get("v", [])) & versions else "no-cache"
        common = {"ETag": etag, "Cache-Control": cache, "Vary": "Accept-Encoding"}
        if headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=common)
        body = await self.encode(file, encoding)
        if encoding != "identity":
            common["Content-Encoding"] = encoding
        return Response(body, headers=common, media_type=self.SUFFIXES[file.suffix])

    async def encode(self, file: Path, encoding: str) -> bytes:
        key = (file, encoding)
        if key in self.encoded:
            return self.encoded[key]
        async with self.lock:  # one compression at a time; each file and encoding once
            if key not in self.encoded:
                self.encoded[key] = await asyncio.to_thread(encoded, file.read_bytes(), encoding, self.BROTLI_QUALITY)
        return self.encoded[key]


def encoded(data: bytes, encoding: str, brotli_quality: int) -> bytes:
    if encoding == "br":
        return brotli.compress(data, quality=brotli_quality)
    if encoding == "gzip":
        return gzip.compress(data, compresslevel=9, mtime=0)
    return data


class FaceVAEBlocks(gr.Blocks):
    """gr.Blocks whose server sends the page's files compressed and cacheable (PageFiles), however
    it is launched (app.py, the tests, a Space)."""

    page_roots: tuple[Path, ...] = ()  # PageFiles' roots, set by build_demo

    def launch(self, *args, app_kwargs: dict | None = None, **kwargs):
        app_kwargs = dict(app_kwargs or {})
        app_kwargs["middleware"] = [*app_kwargs.get("middleware", []), Middleware(PageFiles, roots=self.page_roots)]
        return super().launch(*args, app_kwargs=app_kwargs, **kwargs)


class ValueHTML(gr.HTML):
    """An HTML block whose value is a plain JSON object, passed through as it is both ways."""

    def preprocess(self, payload):
        return payload

    def postprocess(self, value):
        return value

    def api_info(self):
        return {"type": "object"}


class FaceCanvas(ValueHTML):
    """A face drawn on a <canvas> from its latent (facevae/web/face.js): decoded in the browser by
    ONNX Runtime Web, or on the server (its `decode` server function) where the browser cannot.

    Its value says which face: {"kind": "explore", "z": [...], "dimensions": [...], "sliders": [...]}
    (a latent and the explorer's slider values) or {"kind": "morph", "a": [...], "b": [...], "t": 0.5,
    "method": "spherical"}. latent_of turns a value into the latent, as face.js does in the page."""

    TEMPLATE = ("<div class='face-label'>${label}</div>"
                "<canvas width='${size}' height='${size}' role='img' aria-label='${label}'></canvas>"
                "<div class='face-footer'><span class='face-mode'>Loading the decoder…</span>"
                "<a class='face-download' download='${filename}' href='#'>Download PNG</a></div>")
    STYLE = """
        canvas { display: block; width: 100%; height: ${height}px; object-fit: contain; image-rendering: auto; }
        .face-label { font-size: var(--block-label-text-size); color: var(--block-label-text-color); margin-bottom: 4px; }
        .face-footer { display: flex; justify-content: space-between; font-size: var(--text-sm);
                       color: var(--body-text-color-subdued); margin-top: 4px; }
    """
    JS = PAGE_MODULE_JS

    def __init__(self, pipeline: FacePipeline, latent_of, label: str, basis: dict | None = None, height: int = 400,
                 filename: str = "face.png", **kwargs):
        def latent_basis(_=None):  # a server function is always handed the call's data, none here
            """What face.js needs to compute latents, fetched once: as a prop, the page would copy
            and compare it on every slider move."""
            return basis or {}

        def decode(value):
            """The face as a PNG data URL, for browsers that cannot decode it themselves; a value
            that is no face gets a message (a raised error would reach the page as a bare 500)."""
            try:
                z = latent_of(value)
            except (KeyError, TypeError, ValueError, gr.Error) as error:
                return {"error": f"cannot draw this face: {error}"}
            return {"png": "data:image/png;base64," + base64.b64encode(png_bytes(pipeline.decode(z)[0])).decode()}

        onnx = pipeline.model.onnx.get("decoder")
        super().__init__(value=None, label=label, html_template=self.TEMPLATE, css_template=self.STYLE,
                         js_on_load=self.JS, server_functions=[latent_basis, decode], apply_default_css=False,
                         module_url=web_url(WEB / "face.js"),
                         runtime_url=web_url(WEB / "vendor" / "onnxruntime-web"),
                         onnx_url=web_url(onnx) if onnx is not None else None,
                         size=pipeline.model.image_size, height=height, filename=filename, **kwargs)


def seed_input(label: str, value: int) -> gr.Number:
    return gr.Number(label=label, value=value, precision=0, info=SEED_INFO)


def share_row(tab: str) -> tuple[gr.Button, gr.Textbox]:
    with gr.Row():
        button = gr.Button("Share link", scale=0, min_width=160)
        link = gr.Textbox(label="Link to this result (opens the app as it is now)", buttons=["copy"], scale=4,
                          interactive=False, placeholder="Press Share link", elem_id=f"{tab}-share-link")
    return button, link


def wire_share(button: gr.Button, state_fn, inputs: list, link: gr.Textbox) -> None:
    """The button asks the server for the state's text, then the browser prefixes its address."""
    button.click(user_errors(state_fn), inputs, link, api_visibility="private").then(
        None, link, link, js=SHARE_LINK_JS, api_visibility="private")


def activity_chart(activity: list[tuple[int, float]] | None) -> gr.BarPlot:
    """Bars of each latent dimension's average KL (pipeline.dimension_activity), most active
    first (hover for the numbers)."""
    if activity is None:
        return gr.BarPlot(visible=False)
    table = pd.DataFrame(activity, columns=["dimension", "KL (nats)"])
    table["dimension"] = "dim " + table["dimension"].astype(str)
    active = int((table["KL (nats)"] > ACTIVE_KL).sum())
    return gr.BarPlot(table, x="dimension", y="KL (nats)", sort="-y", x_axis_labels_visible=False, y_lim=[0, None],
                      height=220, label=f"Active dimensions: {active} of {len(table)} carry more than {ACTIVE_KL} nats")


PHOTO_LATENT_TEMPLATE = """
<label class='photo-drop'>${label}: choose a file or drop it here <input type='file' accept='image/*'></label>
<div class='photo-row'><canvas width='${image_size}' height='${image_size}' aria-label='the aligned face'></canvas>
  <div class='examples'>${examples}</div></div>
<p class='photo-note'>Loading the models…</p>
"""
PHOTO_LATENT_STYLE = PAGE_BLOCK_STYLE + """
  .photo-drop { display: block; border: 2px dashed var(--border-color-primary); padding: 10px; border-radius: 8px; }
  .photo-row { display: flex; gap: 8px; align-items: center; margin-top: 6px; }
  .photo-row canvas { width: 96px; height: 96px; }
  .examples img { height: 48px; }
  .photo-note { font-size: var(--text-sm); }
"""


def examples_html() -> str:
    """The example photos as thumbnails a page module loads when clicked (picker.js)."""
    return " ".join(f"<img class='example' src='{web_url(Path(path))}' alt='{Path(path).stem}'>" for path in EXAMPLES)


def photo_latent_input(pipeline: FacePipeline, label: str, elem_id: str) -> PagePhotoBlock:
    """A photo chosen in the page (facevae/web/photo_input.js), whose value is its refined latent,
    {"z": [...]}, computed in the page: the photo itself is not sent."""
    def photo_latent(photo_url):
        """The fallback of a page that cannot run the models: the photo, sent, its latent found here."""
        try:
            face = align_face(url_bytes(photo_url))[0]
        except PhotoError as error:
            return {"error": str(error)}
        return dict(z=pipeline.refine(face, pipeline.encode(face)).tolist(), face=data_url(face))

    return PagePhotoBlock(pipeline, "photo_input.js", PHOTO_LATENT_TEMPLATE, [photo_latent],
                          css_template=PHOTO_LATENT_STYLE, label=label, examples=examples_html(), elem_id=elem_id)


def face_source(pipeline: FacePipeline, name: str, seed: int) -> tuple[PagePhotoBlock, gr.Number]:
    """A photo chosen in the page with a seed beside it, for when no photo is given."""
    with gr.Column():
        photo = photo_latent_input(pipeline, f"Face {name} (empty: a random face from the seed)", f"morph-photo-{name.lower()}")
        return photo, seed_input(f"Seed {name}", seed)


def chosen_latent(pipeline: FacePipeline, photo, seed) -> torch.Tensor:
    """A face's latent: a photo's from the page (a photo_latent_input value), a photo file's (an
    API call's), else the seed's draw."""
    if isinstance(photo, dict):
        return value_latent(photo["z"], pipeline.model.latent_dim)
    return pipeline.latent(photo, int(seed or 0))


def checked_offsets(offsets: dict) -> dict:
    """Offsets that are numbers the decoder can draw: NaN, infinities and values like 1e308 would
    decode to a blank image, so they get a message instead."""
    for key, value in offsets.items():
        if not (math.isfinite(value) and abs(value) <= MAX_OFFSET):
            raise gr.Error(f"offset {key}: {value} is not a number from -{MAX_OFFSET:g} to {MAX_OFFSET:g} "
                           f"(the sliders go from -3 to 3)")
    return offsets


def value_latent(numbers, latent_dim: int) -> torch.Tensor:
    """A latent sent back by the page (a FaceCanvas value), checked."""
    z = torch.tensor([float(v) for v in numbers], dtype=torch.float32)
    if z.shape != (latent_dim,) or not torch.isfinite(z).all():
        raise ValueError(f"a latent is {latent_dim} finite numbers")
    return z


# ---------------------------------------------------------------- Reconstruct


def reconstruction_summary(result) -> str:
    """The encoder's reconstruction's error, on the face and on the whole frame."""
    return (f"**Error on the face** (brows to mouth): PSNR {result.face_psnr:.2f} dB · "
            f"**on the whole frame**: PSNR {result.psnr:.2f} dB (MSE {result.mse:.4f})")


def refined_summary(encoded, refined, steps: int) -> str:
    """The refined reconstruction's error beside the encoder's, face first: the refinement weighs
    the face, so the whole frame's figure may fall while the face gets closer."""
    return (f"**Error on the face** (brows to mouth): PSNR {refined.face_psnr:.2f} dB refined, "
            f"{encoded.face_psnr:.2f} dB from the encoder alone · **on the whole frame**: {refined.psnr:.2f} dB "
            f"refined, {encoded.psnr:.2f} dB from the encoder alone  \nRefined in {steps} steps, which weigh the "
            f"face most. The explorer and the morph start from this refined face.")


def page_models(pipeline: FacePipeline) -> dict:
    """The props a page module needs to find, align, encode and refine a face itself
    (facevae/web/photo.js): the runtime, the ONNX files, the alignment's template, the refinement's
    settings (the server's own) and the limits the server applies to a photo."""
    model = pipeline.model
    return dict(runtime_url=web_url(WEB / "vendor" / "onnxruntime-web"),
                onnx_urls={name: web_url(path) for name, path in model.onnx.items()},
                face_models_url=web_url(WEB / "vendor" / "face-api"),
                template=json.loads(TEMPLATE_FILE.read_text()), image_size=model.image_size,
                face_box=list(face_box(model.image_size)), max_bytes=MAX_BYTES,
                refinement=asdict(pipeline.refinement or Refinement(steps=0)))


def data_url(image, kind: str = "png") -> str:
    data = png_bytes(image) if kind == "png" else jpeg_bytes(image)
    return f"data:image/{kind};base64," + base64.b64encode(data).decode()


def url_bytes(url: str) -> bytes:
    """The bytes of a data: URL from the page; anything else is no photo."""
    head, _, body = str(url).partition(",")
    if not head.startswith("data:") or not head.endswith(";base64"):
        raise PhotoError("The page sent no photo.")
    try:
        return base64.b64decode(body, validate=True)
    except ValueError:
        raise PhotoError("The page sent a damaged photo.") from None


class PagePhotoBlock(gr.HTML):
    """An HTML block run by one of facevae/web/'s modules, whose photos stay in the page; its
    server functions are the fallback for browsers that cannot run the models."""

    def __init__(self, pipeline: FacePipeline, module: str, template: str, server_functions: list, **kwargs):
        super().__init__(value=None, html_template=template, js_on_load=PAGE_MODULE_JS, apply_default_css=False,
                         server_functions=server_functions, module_url=web_url(WEB / module),
                         **page_models(pipeline), **kwargs)

    def api_info(self):
        return {"type": "object"}


RECONSTRUCT_TEMPLATE = """
<div class='photo-picker'>
  <label class='photo-drop'>Photo: choose a file, drop it here or paste it
    <input type='file' accept='image/*'></label>
  <button type='button' class='camera'>Camera</button>
  <video class='camera-view' hidden playsinline muted></video>
  <button type='button' class='snapshot' hidden>Take the photo</button>
  <label>Face (1 = largest) <input class='face-number' type='number' min='1' value='1' step='1'></label>
</div>
<div class='examples'>Examples: ${examples}</div>
<p class='photo-note'>Loading the models…</p>
<div class='reconstruct-row'>
  <figure class='detections'><figcaption>Where the face was found</figcaption><canvas width='320' height='320'></canvas></figure>
  <div id='reconstruct-faces'>
    <figure id='reconstruct-aligned'><figcaption>Aligned face (model input)</figcaption>
      <canvas width='${image_size}' height='${image_size}'></canvas></figure>
    <figure id='reconstruct-refined'><figcaption>Reconstruction</figcaption>
      <canvas width='${image_size}' height='${image_size}' data-refined='false'></canvas></figure>
  </div>
</div>
<p class='status' role='status'></p>
<div class='summary'></div>
<button type='button' class='likeness' hidden>Ask dlib on the server: same person? (sends the 128×128 aligned face and its reconstruction)</button>
<span class='likeness-result'></span>
"""
RECONSTRUCT_STYLE = PAGE_BLOCK_STYLE + """
  .photo-picker { display: flex; flex-wrap: wrap; gap: 12px; align-items: center; }
  .photo-drop { border: 2px dashed var(--border-color-primary); padding: 16px; border-radius: 8px; }
  .examples img { height: 64px; }
  .camera-view { max-width: 320px; }
  .reconstruct-row { display: flex; flex-wrap: wrap; gap: 12px; }
  /* on a phone the photo's face and its reconstruction stay side by side, two narrower columns */
  #reconstruct-faces { display: flex; flex: 1 1 300px; gap: 12px; min-width: 0; }
  #reconstruct-faces figure { flex: 1; min-width: 0; margin: 0; }
  #reconstruct-faces canvas { width: 100%; max-width: 360px; aspect-ratio: 1; image-rendering: auto; }
  .detections { margin: 0; flex: 0 1 240px; } .detections canvas { max-width: 240px; }
"""


def reconstruct_tab(pipeline: FacePipeline) -> None:
    @user_errors
    def reconstruct(photo, face_number, progress=gr.Progress()):
        """/reconstruct: the encoder's reconstruction at once, then the refined one (facevae.refine)."""
        if not photo:
            raise gr.Error("Upload a photo first (or pick an example).")
        result = pipeline.reconstruct(photo, int(face_number or 1) - 1)
        if not result.info.found or result.info.notes:
            gr.Warning(result.info.message)
        face, detections = image_file(result.face, "face.png"), image_file(result.detections, "detections.jpg")

        def shown(result, text: str) -> tuple:
            return face, image_file(result.reconstruction, "reconstruction.png"), f"{text}  \n{result.info.message}", detections

        if pipeline.refinement is None:
            yield shown(result, reconstruction_summary(result))
            return
        yield shown(result, reconstruction_summary(result) + "  \nRefining the latent for a closer likeness…")
        steps = pipeline.refinement.steps
        refined = pipeline.refined_reconstruction(
            result, lambda step, loss: progress((step, steps), desc="Refining the likeness"))
        distance, same = pipeline.likeness(refined)
        yield shown(refined, refined_summary(result, refined, steps) + "  \n" + likeness_text(distance, same))

    # A server function gets one argument (gradio hands several over as one list): hence the dicts.
    def reconstruct_photo(request: dict):
        """The fallback of a page that cannot run the models: the photo, sent, reconstructed here."""
        try:
            result = pipeline.reconstruct(url_bytes(request["photo"]), int(request.get("face_number") or 1) - 1)
        except PhotoError as error:
            return {"error": str(error)}
        refined = pipeline.refined_reconstruction(result) if pipeline.refinement else result
        summary = (refined_summary(result, refined, pipeline.refinement.steps) if pipeline.refinement
                   else reconstruction_summary(result))
        return dict(aligned=data_url(result.face), reconstruction=data_url(refined.reconstruction),
                    detections=data_url(result.detections, "jpeg"), summary=f"{summary}  \n{result.info.message}")

    def likeness(request: dict):
        """dlib's verdict, asked for with a button: the page sends the aligned face and its reconstruction."""
        try:
            faces = [load_photo(url_bytes(request[name]))[0] for name in ("face", "reconstruction")]
        except PhotoError as error:
            return {"error": str(error)}
        distance, same = pipeline.likeness_of(*faces)
        return dict(distance=distance, same=same, verdict=likeness_text(distance, same))

    with gr.Tab("Reconstruct", id="reconstruct"):
        PagePhotoBlock(pipeline, "reconstruct.js", RECONSTRUCT_TEMPLATE, [reconstruct_photo, likeness],
                       css_template=RECONSTRUCT_STYLE, examples=examples_html(), elem_id="reconstruct-page")
        # /reconstruct, for gradio_client: the photo is uploaded and reconstructed on the server
        api_photo, api_face_number = PhotoInput(type="filepath", visible=False), gr.Number(1, visible=False)
        outputs = [gr.Image(visible=False), gr.Image(visible=False), gr.Markdown(visible=False), gr.Image(visible=False)]
        gr.Button(visible=False).click(reconstruct, [api_photo, api_face_number], outputs, api_name="reconstruct")
        live_mirror(pipeline)


def likeness_text(distance: float, same: bool) -> str:
    """dlib's verdict as the Reconstruct tab shows it, on the server and in the page alike. The
    shipped weights learnt from a port of dlib's network since phase 13 (the model card): its
    verdict on their faces is the loss's own and leans to yes, and the user should know."""
    return (f"dlib: {'same person' if same else 'not the same person'} (distance {distance:.2f}; under 0.6 is the same; "
            "the model was trained with this network, so it leans to yes)")


MIRROR_TEMPLATE = """
<h3>Live mirror</h3>
<p>Your face, aligned and reconstructed as you move.</p>
<div class='mirror-buttons'><button type='button' class='start'>Start the mirror</button>
  <button type='button' class='stop' disabled>Stop</button></div>
<div class='mirror-row'>
  <figure id='mirror-camera'><figcaption>Camera</figcaption><video playsinline muted></video></figure>
  <figure id='mirror-face'><figcaption>Aligned face, live</figcaption>
    <canvas width='${image_size}' height='${image_size}'></canvas></figure>
  <figure id='mirror-reconstruction' data-frames='0'><figcaption>Reconstruction, live</figcaption>
    <canvas width='${image_size}' height='${image_size}'></canvas></figure>
</div>
<p class='status' id='mirror-status' role='status'></p>
"""
MIRROR_STYLE = PAGE_BLOCK_STYLE + """
  .mirror-buttons { display: flex; gap: 8px; margin: 8px 0; }
  .mirror-row { display: flex; gap: 12px; }
  .mirror-row figure { flex: 1; min-width: 0; margin: 0; }
  .mirror-row canvas, .mirror-row video { width: 100%; max-width: 300px; aspect-ratio: 1; object-fit: cover;
                                          background: var(--block-background-fill); }
"""


def live_mirror(pipeline: FacePipeline) -> None:
    """The webcam's stream, aligned and reconstructed frame by frame in the page (facevae/web/mirror.js);
    mirror_frame is the fallback of a page that cannot run the models."""
    def mirror_frame(frame_url):
        try:
            face, reconstruction, psnr, info = pipeline.mirror(np.asarray(load_photo(url_bytes(frame_url))[0]))
        except PhotoError as error:
            return {"error": str(error)}
        status = f"PSNR {psnr:.1f} dB" if info.found else "No face in view: showing the middle of the picture."
        return dict(face=data_url(face), reconstruction=data_url(reconstruction), status=status)

    PagePhotoBlock(pipeline, "mirror.js", MIRROR_TEMPLATE, [mirror_frame], css_template=MIRROR_STYLE,
                   mirror_side=MIRROR_SIDE, elem_id="mirror")


# ---------------------------------------------------------------- Random faces


@dataclass
class RandomFacesTab:
    inputs: list  # count, seed, temperature, prior
    outputs: list  # the faces (RandomFaces)


MAX_FACES = 64
# The faces' value from the tab's controls, made in the page (fn=None): the page draws the faces.
RANDOM_VALUE_JS = ("(count, seed, temperature, prior) => ({seed: Math.round(Number(seed) || 0), "
                   "count: Math.round(count), temperature, prior})")
# "Draw faces" draws the value again in the page (random.js listens): an equal value would not redraw.
RANDOM_REDRAW_JS = "() => { document.getElementById('random-faces')?.dispatchEvent(new Event('redraw')); }"


def page_mixture_file(pipeline: FacePipeline) -> Path | None:
    """The fitted mixture for the page (facevae.seeded.mixture_bytes: float16, 2.6 MB for 64
    components of 200 dimensions), written at start beside nothing in git: PAGE_CACHE, under a
    name of its content's, so that a new mixture gets a new address."""
    stats = pipeline.model.latent_stats
    if stats is None:
        return None
    data = mixture_bytes(stats.mixture_weights, stats.mixture_means, stats.mixture_scale_trils)
    path = PAGE_CACHE / f"mixture-{hashlib.sha256(data).hexdigest()[:12]}.f16"
    if not path.exists():
        path.write_bytes(data)
    return path


class RandomFaces(ValueHTML):
    """Random faces drawn in the page (facevae/web/random.js), each on a <canvas> in #random-faces.
    Its value is the draw: {"seed", "count", "temperature", "prior"}, which the page's seeded
    generator turns into the same latents as FacePipeline.seed_latents (facevae/web/seeded.js,
    facevae.seeded; the mixture's parameters fetched from mixture_url when first needed). Every
    control changes the value in the page (RANDOM_VALUE_JS) and the faces are drawn anew with no
    call to the server. Where the page cannot decode, its server function draws them."""

    TEMPLATE = ("<div id='random-faces' class='faces' data-draws='0'></div>"
                "<div class='random-footer'><span class='random-mode'>Loading the decoder…</span>"
                "<a class='random-download' download='faces.png' href='#'>Download PNG</a></div>")
    STYLE = """
        .faces { display: grid; grid-template-columns: repeat(auto-fill, minmax(112px, 1fr)); gap: 4px; min-height: 120px; }
        .faces canvas { width: 100%; aspect-ratio: 1; image-rendering: auto; }
        .random-footer { display: flex; justify-content: space-between; font-size: var(--text-sm);
                         color: var(--body-text-color-subdued); margin-top: 4px; }
    """

    def __init__(self, pipeline: FacePipeline, mixture: Path | None, **kwargs):
        def decode_faces(value):
            """The faces as PNG data URLs, for a page that cannot decode them itself."""
            try:
                count = int(value["count"])
                if not 1 <= count <= MAX_FACES:
                    raise ValueError(f"count must be 1 to {MAX_FACES}, got {count}")
                z = pipeline.seed_latents(int(value["seed"]), count, float(value["temperature"]), value["prior"])
            except (KeyError, TypeError, ValueError) as error:
                return {"error": f"cannot draw these faces: {error}"}
            return {"pngs": [data_url(face) for face in pipeline.decode(z)]}

        onnx = pipeline.model.onnx.get("decoder")
        super().__init__(value=None, html_template=self.TEMPLATE, css_template=self.STYLE, js_on_load=PAGE_MODULE_JS,
                         server_functions=[decode_faces], apply_default_css=False, module_url=web_url(WEB / "random.js"),
                         runtime_url=web_url(WEB / "vendor" / "onnxruntime-web"),
                         onnx_url=web_url(onnx) if onnx is not None else None,
                         mixture_url=web_url(mixture) if mixture is not None else None,
                         latent_dim=pipeline.model.latent_dim, size=pipeline.model.image_size, **kwargs)


def random_faces_tab(pipeline: FacePipeline, mixture: Path | None) -> RandomFacesTab:
    def sample(count, seed, temperature, prior):
        grid = pipeline.sample_grid(int(count), int(seed or 0), float(temperature), prior)
        return image_file(grid, f"faces-{prior}-seed{int(seed or 0)}.png")

    def sample_gallery(count, seed, temperature, prior):
        faces = pipeline.sample(int(count), int(seed or 0), float(temperature), prior)
        gallery = [image_file(face, f"face-{i + 1}.png") for i, face in enumerate(faces)]
        return gallery, save_output(grid_png(faces), f"faces-{prior}-seed{int(seed or 0)}.png")

    def share_state(count, seed, temperature, prior):
        return "?share=" + encode_state(dict(tab="random", count=int(count), seed=int(seed or 0),
                                             temperature=float(temperature), prior=prior))

    with gr.Tab("Random faces", id="random"):
        with gr.Row():
            count = gr.Slider(1, MAX_FACES, value=16, step=1, label="Count")
            seed = seed_input("Seed", 0)
            # 1: the mixture as fitted. Lower draws blander, softer faces further from the photos
            # (at 0.8 a pixel FD about 3x as large, detail 0.31 of the photos' against 0.45; docs/training.md)
            temperature = gr.Slider(0.1, 1.5, value=1.0, step=0.05, label="Temperature")
            prior = gr.Radio(pipeline.priors, value=pipeline.priors[-1], label="Prior",
                             info="mixture: a Gaussian mixture fitted to the training faces' latents")
        draw_button = gr.Button("Draw faces", variant="primary")
        faces = RandomFaces(pipeline, mixture, elem_id="random-faces-block")
        share, link = share_row("random")
        inputs = [count, seed, temperature, prior]
        # /sample answers API callers with one PNG of all the faces (one download, not one per
        # face); /sample_gallery with each face and the grid, as the tab did before the page drew them.
        gr.Button(visible=False).click(sample, inputs, gr.Image(visible=False), api_name="sample")
        gr.Button(visible=False).click(sample_gallery, inputs, [gr.Gallery(visible=False), gr.File(visible=False)],
                                       api_name="sample_gallery")
        # Every control changes the value, and the button redraws it, in the page: fn=None, nothing is sent
        for control in (count, seed, temperature, prior):
            control.change(None, inputs, faces, js=RANDOM_VALUE_JS, api_visibility="private")
        draw_button.click(None, js=RANDOM_REDRAW_JS, api_visibility="private")
        wire_share(share, share_state, inputs, link)
    return RandomFacesTab(inputs, [faces])


# ---------------------------------------------------------------- Morph


@dataclass
class MorphTab:
    inputs: list  # photo A, seed A, photo B, seed B, t, method, latent A, latent B
    render: callable  # the blend's value: the two latents, t and the method
    blend: FaceCanvas


# The morph's t and method move the blend in the page: fn=None, nothing is sent to the server.
MORPH_JS = "(face, t, method) => face && {...face, t, method}"
# "Make strip and GIF" gives the strip the blend's two latents and method and the frame count, in
# the page: fn=None, the page makes the strip and the GIF.
MORPH_STRIP_JS = "(blend, frames) => blend && {a: blend.a, b: blend.b, method: blend.method, frames: Math.round(frames)}"
MAX_MORPH_FRAMES = 32
MORPH_GIF_SECONDS = 2.0  # one pass from A to B; the GIF comes back as long


class MorphStrip(ValueHTML):
    """The morph's strip and animated GIF made in the page (facevae/web/morph_strip.js): the frames
    of FacePipeline.morph_frames, one <canvas> each in #morph-strip, and animated_gif's GIF encoded
    in JavaScript, an <img> in #morph-gif. Its value: {"a", "b" (latents), "method", "frames"}.
    Where the page cannot decode, its server function makes both with the pipeline."""

    TEMPLATE = ("<div class='morph-output'><figure class='strip-figure'><figcaption>Strip, from A to B</figcaption>"
                "<div id='morph-strip' class='strip' data-draws='0'></div></figure>"
                "<figure id='morph-gif'><figcaption>Animated GIF</figcaption>"
                "<img alt='The morph, animated' width='${size}' height='${size}' hidden></figure></div>"
                "<div class='strip-footer'><span class='strip-mode'>Press Make strip and GIF.</span>"
                "<a class='gif-download' download='morph.gif' hidden>Download GIF</a></div>")
    STYLE = """
        .morph-output { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }
        .morph-output figure { margin: 0; }
        .strip-figure { flex: 1 1 400px; }
        .strip { display: grid; grid-template-columns: repeat(auto-fill, minmax(96px, 1fr)); gap: 4px; }
        .strip canvas { width: 100%; aspect-ratio: 1; image-rendering: auto; }
        #morph-gif img { display: block; width: 256px; height: 256px; }
        figcaption { font-size: var(--block-label-text-size); color: var(--block-label-text-color); margin-bottom: 4px; }
        .strip-footer { display: flex; justify-content: space-between; font-size: var(--text-sm);
                        color: var(--body-text-color-subdued); margin-top: 4px; }
    """

    def __init__(self, pipeline: FacePipeline, **kwargs):
        latent_dim = pipeline.model.latent_dim

        def morph_strip(value):
            """The frames as PNG data URLs and the GIF as a data URL, for a page that cannot decode."""
            try:
                z0, z1 = (value_latent(value[key], latent_dim) for key in ("a", "b"))
                frames, method = int(value["frames"]), value["method"]
                if method not in INTERPOLATIONS or not 2 <= frames <= MAX_MORPH_FRAMES:
                    raise ValueError(f"2 to {MAX_MORPH_FRAMES} frames, {' or '.join(INTERPOLATIONS)}")
            except (KeyError, TypeError, ValueError) as error:
                return {"error": f"cannot make this strip: {error}"}
            images = pipeline.morph_frames(z0, z1, frames, method)
            gif = base64.b64encode(animated_gif(images, MORPH_GIF_SECONDS)).decode()
            return {"frames": [data_url(image) for image in images], "gif": "data:image/gif;base64," + gif}

        onnx = pipeline.model.onnx.get("decoder")
        super().__init__(value=None, html_template=self.TEMPLATE, css_template=self.STYLE, js_on_load=PAGE_MODULE_JS,
                         server_functions=[morph_strip], apply_default_css=False,
                         module_url=web_url(WEB / "morph_strip.js"),
                         runtime_url=web_url(WEB / "vendor" / "onnxruntime-web"),
                         onnx_url=web_url(onnx) if onnx is not None else None, size=pipeline.model.image_size,
                         gif_seconds=MORPH_GIF_SECONDS, **kwargs)


def morph_tab(pipeline: FacePipeline) -> MorphTab:
    def endpoints(photo_a, seed_a, photo_b, seed_b, shared_a=None, shared_b=None):
        """A shared link's latents stand in for a face until a photo or seed is chosen."""
        return (shared_a if shared_a is not None else chosen_latent(pipeline, photo_a, seed_a),
                shared_b if shared_b is not None else chosen_latent(pipeline, photo_b, seed_b))

    @user_errors
    def morph(photo_a, seed_a, photo_b, seed_b, t, method, shared_a=None, shared_b=None):
        z0, z1 = endpoints(photo_a, seed_a, photo_b, seed_b, shared_a, shared_b)
        return image_file(pipeline.morph(z0, z1, t, method), "blend.png")

    @user_errors
    def morph_animation(photo_a, seed_a, photo_b, seed_b, method, frames):
        """/morph_animation, for API callers: the page makes its strip and GIF itself (MorphStrip)."""
        images = pipeline.morph_frames(*endpoints(photo_a, seed_a, photo_b, seed_b), int(frames), method)
        strip = [image_file(image, f"frame-{i + 1}.png") for i, image in enumerate(images)]
        return strip, save_output(animated_gif(images, MORPH_GIF_SECONDS), "morph.gif")

    @user_errors
    def blend_value(photo_a, seed_a, photo_b, seed_b, t, method, shared_a=None, shared_b=None):
        z0, z1 = endpoints(photo_a, seed_a, photo_b, seed_b, shared_a, shared_b)
        return dict(kind="morph", a=z0.tolist(), b=z1.tolist(), t=float(t), method=method)

    def blend_latent(value):
        latent_dim = pipeline.model.latent_dim
        t = float(value["t"])
        if not math.isfinite(t):
            raise ValueError("t is a number from 0 to 1")
        z0, z1 = value_latent(value["a"], latent_dim), value_latent(value["b"], latent_dim)
        return INTERPOLATIONS[value["method"]](z0, z1, t)

    def share_state(photo_a, seed_a, photo_b, seed_b, t, method, shared_a, shared_b):
        z0, z1 = endpoints(photo_a, seed_a, photo_b, seed_b, shared_a, shared_b)
        return "?share=" + encode_state(dict(tab="morph", a=latent_text(z0), b=latent_text(z1), t=float(t),
                                             method=method))

    with gr.Tab("Morph", id="morph"):
        shared_a, shared_b = gr.State(None), gr.State(None)  # latents from a share link
        with gr.Row():
            photo_a, seed_a = face_source(pipeline, "A", 1)
            photo_b, seed_b = face_source(pipeline, "B", 2)
            with gr.Column(scale=2):
                blend = FaceCanvas(pipeline, blend_latent, "Blend", height=400, filename="blend.png", elem_id="blend")
                t = gr.Slider(0, 1, value=0.5, step=0.01, label="t (0 = A, 1 = B)")
                method = gr.Radio(list(INTERPOLATIONS), value="spherical", label="Interpolation")
        with gr.Row():
            frames = gr.Slider(3, MAX_MORPH_FRAMES, value=10, step=1, label="Frames")
            animate = gr.Button("Make strip and GIF")
        strip = MorphStrip(pipeline, elem_id="morph-animation")
        share, link = share_row("morph")
        faces = [photo_a, seed_a, photo_b, seed_b]
        inputs = [*faces, t, method, shared_a, shared_b]
        # The API's photos are uploaded files: /morph takes photo A, seed A, photo B, seed B, t, method
        api_faces = [PhotoInput(type="filepath", visible=False), seed_a, PhotoInput(type="filepath", visible=False), seed_b]
        gr.Button(visible=False).click(morph, [*api_faces, t, method], gr.Image(visible=False), api_name="morph")
        gr.Button(visible=False).click(morph_animation, [*api_faces, method, frames],
                                       [gr.Gallery(visible=False), gr.File(visible=False)], api_name="morph_animation")
        t.input(None, [blend, t, method], blend, js=MORPH_JS)
        method.change(None, [blend, t, method], blend, js=MORPH_JS)
        for face in faces:  # choosing a face replaces the shared one on its side
            state = shared_a if face in (photo_a, seed_a) else shared_b
            face.change(lambda: None, None, state, api_visibility="private").then(
                blend_value, inputs, blend, api_visibility="private", trigger_mode="always_last")
        animate.click(None, [blend, frames], strip, js=MORPH_STRIP_JS)
        wire_share(share, share_state, inputs, link)
    return MorphTab(inputs, blend_value, blend)


# ---------------------------------------------------------------- Latent explorer


@dataclass
class ExplorerTab:
    inputs: list  # photo, seed, dimensions, shared latent, then every slider
    attribute_sliders: dict  # CelebA name -> slider
    dimensions: gr.Dropdown
    dimension_sliders: list
    pc_sliders: list
    shared: gr.State
    render: callable  # the face's value: the latent and the slider values
    face: FaceCanvas


# A slider moves the explorer's face in the page: fn=None, nothing is sent to the server.
EXPLORE_JS = "(face, dimensions, ...sliders) => face && {...face, dimensions, sliders}"


def explorer_basis(pipeline: FacePipeline, attributes: list[str]) -> dict:
    """What face.js needs to move a latent as FacePipeline.shift does: the attribute directions
    (and the sign of each slider), the dimensions' standard deviations, the principal directions."""
    basis = dict(attributes=attributes, signs=[attribute_label(name)[1] for name in attributes],
                 dimension_sliders=DIMENSION_SLIDERS)
    stats = pipeline.model.latent_stats
    if stats is not None:
        directions, stds = stats.principal_directions(PC_SLIDERS)
        basis.update(attribute_directions=[stats.attribute_direction(name).tolist() for name in attributes],
                     std=stats.std.tolist(), pc_directions=directions.tolist(), pc_stds=stds.tolist())
    return basis


def explorer_tab(pipeline: FacePipeline, activity) -> ExplorerTab:
    ranked = pipeline.ranked_dimensions()
    attributes = attribute_order(pipeline.attribute_names)
    dimension_choices = ([(f"dim {d} (KL {kl:.2f})", d) for d, kl in activity] if activity is not None
                         else [(f"dim {d}", d) for d in ranked])

    def offsets(dimensions, values):
        """Slider values -> the pipeline's attribute, dimension and principal-direction offsets."""
        n = len(attributes)
        named = {name: attribute_label(name)[1] * float(v) for name, v in zip(attributes, values[:n])}
        dims = {int(d): float(v) for d, v in zip(dimensions or [], values[n:n + DIMENSION_SLIDERS])}
        pcs = [float(v) for v in values[n + DIMENSION_SLIDERS:]]
        checked_offsets({**named, **dims, **{f"PC {i + 1}": v for i, v in enumerate(pcs)}})
        return named, dims, pcs

    def base_latent(photo, seed, shared):
        return shared if shared is not None else chosen_latent(pipeline, photo, seed)

    @user_errors
    def render(photo, seed, dimensions, shared, *values):
        return dict(kind="explore", z=base_latent(photo, seed, shared).tolist(), dimensions=list(dimensions or []),
                    sliders=[float(v) for v in values])

    def face_latent(value):
        named, dims, pcs = offsets(value["dimensions"], value["sliders"])
        return pipeline.shift(value_latent(value["z"], pipeline.model.latent_dim), dims, pcs, named)

    @user_errors
    def explore(photo, seed, attribute_offsets, pc_offsets, dimension_offsets):
        """/explore: offsets by name, {"Smiling": 1.5}; by principal direction, {"1": 0.5}; by
        latent dimension, {"39": 2.0}. Attribute units as the sliders', others in std."""
        try:
            named = {str(k): float(v) for k, v in (attribute_offsets or {}).items()}
            by_pc = {int(k): float(v) for k, v in (pc_offsets or {}).items()}
            dims = {int(k): float(v) for k, v in (dimension_offsets or {}).items()}
        except (AttributeError, TypeError, ValueError):
            raise gr.Error('offsets are JSON objects of numbers: {"Smiling": 1.5}, {"1": 0.5}, {"39": 2.0}') from None
        checked_offsets({**named, **{f"PC {k}": v for k, v in by_pc.items()}, **{f"dim {d}": v for d, v in dims.items()}})
        for k in by_pc:
            if not 1 <= k <= PC_SLIDERS:
                raise gr.Error(f"principal direction {k}: choose 1 to {PC_SLIDERS}")
        pcs = [by_pc.get(i + 1, 0.0) for i in range(PC_SLIDERS)]
        if any(not 0 <= d < pipeline.model.latent_dim for d in dims):
            raise gr.Error(f"latent dimensions are 0 to {pipeline.model.latent_dim - 1}")
        z = chosen_latent(pipeline, photo, seed)
        return image_file(pipeline.explore(z, dims, pcs, named), "face.png")

    def label_sliders(dimensions):
        chosen = list(dimensions or [])[:DIMENSION_SLIDERS]
        return [gr.update(label=f"dim {chosen[i]}", value=0, interactive=True) if i < len(chosen)
                else gr.update(label="(pick a dimension above)", value=0, interactive=False)
                for i in range(DIMENSION_SLIDERS)]

    def share_state(photo, seed, dimensions, shared, *values):
        named, dims, pcs = offsets(dimensions, values)
        z = base_latent(photo, seed, shared)
        return "?share=" + encode_state(dict(tab="explore", z=latent_text(z), attributes=named,
                                             dimensions={str(d): v for d, v in dims.items()}, pcs=pcs))

    with gr.Tab("Latent explorer", id="explore"):
        shared = gr.State(None)  # a share link's latent, until a photo or seed is chosen
        with gr.Row():
            with gr.Column(scale=3):
                face = FaceCanvas(pipeline, face_latent, "Face", basis=explorer_basis(pipeline, attributes), height=480,
                                  elem_id="explored")
                share, link = share_row("explore")
            with gr.Column(scale=2):
                photo = photo_latent_input(pipeline, "Start from a photo (empty: a random face)", "explore-photo")
                seed = seed_input("Seed of the random face", 3)
                with gr.Row():
                    new_face = gr.Button("New random face")
                    reset = gr.Button("Reset sliders")
        def attribute_slider(name: str) -> gr.Slider:
            return gr.Slider(-3, 3, value=0, step=0.1, label=attribute_label(name)[0], min_width=260)

        with gr.Group():
            gr.Markdown("**Attributes** (one step: the difference between faces without and with it)")
            with gr.Row():
                attribute_sliders = {name: attribute_slider(name) for name in attributes[:FIRST_ATTRIBUTE_SLIDERS]}
        if len(attributes) > FIRST_ATTRIBUTE_SLIDERS:
            with gr.Accordion("More attributes", open=False), gr.Row():
                attribute_sliders.update({name: attribute_slider(name) for name in attributes[FIRST_ATTRIBUTE_SLIDERS:]})
        with gr.Accordion("Advanced: principal directions and raw latent dimensions", open=False):
            with gr.Row():
                with gr.Column():
                    gr.Markdown("**Principal directions** (in standard deviations)")
                    pc_sliders = [gr.Slider(-3, 3, value=0, step=0.1, label=f"PC {i + 1}") for i in range(PC_SLIDERS)]
                with gr.Column():
                    dimensions = gr.Dropdown(dimension_choices, value=ranked[:DIMENSION_SLIDERS], multiselect=True,
                                             max_choices=DIMENSION_SLIDERS,
                                             label="Latent dimensions (most informative first)")
                    dimension_sliders = [gr.Slider(-3, 3, value=0, step=0.1, label=f"dim {d}")
                                         for d in ranked[:DIMENSION_SLIDERS]]
            activity_chart(activity)
        sliders = [*attribute_sliders.values(), *dimension_sliders, *pc_sliders]
        inputs = [photo, seed, dimensions, shared, *sliders]

        api_endpoint = gr.Button(visible=False)  # the documented /explore, registered first to own the name
        api_endpoint.click(explore, [PhotoInput(type="filepath", visible=False), seed, gr.JSON(visible=False), gr.JSON(visible=False),
                                     gr.JSON(visible=False)], gr.Image(visible=False), api_name="explore")
        for slider in sliders:
            slider.input(None, [face, dimensions, *sliders], face, js=EXPLORE_JS)
        for chosen in (photo, seed):  # a chosen face replaces a shared one
            chosen.change(lambda: None, None, shared, api_visibility="private").then(
                render, inputs, face, api_visibility="private", trigger_mode="always_last")
        # .input, not .change: a share link that sets the dimensions must not zero their sliders
        dimensions.input(label_sliders, dimensions, dimension_sliders, api_visibility="private").then(
            render, inputs, face, api_visibility="private")
        reset.click(lambda: [0] * len(sliders), None, sliders, api_visibility="private").then(
            render, inputs, face, api_visibility="private")
        new_face.click(lambda s: (None, int(s or 0) + 1), seed, [photo, seed], api_visibility="private")
        wire_share(share, share_state, inputs, link)
    return ExplorerTab(inputs, attribute_sliders, dimensions, dimension_sliders, pc_sliders, shared, render, face)


# ---------------------------------------------------------------- Share links and the page


def restore_from_link(pipeline: FacePipeline, tabs: gr.Tabs, random: RandomFacesTab, morph: MorphTab,
                      explorer: ExplorerTab):
    """The handler of the page's load event: a ?share= link sets its tab's controls and latents."""
    latent_dim = pipeline.model.latent_dim
    outputs = [tabs, *random.inputs, *morph.inputs[4:], *explorer.attribute_sliders.values(),
               explorer.dimensions, *explorer.dimension_sliders, *explorer.pc_sliders, explorer.shared]

    def restore(request: gr.Request):
        updates = {component: gr.update() for component in outputs}
        text = request.query_params.get("share") if request is not None else None
        if not text:
            return [updates[c] for c in outputs]
        try:
            state = decode_state(text)
            if state["tab"] == "random":
                # the seed as the generator takes it (modulo 2**64): a larger one cannot reach the page
                values = [state["count"], int(state["seed"]) % 2**64, state["temperature"], state["prior"]]
                updates.update(zip(random.inputs, values))
            elif state["tab"] == "morph":
                t, method, shared_a, shared_b = morph.inputs[4:]
                updates.update({t: state["t"], method: state["method"], shared_a: text_latent(state["a"], latent_dim),
                                shared_b: text_latent(state["b"], latent_dim)})
            elif state["tab"] == "explore":
                updates[explorer.shared] = text_latent(state["z"], latent_dim)
                for name, value in state["attributes"].items():
                    if name in explorer.attribute_sliders:
                        updates[explorer.attribute_sliders[name]] = attribute_label(name)[1] * value
                dims = list(state["dimensions"].items())[:DIMENSION_SLIDERS]
                updates[explorer.dimensions] = [int(d) for d, _ in dims]
                for slider, (d, value) in zip(explorer.dimension_sliders, dims):
                    updates[slider] = gr.update(label=f"dim {d}", value=value, interactive=True)
                updates.update(zip(explorer.pc_sliders, state["pcs"]))
            else:
                raise ShareError("this share link is not one of FaceVAE's")
            updates[tabs] = gr.Tabs(selected=state["tab"])
        except (ShareError, KeyError, TypeError, ValueError) as error:
            gr.Warning(str(error) if isinstance(error, ShareError) else "this share link is damaged")
        return [updates[c] for c in outputs]

    return restore, outputs


def build_demo(pipeline: FacePipeline) -> gr.Blocks:
    model = pipeline.model
    mixture = page_mixture_file(pipeline)
    page_files = [WEB, *model.onnx.values(), *([mixture] if mixture else [])]
    gr.set_static_paths([*page_files, *EXAMPLES])
    with FaceVAEBlocks(title="FaceVAE", delete_cache=(1800, 3600)) as demo:
        demo.page_roots = tuple(page_files)
        gr.Markdown(f"# FaceVAE\nA variational autoencoder of faces (128×128, {model.latent_dim}-dimensional latent). "
                    f"Weights: **{model.source}**.")
        with gr.Tabs() as tabs:
            reconstruct_tab(pipeline)
            random = random_faces_tab(pipeline, mixture)
            morph = morph_tab(pipeline)
            explorer = explorer_tab(pipeline, pipeline.dimension_activity())

        ping_button = gr.Button(visible=False)
        ping_button.click(lambda: "ok", None, gr.Textbox(visible=False), api_name="ping")
        restore, restored = restore_from_link(pipeline, tabs, random, morph, explorer)
        load = demo.load(restore, None, restored, api_visibility="private")
        # The explorer and the morph open with a face: their latents (the page decodes them)
        load.then(explorer.render, explorer.inputs, explorer.face, api_visibility="private")
        load.then(morph.render, morph.inputs, morph.blend, api_visibility="private")
        # The random faces' value, made in the page (it draws them when their tab is first shown)
        load.then(None, random.inputs, random.outputs, js=RANDOM_VALUE_JS, api_visibility="private")
    return demo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    parser.add_argument("--share", action="store_true", help="also serve on a public gradio.live link")
    parser.add_argument("--model", default=None, help="Hub repo id or folder (default: $FACEVAE_MODEL, else the bundled weights)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    model = load_model(args.model) if args.model else load_model()
    print(f"FaceVAE weights: {model.source}", flush=True)
    demo = build_demo(FacePipeline(model))
    demo.queue(default_concurrency_limit=2).launch(server_name=args.host, server_port=args.port, share=args.share,
                                                   max_file_size=MAX_BYTES, show_error=True, css=CSS)


if __name__ == "__main__":
    main()
