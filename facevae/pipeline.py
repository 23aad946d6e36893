"""What the app does, without the UI: reconstruct a photo, draw faces, morph, explore.

Latents of photos and seeds are cached (a slider move re-decodes one latent, it does not
re-detect and re-encode the face), so interactive updates cost one decoder pass.
"""
from __future__ import annotations

import functools
import io
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from PIL import Image

from .align import FaceInfo, align_face, draw_detections
from .identity import SAME_PERSON, face_descriptors, load_identity_net
from .photo import load_photo
from .latent import UnknownAttribute, lerp, slerp
from .metrics import face_psnr, mse, psnr
from .model import FaceVAE
from .preprocess import to_grid, to_image, to_tensor
from .refine import Refinement, refine_latents
from .seeded import page_mixture, seeded_latents

INTERPOLATIONS = {"spherical": slerp, "linear": lerp}


@dataclass
class Reconstruction:
    face: Image.Image  # the aligned 128×128 input
    reconstruction: Image.Image
    mse: float
    psnr: float  # over the whole 128×128 frame
    face_psnr: float  # over the inner face (metrics.face_psnr), which the refinement weighs most
    info: FaceInfo
    detections: Image.Image  # thumbnail of the photo with the face box
    latent: torch.Tensor  # 1×latent_dim, decoded into the reconstruction


