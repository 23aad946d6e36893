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
4. Photos: from choosing a photo in the Reconstruct tab to the refined face, in the page and,
   with WebAssembly deleted, on the server (the examples, and --photos val photos of CelebA
   enlarged to each of --sides); the requests and bytes each photo sends, the server's CPU per
   photo; --people pages choosing a photo at once (each its first, so its models load then too); the live
   mirror (--mirror alone): its faces per second from a fake camera showing each of three faces
   crossing the frame, followed (this checkout) and detected on every frame (--untracked-ref),
   how often the detector ran, and what it sends.
5. The first visit (--first-visit alone; also after the rest), this checkout against --before-ref:
   the bytes each file took on the wire and its size uncompressed, on the way to the explorer's
   first face and to a refined photo (each in a fresh browser context: nothing cached), and the
   time to each at 10 Mbit/s (Chromium's network throttling, 20 ms latency).
6. The weights' precision (--precision, alone, no browser): the shipped float16 files' outputs
   against the float32 model's (PSNR, facevae.export), and what int8 weights (symmetric, one scale
   per output channel, simulated in torch) would do to the same outputs and to the pixels.
7. Random faces (--random, alone): the redraws per second while the Temperature slider moves every
   4 ms (16 and 64 faces, drawn in the page), and the requests to the server's queue or API meanwhile.

Reproduces: docs/browser.md, "The sliders, measured earlier" (parts 1-3),
"Photos and the mirror" (part 4, --photos-only), "The live mirror" (--mirror), "The first visit"
(parts 5-6) and "Random faces in the page" (part 7).
"""
from __future__ import annotations

import argparse
import math
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from train.browser import CHROMIUM, CHROMIUM_FLAGS, local_page, serving

ROOT = Path(__file__).resolve().parent.parent.parent

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
    p90 = times[math.ceil(0.9 * len(times)) - 1]  # nearest rank
    return (f"p50 {statistics.median(times):6.1f} ms  p90 {p90:6.1f} ms  "
            f"min {times[0]:5.1f} ms")


def new_page(browser, origin: str, init_script: str | None = None):
    """A local-only page (train.browser.local_page) that keeps every request's URL in page.app_requests."""
    page = local_page(browser, origin, init_script)
    page.app_requests = []
    page.on("request", lambda request: page.app_requests.append(request.url))
    return page


def runtime_alone(browser, runs: int) -> None:
    print(f"1. ONNX Runtime Web alone, one face, {runs} decodes after 10 to warm up")
    for isolate, threads in [(False, 1), (True, 1), (True, 2)]:
        with serving(ROOT, isolate) as origin:
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


# Photos: the page's pipeline against the server's. Each run picks photos in the Reconstruct tab and
# waits until the refined face is on its canvas (data-refined).
REFINED_AT_JS = """() => { window.refinedIn = new Promise((resolve) => {
    const canvas = document.querySelector('#reconstruct-refined canvas'), begin = performance.now();
    const observer = new MutationObserver(() => {
        if (canvas.dataset.refined !== 'true') return;
        observer.disconnect();
        resolve(performance.now() - begin);
    });
    observer.observe(canvas, { attributes: true });
}); }"""
# Every file of the page so far (the page itself and Gradio's frontend too): its name, the bytes of
# its body on the wire and uncompressed (Resource Timing; 0 on the wire when it came from the cache).
RESOURCES_JS = """() => [performance.getEntriesByType('navigation')[0], ...performance.getEntriesByType('resource')]
    .map((r) => ({ name: r.name, wire: r.encodedBodySize, size: r.decodedBodySize, took: r.responseEnd - r.startTime }))"""
THROTTLE = {"offline": False, "latency": 20, "downloadThroughput": 10e6 / 8, "uploadThroughput": 10e6 / 8}


def short_name(url: str) -> str:
    """A resource's file name, with the folder it comes from when it is one of the app's."""
    path = url.split("?")[0]
    parts = path.rstrip("/").split("/")
    return "/".join(parts[-2:]) if any(key in path for key in ("vendor/", "/onnx/", "/web/")) else parts[-1] or "(page)"


