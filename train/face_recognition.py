"""dlib's face recognition ResNet as a torch module, for a differentiable identity loss. A
training-time tool: the app never needs it, and nothing of it is shipped in the repository.

    python -m train.face_recognition                   # npm pack, convert, check against face-api, cache
    python -m train.face_recognition --check           # the cached file matches WEIGHTS_SHA256 (no network)
    python -m train.face_recognition --compare-dlib 50 # its distances against python dlib's on CelebA val faces

Where from: the npm package `@vladmandic/face-api@1.7.15` (MIT, by Vladimir Mandic after Vincent
Mühler's face-api.js) ships dlib's `dlib_face_recognition_resnet_model_v1` (by Davis King, who
released it into the public domain: the dlib-models README) as TF.js weights,
`model/face_recognition_model` (uint8 quantized). The tarball is fetched with `npm pack` and
checked against train.convert_face_api's sha256; the weights are dequantized as tfjs does,
written as safetensors to the cache ($FACEVAE_FACE_RECOGNITION, default
~/.cache/facevae/face_recognition_resnet.safetensors) and checked against WEIGHTS_SHA256; the
module's descriptors are compared with face-api's own computeFaceDescriptor (dist/face-api.esm.js,
tfjs CPU backend, headless Chromium) and the conversion fails if they differ by more than
TOLERANCE (they differ by 2e-7).

The architecture is face-api's src/faceRecognitionNet (dlib's ResNet-29 "metric" net): a 7×7
stride-2 conv, a 3×3 max pool, residual blocks of two 3×3 convs (each conv followed by dlib's
affine "scale" layer), global average pooling and a 256->128 matrix, no normalisation of the
output. dlib calls two faces the same person below a descriptor distance of SAME_PERSON (0.6).

For the VAE's 128×128 faces, `descriptors` reads CHIP_BOX (where dlib's own face chip lies in
CelebA's framing), resized to 150 as face-api resizes: on the whole 128×128 face the net calls
nearly every pair the same person. `--compare-dlib 250` (CelebA val, 31,125 pairs): the pairwise
distances correlate with python dlib's at 0.97 and agree on same/different at 0.6 for 99.8 % of
pairs (on the whole face: 0.12 and 14 %); on dlib's own chips, 0.999 and 100 %, the descriptors
0.04 from dlib's (face-api's weights are uint8-quantized).
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from train.convert_face_api import (PACKAGE, PHOTOS, TARBALL, TARBALL_SHA256, VERSION, conv_weight, read_tfjs_weights,
                                    reference_page)
from train.fetch_web_runtime import ROOT, exit_unless_cached, npm_package, require_cached, sha256

TFJS_NAME = "face_recognition_model"
WEIGHTS_SHA256 = "102acde916018d46738d178ad67994c50139d94cb301eeee02b41c5185957cb6"
HOW_TO_MAKE = f"python -m train.face_recognition converts {PACKAGE}@{VERSION}'s model/{TFJS_NAME}"
SIDE = 150  # the net's input side (dlib's 150×150 face chips)
MEAN_RGB = (122.782, 117.001, 104.298)  # FaceRecognitionNet.forwardInput's, subtracted from 0..255 pixels
SAME_PERSON = 0.6  # dlib's threshold on the descriptor distance
# The net was trained on dlib's face chips (get_face_chip, padding 0.25): tighter than the VAE's
# CelebA framing, and on the whole 128×128 face its distances say little (see compare_with_dlib).
# Where dlib's chip lies in a 128×128 crop_celeba face (left, top, right, bottom): the median of
# dlib.get_face_chip_details's box over 300 CelebA training faces (every 93rd) was (25.8, 42.7,
# 102.7, 119.8), sd about 2.5 px, rolled 0.15° (300 val faces: the same to 0.3 px).
CHIP_BOX = (26, 43, 103, 120)
# The largest absolute difference allowed between the module's descriptors and face-api's (float32
# sums in another order; the descriptors' entries are about 0.1 in size)
TOLERANCE = 1e-4
# (name, channels in, channels out, scaling down) of the residual blocks, in order
BLOCKS = ([("conv32_1", 32, 32, False), ("conv32_2", 32, 32, False), ("conv32_3", 32, 32, False),
           ("conv64_down", 32, 64, True), ("conv64_1", 64, 64, False), ("conv64_2", 64, 64, False),
           ("conv64_3", 64, 64, False), ("conv128_down", 64, 128, True), ("conv128_1", 128, 128, False),
           ("conv128_2", 128, 128, False), ("conv256_down", 128, 256, True), ("conv256_1", 256, 256, False),
           ("conv256_2", 256, 256, False), ("conv256_down_out", 256, 256, True)])


def weights_path() -> Path:
    default = Path.home() / ".cache" / "facevae" / "face_recognition_resnet.safetensors"
    return Path(os.environ.get("FACEVAE_FACE_RECOGNITION", default))


# --- the network --------------------------------------------------------------------------------

class ConvLayer(nn.Module):
    """convLayer.ts: tf.conv2d and its bias, then the scale layer (x * weight + bias per channel).
    Stride 1 pads 'same' (1 on each side for 3×3); stride 2 is 'valid' (convDown)."""

    def __init__(self, channels_in: int, channels_out: int, kernel: int = 3, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(channels_in, channels_out, kernel, stride, padding=kernel // 2 if stride == 1 else 0)
        self.scale = nn.Conv2d(channels_out, channels_out, 1, groups=channels_out)  # weight C×1×1×1, bias C

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) * self.scale.weight.view(1, -1, 1, 1) + self.scale.bias.view(1, -1, 1, 1)


class Residual(nn.Module):
    """residualLayer.ts: relu(conv2(relu(conv1(x))) + x); scaling down, conv1 has stride 2 and x
    is average-pooled 2×2 and padded with zero channels to the new width."""

    def __init__(self, channels_in: int, channels_out: int, down: bool):
        super().__init__()
        self.conv1 = ConvLayer(channels_in, channels_out, stride=2 if down else 1)
        self.conv2 = ConvLayer(channels_out, channels_out)
        self.down = down

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(F.relu(self.conv1(x)))
        if self.down:
            x = F.avg_pool2d(x, 2, 2)
            # a 'valid' stride-2 3×3 conv of an even side (8 -> 3, 4 -> 1) comes out one short of
            # the pooled side (4, 2): face-api appends a row and a column of zeros, after conv2
            out = F.pad(out, (0, x.shape[3] - out.shape[3], 0, x.shape[2] - out.shape[2]))
            if x.shape[1] != out.shape[1]:
                x = torch.cat([x, torch.zeros_like(x)], 1)
        return F.relu(x + out)


class FaceRecognitionNet(nn.Module):
    """face-api's FaceRecognitionNet.forwardInput: N×3×150×150 RGB in [0, 1] -> N×128 descriptors
    (not normalised; dlib's distance threshold 0.6). face-api's computeFaceDescriptor takes 0..255
    pixels and first pads them to a square and resizes them to 150 (see `descriptors`)."""

    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleDict({"conv32_down": ConvLayer(3, 32, kernel=7, stride=2)})
        self.layers.update({name: Residual(a, b, down) for name, a, b, down in BLOCKS})
        self.fc = nn.Linear(256, 128, bias=False)
        self.register_buffer("mean", torch.tensor(MEAN_RGB).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[-2:] != (SIDE, SIDE):
            raise ValueError(f"FaceRecognitionNet takes {SIDE}×{SIDE} images, not {tuple(images.shape[-2:])}")
        x = (images * 255 - self.mean) / 255  # face-api's normalize(pixels, meanRgb).div(255)
        layers = iter(self.layers.values())
        x = F.max_pool2d(F.relu(next(layers)(x)), 3, 2)  # 150 -> 72 (7×7, stride 2, 'valid') -> 35
        for block in layers:  # 35 -> 17 -> 8 -> 4 (3, padded) -> 2 (1, padded)
            x = block(x)
        return self.fc(x.mean((2, 3)))


def state_dict_from_tfjs(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """face-api's weight names (conv32_1/conv1/conv/filters, .../scale/weights, fc) -> the module's."""
    state = {"fc.weight": weights["fc"].T.contiguous()}
    for name, value in weights.items():
        if name == "fc":
            continue
        layer, kind, what = name.rsplit("/", 2)
        key = f"layers.{layer.replace('/', '.')}.{kind}"
        if what == "filters":
            state[f"{key}.weight"] = conv_weight(value).contiguous()
        elif what == "weights":  # the scale layer, as a depthwise 1×1 conv's weight
            state[f"{key}.weight"] = value.view(-1, 1, 1, 1)
        else:  # conv/bias, scale/biases
            state[f"{key}.bias"] = value
    return state


# --- using it -----------------------------------------------------------------------------------

def resize_like_tfjs(images: torch.Tensor, side: int = SIDE) -> torch.Tensor:
    """tf.image.resizeBilinear(images, [side, side], alignCorners=false, halfPixelCenters=false),
    as face-api resizes a tensor (NetInput.toBatchTensor), differentiably: output pixel i reads
    input position i * (in / out), not torch's half-pixel-centred (i + 0.5) * (in / out) - 0.5."""

    def along(x: torch.Tensor, dim: int) -> torch.Tensor:
        size = x.shape[dim]
        source = torch.arange(side, dtype=torch.float64) * (size / side)
        low = source.floor().long()
        high = (low + 1).clamp(max=size - 1)
        shape = [1] * x.dim()
        shape[dim] = side
        frac = (source - low).to(x.dtype).view(shape)
        a, b = x.index_select(dim, low), x.index_select(dim, high)
        return a + (b - a) * frac

    return along(along(images, 3), 2)  # tfjs interpolates along a row first, then between rows


def descriptors(net: FaceRecognitionNet, faces: torch.Tensor, box: tuple | None = CHIP_BOX) -> torch.Tensor:
    """N×128 descriptors of N×3×128×128 faces in [0, 1] (the VAE's CelebA-framed faces),
    differentiable: the box (left, top, right, bottom; None: the whole face) resized to 150 as
    face-api's computeFaceDescriptor resizes a square tensor."""
    if box is not None:
        if faces.shape[-2:] != (128, 128):
            raise ValueError(f"CHIP_BOX is for 128×128 faces, not {tuple(faces.shape[-2:])}")
        left, top, right, bottom = box
        faces = faces[..., top:bottom, left:right]
    return net(faces if faces.shape[-1] == SIDE else resize_like_tfjs(faces))


def identity_distance(net: FaceRecognitionNet, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per pair, the Euclidean distance between the descriptors of faces x (the photos: no
    gradient) and y (e.g. reconstructions: differentiable). dlib: the same person below 0.6."""
    with torch.no_grad():
        target = descriptors(net, x)
    # torch's norm takes a gradient of 0 where the distance is 0 (a square root's would be infinite)
    return torch.linalg.vector_norm(descriptors(net, y) - target, dim=1)


def load_face_recognition_net(path: Path | None = None) -> FaceRecognitionNet:
    """The network from the converted file, checked against WEIGHTS_SHA256: frozen, in eval mode."""
    from safetensors.torch import load_file

    path = Path(path or weights_path())
    require_cached(path, WEIGHTS_SHA256, HOW_TO_MAKE)
    net = FaceRecognitionNet()
    net.load_state_dict(load_file(str(path)))
    return net.eval().requires_grad_(False)


# --- conversion and checks ----------------------------------------------------------------------

DESCRIPTOR_JS = """async ([pixels, side]) => {
  // face-api's computeFaceDescriptor on a side×side×3 tensor of 0..255 pixels (padded to a square
  // and resized to 150 by face-api itself)
  const faceapi = window.faceapi;
  const net = faceapi.nets.faceRecognitionNet;
  if (!net.isLoaded) await net.loadFromUri('./model');
  const input = faceapi.tf.tensor3d(Float32Array.from(pixels), [side, side, 3]);
  const descriptor = await net.computeFaceDescriptor(input);
  input.dispose();
  return { descriptor: Array.from(descriptor), backend: faceapi.tf.getBackend() };
}"""


def check_inputs() -> dict[str, np.ndarray]:
    """S×S×3 uint8 pixel arrays: the example photos' aligned 128×128 faces, their CHIP_BOX, the
    faces resized to 150 (bilinear, by PIL), and uniform noise at 128 and 150."""
    from PIL import Image

    from facevae.align import align_face

    noise = np.random.default_rng(0)
    inputs = {}
    for photo in PHOTOS:
        face, _ = align_face(photo)
        inputs[f"{photo.stem} 128"] = np.asarray(face)
        left, top, right, bottom = CHIP_BOX
        inputs[f"{photo.stem} chip box"] = np.asarray(face)[top:bottom, left:right]
        inputs[f"{photo.stem} 150"] = np.asarray(face.resize((SIDE, SIDE), Image.BILINEAR))
    inputs["noise 128"] = noise.integers(0, 256, (128, 128, 3), dtype=np.uint8)
    inputs["noise 150"] = noise.integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)
    return inputs


def to_tensor(pixels: np.ndarray) -> torch.Tensor:
    """N×H×W×3 (or H×W×3) uint8 -> N×3×H×W float in [0, 1]."""
    x = torch.from_numpy(np.array(pixels, np.float32)) / 255
    return (x[None] if x.dim() == 3 else x).permute(0, 3, 1, 2)


def differences_to_face_api(package: Path, net: FaceRecognitionNet) -> dict[str, float]:
    """Per input of check_inputs, the largest |descriptor - face-api's| (face-api in Chromium)."""
    inputs = check_inputs()
    out = {}
    with reference_page(package) as page, torch.no_grad():
        for name, pixels in inputs.items():
            got = page.evaluate(DESCRIPTOR_JS, [pixels.ravel().tolist(), pixels.shape[0]])
            assert got["backend"] == "cpu", got["backend"]
            ours = descriptors(net, to_tensor(pixels), box=None)[0].numpy()
            out[name] = float(np.abs(ours - np.array(got["descriptor"], np.float32)).max())
    return out


def convert(path: Path) -> None:
    """npm pack the package, convert its weights to path, and check them against face-api's."""
    from safetensors.torch import load_file, save_file

    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        package = npm_package(f"{PACKAGE}@{VERSION}", TARBALL, folder, TARBALL_SHA256)
        converted = folder / "face_recognition_resnet.safetensors"
        save_file(state_dict_from_tfjs(read_tfjs_weights(package / "model", TFJS_NAME)), str(converted),
                  metadata={"source": f"{PACKAGE}@{VERSION} model/{TFJS_NAME} (MIT; dlib's model, public domain)"})
        digest = sha256(converted)
        print(f"converted {PACKAGE}@{VERSION} model/{TFJS_NAME}: sha256 {digest}")
        if digest != WEIGHTS_SHA256:
            sys.exit(f"the converted weights' sha256 is not WEIGHTS_SHA256 ({WEIGHTS_SHA256}); not used")
        net = FaceRecognitionNet()
        net.load_state_dict(load_file(str(converted)))
        differences = differences_to_face_api(package, net.eval())
        for name, difference in differences.items():
            print(f"  {name:22s} largest |descriptor - face-api's computeFaceDescriptor| {difference:.1e}")
        if max(differences.values()) > TOLERANCE:
            sys.exit(f"the port differs from face-api by more than {TOLERANCE}")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        shutil.copy(converted, tmp)
        os.replace(tmp, path)
    print(f"{path}: face-api's face recognition net, sha256 {WEIGHTS_SHA256[:12]}…")


# --- against python dlib -------------------------------------------------------------------------

def celeba_val_faces(root: Path, count: int) -> tuple[np.ndarray, np.ndarray]:
    """count 128×128 uint8 CelebA val faces (crop_celeba), five of each of count // 5 identities
    (the first in file order that have five), and their identities."""
    from PIL import Image

    from facevae.data import find_splits
    from facevae.preprocess import crop_celeba

    val = find_splits(root)["val"]
    identity = dict(line.split() for line in (root / "identity_CelebA.txt").read_text().splitlines() if line.strip())
    by_person: dict[str, list[Path]] = {}
    for path in val:
        by_person.setdefault(identity[path.name], []).append(path)
    people = [p for p, paths in by_person.items() if len(paths) >= 5][: max(count // 5, 1)]
    paths = [(p, path) for p in people for path in by_person[p][:5]][:count]
    faces = np.stack([np.asarray(crop_celeba(Image.open(path))) for _, path in paths])
    return faces, np.array([p for p, _ in paths])


def dlib_chips(faces: np.ndarray) -> np.ndarray:
    """dlib's own 150×150 chips of the faces, as facevae.identity.face_descriptors extracts them."""
    import dlib
    from PIL import Image

    from facevae.identity import CENTRE_BOX, DESCRIBE_SIDE, descriptor_models

    detector, predictor, _ = descriptor_models()
    chips = []
    for face in faces:
        big = np.asarray(Image.fromarray(face).resize((DESCRIBE_SIDE, DESCRIBE_SIDE), Image.BICUBIC))
        boxes = detector(big, 0)
        chips.append(dlib.get_face_chip(big, predictor(big, boxes[0] if boxes else CENTRE_BOX), size=SIDE, padding=0.25))
    return np.stack(chips)


def pairwise(d: np.ndarray) -> np.ndarray:
    """The distances of all pairs i < j."""
    i, j = np.triu_indices(len(d), 1)
    return np.linalg.norm(d[i] - d[j], axis=1)


def compare_with_dlib(net: FaceRecognitionNet, root: Path, count: int = 50) -> dict[str, dict[str, float]]:
    """The port against python dlib (facevae.identity.face_descriptors) on count CelebA val faces,
    the port's input being the faces' CHIP_BOX, the whole faces, or dlib's own chips: the
    correlation of all pairwise distances with dlib's, how often both say "same person" (< 0.6)
    alike, the share of pairs judged right (same identity or not), and the mean distance of
    the port's descriptors to dlib's. dlib's own row: its share judged right."""
    from facevae.identity import face_descriptors

    faces, people = celeba_val_faces(root, count)
    theirs = face_descriptors(faces)
    with torch.no_grad():
        ours = {"chip box": descriptors(net, to_tensor(faces)), "whole 128": descriptors(net, to_tensor(faces), box=None),
                "dlib's chips": net(to_tensor(dlib_chips(faces)))}
    i, j = np.triu_indices(len(faces), 1)
    same = people[i] == people[j]
    reference = pairwise(theirs)
    rows = {"dlib": dict(right=float(((reference < SAME_PERSON) == same).mean()))}
    for name, d in ours.items():
        d = d.numpy()
        distances = pairwise(d)
        rows[name] = dict(correlation=float(np.corrcoef(distances, reference)[0, 1]),
                          agreement=float(((distances < SAME_PERSON) == (reference < SAME_PERSON)).mean()),
                          right=float(((distances < SAME_PERSON) == same).mean()),
                          to_dlib=float(np.linalg.norm(d - theirs, axis=1).mean()))
    print(f"{len(faces)} faces, {len(same)} pairs, {same.sum()} of the same person")
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only check the cached file's sha256 (no network)")
    parser.add_argument("--compare-dlib", type=int, metavar="N", help="compare with python dlib on N CelebA val faces")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "celeba")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    path = weights_path()
    if args.compare_dlib:
        for name, row in compare_with_dlib(load_face_recognition_net(path), args.data, args.compare_dlib).items():
            print(f"{name:13s}", "  ".join(f"{key} {value:.3f}" for key, value in row.items()))
        return
    if not args.check:
        convert(path)
    exit_unless_cached(path, WEIGHTS_SHA256, HOW_TO_MAKE)
    print(f"{path}: sha256 {WEIGHTS_SHA256[:12]}… matches")


if __name__ == "__main__":
    main()
