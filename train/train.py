"""Train FaceVAE on CelebA or any folder of images.

    python -m train.train --data ../shared/data/celeba --out runs/celeba
    torchrun --nproc_per_node 2 -m train.train --data ... --out ...   # DistributedDataParallel

Every value in CONFIG below is a command-line option (--name value; booleans are flags, --no-name
turns one off).
The run folder gets checkpoint.pt (resumable), log.csv, loss.png, per-epoch reconstruction and
sample grids, and at the end the model in save_pretrained form under model/.
"""
from __future__ import annotations

import argparse
import csv
import math
import os
import sys
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler
from tqdm import tqdm

from facevae import FaceVAE
from facevae.data import CachedImages, cache_images, find_splits
from facevae.identity import IDENTITY_NET_FILE, identity_loss, load_identity_net
from facevae.losses import (LATTICE_SQUARE, RECONSTRUCTIONS, boost_detail, detail_loss, face_weights, kl_warmup, lattice_loss,
                            vae_loss)
from facevae.metrics import mse, psnr, ssim
from facevae.preprocess import images_to_tensor, to_grid, uint8_to_tensor
from train.discriminator import (Adversary, PatchDiscriminator, adaptive_weight, discriminator_step, generator_loss,
                                 make_discriminator_optimizer)
from train.face_recognition import FaceRecognitionNet, identity_distance, load_face_recognition_net
from train.feature_net import load_feature_net, perceptual_loss
from train.utkface import load_part

CONFIG = dict(
    data="",  # CelebA root (img_align_celeba/ + list_eval_partition.txt) or any image folder
    diverse_data="",  # a UTKFace folder (train.utkface): its training part joins, aligned by align_face, the completed frame outside the pixel loss
    diverse_repeat=1,  # each of those faces is seen this many times per epoch (their share of the batches)
    out="runs/facevae",
    epochs=50,
    batch_size=32,  # per process
    lr=1e-3,
    lr_schedule="constant",  # constant, or cosine: decays to lr_final_ratio × lr at the last step
    lr_final_ratio=0.05,
    latent_dim=200,
    dropout=0.2,
    negative_slope=0.001,
    image_size=128,
    reconstruction="bce",  # one of facevae.losses.RECONSTRUCTIONS
    beta=1.0,
    identity_weight=0.0,  # nats per image for the identity loss of photo and reconstruction (see identity_term)
    identity_net="",  # the identity network's safetensors (default: the package's facevae/identity_net.safetensors), or face-api: dlib's ResNet
    identity_augment=False,  # the identity loss reads both faces moved and blurred alike at random (see identity_views)
    perceptual_weight=0.0,  # nats per image for the feature distance of photo and reconstruction (train.feature_net)
    feature_net="",  # MobileNetV2's weights for it (default: where python -m train.feature_net puts them)
    adversarial_weight=0.0,  # × VQGAN's adaptive weight × the PatchGAN hinge loss of the reconstructions (train.discriminator); 0: no discriminator
    adversarial_start=0,  # step from which the adversarial term reaches the VAE
    discriminator_start=-1,  # step from which the discriminator learns (-1: --adversarial-start); earlier lets it learn alone first
    discriminator_lr=1e-4,  # its Adam's (betas 0.5, 0.9), constant
    discriminator_channels=32,  # its first layer's width (doubling per layer, at most 8×)
    discriminator_layers=3,  # its stride-2 layers (3: each patch score sees 70×70 px)
    adversarial_max_weight=1e4,  # the clamp of the adaptive weight λ
    face_weight=1.0,  # the inner face's pixels weigh this many times the others in the reconstruction term
    freeze_decoder=False,  # the decoder keeps its loaded weights and BatchNorm statistics; only the encoder learns
    edge_weight=0.0,  # the reconstruction term adds this × the Gaussian likelihood of the image's edges (losses.edge_loss)
    lattice_weight=0.0,  # the objective adds this × the Gaussian likelihood of the error's pixel-grid lattice (losses.lattice_loss)
    lattice_period=4,  # px: the lattice term covers the periods that divide it (4: 2 and 4 px; 8: 2, 4 and 8 px)
    detail_weight=0.0,  # the objective adds this × the Gaussian likelihood of the detail band's amplitude per square (losses.detail_loss)
    detail_patch=16,  # px: the side of those squares (the image's size: one amplitude per image, placed where the decoder likes)
    detail_boost=0.0,  # the reconstruction term's target is the photo with its detail band 1 + this times as strong (losses.boost_detail)
    kl_warmup_steps=0,  # KL weight rises linearly from 0 to 1 over these steps
    max_steps=0,  # stop after this many optimizer steps (0: run all epochs)
    max_minutes=0.0,  # stop after this much training time (0: no limit)
    checkpoint_every=500,  # steps; a checkpoint is also written at each epoch end
    val_images=0,  # validation images evaluated each epoch (0: the whole split)
    seed=0,
    deterministic=False,
    threads=0,  # torch intra-op threads per process (0: cores / processes)
    device="auto",  # auto, cpu, cuda, mps
    precision="auto",  # auto, fp32 or bf16 autocast; auto: bf16 where the hardware has bf16 units (see autocast_dtype)
    jitter=False,  # random similarity jitter of each training face: shift ±4 px, scale ±5%, roll ±5°
    flip=False,  # mirror each training face left-right with probability 1/2
    input_noise=0.0,  # std of Gaussian noise on the encoder's input only, the target the clean face (see training_step)
    precise_bn=True,  # at the end, BatchNorm statistics averaged exactly over the training faces (see precise_batchnorm)
    cache_dir="",  # where decoded images are cached (default ~/.cache/facevae)
    resume=False,  # continue from out/checkpoint.pt
    init_from="",  # start from these weights (save_pretrained folder or Hub id) with a fresh optimizer
    push_to_hub="",  # Hub repo id to push the final model to (token from HF_TOKEN)
)