def first_visit(browser, url: str, goal: str, throttle: bool) -> tuple[float, list[dict]]:
    """Open the app with nothing cached and reach `goal` ("explorer": its first face; "refined": the
    astronaut refined in the Reconstruct tab): the seconds it took from opening the page, and every
    resource fetched."""
    page = new_page(browser, url)
    if throttle:
        session = page.context.new_cdp_session(page)
        session.send("Network.enable")
        session.send("Network.emulateNetworkConditions", THROTTLE)
    begin = time.perf_counter()
    page.goto(url, wait_until="commit", timeout=300_000)
    if goal == "explorer":
        page.get_by_role("tab", name="Latent explorer").click(timeout=300_000)
        page.wait_for_function("() => document.querySelector('#explored canvas')?.dataset.frames >= 1", timeout=300_000)
    else:
        # once the block's module is mounted (it marks the block), or the change would go unheard
        page.wait_for_selector("#reconstruct-page [data-mode]", state="attached", timeout=300_000)
        page.locator("#reconstruct-page input[type=file]").set_input_files(str(ROOT / "assets" / "examples" / "astronaut.jpg"))
        page.wait_for_function("() => document.querySelector('#reconstruct-refined canvas')?.dataset.refined === 'true'",
                               timeout=300_000)
    took = time.perf_counter() - begin
    resources = page.evaluate(RESOURCES_JS)
    page.context.close()
    return took, resources


def measure_first_visits(browser, apps: dict[str, str], per_file: bool = True) -> None:
    """Bytes and time of a first visit to the explorer's first face and to a refined photo, for each
    app (label -> URL): on the wire (compressed where the app compresses) and uncompressed, per file
    of the app's own (runtime, models, modules) and in all; then the time at 10 Mbit/s."""
    for goal in ("explorer", "refined"):
        label_goal = "the explorer's first face" if goal == "explorer" else "a refined photo (the astronaut)"
        print(f"   first visit to {label_goal}:")
        for label, url in apps.items():
            _, resources = first_visit(browser, url, goal, throttle=False)
            ours = [r for r in resources if any(key in r["name"] for key in ("vendor/", "/onnx/", "/web/"))]
            if per_file:
                for r in sorted(ours, key=lambda r: -r["size"]):
                    print(f"     {label:7} {short_name(r['name']):42} {r['wire'] / 1e6:7.3f} MB on the wire, "
                          f"{r['size'] / 1e6:7.3f} MB uncompressed")
            wire, size = sum(r["wire"] for r in resources), sum(r["size"] for r in resources)
            own_wire, own_size = sum(r["wire"] for r in ours), sum(r["size"] for r in ours)
            print(f"     {label:7} in all {wire / 1e6:6.2f} MB on the wire ({size / 1e6:6.2f} MB uncompressed) in "
                  f"{len(resources)} files; the app's runtime, models and modules {own_wire / 1e6:6.2f} MB "
                  f"({own_size / 1e6:6.2f} MB), Gradio's page {(wire - own_wire) / 1e6:5.2f} MB")
        for label, url in apps.items():
            took, _ = first_visit(browser, url, goal, throttle=True)
            print(f"     {label:7} at 10 Mbit/s (20 ms latency): {took:5.1f} s from opening the page")


RANDOM_DRAWS_JS = SLIDER_JS + """async ([seconds, start, step]) => {
    const input = slider('Temperature'), box = document.querySelector('#random-faces');
    const first = Number(box.dataset.draws), begin = performance.now();
    let i = 0;
    while (performance.now() - begin < seconds * 1000) {
        move(input, (start - (1 + i++ % 10) * step).toFixed(2));
        await new Promise((r) => setTimeout(r, 4));
    }
    await new Promise((r) => setTimeout(r, 300));
    return { draws: Number(box.dataset.draws) - first, seconds: (performance.now() - begin) / 1000, moves: i };
}"""


