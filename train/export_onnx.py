"""Export a model folder's decoder, encoder and decoder VJP to ONNX (its onnx/decoder.onnx,
onnx/encoder.onnx and onnx/decoder_vjp.onnx) and check each against torch.

    python -m train.export_onnx [--model assets/facevae-celeba-128]

Run it whenever the weights change: the app decodes slider moves in the browser with the decoder,
and falls back to decoding on the server when a model folder has none; the encoder and the VJP
are for refining a latent in the browser.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from facevae import load_model
from facevae.export import ONNX_EXPORTS, ONNX_TOLERANCE
from facevae.loading import BUNDLED_MODEL


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(BUNDLED_MODEL), help="a save_pretrained folder")
    args = parser.parse_args(argv)
    model = load_model(args.model)
    for name, (file, export, difference_to_torch) in ONNX_EXPORTS.items():
        path = export(model, Path(args.model) / file)
        difference = difference_to_torch(model, path)
        print(f"{path}: {path.stat().st_size / 1e6:.1f} MB, largest difference to torch {difference:.1e}")
        if difference > ONNX_TOLERANCE[name]:  # pixels in [0, 1]; mu and z_grad relative to their largest magnitude
            sys.exit(f"{path} differs from torch by {difference:.1e} (more than {ONNX_TOLERANCE[name]:.0e})")


if __name__ == "__main__":
    main()
