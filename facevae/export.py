"""The decoder as an ONNX file, for the browser (onnxruntime-web decodes slider moves in the page),
and the encoder and the decoder's vector-Jacobian product, for refining a latent in the browser.

The decoder file takes posterior means z (N×latent_dim, N free) and gives images N×3×H×W in
[0, 1], the same as FaceVAE.decode; the encoder file takes such images and gives their posterior
means mu; the VJP file takes z and a cotangent (N×3×H×W) and gives the image and J^T cotangent.
Exporting needs onnx and onnxscript, checking needs onnxruntime (all in requirements-dev.txt); the
app itself only serves the files.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .model import FaceVAE

ONNX_DECODER = "onnx/decoder.onnx"  # beside config.json, where Transformers.js keeps its ONNX files
ONNX_ENCODER = "onnx/encoder.onnx"
ONNX_DECODER_VJP = "onnx/decoder_vjp.onnx"


class _Decode(nn.Module):
    def __init__(self, model: FaceVAE):
        super().__init__()
        self.model = model

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.model.decode(z)


class _Encode(nn.Module):
    def __init__(self, model: FaceVAE):
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        # Only the posterior mean: the log-variance head would be dead weight in the file.
        return self.model.to_mu(self.model.encoder(image))


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


def export_decoder(model: FaceVAE, path: str | os.PathLike) -> Path:
    """Write model's decoder to path: z -> image."""
    z = torch.zeros(2, model.latent_dim, device=model.to_mu.weight.device)
    return _export(model, _Decode(model), {"z": z}, ["image"], path)


def export_encoder(model: FaceVAE, path: str | os.PathLike) -> Path:
    """Write model's encoder to path: image (N×C×H×W in [0, 1]) -> mu (the posterior mean)."""
    image = torch.zeros(2, model.in_channels, model.image_size, model.image_size, device=model.to_mu.weight.device)
    return _export(model, _Encode(model), {"image": image}, ["mu"], path)


def export_decoder_vjp(model: FaceVAE, path: str | os.PathLike) -> Path:
    """Write DecoderVJP to path: (z, cotangent) -> (image, z_grad), for refining a latent."""
    z = torch.zeros(2, model.latent_dim, device=model.to_mu.weight.device)
    cotangent = torch.zeros(2, model.in_channels, model.image_size, model.image_size, device=z.device)
    return _export(model, DecoderVJP(model), {"z": z, "cotangent": cotangent}, ["image", "z_grad"], path)


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


def decoder_difference(model: FaceVAE, path: str | os.PathLike, n: int = 8, seed: int = 0) -> float:
    """The largest difference between the ONNX file's images and torch's, on n latents drawn
    from N(0, 2²I) (wider than the faces the app shows) and at batch sizes n and 1."""
    z = 2 * torch.randn(n, model.latent_dim, generator=torch.Generator().manual_seed(seed))
    with torch.inference_mode():
        expected = {"image": model.eval().decode(z)}
    return _largest_difference(path, {"z": z}, expected)


def encoder_difference(model: FaceVAE, path: str | os.PathLike, n: int = 8, seed: int = 0) -> float:
    """The largest difference between the ONNX file's posterior means and torch's (relative to
    their largest magnitude), on n uniform-noise images and at batch sizes n and 1."""
    generator = torch.Generator().manual_seed(seed)
    image = torch.rand(n, model.in_channels, model.image_size, model.image_size, generator=generator)
    with torch.inference_mode():
        expected = {"mu": model.eval().encode(image)[0]}
    return _largest_difference(path, {"image": image}, expected)


def decoder_vjp_difference(model: FaceVAE, path: str | os.PathLike, n: int = 8, seed: int = 0) -> float:
    """The largest difference between the ONNX file's (image, z_grad) and DecoderVJP's in torch
    (absolute on images, relative on z_grad), on z ~ N(0, 2²I) and standard normal cotangents,
    at batch sizes n and 1."""
    generator = torch.Generator().manual_seed(seed)
    z = 2 * torch.randn(n, model.latent_dim, generator=generator)
    cotangent = torch.randn(n, model.in_channels, model.image_size, model.image_size, generator=generator)
    with torch.inference_mode():
        image, z_grad = DecoderVJP(model.eval())(z, cotangent)
    return _largest_difference(path, {"z": z, "cotangent": cotangent}, {"image": image, "z_grad": z_grad})


# name -> (file in a model folder, its exporter, its difference to torch); every model folder
# ships all three (train.export_onnx, push_model), and load_model finds each as model.onnx[name].
ONNX_EXPORTS = {"decoder": (ONNX_DECODER, export_decoder, decoder_difference),
                "encoder": (ONNX_ENCODER, export_encoder, encoder_difference),
                "decoder_vjp": (ONNX_DECODER_VJP, export_decoder_vjp, decoder_vjp_difference)}


# The largest difference to torch each file may have (train.export_onnx refuses more). The VJP's
# is looser: where a pre-activation lies within float32 rounding of 0, LeakyReLU's slope (1 or
# 0.001) may differ between ONNX Runtime and torch, and so does that one path's share of z_grad:
# measured up to 5.4e-4 of the largest gradient, with ONNX Runtime as near a float64 run as torch's
# float32 is. A wrong export is off by far more.
ONNX_TOLERANCE = {"decoder": 1e-5, "encoder": 1e-5, "decoder_vjp": 1e-3}


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
