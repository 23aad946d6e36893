"""Who a face is: two readers of identity, kept apart on purpose.

- dlib's face recognition network (`dlib_face_recognition_resnet_model_v1.dat`, shipped in
  `face-recognition-models`) was the *measure* up to phase 12 of the shipped weights: dlib calls
  two faces the same person below a descriptor distance of 0.6. Since phase 13 a torch port of
  it (train.face_recognition) is in the training loss, so its verdict on these weights' faces is
  the loss's own and leans to yes; the studies judge them with MobileFaceNet instead
  (train.likeness), and the app says so beside dlib's verdict.
- `IdentityNet`, a small CNN trained on CelebA's training identities with an ArcFace margin
  (`train.train_identity`), is the *loss*: differentiable, it tells the VAE's training and the
  upload-time refinement which way makes a reconstruction more the person. It is never used to
  judge them.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path

import dlib
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from .align import PREDICTOR_FILE, model_file

DESCRIPTOR_FILE = "dlib_face_recognition_resnet_model_v1.dat"
SAME_PERSON = 0.6  # dlib's threshold on the descriptor distance
DESCRIBE_SIDE = 256  # the crops upscaled: dlib's landmarks and descriptor want faces over 128 px
CENTRE_BOX = dlib.rectangle(40, 60, 216, 236)  # where the face sits in a CelebA crop at 256 px
IDENTITY_NET_FILE = Path(__file__).with_name("identity_net.safetensors")


@functools.cache
def descriptor_models() -> tuple:
    """dlib's HOG detector, 68-point landmark predictor and face descriptor network, loaded once."""
    return (dlib.get_frontal_face_detector(), dlib.shape_predictor(model_file(PREDICTOR_FILE)),
            dlib.face_recognition_model_v1(model_file(DESCRIPTOR_FILE)))


def face_descriptors(images: np.ndarray) -> np.ndarray:
    """N×128 dlib face descriptors of N×H×W×3 uint8 face crops (CelebA framing): the HOG
    detector's box, or the centre where it finds none (blurred reconstructions)."""
    detector, predictor, network = descriptor_models()
    out = np.zeros((len(images), 128), np.float32)
    for i, image in enumerate(images):
        big = np.asarray(Image.fromarray(image).resize((DESCRIBE_SIDE, DESCRIBE_SIDE), Image.BICUBIC))
        boxes = detector(big, 0)
        out[i] = network.compute_face_descriptor(big, predictor(big, boxes[0] if boxes else CENTRE_BOX))
    return out


def identity_scores(photos: np.ndarray, others: np.ndarray) -> dict[str, float]:
    """How often each of `others` (N descriptors: reconstructions, blurred copies) is the person
    of the photo in the same row (N descriptors), by dlib's verdict.

    same_person: the share nearer than SAME_PERSON to its own photo. rank1: the share whose
    nearest photo among all N is its own (identification within the set). distance: the mean
    distance to the own photo."""
    own = np.linalg.norm(others - photos, axis=1)
    # squared distances from every one of others to every photo, as one product: N×N, not N×N×128
    squared = (others ** 2).sum(1)[:, None] + (photos ** 2).sum(1)[None, :] - 2 * others @ photos.T
    return dict(same_person=float((own < SAME_PERSON).mean()),
                rank1=float((squared.argmin(1) == np.arange(len(own))).mean()),
                distance=float(own.mean()))


class IdentityNet(nn.Module):
    """A face embedding from the inner face of a CelebA-framed crop: a small residual CNN on a
    64×64 view of the 96×96 box around the eyes, nose and mouth (~0.6 M parameters, ~45 MFLOP)."""

    FACE_BOX = (16, 24, 112, 120)  # left, top, right, bottom in the 128×128 crop
    INPUT = 64

    def __init__(self, widths: tuple[int, ...] = (16, 32, 64, 128), embedding: int = 128):
        super().__init__()
        self.config = dict(widths=list(widths), embedding=embedding)
        layers, width = [], 3
        for out in widths:  # each stage halves the side: 64 -> 32 -> 16 -> 8 -> 4
            layers += [conv_bn(width, out, stride=2), Residual(out)]
            width = out
        self.features = nn.Sequential(*layers)
        side = self.INPUT // 2 ** len(widths)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(width * side * side, embedding),
                                  nn.BatchNorm1d(embedding))

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        """N×3×128×128 faces in [0, 1] (CelebA framing) -> N×embedding unit vectors."""
        return self.embed_view(self.face_view(faces))

    @classmethod
    def face_view(cls, faces: torch.Tensor) -> torch.Tensor:
        """The network's input: the inner face box at 64×64 (differentiable)."""
        left, top, right, bottom = cls.FACE_BOX
        return F.interpolate(faces[:, :, top:bottom, left:right], size=cls.INPUT, mode="bilinear", antialias=True,
                             align_corners=False)

    def embed_view(self, view: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.head(self.features((view - 0.5) / 0.25)), dim=1)

    def save(self, path: Path = IDENTITY_NET_FILE) -> None:
        save_file(self.state_dict(), str(path), metadata={"config": json.dumps(self.config)})


def conv_bn(a: int, b: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(a, b, 3, stride, 1, bias=False), nn.BatchNorm2d(b), nn.PReLU(b))


class Residual(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.body = nn.Sequential(conv_bn(width, width), nn.Conv2d(width, width, 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.body(x))


@functools.cache
def load_identity_net(path: Path = IDENTITY_NET_FILE) -> IdentityNet:
    """The shipped identity network, frozen, in eval mode (loaded once)."""
    with safe_open(str(path), "pt") as f:
        config = json.loads(f.metadata()["config"])
    net = IdentityNet(tuple(config["widths"]), config["embedding"])
    net.load_state_dict(load_file(str(path)))
    return net.eval().requires_grad_(False)


def identity_loss(net: IdentityNet, reconstructions: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per image, 1 − the cosine between the reconstruction's embedding and the photo's (target:
    N×embedding unit vectors)."""
    return 1.0 - (net(reconstructions) * target).sum(1)
