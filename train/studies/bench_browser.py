"""Faces decoded in the browser against faces decoded on the server, side by side in one run.

    nice -n 5 python -m train.studies.bench_browser [--baseline-ref 2f4bfcc] [--steps 30]

In headless Chromium (Debian's), with every other host blocked:
1. ONNX Runtime Web alone, on a page of its own: one face's decode time with 1 thread, and with
   2 threads on a cross-origin-isolated page (COOP/COEP headers): are threads worth it?
2. The app (this checkout), its faces decoded in the page and, with WebAssembly deleted, on the
   server: requests to the app over `steps` slider steps (explorer and morph), the time from a
   slider's input event to the face's pixels on the canvas, and the faces drawn per second
   while a slider moves faster than the screen refreshes.
3. The app as it was at --baseline-ref (every move decoded on the server, a PNG downloaded):
   the same requests and slider-to-pixels times (until the new image is decoded).
"""
from __future__ import annotations

import argparse
import functools
import http.server
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]

RUNTIME_JS = """async ([runtime, model, threads, runs]) => {
    const ort = await import(runtime + 'ort.wasm.min.mjs');
    ort.env.wasm.wasmPaths = runtime;
    ort.env.wasm.numThreads = threads;
    const session = await ort.InferenceSession.create(model, { executionProviders: ['wasm'] });
    const z = new ort.Tensor('float32', new Float32Array(200).map((_, i) => Math.sin(i)), [1, 200]);
    for (let i = 0; i < 10; i++) await session.run({ z });
    const times = [];
    for (let i = 0; i < runs; i++) {
        const start = performance.now();
        await session.run({ z });
        times.push(performance.now() - start);
    }
    return { times, isolated: self.crossOriginIsolated };
}"""

# The slider of `label` in the page; moves it by one step and waits for the face to change.
SLIDER_JS = """
const slider = (label) => [...document.querySelectorAll('.block')].find(
    (b) => b.querySelector('input[type=range]') && [...b.querySelectorAll('span, label')]
        .some((e) => e.textContent.trim() === label)).querySelector('input[type=range]');
const move = (input, value) => { input.value = String(value); input.dispatchEvent(new Event('input', { bubbles: true })); };
"""

LATENCY_JS = SLIDER_JS + """async ([label, face, steps, step, start, canvas]) => {
    const input = slider(label), shown = () => document.querySelector(face + (canvas ? ' canvas' : ' img'));
    const changed = () => new Promise((resolve) => {
        const before = canvas ? shown().dataset.frames : shown()?.src;
        const observer = new MutationObserver(async () => {
            const now = shown();
            if (!now || (canvas ? now.dataset.frames : now.src) === before) return;
            observer.disconnect();
            if (!canvas) await now.decode();  // the new PNG's pixels
            resolve(performance.now());
        });
        observer.observe(document.querySelector(face), { attributes: true, childList: true, subtree: true });
    });
    const times = [];
    for (let i = 1; i <= steps; i++) {
        const drawn = changed(), begin = performance.now();
        move(input, (start + i * step).toFixed(2));
        const end = await Promise.race([drawn, new Promise((r) => setTimeout(() => r(NaN), 5000))]);
        times.push(end - begin);
        await new Promise((r) => setTimeout(r, 50));
    }
    return times;
}"""

SUSTAINED_JS = SLIDER_JS + """async ([label, face, seconds, start, step]) => {
    const input = slider(label), canvas = document.querySelector(face + ' canvas');
    const first = Number(canvas.dataset.frames), begin = performance.now();
    let i = 0;
    while (performance.now() - begin < seconds * 1000) {  // a new value every 4 ms: faster than any screen
        move(input, (start + (1 + i++ % 30) * step).toFixed(2));
        await new Promise((r) => setTimeout(r, 4));
    }
    await new Promise((r) => setTimeout(r, 200));
    return { frames: Number(canvas.dataset.frames) - first, seconds: (performance.now() - begin) / 1000, moves: i };
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def summary(times: list[float]) -> str:
    times = sorted(times)
    return (f"p50 {statistics.median(times):6.1f} ms  p90 {times[int(0.9 * (len(times) - 1))]:6.1f} ms  "
            f"min {times[0]:5.1f} ms")


class IsolatedHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the repository; with isolate, the headers that make a page cross-origin isolated."""
    isolate = False

    def end_headers(self):
        if self.isolate:
            self.send_header("Cross-Origin-Opener-Policy", "same-origin")
            self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        super().end_headers()

    def log_message(self, *args):
        pass


def serve_repository(isolate: bool) -> str:
    handler = type("Handler", (IsolatedHandler,), {"isolate": isolate})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()),
                                             functools.partial(handler, directory=str(ROOT)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/"


def new_page(browser, origin: str, init_script: str | None = None):
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(origin) else route.abort())
    if init_script:
        context.add_init_script(init_script)
    page = context.new_page()
    page.app_requests = []
    page.on("request", lambda request: page.app_requests.append(request.url))
    return page


