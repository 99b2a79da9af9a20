"""The light real-time generator: a small feed-forward network on the photo, conditioned on the style and sliders.

No VGG on the content path. The style enters as its VGG19 statistics (the same cacheable, blendable `StyleStats`
the VGG generator uses, taken once per style at a small size); a small MLP turns them, together with the log loss
weights (α, β, λ), into the scale and shift of every conditional instance norm (Dumoulin et al. 2017; Ghiasi et al.
2017 for arbitrary styles; loss-conditional training as in Dosovitskiy & Djolonga 2020).

    photo ─ pixel-unshuffle ─ conv 3x3 (H/2) ─ conv 3x3 stride 2 (H/4) ─ residual blocks (H/4) ─ upsample ─
            conv 3x3 (H/2) ─ upsample ─ conv 3x3 (H) ─ RGB
    (nearest-neighbour upsampling then a conv, never a free pixel-shuffle or transposed conv at the output: no 2x2
    grid; each upsample-then-conv is computed at the lower resolution, exactly, by `upsample_conv`)
    every conv but the last is followed by instance norm whose (γ, β) come from MLP(style stats, log α, β, λ)

Costs at 512x512 with the default's widths (32, 64) and 5 blocks: about 8 GMAC, 0.41 M parameters in the body.
"""
from __future__ import annotations

import copy
import math
from typing import Sequence

import torch
from torch import nn

from . import functional as F_

# RMS of the Caffe VGG19 activations on natural images: style statistics are divided by these so that every layer's
# numbers are O(1) before the MLP sees them (raw relu4_1 values reach thousands)
FEATURE_RMS = {"relu1_1": 50.0, "relu2_1": 250.0, "relu3_1": 350.0, "relu4_1": 1000.0}
VGG_CHANNELS = {"relu1_1": 64, "relu2_1": 128, "relu3_1": 256, "relu4_1": 512}


def style_vector(style: F_.StyleStats, layers: Sequence[str]) -> torch.Tensor:
    """{layer: (mean, std)} each (B, C, 1, 1) -> (B, 2·ΣC): mean / RMS and log(std / RMS), one row per style."""
    parts = []
    for layer in layers:
        mean, std = style[layer]
        parts += [mean.flatten(1).float() / FEATURE_RMS[layer], (std.flatten(1).float() / FEATURE_RMS[layer]).log()]
    return torch.cat(parts, dim=1)


def stats_from_vector(vec: torch.Tensor, layers: Sequence[str]) -> F_.StyleStats:
    """The inverse of `style_vector`: (B, 2·ΣC) -> {layer: (mean, std)} each (B, C, 1, 1)."""
    stats, start = {}, 0
    for layer in layers:
        c = VGG_CHANNELS[layer]
        mean = vec[:, start:start + c] * FEATURE_RMS[layer]
        std = vec[:, start + c:start + 2 * c].exp() * FEATURE_RMS[layer]
        stats[layer] = (mean[:, :, None, None], std[:, :, None, None])
        start += 2 * c
    return stats


def normalise_weights(weights: torch.Tensor, log_min: float, log_max: float) -> torch.Tensor:
    """(B, 3) positive loss weights -> log scale mapped to [-1, 1] over the trained range (clamped into it)."""
    log_w = weights.float().clamp(math.exp(log_min), math.exp(log_max)).log()
    return 2.0 * (log_w - log_min) / (log_max - log_min) - 1.0


