"""Convert face-api's tiny face detector and 68-point landmark net to ONNX, for finding faces in
the page (facevae/web/detect.js) so a photo never leaves the browser.

    python -m train.convert_face_api          # npm pack @vladmandic/face-api@VERSION, convert, check, write VENDOR
    python -m train.convert_face_api --check  # the vendored files match SHA256SUMS (no network)

The package ships its networks as TF.js weights (a manifest of names, shapes and uint8
quantization, and a .bin); the architectures are those of its src/ (tinyYolov2/TinyYolov2Base.ts
with separable convolutions, faceFeatureExtractor/denseBlock.ts, faceProcessor). Here they are
rebuilt as torch modules, exported with torch.onnx (dynamo), and the ONNX files' raw outputs are
compared with the package's own JavaScript (its dist/face-api.esm.js, tfjs's CPU backend) run in
headless Chromium on the same input tensors; the conversion fails if they differ by more than
TOLERANCE, or if detect.js as a whole (with the new files) puts boxes or landmarks more than
PIXEL_TOLERANCE away from face-api's detectAllFaces(...).withFaceLandmarks(). Needs npm, torch, onnx, onnxscript, onnxruntime, playwright and Chromium (all but npm
and Chromium in requirements-dev.txt).

The ONNX files take pixels (N×3×S×S, RGB in 0..255, already padded to a square and resized as
face-api does: see detect.js) and do face-api's mean subtraction and scaling themselves:
  tiny_face_detector.onnx  image N×3×S×S (S a multiple of 32; face-api's default 416, the image at
                           the top left, black below or to the right) -> grid N×25×(S/32)×(S/32):
                           for anchor a, channels 5a..5a+4 are x, y, w, h, score before the
                           sigmoid/exp of TinyYolov2Base.extractBoxes
  face_landmark_68.onnx    image N×3×112×112 (the face crop centred on a black square) ->
                           landmarks N×136: x0, y0, x1, y1, ... relative to that square
"""
from __future__ import annotations

import base64
import contextlib
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from train.browser import CHROMIUM, CHROMIUM_FLAGS, serving
from train.fetch_web_runtime import ROOT, check_manifest, npm_package, vendor_main, write_manifest

VENDOR = ROOT / "facevae" / "web" / "vendor" / "face-api"
PACKAGE, VERSION = "@vladmandic/face-api", "1.7.15"
TARBALL = "vladmandic-face-api-1.7.15.tgz"
TARBALL_SHA256 = "0d77fffeef362ef9c0939cf6c567f3a2e8e177f114fa257a3270cbd2e509b031"
FILES = ["tiny_face_detector.onnx", "face_landmark_68.onnx", "LICENSE", "README.md"]
# The largest difference allowed between the ONNX files' raw outputs and face-api's (tfjs CPU
# backend), relative to the largest magnitude of face-api's output (float32 sums in another order).
TOLERANCE = 1e-4
# The same between face-api's whole pipeline in the browser and detect.js's, in pixels
PIXEL_TOLERANCE = 0.01
PHOTOS = [ROOT / "assets" / "examples" / name for name in ("astronaut.jpg", "grace_hopper.jpg")]

# face-api's constants (tinyFaceDetector/const.ts, faceFeatureExtractor/FaceFeatureExtractor.ts)
DETECTOR_MEAN_RGB = (117.001, 114.697, 97.404)
LANDMARK_MEAN_RGB = (122.782, 117.001, 104.298)
ANCHORS = ((1.603231, 2.094468), (6.041143, 7.080126), (2.882459, 3.518061), (4.266906, 5.178857),
           (9.041765, 10.66308))


# --- TF.js weights ------------------------------------------------------------------------------

def read_tfjs_weights(model_dir: Path, name: str) -> dict[str, torch.Tensor]:
    """The weights of model_dir/{name}-weights_manifest.json as float32 tensors in TF's layout,
    uint8-quantized ones dequantized as tfjs does (min + q * scale)."""
    manifest = json.loads((model_dir / f"{name}-weights_manifest.json").read_text())
    weights = {}
    for group in manifest:
        data = b"".join((model_dir / path).read_bytes() for path in group["paths"])
        offset = 0
        for entry in group["weights"]:
            count = int(np.prod(entry["shape"], dtype=np.int64))
            quantization = entry.get("quantization")
            if quantization:
                if quantization["dtype"] != "uint8":
                    raise ValueError(f"{entry['name']}: {quantization['dtype']} quantization is not handled")
                q = np.frombuffer(data, np.uint8, count, offset)
                values = (quantization["min"] + q.astype(np.float64) * quantization["scale"]).astype(np.float32)
                offset += count
            else:
                if entry["dtype"] != "float32":
                    raise ValueError(f"{entry['name']}: dtype {entry['dtype']} is not handled")
                values = np.frombuffer(data, np.float32, count, offset)
                offset += 4 * count
            weights[entry["name"]] = torch.from_numpy(values.reshape(entry["shape"]).copy())
        if offset != len(data):
            raise ValueError(f"{name}: {len(data) - offset} bytes of {group['paths']} left unread")
    return weights