def measure_random(browser, url: str, seconds: float = 3) -> None:
    print("7. Random faces drawn in the page while the temperature moves (every 4 ms)")
    for count in (16, 64):
        page = open_app(browser, url, tab="Random faces")
        page.wait_for_function("() => Number(document.querySelector('#random-faces')?.dataset.draws) >= 1",
                               timeout=120_000)
        page.evaluate(SLIDER_JS + "(count) => move(slider('Count'), count)", count)
        page.wait_for_function(f"() => document.querySelectorAll('#random-faces canvas').length === {count}",
                               timeout=120_000)
        page.wait_for_timeout(1000)
        before = len(page.app_requests)
        result = page.evaluate(RANDOM_DRAWS_JS, [seconds, 1.0, 0.05])
        calls = [u for u in page.app_requests[before:] if any(c in u for c in ("queue/join", "/call/", "/run/"))]
        print(f"   {count:2d} faces: {result['draws'] / result['seconds']:.1f} redraws per second "
              f"({result['moves']} moves in {result['seconds']:.1f} s); {len(calls)} requests to the queue or API")
        page.context.close()


def int8_weights(model):
    """A copy of model with each weight matrix and kernel rounded to int8, one scale per output channel."""
    import copy

    import torch

    rounded = copy.deepcopy(model).eval()
    with torch.no_grad():
        for weight in rounded.parameters():
            if weight.dim() > 1:
                scale = weight.abs().amax(dim=tuple(range(1, weight.dim())), keepdim=True) / 127
                weight.copy_((weight / scale).round() * scale)
    return rounded


def measure_precision() -> None:
    import torch

    from facevae import load_model
    from facevae.export import FLOAT16_PSNR, ONNX_PSNR, DecoderVJP, float16_weights, psnr

    model = load_model().eval()
    print(f"6. The weights' precision, against the float32 model (PSNR; the bound is {FLOAT16_PSNR:g} dB)")
    for name, psnrs in ONNX_PSNR.items():
        measured = ", ".join(f"{output} {db:.1f} dB" for output, db in psnrs(model, model.onnx[name]).items())
        print(f"   float16 file {name:8} {measured}")
    generator = torch.Generator().manual_seed(0)
    z = torch.randn(64, model.latent_dim, generator=generator)
    cotangent = torch.randn(64, 3, model.image_size, model.image_size, generator=generator)
    with torch.inference_mode():
        image, z_grad = DecoderVJP(model)(z, cotangent)
        mu = model.encode(image)[0]
        for label, rounded in [("float16", float16_weights(model)), ("int8", int8_weights(model))]:
            got_image, got_grad = DecoderVJP(rounded)(z, cotangent)
            got_mu = rounded.encode(image)[0]
            print(f"   {label:7} in torch  image {psnr(got_image.numpy(), image.numpy()):.1f} dB (largest pixel "
                  f"difference {255 * float((got_image - image).abs().max()):.2f}/255), z_grad "
                  f"{psnr(got_grad.numpy(), z_grad.numpy()):.1f} dB, mu {psnr(got_mu.numpy(), mu.numpy()):.1f} dB "
                  f"(its face {psnr(model.decode(got_mu).numpy(), model.decode(mu).numpy()):.1f} dB)")


def cpu_seconds(process: subprocess.Popen) -> float:
    """The app's CPU time so far (user + system), from /proc."""
    fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_photos(folder: Path, count: int, sides: tuple[int, ...]) -> list[Path]:
    """The examples, and `count` val photos of CelebA enlarged to each long side (a phone's photo
    is big), written to folder (a temporary one: CelebA's images are never copied into the repository)."""
    from PIL import Image

    photos = [ROOT / "assets" / "examples" / name for name in ("astronaut.jpg", "grace_hopper.jpg")]
    celeba = ROOT.parent / "shared" / "data" / "celeba"
    if not celeba.is_dir():
        return photos
    names = [line.split()[0] for line in (celeba / "list_eval_partition.txt").read_text().splitlines()
             if line.split()[1] == "1"][:count]
    for name in names:
        image = Image.open(celeba / "img_align_celeba" / name).convert("RGB")
        for side in sides:
            scale = side / max(image.size)
            path = folder / f"{Path(name).stem}-{side}.jpg"
            image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.LANCZOS).save(path, quality=92)
            photos.append(path)
    return photos


