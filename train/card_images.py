"""The model card's pictures: samples from both priors and reconstructions of the example
photos (public domain: no CelebA image may be shipped with the weights).

    python -m train.card_images --model assets/facevae-celeba-128
"""
import argparse
from pathlib import Path

import torch

from facevae import align_face, load_model, to_tensor
from facevae.preprocess import to_grid

EXAMPLES = Path(__file__).resolve().parent.parent / "assets" / "examples"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--temperature", type=float, default=0.8)
    args = parser.parse_args()
    model, out = load_model(args.model), Path(args.model)
    for prior in ("normal", "mixture"):
        faces = model.sample(32, args.temperature, prior, torch.Generator().manual_seed(0))
        to_grid(faces, columns=8).save(out / f"samples_{prior}.png")
    photos = sorted(EXAMPLES.glob("*.jpg"))
    x = to_tensor([align_face(str(p))[0] for p in photos])
    to_grid(torch.cat([x, model.reconstruct(x)]), columns=len(photos)).save(out / "reconstructions.png")
    print(f"wrote samples_normal.png, samples_mixture.png and reconstructions.png to {out}")


if __name__ == "__main__":
    main()
