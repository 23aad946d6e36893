"""FaceVAE web app: reconstruct a selfie, draw random faces, morph two faces, explore the latent space.

    python app.py [--host 127.0.0.1] [--port 7860] [--share] [--model REPO_ID_OR_FOLDER]

A thin Gradio UI over facevae.pipeline; every event has an api_name for gradio_client.
"""
from __future__ import annotations

import argparse
import atexit
import functools
import logging
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr
import pandas as pd
import torch

from facevae import load_model
from facevae.align import MAX_BYTES, PhotoError
from facevae.latent import ACTIVE_KL
from facevae.pipeline import INTERPOLATIONS, FacePipeline, animated_gif, grid_png, jpeg_bytes, png_bytes

log = logging.getLogger("facevae.app")
EXAMPLES = sorted(str(p) for p in (Path(__file__).parent / "assets" / "examples").glob("*.jpg"))
DIMENSION_SLIDERS = 8
PC_SLIDERS = 6
OUTPUT_DIR = Path(tempfile.mkdtemp(prefix="facevae-"))
atexit.register(shutil.rmtree, OUTPUT_DIR, ignore_errors=True)
# Gradio copies each returned file into its own cache as the event ends; ours are kept a while
# only so that a slow event never loses its file.
OUTPUT_MAX_AGE_SECONDS = 600
_next_cleanup = 0.0
_cleanup_lock = threading.Lock()


class PhotoInput(gr.Image):
    """gr.Image whose upload reaches facevae.align as a file path, undecoded: align's checks
    give clear messages for non-images, damaged files and decompression bombs, where Gradio's
    own decoding would fail with a cryptic error, or decode the bomb."""

    is_template = True  # drawn by the frontend's ordinary Image component

    def preprocess(self, payload):
        if payload is not None and payload.path:
            return payload.path
        return super().preprocess(payload)


def user_errors(fn):
    """Turn a PhotoError into a message in the UI (and the API's error), not a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except PhotoError as error:
            raise gr.Error(str(error)) from None

    return wrapper


def save_output(data: bytes, filename: str) -> str:
    """Write a download under its own name, in a folder of its own so that requests never
    overwrite each other's files. Once a minute, folders older than OUTPUT_MAX_AGE_SECONDS go."""
    global _next_cleanup
    now = time.time()
    if now >= _next_cleanup and _cleanup_lock.acquire(blocking=False):  # one thread cleans, the others go on
        try:
            _next_cleanup = now + 60
            for old in OUTPUT_DIR.iterdir():
                if old.stat().st_mtime < now - OUTPUT_MAX_AGE_SECONDS:
                    shutil.rmtree(old, ignore_errors=True)
        finally:
            _cleanup_lock.release()
    path = Path(tempfile.mkdtemp(dir=OUTPUT_DIR)) / filename
    path.write_bytes(data)
    return str(path)


def image_file(image, filename: str) -> str:
    """Images leave the handlers as PNG files of their own. Handed a PIL image, Gradio would
    write it to a path named by its content, in place: two requests with the same result (two
    people on the same example) could then rewrite the file while the first is downloading
    it, and that download fails ("Too little data for declared Content-Length"). Files that we
    pass are copied into Gradio's cache atomically. PNG unless the name ends in .jpg."""
    return save_output(jpeg_bytes(image) if filename.endswith(".jpg") else png_bytes(image), filename)


def activity_chart(activity: list[tuple[int, float]] | None) -> gr.BarPlot:
    """Bars of each latent dimension's average KL (pipeline.dimension_activity), most active
    first (hover for the numbers)."""
    if activity is None:
        return gr.BarPlot(visible=False)
    table = pd.DataFrame(activity, columns=["dimension", "KL (nats)"])
    table["dimension"] = "dim " + table["dimension"].astype(str)
    active = int((table["KL (nats)"] > ACTIVE_KL).sum())
    return gr.BarPlot(table, x="dimension", y="KL (nats)", sort="-y", x_axis_labels_visible=False, y_lim=[0, None],
                      height=220, label=f"Active dimensions: {active} of {len(table)} carry more than {ACTIVE_KL} nats")


def face_source(name: str, seed: int) -> tuple[PhotoInput, gr.Number]:
    """A photo input with a seed beside it, for when no photo is given."""
    with gr.Column():
        photo = PhotoInput(label=f"Face {name} (empty: a random face from the seed)", type="filepath", height=220)
        return photo, gr.Number(label=f"Seed {name}", value=seed, precision=0)


