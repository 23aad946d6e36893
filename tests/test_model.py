import torch
import torch.nn.functional as F
from torch import nn

from facevae import FaceVAE
from facevae.losses import (boost_detail, detail_loss, edge_loss, gaussian_blur, kl_divergence, kl_warmup, lattice_components,
                            lattice_loss, reconstruction_loss, vae_loss)
from facevae.model import FastDropout


def test_parameter_count_matches_the_write_up():
    assert sum(p.numel() for p in FaceVAE().parameters()) == 2_649_299


def test_shape_walk_of_every_stage():
    model = FaceVAE().eval()
    x = torch.rand(2, 3, 128, 128)
    shapes = []
    h = x
    for block in model.encoder:
        h = block(h)
        shapes.append(tuple(h.shape[1:]))
    assert shapes == [(32, 64, 64), (64, 32, 32), (64, 16, 16), (64, 8, 8), (4096,)]
    mu, logvar = model.to_mu(h), model.to_logvar(h)
    assert mu.shape == logvar.shape == (2, 200)
    h = model.from_latent(mu).view(-1, 64, 8, 8)
    shapes = []
    for block in model.decoder:
        h = block(h)
        shapes.append(tuple(h.shape[1:]))
    assert shapes == [(64, 16, 16), (64, 32, 32), (32, 64, 64), (3, 129, 129)]
    # the 129×129 output is cropped to the first 128 rows and columns
    assert torch.equal(model.decode_logits(mu), h[:, :, :128, :128])
    y = model.decode(mu)
    assert y.shape == (2, 3, 128, 128) and y.min() >= 0 and y.max() <= 1


def test_blocks_follow_the_write_up():
    model = FaceVAE()
    conv, bn, act, drop = model.encoder[0]
    assert (conv.kernel_size, conv.stride, conv.padding) == ((3, 3), (2, 2), (1, 1))
    assert isinstance(bn, nn.BatchNorm2d) and act.negative_slope == 0.001 and drop.p == 0.2
    up = model.decoder[0][0]
    assert (up.kernel_size, up.stride, up.padding, up.output_padding) == ((3, 3), (2, 2), (1, 1), (1, 1))
    last = model.decoder[-1]
    assert (last.in_channels, last.out_channels, last.stride, last.padding) == (32, 3, (2, 2), (0, 0))


def test_other_sizes_come_from_the_config(tmp_path):
    model = FaceVAE(image_size=64, latent_dim=16, encoder_channels=[8, 16, 16], decoder_channels=[16, 8]).eval()
    assert model.decode(torch.zeros(1, 16)).shape == (1, 3, 64, 64)
    model.save_pretrained(tmp_path)
    loaded = FaceVAE.from_pretrained(tmp_path).eval()
    assert loaded.latent_dim == 16 and loaded.image_size == 64


def test_save_and_load_give_identical_outputs(tmp_path):
    torch.manual_seed(0)
    model = FaceVAE()
    model.train()
    model(torch.rand(8, 3, 128, 128))  # move the BatchNorm running statistics off their defaults
    model.eval()
    model.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix in (".json", ".safetensors")) == [
        "config.json", "model.safetensors"]
    loaded = FaceVAE.from_pretrained(tmp_path).eval()
    x = torch.rand(3, 3, 128, 128)
    assert torch.equal(model.reconstruct(x), loaded.reconstruct(x))


def test_fast_dropout_drops_p_and_keeps_the_mean():
    torch.manual_seed(0)
    drop = FastDropout(0.2)
    y = drop(torch.ones(400_000))
    assert abs((y == 0).float().mean().item() - 0.2) < 0.005
    assert abs(y.mean().item() - 1.0) < 0.01
    x = torch.randn(5, 7)
    assert torch.equal(drop.eval()(x), x)
    # masks differ from call to call
    drop.train()
    assert not torch.equal(drop(torch.ones(1000)), drop(torch.ones(1000)))


def test_fast_dropout_drops_evenly_in_every_word_and_keeps_layout_and_dtype():
    torch.manual_seed(0)
    drop = FastDropout(0.2)
    dropped = (drop(torch.ones(400_000)) == 0).float().view(-1, 4).mean(0)  # each 16-bit word of the draws
    assert torch.allclose(dropped, torch.full((4,), 0.2), atol=0.005), dropped
    x = torch.ones(4, 8, 16, 16, dtype=torch.bfloat16).to(memory_format=torch.channels_last).requires_grad_()
    y = drop(x)
    assert y.dtype == torch.bfloat16 and y.is_contiguous(memory_format=torch.channels_last)
    y.sum().backward()  # the gradient passes exactly where the value did, with the same scale
    assert torch.equal(x.grad, y.detach())


