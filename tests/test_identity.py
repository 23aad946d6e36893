"""Identity: dlib's verdict (the measure), the identity network (the loss), refining a photo's
latent at upload, and the training terms meant to keep identity."""
from pathlib import Path

import numpy as np
import pytest
import torch

from facevae import FaceVAE, align_face, load_model
from facevae.identity import (
    SAME_PERSON,
    face_descriptors,
    identity_scores,
    load_identity_net,
)
from facevae.losses import face_weights
from facevae.pipeline import FacePipeline
from facevae.preprocess import images_to_tensor
from facevae.refine import Refinement, refine_latents
from train.train import Objective, training_step

EXAMPLES = Path(__file__).resolve().parent.parent / "assets" / "examples"


@pytest.fixture(scope="module")
def example_faces() -> np.ndarray:
    """The two example photos (Grace Hopper, the astronaut), aligned: 2×128×128×3 uint8."""
    return np.stack([np.asarray(align_face(EXAMPLES / name)[0]) for name in ("grace_hopper.jpg", "astronaut.jpg")])


def test_dlib_calls_a_face_and_its_mirror_the_same_person_and_two_people_not(example_faces):
    photos = face_descriptors(example_faces)
    mirrors = face_descriptors(np.ascontiguousarray(example_faces[:, :, ::-1]))
    assert np.linalg.norm(photos - mirrors, axis=1).max() < SAME_PERSON
    assert np.linalg.norm(photos[0] - photos[1]) > SAME_PERSON
    scores = identity_scores(photos, mirrors)
    assert scores["same_person"] == 1.0 and scores["rank1"] == 1.0
    assert identity_scores(photos, mirrors[::-1])["same_person"] == 0.0  # each mirror against the other person


def test_the_identity_network_ships_in_the_package_and_tells_the_two_people_apart(example_faces):
    net = load_identity_net()
    x = images_to_tensor(example_faces)
    with torch.no_grad():
        photos, mirrors = net(x), net(x.flip(3))
    assert photos.shape == (2, 128) and torch.allclose(photos.norm(dim=1), torch.ones(2), atol=1e-5)
    own, other = (photos * mirrors).sum(1), (photos * mirrors.flip(0)).sum(1)
    assert (own > other).all()


def test_the_identity_network_as_a_judge_finds_each_face_in_its_mirror_not_in_the_other_person(example_faces):
    from train.studies.compare_levers import identity_net_verdict

    mirrors = np.ascontiguousarray(example_faces[:, :, ::-1])
    with torch.no_grad():
        own, swapped = identity_net_verdict(example_faces, mirrors), identity_net_verdict(example_faces, mirrors[::-1])
    assert own["net_rank1"] == 1.0 and swapped["net_rank1"] == 0.0
    assert own["net_cosine"] > swapped["net_cosine"]


def test_refinement_lowers_the_loss_it_optimises_and_stops_at_its_step_limit(example_faces):
    model = load_model().requires_grad_(False)
    x = images_to_tensor(example_faces)
    with torch.no_grad():
        z0 = model.encode(x)[0]
    steps = []
    settings = Refinement(steps=6, identity_weight=200.0, face_weight=3.0)  # every term, whatever the app uses
    z, losses = refine_latents(model, x, z0, settings, load_identity_net(), lambda step, loss: steps.append(step))
    assert steps == list(range(1, 7)) and len(losses) == 7
    assert losses[-1] < losses[0]
    assert z.shape == z0.shape and not torch.equal(z, z0)


def test_a_face_weight_spends_the_refinement_on_the_inner_face(example_faces):
    model = load_model().requires_grad_(False)
    x = images_to_tensor(example_faces)
    with torch.no_grad():
        z0 = model.encode(x)[0]
    inner = face_weights(128, 2.0) > 1  # the box face_weights weighs

    def inner_error(face_weight: float) -> float:
        z, _ = refine_latents(model, x, z0, Refinement(steps=10, face_weight=face_weight))
        with torch.no_grad():
            return (model.decode(z) - x).pow(2)[inner.expand_as(x)].mean().item()

    assert inner_error(4.0) < inner_error(1.0)


def test_each_example_reconstruction_is_nearer_its_own_photo_than_the_others(example_faces):
    """The shipped model's reconstructions of the two example photos, the encoder's (the live
    mirror's) and the refined ones (the Reconstruct tab's), each nearer by dlib to its own photo
    than to the other's."""
    pipeline = FacePipeline(load_model())
    encoded = [pipeline.reconstruct(EXAMPLES / name) for name in ("grace_hopper.jpg", "astronaut.jpg")]
    refined = [pipeline.refined_reconstruction(result) for result in encoded]
    photos = face_descriptors(example_faces)
    for results in (encoded, refined):
        reconstructions = face_descriptors(np.stack([np.asarray(r.reconstruction) for r in results]))
        distances = np.linalg.norm(reconstructions[:, None] - photos[None], axis=2)
        assert distances[0, 0] < distances[0, 1] and distances[1, 1] < distances[1, 0], distances


def test_the_face_weights_and_the_identity_term_enter_a_training_step(faces):
    weights = face_weights(128, 3.0)
    assert weights.mean().item() == pytest.approx(1.0)
    assert weights[0, 0, 64, 64] / weights[0, 0, 2, 2] == pytest.approx(3.0)  # the face's middle, a corner
    model = FaceVAE(dropout=0.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    batch = torch.from_numpy(np.stack([np.asarray(face.resize((128, 128))) for face in faces[:4]]))
    before = [p.detach().clone() for p in model.parameters()]
    objective = Objective("gaussian", 0.4, weights, load_identity_net(), identity_weight=1000.0)
    terms = training_step(model, optimizer, batch, objective, kl_weight=1.0)
    assert 0.0 <= terms.identity.item() <= 2.0
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert terms.total.item() == pytest.approx(terms.reconstruction.item() + 0.4 * terms.kl.item()
                                               + 1000.0 * terms.identity.item(), rel=1e-4)