def time_photo(page, photo: Path) -> float:
    """Milliseconds from choosing the photo to its refined face (a photo the page cannot use stops the run)."""
    page.evaluate(REFINED_AT_JS)
    page.locator("#reconstruct-page input[type=file]").set_input_files(str(photo))
    took = page.evaluate("() => Promise.race([window.refinedIn, new Promise((r) => { setTimeout(r, 120000); })])")
    if took is None:
        raise RuntimeError(f"{photo.name}: no refined face; the page says "
                           f"{page.locator('#reconstruct-page .status').inner_text()!r}")
    return took


def measure_photos(browser, url: str, process: subprocess.Popen, photos: list[Path], people: int) -> None:
    for mode, init in [("page", None), ("server", "delete window.WebAssembly")]:
        page = open_app(browser, url, init)
        page.sent = []
        page.on("request", lambda request: page.sent.append(len(request.post_data_buffer or b"")))
        page.wait_for_selector(f"#reconstruct-page [data-mode={'browser' if mode == 'page' else 'server'}]",
                               state="attached", timeout=120_000)
        time_photo(page, photos[1])  # warms up the runtime (not the first measured: the same file fires no change)
        by_size: dict[str, list[float]] = {}
        sent_before, cpu_before = len(page.sent), cpu_seconds(process)
        for photo in photos:
            size = photo.stem.rsplit("-", 1)[-1] if "-" in photo.stem else "examples"
            by_size.setdefault(size, []).append(time_photo(page, photo))
        sent = page.sent[sent_before:]
        cpu = (cpu_seconds(process) - cpu_before) / len(photos)
        for size, times in by_size.items():
            label = "the examples" if size == "examples" else f"val photos, {size} px long"
            print(f"   {mode:6} {label:26} photo to refined face {summary(times)}")
        print(f"   {mode:6} per photo: {len(sent) / len(photos):.1f} requests carrying "
              f"{sum(sent) / len(photos) / 1e3:.1f} kB; the server's CPU {cpu:.2f} s")
        page.context.close()
    load(browser, url, process, photos[0], people)


def load(browser, url: str, process: subprocess.Popen, photo: Path, people: int) -> None:
    """`people` pages choose a photo at once (here all on this machine's 2 cores; each person's
    own device in the field): each one's time to the refined face, and the server's CPU."""
    pages = [open_app(browser, url) for _ in range(people)]
    for page in pages:
        page.wait_for_selector("#reconstruct-page [data-mode=browser]", state="attached", timeout=120_000)
    cpu_before = cpu_seconds(process)
    for page in pages:
        page.evaluate(REFINED_AT_JS)
    for page in pages:
        page.locator("#reconstruct-page input[type=file]").set_input_files(str(photo))
    times = [page.evaluate("() => window.refinedIn") for page in pages]
    print(f"   {people} people at once, in their pages: {len(times)} of {people} refined; {summary(times)}; "
          f"the server's CPU {cpu_seconds(process) - cpu_before:.2f} s in all")
    for page in pages:
        page.context.close()


def camera_faces() -> list[Path]:
    """The mirror's three faces: the two examples and the first val photo of CelebA (if there)."""
    faces = [ROOT / "assets" / "examples" / name for name in ("astronaut.jpg", "grace_hopper.jpg")]
    celeba = ROOT.parent / "shared" / "data" / "celeba"
    if celeba.is_dir():
        name = next(line.split()[0] for line in (celeba / "list_eval_partition.txt").read_text().splitlines()
                    if line.split()[1] == "1")
        faces.append(celeba / "img_align_celeba" / name)
    return faces