PRECISIONS = ("auto", "fp32", "bf16")
# /proc/cpuinfo flags of CPUs with bf16 dot-product hardware: AMX tiles (Sapphire Rapids and later
# Xeons) or AVX512-BF16 (Cooper Lake, Zen 4). Without them oneDNN emulates bf16 and it is slower.
CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
FACE_API_IDENTITY = "face-api"  # --identity-net: dlib's ResNet, ported from face-api (train.face_recognition)

LOG_FIELDS = ["epoch", "step", "train_loss", "train_reconstruction", "train_kl", "train_identity", "train_perceptual", "val_loss",
              "val_reconstruction", "val_kl", "val_mse", "val_psnr", "val_ssim", "images_per_second", "minutes",
              "train_adversarial", "train_adversarial_lambda", "train_discriminator", "train_lattice", "train_detail"]  # new ones last: older logs stay aligned


def parse_config(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, default in CONFIG.items():
        if isinstance(default, bool):
            parser.add_argument(f"--{name.replace('_', '-')}", dest=name, action=argparse.BooleanOptionalAction,
                                default=default)
        else:
            parser.add_argument(f"--{name.replace('_', '-')}", dest=name, type=type(default), default=default)
    cfg = parser.parse_args(argv)
    if not cfg.data:
        parser.error("--data is required")
    if cfg.lr_schedule not in ("constant", "cosine"):
        parser.error("--lr-schedule must be constant or cosine")
    if cfg.precision not in PRECISIONS:
        parser.error(f"--precision must be one of {PRECISIONS}")
    if cfg.reconstruction not in RECONSTRUCTIONS:
        parser.error(f"--reconstruction must be one of {RECONSTRUCTIONS}")
    if cfg.detail_patch < 1 or cfg.image_size % cfg.detail_patch:
        parser.error(f"--detail-patch must divide --image-size ({cfg.image_size})")
    if cfg.diverse_repeat < 1:
        parser.error("--diverse-repeat must be at least 1")
    if cfg.lattice_period < 2 or LATTICE_SQUARE % cfg.lattice_period:
        parser.error(f"--lattice-period must divide the lattice term's {LATTICE_SQUARE}-px squares (and be at least 2)")
    return cfg


def pick_device(name: str) -> torch.device:
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def cpu_has_bf16_units(cpuinfo: str | None = None) -> bool:
    """True if the CPU advertises bf16 dot-product units (Linux /proc/cpuinfo flags). Elsewhere
    (macOS, Windows) the flags cannot be read this way and the answer is False: fp32."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    flags = {flag for line in cpuinfo.splitlines() if line.startswith("flags") for flag in line.split(":", 1)[1].split()}
    return any(flag in flags for flag in CPU_BF16_FLAGS)


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for --precision on this device; None means plain fp32.

    auto: on CUDA bf16 where supported, else fp16 (with a gradient scaler); on a CPU with bf16
    units bf16; otherwise fp32. Parameters, optimizer state and the loss stay fp32 in every case."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_has_bf16_units():
        return torch.bfloat16
    return None


def precision_name(dtype: torch.dtype | None) -> str:
    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


def make_optimizer(model: torch.nn.Module, lr: float) -> torch.optim.Optimizer:
    # The fused kernel updates all parameters in one pass; the result equals plain Adam's.
    return torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr, fused=True)


def decoder_parts(model: FaceVAE) -> list[torch.nn.Module]:
    return [model.from_latent, model.decoder]


def freeze_decoder(model: FaceVAE) -> None:
    """The decoder as loaded, weights and BatchNorm statistics, while the encoder learns a new
    reconstruction term: latents that spend the same decoder differently (what the refinement
    at upload finds face by face), with samples and the page's ONNX decoder unchanged."""
    for part in decoder_parts(model):
        part.requires_grad_(False)


def train_mode(model: FaceVAE, decoder_frozen: bool) -> None:
    model.train()
    if decoder_frozen:  # its BatchNorms normalise by their loaded statistics, as in use
        for part in decoder_parts(model):
            part.eval()


def learning_rate(cfg, step: int, total_steps: int) -> float:
    if cfg.lr_schedule == "constant":
        return cfg.lr
    progress = min(1.0, step / max(1, total_steps))
    return cfg.lr * (cfg.lr_final_ratio + (1 - cfg.lr_final_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


@dataclass
class Objective:
    """What a training step minimises: reconstruction (of the photo with its detail band boosted
    by detail_boost; weighted by pixel_weights, + edge_weight × the edges' likelihood) + β·KL (×
    the warm-up factor) + lattice_weight × the error's lattice likelihood + detail_weight × the
    detail amplitude's likelihood, + identity_weight × the identity loss when an identity net is
    given, + perceptual_weight × the perceptual loss when a feature net is given."""
    reconstruction: str
    beta: float
    pixel_weights: torch.Tensor | None = None
    identity_net: torch.nn.Module | None = None
    identity_weight: float = 0.0
    edge_weight: float = 0.0
    feature_net: torch.nn.Module | None = None
    perceptual_weight: float = 0.0
    identity_augment: bool = False
    lattice_weight: float = 0.0
    detail_weight: float = 0.0
    lattice_period: int = 4
    detail_patch: int = 16
    detail_boost: float = 0.0


def make_objective(cfg, device: torch.device) -> Objective:
    identity_net = None
    if cfg.identity_weight:
        identity_net = (load_face_recognition_net() if cfg.identity_net == FACE_API_IDENTITY
                        else load_identity_net(Path(cfg.identity_net or IDENTITY_NET_FILE))).to(device)
    feature_net = None
    if cfg.perceptual_weight:
        feature_net = load_feature_net(cfg.feature_net or None).to(device)
    pixel_weights = face_weights(cfg.image_size, cfg.face_weight).to(device) if cfg.face_weight != 1.0 else None
    return Objective(cfg.reconstruction, cfg.beta, pixel_weights, identity_net, cfg.identity_weight, cfg.edge_weight,
                     feature_net, cfg.perceptual_weight, cfg.identity_augment, cfg.lattice_weight,
                     cfg.detail_weight, cfg.lattice_period, cfg.detail_patch, cfg.detail_boost)


def identity_term(net: torch.nn.Module, photos: torch.Tensor, reconstructions: torch.Tensor) -> torch.Tensor:
    """Per image, the identity loss: with dlib's ResNet (--identity-net face-api,
    train.face_recognition) the distance of the two faces' descriptors (dlib: the same person
    below 0.6); with an IdentityNet, 1 − the cosine of their embeddings."""
    if isinstance(net, FaceRecognitionNet):
        return identity_distance(net, photos, reconstructions)
    with torch.no_grad():
        target = net(photos)
    return identity_loss(net, reconstructions, target)


def identity_views(photos: torch.Tensor, reconstructions: torch.Tensor, blur: tuple = (0.5, 1.5)):
    """The pair as --identity-augment shows it to the identity network: each photo and its
    reconstruction moved by the same random similarity (±3 px, ±4%, ±3°) and the batch blurred by
    one Gaussian of σ drawn from blur. Unaugmented, dlib's network was pleased by a fine dot
    pattern (docs/training.md): a pattern tied to the pixel grid and finer than σ cannot
    lower this loss; the face's shapes still can."""
    moved = random_similarity(torch.cat([photos, reconstructions], 1), shift=3.0, scale=0.04, degrees=3.0)
    sigma = float(torch.empty(()).uniform_(*blur))
    blurred = TF.gaussian_blur(moved, kernel_size=2 * math.ceil(3 * blur[1]) + 1, sigma=sigma)
    return blurred.split(photos.shape[1], dim=1)


def discriminator_start(cfg) -> int:
    return cfg.adversarial_start if cfg.discriminator_start < 0 else cfg.discriminator_start


def make_adversary(cfg, model: FaceVAE, device: torch.device) -> Adversary | None:
    """The PatchGAN discriminator and its optimizer for --adversarial-weight (None without it:
    nothing is built). Its initial weights come from --seed alone, the same in every process,
    and drawing them leaves the run's random stream as it was."""
    if not cfg.adversarial_weight:
        return None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        discriminator = PatchDiscriminator(cfg.discriminator_channels, cfg.discriminator_layers).to(device)
    last_layer = None if cfg.freeze_decoder else model.decoder[-1].weight
    return Adversary(discriminator, make_discriminator_optimizer(discriminator, cfg.discriminator_lr),
                     cfg.adversarial_weight, cfg.adversarial_max_weight, last_layer=last_layer)


def training_step(model, optimizer, batch_uint8: torch.Tensor, objective: Objective, kl_weight: float,
                  dtype: torch.dtype | None = None, scaler: torch.amp.GradScaler | None = None, jitter: bool = False,
                  flip: bool = False, input_noise: float = 0.0, adversary: Adversary | None = None):
    """One optimizer step on an N×H×W×3 uint8 batch. Returns the loss terms (not yet stepped
    if the loss is not finite: the caller decides).

    An N×H×W×4 batch carries in its fourth channel how much of each pixel the photo covers
    (training_images): the pixel loss weighs each pixel by it, so a frame completed beyond a
    photo is no target; it is mirrored and moved with its face.

    dtype: the autocast dtype of the model's forward pass (None: fp32). The loss is computed in
    fp32 from fp32 copies of the outputs, so its sums over 49,152 pixels do not round in bf16.
    input_noise: the encoder sees the face with this much Gaussian noise added and is asked for
    the clean one (the denoising criterion of Im et al., 2017): an encoder that has learnt its
    28,000 training faces by heart is pushed back towards what holds across nearby images.
    adversary (train.discriminator): when its generator term is on, the VAE also minimises
    weight × λ × the discriminator's hinge loss of the reconstructions, λ VQGAN's adaptive weight
    on the decoder's last layer; then the discriminator takes its own step on the batch's photos
    and (detached) reconstructions. terms.total stays the VAE's objective without it; the step's
    adversarial figures are in adversary.last."""
    x = uint8_to_tensor(batch_uint8)
    if flip:
        x = random_mirror(x)
    if jitter:
        x = random_similarity(x)
    pixel_weights = objective.pixel_weights
    if x.shape[1] == 4:
        x, coverage = x[:, :3], x[:, 3:]
        pixel_weights = coverage if pixel_weights is None else pixel_weights * coverage
    seen = x + input_noise * torch.randn_like(x) if input_noise else x
    with torch.autocast(x.device.type, dtype=dtype, enabled=dtype is not None):
        logits, mu, logvar = model(seen)
    target = boost_detail(x, objective.detail_boost) if objective.detail_boost else x
    terms = vae_loss(logits.float(), target, mu.float(), logvar.float(), objective.reconstruction, objective.beta,
                     kl_weight, pixel_weights, objective.edge_weight)
    reconstructions = torch.sigmoid(logits.float())  # what the other terms judge
    if objective.identity_net is not None:
        with torch.autocast(x.device.type, dtype=dtype, enabled=dtype is not None):
            pair = x, reconstructions
            if objective.identity_augment:
                pair = identity_views(*pair)
            terms.identity = identity_term(objective.identity_net, *pair).float().mean()
        terms.total = terms.total + objective.identity_weight * terms.identity
    if objective.feature_net is not None:
        with torch.autocast(x.device.type, dtype=dtype, enabled=dtype is not None):
            with torch.no_grad():
                target = objective.feature_net(x)
            terms.perceptual = perceptual_loss(objective.feature_net, reconstructions, target).mean()
        terms.total = terms.total + objective.perceptual_weight * terms.perceptual
    loss = terms.total
    if adversary is not None:
        adversary.last = {}
        if adversary.generator_on and torch.isfinite(terms.total):
            adversary.discriminator.requires_grad_(False)  # its weights learn in its own step only
            with torch.autocast(x.device.type, dtype=dtype, enabled=dtype is not None):
                scores = adversary.discriminator(reconstructions).float()
            adversarial = generator_loss(scores)
            last_layer = logits if adversary.last_layer is None else adversary.last_layer
            weight = adaptive_weight(terms.total, adversarial, last_layer, adversary.max_weight)
            loss = terms.total + adversary.weight * weight * adversarial
            adversary.last.update(adversarial=adversarial.detach(), adversarial_lambda=weight)
    # after λ: a heavier lattice or detail term must not make the adversarial one heavier too
    for name, weight, term in (("lattice", objective.lattice_weight, partial(lattice_loss, period=objective.lattice_period)),
                               ("detail", objective.detail_weight, partial(detail_loss, patch=objective.detail_patch))):
        if weight:
            value = term(reconstructions, x).mean()
            setattr(terms, name, value)
            terms.total = terms.total + weight * value
            loss = loss + weight * value
    if not torch.isfinite(loss):
        terms.total = loss  # the caller sees it and stops
        return terms
    optimizer.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
        optimizer.step()
    else:  # fp16 on CUDA: scale the loss so small gradients do not underflow
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    if adversary is not None:
        adversary.last["discriminator"] = discriminator_step(adversary, x, reconstructions, dtype)
    return terms


def training_images(main: CachedImages, diverse: CachedImages | None = None, repeat: int = 1) -> torch.Tensor:
    """The training faces in memory (1.4 GB for CelebA's 28,000 at 128²): N×H×W×3 uint8, or with
    diverse (aligned) faces N×H×W×4, the fourth channel how much of each pixel the photo covers
    (255 for every pixel of main's), the diverse faces repeated `repeat` times."""
    if diverse is None:
        return torch.from_numpy(np.array(main.array))
    full = np.full(main.array.shape[:3] + (1,), 255, np.uint8)
    parts = [np.concatenate([main.array, full], 3)]
    parts += [np.concatenate([diverse.array, diverse.coverage[..., None]], 3)] * repeat
    return torch.from_numpy(np.concatenate(parts))


def random_mirror(x: torch.Tensor) -> torch.Tensor:
    """Each image of N×C×H×W mirrored left-right with probability 1/2. CelebA's crops are aligned
    by the eyes, so a mirrored face is as likely a face: this doubles the 28,000 training faces
    without resampling a pixel."""
    mirrored = torch.rand(x.shape[0], device=x.device) < 0.5
    return torch.where(mirrored[:, None, None, None], x.flip(3), x)


def random_similarity(x: torch.Tensor, shift: float = 4.0, scale: float = 0.05, degrees: float = 5.0) -> torch.Tensor:
    """Each image of N×C×H×W moved by its own random similarity transform: a shift of up to
    ±shift pixels, a scale of 1±scale and a roll of up to ±degrees, uniformly; edges replicate.
    Selfies are never aligned exactly; this teaches the model to forgive what alignment leaves."""
    n, _, height, width = x.shape
    angle = torch.empty(n).uniform_(-degrees, degrees).deg2rad()
    zoom = torch.empty(n).uniform_(1 - scale, 1 + scale)
    offset = torch.empty(n, 2).uniform_(-shift, shift) * 2 / torch.tensor([width, height])
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos, -sin, offset[:, 0]], 1), torch.stack([sin, cos, offset[:, 1]], 1)], 1)
    grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def main(argv=None) -> FaceVAE:
    cfg = parse_config(argv)
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    device = pick_device(cfg.device)
    if distributed:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    torch.set_num_threads(cfg.threads or max(1, (os.cpu_count() or 1) // world))
    torch.manual_seed(cfg.seed + rank)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True)
    out = Path(cfg.out)
    is_main = rank == 0

    splits = find_splits(cfg.data, seed=cfg.seed)
    if is_main:  # one process decodes, the others wait and reuse its cache
        train_set = cache_images(splits["train"], cfg.image_size, cfg.cache_dir or None)
    if distributed:
        dist.barrier()
    if not is_main:
        train_set = cache_images(splits["train"], cfg.image_size, cfg.cache_dir or None)
    val_set = cache_images(splits["val"], cfg.image_size, cfg.cache_dir or None) if is_main and splits["val"] else None
    if len(train_set) < cfg.batch_size * world:
        sys.exit(f"only {len(train_set)} usable training images; need at least batch_size × processes = {cfg.batch_size * world}")
    diverse = load_part(cfg.diverse_data, "train", cfg.image_size, cfg.cache_dir or None).images if cfg.diverse_data else None
    if is_main and diverse is not None:
        print(f"{len(train_set)} faces from {cfg.data} and {len(diverse)} from {cfg.diverse_data}, "
              f"each of those seen {cfg.diverse_repeat}× per epoch", flush=True)
    train_images = training_images(train_set, diverse, cfg.diverse_repeat)

    model = FaceVAE(image_size=cfg.image_size, latent_dim=cfg.latent_dim, dropout=cfg.dropout,
                    negative_slope=cfg.negative_slope).to(device)
    if cfg.init_from:
        init_weights(model, cfg.init_from)
    checkpoint_path = out / "checkpoint.pt"
    state = None
    if cfg.resume and checkpoint_path.is_file():
        state = torch.load(checkpoint_path, map_location=device, weights_only=True)
        cfg.freeze_decoder = resumed_freeze_decoder(cfg, state["config"], argv)
    if cfg.freeze_decoder:
        freeze_decoder(model)
    optimizer = make_optimizer(model, cfg.lr)
    sampler = DistributedSampler(range(len(train_images)), num_replicas=world, rank=rank, shuffle=True,
                                 seed=cfg.seed, drop_last=True)
    steps_per_epoch = len(sampler) // cfg.batch_size
    total_steps = cfg.epochs * steps_per_epoch
    if cfg.max_steps:
        total_steps = min(total_steps, cfg.max_steps)

    step, trained_seconds = 0, 0.0
    objective = make_objective(cfg, device)
    adversary = make_adversary(cfg, model, device)
    dtype = autocast_dtype(cfg.precision, device)
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if adversary is not None and "discriminator" in state:  # else it starts afresh, here
            adversary.discriminator.load_state_dict(state["discriminator"])
            adversary.optimizer.load_state_dict(state["discriminator_optimizer"])
        step, trained_seconds = state["step"], state["trained_seconds"]
        torch.set_rng_state(state["rng"][rank] if rank < len(state["rng"]) else torch.get_rng_state())
        if not option_given(argv, "precision"):  # the run goes on in the precision it started in
            dtype = autocast_dtype(state["config"].get("resolved_precision", "fp32"), device)
        if is_main:
            print(f"resumed from {checkpoint_path} at step {step}")
    elif cfg.resume and is_main:
        print(f"no checkpoint at {checkpoint_path}; starting from scratch")
    cfg.resolved_precision = precision_name(dtype)
    scaler = torch.amp.GradScaler(device.type) if dtype == torch.float16 else None
    if is_main:
        out.mkdir(parents=True, exist_ok=True)
        print(f"precision: {cfg.resolved_precision} (--precision {cfg.precision}; {device.type}"
              f"{', bf16 units' if device.type == 'cpu' and cpu_has_bf16_units() else ''})", flush=True)
    ddp_model = DistributedDataParallel(model) if distributed else model

    def save_checkpoint():
        rng = [torch.get_rng_state()]
        if distributed:
            rng = [None] * world
            dist.all_gather_object(rng, torch.get_rng_state())
        if is_main:
            state = dict(model=model.state_dict(), optimizer=optimizer.state_dict(), step=step,  # all fp32
                         trained_seconds=trained_seconds, rng=rng, config=vars(cfg))
            if adversary is not None:
                state.update(discriminator=adversary.discriminator.state_dict(),
                             discriminator_optimizer=adversary.optimizer.state_dict())
            tmp = checkpoint_path.with_suffix(".tmp")
            torch.save(state, tmp)
            os.replace(tmp, checkpoint_path)  # atomic: a kill mid-write leaves the last checkpoint intact

    started = time.perf_counter() - trained_seconds
    while step < total_steps:
        epoch, batch_in_epoch = divmod(step, steps_per_epoch)
        sampler.set_epoch(epoch)
        order = torch.tensor(list(sampler))[: steps_per_epoch * cfg.batch_size].view(steps_per_epoch, cfg.batch_size)
        train_mode(model, cfg.freeze_decoder)
        sums, counts, seen, rate, epoch_start = torch.zeros(10), torch.zeros(10), 0, 0.0, time.perf_counter()
        bar = tqdm(range(batch_in_epoch, steps_per_epoch), desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not is_main,
                   initial=batch_in_epoch, total=steps_per_epoch, mininterval=1 if sys.stderr.isatty() else 60)
        for batch_index in bar:
            batch = train_images[order[batch_index].sort().values].to(device, non_blocking=True)
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(cfg, step, total_steps)
            adversarial = None
            if adversary is not None and step >= discriminator_start(cfg):
                adversarial, adversary.generator_on = adversary, step >= cfg.adversarial_start
            terms = training_step(ddp_model, optimizer, batch, objective, kl_warmup(step, cfg.kl_warmup_steps), dtype,
                                  scaler, cfg.jitter, cfg.flip, cfg.input_noise, adversarial)
            nan = torch.tensor(float("nan"))
            figures = {} if adversarial is None else adversary.last
            if not torch.isfinite(terms.total) or not torch.isfinite(figures.get("discriminator", torch.zeros(()))):
                what, value = ("loss", terms.total) if not torch.isfinite(terms.total) else \
                    ("the discriminator's loss", figures["discriminator"])
                sys.exit(f"{what} became {value.item()} at step {step} (epoch {epoch + 1}); stopping. "
                         f"The last good checkpoint, {checkpoint_path}, is untouched: try a lower --lr.")
            step += 1
            values = torch.stack([terms.total.detach(), terms.reconstruction.detach(), terms.kl.detach(),
                                  (nan if terms.identity is None else terms.identity).detach(),
                                  (nan if terms.perceptual is None else terms.perceptual).detach(),
                                  *(figures.get(name, nan).detach().float().cpu()
                                    for name in ("adversarial", "adversarial_lambda", "discriminator")),
                                  *((nan if value is None else value).detach().cpu()
                                    for value in (terms.lattice, terms.detail))]).cpu()
            sums += values.nan_to_num(0.0)  # a mean over the steps that had the term
            counts += ~values.isnan()
            seen += 1
            rate = seen * cfg.batch_size * world / (time.perf_counter() - epoch_start)
            extra = {name: f"{figures[key].item():.3g}" for name, key in
                     (("adv", "adversarial"), ("lam", "adversarial_lambda"), ("d", "discriminator")) if key in figures}
            bar.set_postfix(loss=f"{terms.total.item():.0f}", rec=f"{terms.reconstruction.item():.0f}",
                            kl=f"{terms.kl.item():.1f}", **extra, img_s=f"{rate:.0f}", refresh=False)
            trained_seconds = time.perf_counter() - started
            out_of_time = past_time_limit(cfg, trained_seconds, distributed, device)
            if step % cfg.checkpoint_every == 0 or step == total_steps or out_of_time:
                save_checkpoint()
            if step == total_steps or out_of_time:
                break
        bar.close()
        epoch_done = step % steps_per_epoch == 0 or step == total_steps or out_of_time
        if epoch_done:
            if step % cfg.checkpoint_every:
                save_checkpoint()
            if is_main:
                train_means = (sums / counts).tolist()  # NaN: a term this epoch never had
                report_epoch(model, val_set, cfg, out, epoch + 1, step, train_means, rate, trained_seconds, device)
        if out_of_time:
            break

    if is_main:
        if cfg.precise_bn:
            precise_batchnorm(model, train_images[..., :3], device, model.encoder if cfg.freeze_decoder else model)
        model.eval()
        model.save_pretrained(out / "model")
        print(f"saved the model to {out / 'model'} after {step} steps ({trained_seconds / 60:.1f} min)")
        if cfg.push_to_hub:
            push(model, cfg.push_to_hub)
    if distributed:
        dist.barrier()
        dist.destroy_process_group()
    return model


@torch.no_grad()
def precise_batchnorm(model: FaceVAE, images: torch.Tensor, device: torch.device, part: torch.nn.Module | None = None,
                      batch_size: int = 250) -> None:
    """Each BatchNorm's running mean and variance, an exponential average over the last few
    dozen batches of still-changing weights (and of mirrored, jittered, dropped-out activations),
    replaced by the exact average over the training faces (N×H×W×3 uint8) as the model is used:
    final weights, no dropout, the decoder fed posterior means (PreciseBN, Wu & Johnson 2021).
    Cheap, one forward pass over the data; +0.017 dB val PSNR for the shipped model.
    part: only its BatchNorms (default: the whole model's)."""
    searched = model if part is None else part
    norms = [m for m in searched.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momentum = {norm: norm.momentum for norm in norms}
    model.eval()  # dropout off...
    for norm in norms:  # ...and only the BatchNorms gathering statistics
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average over every batch
        norm.train()
    for start in range(0, len(images), batch_size):
        model.reconstruct(uint8_to_tensor(images[start:start + batch_size].to(device)))
    for norm in norms:
        norm.momentum = momentum[norm]
        norm.eval()


def option_given(argv, name: str) -> bool:
    """--name was on the command line (--precision given on resume overrides the checkpoint's)."""
    args = sys.argv[1:] if argv is None else argv
    return any(arg in (f"--{name}", f"--no-{name}") or arg.startswith(f"--{name}=") for arg in args)


def resumed_freeze_decoder(cfg, started: dict, argv) -> bool:
    """A resumed run keeps the decoder frozen or learning as it started: its optimizer's state
    holds moments for just those parameters. Asked on the command line for the other, it stops
    with a message and leaves the checkpoint as it is."""
    frozen = started.get("freeze_decoder", False)
    if option_given(argv, "freeze-decoder") and cfg.freeze_decoder != frozen:
        sys.exit(f"--resume: {cfg.out} started {'with' if frozen else 'without'} --freeze-decoder and goes on so; "
                 "drop the flag, or start a new run (another --out) with --init-from its model")
    return frozen


def init_weights(model: FaceVAE, source: str) -> None:
    """Copy the weights of a saved FaceVAE into model (fine-tuning). Dropout has no weights, so
    the saved model's dropout rate need not match this run's."""
    try:
        model.load_state_dict(FaceVAE.from_pretrained(source).state_dict())
    except (OSError, RuntimeError, ValueError) as error:
        sys.exit(f"--init-from {source}: cannot use these weights ({error})")


def past_time_limit(cfg, trained_seconds: float, distributed: bool, device: torch.device) -> bool:
    """--max-minutes reached; under DDP all processes agree (rank 0's clock decides), so that
    none stops while the others wait for it in the next gradient all-reduce."""
    if not cfg.max_minutes:
        return False
    flag = torch.tensor(float(trained_seconds > cfg.max_minutes * 60), device=device)
    if distributed:
        dist.broadcast(flag, src=0)
    return bool(flag.item())


@torch.no_grad()
def evaluate(model, images, cfg, device, batch_size: int = 250) -> dict[str, float]:
    """Mean per-image loss terms and MSE/PSNR/SSIM of posterior-mean reconstructions."""
    model.eval()
    totals = dict(val_loss=0.0, val_reconstruction=0.0, val_kl=0.0, val_mse=0.0, val_psnr=0.0, val_ssim=0.0)
    for start in range(0, len(images), batch_size):
        x = images_to_tensor(images[start:start + batch_size]).to(device)
        logits, mu, logvar = model(x)
        terms = vae_loss(logits, x, mu, logvar, cfg.reconstruction, cfg.beta)
        y = torch.sigmoid(logits)
        n = len(x)
        for name, value in [("val_loss", terms.total * n), ("val_reconstruction", terms.reconstruction * n),
                            ("val_kl", terms.kl * n), ("val_mse", mse(x, y).sum()), ("val_psnr", psnr(x, y).sum()),
                            ("val_ssim", ssim(x, y).sum())]:
            totals[name] += value.item()
    return {name: value / len(images) for name, value in totals.items()}


def report_epoch(model, val_set, cfg, out: Path, epoch: int, step: int, train_means, rate, seconds, device) -> None:
    row = dict(epoch=epoch, step=step, train_loss=train_means[0], train_reconstruction=train_means[1],
               train_kl=train_means[2], images_per_second=rate, minutes=seconds / 60)
    for index, name in ((3, "train_identity"), (4, "train_perceptual"), (5, "train_adversarial"),
                        (6, "train_adversarial_lambda"), (7, "train_discriminator"), (8, "train_lattice"),
                        (9, "train_detail")):
        if not math.isnan(train_means[index]):
            row[name] = train_means[index]
    if val_set is not None:
        images = val_set.array[: cfg.val_images or None]
        row.update(evaluate(model, images, cfg, device))
        x = images_to_tensor(val_set.array[:8]).to(device)
        to_grid(torch.cat([x, model.reconstruct(x)]), columns=8).save(out / f"reconstructions_{epoch:03d}.png")
    model.eval()
    samples = model.sample(32, generator=torch.Generator().manual_seed(0))
    to_grid(samples.cpu(), columns=8).save(out / f"samples_{epoch:03d}.png")
    log_path = out / "log.csv"
    new = not log_path.is_file()
    with log_path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=LOG_FIELDS)
        if new:
            writer.writeheader()
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    plot_losses(log_path, out / "loss.png")
    print("epoch " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()), flush=True)


def plot_losses(log_path: Path, png_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(csv.DictReader(log_path.open()))
    epochs = [int(r["epoch"]) for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    for key in ("train_loss", "val_loss"):
        values = [float(r[key]) if r.get(key) else math.nan for r in rows]
        ax.plot(epochs, values, marker="o", label=key.replace("_", " "))
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss per image (nats)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)


def push(model: FaceVAE, repo_id: str) -> None:
    from facevae.loading import push_model

    try:
        url = push_model(model, repo_id)
        print(f"pushed to {url}")
    except Exception as error:  # offline, no token, no permission: say so, keep the saved model
        sys.exit(f"could not push to the Hub repo {repo_id}: {error}. The model is saved in the run folder's model/; "
                 f"push it later with facevae.loading.push_model.")


if __name__ == "__main__":
    main()
