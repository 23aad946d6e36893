import numpy as np
import torch

from facevae import load_model
from facevae.latent import LatentStats
from train.latent_stats import compute_stats


def test_shipped_weights_load_and_reconstruct(faces):
    from facevae import crop_celeba, to_tensor

    model = load_model()
    assert not model.training and "bundled" in model.source
    x = to_tensor([crop_celeba(faces[0])])
    y = model.reconstruct(x)
    assert y.shape == (1, 3, 128, 128) and 0 <= y.min() and y.max() <= 1
    assert ((y - x) ** 2).mean() < ((torch.full_like(x, 0.5) - x) ** 2).mean()  # better than grey


def test_shipped_latent_statistics_match_the_config():
    model = load_model()
    stats, d = model.latent_stats, model.latent_dim
    assert stats is not None
    assert stats.mean.shape == stats.std.shape == stats.kl.shape == (d,)
    assert stats.pca_directions.shape[1] == d and stats.pca_variances.shape == stats.pca_directions.shape[:1]
    c = len(stats.mixture_weights)
    assert stats.mixture_means.shape == (c, d) and stats.mixture_scale_trils.shape == (c, d, d)
    assert torch.isclose(stats.mixture_weights.sum(), torch.tensor(1.0), atol=1e-4)
    assert len(stats.ranked_dimensions(0.01)) >= 30  # active units
    kl = stats.kl[stats.ranked_dimensions()]
    assert (kl[:-1] >= kl[1:]).all()


