"""Named attribute directions in the latent space (smile, glasses, age, ...), fitted on CelebA's
labelled training images, as InterFaceGAN does for GANs, and measured by editing held-out faces.

train.latent_stats calls fit_attributes and stores the result in the latent statistics;
    python -m train.attributes --model assets/facevae-celeba-128 --data ../shared/data/celeba
re-fits and measures them alone, and prints the tables for docs/attributes.md.

- Classifiers: a logistic regression per attribute on the posterior means, fitted on 80% of
  the labelled identities and scored (AUC) on the other 20%: no person is in both parts.
- Directions: the classifier's normal, with the normals of the attributes that must not change
  alongside projected out (InterFaceGAN's conditional manipulation): CelebA's attributes are
  correlated (old with male, make-up with female), and a plain "Young" direction changes gender.
- Scale: one slider unit moves a latent by the distance between the means of the faces without
  and with the attribute, measured along the direction.
- Measurement: held-out faces edited by ±1.5 units, decoded to 8-bit images and encoded again,
  so the classifiers read what the image shows.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegressionCV
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupKFold

ATTRIBUTE_FILE = "list_attr_celeba.txt"
IDENTITY_FILE = "identity_CelebA.txt"
MIN_POSITIVES = 40  # in each part; rarer attributes are too few to fit or to score
# A slider is offered where the latent clearly predicts its attribute (held-out AUC) and an edit
# of ±1.5 units moves it by TARGET_CHANGE both ways (what a person notices); the four most
# asked-for attributes (CORE) are offered whenever they can be fitted, and the report says
# whether they reach the target.
MIN_AUC = 0.75
TARGET_CHANGE = 0.3
MEASURE_UNITS = 1.5
# Not offered: a judgement of looks, and a property of the photo rather than of the face.
NOT_OFFERED = {"Attractive", "Blurry"}
# Attributes held fixed while moving another (their normals are projected out). The four most
# asked-for sliders are kept apart from each other, and from what CelebA ties them to.
CORE = ["Male", "Young", "Smiling", "Eyeglasses"]
HELD_FIXED = {
    "Male": ["Young", "Smiling", "Eyeglasses"],
    "Young": ["Male", "Smiling", "Eyeglasses"],
    "Smiling": ["Male", "Young", "Eyeglasses", "Mouth_Slightly_Open"],
    "Eyeglasses": ["Male", "Young", "Smiling"],
    "Mouth_Slightly_Open": ["Smiling"],
}
DEFAULT_HELD_FIXED = ["Male", "Young", "Smiling", "Eyeglasses"]


@dataclass
class Labels:
    names: list[str]  # CelebA's 40 attribute names, in the file's order
    files: list[str]  # image file names
    values: np.ndarray  # N×40 booleans
    identities: np.ndarray  # N person ids


def read_labels(root: str | Path) -> Labels:
    """CelebA's attribute file (official format: count, names, then "<file> <40 × ±1>") and the
    identities of the same images."""
    root = Path(root)
    lines = (root / ATTRIBUTE_FILE).read_text().splitlines()
    names = lines[1].split()
    rows = [line.split() for line in lines[2:] if line.strip()]
    identity = dict(line.split() for line in (root / IDENTITY_FILE).read_text().splitlines() if line.strip())
    files = [row[0] for row in rows]
    values = np.array([[v == "1" for v in row[1:]] for row in rows], dtype=bool)
    return Labels(names, files, values, np.array([int(identity[f]) for f in files]))


def identity_split(identities: np.ndarray, held_out: float = 0.2, seed: int = 0) -> np.ndarray:
    """True for the images of a random `held_out` fraction of the people."""
    people = np.unique(identities)
    chosen = np.random.default_rng(seed).choice(people, int(round(len(people) * held_out)), replace=False)
    return np.isin(identities, chosen)


def fit_classifier(mu: np.ndarray, labels: np.ndarray, identities: np.ndarray) -> LogisticRegressionCV:
    """L2 logistic regression, its strength chosen by 5-fold cross-validation over people, on
    log-loss: the probabilities must be calibrated, since edits are measured in them."""
    folds = list(GroupKFold(5).split(mu, labels, identities))
    return LogisticRegressionCV(Cs=[0.001, 0.003, 0.01, 0.03, 0.1], cv=folds, scoring="neg_log_loss", max_iter=3000,
                                l1_ratios=(0.0,), use_legacy_attributes=False).fit(mu, labels)


def conditional_direction(normal: np.ndarray, fixed: list[np.ndarray]) -> np.ndarray:
    """The unit normal with the span of the fixed attributes' normals projected out."""
    if fixed:
        basis, _ = np.linalg.qr(np.stack(fixed, 1))
        normal = normal - basis @ (basis.T @ normal)
    return normal / np.linalg.norm(normal)


