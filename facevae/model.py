"""The FaceVAE model: a convolutional VAE exactly as the original write-up describes it.

Encoder: four Conv(k3, s2, p1) -> BatchNorm -> LeakyReLU -> Dropout blocks, then two Linear
heads (mu, log-variance). Decoder: Linear -> reshape -> three ConvTranspose blocks -> a final
ConvTranspose(k3, s2, p0) whose odd-sized output is cropped back to the image size.
"""
from __future__ import annotations

import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

# 16-bit random words give a drop probability within 1/65536 of the requested one.
_WORD_LEVELS = 1 << 16


class FastDropout(nn.Module):
    """Inverted dropout with the same semantics as nn.Dropout, but cheaper masks on CPU.

    nn.Dropout draws one Bernoulli sample per element (`bernoulli_`), about a quarter of a
    training step here. This draws one 64-bit random integer per four elements, splits it into
    16-bit words and keeps an element when its word is at or above the threshold: the drop
    probability is within 1/65536 of p, and the kept values are scaled by the exact 1/(1-p').
    The mask is laid out like the input (channels_last stays channels_last) and multiplied in
    the input's dtype (bf16 under autocast), already scaled: one multiplication forward and one
    backward, where `x * bool_mask * scale` cost five times as much in fp32.
    """

    def __init__(self, p: float):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p
        self.threshold = round(p * _WORD_LEVELS)
        self.scale = 1.0 / (1.0 - self.threshold / _WORD_LEVELS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.threshold == 0:
            return x
        keep = keep_mask(x.numel(), self.threshold, x.device)
        dense = x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last)
        keep = keep.as_strided(x.shape, x.stride()) if dense else keep.view(x.shape)
        return x * keep.to(x.dtype).mul_(self.scale)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def keep_mask(n: int, threshold: int, device: torch.device) -> torch.Tensor:
    """n booleans, each False with probability threshold/65536."""
    words = torch.empty((n + 3) // 4, dtype=torch.int64, device=device)
    # The range [-2**63, 2**63 - 1) makes all 64 bits uniform (plain random_() leaves the sign
    # bit 0), so each of the four 16-bit words is uniform over the int16 range.
    words.random_(-(1 << 63), (1 << 63) - 1)
    return (words.view(torch.int16) >= threshold - _WORD_LEVELS // 2)[:n]


class FaceVAE(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="facevae",
    tags=["vae", "faces", "celeba"],
    license="mit",
):
    """Convolutional VAE for faces. Every size comes from the constructor's arguments, which
    PyTorchModelHubMixin stores as config.json next to model.safetensors."""

    def __init__(
        self,
        image_size: int = 128,
        in_channels: int = 3,
        encoder_channels: list[int] = (32, 64, 64, 64),
        decoder_channels: list[int] = (64, 64, 32),
        latent_dim: int = 200,
        dropout: float = 0.2,
        negative_slope: float = 0.001,
    ):
        super().__init__()
        encoder_channels, decoder_channels = list(encoder_channels), list(decoder_channels)
        if len(decoder_channels) != len(encoder_channels) - 1:
            raise ValueError("the decoder needs one block fewer than the encoder (its final layer is the last upsampling)")
        downscale = 2 ** len(encoder_channels)
        if image_size % downscale:
            raise ValueError(f"image_size must be a multiple of {downscale}, got {image_size}")
        self.image_size, self.in_channels, self.latent_dim = image_size, in_channels, latent_dim
        self.feature_shape = (encoder_channels[-1], image_size // downscale, image_size // downscale)
        features = encoder_channels[-1] * (image_size // downscale) ** 2

        def block(conv: nn.Module, channels: int) -> nn.Sequential:
            return nn.Sequential(conv, nn.BatchNorm2d(channels), nn.LeakyReLU(negative_slope), FastDropout(dropout))

        widths = [in_channels, *encoder_channels]
        self.encoder = nn.Sequential(
            *[block(nn.Conv2d(a, b, 3, stride=2, padding=1), b) for a, b in zip(widths, widths[1:])],
            nn.Flatten(),
        )
        self.to_mu = nn.Linear(features, latent_dim)
        self.to_logvar = nn.Linear(features, latent_dim)
        self.from_latent = nn.Linear(latent_dim, features)
        widths = [encoder_channels[-1], *decoder_channels]
        self.decoder = nn.Sequential(
            *[block(nn.ConvTranspose2d(a, b, 3, stride=2, padding=1, output_padding=1), b) for a, b in zip(widths, widths[1:])],
            # padding 0 gives 2n+1 pixels; decode_logits crops the extra row and column.
            nn.ConvTranspose2d(widths[-1], in_channels, 3, stride=2, padding=0),
        )
        self.latent_stats = None  # facevae.latent.LatentStats, attached by load_model when shipped
        self.onnx = {}  # name -> path of the ONNX files shipped with the weights (facevae.export), by load_model

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images N×C×H×W in [0, 1] -> posterior mean and log-variance, each N×latent_dim."""
        h = self.encoder(x)
        return self.to_mu(h), self.to_logvar(h)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        h = self.from_latent(z).view(-1, *self.feature_shape)
        return self.decoder(h)[:, :, : self.image_size, : self.image_size]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latents N×latent_dim -> images N×C×H×W in [0, 1]."""
        return torch.sigmoid(self.decode_logits(z))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns (decoder logits, mu, logvar); samples z in training, uses mu in eval."""
        mu, logvar = self.encode(x)
        z = reparameterize(mu, logvar) if self.training else mu
        return self.decode_logits(z), mu, logvar

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Decode the posterior mean: the model's best reconstruction of x."""
        return self.decode(self.encode(x)[0])

    @torch.no_grad()
    def sample(
        self,
        n: int,
        temperature: float = 1.0,
        prior: str = "normal",
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """n new faces, N×C×H×W in [0, 1], decoded from sample_latents."""
        return self.decode(self.sample_latents(n, temperature, prior, generator).to(self.to_mu.weight.device))

    def sample_latents(self, n: int, temperature: float = 1.0, prior: str = "normal",
                       generator: torch.Generator | None = None) -> torch.Tensor:
        """n latents. prior="normal": z ~ N(0, T²I); prior="mixture": the Gaussian mixture fitted
        to the training posterior means (shipped with the default weights), each component's
        spread scaled by the temperature T."""
        if prior == "normal":
            return temperature * torch.randn(n, self.latent_dim, generator=generator)
        if prior == "mixture":
            if self.latent_stats is None:
                raise ValueError("these weights ship no fitted mixture prior; use prior='normal'")
            return self.latent_stats.sample_mixture(n, temperature, generator)
        raise ValueError(f"prior must be 'normal' or 'mixture', got {prior!r}")


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
