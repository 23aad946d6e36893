"""Share links: what a person made (a latent and its edits, a morph, a set of random faces) as
a short URL-safe text, so that a link opens the app in the same state.

The state travels in the link itself, not on the server: links survive restarts and never
expire, and an uploaded photo is never stored or sent on; only its 200 latent numbers are.
"""
from __future__ import annotations

import base64
import json
import zlib

import numpy as np
import torch

MAX_LINK_CHARS = 4096  # a state is a few hundred characters; anything much longer is not ours


class ShareError(ValueError):
    """A share link that cannot be read; the message says so for the person who opened it."""


def to_text(data: bytes) -> str:
    """URL-safe base64 without its padding (the "=" would need escaping in a link)."""
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def from_text(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def latent_text(z: torch.Tensor) -> str:
    """A latent as float16 bytes in base64: about three significant digits, far finer than a slider step."""
    return to_text(z.detach().to(torch.float16).numpy().tobytes())


def text_latent(text: str, latent_dim: int) -> torch.Tensor:
    raw = from_text(text)
    if len(raw) != 2 * latent_dim:
        raise ShareError(f"this link's face has {len(raw) // 2} numbers; these weights need {latent_dim}")
    z = torch.from_numpy(np.frombuffer(raw, dtype=np.float16).astype(np.float32))
    if not torch.isfinite(z).all():
        raise ShareError("this link's face is damaged")
    return z


def encode_state(state: dict) -> str:
    return to_text(zlib.compress(json.dumps(state, separators=(",", ":")).encode(), 9))


def decode_state(text: str) -> dict:
    """The state in a share link; ShareError with a plain message for anything else."""
    if not text or len(text) > MAX_LINK_CHARS:
        raise ShareError("this share link is empty or too long")
    try:
        state = json.loads(zlib.decompressobj().decompress(from_text(text), 64 * 1024))
    except (ValueError, zlib.error) as error:
        raise ShareError("this share link is damaged (it may have been cut off when it was copied)") from error
    if not isinstance(state, dict) or "tab" not in state:
        raise ShareError("this share link is not one of FaceVAE's")
    return state
