"""Export a model folder's decoder and encoder to ONNX (its onnx/decoder.onnx, which decodes and
gives the decoder's vector-Jacobian product, and onnx/encoder.onnx), their weights in float16, and
check each: against torch on the same float16-rounded weights (facevae.export.ONNX_TOLERANCE), and
against the float32 model (facevae.export.FLOAT16_PSNR).

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
from facevae.export import FLOAT16_PSNR, ONNX_EXPORTS, ONNX_PSNR, ONNX_TOLERANCE
from facevae.loading import BUNDLED_MODEL


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(BUNDLED_MODEL), help="a save_pretrained folder")
    args = parser.parse_args(argv)
    model = load_model(args.model)
    (Path(args.model) / "onnx" / "decoder_vjp.onnx").unlink(missing_ok=True)  # the decoder file does its work now
    for name, (file, export, difference_to_torch) in ONNX_EXPORTS.items():
        path = export(model, Path(args.model) / file)
        difference, psnrs = difference_to_torch(model, path), ONNX_PSNR[name](model, path)
        print(f"{path}: {path.stat().st_size / 1e6:.2f} MB, largest difference to torch {difference:.1e}; "
              f"against float32: " + ", ".join(f"{output} {db:.1f} dB" for output, db in psnrs.items()))
        if difference > ONNX_TOLERANCE[name]:  # pixels in [0, 1]; mu and z_grad relative to their largest magnitude
            sys.exit(f"{path} differs from torch by {difference:.1e} (more than {ONNX_TOLERANCE[name]:.0e})")
        if min(psnrs.values()) < FLOAT16_PSNR:
            sys.exit(f"{path}'s float16 weights move its outputs too far: {psnrs} (at least {FLOAT16_PSNR} dB)")


if __name__ == "__main__":
    main()
