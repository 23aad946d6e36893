"""Where weights come from: a local folder, a Hub repo, or the default bundled in assets/
(facevae/bundled in an installed package)."""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
from pathlib import Path

import torch

from .export import ONNX_EXPORTS, export_all
from .latent import LatentStats
from .model import FaceVAE

log = logging.getLogger(__name__)

BUNDLED_NAME = "facevae-celeba-128"
# The default weights: assets/ in the repository, or facevae/bundled where pip installed the
# package (pyproject.toml copies the same files there).
_IN_REPOSITORY = Path(__file__).resolve().parent.parent / "assets" / BUNDLED_NAME
BUNDLED_MODEL = _IN_REPOSITORY if _IN_REPOSITORY.is_dir() else Path(__file__).resolve().parent / "bundled"
MODEL_ENV = "FACEVAE_MODEL"  # a Hub repo id (or folder) to prefer over the bundled weights
HUB_TIMEOUT_SECONDS = 5.0


def load_model(source: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> FaceVAE:
    """A FaceVAE in eval mode from a save_pretrained folder or a Hub repo id ("user/repo").

    With no source: the repo named by $FACEVAE_MODEL when it loads within 5 seconds, else the
    weights bundled in assets/ (a warning says why). model.source says which weights these are.
    Latent statistics saved beside the weights are attached as model.latent_stats, and the paths of
    the ONNX files shipped with them (facevae.export: the decoder, which also gives its VJP, and the encoder) as model.onnx."""
    if source is not None:
        return _load(source, device)
    preferred = os.environ.get(MODEL_ENV)
    if preferred:
        try:
            return _load_within(preferred, device, HUB_TIMEOUT_SECONDS)
        except Exception as error:
            log.warning("could not load %s (%s); using the bundled weights in %s", preferred, error, BUNDLED_MODEL)
            model = _load(BUNDLED_MODEL, device)
            model.source = f"bundled weights ({BUNDLED_NAME}); {preferred} could not be loaded"
            return model
    return _load(BUNDLED_MODEL, device)


def _load(source: str | os.PathLike, device) -> FaceVAE:
    model = FaceVAE.from_pretrained(str(source), map_location=str(device))
    model.latent_stats = LatentStats.find(source)
    model.onnx = find_onnx_files(source)
    model.source = f"bundled weights ({BUNDLED_NAME})" if Path(source) == BUNDLED_MODEL else str(source)
    return model.eval().to(device)


def find_onnx_files(source: str | os.PathLike) -> dict[str, Path]:
    """The ONNX files beside the weights in a local folder or Hub repo, by name (ONNX_EXPORTS);
    those missing are left out: the app then does their work on the server."""
    if Path(source).exists():
        return {name: Path(source) / file for name, (file, _, _) in ONNX_EXPORTS.items()
                if (Path(source) / file).is_file()}
    from huggingface_hub import hf_hub_download

    files = {}
    for name, (file, _, _) in ONNX_EXPORTS.items():
        try:
            files[name] = Path(hf_hub_download(str(source), file))
        except Exception:  # a repo without it
            pass
    return files


def _load_within(source: str, device, seconds: float) -> FaceVAE:
    """Load with a hard deadline: a network that drops packets instead of refusing them could
    otherwise hold start-up for the HTTP library's own, much longer, time-outs and retries. The
    worker is a daemon thread, so an abandoned attempt never keeps the process from exiting."""
    outcome: dict = {}

    def attempt():
        try:
            outcome["model"] = _load(source, device)
        except Exception as error:  # handed to the caller below
            outcome["error"] = error

    worker = threading.Thread(target=attempt, daemon=True, name=f"load {source}")
    worker.start()
    worker.join(seconds)
    if "model" in outcome:
        return outcome["model"]
    raise outcome.get("error") or TimeoutError(f"no answer within {seconds:.0f} s")


def push_model(model: FaceVAE, repo_id: str, token: str | None = None, private: bool = False,
               card_folder: str | os.PathLike | None = None) -> str:
    """Push config.json + model.safetensors, the ONNX files (exported here from these very
    weights, so they always match) and the latent statistics, when attached, to a Hub model
    repo, in one commit; returns the commit URL. card_folder: a folder whose README.md
    (the model card) and still images (JPEG, PNG) go with them. Unchanged files are not uploaded again, and a
    push that changes nothing makes no commit. The token defaults to HF_TOKEN or the saved login."""
    from huggingface_hub import HfApi

    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder)
        export_all(model, folder)
        if model.latent_stats is not None:
            model.latent_stats.save(folder)
        if card_folder is not None:
            images = [path for pattern in ("*.jpg", "*.png") for path in sorted(Path(card_folder).glob(pattern))]
            for path in [Path(card_folder) / "README.md", *images]:
                shutil.copyfile(path, Path(folder) / path.name)
        api = HfApi(token=token)
        api.create_repo(repo_id, private=private, exist_ok=True)
        return str(api.upload_folder(repo_id=repo_id, folder_path=folder, commit_message="Upload FaceVAE weights"))
