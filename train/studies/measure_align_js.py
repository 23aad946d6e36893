"""The page's alignment (facevae/web/align.js) against facevae.align_face, given dlib's landmarks.

    python -m train.studies.measure_align_js --data ../shared/data/celeba [--faces 50] [--seed 0]

For each of --faces val images, three photos: the aligned image itself (178×218), the image
pasted at 1.5–3× and rolled by up to ±25° into a 1–2 MP JPEG (train.studies.measure_align's
photo_with: the warp then shrinks the photo first) and a headshot cut forehead to chin at 2.5×
(train.studies.measure_headshots: the frame is completed beyond it). align_face runs in Python;
the landmarks it fits from (every detection's first 68 points, recorded from fit_to_template)
go to align.js in Debian's headless Chromium, whose placeLandmarks calls dlib in Python for
the refit rounds, so both see the same landmarks. Prints, per kind of photo, PSNR between the
two 128×128 faces (align.js with its own grain noise, as the page runs it, and with numpy's),
the largest matrix difference, how often the same face is chosen, and align.js's time per photo
(without the landmark calls). The pasted JPEGs are also decoded by the browser
(createImageBitmap, EXIF orientation applied) and aligned from those pixels: PSNR of the
browser's decoding against Pillow's, and of the face from it.

--face-api: the page's own landmarks instead, all in the browser as the page runs (detect.js:
face-api's tiny detector and 68-point net, with ONNX Runtime Web), on the same photos: align.js's
face against align_face's, and each against crop_celeba of the original image (what the face
should be: the crop PSNR of train.studies.measure_align), first with dlib's template
(celeba_landmarks.json), then with one measured the same way for face-api's net (--calibrate
training images: its mean box on them, its mean landmarks placed from that box; printed, and
written to --template-out if given).

Measured (50 val faces, seed 0, headless Chromium on 2 shared cores of an Intel Xeon):
- dlib's landmarks: the same face as align_face for all 150 photos, the matrix within 8e-10.
  With numpy's noise the faces are identical on all 50 CelebA images and all 50 pasted photos
  (whose JPEGs Chromium also decodes to Pillow's very pixels), and on 38 of the 50 headshots (the
  least 90.3 dB: complete_frame's float32 blurs). With align.js's own noise: 61.6 dB median on
  the CelebA images (3% of the face completed), identical on the pasted, 45.5 dB (least 40.7) on
  the headshots (64% completed). align.js alone: 43, 65, 60 ms median per photo.
- face-api's landmarks (--face-api; 2 refit rounds; align_face: 21.29 and 19.94 dB from the
  original's crop on the CelebA images and the pasted photos): with dlib's template 24.0 and
  23.3 dB from align_face's face (median), 21.85 and 21.06 dB from the original's crop; with
  face-api's own template (254 of 300 training faces) 25.4 and 25.1 dB from align_face's but
  21.5 and 19.9 from the original's. Without the refit rounds (--rounds 0): 26.1 and 23.2 dB
  from align_face's, 22.3 and 19.8 from the original's. So dlib's template and the rounds, as
  align_face has them, frame a rolled face best. align.js with the landmark net: 70–90 ms.
  (A headshot's original crop shows what the photo does not: its 14 dB is no measure of framing.)
- Finding the face (--face-api, as photo.js does, with its DETECTION_RETRIES, chosen on the
  images above): on 50 other val faces (--offset 1), found 48 of 50 CelebA images, 50 of 50
  pasted photos and 49 of 50 headshots (align_face 50 of each). What the difference costs the
  reconstruction (the encoder's, against the original's crop, median): 21.73 dB from the page's
  face against 21.79 from align_face's on the CelebA images, 20.92 against 20.85 on the pasted,
  14.92 against 14.94 on the headshots; the two crops 24.9, 23.4 and 29.9 dB apart (median;
  10th percentile 21.6, 19.3, 26.3).

The harness (a static server of facevae/, the page and its helpers) is what tests/test_align_js.py
uses too.

Reproduces: the figures above, quoted in docs/browser.md, "Photos and the mirror in the page"
(finding and aligning the face, against the server's).
"""
import argparse
import json
import base64
import time
from contextlib import contextmanager
from pathlib import Path

