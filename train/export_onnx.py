"""Export a model folder's decoder to ONNX (its onnx/decoder.onnx) and check it against torch.

    python -m train.export_onnx [--model assets/facevae-celeba-128]

Run it whenever the weights change: the app decodes slider moves in the browser with this file,
and falls back to decoding on the server when a model folder has none.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from facevae import load_model
from facevae.export import ONNX_DECODER, decoder_difference, export_decoder
from facevae.loading import BUNDLED_MODEL

TOLERANCE = 1e-5  # pixels in [0, 1]; torch 2.14's exporter gives about 3e-7


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(BUNDLED_MODEL), help="a save_pretrained folder")
    args = parser.parse_args(argv)
    model = load_model(args.model)
    path = export_decoder(model, Path(args.model) / ONNX_DECODER)
    difference = decoder_difference(model, path)
    print(f"{path}: {path.stat().st_size / 1e6:.1f} MB, largest difference to torch {difference:.1e}")
    if difference > TOLERANCE:
        sys.exit(f"the ONNX decoder differs from torch by {difference:.1e} (more than {TOLERANCE:.0e})")


if __name__ == "__main__":
    main()
