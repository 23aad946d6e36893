"""dlib's face recognition ResNet ported from face-api (train.face_recognition): the architecture
and the conversion's naming without any file; the converted network, its descriptors and the
identity distance with the cached file (`python -m train.face_recognition` makes it), else skipped."""
import csv
import shutil

import numpy as np
import pytest
import torch

from test_train import run_training, weights
from train.face_recognition import (BLOCKS, CHIP_BOX, WEIGHTS_SHA256, FaceRecognitionNet, descriptors, identity_distance,
                                    load_face_recognition_net, resize_like_tfjs, state_dict_from_tfjs, weights_path)

needs_weights = pytest.mark.skipif(not weights_path().is_file(), reason=(
    f"no face recognition weights at {weights_path()}: run python -m train.face_recognition"))


@pytest.fixture(scope="module")
def net():
    return load_face_recognition_net()


def made_image(size: int) -> torch.Tensor:
    """A 1×3×size×size picture of gradients and a wave in [0, 1], made here with numpy."""
    yy, xx = np.meshgrid(np.linspace(0, 1, size), np.linspace(0, 1, size), indexing="ij")
    image = np.stack([xx, yy, (np.sin(12 * xx) * np.cos(9 * yy) + 1) / 2]).astype(np.float32)
    return torch.from_numpy(image)[None]


def fake_tfjs_weights() -> dict[str, torch.Tensor]:
    """Random weights under face-api's names and TF.js shapes (model/face_recognition_model)."""
    torch.manual_seed(0)
    layers = [("conv32_down", 3, 32, 7)] + [(f"{name}/conv{i}", a if i == 1 else b, b, 3)
                                             for name, a, b, _ in BLOCKS for i in (1, 2)]
    weights = {"fc": torch.randn(256, 128)}
    for name, a, b, k in layers:
        weights.update({f"{name}/conv/filters": torch.randn(k, k, a, b), f"{name}/conv/bias": torch.randn(b),
                        f"{name}/scale/weights": torch.randn(b), f"{name}/scale/biases": torch.randn(b)})
    return weights


def test_the_architecture_takes_face_apis_weights_and_gives_128_numbers_per_face():
    weights = fake_tfjs_weights()
    assert sum(w.numel() for w in weights.values()) == 5_614_592  # face-api's manifest, all of it
    net = FaceRecognitionNet()
    net.load_state_dict(state_dict_from_tfjs(dict(weights)))  # strict: every name has its place
    assert sum(p.numel() for p in net.parameters()) == 5_614_592
    # TF's filters are kh×kw×in×out, torch's out×in×kh×kw
    assert net.layers["conv64_down"].conv1.conv.weight[5, 7, 2, 1] == weights["conv64_down/conv1/conv/filters"][2, 1, 7, 5]
    assert torch.equal(net.fc.weight, weights["fc"].T)
    with torch.no_grad():
        assert net.eval()(torch.rand(2, 3, 150, 150)).shape == (2, 128)
        assert descriptors(net, torch.rand(3, 3, 128, 128)).shape == (3, 128)
    with pytest.raises(ValueError, match="150"):
        net(torch.rand(1, 3, 128, 128))


def test_the_resize_is_tfjs_legacy_bilinear_one():
    # output pixel i reads input position i * in / out (not half-pixel centred), the last clamped
    row = torch.tensor([0.0, 1.0]).view(1, 1, 1, 2).expand(1, 1, 2, 2)
    assert resize_like_tfjs(row, 4)[0, 0, 0].tolist() == [0.0, 0.5, 1.0, 1.0]
    assert resize_like_tfjs(torch.rand(2, 3, 77, 77)).shape == (2, 3, 150, 150)


def test_without_the_file_loading_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m train.face_recognition"):
        load_face_recognition_net(tmp_path / "missing.safetensors")


@needs_weights
def test_the_network_loads_from_the_checked_file_and_gives_the_reference_descriptors(net, tmp_path):
    with torch.no_grad():
        chip = descriptors(net, made_image(128))  # CHIP_BOX resized to 150
        direct = net(made_image(150))
    # computed once from the converted file (sha256 WEIGHTS_SHA256), which matches face-api's
    # computeFaceDescriptor to 2e-7 (python -m train.face_recognition)
    assert torch.allclose(chip[0, :5], torch.tensor([-0.04387, 0.12825, 0.06454, -0.00302, -0.05044]), atol=1e-4)
    assert torch.allclose(direct[0, :5], torch.tensor([-0.05335, 0.12767, 0.06219, 0.00763, -0.04862]), atol=1e-4)
    damaged = tmp_path / "net.safetensors"
    shutil.copy(weights_path(), damaged)
    with damaged.open("r+b") as f:
        f.seek(-100, 2)
        f.write(b"\0" * 8)
    with pytest.raises(RuntimeError, match="sha256"):
        load_face_recognition_net(damaged)
    assert len(WEIGHTS_SHA256) == 64


@needs_weights
def test_the_distance_is_zero_for_the_same_image_and_positive_otherwise(net):
    x = made_image(128).repeat(2, 1, 1, 1)
    y = torch.cat([x[:1], x[1:].flip(3)])
    distance = identity_distance(net, x, y)
    assert distance.shape == (2,) and distance[0] == 0 and distance[1] > 0.05


@needs_weights
def test_the_gradient_reaches_the_chip_box_and_the_network_stays_frozen(net):
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x = made_image(128).repeat(2, 1, 1, 1)
    y = torch.cat([x[:1], x[1:].flip(3)]).requires_grad_()
    identity_distance(net, x, y).sum().backward()
    left, top, right, bottom = CHIP_BOX
    outside = y.grad[1].clone()
    outside[:, top:bottom, left:right] = 0
    assert y.grad[1].abs().sum() > 0 and torch.isfinite(y.grad).all()
    assert outside.abs().sum() == 0  # only the chip box is seen
    assert y.grad[0].abs().sum() == 0  # the same face: at the minimum, no push
    assert not net.training and not any(p.requires_grad or p.grad is not None for p in net.parameters())
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


@needs_weights
@pytest.mark.parametrize("augment", ["--no-identity-augment", "--identity-augment"])
def test_training_with_dlibs_identity_loss_runs_and_resumes_exactly(celeba_dir, tmp_path, augment):
    common = ["--data", celeba_dir, "--identity-weight", 1000, "--identity-net", "face-api", "--val-images", 2,
              "--seed", 3, augment]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    # a step before the stop and one after it: a resume that lost the optimizer's moments or the
    # random state would already part from the straight run
    run_training(*common, "--out", straight, "--max-steps", 2)
    run_training(*common, "--out", resumed, "--max-steps", 1)
    run_training(*common, "--out", resumed, "--max-steps", 2, "--resume")
    rows = list(csv.DictReader((straight / "log.csv").open()))
    assert float(rows[-1]["train_identity"]) > 0
    a, b = weights(straight), weights(resumed)
    assert max((a[k].float() - b[k].float()).abs().max().item() for k in a) < 1e-5
