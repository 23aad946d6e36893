"""The headless Chromium that the page's studies and tools drive (Debian's), and the server they
load facevae/web's modules from: one list of flags, one folder server, one local-only page."""
from __future__ import annotations

import contextlib
import functools
import http.server
import shutil
import threading
from pathlib import Path

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """A folder's files with the types the page's modules need; with `isolate`, the headers that
    make a page cross-origin isolated (COOP/COEP: what threads in WebAssembly would need)."""
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, ".mjs": "text/javascript",
                      ".js": "text/javascript", ".wasm": "application/wasm"}
    isolate = False

    def end_headers(self):
        if self.isolate:
            self.send_header("Cross-Origin-Opener-Policy", "same-origin")
            self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        super().end_headers()

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serving(folder: Path, isolate: bool = False):
    """An HTTP server on 127.0.0.1 for folder's files, in a thread; yields its URL."""
    handler = type("Handler", (QuietHandler,), {"isolate": isolate})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def local_page(browser, url: str, init_script: str | None = None, viewport: tuple[int, int] = (1280, 1000)):
    """A new page (viewport: width and height in CSS pixels), in a context of its own, that reaches
    url's server only: a request to any other host is refused and kept in page.foreign_requests.
    init_script runs before the page's own scripts."""
    context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
    foreign = []

    def only_local(route):
        if route.request.url.startswith(url):
            route.continue_()
        else:
            foreign.append(route.request.url)
            route.abort()

    context.route("**/*", only_local)
    if init_script:
        context.add_init_script(init_script)
    page = context.new_page()
    page.foreign_requests = foreign
    return page