import dlib
import numpy as np
from PIL import Image

from facevae.export import psnr
from train.browser import CHROMIUM, CHROMIUM_FLAGS, local_page, serving

ROOT = Path(__file__).resolve().parents[2]

# The page's side: photos in and faces out as base64 RGB, and placeLandmarks (window.dlib) calling
# dlib in Python (window.dlibLandmarks, exposed by open_align_page)
HELPERS = """async () => {
  window.A = await import('/web/align.js');
  window.TEMPLATE = await (await fetch('/celeba_landmarks.json')).json();
  window.bytesOf = (b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  window.toImageData = (b64, width, height) => {
    const bytes = atob(b64), rgba = new Uint8ClampedArray(4 * width * height);
    for (let p = 0; p < width * height; p++) {
      for (let k = 0; k < 3; k++) rgba[4 * p + k] = bytes.charCodeAt(3 * p + k);
      rgba[4 * p + 3] = 255;
    }
    return new ImageData(rgba, width, height);
  };
  window.rgbBase64 = (imageData) => {
    const parts = [];
    for (let start = 0; start < imageData.width * imageData.height; start += 8192) {
      let text = '';
      const end = Math.min(start + 8192, imageData.width * imageData.height);
      for (let p = start; p < end; p++) {
        text += String.fromCharCode(imageData.data[4 * p], imageData.data[4 * p + 1], imageData.data[4 * p + 2]);
      }
      parts.push(text);
    }
    return btoa(parts.join(''));
  };
  window.landmarkTime = 0;
  window.dlib = async (canvas, box) => {
    const start = performance.now();
    const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
    const points = await window.dlibLandmarks(rgbBase64(data), data.width, data.height, box);
    window.landmarkTime += performance.now() - start;
    return points;
  };
  window.floats = (b64) => new Float32Array(bytesOf(b64).buffer);
}"""

# align.js on a photo: [photo (base64 RGB, or base64 JPEG when width is null), width, height,
# faces, noise (base64 float32 or null), rounds] -> the face (base64 RGB) and what came with it
ALIGN = """async ([photo, width, height, faces, noise, rounds]) => {
  const options = { rounds };
  if (noise) options.noise = floats(noise);
  const source = width === null
    ? await createImageBitmap(new Blob([bytesOf(photo)], { type: 'image/jpeg' }), { imageOrientation: 'from-image' })
    : toImageData(photo, width, height);
  window.landmarkTime = 0;
  const start = performance.now();
  const result = await A.alignFace(source, faces, window.dlib, TEMPLATE, options);
  const ms = performance.now() - start - window.landmarkTime;
  const decoded = width === null ? rgbBase64(A.readPhoto(source).canvas.getContext('2d').getImageData(0, 0, source.width, source.height)) : null;
  return { face: rgbBase64(result.face), matrix: result.matrix, filledShare: result.filledShare, found: result.found,
    chosen: result.chosen, faces: result.faces.map((f) => ({ score: f.score, landmarks: f.landmarks })),
    message: result.message, ms, decoded, size: [source.width, source.height] };
}"""


# detect.js and ONNX Runtime Web from the served folder (window.FINDER: detect and landmarks)
FACE_API = """async () => {
  window.findFaces = (await import('/web/photo.js')).findFaces;
  const { loadRuntime } = await import('/web/runtime.js');
  const { loadFaceFinder } = await import('/web/detect.js');
  window.FINDER = await loadFaceFinder(await loadRuntime('/web/vendor/onnxruntime-web/'), '/web/vendor/face-api/');
}"""

