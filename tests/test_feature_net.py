"""The perceptual loss (train.feature_net): MobileNetV2 from its fetched, checked file; the loss;
training with it. Without the file (`python -m train.feature_net` fetches it) these are skipped."""
import csv
import shutil

import pytest
import torch

from facevae import FaceVAE
from test_train import run_training, weights
from train.feature_net import WEIGHTS_SHA256, load_feature_net, perceptual_loss, weights_path
from train.train import Objective, make_optimizer, training_step

pytestmark = pytest.mark.skipif(not weights_path().is_file(),
                                reason=f"no feature-network weights at {weights_path()}: run python -m train.feature_net")


@pytest.fixture(scope="module")
def net():
    return load_feature_net()


def made_image(size: int = 64) -> torch.Tensor:
    """A 1×3×size×size picture of gradients and a wave, made here."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    return torch.stack([xx, yy, (torch.sin(12 * xx) * torch.cos(9 * yy) + 1) / 2])[None]


def test_the_network_loads_from_the_checked_file_and_gives_the_reference_features(net, tmp_path):
    with torch.no_grad():
        features = net(made_image())
    # computed once from the fetched file (sha256 WEIGHTS_SHA256): features 0-2 at row 2, column 3
    reference = [[-0.38151, 0.10947, 0.12887], [0.12029, 0.10083, 0.15761], [0.19576, -0.02458, 0.21919],
                 [0.12432, 0.11658, 0.0174]]
    assert [tuple(f.shape[1:]) for f in features] == [(16, 32, 32), (24, 16, 16), (32, 8, 8), (64, 4, 4)]
    assert torch.allclose(torch.stack([f[0, :3, 2, 3] for f in features]), torch.tensor(reference), atol=1e-4)
    damaged = tmp_path / "mobilenet.pth"
    shutil.copy(weights_path(), damaged)
    with damaged.open("r+b") as f:
        f.seek(-100, 2)
        f.write(b"\0" * 8)
    with pytest.raises(RuntimeError, match="sha256"):
        load_feature_net(damaged)
    assert WEIGHTS_SHA256.startswith("b0353104")  # torchvision names its files by their digest's start


def test_the_loss_is_zero_for_the_same_image_and_positive_otherwise(net):
    x = made_image().repeat(2, 1, 1, 1)
    y = torch.cat([x[:1], x[1:].flip(3)])
    with torch.no_grad():
        loss = perceptual_loss(net, y, net(x))
    assert loss.shape == (2,) and loss[0].abs() < 1e-6 and loss[1] > 0.1


def test_its_gradient_reaches_the_decoder(net):
    torch.manual_seed(0)
    model = FaceVAE().eval()
    x = torch.rand(2, 3, 128, 128)
    perceptual_loss(net, model.decode(torch.randn(2, 200)), net(x)).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.decoder.parameters())


def test_a_training_step_leaves_the_feature_network_as_it_was(net):
    torch.manual_seed(0)
    model = FaceVAE()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    objective = Objective("gaussian", 0.5, feature_net=net, perceptual_weight=1000.0)
    batch = (torch.rand(4, 128, 128, 3) * 255).to(torch.uint8)
    terms = training_step(model, make_optimizer(model, 1e-3), batch, objective, 1.0)
    assert terms.perceptual is not None and terms.perceptual > 0 and not net.training
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_training_with_the_perceptual_loss_runs_and_resumes_exactly(celeba_dir, tmp_path):
    common = ["--data", celeba_dir, "--perceptual-weight", 500, "--val-images", 2, "--seed", 3]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    # a step before the stop and one after it: a resume that lost the optimizer's moments or the
    # random state would already part from the straight run
    run_training(*common, "--out", straight, "--max-steps", 2)
    run_training(*common, "--out", resumed, "--max-steps", 1)
    run_training(*common, "--out", resumed, "--max-steps", 2, "--resume")
    rows = list(csv.DictReader((straight / "log.csv").open()))
    assert float(rows[-1]["train_perceptual"]) > 0
    a, b = weights(straight), weights(resumed)
    assert max((a[k].float() - b[k].float()).abs().max().item() for k in a) < 1e-5
