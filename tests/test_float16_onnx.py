"""The ONNX files' float16 weights (facevae.export): the page downloads half the bytes and its faces,
latents and gradients stay within FLOAT16_PSNR (45 dB) of the float32 model's."""
import json

import pytest
import torch

from facevae import FaceVAE, load_model
from facevae.export import (FLOAT16_MIN_SIZE, FLOAT16_PSNR, ONNX_DECODER, ONNX_PSNR, decoder_psnr, export_decoder,
                            float16_weights)
from facevae.loading import BUNDLED_MODEL

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, numpy_helper  # noqa: E402


def stored_bytes(path) -> dict[int, int]:
    """Bytes of the file's initializers by their data type."""
    sizes: dict[int, int] = {}
    for tensor in onnx.load(str(path)).graph.initializer:
        sizes[tensor.data_type] = sizes.get(tensor.data_type, 0) + numpy_helper.to_array(tensor).nbytes
    return sizes


def test_the_shipped_files_are_float16_and_within_45_db_of_float32():
    model = load_model()
    for name, psnrs in ONNX_PSNR.items():
        measured = psnrs(model, model.onnx[name])
        # measured on today's weights: the decoder's images 86 dB and its z_grad 55 dB, the encoder's mu 89 dB
        assert min(measured.values()) >= FLOAT16_PSNR, (name, measured)
        sizes = stored_bytes(model.onnx[name])
        assert sizes[TensorProto.FLOAT16] > 0.85 * sum(sizes.values()), (name, sizes)  # the weights, not the vectors


def test_float16_weights_rounds_the_weights_alone_and_leaves_the_model_be():
    model = load_model()
    rounded = float16_weights(model)
    for (name, before), after in zip(model.state_dict().items(), rounded.state_dict().values()):
        if before.dtype == torch.float32 and before.numel() >= FLOAT16_MIN_SIZE:
            assert torch.equal(after, before.half().float()), name
        else:
            assert torch.equal(after, before), name
    assert not torch.equal(model.from_latent.weight, rounded.from_latent.weight)  # a copy: the model kept float32


def test_the_psnr_check_tells_another_decoder_apart(tmp_path):
    """The 45-dB bound is not loose: the same architecture with other (random) weights is far below it."""
    model = load_model()
    torch.manual_seed(1)
    other = FaceVAE(**json.loads((BUNDLED_MODEL / "config.json").read_text())).eval()
    path = export_decoder(other, tmp_path / ONNX_DECODER)
    assert min(decoder_psnr(other, path).values()) >= FLOAT16_PSNR
    assert decoder_psnr(model, path)["image"] < 30
