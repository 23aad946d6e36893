"""Evaluate a FaceVAE on a split: reconstruction quality, ELBO, active units, sample quality.

    python -m train.evaluate --model assets/facevae-celeba-128 --data ../shared/data/celeba [--split val]

Prints the figures and writes them as JSON (--json, default runs/evaluate/<split>_evaluation.json),
with a PNG of samples above their nearest training images (--nearest-png, default in runs/evaluate/).

Definitions
- mse, psnr, ssim: of the reconstruction from the posterior mean, per image, averaged.
- psnr_jittered: the same PSNR for crops moved by a random similarity (shift ±4 px, scale ±5%,
  roll ±5°, the same for every model) taken from the original photo, against the moved crop: how
  much a slightly misaligned face (a selfie) costs. The similarity is applied to the full-size
  image before the crop, so both crops are resampled alike (moving the 128-px crop instead would
  blur it, and blur is easier to reconstruct).
- nelbo: negative ELBO in nats per image, one posterior sample per image, under a Gaussian
  decoder with the single shared variance that maximises the ELBO on the split (σ² = the mean
  squared error), for 8-bit pixels scaled to [0, 1] (so + D·ln 256 for the discrete data).
  bits_per_dim = nelbo / (D·ln 2). The same likelihood for every model, whatever its training loss.
- active_units: latent dimensions whose average KL to the prior exceeds 0.01 nats.
- frechet_distance: between Gaussians fitted to features of samples and of the split's real
  images; the feature space is fixed and independent of the model: images downsampled to
  32×32, projected on the top 64 principal components of the split's real images.
- sharpness: mean variance of the Laplacian of the grayscale samples over that of the real images.
- detail (of the reconstructions), detail_<prior> (of the samples): the energy of the luminance
  between Gaussian blurs of σ = 1 and σ = 2 px (facevae.metrics.detail_energy), over the photos'
  own. Noise raises it too: it counts beside identity and the eye.
- identity (facevae.identity): dlib's face descriptor of each reconstruction against that of its
  own photo's 128×128 crop. same_person: the share nearer than dlib's 0.6 (over the first
  --identity-images faces, default all); rank1: the share whose nearest photo is its own, among
  the first 1,000 faces (so that figures compare across splits). The anchor, identity_blur: the
  photos Gaussian-blurred by σ = 2.5 px, about the model's pixel error, which keep who they are.
  The photos' descriptors are cached (in the image cache's folder, by each image's hash). A
  model trained with --identity-net face-api (the shipped one since phase 13) has had dlib's
  network in its loss: for it this is the loss's own verdict, not a measure. Judge it with
  train.studies.judge_levers (MobileFaceNet, a network in no loss).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from scipy import linalg

from facevae import load_model
from facevae.data import cache_images, default_cache_dir, find_splits
from facevae.identity import face_descriptors, identity_scores
from facevae.latent import ACTIVE_KL
from facevae.losses import luminance
from facevae.metrics import detail_energy, mse, psnr, ssim
from facevae.model import reparameterize
from facevae.preprocess import celeba_square, images_to_tensor, to_grid, to_rgb

FEATURE_SIZE = 32
FEATURE_COMPONENTS = 64
RANK1_FACES = 1000
BLUR_SIGMA = 2.5


def jittered_crops(files: list, size: int = 128, shift: float = 4.0, scale: float = 0.05, degrees: float = 5.0,
                   seed: int = 0) -> np.ndarray:
    """N×size×size×3 uint8: each CelebA image cropped as crop_celeba does, after a random
    similarity (shift in output pixels, scale, roll) about the crop's centre."""
    rng = np.random.default_rng(seed)
    crops = []
    for path in files:
        img = to_rgb(Image.open(path))
        left, top, right, bottom = celeba_square(*img.size)
        # edges replicated outwards, so a crop moved or grown past the photo's border stays inside
        margin = int(np.ceil((right - left) * (scale + shift / size + 0.1)))
        img = Image.fromarray(np.pad(np.asarray(img), ((margin, margin), (margin, margin), (0, 0)), mode="edge"))
        left, top, right, bottom = left + margin, top + margin, right + margin, bottom + margin
        centre, side = ((left + right) / 2, (top + bottom) / 2), (right - left) * rng.uniform(1 - scale, 1 + scale)
        angle, (dx, dy) = rng.uniform(-degrees, degrees), rng.uniform(-shift, shift, 2) * (right - left) / size
        img = img.rotate(angle, resample=Image.Resampling.BICUBIC, center=centre)
        box = (centre[0] + dx - side / 2, centre[1] + dy - side / 2, centre[0] + dx + side / 2, centre[1] + dy + side / 2)
        crops.append(np.asarray(img.resize((size, size), Image.Resampling.BILINEAR, box=box, reducing_gap=None)))
    return np.stack(crops)


