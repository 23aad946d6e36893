"""Train the identity network (facevae.identity.IdentityNet) on CelebA's training identities:
an ArcFace additive angular margin over the 5,600 people (5 faces each), with the faces
mirrored, moved slightly and blurred at random (at the network's 64-px input: σ up to 1.7 px,
2.5 px of the 128-px crop), so that it also reads who a blurry
reconstruction is. Validated on the val split's 907 other people (rank-1 among the first 1,000
faces, and pair verification at the threshold of equal error).

    python -m train.train_identity --data ../shared/data/celeba --minutes 22 --threads 1

Writes facevae/identity_net.safetensors (--out). The VAE's identity loss and the upload-time
refinement use it; the measure of identity is dlib's network, never this one.
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score, roc_curve

from facevae.data import cache_images, find_splits
from facevae.identity import IDENTITY_NET_FILE, IdentityNet
from facevae.preprocess import uint8_to_tensor
from train.train import random_mirror, random_similarity

CONFIG = dict(data="", out=str(IDENTITY_NET_FILE), minutes=22.0,  # CPU minutes of training
              batch_size=128, lr=2e-3, weight_decay=0.05,
              margin=0.4, scale=32.0, blur_max=1.7, seed=0, threads=0)


def read_identities(root: Path, files: list) -> np.ndarray:
    table = dict(line.split() for line in (root / "identity_CelebA.txt").read_text().splitlines() if line.strip())
    return np.array([int(table[Path(f).name]) for f in files])


def random_blur(x: torch.Tensor, max_sigma: float) -> torch.Tensor:
    """Half the faces blurred by one Gaussian of σ uniform in [0.3, max_sigma] px (a new σ each
    batch): reconstructions are soft, and who they are must still read."""
    blurred = torch.rand(len(x)) < 0.5
    sigma = float(torch.empty(1).uniform_(0.3, max_sigma))
    radius = int(math.ceil(2.5 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype)
    kernel = torch.exp(-0.5 * (t / sigma) ** 2)
    kernel = kernel / kernel.sum()
    soft = F.pad(x[blurred], (radius,) * 4, mode="replicate")
    soft = F.conv2d(soft, kernel.view(1, 1, 1, -1).expand(3, 1, 1, -1), groups=3)
    soft = F.conv2d(soft, kernel.view(1, 1, -1, 1).expand(3, 1, -1, 1), groups=3)
    out = x.clone()
    out[blurred] = soft
    return out


def face_views(images: np.ndarray, batch_size: int = 1000) -> torch.Tensor:
    """The network's 64×64 input of every N×128×128×3 uint8 face, made once (N×3×64×64 float)."""
    return torch.cat([IdentityNet.face_view(uint8_to_tensor(torch.from_numpy(np.array(images[s:s + batch_size]))))
                      for s in range(0, len(images), batch_size)])


def arcface_logits(embeddings: torch.Tensor, weights: torch.Tensor, labels: torch.Tensor, margin: float,
                   scale: float) -> torch.Tensor:
    """cos(θ + m) for the true class, cos θ for the others, times the scale (Deng et al. 2019)."""
    cosine = embeddings @ F.normalize(weights, dim=1).T
    true = cosine.gather(1, labels[:, None]).clamp(-1 + 1e-6, 1 - 1e-6)
    with_margin = torch.where(true > math.cos(math.pi - margin), torch.cos(torch.acos(true) + margin),
                              true - margin * math.sin(margin))  # past π − m, keep it monotonic
    return scale * cosine.scatter(1, labels[:, None], with_margin)


@torch.no_grad()
def validate(net: IdentityNet, views: torch.Tensor, ids: np.ndarray) -> dict[str, float]:
    """rank1: each face's nearest other face is the same person; auc, eer: verification over
    all pairs of the faces."""
    net.eval()
    e = net.embed_view(views)
    similarity = e @ e.T
    similarity.fill_diagonal_(-2)
    rank1 = float((ids[similarity.argmax(1).numpy()] == ids).mean())
    upper = np.triu_indices(len(ids), 1)
    same = (ids[:, None] == ids[None, :])[upper]
    scores = similarity.numpy()[upper]
    fpr, tpr, _ = roc_curve(same, scores)
    eer = float(fpr[np.argmin(np.abs(fpr - (1 - tpr)))])
    return dict(rank1=rank1, auc=float(roc_auc_score(same, scores)), eer=eer)


def main(argv=None) -> IdentityNet:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, default in CONFIG.items():
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, type=type(default), default=default)
    cfg = parser.parse_args(argv)
    if not cfg.data:
        parser.error("--data is required")
    torch.manual_seed(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    root = Path(cfg.data)
    splits = find_splits(root)
    train_set, val_set = cache_images(splits["train"]), cache_images(splits["val"])
    train_ids, val_ids = read_identities(root, train_set.files), read_identities(root, val_set.files)
    classes, labels = np.unique(train_ids, return_inverse=True)
    views, labels = face_views(train_set.array), torch.from_numpy(labels)
    val_views, val_ids = face_views(val_set.array[:1000]), val_ids[:1000]  # the first 1,000, as train.evaluate

    net = IdentityNet()
    weights = torch.nn.Parameter(torch.randn(len(classes), net.config["embedding"]) * 0.01)
    optimizer = torch.optim.AdamW([*net.parameters(), weights], lr=cfg.lr, weight_decay=cfg.weight_decay)
    # The budget is CPU time, not the clock's: on a machine shared with other jobs the schedule
    # (warm-up, margin, cosine decay) then follows the work done.
    budget, started, step = cfg.minutes * 60, time.process_time(), 0
    while (elapsed := time.process_time() - started) < budget:
        net.train()
        progress = elapsed / budget
        for group in optimizer.param_groups:  # a short warm-up, then a cosine decay over the time budget
            group["lr"] = cfg.lr * min(1.0, step / 200) * 0.5 * (1 + math.cos(math.pi * progress))
        batch = torch.randint(len(views), (cfg.batch_size,))
        x = random_blur(random_similarity(random_mirror(views[batch]), shift=2.0), cfg.blur_max)
        margin = cfg.margin * min(1.0, progress * 5)  # the margin grows in over the first fifth
        loss = F.cross_entropy(arcface_logits(net.embed_view(x), weights, labels[batch], margin, cfg.scale),
                               labels[batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        if step % 500 == 0:
            scores = validate(net, val_views, val_ids)
            print(f"step {step} ({elapsed / 60:.1f} CPU min): loss {loss.item():.3f}, val " +
                  ", ".join(f"{k} {v:.3f}" for k, v in scores.items()), flush=True)
    scores = validate(net, val_views, val_ids)
    print(f"done after {step} steps: val " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items()), flush=True)
    net.eval().save(Path(cfg.out))
    print(f"saved to {cfg.out}")
    return net


if __name__ == "__main__":
    main()