def runtime_alone(browser, runs: int) -> None:
    print(f"1. ONNX Runtime Web alone, one face, {runs} decodes after 10 to warm up")
    for isolate, threads in [(False, 1), (True, 1), (True, 2)]:
        origin = serve_repository(isolate)
        page = new_page(browser, origin)
        page.goto(origin + "facevae/web/face.js")  # any page of that origin
        result = page.evaluate(RUNTIME_JS, [origin + "facevae/web/vendor/onnxruntime-web/",
                                            origin + "assets/facevae-celeba-128/onnx/decoder.onnx", threads, runs])
        mean = statistics.mean(result["times"])
        print(f"   threads {threads}, cross-origin isolated {str(result['isolated']):5}: {summary(result['times'])}  "
              f"({1000 / mean:.0f} decodes/s)")
        page.context.close()


def drag_requests(page, label: str, steps: int) -> int:
    page.locator(".block", has=page.get_by_text(label, exact=True)).locator("input[type=range]").first.focus()
    before = len(page.app_requests)
    for _ in range(steps):
        page.keyboard.press("ArrowRight")
        page.wait_for_timeout(20)
    page.wait_for_timeout(1500)
    return len(page.app_requests) - before


def open_app(browser, url: str, init_script: str | None = None, tab: str | None = None, face: str | None = None,
             canvas: bool = True):
    page = new_page(browser, url, init_script)
    page.goto(url, wait_until="load", timeout=120_000)
    page.get_by_text("Weights:").wait_for(timeout=60_000)
    if tab:
        page.get_by_role("tab", name=tab).click()
    if face:
        drawn = f"document.querySelector('{face} canvas')?.dataset.frames >= 1" if canvas else \
            f"document.querySelector('{face} img')?.complete"
        page.wait_for_function(f"() => {drawn}", timeout=60_000)
    return page


def measure_app(browser, url: str, steps: int, mode: str) -> None:
    canvas = mode != "baseline"
    init = "delete window.WebAssembly" if mode == "server" else None
    for tab, face, label, start, step in [("Latent explorer", "#explored", "Smile", 0.0, 0.1),
                                          ("Morph", "#blend", "t (0 = A, 1 = B)", 0.5, 0.01)]:
        opens_empty = mode == "baseline" and tab == "Morph"  # the old Morph tab: empty until a move
        page = open_app(browser, url, init, tab, None if opens_empty else face, canvas)
        if opens_empty:
            drag_requests(page, label, 1)
            page.wait_for_function("() => document.querySelector('#blend img')?.complete", timeout=60_000)
        requests = drag_requests(page, label, steps)
        page.evaluate(SLIDER_JS + "([label, value]) => move(slider(label), value)", [label, start])  # back
        page.wait_for_timeout(1500)
        times = page.evaluate(LATENCY_JS, [label, face, steps, step, start, canvas])
        lost = sum(t != t for t in times)
        line = f"   {tab:15} {requests:3d} requests over {steps} steps; slider to pixels {summary([t for t in times if t == t])}"
        if lost:
            line += f" ({lost} steps drew nothing within 5 s)"
        print(line)
        if canvas:
            result = page.evaluate(SUSTAINED_JS, [label, face, 3, start, step])
            print(f"   {'':15} moving every 4 ms for {result['seconds']:.1f} s: "
                  f"{result['frames'] / result['seconds']:.0f} faces drawn per second ({result['moves']} moves)")
        page.context.close()


def start_app(folder: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONPATH": str(folder)}
    process = subprocess.Popen([sys.executable, "app.py", "--port", str(port)], cwd=folder, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in process.stdout:
        if "Running on" in line:
            threading.Thread(target=process.stdout.read, daemon=True).start()  # keep its pipe drained
            return process
    raise RuntimeError(f"the app in {folder} did not start")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline-ref", default="2f4bfcc", help="a commit of the app before browser decoding")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--runs", type=int, default=200, help="decodes per runtime measurement")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    print(f"CPU: {cpu}, {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f} at the start")
    with tempfile.TemporaryDirectory() as baseline, sync_playwright() as p:
        subprocess.run(f"git -C {ROOT} archive {args.baseline_ref} | tar -x -C {baseline}", shell=True, check=True)
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        runtime_alone(browser, args.runs)
        apps = [("browser", ROOT), ("server", ROOT), ("baseline", Path(baseline))]
        processes = {}
        try:
            for mode, folder in apps:
                if folder not in processes:
                    port = free_port()
                    processes[folder] = (start_app(folder, port), f"http://127.0.0.1:{port}/")
                title = {"browser": "2. The app, faces decoded in the page (WASM, 1 thread)",
                         "server": "   The app with WebAssembly deleted: faces decoded on the server (the fallback)",
                         "baseline": f"3. The app at {args.baseline_ref}: every move decoded on the server"}[mode]
                print(title)
                measure_app(browser, processes[folder][1], args.steps, mode)
        finally:
            for process, _ in processes.values():
                process.terminate()
                process.wait(timeout=30)
            browser.close()
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