@torch.no_grad()
def reconstruction_metrics(model, images: np.ndarray, batch_size: int = 250, seed: int = 0,
                           jittered: np.ndarray | None = None) -> dict[str, float]:
    torch.manual_seed(seed)
    sums = dict(mse=0.0, psnr=0.0, ssim=0.0, sample_sse=0.0, psnr_jittered=0.0, detail=0.0, photo_detail=0.0)
    kl_per_dim = torch.zeros(model.latent_dim)
    for start in range(0, len(images), batch_size):
        x = images_to_tensor(images[start:start + batch_size])
        mu, logvar = model.encode(x)
        y = model.decode(mu)
        sums["mse"] += mse(x, y).sum().item()
        sums["psnr"] += psnr(x, y).sum().item()
        sums["ssim"] += ssim(x, y).sum().item()
        sums["detail"] += detail_energy(y).sum().item()
        sums["photo_detail"] += detail_energy(x).sum().item()
        sums["sample_sse"] += (model.decode(reparameterize(mu, logvar)) - x).pow(2).sum().item()
        kl_per_dim += (0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar)).sum(0)
        if jittered is not None:
            moved = images_to_tensor(jittered[start:start + batch_size])
            sums["psnr_jittered"] += psnr(moved, model.reconstruct(moved)).sum().item()
    n, dims = len(images), 3 * model.image_size ** 2
    kl_per_dim /= n
    variance = sums["sample_sse"] / (n * dims)  # the ELBO-optimal shared variance
    nll = 0.5 * dims * (math.log(2 * math.pi * variance) + 1) + dims * math.log(256)
    nelbo = nll + kl_per_dim.sum().item()
    jittered_psnr = {} if jittered is None else dict(psnr_jittered=sums["psnr_jittered"] / n)
    return dict(mse=sums["mse"] / n, psnr=sums["psnr"] / n, **jittered_psnr, ssim=sums["ssim"] / n,
                detail=sums["detail"] / sums["photo_detail"], nelbo_nats=nelbo,
                bits_per_dim=nelbo / (dims * math.log(2)), kl_nats=kl_per_dim.sum().item(),
                active_units=int((kl_per_dim > ACTIVE_KL).sum()), decoder_sigma=math.sqrt(variance))


class FeatureSpace:
    """Model-independent image features: 32×32 pixels projected on the real images' top PCs."""

    def __init__(self, real: torch.Tensor):
        flat = self._flatten(real)
        self.mean = flat.mean(0)
        _, _, v = torch.linalg.svd(flat - self.mean, full_matrices=False)
        self.components = v[:FEATURE_COMPONENTS]

    @staticmethod
    def _flatten(images: torch.Tensor) -> torch.Tensor:
        return F.interpolate(images, size=FEATURE_SIZE, mode="area").flatten(1).double()

    def __call__(self, images: torch.Tensor) -> np.ndarray:
        return ((self._flatten(images) - self.mean) @ self.components.T).numpy()


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = linalg.sqrtm(cov_a @ cov_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root))


def disjoint_sets(count: int, size: int, sets: int, seed: int = 0) -> list[np.ndarray]:
    """`sets` disjoint random index sets of `size` each from range(count), each in order: photos to
    score as a model's samples are, the yardstick of a Fréchet distance at that sample count."""
    if sets * size > count:
        raise ValueError(f"{sets} disjoint sets of {size} need {sets * size} photos; there are {count}")
    order = np.random.default_rng(seed).permutation(count)
    return [np.sort(order[i * size:(i + 1) * size]) for i in range(sets)]


def laplacian_variance(images: torch.Tensor) -> float:
    grey = luminance(images)
    kernel = torch.tensor([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=grey.dtype).view(1, 1, 3, 3)
    return F.conv2d(grey, kernel).flatten(1).var(1).mean().item()


@torch.no_grad()
def draw(model, n: int, prior: str, seed: int = 0, batch_size: int = 250) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.cat([model.sample(min(batch_size, n - i), prior=prior, generator=generator) for i in range(0, n, batch_size)])


def nearest_neighbours_png(samples: torch.Tensor, train_images: np.ndarray, path: Path) -> None:
    """Top row: samples; bottom row: the nearest training image by pixel distance (at 32×32)."""
    small = lambda x: F.interpolate(x, size=FEATURE_SIZE, mode="area").flatten(1)  # noqa: E731
    query = small(samples)
    best_d, best_i = torch.full((len(samples),), float("inf")), torch.zeros(len(samples), dtype=torch.long)
    for start in range(0, len(train_images), 2000):
        chunk = small(images_to_tensor(train_images[start:start + 2000]))
        d, i = torch.cdist(query, chunk).min(1)
        better = d < best_d
        best_d[better], best_i[better] = d[better], i[better] + start
    nearest = images_to_tensor(train_images[best_i.numpy()])
    to_grid(torch.cat([samples, nearest]), columns=len(samples)).save(path)


def gaussian_blur(images: np.ndarray, sigma: float) -> np.ndarray:
    """N×H×W×3 uint8 photos blurred by σ px (OpenCV, the edge pixels repeated outwards): the
    anchors the figures compare with (BLUR_SIGMA). Not facevae.losses.gaussian_blur, the losses'
    blur of float tensors, whose mirrored edges differ: kept so the documented anchors stand."""
    import cv2

    return np.stack([cv2.GaussianBlur(image, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE) for image in images])


def cached_descriptors(images: np.ndarray, name: str) -> np.ndarray:
    """dlib descriptors of model-independent images (the photos, their blurred copies), each
    computed once and kept by the image's hash: dlib takes ~0.3 s a face on these CPUs."""
    keys = [hashlib.sha1(np.ascontiguousarray(image).data).hexdigest() for image in images]
    path = default_cache_dir() / f"dlib_{name}.npz"
    known = dict(np.load(path)) if path.is_file() else {}
    missing = [i for i, key in enumerate(keys) if key not in known]
    if missing:
        known.update(zip((keys[i] for i in missing), face_descriptors(images[missing])))
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path.with_suffix(".tmp.npz"), **known)
        path.with_suffix(".tmp.npz").replace(path)  # whole, or not at all
    return np.stack([known[key] for key in keys])