def split_pairs(vector: torch.Tensor, channels: Sequence[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(B, 2·ΣC) = [a_0, b_0, a_1, b_1, ...] -> per layer (a, b) of shape (B, C, 1, 1): the layout of the MLP's (γ, β)
    and of the norms' (mean, std) statistics vectors (cst/engines.py)."""
    pairs, start = [], 0
    for c in channels:
        pairs.append((vector[:, start:start + c, None, None], vector[:, start + c:start + 2 * c, None, None]))
        start += 2 * c
    return pairs


def split_modulation(out: torch.Tensor, channels: Sequence[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(B, 2·ΣC) MLP output -> per layer (γ, β) of shape (B, C, 1, 1), γ around 1 (a zero output is the identity)."""
    return [(1.0 + gamma, beta) for gamma, beta in split_pairs(out, channels)]


class Conditioner(nn.Module):
    """(style vector, loss weights) -> per-norm-layer (γ, β). The only place where style and sliders enter."""

    def __init__(self, style_dim: int, channels: Sequence[int], hidden: int, weight_min: float, weight_max: float):
        super().__init__()
        self.channels = list(channels)
        self.log_min, self.log_max = math.log(weight_min), math.log(weight_max)
        # the style vector is standardised with the mean and spread of the training paintings' vectors (set once by
        # `fit_style_normalisation` before training, saved with the weights): styles differ from each other by a
        # few percent of the vector's size, and standardising makes that difference what the MLP sees
        self.register_buffer("style_center", torch.zeros(style_dim))
        self.register_buffer("style_scale", torch.ones(style_dim))
        self.style = nn.Sequential(nn.Linear(style_dim, hidden), nn.SiLU())
        self.sliders = nn.Sequential(nn.Linear(3, hidden // 4), nn.SiLU())
        self.head = nn.Sequential(nn.Linear(hidden + hidden // 4, hidden), nn.SiLU(),
                                  nn.Linear(hidden, 2 * sum(self.channels)))
        nn.init.normal_(self.head[-1].weight, std=0.02)  # start near plain instance norm: γ ≈ 1, β ≈ 0
        nn.init.zeros_(self.head[-1].bias)
        # the sliders also scale each modulation directly (1 + gain): "more style" can turn the style's modulation up
        # from the first steps on, where learning it only through the shared head takes far longer (zero init: off)
        self.slider_gain = nn.Linear(hidden // 4, 2 * sum(self.channels))
        nn.init.zeros_(self.slider_gain.weight)
        nn.init.zeros_(self.slider_gain.bias)

    @torch.no_grad()
    def fit_style_normalisation(self, style_vecs: torch.Tensor) -> None:
        """Set the standardisation from (N, style_dim) vectors of training paintings."""
        self.style_center.copy_(style_vecs.mean(0))
        self.style_scale.copy_(style_vecs.std(0).clamp_min(1e-3))

    def forward(self, style_vec: torch.Tensor, weights: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        style_vec = ((style_vec - self.style_center) / self.style_scale).expand(weights.shape[0], -1)
        sliders = self.sliders(normalise_weights(weights, self.log_min, self.log_max))
        out = self.head(torch.cat([self.style(style_vec), sliders], dim=1)) * (1.0 + self.slider_gain(sliders))
        return split_modulation(out, self.channels)


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, padding_mode="reflect")


def conditional_norm(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor,
                     stats: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """Instance norm with a given (γ, β). `stats` = (mean, std) from outside (a thumbnail of the whole picture for
    tiles, a running average for video) replaces the input's own, so every tile or frame gets the same affine map."""
    mean, std = stats if stats is not None else F_.calc_mean_std(x)
    scale = gamma / std  # (x − mean) / std · γ + β as one multiply-add: one full-size tensor, not four temporaries
    return torch.addcmul(beta - mean * scale, x.float(), scale).to(x.dtype)


# nearest 2x upsampling then a 3x3 conv, per output phase: output row 2i (phase 0) sees upsampled rows 2i-1, 2i, 2i+1
# = x rows i-1, i, i, so its kernel rows become (w0, w1 + w2, 0) over x rows (i-1, i, i+1); row 2i+1 (phase 1) sees x
# rows i, i, i+1: (0, w0 + w1, w2). _PHASE[p][new tap][old tap]; the same along columns.
_PHASE = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 1.0], [0.0, 0.0, 0.0]],
                       [[0.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]])


def upsample_conv(conv: nn.Conv2d, x: torch.Tensor, shuffle: bool = True) -> torch.Tensor:
    """conv(nearest 2x upsampling of x), computed at x's resolution: one 3x3 conv whose 4·C_out kernels are the
    conv's kernel folded for each of the four output phases, then a pixel-shuffle that interleaves them. Exactly the
    upsample-then-conv (the conv's reflection padding of the upsampled picture is replicate padding of x, its zero
    padding zero padding of x), without the upsampled input: a quarter of the memory traffic. shuffle False: the
    phases as (B, C_out, 4·H, W), in no particular spatial order (for statistics)."""
    weight, (cout, cin) = conv.weight, conv.weight.shape[:2]
    phase = _PHASE.to(weight)
    kernel = torch.einsum("ptk,qul,oikl->opqitu", phase, phase, weight).reshape(4 * cout, cin, 3, 3)
    zeros = conv.padding_mode == "zeros"  # a folded copy's (`LightTransformer.fold`): the conv's own padding
    x = x if zeros else nn.functional.pad(x, (1, 1, 1, 1), mode="replicate")
    y = nn.functional.conv2d(x, kernel, conv.bias.repeat_interleave(4), padding=int(zeros))
    if not shuffle:
        return y.reshape(y.shape[0], cout, 4 * y.shape[2], y.shape[3])
    return nn.functional.pixel_shuffle(y, 2)


class LightTransformer(nn.Module):
    """The content network. `forward(photo, params, norm_stats=None, record=None)`: photo (B, 3, H, W) in [0, 1]
    with H and W multiples of 4; params from `Conditioner`; returns RGB (B, 3, H, W), unclamped.
    `record`, a list, receives each norm layer's own (mean, std) (for thumbnail statistics); `norm_stats`, such a
    list, replaces them; or a callable (layer index, own (mean, std)) -> (mean, std) decides per layer in the same
    pass (video: a running average over frames, cst/video.py)."""

    def __init__(self, widths: tuple[int, int], blocks: int):
        super().__init__()
        c1, c2 = widths
        self.stem = _conv(12, c1)  # after pixel-unshuffle(2): full resolution folded into channels, at H/2
        self.down = _conv(c1, c2, stride=2)  # H/4
        self.blocks = nn.ModuleList(nn.ModuleList([_conv(c2, c2), _conv(c2, c2)]) for _ in range(blocks))
        self.up = _conv(c2, c1)  # after nearest 2x upsampling, H/2
        self.to_rgb = _conv(c1, 3)  # at full resolution, after nearest upsampling
        self.norm_channels = self.channels(widths, blocks)
        self.folded = False  # True in a copy made by `fold`: norms and the in- and output maps inside the weights

    def normed_convs(self) -> list[nn.Conv2d]:
        """The convs that a conditional norm follows, in the order of the norm layers."""
        return [self.stem, self.down, *[conv for pair in self.blocks for conv in pair], self.up]

    @torch.no_grad()
    def fold(self, params: list, norm_stats: list) -> "LightTransformer":
        """A copy for one style, sliders and set of statistics (batch 1), for the tiles of a large picture, which
        share them (cst/engines.py, cst/tiling.py): each norm's affine map, γ·(x − mean)/std + β, multiplied into the
        weights and bias of the conv before it, and so are the input's map to [-1, 1] and the output's back, so no
        pass over the activations is left but the convs and ReLUs. Its convs are zero-padded instead of reflected:
        the padding becomes the conv's own (no copy of every activation; onnxruntime keeps its blocked layout from
        conv to conv), and what differs stays within the margin of picture every tile is given on every side (the
        picture mirrored at its borders). Call the copy with params None."""
        folded = copy.deepcopy(self)
        folded.folded = True
        for conv, (gamma, beta), (mean, std) in zip(folded.normed_convs(), params, norm_stats, strict=True):
            scale = (gamma / std).flatten().to(conv.weight)
            conv.weight.mul_(scale[:, None, None, None])
            conv.bias.mul_(scale).add_((beta - mean * gamma / std).flatten().to(conv.bias))
        stem, rgb = folded.stem, folded.to_rgb
        stem.bias.sub_(stem.weight.sum(dim=(1, 2, 3)))  # stem(2u − 1) = (2W) ⋆ u + (b − ΣW)
        stem.weight.mul_(2.0)
        rgb.weight.mul_(0.5)  # to_rgb(·) · 0.5 + 0.5
        rgb.bias.mul_(0.5).add_(0.5)
        for conv in folded.modules():
            if isinstance(conv, nn.Conv2d):
                conv.padding_mode = "zeros"
        return folded

    @staticmethod
    def channels(widths: tuple[int, int], blocks: int) -> list[int]:
        """Channels of each conditional norm layer, in order."""
        c1, c2 = widths
        return [c1, c2] + [c2] * (2 * blocks) + [c1]

    def forward(self, photo: torch.Tensor, params: list, norm_stats=None, record: list | None = None,
                statistics_only: bool = False) -> torch.Tensor | None:
        """`statistics_only` (with `record`): stop after the last norm layer's statistics and return None, skipping
        the layers at H/2 and H (a thumbnail's statistics for tiling, in a fraction of the memory)."""
        layer = iter(range(len(self.norm_channels)))

        def norm(x: torch.Tensor) -> torch.Tensor:
            if self.folded:
                return x
            i = next(layer)
            own = F_.calc_mean_std(x) if record is not None or callable(norm_stats) else None
            if record is not None:
                record.append(own)
            if callable(norm_stats):  # (layer index, this input's own statistics) -> the statistics to use
                return conditional_norm(x, *params[i], norm_stats(i, own))
            return conditional_norm(x, *params[i], norm_stats[i] if norm_stats is not None else own)  # own: once

        x = nn.functional.pixel_unshuffle(photo if self.folded else photo * 2.0 - 1.0, 2)
        x = torch.relu(norm(self.stem(x)))
        x = torch.relu(norm(self.down(x)))
        for conv_a, conv_b in self.blocks:
            y = torch.relu(norm(conv_a(x)))
            x = x + norm(conv_b(y))
        if statistics_only:  # the last norm's input feeds only its own statistics: the phases need no interleaving
            assert record is not None, "statistics_only needs record"
            record.append(F_.calc_mean_std(upsample_conv(self.up, x, shuffle=False)))
            return None
        x = torch.relu(norm(upsample_conv(self.up, x)))
        out = upsample_conv(self.to_rgb, x)
        return out if self.folded else out * 0.5 + 0.5
