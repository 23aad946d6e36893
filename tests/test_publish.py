"""train.publish against the fake Hub, the Space's requirements, and the model card's metadata."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml
from huggingface_hub import ModelCard

from fake_hub import FakeHub, hub_environment
from in_process import run_module
from train.publish import space_files

ROOT = Path(__file__).resolve().parent.parent
BUNDLED = ROOT / "assets" / "facevae-celeba-128"
MODEL_REPO, SPACE = "alice/facevae-celeba-128", "alice/facevae"


def publish(hub_url, tmp_path, *args, token="hf_alice"):
    """`python -m train.publish` run in this process (see in_process) against the Hub at hub_url,
    with HF_TOKEN=token; the ONNX export its push_model makes is made once a session for the bundled
    weights (conftest's onnx_exported_once, which every test of this file uses)."""
    with hub_environment(HF_ENDPOINT=hub_url, HF_HOME=str(tmp_path / "hf"), HF_HUB_DISABLE_TELEMETRY="1",
                         HF_TOKEN=token):
        return run_module("train.publish", *args, check=False)


@pytest.fixture(autouse=True)
def _export_once(onnx_exported_once):
    pass


def front_matter(readme: bytes) -> dict:
    text = readme.decode()
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


@pytest.fixture
def hub():
    with FakeHub(tokens={"hf_alice": "alice", "hf_carol": "carol"}) as hub:
        yield hub


def test_publish_sends_the_model_and_exactly_the_spaces_files_and_a_second_run_changes_nothing(hub, tmp_path):
    result = publish(hub.url, tmp_path, "--model-repo", MODEL_REPO, "--space", SPACE)
    assert result.returncode == 0, result.stderr
    assert f"{hub.url}/{MODEL_REPO}" in result.stdout and f"{hub.url}/spaces/{SPACE}" in result.stdout

    model_files = hub.repos[MODEL_REPO]
    assert {"config.json", "model.safetensors", "latent_stats.safetensors", "README.md"} <= set(model_files)
    # onnx/*.onnx: exported again by push_model, byte for byte the shipped files (the export is
    # deterministic, so a re-publish uploads nothing)
    for name in ("config.json", "model.safetensors", "latent_stats.safetensors", "README.md", "samples_mixture.jpg",
                 "onnx/decoder.onnx", "onnx/encoder.onnx"):
        assert model_files[name] == (BUNDLED / name).read_bytes(), name

    space = hub.spaces[SPACE]
    expected = {str(path) for path in space_files()} | {"README.md"}
    assert set(space) == expected
    assert "app.py" in space and "facevae/model.py" in space and "requirements.txt" in space
    assert "facevae/celeba_landmarks.json" in space  # align_face's template: the app cannot align without it
    # the page's models and the runtime they need, served by the Space itself
    assert {"facevae/web/face.js", "facevae/web/reconstruct.js", "assets/facevae-celeba-128/onnx/decoder.onnx",
            "assets/facevae-celeba-128/onnx/encoder.onnx",
            "facevae/web/vendor/face-api/LICENSE",
            "facevae/web/vendor/onnxruntime-web/ort-wasm-simd-threaded.wasm",
            "facevae/web/vendor/onnxruntime-web/LICENSE", "facevae/web/vendor/gifenc/gifenc.esm.js",
            "facevae/web/vendor/gifenc/LICENSE.md", "facevae/web/track.js",
            "facevae/web/reconstruct_worker.js"} <= set(space)
    assert not any(name.startswith(("tests/", "runs/", "train/", ".ci/")) for name in space)
    images = {name for name in space if name.lower().endswith((".jpg", ".jpeg", ".png", ".webp"))}
    assert images == {"assets/examples/astronaut.jpg", "assets/examples/grace_hopper.jpg"}  # public domain, no CelebA
    assert space["requirements.txt"] == (ROOT / "requirements.txt").read_bytes()
    meta = front_matter(space["README.md"])
    assert meta["models"] == [MODEL_REPO] and meta["sdk"] == "gradio" and meta["app_file"] == "app.py"
    assert hub.variables[SPACE] == {"FACEVAE_MODEL": MODEL_REPO}
    assert hub.space_settings[SPACE]["sdk"] == "gradio"

    commits, requests_before = {repo: list(ids) for repo, ids in hub.commits.items()}, len(hub.requests)
    again = publish(hub.url, tmp_path, "--model-repo", MODEL_REPO, "--space", SPACE)
    assert again.returncode == 0, again.stderr
    assert hub.commits == commits  # no new commit in either repo
    assert not any(r.startswith(f"POST /api/spaces/{SPACE}/variables") for r in hub.requests[requests_before:])


def test_the_published_repo_loads_with_the_same_outputs_as_the_local_weights(hub, tmp_path):
    assert publish(hub.url, tmp_path, "--model-repo", MODEL_REPO).returncode == 0
    assert MODEL_REPO not in hub.spaces  # --model-repo alone: no Space
    from facevae import load_model

    with hub_environment(HF_ENDPOINT=hub.url, HF_HOME=str(tmp_path / "hf")):
        pulled, local = load_model(MODEL_REPO), load_model(BUNDLED)
    assert pulled.source == MODEL_REPO
    x = torch.rand(4, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    assert torch.equal(pulled.reconstruct(x), local.reconstruct(x))
    g = lambda: torch.Generator().manual_seed(1)
    assert torch.equal(pulled.sample(4, prior="mixture", generator=g()), local.sample(4, prior="mixture", generator=g()))


def test_space_alone_uses_the_bundled_weights(hub, tmp_path):
    result = publish(hub.url, tmp_path, "--space", SPACE)
    assert result.returncode == 0, result.stderr
    assert "models" not in front_matter(hub.spaces[SPACE]["README.md"]) and SPACE not in hub.variables
    assert "assets/facevae-celeba-128/model.safetensors" in hub.spaces[SPACE] and not hub.repos


@pytest.mark.parametrize("token, args, message", [
    ("hf_wrong", ["--space", SPACE], "the Hub refused the token (401)"),
    (None, ["--space", SPACE, "--token", "hf_wrong"], "the Hub refused the token (401)"),
    ("hf_alice", ["--model-repo", "carol/taken", "--space", SPACE], "no right to write carol/taken (403)"),
])
def test_bad_tokens_and_names_of_others_fail_with_one_line_and_upload_nothing(hub, tmp_path, token, args, message):
    result = publish(hub.url, tmp_path, *args, token=token)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("publish failed: ") and message in last and "nothing was published" in last
    assert not hub.repos and not hub.spaces


def test_a_failure_after_the_model_step_says_what_was_published(hub, tmp_path):
    publish(hub.url, tmp_path, "--space", "carol/app", token="hf_carol")
    result = publish(hub.url, tmp_path, "--model-repo", MODEL_REPO, "--space", "carol/app")
    assert result.returncode == 1
    assert "no right to write carol/app (403)" in result.stderr and "already published: model repo" in result.stderr
    assert "model.safetensors" in hub.repos[MODEL_REPO]


def test_no_hub_and_no_token_fail_with_a_message(tmp_path):
    result = publish("http://127.0.0.1:9", tmp_path, "--space", SPACE)
    assert result.returncode == 1 and "cannot reach the Hub at http://127.0.0.1:9" in result.stderr
    result = publish("http://127.0.0.1:9", tmp_path, "--space", SPACE, token=None)
    assert result.returncode == 1 and "no Hugging Face token" in result.stderr


def test_the_app_imports_nothing_outside_the_spaces_requirements():
    """The app and the package, imported, built and run with every package that only
    requirements-dev.txt brings refused, as on a Space that installed requirements.txt alone.
    Slow by nature: a Python process of its own, as nothing may be imported before the refusal."""
    code = textwrap.dedent("""
        import importlib.metadata as md, sys
        from packaging.requirements import Requirement
        from packaging.utils import canonicalize_name

        def names(path):
            lines = [l.split("#")[0].strip() for l in open(path)]
            return {canonicalize_name(Requirement(l).name) for l in lines if l and not l.startswith("-r")}

        def closure(dists):  # the distributions and all they require on this Python, transitively
            seen, todo = set(), list(dists)
            while todo:
                name = todo.pop()
                if name in seen:
                    continue
                seen.add(name)
                for text in md.requires(name) or []:
                    req = Requirement(text)
                    if req.marker is None or req.marker.evaluate({"extra": ""}):
                        todo.append(canonicalize_name(req.name))
            return seen

        allowed = closure(names("requirements.txt"))
        dev_only = closure(names("requirements-dev.txt") - names("requirements.txt")) - allowed
        blocked = {top for dist in dev_only for top in (md.distribution(dist).read_text("top_level.txt") or "").split()}
        blocked |= {f.parts[0] for dist in dev_only for f in md.distribution(dist).files or []
                    if len(f.parts) > 1 and f.parts[1] == "__init__.py"}
        assert {"sklearn", "torchvision", "torchmetrics", "matplotlib", "pytest"} <= blocked, blocked

        class Refuse:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in blocked:
                    raise ImportError(f"{name} is not in the Space's requirements.txt")

        sys.meta_path.insert(0, Refuse())
        import app, facevae
        from facevae import align_face, load_model, to_tensor
        from facevae.pipeline import FacePipeline
        model = load_model()
        app.build_demo(FacePipeline(model))
        face, info = align_face("assets/examples/astronaut.jpg")
        model.reconstruct(to_tensor([face]))
        print("imported", sorted(m for m in sys.modules if m.split(".")[0] in blocked))
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GRADIO_ANALYTICS_ENABLED": "False"}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "imported []" in result.stdout


def test_the_model_card_has_valid_metadata_with_license_dataset_and_evaluation():
    card = ModelCard.load(BUNDLED / "README.md")
    data = card.data
    assert data.library_name == "facevae" and data.license == "other" and data.license_name
    assert {"vae", "faces", "celeba"} <= set(data.tags) and data.datasets and "celeba" in data.datasets[0].lower()
    assert data.license_link and "CelebA" in card.text and "non-commercial" in card.text
    results = {result.metric_type: result.metric_value for result in data.eval_results}
    assert results["psnr"] > 20 and 0 < results["ssim"] < 1
    assert f"{results['psnr']:.2f} dB" in card.text  # the table and the metadata agree
