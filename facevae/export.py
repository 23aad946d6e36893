"""The decoder and the encoder as ONNX files, for the browser: onnxruntime-web decodes slider moves
in the page, and encodes a photo and refines its latent there.

The decoder file does two jobs with one copy of the weights: it takes posterior means z
(N×latent_dim, N free) and a cotangent (N×3×H×W) and gives images N×3×H×W in [0, 1] (as
FaceVAE.decode) and J^T cotangent (N×latent_dim), J the decoder's Jacobian at z; with a cotangent
of no rows (0×3×0×0) it only decodes, at a decoder's cost, and z_grad is empty (an ONNX If: ONNX
Runtime runs every node of a graph whatever outputs are asked for). The encoder file takes such
images and gives their posterior means mu.

The files store their weights in float16 (half the bytes to download) and compute in float32: each
is exported from float16_weights(model), the model with its weights rounded to float16, and only
the tensors that rounding left exact are stored in float16, each behind a Cast that ONNX Runtime
folds when the session loads. So a file matches float16_weights(model) in torch to float32's
rounding (ONNX_TOLERANCE), and the float32 model within FLOAT16_PSNR.
Exporting needs onnx and onnxscript, checking needs onnxruntime (all in requirements-dev.txt); the
app itself only serves the files.
"""
from __future__ import annotations

import copy
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .model import FaceVAE

ONNX_DECODER = "onnx/decoder.onnx"  # beside config.json, where Transformers.js keeps its ONNX files
ONNX_ENCODER = "onnx/encoder.onnx"
# Weights with at least this many numbers are stored in float16; biases and BatchNorm's vectors
# (a few kB in all) stay float32.
FLOAT16_MIN_SIZE = 1024
# The least PSNR of a file's outputs against the float32 model's (images against 1, latents and
# gradients against their largest magnitude): issue 48's bound. Measured on today's weights: images
# 86 dB, mu 89 dB, z_grad 55 dB (a LeakyReLU kink or two; int8 weights would give 38: docs/browser.md).
FLOAT16_PSNR = 45.0


class _Encode(nn.Module):
    def __init__(self, model: FaceVAE):
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        # Only the posterior mean: the log-variance head would be dead weight in the file. Each
        # BatchNorm as its running affine map after the convolution, as DecoderVJP does: the
        # exporter would fold a BatchNorm into the convolution's weights, which float16 then no
        # longer holds exactly (their 0.37 MB stayed float32).
        h = image
        for conv, norm, act, _dropout in self.model.encoder[:-1]:
            a, b = _batch_norm_affine(norm)
            h = F.leaky_relu(a * conv(h) + b, act.negative_slope)
        return self.model.to_mu(h.flatten(1))