@dataclass
class AttributeFit:
    names: list[str]  # the offered attributes, CelebA's names
    directions: np.ndarray  # A×D: what one slider unit adds to a latent
    weights: np.ndarray  # A×D, and bias A: the classifiers (probability = sigmoid(mu·w + b))
    bias: np.ndarray
    auc: dict[str, float]  # held-out AUC of every attribute with enough examples
    skipped: dict[str, str]  # attribute -> why it has no slider


def fit_attributes(mu: np.ndarray, labels: Labels, held_out: np.ndarray) -> AttributeFit:
    """Classifiers and directions from posterior means `mu` (N×D, the labelled images' rows)."""
    fit_part = ~held_out
    classifiers, auc, skipped = {}, {}, {}
    for i, name in enumerate(labels.names):
        y = labels.values[:, i]
        counts = [int(y[fit_part].sum()), int((~y[fit_part]).sum()), int(y[held_out].sum()), int((~y[held_out]).sum())]
        if min(counts) < MIN_POSITIVES:
            skipped[name] = f"too few examples ({min(counts)} in one part)"
            continue
        classifiers[name] = fit_classifier(mu[fit_part], y[fit_part], labels.identities[fit_part])
        auc[name] = float(roc_auc_score(y[held_out], classifiers[name].decision_function(mu[held_out])))
        if name in NOT_OFFERED:
            skipped[name] = "not offered"
        elif auc[name] < MIN_AUC and name not in CORE:
            skipped[name] = f"held-out AUC below {MIN_AUC}"
    offered = [n for n in classifiers if n not in skipped]
    unit = {n: classifiers[n].coef_[0] / np.linalg.norm(classifiers[n].coef_[0]) for n in classifiers}
    directions = []
    for name in offered:
        fixed = [unit[f] for f in HELD_FIXED.get(name, DEFAULT_HELD_FIXED) if f != name and f in unit]
        direction = conditional_direction(unit[name], fixed)
        y = labels.values[fit_part, labels.names.index(name)]
        gap = float((mu[fit_part][y].mean(0) - mu[fit_part][~y].mean(0)) @ direction)
        directions.append(direction * gap)
    return AttributeFit(
        names=offered, directions=np.stack(directions).astype(np.float32),
        weights=np.stack([classifiers[n].coef_[0] for n in offered]).astype(np.float32),
        bias=np.array([classifiers[n].intercept_[0] for n in offered], dtype=np.float32), auc=auc, skipped=skipped)


@torch.no_grad()
def reencode(model, z: torch.Tensor, batch_size: int = 250) -> torch.Tensor:
    """Decode to 8-bit images (what a person sees) and encode again: posterior means."""
    out = []
    for start in range(0, len(z), batch_size):
        images = (model.decode(z[start:start + batch_size]) * 255).round() / 255
        out.append(model.encode(images)[0])
    return torch.cat(out)


def probabilities(fit: AttributeFit, mu: torch.Tensor) -> torch.Tensor:
    """N×A: each offered attribute's classifier probability."""
    return torch.sigmoid(mu @ torch.from_numpy(fit.weights).T + torch.from_numpy(fit.bias))


def measure_edits(model, fit: AttributeFit, mu: torch.Tensor, has: np.ndarray, units: float = MEASURE_UNITS) -> np.ndarray:
    """A×A×2: the mean change of attribute b's probability when faces without attribute a move
    by +units along it (…, 0), and faces with it by -units (…, 1), against their unedited round
    trip. `has`: N×A labels of the faces `mu` for the offered attributes."""
    base = probabilities(fit, reencode(model, mu))
    change = np.zeros((len(fit.names), len(fit.names), 2))
    for a, direction in enumerate(torch.from_numpy(fit.directions)):
        for s, (sign, faces) in enumerate([(1, ~has[:, a]), (-1, has[:, a])]):
            faces = torch.from_numpy(faces)
            edited = probabilities(fit, reencode(model, mu[faces] + sign * units * direction))
            change[a, :, s] = (edited - base[faces]).mean(0).numpy()
    return change


