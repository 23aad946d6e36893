import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from facevae import load_model
from in_process import run_module

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--batch-size", "8", "--threads", "1"]


def run_training(*args, check=True) -> subprocess.CompletedProcess:
    """`python -m train.train` with TINY settings and these arguments, run in this process (see in_process)."""
    return run_module("train.train", *TINY, *args, check=check)


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "model" / "model.safetensors"))


def test_a_run_writes_logs_grids_checkpoint_and_model(celeba_dir, tmp_path):
    out = tmp_path / "run"
    result = run_training("--data", celeba_dir, "--out", out, "--epochs", 2)
    assert "saved the model" in result.stdout
    for name in ("checkpoint.pt", "log.csv", "loss.png", "reconstructions_002.png", "samples_002.png",
                 "model/config.json", "model/model.safetensors"):
        assert (out / name).is_file(), name
    rows = list(csv.DictReader((out / "log.csv").open()))
    assert [int(r["step"]) for r in rows] == [5, 10]  # 40 images / batch 8 = 5 steps an epoch
    assert all(0 < float(r["val_ssim"]) <= 1 and float(r["val_psnr"]) > 5 for r in rows)
    model = load_model(out / "model")
    assert not model.training and model.latent_dim == 200


def test_killed_mid_epoch_and_resumed_matches_an_uninterrupted_run(celeba_dir, tmp_path):
    """Slow by nature: the run to kill is a process of its own (SIGKILL mid-epoch)."""
    common = ["--data", celeba_dir, "--epochs", 3, "--seed", 1, "--val-images", 2]
    straight = tmp_path / "straight"
    run_training(*common, "--out", straight)

    killed = tmp_path / "killed"
    cmd = [sys.executable, "-m", "train.train", *TINY, *map(str, common), "--out", str(killed), "--checkpoint-every", "2"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (killed / "checkpoint.pt").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    stopped_at = torch.load(killed / "checkpoint.pt", weights_only=True)["step"]
    assert 0 < stopped_at < 15 and stopped_at % 5 != 0  # mid-epoch

    resumed = run_training(*common, "--out", killed, "--checkpoint-every", 2, "--resume")
    assert f"resumed from {killed / 'checkpoint.pt'} at step {stopped_at}" in resumed.stdout
    assert torch.load(killed / "checkpoint.pt", weights_only=True)["step"] == 15
    a, b = weights(straight), weights(killed)
    assert a.keys() == b.keys()
    assert max((a[k].float() - b[k].float()).abs().max().item() for k in a) < 1e-4


def test_a_diverging_loss_stops_with_a_message_and_keeps_the_checkpoint(celeba_dir, tmp_path):
    out = tmp_path / "nan"
    # an absurd learning rate: the first step is finite, the weights it leaves overflow the next
    result = run_training("--data", celeba_dir, "--out", out, "--epochs", 3, "--lr", "1e30", "--checkpoint-every", 1,
                          check=False)
    assert result.returncode != 0
    assert "loss became" in result.stderr and "untouched" in result.stderr
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert 1 <= state["step"] < 15
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    assert not (out / "model").exists()


def test_init_from_starts_with_saved_weights_and_a_bad_source_gets_a_message(celeba_dir, tmp_path):
    bundled = ROOT / "assets" / "facevae-celeba-128"
    out = tmp_path / "finetune"
    # learning rate 0: the weights stay exactly those loaded (BatchNorm's running statistics move)
    run_training("--data", celeba_dir, "--out", out, "--epochs", 1, "--lr", 0, "--dropout", 0, "--init-from", bundled)
    start, after = load_file(str(bundled / "model.safetensors")), weights(out)
    learned = [name for name in start if not name.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    assert len(learned) > 20 and all(torch.equal(start[name], after[name]) for name in learned)
    assert load_model(out / "model").encoder[0][3].p == 0
    result = run_training("--data", celeba_dir, "--out", tmp_path / "bad", "--init-from", tmp_path / "missing", check=False)
    assert result.returncode != 0 and "--init-from" in result.stderr


def test_a_frozen_decoder_keeps_its_weights_and_statistics_while_the_encoder_learns(celeba_dir, tmp_path):
    bundled = ROOT / "assets" / "facevae-celeba-128"
    out = tmp_path / "encoder_only"
    run_training("--data", celeba_dir, "--out", out, "--epochs", 1, "--lr", "1e-3", "--init-from", bundled,
                 "--freeze-decoder", "--face-weight", 16)
    start, after = load_file(str(bundled / "model.safetensors")), weights(out)
    decoder = [name for name in start if name.startswith(("decoder.", "from_latent."))]
    encoder = [name for name in start if name.startswith(("encoder.", "to_mu.", "to_logvar."))]
    assert len(decoder) > 10 and all(torch.equal(start[name], after[name]) for name in decoder)
    assert all(not torch.equal(start[name], after[name]) for name in encoder if "num_batches" not in name)


def test_a_resumed_run_keeps_its_decoder_frozen_and_refuses_to_thaw_it(celeba_dir, tmp_path):
    bundled = ROOT / "assets" / "facevae-celeba-128"
    out = tmp_path / "encoder_only"
    common = ["--data", celeba_dir, "--out", out, "--epochs", 2, "--val-images", 2, "--lr", "1e-3"]
    run_training(*common, "--init-from", bundled, "--freeze-decoder", "--max-steps", 3)
    checkpoint = (out / "checkpoint.pt").read_bytes()
    thawed = run_training(*common, "--resume", "--no-freeze-decoder", check=False)
    assert thawed.returncode != 0 and "--freeze-decoder" in thawed.stderr
    assert (out / "checkpoint.pt").read_bytes() == checkpoint
    resumed = run_training(*common, "--resume")  # the flag left out: the run goes on as it started
    assert "resumed from" in resumed.stdout
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["config"]["freeze_decoder"] and state["step"] > 3
    start, after = load_file(str(bundled / "model.safetensors")), weights(out)
    assert all(torch.equal(start[name], after[name]) for name in start if name.startswith(("decoder.", "from_latent.")))


def test_a_plain_image_folder_trains_and_bad_files_do_not_stop_it(faces, tmp_path):
    root = tmp_path / "folder"
    root.mkdir()
    for i, face in enumerate(faces):
        face.save(root / f"{i}.png")
    (root / "corrupt.jpg").write_bytes(b"garbage")
    result = run_training("--data", root, "--out", tmp_path / "run", "--epochs", 1)
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()
    assert "skipped 1 of" in result.stderr


def test_torchrun_two_cpu_processes_keep_identical_weights(celeba_dir, tmp_path):
    """Slow by nature: torchrun starts two worker processes."""
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(ROOT / "tests" / "ddp_worker.py"), "--data", str(celeba_dir), "--out", str(out), "--epochs", "1",
           *TINY, "--batch-size", "4"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    rank0, rank1 = load_file(str(out / "rank0.safetensors")), load_file(str(out / "rank1.safetensors"))
    for name in rank0:
        if "running" in name or "num_batches" in name:
            continue  # BatchNorm statistics are per process, as in any DDP without SyncBatchNorm
        assert torch.equal(rank0[name], rank1[name]), name
    # 40 images, 2 processes × batch 4: 5 steps each
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == 5
    start = load_file(str(out / "model" / "model.safetensors"))
    assert torch.equal(start["to_mu.weight"], rank0["to_mu.weight"])


def test_bf16_trains_and_saves_fp32_weights_and_checkpoints(celeba_dir, tmp_path):
    out = tmp_path / "bf16"
    result = run_training("--data", celeba_dir, "--out", out, "--epochs", 1, "--precision", "bf16", "--val-images", 2)
    assert "precision: bf16" in result.stdout
    saved = weights(out)
    assert saved["to_mu.weight"].dtype == torch.float32
    assert all(v.dtype in (torch.float32, torch.int64) for v in saved.values())
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert all(v.dtype in (torch.float32, torch.int64) for v in state["model"].values())
    moments = [v for s in state["optimizer"]["state"].values() for k, v in s.items() if k != "step"]
    assert moments and all(v.dtype == torch.float32 for v in moments)


def test_auto_precision_follows_the_cpus_bf16_units(monkeypatch):
    from train import train

    without = "processor\t: 0\nflags\t\t: fpu sse sse2 avx avx2 avx512f avx512bw\n"
    with_amx = "processor\t: 0\nflags\t\t: fpu sse avx2 avx512f amx_tile amx_bf16\n"
    assert not train.cpu_has_bf16_units(without)
    assert train.cpu_has_bf16_units(with_amx)
    assert train.cpu_has_bf16_units("flags\t: sse avx512_bf16\n")
    cpu = torch.device("cpu")
    monkeypatch.setattr(train, "cpu_has_bf16_units", lambda: False)
    assert train.autocast_dtype("auto", cpu) is None
    assert train.autocast_dtype("bf16", cpu) == torch.bfloat16  # asked for explicitly: honoured
    monkeypatch.setattr(train, "cpu_has_bf16_units", lambda: True)
    assert train.autocast_dtype("auto", cpu) == torch.bfloat16
    assert train.autocast_dtype("fp32", cpu) is None


def test_resume_keeps_the_precision_the_run_started_in(celeba_dir, tmp_path):
    # Both ways round, so that the test means something whether this CPU's auto is bf16 or fp32.
    for started_in in ("bf16", "fp32"):
        out = tmp_path / started_in
        common = ["--data", celeba_dir, "--out", out, "--epochs", 1, "--val-images", 2]
        run_training(*common, "--precision", started_in, "--max-steps", 3)
        resumed = run_training(*common, "--resume")
        assert "resumed from" in resumed.stdout and f"precision: {started_in}" in resumed.stdout
        assert torch.load(out / "checkpoint.pt", weights_only=True)["config"]["resolved_precision"] == started_in


def test_benchmark_runs_with_tiny_settings():
    """Slow by nature: it builds 7 models and runs 4 steps of each (3 of them its warm-up, which it
    has no option for), bf16 emulated on CPUs without bf16 units."""
    result = run_module("train.studies.benchmark", "--steps", "1", "--rounds", "1", "--batch-size", "2")
    lines = result.stdout.splitlines()
    assert lines[0].startswith("CPU: ") and "bf16 units" in lines[0]
    rows = [line.strip() for line in lines if line.rstrip().endswith("×")]
    assert rows[0].startswith("plain PyTorch loop") and rows[0].endswith("1.00×")
    assert sum(row.startswith("project step") for row in rows) == 1
    assert any("bf16" in row for row in rows) and len(rows) >= 6


def test_jitter_moves_each_face_by_a_small_similarity_and_trains():
    from train.train import random_similarity

    torch.manual_seed(0)
    x = torch.zeros(64, 3, 128, 128)
    x[:, :, 60:68, 60:68] = 1.0  # a bright square in the middle
    assert torch.allclose(random_similarity(x, shift=0, scale=0, degrees=0), x, atol=1e-5)
    moved = random_similarity(x)
    ys, xs = torch.meshgrid(torch.arange(128.0), torch.arange(128.0), indexing="ij")
    weight = moved[:, 0].flatten(1)
    centre_x = (weight * xs.flatten()).sum(1) / weight.sum(1)
    shift = centre_x - 63.5
    assert shift.abs().max() <= 4.0 + 1.0 and shift.std() > 1.0  # up to ±4 px, and different per face
    assert (moved.flatten(1).sum(1) / x.flatten(1).sum(1) - 1).abs().max() < 0.15  # scale within ±5%: area ±10%


def test_identity_views_move_photo_and_reconstruction_alike_and_blur_a_pixel_pattern_away():
    from train.train import identity_views

    torch.manual_seed(0)
    ys, xs = torch.meshgrid(torch.arange(128.0), torch.arange(128.0), indexing="ij")
    photos = ((torch.sin(xs / 7) * torch.cos(ys / 11) + 1) / 2).expand(4, 3, 128, 128).contiguous()
    checkerboard = 0.1 * (-1) ** (xs + ys)  # a pattern on the pixel grid, the kind the unaugmented dlib loss drew
    reconstructions = (photos + checkerboard).requires_grad_()
    seen_photos, seen_reconstructions = identity_views(photos, reconstructions, blur=(1.0, 1.0))
    assert seen_photos.shape == photos.shape
    # the same similarity for both faces: what still differs is what the blur let through of the
    # pattern (away from the edges, which grid_sample replicates)
    assert (seen_reconstructions - seen_photos)[..., 8:-8, 8:-8].abs().max() < 0.1 * 0.05
    moved = (seen_photos - photos).abs().flatten(1).mean(1)
    assert moved.min() > 1e-3 and moved.std() > 0  # each pair moved, by its own transform
    seen_reconstructions.sum().backward()
    assert reconstructions.grad.abs().sum() > 0


def test_mirroring_flips_about_half_the_faces_and_nothing_else():
    from train.train import random_mirror

    torch.manual_seed(0)
    x = torch.rand(200, 3, 8, 8)
    mirrored = random_mirror(x)
    kept = (mirrored == x).flatten(1).all(1)
    flipped = (mirrored == x.flip(3)).flatten(1).all(1)
    assert (kept ^ flipped).all()  # every face is either as it was or exactly its mirror image
    assert 70 < int(flipped.sum()) < 130


def test_input_noise_reaches_the_encoder_while_the_loss_asks_for_the_clean_face():
    from facevae import FaceVAE
    from facevae.losses import vae_loss
    from facevae.preprocess import uint8_to_tensor
    from train.train import Objective, training_step

    class Recording(torch.nn.Module):  # the model, remembering what it was shown and what it drew
        def __init__(self):
            super().__init__()
            self.vae = FaceVAE(dropout=0)

        def forward(self, x):
            self.seen = x.detach().clone()
            self.out = self.vae(x)
            return self.out

    torch.manual_seed(0)
    faces = torch.randint(0, 256, (4, 128, 128, 3), dtype=torch.uint8)
    clean = uint8_to_tensor(faces)
    model = Recording()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    objective = Objective("gaussian", 0.4, None, None, 0.0, 0.0)
    terms = training_step(model, optimizer, faces, objective, 1.0, input_noise=0.04)
    assert abs(float((model.seen - clean).std()) - 0.04) < 0.002  # the encoder saw the noisy face
    logits, mu, logvar = (t.detach() for t in model.out)
    asked = vae_loss(logits, clean, mu, logvar, "gaussian", 0.4)
    assert torch.allclose(terms.reconstruction.detach(), asked.reconstruction, rtol=1e-5)  # scored on the clean one
    training_step(model, optimizer, faces, objective, 1.0)
    assert torch.equal(model.seen, clean)  # and without the option nothing is added


def test_training_with_jitter_and_mirroring_runs(celeba_dir, tmp_path):
    result = run_training("--data", celeba_dir, "--out", tmp_path / "jitter", "--max-steps", 3, "--jitter", "--flip",
                          "--val-images", 2)
    assert "saved the model" in result.stdout


def test_precise_batchnorm_averages_the_data_exactly_without_dropout():
    from facevae import FaceVAE
    from facevae.preprocess import uint8_to_tensor
    from train.train import precise_batchnorm

    torch.manual_seed(0)
    images = torch.randint(0, 256, (40, 32, 32, 3), dtype=torch.uint8)
    with_dropout, without = FaceVAE(image_size=32, latent_dim=8, dropout=0.5), FaceVAE(image_size=32, latent_dim=8, dropout=0.0)
    without.load_state_dict(with_dropout.state_dict())
    precise_batchnorm(with_dropout, images, torch.device("cpu"), batch_size=10)
    first_norm = next(m for m in with_dropout.modules() if isinstance(m, torch.nn.BatchNorm2d))
    # the first BatchNorm sees the first convolution's output: its mean over all 40 faces
    conv_out = with_dropout.encoder[0][0](uint8_to_tensor(images))
    assert torch.allclose(first_norm.running_mean, conv_out.mean((0, 2, 3)), atol=1e-5)
    assert first_norm.momentum == 0.1 and not with_dropout.training
    precise_batchnorm(without, images, torch.device("cpu"), batch_size=10)
    for a, b in zip(with_dropout.state_dict().values(), without.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-5)  # dropout played no part


ADVERSARIAL = ["--adversarial-weight", "0.5", "--discriminator-channels", "8"]


@pytest.mark.parametrize("term", ["", "lattice", "detail"])
def test_adversarial_training_runs_two_steps_and_resumes_exactly(celeba_dir, tmp_path, term):
    # the discriminator learns alone at step 1, the adversarial term reaches the VAE from step 2
    common = ["--data", celeba_dir, "--epochs", 2, "--seed", 1, "--val-images", 2, "--lr", "1e-3", *ADVERSARIAL,
              "--discriminator-start", 1, "--adversarial-start", 2, *([f"--{term}-weight", "1"] if term else [])]
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    run_training(*common, "--out", straight, "--max-steps", 4)
    first = run_training(*common, "--out", stopped, "--max-steps", 2)
    assert "saved the model" in first.stdout
    row = next(csv.DictReader((stopped / "log.csv").open()))
    assert float(row["train_discriminator"]) > 0 and row["train_adversarial"] == ""  # only the discriminator yet
    resumed = run_training(*common, "--out", stopped, "--max-steps", 4, "--resume")
    assert "resumed from" in resumed.stdout
    rows = list(csv.DictReader((stopped / "log.csv").open()))
    assert float(rows[-1]["train_adversarial_lambda"]) > 0 and rows[-1]["train_adversarial"] != ""
    for name in ("lattice", "detail"):
        assert all((row[f"train_{name}"] != "") == (name == term) for row in rows)
    a, b = weights(straight), weights(stopped)
    assert a.keys() == b.keys()
    assert max((a[k].float() - b[k].float()).abs().max().item() for k in a) < 1e-4
    sa, sb = (torch.load(run / "checkpoint.pt", weights_only=True) for run in (straight, stopped))
    assert sa["step"] == sb["step"] == 4 and sa["discriminator"].keys() == sb["discriminator"].keys()
    assert max((sa["discriminator"][k] - sb["discriminator"][k]).abs().max().item() for k in sa["discriminator"]) < 1e-4
    moments = [(s["exp_avg"], sb["discriminator_optimizer"]["state"][i]["exp_avg"])
               for i, s in sa["discriminator_optimizer"]["state"].items()]
    assert moments and all(torch.allclose(x, y, atol=1e-6) for x, y in moments)


def test_without_the_flag_no_discriminator_is_built_or_saved(celeba_dir, tmp_path):
    from facevae import FaceVAE
    from train.train import make_adversary, parse_config

    assert make_adversary(parse_config(["--data", "x"]), FaceVAE(), torch.device("cpu")) is None
    run_training("--data", celeba_dir, "--out", tmp_path / "plain", "--max-steps", 1, "--val-images", 2)
    assert "discriminator" not in torch.load(tmp_path / "plain" / "checkpoint.pt", weights_only=True)


def tiny_adversary(model, lr=1e-3, last_layer=None, generator_on=True):
    from train.discriminator import Adversary, PatchDiscriminator, make_discriminator_optimizer

    disc = PatchDiscriminator(channels=8, layers=2)
    return Adversary(disc, make_discriminator_optimizer(disc, lr), 0.5, generator_on=generator_on, last_layer=last_layer)


def test_the_adversarial_loss_reaches_the_decoder():
    from facevae import FaceVAE
    from train.discriminator import adaptive_weight, generator_loss
    from train.train import Objective, training_step

    torch.manual_seed(0)
    model = FaceVAE(image_size=32, latent_dim=8, dropout=0)
    adversary = tiny_adversary(model, last_layer=model.decoder[-1].weight)
    x = torch.rand(4, 3, 32, 32)
    logits, mu, logvar = model(x)
    adversarial = generator_loss(adversary.discriminator(torch.sigmoid(logits)))
    adversarial.backward(retain_graph=True)
    decoder = [p for part in (model.from_latent, model.decoder) for p in part.parameters()]
    assert decoder and all(p.grad is not None and p.grad.abs().sum() > 0 for p in decoder)
    reconstruction = (torch.sigmoid(logits) - x).pow(2).sum()
    weight = adaptive_weight(reconstruction, adversarial, model.decoder[-1].weight)
    assert 0 < weight.item() <= 1e4 and not weight.requires_grad

    # in a training step: the decoder learns something else with the term than without it
    faces = torch.randint(0, 256, (4, 32, 32, 3), dtype=torch.uint8)
    start, after = {k: v.clone() for k, v in model.state_dict().items()}, {}
    for on in (False, True):
        model.load_state_dict(start)
        adversary = tiny_adversary(model, last_layer=model.decoder[-1].weight, generator_on=on)
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)
        torch.manual_seed(1)  # the same posterior sample both times
        training_step(model, optimizer, faces, Objective("gaussian", 0.3), 1.0, adversary=adversary)
        assert ("adversarial" in adversary.last) == on and adversary.last["discriminator"] > 0
        after[on] = model.decoder[-1].weight.detach().clone()
    assert not torch.allclose(after[True], after[False])


@pytest.mark.parametrize("flag, good, bad", [("--lattice-period", 8, 5), ("--lattice-period", 32, 1), ("--detail-patch", 128, 48)])
def test_a_square_that_does_not_divide_its_image_is_refused(capsys, flag, good, bad):
    from train.train import parse_config

    assert getattr(parse_config(["--data", "x", flag, str(good)]), flag[2:].replace("-", "_")) == good
    with pytest.raises(SystemExit):
        parse_config(["--data", "x", flag, str(bad)])
    assert f"{flag} must divide" in capsys.readouterr().err


@pytest.mark.parametrize("term", ["lattice", "detail"])
def test_the_lattice_and_detail_losses_reach_the_decoder(term):
    from facevae import FaceVAE
    from train.train import Objective, training_step

    torch.manual_seed(0)
    model = FaceVAE(image_size=32, latent_dim=8, dropout=0)
    faces = torch.randint(0, 256, (4, 32, 32, 3), dtype=torch.uint8)
    start, after = {k: v.clone() for k, v in model.state_dict().items()}, {}
    for weight in (0.0, 1.0):
        model.load_state_dict(start)
        torch.manual_seed(1)  # the same posterior sample both times
        terms = training_step(model, torch.optim.SGD(model.parameters(), lr=1e-4), faces,
                              Objective("gaussian", 0.3, **{f"{term}_weight": weight}), 1.0)
        assert (getattr(terms, term) is not None) == bool(weight)
        after[weight] = model.decoder[-1].weight.detach().clone()
    assert not torch.allclose(after[1.0], after[0.0])


def test_the_boosted_target_is_what_the_reconstruction_term_is_charged_for():
    from facevae import FaceVAE
    from facevae.losses import boost_detail
    from facevae.preprocess import uint8_to_tensor
    from train.train import Objective, training_step

    torch.manual_seed(0)
    model = FaceVAE(image_size=32, latent_dim=8, dropout=0)
    faces = torch.randint(0, 256, (4, 32, 32, 3), dtype=torch.uint8)
    charged = {}
    for boost in (0.0, 0.5):
        torch.manual_seed(1)  # the same posterior sample both times
        terms = training_step(model, torch.optim.SGD(model.parameters(), lr=0.0), faces,
                              Objective("mse", 0.3, detail_boost=boost), 1.0)
        charged[boost] = terms.reconstruction
    torch.manual_seed(1)
    logits = model(uint8_to_tensor(faces))[0]
    for boost, value in charged.items():
        target = boost_detail(uint8_to_tensor(faces), boost)
        assert torch.isclose(value, (torch.sigmoid(logits) - target).pow(2).flatten(1).sum(1).mean(), rtol=1e-5)
    assert charged[0.5] != charged[0.0]


def test_the_discriminator_learns_while_a_frozen_decoder_and_the_vae_in_its_step_stay():
    from facevae import FaceVAE
    from train.discriminator import discriminator_step
    from train.train import Objective, freeze_decoder, make_optimizer, train_mode, training_step

    torch.manual_seed(0)
    model = FaceVAE(image_size=32, latent_dim=8, dropout=0)
    freeze_decoder(model)
    train_mode(model, decoder_frozen=True)
    adversary = tiny_adversary(model)  # λ on the decoder's output: its last layer is frozen
    start = {k: v.clone() for k, v in model.state_dict().items()}
    disc_start = {k: v.clone() for k, v in adversary.discriminator.state_dict().items()}
    faces = torch.randint(0, 256, (4, 32, 32, 3), dtype=torch.uint8)
    training_step(model, make_optimizer(model, 1e-3), faces, Objective("gaussian", 0.3), 1.0, adversary=adversary)
    assert adversary.last["adversarial_lambda"] > 0
    after = model.state_dict()
    for name, value in start.items():
        if name.startswith(("decoder.", "from_latent.")):
            assert torch.equal(value, after[name]), name  # weights and BatchNorm statistics
        elif name.endswith("weight"):
            assert not torch.equal(value, after[name]), name  # the encoder learns, the adversarial term with it
    moved = adversary.discriminator.state_dict()
    assert any(not torch.equal(disc_start[k], moved[k]) for k in disc_start if k.endswith("original"))

    # the discriminator's own step gives the VAE no gradient
    model.zero_grad(set_to_none=True)
    x = torch.rand(4, 3, 32, 32)
    fake = torch.sigmoid(model(x)[0])
    assert discriminator_step(adversary, x, fake) > 0
    assert all(p.grad is None for p in model.parameters())