def test_kl_matches_its_closed_form():
    torch.manual_seed(0)
    mu, logvar = torch.randn(4, 200), torch.randn(4, 200)
    posterior = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    prior = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    expected = torch.distributions.kl_divergence(posterior, prior).sum(1)
    assert torch.allclose(kl_divergence(mu, logvar), expected, atol=1e-4)
    assert torch.allclose(kl_divergence(torch.zeros(2, 5), torch.zeros(2, 5)), torch.zeros(2))


def test_reductions_sum_over_pixels_and_average_over_the_batch():
    torch.manual_seed(0)
    logits, x = torch.randn(4, 3, 8, 8), torch.rand(4, 3, 8, 8)
    per_image = F.binary_cross_entropy(torch.sigmoid(logits), x, reduction="none").flatten(1).sum(1)
    assert torch.allclose(reconstruction_loss(logits, x, "bce"), per_image, atol=1e-4)
    y = torch.sigmoid(logits)
    assert torch.allclose(reconstruction_loss(logits, x, "mse"), ((y - x) ** 2).flatten(1).sum(1))
    assert torch.allclose(reconstruction_loss(logits, x, "l1"), (y - x).abs().flatten(1).sum(1))
    mu, logvar = torch.randn(4, 10), torch.randn(4, 10)
    terms = vae_loss(logits, x, mu, logvar, "bce", beta=2.0, kl_weight=0.5)
    assert torch.isclose(terms.reconstruction, per_image.mean(), atol=1e-4)
    assert torch.isclose(terms.total, per_image.mean() + 2.0 * 0.5 * kl_divergence(mu, logvar).mean(), atol=1e-3)
    # doubling the pixels doubles the reconstruction term: a sum, not a mean
    big = reconstruction_loss(logits.repeat(1, 1, 2, 1), x.repeat(1, 1, 2, 1), "mse")
    assert torch.allclose(big, 2 * reconstruction_loss(logits, x, "mse"))


def test_gaussian_reconstruction_is_the_optimal_sigma_nll():
    torch.manual_seed(0)
    logits, x = torch.randn(2, 3, 4, 4), torch.rand(2, 3, 4, 4)
    mse = ((torch.sigmoid(logits) - x) ** 2).mean()
    normal = torch.distributions.Normal(torch.sigmoid(logits), mse.sqrt())
    expected = -normal.log_prob(x).flatten(1).sum(1)
    assert torch.allclose(reconstruction_loss(logits, x, "gaussian"), expected, atol=1e-3)


def test_the_edge_loss_sees_a_shifted_outline_that_a_flat_error_of_the_same_size_hides():
    x = torch.zeros(2, 3, 16, 16)
    x[..., 4:12, 4:8] = 0.8  # a bar with sharp edges
    shifted = torch.roll(x, 1, dims=3)  # the bar a pixel off: its outline is wrong
    flat = x + ((shifted - x).pow(2).mean().sqrt())  # an even error of the same pixel MSE
    logit = lambda y: torch.logit(y.clamp(1e-4, 1 - 1e-4))
    assert torch.allclose((shifted - x).pow(2).mean(), (flat - x).pow(2).mean(), rtol=1e-3)
    both = torch.cat([logit(shifted[:1]), logit(flat[1:])])
    losses = edge_loss(both, x)
    assert losses[0] > losses[1] + 100  # the shifted bar's edges cost nats; the flat error has none
    mu, logvar = torch.zeros(2, 4), torch.zeros(2, 4)
    plain = vae_loss(both, x, mu, logvar, "gaussian")
    with_edges = vae_loss(both, x, mu, logvar, "gaussian", edge_weight=0.5)
    assert torch.isclose(with_edges.reconstruction, plain.reconstruction + 0.5 * losses.mean(), rtol=1e-5)


def test_the_lattice_loss_charges_a_pixel_grid_pattern_and_not_an_error_of_the_same_size_elsewhere():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 64, 64) * 0.6 + 0.2
    assert lattice_components(x - x).abs().max() == 0  # identical images: no lattice at all
    columns = torch.arange(64)
    lattice = 0.03 * torch.where(columns % 4 < 2, 1.0, -1.0).expand(64, 64)  # stripes 4 px apart
    noise = torch.randn(64, 64) * lattice.pow(2).mean().sqrt()  # an error of the same energy
    # the components hold the lattice's whole energy, and about 15/1024 of the noise's
    assert torch.isclose(lattice_components(lattice.expand(1, 1, 64, 64)).pow(2).sum(), lattice.pow(2).sum())
    assert lattice_components(noise.expand(1, 1, 64, 64)).pow(2).sum() < 0.05 * noise.pow(2).sum()
    errors = torch.stack([lattice, noise]).unsqueeze(1)  # one image with each
    losses = lattice_loss(x + errors, x)
    assert losses[0] > losses[1] + 100