def toy_stats(seed=0) -> tuple[LatentStats, torch.Tensor]:
    """Statistics fitted to two well-separated clusters in 4 dimensions."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[4.0, 0, 0, 0], [-4.0, 0, 0, 0]])
    mu = torch.cat([centres[0] + 0.3 * torch.randn(300, 4, generator=g), centres[1] + 0.3 * torch.randn(300, 4, generator=g)])
    logvar = torch.full_like(mu, -2.0)
    stats, scores = compute_stats(mu, logvar, [1, 2])
    return stats, scores


def test_mixture_size_is_chosen_by_held_out_likelihood_and_sampling_uses_the_components(tmp_path):
    stats, scores = toy_stats()
    assert scores[2] > scores[1] and len(stats.mixture_weights) == 2
    samples = stats.sample_mixture(2000, 1.0, torch.Generator().manual_seed(0))
    near = torch.cdist(samples, stats.mixture_means).argmin(1)
    share = near.float().mean().item()
    assert 0.4 < share < 0.6  # both components drawn, in proportion to their weights
    assert (samples[:, 0].abs() > 2).float().mean() > 0.99  # from the clusters, not between them
    cold = stats.sample_mixture(2000, 0.1, torch.Generator().manual_seed(0))
    assert cold[:, 1:].std() < samples[:, 1:].std() / 5  # temperature scales each component's spread
    again = stats.sample_mixture(2000, 1.0, torch.Generator().manual_seed(0))
    assert torch.equal(samples, again)
    stats.save(tmp_path)
    loaded = LatentStats.find(tmp_path)
    assert torch.equal(loaded.mixture_means, stats.mixture_means)


def test_pca_and_ranked_dimensions():
    stats, _ = toy_stats()
    directions, stds = stats.principal_directions(2)
    assert abs(directions[0, 0].abs().item() - 1) < 0.01  # the clusters differ along dimension 0
    assert stds[0] > 3 > stds[1]
    assert stats.ranked_dimensions()[0] == 0


def test_mixture_sampling_through_the_model_is_reproducible():
    model = load_model()
    a = model.sample(3, prior="mixture", generator=torch.Generator().manual_seed(5))
    b = model.sample(3, prior="mixture", generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and a.shape == (3, 3, 128, 128)


def test_subspace_mixture_models_the_top_components_and_one_gaussian_on_the_rest():
    from train.latent_stats import gaussian_mixture, subspace_mixture

    g = torch.Generator().manual_seed(0)
    # two clusters apart along the first axis (the top principal component), correlated noise on the others
    side = torch.randint(0, 2, (2000,), generator=g).double() * 2 - 1
    noise = torch.randn(2000, 5, generator=g, dtype=torch.float64) @ torch.tensor(
        [[1, 0, 0, 0, 0], [0, 0.5, 0.3, 0, 0], [0, 0, 0.4, 0, 0], [0, 0, 0, 0.3, 0.1], [0, 0, 0, 0, 0.2]], dtype=torch.float64)
    points = (noise + torch.outer(side * 6, torch.tensor([1.0, 0, 0, 0, 0], dtype=torch.float64))).numpy()
    mixture = subspace_mixture(points, 2, dims=1)
    assert sorted(mixture.means[:, 0].round()) == [-6, 6]  # a component for each cluster
    assert np.allclose(mixture.means[:, 1:], points[:, 1:].mean(0), atol=0.05)  # off the top axis: the common mean
    rest_cov = np.cov(points[:, 1:], rowvar=False)
    assert np.allclose(mixture.covariances[0, 1:, 1:], rest_cov, atol=0.02)  # one Gaussian on the rest, correlations kept
    assert np.allclose(mixture.covariances[0, 1:, 1:], mixture.covariances[1, 1:, 1:], atol=1e-4)
    # dims=None: the plain full mixture, scored as sklearn scores it
    held_out = points[:200]
    full = subspace_mixture(points, 2, dims=None)
    assert abs(full.score(held_out) - gaussian_mixture(2).fit(points).score(held_out)) < 0.01
    assert full.score(held_out) > mixture.score(held_out) - 1.0
    assert subspace_mixture(points, 1, dims=None).score(held_out) < full.score(held_out)


def test_the_seeded_generators_normals_are_standard_and_a_seed_is_taken_modulo_2_to_the_64():
    from facevae.seeded import Seeded, seed_state

    noise = Seeded(seed_state(1)).normals(200_001)
    assert noise.shape == (200_001,) and abs(noise.mean()) < 0.01 and abs(noise.std() - 1) < 0.01
    assert abs(np.corrcoef(noise[:-2:2], noise[1:-1:2])[0, 1]) < 0.01  # a Box–Muller pair is independent
    assert seed_state(7) == 7 and seed_state(7 + 2**64) == 7 and seed_state(-1) == seed_state(2**64 - 1) == 0
    assert seed_state(2**32) != seed_state(0)
    generator = Seeded(5)
    first, rest = generator.uniforms(3), generator.uniforms(2)  # a run drawn in parts is the run drawn at once
    assert np.array_equal(np.concatenate([first, rest]), Seeded(5).uniforms(5)) and 0 < first.min() < first.max() < 1


def test_seeded_latents_face_by_face_with_the_temperature_scaling_the_spread():
    from facevae.pipeline import FacePipeline
    from facevae.seeded import mixture_bytes

    pipeline = FacePipeline(load_model(), refinement=None)
    weights, means, trils = pipeline.page_mixture
    for prior in ("normal", "mixture"):
        five = pipeline.seed_latents(11, 5, 1.0, prior)
        assert five.dtype == torch.float32 and five.shape == (5, 200)
        assert torch.equal(pipeline.seed_latents(11, 2, 1.0, prior), five[:2])  # face i whatever the count
        assert not torch.equal(pipeline.seed_latents(12, 2, 1.0, prior), five[:2])
    centres, cool, warm = (pipeline.seed_latents(3, 8, t, "mixture").double().numpy() for t in (0.0, 0.5, 1.5))
    assert all(np.isclose(means, centre, atol=1e-6).all(1).any() for centre in centres)  # components' means
    assert len({tuple(centre) for centre in centres}) > 1
    assert np.allclose((warm - centres) / 1.5, (cool - centres) / 0.5, atol=1e-5)
    # the page's file: float16 weights, means and lower triangles, the numbers the pipeline draws with
    stats = pipeline.model.latent_stats
    numbers = np.frombuffer(mixture_bytes(stats.mixture_weights, stats.mixture_means, stats.mixture_scale_trils), "<f2")
    c, d = means.shape
    rows, columns = np.tril_indices(d)
    assert np.array_equal(numbers.astype(np.float64), np.concatenate([weights, means.ravel(), trils[:, rows, columns].ravel()]))
    assert np.array_equal(trils, np.tril(trils)) and numbers.nbytes == 2 * c * (1 + d + d * (d + 1) // 2)