# calibrate_align's measure with face-api's nets: [[base64 RGB, width, height], ...] CelebA-aligned
# images -> {images, faces_found, box (the mean box of the most confident face), landmarks (the mean
# 68 placed from that box, rounded as align.template rounds it)}
CALIBRATE = """async (photos) => {
  const boxes = [], images = [];
  for (const [b64, width, height] of photos) {
    const image = toImageData(b64, width, height), faces = await FINDER.detect(image);
    if (!faces.length) continue;
    boxes.push(faces.reduce((a, b) => (b.score > a.score ? b : a)).box);
    images.push(image);
  }
  const box = [0, 1, 2, 3].map((k) => boxes.reduce((sum, b) => sum + b[k], 0) / boxes.length);
  const sums = Array.from({ length: 68 }, () => [0, 0]);
  for (const image of images) {
    (await FINDER.landmarks(image, box.map(A.rint))).forEach(([x, y], i) => { sums[i][0] += x; sums[i][1] += y; });
  }
  return { images: photos.length, faces_found: images.length, box, landmarks: sums.map(([x, y]) => [x / images.length, y / images.length]) };
}"""

# The page's whole alignment: detect.js's faces (again with a hidden border when none: align_face's
# retry) and landmarks, align.js -> the face, with the template given (or dlib's)
ALIGN_FACE_API = """async ([b64, width, height, template, rounds]) => {
  const image = toImageData(b64, width, height);
  const faces = await findFaces(FINDER, image);  // as the page finds them
  const start = performance.now();
  const result = await A.alignFace(image, faces, FINDER.landmarks, template ?? TEMPLATE, { rounds });
  return { face: rgbBase64(result.face), found: result.found, ms: performance.now() - start };
}"""


def to_b64(data) -> str:
    return base64.b64encode(data if isinstance(data, bytes) else np.ascontiguousarray(data).tobytes()).decode()


def from_b64(text: str, width: int = 128, height: int = 128) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), np.uint8).reshape(height, width, 3)


def dlib_landmarks(b64: str, width: int, height: int, box: list) -> list:
    """facevae.align.place_landmarks on a canvas's pixels, for the page."""
    from facevae.align import place_landmarks

    image = from_b64(b64, width, height).copy()
    return place_landmarks(image, dlib.rectangle(*(int(v) for v in box))).tolist()


def numpy_noise() -> str:
    """align.complete_frame's grain noise (numpy's), for align.js's options.noise."""
    from facevae.align import unit_noise
    from facevae.preprocess import CELEBA_SIZE

    return to_b64(unit_noise((CELEBA_SIZE[1], CELEBA_SIZE[0], 3)).astype(np.float32))


@contextmanager
def serve(folder: Path = ROOT / "facevae"):
    """folder over HTTP on a free port of 127.0.0.1 (as the app serves its static files): the URL."""
    with serving(folder) as url:
        yield url.rstrip("/")


def open_align_page(browser, site: str):
    """A page of the served folder with align.js imported (window.A), the template, the helpers
    above and placeLandmarks calling dlib in Python; any request to another host is refused and
    kept in page.foreign_requests."""
    page = local_page(browser, site)
    page.expose_function("dlibLandmarks", dlib_landmarks)
    page.goto(site + "/", wait_until="load")
    page.evaluate(HELPERS)
    return page


@contextmanager
def recorded_fits():
    """align_face, with every (landmarks, score) it fits a face from recorded in the list yielded."""
    from facevae import align

    calls, fit = [], align.fit_to_template

    def recording(photo, landmarks, score, rounds=align.REFIT_ROUNDS):
        calls.append({"landmarks": np.asarray(landmarks).tolist(), "score": float(score), "box": None})
        return fit(photo, landmarks, score, rounds)

    align.fit_to_template = recording
    try:
        yield calls
    finally:
        align.fit_to_template = fit