def test_the_lattice_period_sets_which_lattices_are_charged():
    columns = torch.arange(64)
    stripes = torch.where(columns % 8 < 4, 1.0, -1.0).expand(1, 1, 64, 64)  # 8 px apart
    assert torch.isclose(lattice_components(stripes, period=8).pow(2).sum(), stripes.pow(2).sum())
    assert lattice_components(stripes, period=4).abs().max() < 1e-6  # each 4-px phase holds both halves


def test_gaussian_blur_is_opencvs():
    import cv2

    image = torch.rand(1, 1, 37, 50)
    for sigma in (1.0, 2.0):
        expected = torch.from_numpy(cv2.GaussianBlur(image[0, 0].numpy(), (0, 0), sigma))
        assert torch.allclose(gaussian_blur(image, sigma)[0, 0], expected, atol=1e-6)


def test_the_detail_loss_charges_detail_missing_and_not_detail_moved():
    torch.manual_seed(0)
    x = (gaussian_blur(torch.rand(3, 3, 64, 64), 0.7) - 0.5) * 2 + 0.5  # a fine texture, like hair
    blurred, moved = gaussian_blur(x, 1.5), x.roll(3, dims=3)
    assert (moved - x).pow(2).mean() > (blurred - x).pow(2).mean()  # the pixel loss prefers the blur
    pair = torch.cat([blurred, moved])
    losses = detail_loss(pair, torch.cat([x, x]))  # σ² shared by both, as in a batch
    assert losses[:3].min() > losses[3:].max() + 10  # 16 squares an image
    same = x.clone().requires_grad_()
    detail_loss(same, x).sum().backward()
    assert same.grad.abs().max() < 1e-6  # identical images: nothing to change


def test_boosting_detail_sharpens_and_keeps_the_rest():
    from facevae.metrics import detail_energy

    torch.manual_seed(0)
    x = gaussian_blur(torch.rand(2, 3, 64, 64), 1.0) * 0.5 + 0.25  # room above and below: nothing clips
    assert torch.equal(boost_detail(x, 0.0), x)
    assert torch.allclose(boost_detail(torch.full((1, 3, 16, 16), 0.3), 0.8), torch.tensor(0.3))
    boosted = boost_detail(x, 0.5)
    assert (detail_energy(boosted) > 1.3 * detail_energy(x)).all()  # the band of the band is weaker than the band
    # the coarse picture stays: what a blur of σ = 4 px leaves moves by a tenth of what was added
    assert (gaussian_blur(boosted, 4.0) - gaussian_blur(x, 4.0)).abs().mean() < 0.1 * (boosted - x).abs().mean()


def test_kl_warmup_is_linear():
    assert [kl_warmup(s, 10) for s in (0, 5, 10, 20)] == [0.0, 0.5, 1.0, 1.0]
    assert kl_warmup(0, 0) == 1.0


def test_overfits_a_small_batch(faces):
    """Eight faces memorised: a model of the same blocks at 32×32 with fewer channels (the full one
    took 60 steps and 40 s of CPU to do it; this one 90 steps and under a second)."""
    from facevae import crop_celeba, to_tensor
    from train.train import make_optimizer

    torch.manual_seed(0)
    model = FaceVAE(image_size=32, latent_dim=32, encoder_channels=[16, 32, 32], decoder_channels=[32, 16], dropout=0.0)
    x = F.interpolate(to_tensor([crop_celeba(f) for f in faces[:8]]), size=(32, 32), mode="area")
    optimizer = make_optimizer(model, 3e-3)
    losses = []
    for _ in range(90):
        logits, mu, logvar = model(x)
        loss = vae_loss(logits, x, mu, logvar, "mse", beta=0.01).total
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 10, losses[::10]  # measured: a 18th


def test_sampling_is_reproducible_with_a_generator():
    model = FaceVAE().eval()
    a = model.sample(4, generator=torch.Generator().manual_seed(3))
    b = model.sample(4, generator=torch.Generator().manual_seed(3))
    c = model.sample(4, generator=torch.Generator().manual_seed(4))
    assert a.shape == (4, 3, 128, 128) and torch.equal(a, b) and not torch.equal(a, c)