# --- the networks -------------------------------------------------------------------------------

def pad_same(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """TF's 'same' zero padding of a square input of static size: an odd extra row and column go
    below and to the right."""
    size = x.shape[-1]
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    before = total // 2
    return F.pad(x, (before, total - before, before, total - before))


def leaky(x: torch.Tensor) -> torch.Tensor:
    # tinyYolov2/leaky.ts: relu(x - 0.1x) + 0.1x, a leaky ReLU of slope 0.1
    return F.leaky_relu(x, 0.1)


class SeparableConv(nn.Module):
    """tf.separableConv2d (depthwise 3×3, then pointwise 1×1) and a bias."""

    def __init__(self, channels_in: int, channels_out: int):
        super().__init__()
        self.depthwise = nn.Conv2d(channels_in, channels_in, 3, groups=channels_in, bias=False)
        self.pointwise = nn.Conv2d(channels_in, channels_out, 1)

    def forward(self, x: torch.Tensor, stride: int = 1) -> torch.Tensor:
        # padded 'same' here: with stride 2 TF pads below and to the right only
        x = pad_same(x, 3, stride)
        return self.pointwise(F.conv2d(x, self.depthwise.weight, stride=stride, groups=self.depthwise.groups))


class TinyFaceDetector(nn.Module):
    """TinyYolov2Base.runMobilenet with TinyFaceDetector's config (a plain first conv, seven filter
    sizes: no conv6/conv7), after forwardInput's normalisation: pixels (N×3×S×S, 0..255) -> the
    raw grid, N×25×(S/32)×(S/32)."""

    def __init__(self):
        super().__init__()
        sizes = [16, 32, 64, 128, 256, 512]
        self.conv0 = nn.Conv2d(3, sizes[0], 3)
        self.convs = nn.ModuleList(SeparableConv(a, b) for a, b in zip(sizes, sizes[1:]))
        self.conv8 = nn.Conv2d(sizes[-1], 5 * len(ANCHORS), 1)
        self.register_buffer("mean", torch.tensor(DETECTOR_MEAN_RGB).view(1, 3, 1, 1), persistent=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = (image - self.mean) / 255
        x = leaky(self.conv0(x))  # 'valid': S -> S-2
        for conv in self.convs:
            # maxPool 2×2, stride 2, 'same': for an odd size the last window is one column wide
            x = F.max_pool2d(x, 2, 2, ceil_mode=True)
            # depthwiseSeparableConv pads by 1 itself: the same as 'same' at any size
            x = leaky(conv.pointwise(F.conv2d(F.pad(x, (1, 1, 1, 1)), conv.depthwise.weight, groups=conv.depthwise.groups)))
        # maxPool 2×2, stride 1, 'same': TF pads the right and bottom with -inf; repeating the
        # edge gives the same maxima without infinities
        x = F.max_pool2d(F.pad(x, (0, 1, 0, 1), mode="replicate"), 2, 1)
        return self.conv8(x)


class DenseBlock4(nn.Module):
    """faceFeatureExtractor/denseBlock.ts's denseBlock4, scaling down by 2."""

    def __init__(self, channels_in: int, channels_out: int, first: bool):
        super().__init__()
        self.first = first
        self.conv0 = nn.Conv2d(channels_in, channels_out, 3) if first else SeparableConv(channels_in, channels_out)
        self.convs = nn.ModuleList(SeparableConv(channels_out, channels_out) for _ in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.first:  # tf.conv2d, stride 2, 'same'
            outs = [F.relu(F.conv2d(pad_same(x, 3, 2), self.conv0.weight, self.conv0.bias, stride=2))]
        else:
            outs = [F.relu(self.conv0(x, stride=2))]
        for conv in self.convs:
            outs.append(conv(outs[0] if len(outs) == 1 else F.relu(sum_right(outs))))
        return F.relu(sum_right(outs))


def sum_right(terms: list[torch.Tensor]) -> torch.Tensor:
    """a + (b + (c + d)): denseBlock4's order of additions."""
    total = terms[-1]
    for term in reversed(terms[:-1]):
        total = term + total
    return total


class FaceLandmark68Net(nn.Module):
    """FaceFeatureExtractor (four dense blocks, a 7×7 average pool) and FaceProcessor's fully
    connected layer: pixels (N×3×112×112, 0..255) -> 136 values, x and y interleaved, relative to
    the 112×112 square."""

    def __init__(self):
        super().__init__()
        sizes = [3, 32, 64, 128, 256]
        self.blocks = nn.ModuleList(DenseBlock4(a, b, first=i == 0) for i, (a, b) in enumerate(zip(sizes, sizes[1:])))
        self.fc = nn.Linear(sizes[-1], 136)
        self.register_buffer("mean", torch.tensor(LANDMARK_MEAN_RGB).view(1, 3, 1, 1), persistent=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = (image - self.mean) / 255
        for block in self.blocks:
            x = block(x)
        x = F.avg_pool2d(x, 7, 2)  # 7×7 -> 1×1
        return self.fc(x.flatten(1))


def conv_weight(filters: torch.Tensor) -> torch.Tensor:
    """TF's kh×kw×in×out filters as torch's out×in×kh×kw."""
    return filters.permute(3, 2, 0, 1)


def depthwise_weight(filters: torch.Tensor) -> torch.Tensor:
    """TF's kh×kw×C×1 depthwise filters as torch's C×1×kh×kw (a conv with groups=C)."""
    return filters.permute(2, 3, 0, 1)


def tfjs_state_dict(weights: dict[str, torch.Tensor], names: dict[str, str]) -> dict[str, torch.Tensor]:
    """TF.js weights as a state dict; names: TF.js layer prefix -> torch module prefix."""
    state = {}
    for tf_prefix, prefix in names.items():
        if f"{tf_prefix}/filters" in weights:
            state[f"{prefix}.weight"] = conv_weight(weights[f"{tf_prefix}/filters"])
            state[f"{prefix}.bias"] = weights[f"{tf_prefix}/bias"]
        elif f"{tf_prefix}/weights" in weights:
            state[f"{prefix}.weight"] = weights[f"{tf_prefix}/weights"].T
            state[f"{prefix}.bias"] = weights[f"{tf_prefix}/bias"]
        else:
            state[f"{prefix}.depthwise.weight"] = depthwise_weight(weights[f"{tf_prefix}/depthwise_filter"])
            state[f"{prefix}.pointwise.weight"] = conv_weight(weights[f"{tf_prefix}/pointwise_filter"])
            state[f"{prefix}.pointwise.bias"] = weights[f"{tf_prefix}/bias"]
    unused = set(weights) - {name for name in weights if name.rsplit("/", 1)[0] in names}
    if unused:
        raise ValueError(f"weights not converted: {sorted(unused)}")
    return {name: value.contiguous() for name, value in state.items()}


DETECTOR_NAMES = {"conv0": "conv0", **{f"conv{i}": f"convs.{i - 1}" for i in range(1, 6)}, "conv8": "conv8"}
LANDMARK_NAMES = {**{f"dense{b}/conv{i}": f"blocks.{b}.conv0" if i == 0 else f"blocks.{b}.convs.{i - 1}"
                     for b in range(4) for i in range(4)}, "fc": "fc"}
NETS = {"tiny_face_detector": (TinyFaceDetector, "tiny_face_detector_model", DETECTOR_NAMES, "grid", 416),
        "face_landmark_68": (FaceLandmark68Net, "face_landmark_68_model", LANDMARK_NAMES, "landmarks", 112)}


def build(model_dir: Path) -> dict[str, nn.Module]:
    """name -> the torch module (eval mode) with the TF.js weights in model_dir."""
    modules = {}
    for name, (cls, tfjs_name, names, _, _) in NETS.items():
        module = cls().eval()
        module.load_state_dict(tfjs_state_dict(read_tfjs_weights(model_dir, tfjs_name), names))
        modules[name] = module
    return modules


def from_onnx(name: str, path: Path) -> nn.Module:
    """The torch module (eval mode) with the weights of an exported ONNX file (its initializers
    keep the state dict's names): for checking the file against the module without the package."""
    import onnx
    import onnx.numpy_helper

    module = NETS[name][0]().eval()
    initializers = {i.name: i for i in onnx.load(str(path)).graph.initializer}
    module.load_state_dict({key: torch.from_numpy(onnx.numpy_helper.to_array(initializers[key]).copy())
                            for key in module.state_dict()})
    return module


# --- export -------------------------------------------------------------------------------------

def export(name: str, module: nn.Module, path: Path) -> Path:
    """One self-contained ONNX file with a free batch size, without the exporter's per-node notes
    (facevae.export's way). The detector takes any square side that is a multiple of 32 (face-api's
    inputSize option)."""
    from facevae.export import without_provenance

    _, _, _, output_name, side = NETS[name]
    shapes = {0: torch.export.Dim("batch")}
    if name == "tiny_face_detector":
        cells = torch.export.Dim("cells", min=2, max=64)
        shapes.update({2: 32 * cells, 3: 32 * cells})
    torch.onnx.export(module, (torch.zeros(1, 3, side, side),), str(path), dynamo=True, external_data=False,
                      input_names=["image"], output_names=[output_name], dynamic_shapes={"image": shapes}, verbose=False)
    without_provenance(path)
    return path


# --- the check against face-api's own JavaScript -------------------------------------------------

REFERENCE_PAGE = """<!doctype html><meta charset="utf-8"><script type="module">
import * as faceapi from './face-api.esm.js';
window.faceapi = faceapi;
await faceapi.tf.setBackend('cpu');
await faceapi.tf.ready();
await faceapi.nets.tinyFaceDetector.loadFromUri('./model');
await faceapi.nets.faceLandmark68Net.loadFromUri('./model');
window.rawOutput = async (name, pixels, side) => {
  // pixels: side×side×3 RGB (0..255) as a flat array; the nets' raw outputs, before any decoding
  const tf = faceapi.tf;
  const input = tf.tensor4d(Float32Array.from(pixels), [1, side, side, 3]);
  const output = name === 'tiny_face_detector'
    ? faceapi.nets.tinyFaceDetector.forwardInput(await faceapi.toNetInput(input), side)
    : faceapi.nets.faceLandmark68Net.runNet(await faceapi.toNetInput(input));
  const result = { shape: output.shape, data: Array.from(await output.data()), backend: tf.getBackend() };
  input.dispose(); output.dispose();
  return result;
};
window.ready = true;
</script>"""


def example_inputs() -> dict[str, list[np.ndarray]]:
    """A few S×S×3 pixel arrays per net: the example photos, padded to a square at the top left
    (the detector) or centred (the landmark net) and resized, and uniform noise."""
    from PIL import Image

    photos = [Image.open(path).convert("RGB") for path in PHOTOS]
    noise = np.random.default_rng(0)

    def square(photo: Image.Image, side: int, centred: bool) -> np.ndarray:
        size = max(photo.size)
        canvas = Image.new("RGB", (size, size))
        canvas.paste(photo, ((size - photo.width) // 2, (size - photo.height) // 2) if centred else (0, 0))
        return np.asarray(canvas.resize((side, side), Image.BILINEAR), dtype=np.float32)

    return {"tiny_face_detector": [square(p, 416, False) for p in photos]
            + [square(photos[0], 320, False), noise.uniform(0, 255, (416, 416, 3)).astype(np.float32)],
            "face_landmark_68": [square(p.crop((p.width // 4, 0, 3 * p.width // 4, p.height // 2)), 112, True)
                                 for p in photos] + [noise.uniform(0, 255, (112, 112, 3)).astype(np.float32)]}


@contextlib.contextmanager
def reference_page(package: Path, onnx_files: dict[str, Path] | None = None):
    """A headless Chromium page with the package's face-api.esm.js and TF.js models loaded
    (REFERENCE_PAGE), and with onnx_files in ./onnx/ and facevae/web in ./web/ when given."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as folder:
        site = Path(folder)
        shutil.copy(package / "dist" / "face-api.esm.js", site)
        shutil.copytree(package / "model", site / "model")
        if onnx_files:
            (site / "onnx").mkdir()
            for name, path in onnx_files.items():
                shutil.copy(path, site / "onnx" / f"{name}.onnx")
            (site / "web").symlink_to(ROOT / "facevae" / "web")
        (site / "index.html").write_text(REFERENCE_PAGE)
        with serving(site) as url, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
            try:
                page = browser.new_page()
                page.goto(url + "index.html")
                page.wait_for_function("() => window.ready === true", timeout=120_000)
                yield page
            finally:
                browser.close()


def reference_outputs(package: Path, inputs: dict[str, list[np.ndarray]]) -> dict[str, list[np.ndarray]]:
    """face-api's raw outputs (NHWC as tfjs gives them) on inputs, in headless Chromium."""
    outputs = {}
    with reference_page(package) as page:
        for name, arrays in inputs.items():
            outputs[name] = []
            for pixels in arrays:
                got = page.evaluate("([name, pixels, side]) => rawOutput(name, pixels, side)",
                                    [name, pixels.ravel().tolist(), pixels.shape[0]])
                assert got["backend"] == "cpu", got["backend"]
                outputs[name].append(np.array(got["data"], np.float32).reshape(got["shape"]))
    return outputs


PIPELINE_JS = """async ([photo]) => {
  // face-api's whole pipeline and detect.js's (with the new ONNX files) on the same canvas
  const faceapi = window.faceapi;
  const ort = await (await import('./web/runtime.js')).loadRuntime('./web/vendor/onnxruntime-web/');
  const finder = await (await import('./web/detect.js')).loadFaceFinder(ort, './onnx/');
  const bitmap = await createImageBitmap(await (await fetch('data:image/jpeg;base64,' + photo)).blob());
  const canvas = document.createElement('canvas');
  canvas.width = bitmap.width;
  canvas.height = bitmap.height;
  canvas.getContext('2d').drawImage(bitmap, 0, 0);
  const theirs = await faceapi.detectAllFaces(canvas, new faceapi.TinyFaceDetectorOptions()).withFaceLandmarks();
  const ours = await finder.detect(canvas);
  return {
    theirs: theirs.map(({ detection: { box, score }, landmarks }) => ({
      box: [box.x, box.y, box.right, box.bottom], score, points: landmarks.positions.map((p) => [p.x, p.y]) })),
    ours: await Promise.all(ours.map(async ({ box, score }) => ({ box, score, points: await finder.landmarks(canvas, box) }))),
  };
}"""


def pipeline_differences(package: Path, onnx_files: dict[str, Path]) -> tuple[float, float]:
    """face-api's detectAllFaces(...).withFaceLandmarks() against detect.js with onnx_files, in
    headless Chromium on the example photos: the largest difference of the boxes and of the
    landmarks, in pixels. detect.js shifts the landmarks by the crop's corner (the box floored),
    face-api by the box's: face-api's are moved by that fraction of a pixel first."""
    boxes, points = 0.0, 0.0
    with reference_page(package, onnx_files) as page:
        for photo in PHOTOS:
            found = page.evaluate(PIPELINE_JS, [base64.b64encode(photo.read_bytes()).decode()])
            if len(found["ours"]) != len(found["theirs"]) or not found["ours"]:
                raise ValueError(f"{photo.name}: {len(found['ours'])} faces, face-api {len(found['theirs'])}")
            for ours, theirs in zip(found["ours"], found["theirs"]):
                boxes = max(boxes, float(np.abs(np.subtract(ours["box"], theirs["box"])).max()))
                corner = np.array(theirs["box"][:2])
                shifted = np.array(theirs["points"]) - (corner - np.floor(corner))
                points = max(points, float(np.abs(np.array(ours["points"]) - shifted).max()))
    return boxes, points


def onnx_outputs(path: Path, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """The ONNX file's output on each S×S×3 pixel array, channels moved last as in tfjs."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outputs = []
    for pixels in inputs:
        (out,) = session.run(None, {"image": pixels.transpose(2, 0, 1)[None].copy()})
        outputs.append(out.transpose(0, 2, 3, 1) if out.ndim == 4 else out)
    return outputs


def largest_difference(got: list[np.ndarray], want: list[np.ndarray]) -> float:
    """The largest |got - want| of each pair divided by the largest |want|, the worst pair's."""
    worst = 0.0
    for g, w in zip(got, want):
        if g.shape != w.shape:
            raise ValueError(f"shapes differ: {g.shape} (ONNX) and {w.shape} (face-api)")
        worst = max(worst, float(np.abs(g - w).max() / np.abs(w).max()))
    return worst


# --- the vendored files -------------------------------------------------------------------------

README = """# face-api's face detector and landmark net, as ONNX

For finding faces in the page (`facevae/web/detect.js`), so a photo never leaves the browser.
Written by `python -m train.convert_face_api` (do not edit by hand); `--check` checks the files
against `SHA256SUMS`.

- Source: the npm package `{package}@{version}` (MIT: `LICENSE`, the package's own; by Vladimir
  Mandic, after Vincent Mühler's face-api.js), {tarball}, sha256
  `{tarball_sha256}`.
- `tiny_face_detector.onnx`: its `model/tiny_face_detector_model` (TinyYolov2 with separable
  convolutions, 5 anchors). Input `image` N×3×S×S, RGB pixels in 0..255 (S a multiple of 32;
  face-api's default 416): the photo scaled so its longer side is S, at the top left of a black
  square. Output `grid` N×25×(S/32)×(S/32): for anchor a, channels 5a..5a+4 are x, y, w, h and the
  score before TinyYolov2Base.extractBoxes's sigmoid and exp.
- `face_landmark_68.onnx`: its `model/face_landmark_68_model` (FaceLandmark68Net: four dense
  blocks of separable convolutions, a fully connected layer). Input `image` N×3×112×112, RGB in
  0..255: the face's box, scaled so its longer side is 112 and centred on a black square. Output
  `landmarks` N×136: x0, y0, x1, y1, ... of the 68 iBUG points, relative to that square.
- Both do face-api's mean subtraction and division by 255 themselves; the uint8-quantized TF.js
  weights are dequantized to float32.
- Checked against the package's own JavaScript (`dist/face-api.esm.js`, tfjs's CPU backend, in
  headless Chromium) on the same inputs (the two example photos, uniform noise; the detector also
  at S = 320): the largest difference of the raw outputs, relative to the largest magnitude of
  face-api's, is {detector_difference:.1e} (detector) and {landmark_difference:.1e} (landmarks); the conversion fails
  above {tolerance:.0e}. And the whole of `detect.js` (with these files, ONNX Runtime Web) against
  face-api's `detectAllFaces(canvas, new TinyFaceDetectorOptions()).withFaceLandmarks()` on the
  two example photos: boxes within {box_difference:.0e} px, landmarks within {point_difference:.0e} px (face-api's
  shifted by the crop's corner first, as detect.js shifts them, not by the box's unfloored one).
"""


def check() -> list[str]:
    """What is wrong with the vendored models (empty: nothing)."""
    return check_manifest(VENDOR, FILES)


def convert() -> None:
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        package = npm_package(f"{PACKAGE}@{VERSION}", TARBALL, folder, TARBALL_SHA256)

        built = {name: export(name, module, folder / f"{name}.onnx") for name, module in build(package / "model").items()}
        inputs = example_inputs()
        reference = reference_outputs(package, inputs)
        differences = {name: largest_difference(onnx_outputs(path, inputs[name]), reference[name])
                       for name, path in built.items()}
        for name, difference in differences.items():
            print(f"{name}: largest relative difference to face-api {difference:.2e}")
        if max(differences.values()) > TOLERANCE:
            sys.exit(f"the ONNX files differ from face-api by more than {TOLERANCE}")
        boxes, points = pipeline_differences(package, built)
        print(f"detect.js against face-api's pipeline: boxes within {boxes:.1e} px, landmarks within {points:.1e} px")
        if max(boxes, points) > PIXEL_TOLERANCE:
            sys.exit(f"detect.js differs from face-api by more than {PIXEL_TOLERANCE} px")

        VENDOR.mkdir(parents=True, exist_ok=True)
        for name, path in built.items():
            shutil.copy(path, VENDOR / f"{name}.onnx")
        shutil.copy(package / "LICENSE", VENDOR / "LICENSE")
        (VENDOR / "README.md").write_text(README.format(
            package=PACKAGE, version=VERSION, tarball=TARBALL, tarball_sha256=TARBALL_SHA256,
            detector_difference=differences["tiny_face_detector"], landmark_difference=differences["face_landmark_68"],
            tolerance=TOLERANCE, box_difference=boxes, point_difference=points))
    write_manifest(VENDOR, FILES)
    print(f"{PACKAGE}@{VERSION}: {', '.join(FILES)} in {VENDOR.relative_to(ROOT)}")


def main(argv=None) -> None:
    vendor_main(argv, __doc__, convert, check, "the vendored face-api models")


if __name__ == "__main__":
    main()