def compare(page, photo_bytes: bytes | None, photo: np.ndarray, noise: str) -> dict:
    """align_face on photo (RGB) against align.js from the same landmarks, with its own noise and
    with numpy's; photo_bytes (a JPEG): also decoded by the browser."""
    from facevae import align

    with recorded_fits() as fits:
        expected, info = align.align_face(Image.fromarray(photo))
    expected = np.asarray(expected)
    height, width = photo.shape[:2]
    row = {}
    for name, extra in (("own", None), ("numpy", noise)):
        got = page.evaluate(ALIGN, [to_b64(photo), width, height, fits, extra, align.REFIT_ROUNDS])
        row[name] = psnr(from_b64(got["face"]), expected)
    row["ms"] = got["ms"]
    row["same_choice"] = got["found"] == info.found and (not info.found or (
        np.abs(np.array(got["faces"][got["chosen"]]["landmarks"]) - info.faces[info.chosen].landmarks).max() < 1e-3))
    row["matrix"] = float(np.abs(np.array(got["matrix"]) - info.faces[info.chosen].matrix).max()) if info.found and got["found"] else 0.0
    row["filled"] = got["filledShare"]
    if photo_bytes is not None:
        got = page.evaluate(ALIGN, [to_b64(photo_bytes), None, None, fits, None, align.REFIT_ROUNDS])
        decoded = from_b64(got["decoded"], *got["size"])
        row["decode"] = psnr(decoded, photo) if decoded.shape == photo.shape else float("nan")
        row["decoded_face"] = psnr(from_b64(got["face"]), expected)
    return row


def photos(path: Path, index: int, rng: np.random.Generator):
    """(kind, JPEG bytes or None, RGB pixels as load_photo gives them) for one val image."""
    from facevae.photo import load_photo
    from train.studies.measure_align import photo_with
    from train.studies.measure_headshots import headshot

    original = Image.open(path).convert("RGB")
    yield "celeba", None, np.asarray(original)
    jpeg = photo_with(np.asarray(original), index, rng.uniform(-25, 25))
    yield "pasted", jpeg, np.asarray(load_photo(jpeg)[0])
    yield "headshot", None, headshot(original, 2.5)


def calibrate_face_api(page, files) -> dict:
    """face-api's template for align.js, measured on CelebA-aligned images in the page."""
    photos = []
    for path in files:
        image = np.asarray(Image.open(path).convert("RGB"))
        photos.append([to_b64(image), image.shape[1], image.shape[0]])
    template = {}
    for start in range(0, len(photos), 100):  # in parts: a page.evaluate argument is kept small
        part = page.evaluate(CALIBRATE, photos[start:start + 100])
        weight = part["faces_found"]
        if not template:
            template = {**part, "box_sum": np.array(part["box"]) * weight, "sum": np.array(part["landmarks"]) * weight}
            continue
        template["images"] += part["images"]
        template["faces_found"] += weight
        template["box_sum"] += np.array(part["box"]) * weight
        template["sum"] += np.array(part["landmarks"]) * weight
    found = template["faces_found"]
    return {"images": template["images"], "faces_found": found, "box": np.round(template["box_sum"] / found, 2).tolist(),
            "landmarks": np.round(template["sum"] / found, 2).tolist()}


