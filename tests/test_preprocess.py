import numpy as np
import pytest
import torch
from PIL import Image

from facevae import crop_celeba, lerp, slerp, to_image, to_tensor
from facevae.preprocess import to_grid, to_rgb


def test_crop_celeba_takes_rows_20_to_197_as_center_crop_does():
    from torchvision.transforms import CenterCrop

    arr = np.zeros((218, 178, 3), np.uint8)
    arr[:, :, 0] = np.arange(218)[:, None]  # red encodes the row
    img = Image.fromarray(arr)
    square = CenterCrop(178)(img)
    assert np.asarray(square)[0, 0, 0] == 20 and np.asarray(square)[-1, 0, 0] == 197
    face = crop_celeba(img)
    assert face.size == (128, 128) and face.mode == "RGB"
    rows = np.asarray(face)[:, 64, 0].astype(int)
    assert abs(rows[0] - 20) <= 1 and abs(rows[-1] - 197) <= 1
    expected = np.asarray(square.resize((128, 128), Image.Resampling.BILINEAR)).astype(int)
    assert np.abs(np.asarray(face).astype(int) - expected).max() <= 1


def test_tensor_and_image_round_trip(faces):
    crops = [crop_celeba(f) for f in faces[:3]]
    x = to_tensor(crops)
    assert x.shape == (3, 3, 128, 128) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert np.array_equal(np.asarray(to_image(x[1])), np.asarray(crops[1]))
    assert to_tensor(crops[0]).shape == (1, 3, 128, 128)
    with pytest.raises(ValueError):
        to_image(x)


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "CMYK", "I;16", "I"])
def test_any_mode_becomes_rgb(mode, faces):
    img = faces[0].convert(mode) if mode not in ("I;16", "I") else Image.fromarray(
        np.asarray(faces[0].convert("L")).astype(np.uint16) * 257)
    if mode == "I":
        img = img.convert("I")
    rgb = to_rgb(img)
    assert rgb.mode == "RGB" and rgb.size == faces[0].size
    # brightness survives the conversion (16-bit is scaled, not clipped to white)
    grey = np.asarray(faces[0].convert("L")).mean()
    assert abs(np.asarray(rgb.convert("L")).mean() - grey) < 20


def test_lerp_and_slerp_end_points_and_norm():
    torch.manual_seed(0)
    z0, z1 = torch.randn(2, 200), torch.randn(2, 200)
    for interpolate in (lerp, slerp):
        assert torch.allclose(interpolate(z0, z1, 0.0), z0, atol=1e-4)
        assert torch.allclose(interpolate(z0, z1, 1.0), z1, atol=1e-4)
    # halfway, slerp keeps a typical norm where lerp shrinks towards the origin
    mid_l, mid_s = lerp(z0, z1, 0.5).norm(dim=1), slerp(z0, z1, 0.5).norm(dim=1)
    assert (mid_s > mid_l * 1.2).all()
    assert torch.allclose(mid_s, (z0.norm(dim=1) + z1.norm(dim=1)) / 2, rtol=1e-4)


@pytest.mark.parametrize("n, columns", [(16, 8), (5, 8), (7, 3)])
def test_to_grid_lays_out_images_as_torchvision_make_grid(n, columns):
    from torchvision.utils import make_grid

    images = torch.rand(n, 3, 12, 10)
    expected = make_grid(images, nrow=columns, padding=2, pad_value=1.0)
    assert np.array_equal(np.asarray(to_grid(images, columns=columns)), np.asarray(to_image(expected)))