def camera_video(path: Path, photo: Path, speed: int = 3) -> Path:
    """A 640×480 y4m video at 30 frames a second, for Chromium's fake camera: the photo, 360 px
    tall, crossing the frame from one side to the other and back, `speed` px a frame (3: 90 px a
    second, a head turning at ease)."""
    import cv2
    import numpy as np
    from PIL import Image

    image = Image.open(photo).convert("RGB")
    face = np.asarray(image.resize((round(image.width * 360 / image.height), 360)))
    travel = 640 - face.shape[1]
    with open(path, "wb") as f:
        f.write(b"YUV4MPEG2 W640 H480 F30:1 Ip A1:1 C420jpeg\n")
        for x in [*range(0, travel, speed), *range(travel, 0, -speed)]:
            frame = np.full((480, 640, 3), 110, np.uint8)
            frame[60:420, x:x + face.shape[1]] = face
            f.write(b"FRAME\n" + cv2.cvtColor(frame, cv2.COLOR_RGB2YUV_I420).tobytes())
    return path


def mirror_rate(browser, url: str, process: subprocess.Popen, seconds: float, mode: str) -> str:
    """The mirror's faces per second, detector runs and requests, on this browser's camera."""
    page = open_app(browser, url, None if mode == "page" else "delete window.WebAssembly")
    page.context.grant_permissions(["camera"])
    sent = []
    page.on("request", lambda request: sent.append(len(request.post_data_buffer or b"")))
    page.wait_for_selector(f"#mirror [data-mode={'browser' if mode == 'page' else 'server'}]",
                           state="attached", timeout=120_000)
    page.locator("#mirror").get_by_role("button", name="Start").click()
    page.wait_for_function("() => document.querySelector('#mirror-reconstruction').dataset.frames >= 3",
                           timeout=60_000)
    counts = "() => ['frames', 'detections'].map((key) => +(document.querySelector('#mirror-reconstruction').dataset[key] ?? 0))"
    (frames, detections), sent_before, cpu_before, begin = page.evaluate(counts), len(sent), cpu_seconds(process), time.perf_counter()
    page.wait_for_timeout(seconds * 1000)
    elapsed = time.perf_counter() - begin
    (frames_after, detections_after), bodies = page.evaluate(counts), sent[sent_before:]
    drawn = frames_after - frames
    page.context.close()
    return (f"{drawn / elapsed:4.1f} faces/s, the detector on {(detections_after - detections) / max(drawn, 1):4.0%} of them; "
            f"{len(bodies) / elapsed:.1f} requests/s carrying {sum(bodies) / elapsed / 1e3:.0f} kB; the server's CPU "
            f"{(cpu_seconds(process) - cpu_before) / elapsed:.2f} s/s")


def measure_mirror(p, apps: dict[str, tuple[str, subprocess.Popen]], seconds: float) -> None:
    """Each face of camera_faces crossing the fake camera's frame, mirrored by each app (this
    checkout, following the face; the app before tracking, detecting on every frame), and on the
    first face by this checkout's server fallback."""
    with tempfile.TemporaryDirectory() as folder:
        for number, photo in enumerate(camera_faces()):
            video = camera_video(Path(folder) / f"camera{number}.y4m", photo)
            flags = CHROMIUM_FLAGS + ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                             f"--use-file-for-fake-video-capture={video}"]
            browser = p.chromium.launch(executable_path=CHROMIUM, args=flags)
            runs = [(name, "page") for name in apps] + ([("tracked", "server")] if number == 0 else [])
            for name, mode in runs:
                url, process = apps[name]
                print(f"   {photo.name:24} {name:9} {mode:6}: {mirror_rate(browser, url, process, seconds, mode)}")
            browser.close()


