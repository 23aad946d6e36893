"""The decoder, encoder and decoder VJP as ONNX (facevae.export), the vendored ONNX Runtime Web, and the app's faces with
and without an ONNX file (the page's side is tested in test_browser.py)."""
import base64
import io
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from facevae import FaceVAE, load_model
from facevae.export import (ONNX_DECODER, ONNX_ENCODER, ONNX_EXPORTS, ONNX_TOLERANCE, DecoderVJP, decoder_difference,
                            encoder_difference, export_decoder, export_encoder)
from facevae.loading import BUNDLED_MODEL
from train import export_onnx, fetch_web_runtime

pytest.importorskip("onnxruntime")


def test_the_shipped_onnx_files_match_the_shipped_weights():
    model = load_model()
    assert model.onnx == {name: BUNDLED_MODEL / file for name, (file, _, _) in ONNX_EXPORTS.items()}
    for name, (_, _, difference) in ONNX_EXPORTS.items():
        assert difference(model, model.onnx[name]) < ONNX_TOLERANCE[name], name  # at batch sizes 8 and 1


def test_one_command_exports_a_model_folders_onnx_files(tmp_path, capsys):
    """Slow by nature: the full model's two exports, each checked against torch and float32, as a
    user's run makes them."""
    folder = tmp_path / "model"
    shutil.copytree(BUNDLED_MODEL, folder, ignore=shutil.ignore_patterns("onnx", "*.png"))
    assert load_model(folder).onnx == {}
    export_onnx.main(["--model", str(folder)])
    assert capsys.readouterr().out.count("largest difference to torch") == len(ONNX_EXPORTS)
    model = load_model(folder)
    assert model.onnx == {name: folder / file for name, (file, _, _) in ONNX_EXPORTS.items()}
    for name, (_, _, difference) in ONNX_EXPORTS.items():
        assert difference(model, model.onnx[name]) < ONNX_TOLERANCE[name], name


def small_model() -> FaceVAE:
    """A random FaceVAE small enough to export in seconds, in eval mode, with BatchNorms that are
    not the identity and a LeakyReLU slope large enough that getting its derivative wrong shows."""
    torch.manual_seed(0)
    model = FaceVAE(image_size=32, encoder_channels=(8, 16, 16, 16), decoder_channels=(16, 16, 8),
                    latent_dim=12, negative_slope=0.2).eval()
    with torch.no_grad():
        for norm in model.modules():
            if isinstance(norm, torch.nn.BatchNorm2d):
                norm.running_mean.normal_(0, 0.2)
                norm.running_var.uniform_(0.5, 2)
                norm.weight.uniform_(0.5, 1.5)
                norm.bias.normal_(0, 0.2)
    return model


def test_the_decoder_vjp_is_autograds():
    model = small_model()
    z = torch.randn(4, model.latent_dim, requires_grad=True)
    cotangent = torch.randn(4, 3, model.image_size, model.image_size)
    image, z_grad = DecoderVJP(model)(z, cotangent)
    expected = model.decode(z)
    (expected_grad,) = torch.autograd.grad((expected * cotangent).sum(), z)
    assert (image - expected).abs().max() < 1e-6
    assert (z_grad - expected_grad).abs().max() < 1e-4 * expected_grad.abs().max()  # measured 6e-7


def test_the_exported_encoder_and_decoder_match_torch(tmp_path):
    model = small_model()
    # At batch sizes 3 and 1, the decoder decoding alone and with its VJP; absolute on images,
    # relative to the largest magnitude on mu and z_grad (measured about 6e-8 on each).
    assert encoder_difference(model, export_encoder(model, tmp_path / ONNX_ENCODER), n=3) < 1e-5
    assert decoder_difference(model, export_decoder(model, tmp_path / ONNX_DECODER), n=3) < 1e-5


def test_the_vendored_runtime_matches_its_manifest_and_carries_its_licence():
    assert fetch_web_runtime.check() == []
    for name in fetch_web_runtime.FILES:
        assert (fetch_web_runtime.VENDOR / name).stat().st_size < 20 * 2**20  # Spaces and git take it
    assert "MIT License" in (fetch_web_runtime.VENDOR / "LICENSE").read_text()


def faces_of(demo):
    from app import FaceCanvas

    return {block.elem_id: block for block in demo.blocks.values() if isinstance(block, FaceCanvas)}


def test_without_an_onnx_file_the_faces_are_decoded_on_the_server(tmp_path):
    from app import build_demo
    from facevae.pipeline import FacePipeline

    folder = tmp_path / "model"
    shutil.copytree(BUNDLED_MODEL, folder, ignore=shutil.ignore_patterns("onnx", "*.png"))
    pipeline = FacePipeline(load_model(folder))
    faces = faces_of(build_demo(pipeline))
    assert set(faces) == {"explored", "blend"}
    assert all(face.props["onnx_url"] is None for face in faces.values())  # face.js goes to the server
    z0, z1 = pipeline.latent(None, 1), pipeline.latent(None, 2)
    value = dict(kind="morph", a=z0.tolist(), b=z1.tolist(), t=0.3, method="spherical")
    url = faces["blend"].decode(value)["png"]
    assert url.startswith("data:image/png;base64,")
    drawn = np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))
    assert np.array_equal(drawn, np.asarray(pipeline.morph(z0, z1, 0.3)))
    assert "a latent is 200 finite numbers" in faces["blend"].decode({**value, "a": [float("nan")] * 200})["error"]
    assert "t is a number" in faces["blend"].decode({**value, "t": float("inf")})["error"]


def test_the_pages_faces_fetch_the_apps_own_files():
    from app import build_demo
    from facevae.pipeline import FacePipeline

    face = faces_of(build_demo(FacePipeline(load_model())))["explored"]
    for key in ("module_url", "runtime_url", "onnx_url"):
        assert face.props[key].startswith("gradio_api/file=/")  # relative to the page: no other host
    assert face.props["onnx_url"].split("?v=")[0].endswith(ONNX_DECODER)  # with its version