def measure_face_api(page, files, rng, template: dict, rounds: int) -> list[dict]:
    """align.js with detect.js's landmarks against align_face, and each against the original's crop."""
    from facevae import align, load_model
    from facevae.preprocess import crop_celeba, to_image, to_tensor

    model = load_model()

    def reconstruction_truth(face: np.ndarray, truth: np.ndarray) -> float:
        """What an alignment costs the reconstruction: the encoder's reconstruction of face against
        the original's crop (what it should be)."""
        return psnr(np.asarray(to_image(model.reconstruct(to_tensor(Image.fromarray(face))))), truth)

    rows = []
    for i, path in enumerate(files):
        truth = np.asarray(crop_celeba(Image.open(path).convert("RGB")))
        for kind, _, photo in photos(Path(path), i, rng):
            expected, info = align.align_face(Image.fromarray(photo))
            expected = np.asarray(expected)
            height, width = photo.shape[:2]
            row = {"kind": kind, "python_truth": psnr(expected, truth) if info.found else float("nan"),
                   "python_reconstruction": reconstruction_truth(expected, truth) if info.found else float("nan")}
            for name, chosen in (("dlib_template", None), ("face_api_template", template)):
                got = page.evaluate(ALIGN_FACE_API, [to_b64(photo), width, height, chosen, rounds])
                face = from_b64(got["face"])
                row[name] = {"found": got["found"], "python": psnr(face, expected), "ms": got["ms"],
                             "truth": psnr(face, truth) if got["found"] else float("nan"),
                             "reconstruction": reconstruction_truth(face, truth) if got["found"] else float("nan")}
            row["python_found"] = info.found
            rows.append(row)
        if (i + 1) % 10 == 0:
            print(f"{i + 1} images", flush=True)
    return rows


def face_api_summary(rows: list[dict]) -> dict:
    figures = {}
    for kind in dict.fromkeys(row["kind"] for row in rows):
        mine = [row for row in rows if row["kind"] == kind]
        f = figures[kind] = {"photos": len(mine), "python_found": int(sum(row["python_found"] for row in mine)),
                             "python_truth_median": float(np.nanmedian([row["python_truth"] for row in mine])),
                             "python_reconstruction_median": float(np.nanmedian([row["python_reconstruction"]
                                                                                 for row in mine]))}
        line = (f"{kind:9s} {len(mine)} photos; align_face found {f['python_found']}, its face "
                f"{f['python_truth_median']:.2f} dB from the original's crop (median), its reconstruction "
                f"{f['python_reconstruction_median']:.2f} dB")
        for name in ("dlib_template", "face_api_template"):
            both = [row for row in mine if row[name]["found"] and row["python_found"]]
            f[name] = {"found": int(sum(row[name]["found"] for row in mine)),
                       "python_median": float(np.median([row[name]["python"] for row in both])) if both else float("nan"),
                       "python_p10": float(np.percentile([row[name]["python"] for row in both], 10)) if both else float("nan"),
                       "truth_median": float(np.nanmedian([row[name]["truth"] for row in mine])),
                       "reconstruction_median": float(np.nanmedian([row[name]["reconstruction"] for row in mine])),
                       "ms_median": float(np.median([row[name]["ms"] for row in mine]))}
            g = f[name]
            line += (f"; {name.replace('_', ' ')}: found {g['found']}, {g['python_median']:.2f} dB from align_face's "
                     f"(median; 10th percentile {g['python_p10']:.2f}), {g['truth_median']:.2f} dB from the original's crop "
                     f"(its reconstruction {g['reconstruction_median']:.2f} dB), "
                     f"align.js + landmark nets {g['ms_median']:.0f} ms")
        print(line, flush=True)
    return figures


