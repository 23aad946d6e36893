"""The Hub path without the network: a local fake Hub (tests/fake_hub.py) answers the calls
that push and pull make; offline loading reads a Hub cache with HF_HUB_OFFLINE=1."""
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from fake_hub import FakeHub

ROOT = Path(__file__).resolve().parent.parent


def run_python(code: str, env: dict, timeout=120) -> subprocess.CompletedProcess:
    """huggingface_hub reads HF_ENDPOINT and HF_HUB_OFFLINE at import, so each case is a process."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def hub_env(tmp_path):
    return {"HF_HOME": str(tmp_path / "hf"), "HF_TOKEN": "hf_test_token", "HF_HUB_DISABLE_TELEMETRY": "1"}


def test_push_then_pull_then_load_offline_from_the_cache(tmp_path, hub_env):
    with FakeHub() as hub:
        env = {**hub_env, "HF_ENDPOINT": hub.url}
        pushed = run_python("""
            import torch
            from facevae import FaceVAE, load_model
            from facevae.loading import push_model
            torch.manual_seed(0)
            model = FaceVAE().eval()
            print(push_model(model, "alice/faces"))
            x = torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(1))
            torch.save(model.reconstruct(x), "expected.pt")
            pulled = load_model("alice/faces")
            assert torch.equal(pulled.reconstruct(x), torch.load("expected.pt")), "pulled weights differ"
            from facevae.export import ONNX_EXPORTS, ONNX_TOLERANCE
            for name, (_, _, difference) in ONNX_EXPORTS.items():
                assert difference(pulled, pulled.onnx[name]) < ONNX_TOLERANCE[name], f"the pushed ONNX {name} differs"
            print("pulled", pulled.source)
        """.replace('"expected.pt"', repr(str(tmp_path / "expected.pt"))), env)
        assert pushed.returncode == 0, pushed.stderr
        assert sorted(hub.repos["alice/faces"]) == ["README.md", "config.json", "model.safetensors", "onnx/decoder.onnx",
                                                 "onnx/encoder.onnx"]
        assert any(r.startswith("POST /api/models/alice/faces/commit/main") for r in hub.requests)
        assert "pulled alice/faces" in pushed.stdout
    # the fake Hub is gone: the same repo id loads from the local cache, offline
    offline = run_python(f"""
        import torch
        from facevae import load_model
        x = torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(1))
        model = load_model("alice/faces")
        assert torch.equal(model.reconstruct(x), torch.load({str(tmp_path / 'expected.pt')!r}))
        print("offline ok")
    """, {**hub_env, "HF_HUB_OFFLINE": "1", "HF_ENDPOINT": "http://127.0.0.1:9"})
    assert offline.returncode == 0, offline.stderr
    assert "offline ok" in offline.stdout


def test_training_pushes_its_model_at_the_end(celeba_dir, tmp_path, hub_env):
    """Slow by nature: the training run is a process of its own, as huggingface_hub reads HF_ENDPOINT at import."""
    with FakeHub() as hub:
        result = subprocess.run(
            [sys.executable, "-m", "train.train", "--data", str(celeba_dir), "--out", str(tmp_path / "run"),
             "--epochs", "1", "--batch-size", "8", "--push-to-hub", "bob/tiny-faces"],
            cwd=ROOT, env={**os.environ, **hub_env, "HF_ENDPOINT": hub.url}, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        assert "pushed to" in result.stdout
        assert hub.repos["bob/tiny-faces"]["model.safetensors"] == (tmp_path / "run" / "model" / "model.safetensors").read_bytes()


def test_push_without_a_hub_fails_fast_with_a_clear_message(celeba_dir, tmp_path, hub_env):
    """Slow by nature: the training run is a process of its own, as huggingface_hub reads HF_ENDPOINT at import."""
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "train.train", "--data", str(celeba_dir), "--out", str(tmp_path / "run"),
         "--epochs", "1", "--batch-size", "8", "--push-to-hub", "bob/tiny-faces"],
        cwd=ROOT, env={**os.environ, **hub_env, "HF_ENDPOINT": "http://127.0.0.1:9"}, capture_output=True, text=True,
        timeout=300)
    assert result.returncode != 0
    assert "could not push to the Hub repo bob/tiny-faces" in result.stderr
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()  # nothing lost
    assert time.monotonic() - started < 120


def test_default_model_falls_back_to_the_bundled_weights_quickly(hub_env):
    # a Hub that accepts connections and never answers: the worst case for time-outs
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        result = run_python("""
            import time
            from facevae import load_model
            started = time.monotonic()
            model = load_model()
            print(f"{time.monotonic() - started:.2f}", model.source)
        """, {**hub_env, "FACEVAE_MODEL": "someone/faces", "HF_ENDPOINT": f"http://127.0.0.1:{silent.getsockname()[1]}"})
    assert result.returncode == 0, result.stderr
    seconds, source = result.stdout.strip().splitlines()[-1].split(" ", 1)
    assert float(seconds) < 6.5  # the 5 s deadline, then loading the bundled weights
    assert "bundled weights" in source and "someone/faces could not be loaded" in source
    assert "could not load someone/faces" in result.stderr


def test_an_unknown_repo_falls_back_too(hub_env):
    with FakeHub() as hub:
        result = run_python("""
            from facevae import load_model
            print(load_model().source)
        """, {**hub_env, "FACEVAE_MODEL": "nobody/nothing", "HF_ENDPOINT": hub.url})
    assert result.returncode == 0, result.stderr
    assert "bundled weights" in result.stdout and "nobody/nothing could not be loaded" in result.stdout
