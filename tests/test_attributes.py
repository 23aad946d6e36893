"""Named attribute directions: the fitting on synthetic latents, the shipped directions, and
(where CelebA sits beside the repository, as in CI) an edit of a real held-out face; the reader
that train.studies.measure_age measures age with."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

from facevae import align_face, crop_celeba, load_model, to_tensor
from facevae.latent import LatentStats
from train.attributes import Labels, conditional_direction, fit_attributes, identity_split, read_labels
from train.studies.measure_age import face_descriptors

ROOT = Path(__file__).resolve().parent.parent
CELEBA = ROOT.parent / "shared" / "data" / "celeba"


def test_conditional_directions_are_orthogonal_to_what_is_held_fixed():
    rng = np.random.default_rng(0)
    normal, fixed = rng.normal(size=20), [rng.normal(size=20), rng.normal(size=20)]
    direction = conditional_direction(normal, fixed)
    assert abs(np.linalg.norm(direction) - 1) < 1e-9
    assert all(abs(direction @ f) < 1e-9 for f in fixed)
    assert direction @ normal > 0  # still the attribute's way


def synthetic_labels(n=1200, d=12, seed=0):
    """Latents where "Smiling" lies along axis 0, "Male" along axis 1, and the two are
    correlated in the labels, as attributes are in CelebA; 400 people of 3 images each."""
    rng = np.random.default_rng(seed)
    male = rng.random(n) < 0.5
    smiling = rng.random(n) < np.where(male, 0.3, 0.7)
    mu = rng.normal(size=(n, d))
    mu[:, 0] += np.where(smiling, 1.5, -1.5)
    mu[:, 1] += np.where(male, 1.5, -1.5)
    names = ["Smiling", "Male"] + [f"Other_{i}" for i in range(38)]
    values = np.zeros((n, 40), bool)
    values[:, 0], values[:, 1] = smiling, male
    values[:, 2:] = rng.random((n, 38)) < 0.01  # too rare to fit
    return mu, Labels(names, [f"{i:06d}.jpg" for i in range(n)], values, np.arange(n) // 3)


def test_fit_finds_each_attributes_axis_holds_the_other_fixed_and_scales_to_the_mean_gap():
    mu, labels = synthetic_labels()
    held_out = identity_split(labels.identities)
    assert not set(labels.identities[held_out]) & set(labels.identities[~held_out])  # no person in both
    fit = fit_attributes(mu, labels, held_out)
    assert fit.names == ["Smiling", "Male"] and fit.auc["Smiling"] > 0.9
    assert "too few" in fit.skipped["Other_0"]
    smile, male_normal = fit.directions[0], fit.weights[1]
    assert abs(smile @ male_normal) < 1e-4 * np.linalg.norm(smile) * np.linalg.norm(male_normal)  # Male held fixed
    assert smile[0] / np.linalg.norm(smile) > 0.8
    fit_part, y = ~held_out, labels.values[~held_out, 0]
    gap = (mu[fit_part][y].mean(0) - mu[fit_part][~y].mean(0)) @ (smile / np.linalg.norm(smile))
    assert np.isclose(np.linalg.norm(smile), gap)  # one unit: the distance between the means


def test_attributes_are_saved_and_loaded_with_their_names(tmp_path):
    stats = load_model().latent_stats
    stats.save(tmp_path)
    loaded = LatentStats.load(tmp_path / "latent_stats.safetensors")
    assert loaded.attribute_names == stats.attribute_names
    assert torch.equal(loaded.attribute_directions, stats.attribute_directions)


def test_the_shipped_directions_load_with_the_weights():
    model = load_model()
    stats = model.latent_stats
    assert {"Smiling", "Male", "Young", "Eyeglasses"} <= set(stats.attribute_names)
    a, d = len(stats.attribute_names), model.latent_dim
    assert stats.attribute_directions.shape == stats.attribute_weights.shape == (a, d)
    assert stats.attribute_bias.shape == (a,)
    assert stats.attribute_direction("Smiling").shape == (d,)
    with pytest.raises(KeyError, match="no attribute 'Grinning'"):
        stats.attribute_direction("Grinning")
    # the shipped faces without glasses mostly gain them along the Eyeglasses direction
    z = stats.sample_mixture(64, 0.8, torch.Generator().manual_seed(0))
    glasses = stats.attribute_names.index("Eyeglasses")
    before = stats.attribute_probabilities(z)[:, glasses]
    after = stats.attribute_probabilities(z + 1.5 * stats.attribute_direction("Eyeglasses"))[:, glasses]
    assert (after > before).all()


@pytest.mark.skipif(not (CELEBA / "list_attr_celeba.txt").is_file(), reason="CelebA is not beside the repository")
def test_a_held_out_face_smiles_more_after_a_smile_edit_as_its_image_shows():
    model = load_model()
    stats = model.latent_stats
    labels = read_labels(CELEBA)
    held_out = identity_split(labels.identities)  # the people the directions were not fitted on
    smiling = labels.values[:, labels.names.index("Smiling")]
    files = [f for f, h, s in zip(labels.files, held_out, smiling) if h and not s][:16]
    x = to_tensor([crop_celeba(Image.open(CELEBA / "img_align_celeba" / f)) for f in files])
    smile = stats.attribute_names.index("Smiling")
    with torch.no_grad():
        z = model.encode(x)[0]

        def read(latents):  # what the classifier sees in the decoded 8-bit image
            image = (model.decode(latents) * 255).round() / 255
            return stats.attribute_probabilities(model.encode(image)[0])[:, smile]

        before, after = read(z), read(z + 1.5 * stats.attribute_direction("Smiling"))
    assert (after > before).float().mean() >= 0.9 and (after - before).mean() > 0.2


def test_the_attribute_reader_tells_people_apart_whatever_the_blur_or_side():
    """train.studies.measure_age reads attributes from images with dlib's face descriptors: a face's
    mirror image and a blurred copy stay nearer to it than another person's face is."""
    examples = ROOT / "assets" / "examples"
    faces = [align_face(examples / name)[0] for name in ["astronaut.jpg", "grace_hopper.jpg"]]
    copies = ([f.transpose(Image.Transpose.FLIP_LEFT_RIGHT) for f in faces]
              + [f.filter(ImageFilter.GaussianBlur(1.5)) for f in faces])
    d = face_descriptors(np.stack([np.asarray(f) for f in faces + copies]))
    distance = np.linalg.norm(d[:, None] - d[None], axis=2)
    other_person = distance[0, 1]
    for face, mirror, blurred in [(0, 2, 4), (1, 3, 5)]:
        assert distance[face, mirror] < other_person / 2 and distance[face, blurred] < other_person * 0.75
