"""A stylisation prepared once and applied to many pictures: the seam that tiles and video frames share.

    stylizer = model.prepare("starry-night", style_weight=2.0)   # style statistics, sliders, engine: once
    out = stylizer(x)                                            # (1, 3, H, W) in [0, 1] -> the same, stylised
    stats = stylizer.statistics(thumbnail)                       # the normalisation statistics of a whole picture
    tile_out = stylizer(tile, norm_stats=stats)                  # every tile (or frame) gets the same affine maps
                                                                 # (a light model's tile needs a margin: `__call__`)

Both generators normalise the photo somewhere: the VGG generator's AdaIN takes each VGG feature map's mean and std,
the light generator's conditional instance norms take each layer's. A tile or a video frame normalised by its own
statistics comes out in its own colours (seams between tiles, flicker between frames); given the statistics of the
whole picture (a thumbnail, Chen et al. 2022, "URST") or a running average over frames, every piece gets the same map.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

import torch

from . import functional as F_
from .light import style_vector

# The statistics of one picture at every normalisation: VGG generator {layer: (mean, std)} of its VGG features,
# light generator [(mean, std) per conditional norm layer, in order].
NormStats = Union[dict, list]


@dataclass
class Stylizer:
    """What `StyleTransferModel.prepare` returns. Callable on tensors; no image I/O here."""

    model: "torch.nn.Module"
    style: F_.StyleStats
    weights: torch.Tensor  # (1, 3) = (α, β, λ), already checked
    strength: float = 1.0
    preserve_color: bool = False
    _vector: torch.Tensor | None = field(default=None, repr=False)  # light: the style as the engines take it

    @property
    def vector(self) -> torch.Tensor:
        """The style as the light engines take it (1, 1920): computed once per stylisation, not per tile or frame."""
        if self._vector is None:
            self._vector = style_vector(self.style, _layers())
        return self._vector

    @torch.no_grad()
    def statistics(self, x: torch.Tensor) -> NormStats:
        """The normalisation statistics of picture x (1, 3, H, W) in [0, 1], for `__call__(..., norm_stats=)`.
        For the light generator they depend on the style and sliders (each layer sees the previous, modulated) and
        come from the fastest engine's statistics graph (cst/engines.py)."""
        x = self.model.pad_to_multiple(x.to(self.model.device))
        if self.model.is_light:
            from .engines import best_engine, statistics_list

            vector = best_engine(self.model).statistics(x, self.vector, self.weights).to(self.model.device)
            return statistics_list(vector, self.model.transformer.norm_channels)
        return {layer: F_.calc_mean_std(f) for layer, f in self.model.encode_content(x).items()}

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, norm_stats: NormStats | None = None) -> torch.Tensor:
        """x (1, 3, H, W) in [0, 1] -> stylised (1, 3, H, W) in [0, 1] (the network only: see `colour`).
        Light models given a list of norm_stats take x as a tile: the network then runs with zero padding at x's
        borders (`engines.FoldedTileGraph`), so x needs a margin that the caller crops off (`tiling.stylize_tile`)."""
        x = x.to(self.model.device)
        was_training = self.model.training
        self.model.eval()
        try:
            if self.model.is_light and not callable(norm_stats):  # the fastest engine (cst/engines.py; CST_ENGINE=torch)
                from .engines import best_engine, statistics_vector

                statistics = None if norm_stats is None else statistics_vector(norm_stats)
                out = best_engine(self.model).run(x, self.vector, self.weights, self.strength, statistics=statistics)
            else:
                out = self.model(x, self.style, self.weights, self.strength, norm_stats=norm_stats)
        finally:
            self.model.train(was_training)
        return out.clamp(0, 1)

    def luminance_stats(self, out: torch.Tensor, x: torch.Tensor) -> tuple | None:
        """For colour preservation of pieces: the luminance (mean, std) of a whole stylised picture and of its photo
        (thumbnails), to pass to `colour`. None when colours are not preserved."""
        if not self.preserve_color:
            return None
        return F_.calc_mean_std(F_.luminance(out)) + F_.calc_mean_std(F_.luminance(x.to(out)))

    def colour(self, out: torch.Tensor, x: torch.Tensor, luma_stats: tuple | None = None) -> torch.Tensor:
        """Colour preservation when asked (the photo's chroma, the result's luminance matched to the photo's
        mean/std: of these two pictures, or the whole picture's from `luminance_stats`); else `out` unchanged."""
        if not self.preserve_color:
            return out
        return F_.preserve_color(out, x.to(out), luma_stats=luma_stats)


def _layers():
    from .model import STYLE_LAYERS
    return STYLE_LAYERS
