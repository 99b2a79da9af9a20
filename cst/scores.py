"""Scores with every picture: how much of the photo a result kept, and how much of the style it took, 0-100 %.

    result = model.stylize(photo, "starry-night")
    scores = model.scores(photo, result, "starry-night")    # = cst.scores.picture_scores(model, photo, result, ...)
    print(scores)            # content kept 54 % · style taken 52 %
    scores.as_dict()         # {"content_kept": 54.1, "style_taken": 51.8}

Both are measured at one fixed working size: photo, result and style picture fitted to SCORE_SIZE px on the long side
(never upscaled). Each is scaled between the photo itself and the style picture, so 0 % and 100 % are pictures a user
can imagine:

- content kept = SSIM of the result's luminance to the photo's (scikit-image `structural_similarity`, 7x7 window,
  grayscale by `rgb2gray`, as in `cst.eval`), rescaled so that the photo itself scores 100 % and the style picture,
  stretched to the photo's size, 0 %: 100 · (SSIM(result) − SSIM(style)) / (1 − SSIM(style)), clipped to [0, 100].
- style taken = 100 · (1 − d(result) / d(photo)), clipped to [0, 100], where d(x) is the relative distance of x's
  VGG19 feature statistics (the model's frozen encoder) to the style picture's, ‖(μ, σ)(x) − (μ_s, σ_s)‖ / ‖(μ_s, σ_s)‖
  (`cst.losses.mean_std_relative_error`, the style term cst trains with) averaged over relu1_1 ... relu4_1. The photo
  itself scores 0 % and a picture with the style picture's statistics (the style picture itself) 100 %.

The style picture's statistics are taken at SCORE_SIZE like the photo's, not at the model's own style size (512 px
for the default model): feature statistics depend on the scale of the texture, and comparing at one scale is what
makes the style picture score 100 %. A blend of styles is scored against the blend (the weighted mean of the
pictures' SSIMs as 0 %, the blended statistics as 100 %). A style given only as statistics (`model.style_stats`,
no picture) is scored against those statistics, with SSIM 0 as content's 0 %.

Optionally a change map: where the result's structure differs most from the photo's, 1 − the local SSIM, as a heat
map of the working size (black = unchanged, yellow = changed most).

Cost: two VGG19 passes at SCORE_SIZE (photo and result, batched; a third for a style picture that is not a built-in
style, cached per built-in style) and two SSIMs: under half a second on one CPU core (0.45 s measured for a 451x300
photo on a busy, shared core, where stylising it takes about 2 s). `style_reference` computes what a
style is scored against once, to reuse over many photos.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image
from skimage.color import rgb2gray
from skimage.metrics import structural_similarity

from . import functional as F_
from . import losses as L
from . import presets
from .errors import StyleTransferError
from .frontend import check_number
from .imageio import MIN_SIDE, ImageLike, fit_within, load_image, pil_to_tensor
from .model import STYLE_LAYERS

if TYPE_CHECKING:
    from .model import StyleInput, StyleTransferModel

SCORE_SIZE = 192  # long side (px) at which both scores are measured: fixed, so scores compare across output sizes
SSIM_WINDOW = 7  # scikit-image's default window; pictures are never scored below this many pixels a side
# the change map's colours, from unchanged to changed most (a black-to-yellow ramp like matplotlib's "inferno")
HEAT_COLOURS = np.array([(0, 0, 4), (87, 16, 110), (188, 55, 84), (249, 142, 9), (252, 255, 164)], dtype=np.float64)


@dataclass(frozen=True)
class Scores:
    """content_kept and style_taken in % (0-100); change_map: an RGB heat map of where the picture changed most
    (None unless asked for)."""

    content_kept: float
    style_taken: float
    change_map: Image.Image | None = None

    def as_dict(self) -> dict[str, float]:
        """{"content_kept": 72.4, "style_taken": 55.1}: one decimal, what the CLI's --json and the Space's API give."""
        return {"content_kept": round(self.content_kept, 1), "style_taken": round(self.style_taken, 1)}

    def __str__(self) -> str:
        return f"content kept {self.content_kept:.0f} % · style taken {self.style_taken:.0f} %"


@dataclass(frozen=True)
class StyleReference:
    """What pictures are scored against for one style (or blend): its picture(s) with their blend weights (the 0 % of
    content kept, kept at a short side of `size`; empty for a style given as statistics) and its statistics at the
    score size (style taken's 100 %)."""

    pictures: tuple[tuple[Image.Image, float], ...]
    stats: F_.StyleStats
    size: int


def working_size(size: tuple[int, int], long_side: int = SCORE_SIZE) -> tuple[int, int]:
    """(W, H) fitted to `long_side` (never upscaled), but the short side not below MIN_SIDE (VGG's pooling to
    relu4_1 needs 8 rows: a long strip stays longer), and each side at least SSIM_WINDOW."""
    scale = min(1.0, max(long_side / max(size), MIN_SIDE / min(size)))
    return max(SSIM_WINDOW, round(size[0] * scale)), max(SSIM_WINDOW, round(size[1] * scale))


def _covering(img: Image.Image, size: int) -> Image.Image:
    """Downscaled (never upscaled) so its short side is `size`: still at least as large as any working size on both
    sides, so stretching it to a photo's working size is a downscale, but not a full-size picture's cost per photo."""
    scale = size / min(img.size)
    if scale >= 1.0:
        return img
    return img.resize((max(size, round(img.width * scale)), max(size, round(img.height * scale))), Image.LANCZOS)


def _resized(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    img = img.convert("RGB")
    return img if img.size == size else img.resize(size, Image.LANCZOS)


def _gray(img: Image.Image) -> np.ndarray:
    return rgb2gray(np.asarray(img, dtype=np.float64) / 255.0)


def gray_ssim(a: np.ndarray, b: np.ndarray, full: bool = False):
    """SSIM of two same-size grayscale arrays in [0, 1] (scikit-image, data range 1, SSIM_WINDOW window), with the
    local SSIM map when `full`: content kept's SSIM, and cst.eval's `ssim` metric."""
    return structural_similarity(a, b, data_range=1.0, win_size=SSIM_WINDOW, full=full)


def _check_size(size) -> int:
    if isinstance(size, bool) or not isinstance(size, int) or size < 2 * SSIM_WINDOW:
        raise StyleTransferError(f"score size must be an integer of at least {2 * SSIM_WINDOW} px, got {size!r}")
    return size


@torch.no_grad()
def _picture_stats(model: "StyleTransferModel", picture: Image.Image, size: int) -> F_.StyleStats:
    return model.encode_style(pil_to_tensor(fit_within(picture, size)).to(model.device))


@functools.lru_cache(maxsize=32)
def _preset_reference(model: "StyleTransferModel", name: str, size: int) -> StyleReference:
    """A built-in style's reference, computed once per model and size (the Space scores many photos per preset)."""
    return _picture_reference(model, load_image(presets.get(name).path, f"preset {name}"), size)


def _picture_reference(model: "StyleTransferModel", picture: Image.Image, size: int) -> StyleReference:
    return StyleReference(((_covering(picture, size), 1.0),), _picture_stats(model, picture, size), size)


def style_reference(model: "StyleTransferModel", style: "StyleInput", size: int = SCORE_SIZE) -> StyleReference:
    """What `picture_scores` measures against, for a `stylize` style argument: a style image (path, PIL, array), a
    built-in style's name, statistics, or a blend [(style, weight), ...]. Compute it once to score many photos."""
    size = _check_size(size)
    if isinstance(style, StyleReference):
        return style
    if isinstance(style, dict):  # statistics only: no picture to stretch, and the statistics as they are
        return StyleReference((), model.style_stats(style), size)
    if isinstance(style, (list, tuple)) and style and all(isinstance(s, (list, tuple)) for s in style):
        if any(len(s) != 2 for s in style):
            raise StyleTransferError("a style blend is a list of (style image, weight) pairs")
        parts = [(style_reference(model, s, size), check_number(w, "style blend weight", low=0.0)) for s, w in style]
        if sum(w for _, w in parts) <= 0:
            raise StyleTransferError("style blend weights must not all be zero")
        pictures = tuple((p, pw * w) for ref, w in parts for p, pw in ref.pictures)
        return StyleReference(pictures, F_.blend_style_stats([ref.stats for ref, _ in parts], [w for _, w in parts]),
                              size)
    if isinstance(style, (list, tuple)):
        raise StyleTransferError("style must be one image or a list of (style image, weight) pairs")
    preset = presets.get(style) if isinstance(style, str) and not os.path.exists(style) else None
    if preset is not None:
        return _preset_reference(model, preset.name, size)
    return _picture_reference(model, load_image(style, "style image"), size)


def heat_map(change: np.ndarray) -> Image.Image:
    """(H, W) values in [0, 1] -> an RGB heat map (HEAT_COLOURS from 0 to 1)."""
    position = np.clip(change, 0.0, 1.0) * (len(HEAT_COLOURS) - 1)
    rgb = np.stack([np.interp(position, np.arange(len(HEAT_COLOURS)), HEAT_COLOURS[:, c]) for c in range(3)], -1)
    return Image.fromarray(rgb.round().astype(np.uint8))


def _percent(x: float) -> float:
    return float(np.clip(100.0 * x, 0.0, 100.0))


@torch.no_grad()
def picture_scores(model: "StyleTransferModel", photo: ImageLike, result: ImageLike,
                   style: "StyleInput | StyleReference", *, change_map: bool = False,
                   size: int = SCORE_SIZE) -> Scores:
    """Content kept and style taken (%) of `result`, a stylisation of `photo` in `style` by `model` (definitions in
    the module docstring).

    style: what was passed to `stylize` (a style image, a built-in style's name, statistics, a blend
    [(style, weight), ...]) or a `style_reference` computed before (its size wins over `size`).
    change_map: also return the heat map of where the picture changed most.
    """
    reference = style_reference(model, style, size)
    photo_img = load_image(photo, "photo")
    result_img = load_image(result, "result")
    work = working_size(photo_img.size, reference.size)
    photo_small, result_small = _resized(photo_img, work), _resized(result_img, work)

    # content kept: SSIM to the photo, between the style picture(s) (0 %) and the photo itself (100 %)
    photo_gray = _gray(photo_small)
    ssim, ssim_map = gray_ssim(_gray(result_small), photo_gray, full=True)
    total = sum(w for _, w in reference.pictures)
    floor = (sum(w * gray_ssim(_gray(_resized(p, work)), photo_gray) for p, w in reference.pictures) / total
             if total else 0.0)
    content_kept = _percent((ssim - floor) / (1.0 - floor)) if floor < 1.0 else (100.0 if ssim >= 1.0 else 0.0)

    # style taken: the result's distance to the style's statistics, as a share of the photo's own distance
    batch = torch.cat([pil_to_tensor(photo_small), pil_to_tensor(result_small)]).to(model.device)
    feats = model.encoder(batch, STYLE_LAYERS)
    distance = torch.stack([L.mean_std_relative_error(feats[k], *(s.float() for s in reference.stats[k]))
                            for k in STYLE_LAYERS]).mean(dim=0)  # (2,): photo, result
    d_photo, d_result = float(distance[0]), float(distance[1])
    style_taken = _percent(1.0 - d_result / d_photo) if d_photo > 0 else 0.0

    heat = heat_map(1.0 - np.asarray(ssim_map)) if change_map else None
    return Scores(content_kept, style_taken, heat)
