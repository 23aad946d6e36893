"""How much of CelebA's attributes the model keeps: each attribute read from the 128×128 crops
the VAE sees and from their reconstructions by dlib's face descriptor network (a reader
independent of the VAE), and from the posterior means by a linear and an RBF classifier.
Fitted on the labelled people train.attributes fits on, scored (AUC) on the people it holds out.

    python -m train.studies.measure_age --model assets/facevae-celeba-128 --data ../shared/data/celeba

The Younger slider falls short of its target (docs/attributes.md); this measures why: where
the photos tell age far better than the reconstructions do, no direction in the latent can move
it further.
"""
import argparse
import functools
from pathlib import Path

import dlib
import numpy as np
import torch
from PIL import Image
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from facevae import load_model, to_image
from facevae.align import PREDICTOR_FILE, model_file
from facevae.data import cache_images, encode_all
from train.attributes import fit_classifier, identity_split, read_labels

ATTRIBUTES = ["Young", "Male", "Smiling", "Eyeglasses"]
DESCRIPTOR_FILE = "dlib_face_recognition_resnet_model_v1.dat"
DESCRIBE_SIDE = 256  # the crops upscaled: dlib's landmarks and descriptor want faces over 128 px
CENTRE_BOX = dlib.rectangle(40, 60, 216, 236)  # where the face sits in a CelebA crop at 256 px


@functools.cache
def descriptor_models() -> tuple:
    """dlib's HOG detector, 68-point landmark predictor and face descriptor network, loaded once."""
    return (dlib.get_frontal_face_detector(), dlib.shape_predictor(model_file(PREDICTOR_FILE)),
            dlib.face_recognition_model_v1(model_file(DESCRIPTOR_FILE)))


def face_descriptors(images: np.ndarray) -> np.ndarray:
    """N×128 dlib face descriptors of N×H×W×3 uint8 face crops: the HOG detector's box, or the
    centre where it finds none (blurred reconstructions)."""
    detector, predictor, network = descriptor_models()
    out = np.zeros((len(images), 128), np.float32)
    for i, image in enumerate(images):
        big = np.asarray(Image.fromarray(image).resize((DESCRIBE_SIDE, DESCRIBE_SIDE), Image.BICUBIC))
        boxes = detector(big, 0)
        out[i] = network.compute_face_descriptor(big, predictor(big, boxes[0] if boxes else CENTRE_BOX))
    return out


@torch.no_grad()
def reconstruct(model, mu: torch.Tensor, batch_size: int = 500) -> np.ndarray:
    """The decoded posterior means as N×H×W×3 uint8 images, what a person sees."""
    decoded = torch.cat([model.decode(mu[start:start + batch_size]) for start in range(0, len(mu), batch_size)])
    return np.stack([np.asarray(to_image(image)) for image in decoded])


def held_out_auc(features: np.ndarray, y: np.ndarray, identities: np.ndarray, held_out: np.ndarray) -> float:
    classifier = fit_classifier(features[~held_out], y[~held_out], identities[~held_out])
    return float(roc_auc_score(y[held_out], classifier.decision_function(features[held_out])))


def rbf_auc(features: np.ndarray, y: np.ndarray, held_out: np.ndarray) -> float:
    """A nonlinear reading of the latent: whether age lies in it other than along a line."""
    scaled = StandardScaler().fit(features[~held_out]).transform(features)
    classifier = SVC(C=1.0, gamma="scale").fit(scaled[~held_out], y[~held_out])
    return float(roc_auc_score(y[held_out], classifier.decision_function(scaled[held_out])))


def measure(model, images: np.ndarray, labels) -> dict[str, dict[str, float]]:
    """attribute -> reader -> held-out AUC, for images (the labelled crops, uint8)."""
    held_out = identity_split(labels.identities)
    mu, _ = encode_all(model, images)
    readers = {"crops": face_descriptors(images), "reconstructions": face_descriptors(reconstruct(model, mu))}
    table = {}
    for name in ATTRIBUTES:
        y = labels.values[:, labels.names.index(name)]
        table[name] = {"latent, linear": held_out_auc(mu.numpy(), y, labels.identities, held_out),
                       "latent, RBF": rbf_auc(mu.numpy(), y, held_out)}
        for reader, features in readers.items():
            table[name][f"dlib descriptor of the {reader}"] = held_out_auc(features, y, labels.identities, held_out)
    return table


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="a save_pretrained folder (default: the bundled weights)")
    parser.add_argument("--data", required=True, help="CelebA root with list_attr_celeba.txt")
    args = parser.parse_args(argv)
    model = load_model(args.model)
    labels = read_labels(args.data)
    images = cache_images([Path(args.data) / "img_align_celeba" / f for f in labels.files], model.image_size).array
    table = measure(model, images, labels)
    readers = list(next(iter(table.values())))
    print("| held-out AUC | " + " | ".join(readers) + " |\n" + "|---" * (len(readers) + 1) + "|")
    for name, row in table.items():
        print(f"| {name} | " + " | ".join(f"{row[r]:.3f}" for r in readers) + " |")
    return table


if __name__ == "__main__":
    main()
