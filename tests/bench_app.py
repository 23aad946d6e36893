"""App speed through the live server, with gradio_client, measured side by side in one run.
Run by hand (pytest does not collect it):

    python tests/bench_app.py [--repeats 40]

Starts `python app.py` on a free port, then times: start-up to the first answered request; a
no-op event (/ping: Gradio's own round trip on this machine); an explorer slider update; a
12-megapixel JPEG selfie reconstruction, and one of a blank 128-px photo (the same file
transfers; the work, a face search that finds nothing, on a tiny image); 16 random faces (one
grid PNG, and as a gallery of 16 files), with two client settings (see CLIENTS); 8 concurrent
clients × 50 mixed requests, with the message of every failure. Targets are on the time our
work adds above the no-op's. First, in this process: face detection plus landmarks on the
decoded 12 MP selfie, and the live mirror's frames per second on 640×480 webcam-sized frames.
"""
from __future__ import annotations

import argparse
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
from gradio_client import Client, handle_file
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the in-process measurements import facevae from the repository


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def selfie_12mp(folder: Path) -> str:
    """A 4000×3000 JPEG with the example face in it, noisy like a phone photo."""
    rng = np.random.default_rng(0)
    canvas = rng.integers(60, 200, (3000, 4000, 3), dtype=np.uint8)
    canvas = Image.fromarray(canvas).resize((400, 300)).resize((4000, 3000), Image.Resampling.BICUBIC)
    face = Image.open(ROOT / "assets" / "examples" / "astronaut.jpg").resize((1800, 1800))
    canvas.paste(face, (1100, 600))
    path = folder / "selfie_12mp.jpg"
    canvas.save(path, quality=92)
    return str(path)


def blank_photo(folder: Path) -> str:
    """A small photo without a face: a reconstruction with the same uploads and downloads as a
    selfie's, on a tiny image (no face to find: the whole search runs, on 128×128 pixels)."""
    path = folder / "blank.png"
    Image.new("RGB", (128, 128), (128, 128, 128)).save(path)
    return str(path)


def timed(fn, repeats: int) -> list[float]:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return times


def p(values, q) -> float:
    return float(np.percentile(values, q))


# gradio_client's defaults verify TLS, so every HTTP request it makes (two per event, one per
# file it uploads or downloads) loads the CA bundle anew, tens of ms each, even for plain HTTP;
# the second client skips that, which shows what the server itself costs.
CLIENTS = {"gradio_client defaults": {}, "ssl_verify=False (plain HTTP on localhost)": {"ssl_verify": False}}


