"""The decoder as an ONNX file, for the browser (onnxruntime-web decodes slider moves in the page).

The file takes posterior means z (N×latent_dim, N free) and gives images N×3×H×W in [0, 1], the
same as FaceVAE.decode. Exporting needs onnx and onnxscript, checking needs onnxruntime (all in
requirements-dev.txt); the app itself only serves the file.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from .model import FaceVAE

ONNX_DECODER = "onnx/decoder.onnx"  # beside config.json, where Transformers.js keeps its ONNX files


class _Decode(torch.nn.Module):
    def __init__(self, model: FaceVAE):
        super().__init__()
        self.model = model

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.model.decode(z)


def export_decoder(model: FaceVAE, path: str | os.PathLike) -> Path:
    """Write model's decoder to path as one self-contained ONNX file (the same weights give the
    same bytes, so re-publishing unchanged weights uploads nothing)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    try:
        example = torch.zeros(2, model.latent_dim, device=model.to_mu.weight.device)
        torch.onnx.export(_Decode(model).eval(), (example,), str(path), dynamo=True, external_data=False,
                          input_names=["z"], output_names=["image"],
                          dynamic_shapes={"z": {0: torch.export.Dim("batch")}}, verbose=False)
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
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    z = 2 * torch.randn(n, model.latent_dim, generator=torch.Generator().manual_seed(seed))
    with torch.inference_mode():
        expected = model.eval().decode(z).numpy()
    batch = session.run(["image"], {"z": z.numpy()})[0]
    single = session.run(["image"], {"z": z[:1].numpy()})[0]
    return float(max(np.abs(batch - expected).max(), np.abs(single - expected[:1]).max()))
