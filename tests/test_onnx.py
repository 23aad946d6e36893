"""The decoder as ONNX (facevae.export), the vendored ONNX Runtime Web, and the app's faces with
and without an ONNX file (the page's side is tested in test_browser.py)."""
import base64
import io
import shutil

import numpy as np
import pytest
from PIL import Image

from facevae import load_model
from facevae.export import ONNX_DECODER, decoder_difference
from facevae.loading import BUNDLED_MODEL
from train import export_onnx, fetch_web_runtime

pytest.importorskip("onnxruntime")


def test_the_shipped_onnx_decoder_matches_the_shipped_weights():
    model = load_model()
    assert model.onnx_decoder == BUNDLED_MODEL / ONNX_DECODER
    assert decoder_difference(model, model.onnx_decoder) < 1e-5  # at batch sizes 8 and 1


def test_one_command_exports_a_model_folders_decoder(tmp_path, capsys):
    folder = tmp_path / "model"
    shutil.copytree(BUNDLED_MODEL, folder, ignore=shutil.ignore_patterns("onnx", "*.png"))
    assert load_model(folder).onnx_decoder is None
    export_onnx.main(["--model", str(folder)])
    assert "largest difference to torch" in capsys.readouterr().out
    model = load_model(folder)
    assert model.onnx_decoder == folder / ONNX_DECODER and decoder_difference(model, model.onnx_decoder) < 1e-5


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
    assert face.props["onnx_url"].endswith(ONNX_DECODER)
