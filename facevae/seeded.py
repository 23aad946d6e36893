"""The seeded generator that the page has too (facevae/web/seeded.js), number for number: mulberry32
for uniforms, Box–Muller for normals, and the random faces' latents drawn with them. torch's and
numpy's generators cannot be reproduced in JavaScript; this one is a few lines on both sides.

A seed's draw of n faces: for the normal prior, face after face, latent_dim normals each
(z = T·noise); for the mixture, per face one uniform picks the component c by the cumulative
weights, then latent_dim normals (z = mean_c + T·L_c·noise, L_c the component's scale factor).
The mixture is the page's: its parameters rounded to float16 (page_mixture), on both sides."""
from __future__ import annotations

import numpy as np

MASK = 0xFFFFFFFF
GOLDEN = 0x6D2B79F5  # mulberry32's increment


def seed_state(seed: int) -> int:
    """A whole number's 32-bit starting state: the seed modulo 2**64, its two halves xor-ed (a seed
    below 2**32 is its own state)."""
    seed = int(seed) % 2**64
    return (seed ^ (seed >> 32)) & MASK


def _imul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b) & MASK  # uint64 products of 32-bit numbers are exact: JavaScript's Math.imul


class Seeded:
    """mulberry32 from a 32-bit state. Its k-th number depends on state + k·GOLDEN alone, so a run of
    them is computed at once."""

    def __init__(self, state: int):
        self.state = int(state) & MASK

    def uniforms(self, n: int) -> np.ndarray:
        """The next n numbers in (0, 1), float64."""
        t = (self.state + GOLDEN * np.arange(1, n + 1, dtype=np.uint64)) & MASK
        self.state = (self.state + GOLDEN * n) & MASK
        t = _imul(t ^ (t >> 15), t | 1)
        t = t ^ ((t + _imul(t ^ (t >> 7), t | 61)) & MASK)
        return ((t ^ (t >> 14)) + 0.5) / 2**32

    def normals(self, n: int) -> np.ndarray:
        """n standard normals (float64) by Box–Muller: each pair of uniforms (u, v) gives
        r·cos(2πv) and r·sin(2πv), r = √(−2 ln u); for an odd n the last sine is dropped."""
        u = self.uniforms(2 * ((n + 1) // 2)).reshape(-1, 2)
        r, angle = np.sqrt(-2 * np.log(u[:, 0])), 2 * np.pi * u[:, 1]
        return np.stack([r * np.cos(angle), r * np.sin(angle)], axis=1).reshape(-1)[:n]


def page_mixture(weights, means, scale_trils) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The mixture as the page gets it (app's mixture file): each parameter rounded to float16,
    returned as float64. Rounding moves a latent by at most 0.005 and a face's pixel by 1/255 at
    most (256 faces, temperatures 1 and 1.5), and halves the file."""
    return tuple(np.asarray(x, np.float32).astype(np.float16).astype(np.float64)
                 for x in (weights, means, scale_trils))


def mixture_bytes(weights, means, scale_trils) -> bytes:
    """The page's mixture file: little-endian float16, the C weights, the C×D means, then each
    component's scale factor's lower triangle, row by row (D(D+1)/2 numbers)."""
    rows, columns = np.tril_indices(np.shape(means)[1])
    parts = (np.asarray(weights), np.asarray(means), np.asarray(scale_trils)[:, rows, columns])
    return b"".join(np.asarray(part, np.float32).astype("<f2").tobytes() for part in parts)


def seeded_latents(seed: int, n: int, latent_dim: int, temperature: float = 1.0, prior: str = "normal",
                   mixture: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """The seed's n latents (n×latent_dim float32), as the page draws them; mixture: page_mixture's."""
    generator = Seeded(seed_state(seed))
    if prior == "normal":
        noise = np.stack([generator.normals(latent_dim) for _ in range(n)]) if n else np.empty((0, latent_dim))
        return (temperature * noise).astype(np.float32)
    if prior != "mixture":
        raise ValueError(f"prior must be 'normal' or 'mixture', got {prior!r}")
    if mixture is None:
        raise ValueError("these weights ship no fitted mixture prior; use prior='normal'")
    weights, means, scale_trils = mixture
    cumulative = np.cumsum(weights)
    latents = np.empty((n, latent_dim), np.float32)
    for i in range(n):
        pick = generator.uniforms(1)[0] * cumulative[-1]
        c = min(int(np.searchsorted(cumulative, pick, side="right")), len(weights) - 1)
        latents[i] = means[c] + temperature * (scale_trils[c] @ generator.normals(latent_dim))
    return latents