class FacePipeline:
    def __init__(self, model: FaceVAE, cache_size: int = 64, refinement: Refinement | None = Refinement()):
        """refinement: how a photo's latent is refined after encoding (facevae.refine); None
        keeps the encoder's posterior mean."""
        # channels_last: the same outputs, a third less time (16 faces decoded in 27 ms, not 37)
        self.model = model.eval().requires_grad_(False).to(memory_format=torch.channels_last)
        self.refinement = refinement
        self.identity_net = load_identity_net() if refinement and refinement.identity_weight else None
        self._latents: OrderedDict = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    @property
    def priors(self) -> list[str]:
        return ["normal", "mixture"] if self.model.latent_stats is not None else ["normal"]

    @torch.inference_mode()
    def decode(self, z: torch.Tensor) -> list[Image.Image]:
        return [to_image(y) for y in self.model.decode(z.view(-1, self.model.latent_dim))]

    @torch.inference_mode()
    def encode(self, face: Image.Image) -> torch.Tensor:
        return self.model.encode(to_tensor(face))[0][0]

    def refine(self, face: Image.Image, z: torch.Tensor, on_step=None) -> torch.Tensor:
        """The encoder's latent z of an aligned face, refined (facevae.refine); z itself when
        the pipeline refines nothing. on_step(step, loss) follows the progress."""
        if self.refinement is None:
            return z
        return refine_latents(self.model, to_tensor(face), z[None], self.refinement, self.identity_net, on_step)[0][0]

    @torch.inference_mode()
    def reconstruct(self, photo, face_index: int | None = None) -> Reconstruction:
        """The encoder's reconstruction, at once (refined_reconstruction follows it up)."""
        img, notes = load_photo(photo)  # decoded once, for the alignment and the thumbnail
        face, info = align_face(img, face_index)
        info.notes[:0] = notes
        x = to_tensor(face)
        z = self.model.encode(x)[0]
        return self._result(face, x, z, info, draw_detections(img, info))

    def refined_reconstruction(self, result: Reconstruction, on_step=None) -> Reconstruction:
        """The same face reconstructed from its refined latent (the explorer and the morph refine
        a photo's latent the same way: see latent)."""
        z = self.refine(result.face, result.latent[0], on_step)[None]
        with torch.inference_mode():
            return self._result(result.face, to_tensor(result.face), z, result.info, result.detections)

    def likeness(self, result: Reconstruction) -> tuple[float, bool]:
        """dlib's descriptor distance between the aligned face and its reconstruction, and
        whether dlib calls them the same person (about 0.3 s a face on these CPUs)."""
        return self.likeness_of(result.face, result.reconstruction)

    @staticmethod
    def likeness_of(face: Image.Image, reconstruction: Image.Image) -> tuple[float, bool]:
        """likeness() of an aligned face and a reconstruction given as images (the page's)."""
        photo, reconstructed = face_descriptors(np.stack([np.asarray(face.convert("RGB")),
                                                          np.asarray(reconstruction.convert("RGB"))]))
        distance = float(np.linalg.norm(photo - reconstructed))
        return distance, distance < SAME_PERSON

    def _result(self, face, x, z, info, detections) -> Reconstruction:
        y = self.model.decode(z)
        return Reconstruction(face, to_image(y[0]), mse(x, y).item(), psnr(x, y).item(), face_psnr(x, y).item(), info,
                              detections, z)

    @torch.inference_mode()
    def mirror(self, frame: np.ndarray) -> tuple[Image.Image, Image.Image, float, FaceInfo]:
        """One live video frame (H×W×3 uint8 RGB) -> (aligned face, reconstruction, PSNR, FaceInfo).
        The face search is the quick one (upright, on the frame as it is): the next frame comes
        soon, and a person in front of a camera rarely tilts their head past 20°."""
        face, info = align_face(Image.fromarray(frame), quick=True)
        x = to_tensor(face)
        y = self.model.reconstruct(x)
        return face, to_image(y), psnr(x, y).item(), info

    def seed_latents(self, seed: int, n: int = 1, temperature: float = 1.0, prior: str = "normal") -> torch.Tensor:
        """n latents drawn from the prior with a fixed seed: the same seed, the same faces, the page's
        too (facevae.seeded, whose generator facevae/web/seeded.js repeats). Any whole number is a
        seed: it is taken modulo 2**64. Face i is the same for any n ≥ i + 1."""
        return torch.from_numpy(seeded_latents(seed, n, self.model.latent_dim, temperature, prior, self.page_mixture))

    @functools.cached_property
    def page_mixture(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """The fitted mixture's weights, means and scale factors as the page gets them (seeded.page_mixture)."""
        stats = self.model.latent_stats
        if stats is None:
            return None
        return page_mixture(stats.mixture_weights, stats.mixture_means, stats.mixture_scale_trils)

    @torch.inference_mode()
    def sample(self, n: int, seed: int, temperature: float = 1.0, prior: str = "normal") -> list[Image.Image]:
        return self.decode(self.seed_latents(seed, n, temperature, prior))

    @torch.inference_mode()
    def sample_grid(self, n: int, seed: int, temperature: float = 1.0, prior: str = "normal",
                    columns: int = 8) -> Image.Image:
        """The same faces as sample(), as one grid image (columns per row, 2 px gaps)."""
        return to_grid(self.model.decode(self.seed_latents(seed, n, temperature, prior)), columns)

    def latent(self, photo: str | None, seed: int, prior: str | None = None, face_index: int | None = None) -> torch.Tensor:
        """The refined latent of a photo's face (by file path; the posterior mean when the
        pipeline refines nothing), or a seed's draw from the prior (by default the best one the
        weights ship: the fitted mixture, else N(0, I)); cached."""
        prior = prior or self.priors[-1]
        if photo:
            stat = os.stat(photo)
            key = ("photo", str(photo), stat.st_size, stat.st_mtime_ns, face_index)
        else:
            key = ("seed", int(seed), prior)
        with self._lock:
            if key in self._latents:
                self._latents.move_to_end(key)
                return self._latents[key]
        if photo:
            face = align_face(photo, face_index)[0]
            z = self.refine(face, self.encode(face))
        else:
            z = self.seed_latents(seed, prior=prior)[0]
        with self._lock:
            self._latents[key] = z
            while len(self._latents) > self._cache_size:
                self._latents.popitem(last=False)
        return z

    def morph(self, z0: torch.Tensor, z1: torch.Tensor, t: float, method: str = "spherical") -> Image.Image:
        return self.decode(INTERPOLATIONS[method](z0, z1, float(t)))[0]

    def morph_frames(self, z0: torch.Tensor, z1: torch.Tensor, frames: int, method: str = "spherical") -> list[Image.Image]:
        ts = torch.linspace(0, 1, max(2, int(frames)))
        return self.decode(torch.stack([INTERPOLATIONS[method](z0, z1, float(t)) for t in ts]))

    def explore(self, z: torch.Tensor, dimension_offsets: dict[int, float], pc_offsets: list[float],
                attribute_offsets: dict[str, float] | None = None) -> Image.Image:
        """Decode z moved along named attributes, latent dimensions and principal directions
        (0 everywhere: z itself). See shift for the units."""
        return self.decode(self.shift(z, dimension_offsets, pc_offsets, attribute_offsets))[0]

    def shift(self, z: torch.Tensor, dimension_offsets: dict[int, float], pc_offsets: list[float],
              attribute_offsets: dict[str, float] | None = None) -> torch.Tensor:
        """z moved by: attribute offsets in slider units (one unit: the distance between faces
        without and with the attribute; LatentStats.attribute_direction), dimension and
        principal-direction offsets in standard deviations of the training posteriors."""
        stats = self.model.latent_stats
        z = z.clone()
        for name, offset in (attribute_offsets or {}).items():
            if offset:
                if stats is None:
                    raise UnknownAttribute("these weights ship no attribute directions")
                z += float(offset) * stats.attribute_direction(name)
        for dim, offset in dimension_offsets.items():
            z[dim] += offset * (stats.std[dim] if stats is not None else 1.0)
        if stats is not None and pc_offsets:
            directions, stds = stats.principal_directions(len(pc_offsets))
            z += (torch.tensor(pc_offsets, dtype=z.dtype)[: len(stds)] * stds) @ directions
        return z

    @property
    def attribute_names(self) -> list[str]:
        stats = self.model.latent_stats
        return list(stats.attribute_names) if stats is not None else []

    def dimension_activity(self) -> list[tuple[int, float]] | None:
        """(dimension, average KL in nats) for every latent dimension, most active first; None
        when the weights ship no latent statistics."""
        stats = self.model.latent_stats
        if stats is None:
            return None
        return [(d, float(stats.kl[d])) for d in stats.ranked_dimensions()]

    def ranked_dimensions(self) -> list[int]:
        """Latent dimensions, most informative first (by average KL on the training set)."""
        if self.model.latent_stats is None:
            return list(range(self.model.latent_dim))
        return self.model.latent_stats.ranked_dimensions()


def png_bytes(image: Image.Image) -> bytes:
    """The image as PNG, written by OpenCV at zlib level 1 with run-length matching: a grid of
    16 faces in 20 ms and 342 kB, where Pillow takes 37 ms and 380 kB at level 1 (its filtering
    alone takes 18 ms) and 172 ms and 341 kB at its default level 6."""
    bgr = cv2.cvtColor(np.asarray(image.convert("RGB")), cv2.COLOR_RGB2BGR)
    return cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE])[1].tobytes()


def jpeg_bytes(image: Image.Image, quality: int = 90) -> bytes:
    """For photos, such as the detection thumbnail: about 1/25 of PNG's time, 1/5 of its bytes."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def grid_png(images: list[Image.Image], columns: int = 8) -> bytes:
    return png_bytes(to_grid(to_tensor(images), columns))


def animated_gif(frames: list[Image.Image], seconds: float = 2.0, there_and_back: bool = True) -> bytes:
    """An endlessly looping GIF of the frames (forwards, then backwards when there_and_back)."""
    sequence = frames + frames[-2:0:-1] if there_and_back and len(frames) > 2 else frames
    buffer = io.BytesIO()
    sequence[0].save(buffer, format="GIF", save_all=True, append_images=sequence[1:], loop=0,
                     duration=max(20, int(1000 * seconds / len(frames))))
    return buffer.getvalue()