@torch.no_grad()
def reconstructions_uint8(model, images: np.ndarray, batch_size: int = 250) -> np.ndarray:
    """Posterior-mean reconstructions as the app shows them: 8-bit images."""
    out = [model.reconstruct(images_to_tensor(images[s:s + batch_size])) for s in range(0, len(images), batch_size)]
    return (torch.cat(out).clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()


def dlib_verdict(photo_descriptors: np.ndarray, descriptors: np.ndarray) -> dict[str, float]:
    """same_person over all the faces given, rank1 among the first RANK1_FACES."""
    n = min(RANK1_FACES, len(descriptors))
    return dict(same_person=identity_scores(photo_descriptors, descriptors)["same_person"],
                rank1=identity_scores(photo_descriptors[:n], descriptors[:n])["rank1"])


def identity_report(model, images: np.ndarray) -> dict[str, float]:
    photo_descriptors = cached_descriptors(images, "photos")
    blurred = gaussian_blur(images, BLUR_SIGMA)
    reconstructed = dlib_verdict(photo_descriptors, face_descriptors(reconstructions_uint8(model, images)))
    anchor = dlib_verdict(photo_descriptors, cached_descriptors(blurred, "blur"))
    anchor["psnr"] = float(psnr(images_to_tensor(images), images_to_tensor(blurred)).mean())
    return {**{f"identity_{k}": v for k, v in reconstructed.items()},
            **{f"identity_blur_{k}": v for k, v in anchor.items()}, "identity_images": len(images)}


def evaluate(model, images: np.ndarray, train_images: np.ndarray | None, n_samples: int, nearest_png: Path | None,
             jittered: np.ndarray | None = None, identity_images: int = 0) -> dict:
    results = reconstruction_metrics(model, images, jittered=jittered)
    if identity_images >= 0:
        results.update(identity_report(model, images[: identity_images or None]))
    real = images_to_tensor(images)
    features = FeatureSpace(real)
    real_features, real_sharpness = features(real), laplacian_variance(real)
    real_detail = detail_energy(real).mean().item()
    priors = ["normal"] + (["mixture"] if model.latent_stats is not None else [])
    for prior in priors:
        samples = draw(model, n_samples, prior)
        results[f"frechet_distance_{prior}"] = frechet_distance(features(samples), real_features)
        results[f"sharpness_{prior}"] = laplacian_variance(samples) / real_sharpness
        results[f"detail_{prior}"] = detail_energy(samples).mean().item() / real_detail
        if prior == priors[-1] and train_images is not None and nearest_png:
            nearest_neighbours_png(samples[:10], train_images, nearest_png)
    results["images"] = len(images)
    results["samples_per_prior"] = n_samples
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="folder or Hub repo id (default: the bundled weights)")
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="val", choices=["train", "val", "test"])
    parser.add_argument("--samples", type=int, default=2000, help="samples per prior for the Fréchet distance")
    parser.add_argument("--identity-images", type=int, default=0,
                        help="faces judged by dlib for identity (0: the whole split; -1: skip; ~0.3 s a face)")
    parser.add_argument("--json", default=None)
    parser.add_argument("--nearest-png", default=None)
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    model = load_model(args.model)
    splits = find_splits(args.data)
    if not splits[args.split]:
        raise SystemExit(f"the {args.split} split of {args.data} is empty")
    images = cache_images(splits[args.split], model.image_size).array
    jittered = jittered_crops(splits[args.split], model.image_size)
    train_images = cache_images(splits["train"], model.image_size).array if splits["train"] else None
    # Not beside the model: the nearest-neighbour PNG holds training images, which must not be
    # shipped with the weights (CelebA's terms forbid redistributing them).
    out_dir = Path("runs") / "evaluate"
    out_dir.mkdir(parents=True, exist_ok=True)
    nearest = Path(args.nearest_png) if args.nearest_png else out_dir / f"{args.split}_nearest_training_images.png"
    results = evaluate(model, images, train_images, args.samples, nearest, jittered, args.identity_images)
    results.update(model=model.source, split=args.split)
    json_path = Path(args.json) if args.json else out_dir / f"{args.split}_evaluation.json"
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    for key, value in results.items():
        print(f"{key:26s} {value:.4f}" if isinstance(value, float) else f"{key:26s} {value}")
    print(f"written to {json_path} and {nearest}")


if __name__ == "__main__":
    main()