def start_app(folder: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONPATH": str(folder)}
    process = subprocess.Popen([sys.executable, "app.py", "--port", str(port)], cwd=folder, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in process.stdout:
        if "Running on" in line:
            threading.Thread(target=process.stdout.read, daemon=True).start()  # keep its pipe drained
            return process
    raise RuntimeError(f"the app in {folder} did not start")


def app_url(processes: dict, folder: Path) -> str:
    """The address of the app in folder, started the first time it is asked for."""
    if folder not in processes:
        port = free_port()
        processes[folder] = (start_app(folder, port), f"http://127.0.0.1:{port}/")
    return processes[folder][1]


def mirror_apps(processes: dict, untracked: Path) -> dict[str, tuple[str, subprocess.Popen]]:
    urls = {"tracked": app_url(processes, ROOT), "untracked": app_url(processes, untracked)}
    return {name: (url, processes[ROOT if name == "tracked" else untracked][0]) for name, url in urls.items()}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline-ref", default="2f4bfcc", help="a commit of the app before browser decoding")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--runs", type=int, default=200, help="decodes per runtime measurement")
    parser.add_argument("--photos", type=int, default=6, help="val photos of CelebA, each at every --sides")
    parser.add_argument("--sides", type=int, nargs="+", default=[640, 1280, 2560])
    parser.add_argument("--people", type=int, default=8)
    parser.add_argument("--mirror-seconds", type=float, default=10)
    parser.add_argument("--photos-only", action="store_true", help="part 4 alone")
    parser.add_argument("--mirror", action="store_true", help="part 4's mirror alone")
    parser.add_argument("--untracked-ref", default="4f6dad7", help="a commit of the mirror before it followed the face")
    parser.add_argument("--first-visit", action="store_true", help="part 5 alone")
    parser.add_argument("--precision", action="store_true", help="part 6 alone (no browser)")
    parser.add_argument("--random", action="store_true", help="part 7 alone")
    parser.add_argument("--before-ref", default="293d269", help="the commit part 5 compares against (before issue 48)")
    args = parser.parse_args(argv)
    if args.precision:
        return measure_precision()
    from playwright.sync_api import sync_playwright

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    print(f"CPU: {cpu}, {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f} at the start")
    with tempfile.TemporaryDirectory() as baseline, tempfile.TemporaryDirectory() as before, \
            tempfile.TemporaryDirectory() as photos, tempfile.TemporaryDirectory() as untracked, sync_playwright() as p:
        for ref, folder in [(args.baseline_ref, baseline), (args.before_ref, before), (args.untracked_ref, untracked)]:
            subprocess.run(f"git -C {ROOT} archive {ref} | tar -x -C {folder}", shell=True, check=True)
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        apps = [("browser", ROOT), ("server", ROOT), ("baseline", Path(baseline))]
        processes = {}
        try:
            if args.random:
                measure_random(browser, app_url(processes, ROOT))
                return
            if args.mirror:
                print("4. The live mirror: faces crossing a fake camera's frame")
                measure_mirror(p, mirror_apps(processes, Path(untracked)), args.mirror_seconds)
                return
            if not (args.photos_only or args.first_visit):
                runtime_alone(browser, args.runs)
                for mode, folder in apps:
                    url = app_url(processes, folder)
                    print({"browser": "2. The app, faces decoded in the page (WASM, 1 thread)",
                           "server": "   The app with WebAssembly deleted: faces decoded on the server (the fallback)",
                           "baseline": f"3. The app at {args.baseline_ref}: every move decoded on the server"}[mode])
                    measure_app(browser, url, args.steps, mode)
            if not args.first_visit:
                url = app_url(processes, ROOT)
                print("4. Photos and the live mirror, in the page and on the server (the fallback)")
                measure_photos(browser, url, processes[ROOT][0], bench_photos(Path(photos), args.photos, tuple(args.sides)),
                               args.people)
                measure_mirror(p, mirror_apps(processes, Path(untracked)), args.mirror_seconds)
            if not args.photos_only:
                print(f"5. The first visit: this checkout against {args.before_ref}")
                measure_first_visits(browser, {"now": app_url(processes, ROOT), "before": app_url(processes, Path(before))})
        finally:
            for process, _ in processes.values():
                process.terminate()
                process.wait(timeout=30)
            browser.close()
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
