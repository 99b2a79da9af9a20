"""Style-aware multi-scale PatchGAN discriminator (training only).

Each scale is pix2pix/CycleGAN's `NLayerDiscriminator` (4x4 convs, stride 2, LeakyReLU 0.2; 70x70 receptive field
with 3 layers) with spectral norm instead of batch norm and no sigmoid (losses take logits). It is conditioned on the
style by a projection term (Miyato & Koyama 2018): logits = head(h) + <embed(style), h>, so it judges "does this
patch look like *this* artwork", not merely "like some painting".
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from .functional import StyleStats


@dataclass
class DiscriminatorConfig:
    """Architecture of the discriminator."""

    base_channels: int = 64  # width of the first conv; doubles per layer up to 8x
    num_layers: int = 3  # strided layers per scale (3 -> 70x70 patches at scale 1)
    num_scales: int = 2  # image pyramid levels (1, 1/2, ...), one PatchGAN each
    style_dim: int = 128  # width of the style embedding used by the projection term
    style_layers: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")  # style stats fed to the embedding


STYLE_STAT_CHANNELS = {"relu1_1": 64, "relu2_1": 128, "relu3_1": 256, "relu4_1": 512}


class PatchDiscriminator(nn.Module):
    """One scale: (B, 3, H, W) + style embedding (B, E) -> patch logits (B, 1, h, w)."""

    def __init__(self, base_channels: int, num_layers: int, style_dim: int):
        super().__init__()
        layers, cin = [], 3
        for i in range(num_layers):
            cout = base_channels * min(2 ** i, 8)
            layers += [spectral_norm(nn.Conv2d(cin, cout, 4, stride=2, padding=1)), nn.LeakyReLU(0.2)]
            cin = cout
        cout = base_channels * min(2 ** num_layers, 8)
        layers += [spectral_norm(nn.Conv2d(cin, cout, 4, stride=1, padding=1)), nn.LeakyReLU(0.2)]
        self.body = nn.Sequential(*layers)
        self.head = spectral_norm(nn.Conv2d(cout, 1, 4, stride=1, padding=1))
        self.project = spectral_norm(nn.Linear(style_dim, cout))  # style embedding -> feature space

    def forward(self, image: torch.Tensor, style_embedding: torch.Tensor) -> torch.Tensor:
        h = self.body(image * 2.0 - 1.0)  # (B, C, h', w')
        logits = self.head(h)  # (B, 1, h, w)
        proj = (h * self.project(style_embedding)[:, :, None, None]).sum(dim=1, keepdim=True)  # (B, 1, h', w')
        proj = nn.functional.interpolate(proj, size=logits.shape[2:], mode="bilinear", align_corners=False)
        return logits + proj / h.shape[1] ** 0.5


class StyleDiscriminator(nn.Module, PyTorchModelHubMixin, library_name="cst", tags=["cst", "discriminator"]):
    """Multi-scale, style-conditioned PatchGAN. forward returns a list of logit maps, one per scale."""

    def __init__(self, config: DiscriminatorConfig | None = None):
        super().__init__()
        self.config = config or DiscriminatorConfig()
        stat_dim = sum(2 * STYLE_STAT_CHANNELS[k] for k in self.config.style_layers)
        self.embed = nn.Sequential(nn.Linear(stat_dim, self.config.style_dim), nn.LeakyReLU(0.2),
                                   nn.Linear(self.config.style_dim, self.config.style_dim))
        self.scales = nn.ModuleList(
            PatchDiscriminator(self.config.base_channels, self.config.num_layers, self.config.style_dim)
            for _ in range(self.config.num_scales))

    def embed_style(self, style: StyleStats) -> torch.Tensor:
        """Style stats {layer: (mean, std) (B, C, 1, 1)} -> (B, style_dim). log(std) keeps the scale sane."""
        parts = []
        for layer in self.config.style_layers:
            mean, std = style[layer]
            parts += [torch.log1p(mean.flatten(1).float().clamp_min(0)), torch.log(std.flatten(1).float())]
        return self.embed(torch.cat(parts, dim=1))

    def forward(self, image: torch.Tensor, style: StyleStats) -> list[torch.Tensor]:
        emb = self.embed_style(style)
        if emb.shape[0] != image.shape[0]:
            emb = emb.expand(image.shape[0], -1)
        out = []
        for i, disc in enumerate(self.scales):
            x = image if i == 0 else nn.functional.avg_pool2d(image, 2 ** i)
            out.append(disc(x, emb))
        return out