def time_requests(client: Client, selfie: str, blank: str, repeats: int) -> dict[str, list[float]]:
    dims, rng = list(range(8)), random.Random(0)
    return {
        "no-op (/ping)": timed(lambda: client.predict(api_name="/ping"), repeats),
        "explorer slider (/explore)": timed(lambda: client.predict(
            None, 3, {"Smiling": rng.uniform(-3, 3)}, {"1": rng.uniform(-3, 3)},
            {str(d): rng.uniform(-3, 3) for d in dims}, api_name="/explore"), repeats),
        "12 MP selfie (/reconstruct)": timed(lambda: client.predict(handle_file(selfie), 1, api_name="/reconstruct"),
                                             max(10, repeats // 3)),
        "blank 128-px photo (/reconstruct)": timed(lambda: client.predict(handle_file(blank), 1, api_name="/reconstruct"),
                                                   max(10, repeats // 3)),
        "16 random faces (/sample)": timed(lambda: client.predict(16, rng.randrange(10**6), 0.8, "mixture",
                                                                  api_name="/sample"), repeats),
        "16 faces as gallery (/sample_gallery)": timed(lambda: client.predict(
            16, rng.randrange(10**6), 0.8, "mixture", api_name="/sample_gallery"), max(10, repeats // 3)),
    }


def in_process(selfie: str, repeats: int) -> None:
    """Face detection + landmarks of the 12 MP selfie, and the live mirror's frame rate."""
    from facevae import load_model
    from facevae.align import find_faces
    from facevae.photo import load_photo
    from facevae.pipeline import FacePipeline

    photo = np.asarray(load_photo(selfie)[0])
    times = timed(lambda: find_faces(photo), repeats)
    print(f"in-process: detection + landmarks of the 12 MP selfie (decoded at {photo.shape[1]}×{photo.shape[0]}): "
          f"p50 {p(times, 50):.1f} ms, p95 {p(times, 95):.1f} ms")
    pipeline = FacePipeline(load_model())
    webcam = np.asarray(Image.open(selfie).resize((640, 480)))
    frames = [np.roll(webcam, 3 * i, axis=1) for i in range(repeats)]  # the face moves a little each frame
    start = time.perf_counter()
    for frame in frames:
        pipeline.mirror(frame)
    seconds = time.perf_counter() - start
    print(f"in-process: live mirror, 640×480 frames aligned + reconstructed: {len(frames) / seconds:.1f} frames/s")


def client_setup_ms(repeats: int = 20) -> float:
    """What gradio_client's defaults spend, on this machine, before each HTTP request: building an
    httpx client that verifies TLS loads the CA bundle (even for plain HTTP)."""
    return p(timed(lambda: httpx.Client(verify=True).close(), repeats), 50)


def report(results: dict[str, list[float]]) -> None:
    base50, base95 = p(results["no-op (/ping)"], 50), p(results["no-op (/ping)"], 95)
    print(f"{'request':40s} {'p50 ms':>8s} {'p95 ms':>8s} {'p50 − no-op':>12s} {'p95 − no-op':>12s}")
    for name, times in results.items():
        print(f"{name:40s} {p(times, 50):8.1f} {p(times, 95):8.1f} {p(times, 50) - base50:12.1f} {p(times, 95) - base95:12.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        in_process(selfie_12mp(Path(folder)), args.repeats)
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    started = time.perf_counter()
    server_log = Path(tempfile.gettempdir()) / "facevae-bench-server.log"
    server = subprocess.Popen([sys.executable, "app.py", "--port", str(port)], cwd=ROOT, env=env,
                              stdout=server_log.open("w"), stderr=subprocess.STDOUT)
    try:
        client = None
        while client is None:
            try:
                client = Client(url, verbose=False)
                client.predict(api_name="/ping")
            except Exception:
                client = None
                time.sleep(0.05)
            if time.perf_counter() - started > 120:
                raise SystemExit("the app did not answer within 120 s")
        startup = time.perf_counter() - started
        print(f"start-up to first answered request: {startup:.1f} s")
        with tempfile.TemporaryDirectory() as folder:
            selfie, blank = selfie_12mp(Path(folder)), blank_photo(Path(folder))
            for name, options in CLIENTS.items():
                print(f"\nclient: {name}")
                report(time_requests(Client(url, verbose=False, **options), selfie, blank, args.repeats))
            print(f"\ngradio_client defaults: building one HTTP client takes {client_setup_ms():.0f} ms (p50); it builds two per "
                  "event, plus one per file uploaded or downloaded")
            mixed, errors = concurrent_load(url, selfie, clients=8, requests=50)
        print(f"\n8 clients × 50 mixed requests (default client): {len(mixed)} answered, {len(errors)} errors; "
              f"p50 {p(mixed, 50):.0f} ms, p95 {p(mixed, 95):.0f} ms")
        for error in sorted(set(errors)):
            print(f"  {errors.count(error)} × {error}")
        print(f"server log: {server_log}")
    finally:
        server.terminate()
        server.wait(timeout=30)


def concurrent_load(url: str, selfie: str, clients: int, requests: int) -> tuple[list[float], list[str]]:
    """Latencies of the answered requests, and the message of each failed one."""
    def one_client(index: int) -> tuple[list[float], list[str]]:
        client, rng = Client(url, verbose=False), random.Random(index)
        calls = {
            "explore": lambda: client.predict(None, rng.randrange(100), {"Smiling": rng.uniform(-3, 3)},
                                              {"1": rng.uniform(-3, 3)}, {"0": rng.uniform(-3, 3)}, api_name="/explore"),
            "sample": lambda: client.predict(16, rng.randrange(10**6), 0.8, "mixture", api_name="/sample"),
            "morph": lambda: client.predict(None, rng.randrange(100), None, rng.randrange(100), rng.random(),
                                            "spherical", api_name="/morph"),
            "reconstruct": lambda: client.predict(handle_file(selfie), 1, api_name="/reconstruct"),
        }
        names = list(calls)
        times, errors = [], []
        for i in range(requests):
            start = time.perf_counter()
            name = names[i % len(names)]
            try:
                calls[name]()
                times.append((time.perf_counter() - start) * 1000)
            except Exception as error:
                errors.append(f"/{name}: {type(error).__name__}: {error}")
        return times, errors

    with ThreadPoolExecutor(clients) as pool:
        outcomes = list(pool.map(one_client, range(clients)))
    return [t for times, _ in outcomes for t in times], [e for _, errors in outcomes for e in errors]


if __name__ == "__main__":
    main()