def fit_and_measure(model, mu: torch.Tensor, labels: Labels) -> tuple[AttributeFit, np.ndarray]:
    """Fit on 80% of the labelled people, measure the edits on the other 20%, and keep the
    sliders that work (and CORE)."""
    held_out = identity_split(labels.identities)
    fit = fit_attributes(mu.numpy(), labels, held_out)
    has = labels.values[held_out][:, [labels.names.index(n) for n in fit.names]]
    return keep_effective(fit, measure_edits(model, fit, mu[torch.from_numpy(held_out)], has))


def keep_effective(fit: AttributeFit, change: np.ndarray) -> tuple[AttributeFit, np.ndarray]:
    """Only the sliders whose edit moves their own attribute by TARGET_CHANGE both ways, and CORE."""
    keep = [a for a, name in enumerate(fit.names)
            if min(change[a, a, 0], -change[a, a, 1]) >= TARGET_CHANGE or name in CORE]
    for a, name in enumerate(fit.names):
        if a not in keep:
            fit.skipped[name] = f"an edit of ±{MEASURE_UNITS} moves it by {change[a, a, 0]:+.2f} / {change[a, a, 1]:+.2f}"
    kept = AttributeFit([fit.names[a] for a in keep], fit.directions[keep], fit.weights[keep], fit.bias[keep],
                        fit.auc, fit.skipped)
    return kept, change[np.ix_(keep, keep)]


def report(fit: AttributeFit, change: np.ndarray) -> str:
    """Markdown: the AUC table and the full edit matrix, for docs/attributes.md."""
    lines = [f"| attribute | held-out AUC | slider | own change at +1.5 / −1.5 (target ±{TARGET_CHANGE}) |",
             "| --- | --- | --- | --- |"]
    for name, auc in sorted(fit.auc.items(), key=lambda kv: -kv[1]):
        if name in fit.names:
            a = fit.names.index(name)
            met = "✓" if min(change[a, a, 0], -change[a, a, 1]) >= TARGET_CHANGE else "✗"
            lines.append(f"| {name} | {auc:.3f} | yes | {change[a, a, 0]:+.2f} / {change[a, a, 1]:+.2f} {met} |")
        else:
            lines.append(f"| {name} | {auc:.3f} | no: {fit.skipped[name]} | |")
    for name, why in fit.skipped.items():
        if name not in fit.auc:
            lines.append(f"| {name} | | no: {why} | |")
    short = [n.replace("_", " ") for n in fit.names]
    lines += ["", "Change of each attribute's probability (columns) when a slider (rows) moves faces without "
                  "its attribute by +1.5 / faces with it by −1.5:", "",
              "| slider \\ attribute | " + " | ".join(short) + " |", "|---" * (len(short) + 1) + "|"]
    for a, name in enumerate(short):
        lines.append(f"| **{name}** | " + " | ".join(f"{change[a, b, 0]:+.2f} / {change[a, b, 1]:+.2f}"
                                                      for b in range(len(short))) + " |")
    core = [fit.names.index(n) for n in CORE if n in fit.names]
    leaks = [np.mean(np.abs(change[a, b])) for a in core for b in core if a != b]
    lines += ["", f"Among {', '.join(CORE)}: the largest change of another's probability, averaged over "
                  f"±1.5, is {max(leaks):.3f}; own changes at least "
                  f"{min(min(change[a, a, 0], -change[a, a, 1]) for a in range(len(short))):.2f}."]
    return "\n".join(lines)


def main() -> None:
    from facevae import load_model
    from facevae.data import cache_images, encode_all

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True, help="CelebA root with list_attr_celeba.txt")
    args = parser.parse_args()
    model = load_model(args.model)
    labels = read_labels(args.data)
    images = cache_images([Path(args.data) / "img_align_celeba" / f for f in labels.files], model.image_size).array
    mu, _ = encode_all(model, images)
    fit, change = fit_and_measure(model, mu, labels)
    print(report(fit, change))


if __name__ == "__main__":
    main()
