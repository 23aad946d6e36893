"""The page's own files as the app sends them (app.PageFiles): compressed where the browser takes it,
decoding to the very bytes of the files, and cached by the browser for as long as their version."""
import gzip

import pytest

gr = pytest.importorskip("gradio")
import brotli  # noqa: E402
import httpx  # noqa: E402

from app import WEB, FaceVAEBlocks, content_version, web_url  # noqa: E402
from conftest import free_port  # noqa: E402
from facevae.export import ONNX_DECODER  # noqa: E402
from facevae.loading import BUNDLED_MODEL  # noqa: E402

RUNTIME = WEB / "vendor" / "onnxruntime-web"
DECODER = BUNDLED_MODEL / ONNX_DECODER
FILES = [WEB / "face.js", RUNTIME / "ort.wasm.min.mjs", RUNTIME / "ort-wasm-simd-threaded.wasm", DECODER]
DECODE = {"br": brotli.decompress, "gzip": gzip.decompress}


@pytest.fixture(scope="module")
def origin():
    """An app of one Markdown whose page files are facevae/web and the bundled decoder, as
    build_demo's are; its address."""
    with FaceVAEBlocks() as demo:
        gr.Markdown("page files")
    demo.page_roots = (WEB, DECODER)
    demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    yield demo.local_url
    demo.close()


def fetch(url: str, **headers) -> tuple[httpx.Response, bytes]:
    """The response and its body as sent (not decoded)."""
    with httpx.Client() as client, client.stream("GET", url, headers=headers) as response:
        return response, b"".join(response.iter_raw())


@pytest.mark.parametrize("encoding", ["br", "gzip"])
@pytest.mark.parametrize("file", FILES, ids=lambda f: f.name)
def test_compressed_responses_decode_to_the_files_bytes(origin, file, encoding):
    response, body = fetch(origin + web_url(file), **{"Accept-Encoding": f"{encoding}, identity"})
    assert response.status_code == 200
    assert response.headers["content-encoding"] == encoding
    data = file.read_bytes()
    assert DECODE[encoding](body) == data
    assert len(body) < 0.95 * len(data)  # measured: 0.19 (the .wasm, br) to 0.92 (the float16 decoder, gzip)


def test_a_browser_that_takes_no_compression_gets_the_file_as_it_is(origin):
    response, body = fetch(origin + web_url(RUNTIME / "ort-wasm-simd-threaded.wasm"), **{"Accept-Encoding": "identity"})
    assert "content-encoding" not in response.headers
    assert response.headers["content-type"] == "application/wasm"  # what WebAssembly.instantiateStreaming asks for
    assert body == (RUNTIME / "ort-wasm-simd-threaded.wasm").read_bytes()


def test_a_versioned_address_is_kept_a_year_and_others_are_revalidated(origin):
    versioned = origin + web_url(WEB / "face.js")
    assert versioned.endswith(f"?v={content_version(WEB / 'face.js')}")
    response, _ = fetch(versioned, **{"Accept-Encoding": "br"})
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert response.headers["vary"] == "Accept-Encoding"
    # a module imported by a relative path (no version), or an old release's address: revalidated
    for url in (versioned.split("?")[0], versioned.split("?")[0] + "?v=0123456789ab"):
        assert fetch(url, **{"Accept-Encoding": "br"})[0].headers["cache-control"] == "no-cache"
    revalidated, body = fetch(versioned.split("?")[0], **{"Accept-Encoding": "br", "If-None-Match": response.headers["etag"]})
    assert revalidated.status_code == 304 and body == b""
    # a file in a versioned folder carries the folder's version (runtime.js's fileUrl)
    in_folder = web_url(RUNTIME).replace("?", "ort.wasm.min.mjs?")
    assert fetch(origin + in_folder)[0].headers["cache-control"] == "public, max-age=31536000, immutable"


def test_only_the_pages_modules_runtime_and_models_are_sent_so(origin):
    # Anything else goes on to Gradio as it is: a path out of the roots (Gradio refuses it, not being
    # a static path), or a file in them of another kind (no ETag of PageFiles').
    assert fetch(origin + f"gradio_api/file={WEB}/../../app.py")[0].status_code == 403
    licence = RUNTIME / "LICENSE"
    response, _ = fetch(origin + f"gradio_api/file={licence}", **{"Accept-Encoding": "identity"})
    assert response.headers.get("etag") != f'"{content_version(licence)}-identity"'
    mjs = RUNTIME / "ort.wasm.min.mjs"
    response, _ = fetch(origin + f"gradio_api/file={mjs}", **{"Accept-Encoding": "identity"})
    assert response.headers["etag"] == f'"{content_version(mjs)}-identity"'
