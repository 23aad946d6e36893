"""The Hub path without the network: a local fake Hub (tests/fake_hub.py) answers the calls
that push and pull make; offline loading reads a Hub cache with HF_HUB_OFFLINE=1. Each case runs
in this process, huggingface_hub pointed where it says (fake_hub.hub_environment)."""
import logging
import socket
import time

import pytest
import torch

from facevae import FaceVAE, load_model
from facevae.export import ONNX_EXPORTS, ONNX_TOLERANCE
from facevae.loading import push_model
from fake_hub import FakeHub, hub_environment
from in_process import run_module

# one tiny run for both training tests: the same weights, so their pushes export ONNX once (onnx_exported_once)
TINY_RUN = ["--epochs", 1, "--batch-size", 8, "--max-steps", 1, "--val-images", 2, "--threads", 1]


@pytest.fixture
def hub_env(tmp_path):
    return {"HF_HOME": str(tmp_path / "hf"), "HF_TOKEN": "hf_test_token", "HF_HUB_DISABLE_TELEMETRY": "1"}


def test_push_then_pull_then_load_offline_from_the_cache(hub_env):
    """A small model: its push, ONNX export and pull are the full model's, in a fraction of the time."""
    torch.manual_seed(0)
    model = FaceVAE(image_size=32, encoder_channels=(8, 16, 16), decoder_channels=(16, 8), latent_dim=12).eval()
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    expected = model.reconstruct(x)
    with FakeHub() as hub, hub_environment(**hub_env, HF_ENDPOINT=hub.url):
        push_model(model, "alice/faces")
        assert sorted(hub.repos["alice/faces"]) == ["README.md", "config.json", "model.safetensors", "onnx/decoder.onnx",
                                                 "onnx/encoder.onnx"]
        assert any(r.startswith("POST /api/models/alice/faces/commit/main") for r in hub.requests)
        pulled = load_model("alice/faces")
        assert pulled.source == "alice/faces"
        assert torch.equal(pulled.reconstruct(x), expected), "pulled weights differ"
        for name, (_, _, difference) in ONNX_EXPORTS.items():
            assert difference(pulled, pulled.onnx[name]) < ONNX_TOLERANCE[name], f"the pushed ONNX {name} differs"
    # the fake Hub is gone: the same repo id loads from the local cache, offline
    with hub_environment(**hub_env, HF_HUB_OFFLINE="1", HF_ENDPOINT="http://127.0.0.1:9"):
        assert torch.equal(load_model("alice/faces").reconstruct(x), expected)


def test_training_pushes_its_model_at_the_end(celeba_dir, tmp_path, hub_env, onnx_exported_once):
    with FakeHub() as hub, hub_environment(**hub_env, HF_ENDPOINT=hub.url):
        result = run_module("train.train", "--data", celeba_dir, "--out", tmp_path / "run", *TINY_RUN,
                            "--push-to-hub", "bob/tiny-faces")
    assert "pushed to" in result.stdout
    assert hub.repos["bob/tiny-faces"]["model.safetensors"] == (tmp_path / "run" / "model" / "model.safetensors").read_bytes()


def test_push_without_a_hub_fails_fast_with_a_clear_message(celeba_dir, tmp_path, hub_env, onnx_exported_once):
    started = time.monotonic()
    with hub_environment(**hub_env, HF_ENDPOINT="http://127.0.0.1:9"):
        result = run_module("train.train", "--data", celeba_dir, "--out", tmp_path / "run", *TINY_RUN,
                            "--push-to-hub", "bob/tiny-faces", check=False)
    assert result.returncode != 0
    assert "could not push to the Hub repo bob/tiny-faces" in result.stderr
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()  # nothing lost
    assert time.monotonic() - started < 120


def test_default_model_falls_back_to_the_bundled_weights_quickly(hub_env, caplog):
    # a Hub that accepts connections and never answers: the worst case for time-outs
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        with hub_environment(**hub_env, FACEVAE_MODEL="someone/faces",
                             HF_ENDPOINT=f"http://127.0.0.1:{silent.getsockname()[1]}"), caplog.at_level(logging.WARNING):
            started = time.monotonic()
            model = load_model()
            seconds = time.monotonic() - started
    assert seconds < 6.5  # the 5 s deadline, then loading the bundled weights
    assert "bundled weights" in model.source and "someone/faces could not be loaded" in model.source
    assert "could not load someone/faces" in caplog.text


def test_an_unknown_repo_falls_back_too(hub_env):
    with FakeHub() as hub, hub_environment(**hub_env, FACEVAE_MODEL="nobody/nothing", HF_ENDPOINT=hub.url):
        source = load_model().source
    assert "bundled weights" in source and "nobody/nothing could not be loaded" in source
