"""The model card's pictures: samples from both priors, reconstructions of the example photos
(public domain: no CelebA image may be shipped with the weights), and the attribute edits; and
the README's animation, morph.gif: random faces morphing into one another, in a loop.

    python -m train.studies.card_images --model assets/facevae-celeba-128

Reproduces: the model card's images (in assets/facevae-celeba-128/, JPEG), the README's morph.gif
and docs/attributes.md, "What the edits look like" (attribute_edits.jpg).
"""
import argparse
from pathlib import Path

import torch
from PIL import Image, ImageDraw

from facevae import align_face, load_model, slerp, to_tensor
from facevae.latent import attribute_label, attribute_order
from facevae.preprocess import to_grid

EXAMPLES = Path(__file__).resolve().parents[2] / "assets" / "examples"
EDIT_STEPS = (-2, -1, 0, 1, 2)
EDIT_FACE_SIZE = 96  # the edit grid has a row per attribute: smaller faces keep it readable
# morph.gif: faces of 96 px, 128 colours a frame, no dithering: 0.7 MB (at 128 px, 1.6 MB)
MORPH_FACE_SIZE, MORPH_COLOURS = 96, 128
# The still images as JPEG at quality 90 with full-resolution colour: a fifth of the PNGs' bytes
# (each release's images stay in the repository's history), and, unlike WebP at 90, they keep the
# faces' grain and any faint lattice the decoder draws, which the card is there to show.
JPEG = dict(quality=90, subsampling=0)


@torch.no_grad()
def edit_grid(model, faces: torch.Tensor, label_width: int = 150, gap: int = 8) -> Image.Image:
    """A row per shipped attribute: each face (rows of `faces`, latents) edited from -2 to +2
    slider units, in the app's order and with its labels and slider directions."""
    stats = model.latent_stats
    names = attribute_order(stats.attribute_names)
    size, per_face = EDIT_FACE_SIZE, len(EDIT_STEPS) * EDIT_FACE_SIZE
    width = label_width + len(faces) * (per_face + gap)
    canvas = Image.new("RGB", (width, 24 + len(names) * (size + 4)), "white")
    draw = ImageDraw.Draw(canvas)
    for f in range(len(faces)):
        for i, step in enumerate(EDIT_STEPS):
            draw.text((label_width + f * (per_face + gap) + i * size + size // 2 - 6, 6), f"{step:+d}" if step else "0",
                      fill="black")
    for row, name in enumerate(names):
        label, sign = attribute_label(name)
        top = 24 + row * (size + 4)
        draw.text((6, top + size // 2 - 6), label, fill="black")
        steps = torch.tensor(EDIT_STEPS, dtype=torch.float32) * sign
        for f, z in enumerate(faces):
            images = model.decode(z + steps[:, None] * stats.attribute_direction(name))
            strip = to_grid(images, columns=len(EDIT_STEPS), padding=0).resize((per_face, size), Image.Resampling.LANCZOS)
            canvas.paste(strip, (label_width + f * (per_face + gap), top))
    return canvas


@torch.no_grad()
def morph_frames(model, faces: int = 4, keys: int = 4, steps: int = 8, temperature: float = 1.0,
                 seed: int = 5) -> list[Image.Image]:
    """`faces` side by side, each a loop through `keys` mixture-prior faces: `steps` frames from
    one to the next (spherical interpolation, eased so each face pauses), back to the first."""
    z = model.latent_stats.sample_mixture(faces * keys, temperature, torch.Generator().manual_seed(seed))
    z = z.view(keys, faces, -1)
    frames = []
    for k in range(keys):
        for s in range(steps):
            t = s / steps
            strip = to_grid(model.decode(slerp(z[k], z[(k + 1) % keys], t * t * (3 - 2 * t))), columns=faces, padding=0)
            frames.append(strip.resize((faces * MORPH_FACE_SIZE, MORPH_FACE_SIZE), Image.Resampling.LANCZOS))
    return frames


def save_gif(frames: list[Image.Image], path: Path, frame_ms: int = 80) -> None:
    paletted = [f.quantize(MORPH_COLOURS, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE) for f in frames]
    paletted[0].save(path, save_all=True, append_images=paletted[1:], duration=frame_ms, loop=0, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--temperature", type=float, default=1.0, help="the app's default")
    args = parser.parse_args()
    model, out = load_model(args.model), Path(args.model)
    for prior in ("normal", "mixture"):
        faces = model.sample(32, args.temperature, prior, torch.Generator().manual_seed(0))
        to_grid(faces, columns=8).save(out / f"samples_{prior}.jpg", **JPEG)
    photos = sorted(EXAMPLES.glob("*.jpg"))
    x = to_tensor([align_face(str(p))[0] for p in photos])
    to_grid(torch.cat([x, model.reconstruct(x)]), columns=len(photos)).save(out / "reconstructions.jpg", **JPEG)
    written = ["samples_normal.jpg", "samples_mixture.jpg", "reconstructions.jpg"]
    if model.latent_stats is not None:
        save_gif(morph_frames(model, temperature=args.temperature), out / "morph.gif")
        written.append("morph.gif")
    if model.latent_stats is not None and model.latent_stats.attribute_names:
        uploaded = model.encode(x)[0]  # the example photos, as an upload would be
        drawn = model.latent_stats.sample_mixture(2, args.temperature, torch.Generator().manual_seed(3))
        edit_grid(model, torch.cat([uploaded, drawn])).save(out / "attribute_edits.jpg", **JPEG)
        written.append("attribute_edits.jpg")
    print(f"wrote {', '.join(written)} to {out}")


if __name__ == "__main__":
    main()
