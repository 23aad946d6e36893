"""How much of CelebA's attributes the model keeps: each attribute read from the 128×128 crops
the VAE sees and from their reconstructions by dlib's face descriptor network (a reader
independent of the VAE), and from the posterior means by a linear and an RBF classifier.
Fitted on the labelled people train.attributes fits on, scored (AUC) on the people it holds out.

    python -m train.studies.measure_age --model assets/facevae-celeba-128 --data ../shared/data/celeba

The Younger slider falls short of its target (docs/attributes.md); this measures why: where
the photos tell age far better than the reconstructions do, no direction in the latent can move
it further.

Reproduces: docs/attributes.md, "Reading the tables, and why Younger falls short": the table of
held-out AUCs from the latent, the crops and the reconstructions.
"""
import argparse
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from facevae import load_model, to_image
from facevae.data import cache_images, encode_all
from facevae.identity import face_descriptors
from train.attributes import fit_classifier, identity_split, read_labels

ATTRIBUTES = ["Young", "Male", "Smiling", "Eyeglasses"]


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
