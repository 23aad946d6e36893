import json

import numpy as np

from facevae.preprocess import images_to_tensor
from in_process import run_module


def test_latent_stats_and_evaluation_scripts_run_on_a_tiny_folder(celeba_dir, tmp_path):
    """Slow by nature: four scripts end to end on one model (training, latent statistics, the
    evaluation with dlib's descriptors, compare_levers), each the way a user runs it."""
    run = tmp_path / "run"
    # a model of one step is what the scripts need: their outputs' form, not its quality, is checked
    run_module("train.train", "--data", celeba_dir, "--out", run, "--epochs", 1, "--batch-size", 8, "--max-steps", 1,
               "--val-images", 2)
    run_module("train.latent_stats", "--model", run / "model", "--data", celeba_dir, "--components", "1,2")
    assert (run / "model" / "latent_stats.safetensors").is_file()
    out_json, out_png = tmp_path / "eval.json", tmp_path / "nearest.png"
    result = run_module("train.evaluate", "--model", run / "model", "--data", celeba_dir, "--samples", 40,
                        "--json", out_json, "--nearest-png", out_png)
    metrics = json.loads(out_json.read_text())
    for key in ("mse", "psnr", "psnr_jittered", "ssim", "nelbo_nats", "bits_per_dim", "active_units", "frechet_distance_normal",
                "frechet_distance_mixture", "sharpness_normal", "sharpness_mixture"):
        assert key in metrics, key
    assert metrics["images"] == 10 and 0 < metrics["ssim"] <= 1 and metrics["bits_per_dim"] > 0
    assert metrics["frechet_distance_normal"] > 0 and out_png.is_file()
    assert "psnr" in result.stdout
    sheet = tmp_path / "sheet.png"
    compared = run_module("train.studies.compare_levers", f"tiny={run / 'model'}", f"again={run / 'model'}",
                          "--data", celeba_dir, "--identity-from", 2, "--identity-images", 3, "--components", "1,2",
                          "--samples", 40, "--sheet", sheet)
    rows = [line for line in compared.stdout.splitlines() if line.startswith(("| tiny ", "| again "))]
    assert len(rows) == 4  # printed as judged, then in the table
    assert rows[0].replace("tiny", "") == rows[1].replace("again", "")  # the same model judged twice alike
    assert "identity over 3 from face 2" in compared.stdout
    from PIL import Image

    assert Image.open(sheet).size[1] > 2 * 128  # a row of samples per model


def test_jittered_crops_are_crop_celeba_without_jitter_and_move_with_it(celeba_dir):
    import numpy as np
    from PIL import Image

    from facevae import crop_celeba
    from train.evaluate import jittered_crops

    files = sorted((celeba_dir / "img_align_celeba").glob("*.jpg"))[:4]
    exact = np.stack([np.asarray(crop_celeba(Image.open(f))) for f in files])
    still = jittered_crops(files, shift=0, scale=0, degrees=0)
    assert np.abs(still.astype(int) - exact).max() <= 1
    moved = jittered_crops(files)
    assert moved.shape == exact.shape and np.abs(moved.astype(int) - exact).mean() > 1


def test_fd_spread_repeats_compare_levers_figure_at_seed_0_and_varies_with_the_seeds():
    import numpy as np
    import torch

    from facevae.model import FaceVAE
    from facevae.preprocess import images_to_tensor
    from train.evaluate import FeatureSpace, draw, frechet_distance
    from train.latent_stats import MIXTURE_DIMS, compute_stats
    from train.studies.fd_spread import fd_grid

    torch.manual_seed(0)
    model = FaceVAE().eval()
    rng = np.random.default_rng(0)
    train_images = rng.integers(0, 256, (60, 128, 128, 3), dtype=np.uint8)
    real = images_to_tensor(rng.integers(0, 256, (30, 128, 128, 3), dtype=np.uint8))
    features = FeatureSpace(real)
    with torch.no_grad():
        grid = fd_grid(model, train_images, features, features(real), [0, 1], [0, 1, 2], samples=40, components=2,
                       dims=MIXTURE_DIMS)
        mu, logvar = model.encode(images_to_tensor(train_images))
        model.latent_stats, _ = compute_stats(mu, logvar, [2])  # compare_levers' statistics and draw
        single = frechet_distance(features(draw(model, 40, "mixture")), features(real))
    assert grid.shape == (2, 3) and np.all(grid > 0)
    assert np.isclose(grid[0, 0], single, rtol=1e-4)
    # an untrained decoder draws near-alike faces, but a seed left unused would repeat a figure exactly
    assert len(np.unique(grid)) == grid.size


def test_the_detail_figure_falls_with_blur_and_is_one_for_the_photos_themselves():
    from facevae.metrics import detail_energy
    from train.evaluate import gaussian_blur

    rng = np.random.default_rng(0)
    photos = rng.integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    sharp = images_to_tensor(photos)
    soft = images_to_tensor(gaussian_blur(photos, 2.5))
    ratio = detail_energy(soft).mean() / detail_energy(sharp).mean()
    assert detail_energy(sharp).shape == (3,) and 0 < ratio < 0.2


def test_the_grid_power_finds_a_pixel_grid_pattern_and_nothing_else():
    import torch

    from train.studies.judge_levers import GRID_FREQUENCIES, grid_power

    torch.manual_seed(0)
    photos = torch.rand(4, 3, 64, 64) * 0.5 + 0.25
    assert all(abs(v - 1) < 1e-5 for v in grid_power(photos, photos).values())
    checkerboard = 0.05 * ((torch.arange(64)[:, None] + torch.arange(64)[None, :]) % 2 * 2 - 1.0)  # period 2 both ways
    with_grid = grid_power(photos, photos + checkerboard)
    assert set(with_grid) == {f"grid_{u}_{v}" for u, v in GRID_FREQUENCIES}
    assert with_grid["grid_64_64"] > 10 and abs(with_grid["grid_16_16"] - 1) < 1e-3  # only its own frequency


def test_the_photo_yardstick_scores_photos_like_the_reference_lower_and_refuses_overlapping_sets():
    import pytest

    from train.evaluate import FeatureSpace
    from train.studies.fd_spread import photo_fds

    rng = np.random.default_rng(0)
    reference = images_to_tensor(rng.integers(0, 256, (200, 32, 32, 3), dtype=np.uint8))
    features = FeatureSpace(reference)
    alike = rng.integers(0, 256, (90, 32, 32, 3), dtype=np.uint8)
    brighter = rng.integers(96, 256, (90, 32, 32, 3), dtype=np.uint8)
    same = photo_fds(alike, features, features(reference), samples=30, sets=3)
    shifted = photo_fds(brighter, features, features(reference), samples=30, sets=3)
    assert same.shape == (3,) and len(np.unique(same)) == 3  # three different sets
    assert same.max() < shifted.min()
    with pytest.raises(ValueError, match="need 120 photos; there are 90"):
        photo_fds(alike, features, features(reference), samples=30, sets=4)