def summary(rows: list[dict]) -> dict:
    figures = {}
    for kind in dict.fromkeys(row["kind"] for row in rows):
        mine = [row for row in rows if row["kind"] == kind]
        finite = lambda key: np.minimum([row[key] for row in mine], 99.0)  # noqa: E731 (identical faces: inf, shown as 99)
        f = figures[kind] = dict(
            photos=len(mine), own_median=float(np.median(finite("own"))), own_min=float(finite("own").min()),
            numpy_median=float(np.median(finite("numpy"))), numpy_min=float(finite("numpy").min()),
            identical=int(sum(row["numpy"] == float("inf") for row in mine)),
            matrix_max=float(max(row["matrix"] for row in mine)), same_choice=int(sum(row["same_choice"] for row in mine)),
            filled_mean=float(np.mean([row["filled"] for row in mine])), ms_median=float(np.median([row["ms"] for row in mine])))
        line = (f"{kind:9s} {f['photos']} photos: PSNR with its own noise median {f['own_median']:.1f} dB (least "
                f"{f['own_min']:.1f}); with numpy's median {f['numpy_median']:.1f} (least {f['numpy_min']:.1f}; identical "
                f"{f['identical']}); matrix off by {f['matrix_max']:.1e} at most; same face {f['same_choice']}/{f['photos']}; "
                f"filled {f['filled_mean']:.3f} of the face on average; align.js {f['ms_median']:.0f} ms median")
        if "decode" in mine[0]:
            f["decode_median"] = float(np.median([row["decode"] for row in mine]))
            f["decoded_face_median"] = float(np.median(np.minimum([row["decoded_face"] for row in mine], 99.0)))
            f["decoded_face_min"] = float(np.min(np.minimum([row["decoded_face"] for row in mine], 99.0)))
            line += (f"; decoded by the browser: pixels {f['decode_median']:.1f} dB from Pillow's (median), face "
                     f"{f['decoded_face_median']:.1f} dB (least {f['decoded_face_min']:.1f})")
        print(line, flush=True)
    return figures


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/celeba")
    parser.add_argument("--faces", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--offset", type=int, default=0, help="start the evenly spaced val images here (1: others)")
    parser.add_argument("--chromium", default=CHROMIUM)
    parser.add_argument("--face-api", action="store_true", help="the page's own landmarks (detect.js), see above")
    parser.add_argument("--calibrate", type=int, default=300, help="training images for face-api's template")
    parser.add_argument("--template-out", default="", help="write face-api's template here (JSON)")
    parser.add_argument("--rounds", type=int, default=2, help="--face-api: refit rounds (facevae.align.REFIT_ROUNDS: 2)")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    from facevae.align import TEMPLATE_FILE, five_points
    from facevae.data import find_splits

    files = find_splits(args.data)["val"]
    files = files[args.offset:: max(1, len(files) // args.faces)][: args.faces]
    rng, rows, noise = np.random.default_rng(args.seed), [], numpy_noise()
    started = time.time()
    with serve() as site, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, args=CHROMIUM_FLAGS)
        page = open_align_page(browser, site)
        if args.face_api:
            page.evaluate(FACE_API)
            train = find_splits(args.data)["train"]
            template = calibrate_face_api(page, train[:: max(1, len(train) // args.calibrate)][: args.calibrate])
            print(f"face-api's template: {template['faces_found']} of {template['images']} faces found; box "
                  f"{template['box']}; five points {np.round(five_points(np.array(template['landmarks'])), 2).tolist()} "
                  f"(dlib's {np.round(five_points(np.array(json.loads(TEMPLATE_FILE.read_text())['landmarks'])), 2).tolist()})",
                  flush=True)
            if args.template_out:
                Path(args.template_out).write_text(json.dumps(template) + "\n")
            figures = face_api_summary(measure_face_api(page, files, rng, template, args.rounds))
            assert not page.foreign_requests, page.foreign_requests
            browser.close()
            return {"template": template, **figures}
        for i, path in enumerate(files):
            for kind, jpeg, photo in photos(Path(path), i, rng):
                rows.append({"kind": kind, **compare(page, jpeg, photo, noise)})
                if rows[-1]["numpy"] < 50 or not rows[-1]["same_choice"]:
                    print(f"{Path(path).name} {kind}: {rows[-1]['numpy']:.1f} dB with numpy's noise, matrix off by "
                          f"{rows[-1]['matrix']:.2g}, same face: {rows[-1]['same_choice']}", flush=True)
            if (i + 1) % 10 == 0:
                print(f"{i + 1} images, {time.time() - started:.0f} s", flush=True)
        assert not page.foreign_requests, page.foreign_requests
        browser.close()
    return summary(rows)


if __name__ == "__main__":
    main()