def _batch_norm_affine(norm: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """An eval-mode BatchNorm as y = a*x + b, a and b shaped C×1×1."""
    a = norm.weight / torch.sqrt(norm.running_var + norm.eps)
    b = norm.bias - norm.running_mean * a
    return a[:, None, None], b[:, None, None]


def _conv_transpose_adjoint(conv: nn.ConvTranspose2d, grad: torch.Tensor) -> torch.Tensor:
    """The adjoint of conv (without its bias) w.r.t. its input: a conv2d with the same weight.
    Sizes: stride 2, padding 1, output_padding 1 maps n -> 2n and the conv2d maps 2n -> n;
    stride 2, padding 0 maps n -> 2n+1 and the conv2d maps 2n+1 -> n."""
    return F.conv2d(grad, conv.weight, stride=conv.stride, padding=conv.padding)


class DecoderVJP(nn.Module):
    """(z, cotangent) -> (decode(z), J^T cotangent), J the Jacobian of the eval-mode decoder at z,
    written out as a plain forward pass because torch.onnx.export cannot export torch.func.grad.
    BatchNorm is its running-statistics affine map and dropout the identity, whatever the
    model's mode, so the result is always the eval-mode decoder's."""

    def __init__(self, model: FaceVAE):
        super().__init__()
        self.model = model

    def forward(self, z: torch.Tensor, cotangent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.model
        h = m.from_latent(z).view(-1, *m.feature_shape)
        blocks = [(conv, norm, act) for conv, norm, act, _dropout in m.decoder[:-1]]
        pre_activations = []  # what LeakyReLU's derivative needs on the way back
        for conv, norm, act in blocks:
            a, b = _batch_norm_affine(norm)
            x = a * conv(h) + b
            pre_activations.append(x)
            h = F.leaky_relu(x, act.negative_slope)
        full = m.decoder[-1](h)
        image = torch.sigmoid(full[:, :, : m.image_size, : m.image_size])

        grad = cotangent * image * (1 - image)
        # The crop's adjoint puts zeros where the cropped row and column were.
        grad = F.pad(grad, (0, full.shape[-1] - m.image_size, 0, full.shape[-2] - m.image_size))
        grad = _conv_transpose_adjoint(m.decoder[-1], grad)
        for (conv, norm, act), x in zip(reversed(blocks), reversed(pre_activations)):
            grad = torch.where(x > 0, grad, grad * act.negative_slope)
            grad = _conv_transpose_adjoint(conv, grad * _batch_norm_affine(norm)[0])
        return image, grad.flatten(1) @ m.from_latent.weight


def float16_weights(model: FaceVAE) -> FaceVAE:
    """A copy of model in eval mode whose weights (FLOAT16_MIN_SIZE numbers or more) are rounded to
    float16 and kept as float32: what the ONNX files compute."""
    rounded = copy.deepcopy(model).eval()
    with torch.no_grad():
        for tensor in [*rounded.parameters(), *rounded.buffers()]:
            if tensor.dtype == torch.float32 and tensor.numel() >= FLOAT16_MIN_SIZE:
                tensor.copy_(tensor.half().float())
    return rounded


def export_decoder(model: FaceVAE, path: str | os.PathLike) -> Path:
    """Write model's decoder to path: (z, cotangent) -> (image, z_grad); a cotangent of no rows
    (0×C×0×0) only decodes. The decoding branch is DecoderVJP's own forward pass, so both use the same
    weights (an exported FaceVAE.decode would fold BatchNorm into its convolutions' weights)."""
    import onnx

    rounded = float16_weights(model)
    z = torch.zeros(2, model.latent_dim, device=model.to_mu.weight.device)
    cotangent = torch.zeros(2, model.in_channels, model.image_size, model.image_size, device=z.device)
    with tempfile.TemporaryDirectory() as folder:
        vjp = _export(rounded, DecoderVJP(rounded), {"z": z, "cotangent": cotangent}, ["image", "z_grad"],
                      Path(folder) / "vjp.onnx")
        graph = onnx.load(str(vjp))
    return _save_float16(_decode_or_vjp(graph, model.latent_dim), path)


def export_encoder(model: FaceVAE, path: str | os.PathLike) -> Path:
    """Write model's encoder to path: image (N×C×H×W in [0, 1]) -> mu (the posterior mean)."""
    import onnx

    rounded = float16_weights(model)
    image = torch.zeros(2, model.in_channels, model.image_size, model.image_size, device=model.to_mu.weight.device)
    with tempfile.TemporaryDirectory() as folder:
        graph = onnx.load(str(_export(rounded, _Encode(rounded), {"image": image}, ["mu"], Path(folder) / "encoder.onnx")))
    return _save_float16(graph, path)


def _export(model: FaceVAE, module: nn.Module, inputs: dict[str, torch.Tensor], output_names: list[str],
            path: str | os.PathLike) -> Path:
    """Write module (a wrapper around model, exported in eval mode) to path as one self-contained
    ONNX file with a free batch size; the same weights give the same bytes, so re-publishing
    unchanged weights uploads nothing. The input names are module.forward's argument names."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    batch = torch.export.Dim("batch")
    try:
        torch.onnx.export(module.eval(), tuple(inputs.values()), str(path), dynamo=True, external_data=False,
                          input_names=list(inputs), output_names=output_names,
                          dynamic_shapes={name: {0: batch} for name in inputs}, verbose=False)
    finally:
        model.train(was_training)
    without_provenance(path)
    return path


def without_provenance(path: Path) -> None:
    """Drop the exporter's per-node notes (stack traces with this checkout's file paths, FX node
    dumps): the page needs none of them, and with them the same weights exported from another
    folder (a CI clone) would give other bytes."""
    import onnx

    graph = onnx.load(str(path))
    for node in graph.graph.node:
        del node.metadata_props[:]
    onnx.save(graph, str(path))


def _decode_or_vjp(vjp, latent_dim: int):
    """The exported DecoderVJP (an onnx ModelProto) as one graph: If the cotangent has rows, the
    whole VJP; else only the nodes its image needs, and an empty z_grad. The weights stay in the
    outer graph, shared by both branches."""
    import onnx
    from onnx import TensorProto, helper

    graph = vjp.graph
    inputs = {value.name: value for value in graph.input}

    def branch(name: str, nodes: list, extra: list, outputs: dict[str, str]) -> onnx.GraphProto:
        # a branch's outputs get names of their own: they may not shadow the If's
        renamed = [copy.deepcopy(node) for node in nodes] + extra
        for node in renamed:
            node.input[:] = [outputs.get(value, value) for value in node.input]
            node.output[:] = [outputs.get(value, value) for value in node.output]
            node.name = f"{name}/{node.name}"
        values = [helper.make_tensor_value_info(new, TensorProto.FLOAT, None) for new in outputs.values()]
        return helper.make_graph(renamed, name, [], values)

    needed, image_nodes = {"image"}, []
    for node in reversed(graph.node):  # the nodes are in topological order
        if needed & set(node.output):
            image_nodes.insert(0, node)
            needed |= set(node.input)
    no_gradient = [helper.make_node("Constant", [], ["no_gradient_shape"], name="no_gradient_shape",
                                    value=helper.make_tensor("shape", TensorProto.INT64, [2], [0, latent_dim])),
                   helper.make_node("ConstantOfShape", ["no_gradient_shape"], ["z_grad"], name="no_gradient",
                                    value=helper.make_tensor("zero", TensorProto.FLOAT, [1], [0.0]))]
    decode = branch("decode", image_nodes, no_gradient, {"image": "decoded_image", "z_grad": "no_z_grad"})
    gradient = branch("vjp", list(graph.node), [], {"image": "vjp_image", "z_grad": "vjp_z_grad"})

    cotangent = copy.deepcopy(inputs["cotangent"])  # N×C×H×W, or 0×C×0×0 to decode alone
    for dim, name in zip(cotangent.type.tensor_type.shape.dim, ["cotangent_rows", None, "height", "width"]):
        if name:
            dim.dim_param = name
    nodes = [helper.make_node("Shape", ["cotangent"], ["cotangent_rows"], name="cotangent_rows", start=0, end=1),
             helper.make_node("Greater", ["cotangent_rows", "no_rows"], ["with_gradient"], name="with_gradient"),
             helper.make_node("If", ["with_gradient"], ["image", "z_grad"], name="decode_or_vjp",
                              then_branch=gradient, else_branch=decode)]
    initializers = [*graph.initializer, helper.make_tensor("no_rows", TensorProto.INT64, [1], [0])]
    merged = helper.make_graph(nodes, "decoder", [inputs["z"], cotangent], list(graph.output), initializers)
    model = helper.make_model(merged, opset_imports=vjp.opset_import, ir_version=vjp.ir_version)
    model.producer_name, model.producer_version = vjp.producer_name, vjp.producer_version
    onnx.checker.check_model(model, full_check=True)
    return model


def _save_float16(model, path: str | os.PathLike) -> Path:
    """Save an onnx ModelProto to path with each float32 weight of FLOAT16_MIN_SIZE numbers or more
    that float16 holds exactly stored as float16, cast back to float32 by the graph's first nodes."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph, casts = model.graph, []
    for index, tensor in enumerate(graph.initializer):
        name, values = tensor.name, numpy_helper.to_array(tensor)
        if values.dtype != np.float32 or values.size < FLOAT16_MIN_SIZE:
            continue
        half = values.astype(np.float16)
        if not np.array_equal(half.astype(np.float32), values):
            continue  # not a rounded weight: kept exact
        graph.initializer[index].CopyFrom(numpy_helper.from_array(half, f"{name}.float16"))
        casts.append(helper.make_node("Cast", [f"{name}.float16"], [name], name=f"{name}.float32", to=TensorProto.FLOAT))
    nodes = [*casts, *graph.node]
    del graph.node[:]
    graph.node.extend(nodes)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def decoder_difference(model: FaceVAE, path: str | os.PathLike, n: int = 8, seed: int = 0) -> float:
    """The largest difference between the decoder file's outputs and DecoderVJP's in torch on the
    float16-rounded weights (absolute on images, relative on z_grad), decoding alone (a cotangent
    of 0 rows) and with the VJP, on z ~ N(0, 2²I) (wider than the faces the app shows) and standard
    normal cotangents, at batch sizes n and 1."""
    z, cotangent = _decoder_inputs(model, n, seed)
    with torch.inference_mode():
        image, z_grad = DecoderVJP(float16_weights(model))(z, cotangent)
    decoded = _largest_difference(path, {"z": z, "cotangent": cotangent[:0, :, :0, :0]}, {"image": image})
    return max(decoded, _largest_difference(path, {"z": z, "cotangent": cotangent}, {"image": image, "z_grad": z_grad}))


def encoder_difference(model: FaceVAE, path: str | os.PathLike, n: int = 8, seed: int = 0) -> float:
    """The largest difference between the encoder file's posterior means and torch's on the
    float16-rounded weights (relative to their largest magnitude), on n uniform-noise images and at
    batch sizes n and 1."""
    image = _encoder_inputs(model, n, seed)
    with torch.inference_mode():
        expected = {"mu": float16_weights(model).encode(image)[0]}
    return _largest_difference(path, {"image": image}, expected)


def _decoder_inputs(model: FaceVAE, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    z = 2 * torch.randn(n, model.latent_dim, generator=generator)
    return z, torch.randn(n, model.in_channels, model.image_size, model.image_size, generator=generator)


def _encoder_inputs(model: FaceVAE, n: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n, model.in_channels, model.image_size, model.image_size, generator=generator)


def decoder_psnr(model: FaceVAE, path: str | os.PathLike, n: int = 8, seed: int = 0) -> dict[str, float]:
    """The decoder file's outputs against the float32 model's, in dB (psnr): its image and its z_grad."""
    z, cotangent = _decoder_inputs(model, n, seed)
    with torch.inference_mode():
        image, z_grad = DecoderVJP(model.eval())(z, cotangent)
    return _psnrs(path, {"z": z, "cotangent": cotangent}, {"image": image, "z_grad": z_grad})


def encoder_psnr(model: FaceVAE, path: str | os.PathLike, n: int = 8, seed: int = 0) -> dict[str, float]:
    """The encoder file's posterior means against the float32 model's, in dB (psnr), on the float32
    decoder's faces of z ~ N(0, I) (faces, not noise: what the encoder is for)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.inference_mode():
        faces = model.eval().decode(torch.randn(n, model.latent_dim, generator=generator))
        expected = {"mu": model.encode(faces)[0]}
    return _psnrs(path, {"image": faces}, expected)


def psnr(got: np.ndarray, want: np.ndarray) -> float:
    """PSNR of got against want in dB, inf where they are identical. The peak: 255 for uint8 images
    (H×W×3, as the page's and Pillow's pixels), else 1 (images in [0, 1]) or want's largest
    magnitude where that is larger (latents, gradients)."""
    want = np.asarray(want)
    peak = 255.0 if want.dtype == np.uint8 else max(1.0, float(np.abs(want).max()))
    error = float(np.mean((np.asarray(got, np.float64) - want) ** 2))  # float64: uint8 would wrap
    return float("inf") if error == 0 else float(10 * np.log10(peak ** 2 / error))


def _psnrs(path, inputs: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> dict[str, float]:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outputs = session.run(list(expected), {name: x.numpy() for name, x in inputs.items()})
    return {name: psnr(got, want.numpy()) for got, (name, want) in zip(outputs, expected.items())}


# name -> (file in a model folder, its exporter, its difference to torch on the float16-rounded
# weights); every model folder ships both (train.export_onnx, push_model), and load_model finds each
# as model.onnx[name].
ONNX_EXPORTS = {"decoder": (ONNX_DECODER, export_decoder, decoder_difference),
                "encoder": (ONNX_ENCODER, export_encoder, encoder_difference)}
# name -> its outputs' PSNRs against the float32 model's (at least FLOAT16_PSNR each)
ONNX_PSNR = {"decoder": decoder_psnr, "encoder": encoder_psnr}


# The largest difference to torch each file may have (train.export_onnx refuses more). The decoder's
# is looser for its z_grad: where a pre-activation lies within float32 rounding of 0, LeakyReLU's
# slope (1 or 0.001) may differ between ONNX Runtime and torch, and so does that one path's share of
# z_grad: measured up to 5.4e-4 of the largest gradient, with ONNX Runtime as near a float64 run as
# torch's float32 is (its images: within 1e-5). A wrong export is off by far more.
ONNX_TOLERANCE = {"decoder": 1e-3, "encoder": 1e-5}


def export_all(model: FaceVAE, folder: str | os.PathLike) -> dict[str, Path]:
    """Write every ONNX file of ONNX_EXPORTS into a model folder; returns their paths by name."""
    return {name: export(model, Path(folder) / file) for name, (file, export, _) in ONNX_EXPORTS.items()}


def _largest_difference(path: str | os.PathLike, inputs: dict[str, torch.Tensor],
                        expected: dict[str, torch.Tensor]) -> float:
    """Run the ONNX file on inputs (batch size n) and on their first rows (batch size 1) and give
    the largest difference to expected, each output's divided by its largest magnitude when
    that is above 1: absolute on images in [0, 1], relative on latents and gradients."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    largest = 0.0
    for rows in (slice(None), slice(0, 1)):
        outputs = session.run(list(expected), {name: x[rows].numpy() for name, x in inputs.items()})
        for got, want in zip(outputs, expected.values()):
            want = want[rows].numpy()
            largest = max(largest, float(np.abs(got - want).max() / max(1.0, np.abs(want).max())))
    return largest
