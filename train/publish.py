"""Publish the model and the app to the Hugging Face Hub in one command.

    python -m train.publish --model-repo USER/NAME --space USER/NAME [--private] [--token T]

--model-repo: the weights, the decoder as ONNX, latent statistics, model card and its images
(facevae.loading.push_model).
--space: the Gradio Space: exactly SPACE_FILES, the app's requirements.txt and a README whose
front matter names the model repo; the Space variable FACEVAE_MODEL is set to the model repo, so
the Space pulls its weights from the Hub. Either runs alone. The token is --token, else HF_TOKEN,
else the saved `hf auth login`; HF_ENDPOINT points at another Hub, as in huggingface_hub.

The Space carries the bundled weights too (12 MB): load_model falls back to them whenever the
model repo cannot be loaded within 5 seconds (the Hub slow or down, the repo private or renamed),
so the Space always starts; with --space alone they are its only weights.

Each step is one commit, so a failed step leaves that repo as it was; unchanged files are not
uploaded again, and publishing twice with nothing changed makes no commit.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

import httpx2  # the HTTP client huggingface_hub 2.x uses (its declared dependency)
from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError, LocalTokenNotFoundError

from facevae import load_model
from facevae.loading import BUNDLED_MODEL, MODEL_ENV, push_model

ROOT = Path(__file__).resolve().parent.parent
# What the app needs at run time, relative to the repository's root; nothing else is uploaded.
# facevae/web: the page's modules, the ONNX Runtime Web they run (its .wasm, 14 MB, goes through LFS
# on the Hub) and face-api's detector and landmarks as ONNX; onnx/*.onnx: the decoder (with its VJP)
# and encoder the page runs.
SPACE_FILES = ["app.py", "requirements.txt", "facevae/*.py", "facevae/*.json", "facevae/web/*.js",
               "facevae/web/vendor/onnxruntime-web/*", "facevae/web/vendor/face-api/*", "facevae/web/vendor/gifenc/*",
               "assets/examples/*",
               *(f"assets/{BUNDLED_MODEL.name}/{name}" for name in
                 ("config.json", "model.safetensors", "latent_stats.safetensors", "onnx/*.onnx"))]

SPACE_README = """---
title: FaceVAE
emoji: 🙂
colorFrom: indigo
colorTo: pink
sdk: gradio
sdk_version: {gradio_version}
app_file: app.py
python_version: "3.11"
license: mit
{models}short_description: Reconstruct, sample, morph and explore faces with a VAE
---

# FaceVAE

A variational autoencoder of faces (128×128, a 200-dimensional latent) trained on CelebA:
upload a selfie and see its reconstruction, draw random faces, morph one face into another,
and drag sliders across the latent space.

{weights}
"""


class PublishError(Exception):
    """A step failed; the message is one line for the person publishing."""


def space_files(root: Path = ROOT) -> list[Path]:
    """The files a Space of the app needs, relative to root, sorted."""
    return sorted({path.relative_to(root) for pattern in SPACE_FILES for path in root.glob(pattern)
                   if path.is_file()})


def space_readme(model_repo: str | None) -> str:
    if model_repo:
        models = f"models:\n  - {model_repo}\n"
        weights = (f"Weights: [{model_repo}](https://huggingface.co/{model_repo}), pulled at start-up "
                   f"(the Space variable `{MODEL_ENV}`); the weights bundled here are the fallback.")
    else:
        models, weights = "", "Weights: the ones bundled in `assets/`."
    return SPACE_README.format(gradio_version=version("gradio"), models=models, weights=weights)


def publish_model(api: HfApi, repo_id: str, private: bool, model_folder: Path) -> str:
    model = load_model(model_folder)
    push_model(model, repo_id, token=api.token, private=private, card_folder=model_folder)
    return f"{api.endpoint}/{repo_id}"


def publish_space(api: HfApi, space_id: str, model_repo: str | None, private: bool) -> str:
    api.create_repo(space_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        for path in space_files():
            (Path(folder) / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(ROOT / path, Path(folder) / path)
        (Path(folder) / "README.md").write_text(space_readme(model_repo), encoding="utf-8")
        # delete_patterns: files of an earlier publish that the app no longer has go (.gitattributes stays)
        api.upload_folder(repo_id=space_id, repo_type="space", folder_path=folder, delete_patterns="*",
                          commit_message="Publish the FaceVAE app")
    if model_repo:
        current = api.get_space_variables(space_id).get(MODEL_ENV)
        if current is None or current.value != model_repo:  # set only when it changes: a re-publish changes nothing
            api.add_space_variable(space_id, MODEL_ENV, model_repo, description="Hub repo of the weights the app loads")
    return f"{api.endpoint}/spaces/{space_id}"


def explain(error: Exception, repo_id: str, endpoint: str) -> str:
    """One line that says what went wrong and what to do."""
    if isinstance(error, LocalTokenNotFoundError):
        return "no Hugging Face token: pass --token, set HF_TOKEN, or run `hf auth login`"
    if isinstance(error, HfHubHTTPError) and error.response is not None:
        status = error.response.status_code
        if status == 401:
            return f"the Hub refused the token (401) for {repo_id}: check --token or HF_TOKEN"
        if status == 403:
            return (f"no right to write {repo_id} (403): the name belongs to someone else, or the token is "
                    f"read-only; choose a name under your own account")
        return f"the Hub answered {status} for {repo_id}: {str(error).splitlines()[0]}"
    if isinstance(error, (httpx2.TransportError, OSError)):
        return f"cannot reach the Hub at {endpoint} ({type(error).__name__}: {error}); nothing was changed on {repo_id}"
    return f"{type(error).__name__}: {error}"


def check_token(api: HfApi, repo_id: str) -> str:
    return api.whoami()["name"]


def run_step(step, api: HfApi, repo_id: str, *args) -> str:
    try:
        return step(api, repo_id, *args)
    except Exception as error:  # every failure becomes one line for the person publishing
        raise PublishError(explain(error, repo_id, api.endpoint)) from error


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-repo", help="USER/NAME of the model repo (weights, statistics, card)")
    parser.add_argument("--space", help="USER/NAME of the Space (the app)")
    parser.add_argument("--private", action="store_true", help="create the repos private")
    parser.add_argument("--token", help="a Hugging Face write token (default: HF_TOKEN or the saved login)")
    parser.add_argument("--model", default=str(BUNDLED_MODEL), help="the save_pretrained folder to publish")
    args = parser.parse_args(argv)
    if not args.model_repo and not args.space:
        parser.error("give --model-repo, --space, or both")
    api = HfApi(token=args.token)
    done = []
    try:
        run_step(check_token, api, args.model_repo or args.space)  # a bad token fails here, before any upload
        if args.model_repo:
            done.append(f"model repo: {run_step(publish_model, api, args.model_repo, args.private, Path(args.model))}")
            print(done[-1], flush=True)
        if args.space:
            done.append(f"Space: {run_step(publish_space, api, args.space, args.model_repo, args.private)}")
            print(done[-1], flush=True)
    except PublishError as error:
        finished = f" (already published: {'; '.join(done)})" if done else " (nothing was published)"
        sys.exit(f"publish failed: {error}{finished}")


if __name__ == "__main__":
    main()