def build_demo(pipeline: FacePipeline) -> gr.Blocks:
    model = pipeline.model
    ranked = pipeline.ranked_dimensions()
    activity = pipeline.dimension_activity()
    dimension_choices = ([(f"dim {d} (KL {kl:.2f})", d) for d, kl in activity] if activity is not None
                         else [(f"dim {d}", d) for d in ranked])

    @user_errors
    def reconstruct(photo, face_number):
        if not photo:
            raise gr.Error("Upload a photo first (or pick an example).")
        result = pipeline.reconstruct(photo, int(face_number or 1) - 1)
        if not result.info.found or result.info.notes:
            gr.Warning(result.info.message)
        summary = f"**MSE** {result.mse:.4f} · **PSNR** {result.psnr:.2f} dB  \n{result.info.message}"
        return (image_file(result.face, "face.png"), image_file(result.reconstruction, "reconstruction.png"), summary,
                image_file(result.detections, "detections.jpg"))

    def sample(count, seed, temperature, prior):
        grid = pipeline.sample_grid(int(count), int(seed or 0), float(temperature), prior)
        return image_file(grid, f"faces-{prior}-seed{int(seed or 0)}.png")

    def sample_gallery(count, seed, temperature, prior):
        faces = pipeline.sample(int(count), int(seed or 0), float(temperature), prior)
        gallery = [image_file(face, f"face-{i + 1}.png") for i, face in enumerate(faces)]
        return gallery, save_output(grid_png(faces), f"faces-{prior}-seed{int(seed or 0)}.png")

    def endpoints(photo_a, seed_a, photo_b, seed_b):
        return pipeline.latent(photo_a, int(seed_a or 0)), pipeline.latent(photo_b, int(seed_b or 0))

    @user_errors
    def morph(photo_a, seed_a, photo_b, seed_b, t, method):
        return image_file(pipeline.morph(*endpoints(photo_a, seed_a, photo_b, seed_b), t, method), "blend.png")

    @user_errors
    def morph_animation(photo_a, seed_a, photo_b, seed_b, method, frames):
        images = pipeline.morph_frames(*endpoints(photo_a, seed_a, photo_b, seed_b), int(frames), method)
        strip = [image_file(image, f"frame-{i + 1}.png") for i, image in enumerate(images)]
        return strip, save_output(animated_gif(images), "morph.gif")

    @user_errors
    def explore(photo, seed, dimensions, *offsets):
        dimension_offsets = {int(d): float(v) for d, v in zip(dimensions or [], offsets[:DIMENSION_SLIDERS])}
        pc_offsets = [float(v) for v in offsets[DIMENSION_SLIDERS:]]
        return image_file(pipeline.explore(pipeline.latent(photo, int(seed or 0)), dimension_offsets, pc_offsets),
                          "face.png")

    def label_sliders(dimensions):
        chosen = list(dimensions or [])[:DIMENSION_SLIDERS]
        return [gr.update(label=f"dim {chosen[i]}", value=0, interactive=True) if i < len(chosen)
                else gr.update(label="(pick a dimension above)", value=0, interactive=False)
                for i in range(DIMENSION_SLIDERS)]

    def ping():
        return "ok"

    with gr.Blocks(title="FaceVAE", delete_cache=(1800, 3600)) as demo:
        gr.Markdown(f"# FaceVAE\nA variational autoencoder of faces (128×128, {model.latent_dim}-dimensional latent). "
                    f"Weights: **{model.source}**.")
        with gr.Tab("Reconstruct"):
            with gr.Row():
                photo = PhotoInput(label="Photo", type="filepath", sources=["upload", "webcam", "clipboard"], height=320)
                with gr.Column():
                    face_number = gr.Number(label="Face (1 = largest)", value=1, minimum=1, precision=0)
                    run = gr.Button("Reconstruct", variant="primary")
                    detections = gr.Image(label="Where the face was found", interactive=False, height=200)
            with gr.Row():
                aligned = gr.Image(label="Aligned face (model input)", interactive=False, height=256)
                reconstruction = gr.Image(label="Reconstruction", interactive=False, height=256)
            summary = gr.Markdown()
            if EXAMPLES:
                gr.Examples(EXAMPLES, inputs=[photo])
            outputs = [aligned, reconstruction, summary, detections]
            run.click(reconstruct, [photo, face_number], outputs, api_name="reconstruct")
            photo.upload(reconstruct, [photo, face_number], outputs, api_visibility="private")

        with gr.Tab("Random faces"):
            with gr.Row():
                count = gr.Slider(1, 64, value=16, step=1, label="Count")
                seed = gr.Number(label="Seed", value=0, precision=0)
                temperature = gr.Slider(0.1, 1.5, value=0.8, step=0.05, label="Temperature")
                prior = gr.Radio(pipeline.priors, value=pipeline.priors[-1], label="Prior",
                                 info="mixture: a Gaussian mixture fitted to the training faces' latents")
            draw = gr.Button("Draw faces", variant="primary")
            gallery = gr.Gallery(label="Faces", columns=8, height="auto")
            grid_file = gr.File(label="Grid as PNG")
            sample_inputs = [count, seed, temperature, prior]
            # /sample answers API callers with one PNG of all the faces (one download, not one per
            # face); the button fills the gallery, also callable as /sample_gallery.
            grid_event = gr.Button(visible=False)
            grid_event.click(sample, sample_inputs, gr.Image(visible=False), api_name="sample")
            draw.click(sample_gallery, sample_inputs, [gallery, grid_file], api_name="sample_gallery")

        with gr.Tab("Morph"):
            with gr.Row():
                photo_a, seed_a = face_source("A", 1)
                photo_b, seed_b = face_source("B", 2)
                with gr.Column():
                    blend = gr.Image(label="Blend", interactive=False, height=256)
                    t = gr.Slider(0, 1, value=0.5, step=0.01, label="t (0 = A, 1 = B)")
                    method = gr.Radio(list(INTERPOLATIONS), value="spherical", label="Interpolation")
            with gr.Row():
                frames = gr.Slider(3, 32, value=10, step=1, label="Frames")
                animate = gr.Button("Make strip and GIF")
            strip = gr.Gallery(label="Morph", columns=10, rows=1, height=190)
            gif = gr.File(label="Animated GIF")
            if EXAMPLES:
                with gr.Row():
                    gr.Examples(EXAMPLES, inputs=[photo_a], label="Examples for face A")
                    gr.Examples(EXAMPLES, inputs=[photo_b], label="Examples for face B")
            morph_inputs = [photo_a, seed_a, photo_b, seed_b]
            t.input(morph, [*morph_inputs, t, method], blend, api_name="morph", trigger_mode="always_last")
            for trigger in (photo_a.change, photo_b.change, seed_a.change, seed_b.change, method.change):
                trigger(morph, [*morph_inputs, t, method], blend, api_visibility="private", trigger_mode="always_last")
            animate.click(morph_animation, [*morph_inputs, method, frames], [strip, gif], api_name="morph_animation")

        with gr.Tab("Latent explorer"):
            with gr.Row():
                with gr.Column():
                    explore_photo = PhotoInput(label="Start from a photo (empty: a random face)", type="filepath", height=220)
                    explore_seed = gr.Number(label="Seed of the random face", value=3, precision=0)
                    with gr.Row():
                        new_face = gr.Button("New random face")
                        reset = gr.Button("Reset sliders")
                explored = gr.Image(label="Face", interactive=False, height=256)
                activity_chart(activity)
            if EXAMPLES:
                gr.Examples(EXAMPLES, inputs=[explore_photo])
            dimensions = gr.Dropdown(dimension_choices, value=ranked[:DIMENSION_SLIDERS], multiselect=True,
                                     max_choices=DIMENSION_SLIDERS, label="Latent dimensions (most informative first)")
            with gr.Row():
                with gr.Column():
                    gr.Markdown("**Latent dimensions** (in standard deviations)")
                    dimension_sliders = [gr.Slider(-3, 3, value=0, step=0.1, label=f"dim {d}")
                                         for d in ranked[:DIMENSION_SLIDERS]]
                with gr.Column():
                    gr.Markdown("**Principal directions** (in standard deviations)")
                    pc_sliders = [gr.Slider(-3, 3, value=0, step=0.1, label=f"PC {i + 1}") for i in range(PC_SLIDERS)]
            sliders = dimension_sliders + pc_sliders
            explore_inputs = [explore_photo, explore_seed, dimensions, *sliders]
            explore_event = gr.Button(visible=False)  # the documented /explore endpoint, registered first to own the name
            explore_event.click(explore, explore_inputs, explored, api_name="explore")
            for slider in sliders:
                slider.input(explore, explore_inputs, explored, api_visibility="private", trigger_mode="always_last")
            for trigger in (explore_photo.change, explore_seed.change):
                trigger(explore, explore_inputs, explored, api_visibility="private", trigger_mode="always_last")
            dimensions.change(label_sliders, dimensions, dimension_sliders, api_visibility="private").then(
                explore, explore_inputs, explored, api_visibility="private")
            reset.click(lambda: [0] * len(sliders), None, sliders, api_visibility="private").then(
                explore, explore_inputs, explored, api_visibility="private")
            new_face.click(lambda s: (None, int(s) + 1), explore_seed, [explore_photo, explore_seed], api_visibility="private")

        ping_button = gr.Button(visible=False)
        ping_button.click(ping, None, gr.Textbox(visible=False), api_name="ping")
        demo.load(explore, explore_inputs, explored, api_visibility="private")
    return demo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    parser.add_argument("--share", action="store_true", help="also serve on a public gradio.live link")
    parser.add_argument("--model", default=None, help="Hub repo id or folder (default: $FACEVAE_MODEL, else the bundled weights)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    model = load_model(args.model) if args.model else load_model()
    print(f"FaceVAE weights: {model.source}", flush=True)
    demo = build_demo(FacePipeline(model))
    demo.queue(default_concurrency_limit=2).launch(server_name=args.host, server_port=args.port, share=args.share,
                                                   max_file_size=MAX_BYTES, show_error=True)


if __name__ == "__main__":
    main()
