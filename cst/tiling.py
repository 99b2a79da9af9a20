"""Pictures of any size in tiles that share one set of statistics: no seams, bounded memory.

`stylize_tiled(stylizer, photo)` never holds a full-resolution float tensor of the whole picture:

1. the normalisation statistics are taken once, from a thumbnail of the whole photo (URST, Chen et al. 2022), and
   every tile is normalised with them, so every tile gets the same colours (`Stylizer.statistics`);
2. each tile is stylised with a margin of picture around it (the network's receptive field) and only its core is
   kept. At the picture's borders the VGG generator's tiles pad as an untiled run does; the light generator's tiles
   run a graph with zero-padded convs (cst/engines.py, the faster one), so they get a margin on every side, the
   picture mirrored where it ends: the same picture as a one-pass run but along its borders (within the network's
   receptive field: 4.5/255 on average in the outer 32 px, see MARGINS), where the picture continued by mirroring
   differs from each layer's own reflection padding;
3. neighbouring cores overlap and are blended with linear ramps across the overlap;
4. the result is assembled tile by tile in an 8-bit array.

Tile size, margin and overlap are in pixels of the working picture.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from PIL import Image

from . import functional as F_
from .imageio import fit_within, pil_to_tensor, tensor_to_pil
from .stylizer import Stylizer

DEFAULT_TILE = {"vgg": 512, "light": 1392}  # core size: peak RSS under 2 GB with the margin (benchmarks/tiles.py);
#                                             light: 4096 px photos in 3x3 tiles (fewer margins than 5x5 of 1024 px)
MARGIN = 32  # real picture around each tile: VGG19's receptive field to relu4_1 is about 30 px each way (measured,
#             default model, exact statistics, 256 px tiles of a 768 px photo: mean |tiled - whole| 0.08/255 and max
#             19 with 16 px, 0.005/255 and max 1 with 32 px; pooled VGG statistics exact to 1e-7 with 32 px, 1.4 %
#             off at relu4_1 with 16 px)
MARGINS = {"vgg": MARGIN, "light": 24}  # the light generator: 1024 px tiles of a 2048 px photo against one pass
#             (`python benchmarks/tiles.py --sizes 2048 --margins 16 24 32`, default model): beyond 32 px of the
#             picture's borders mean 0.045/255 (max 15) with 16 px, 0.009 (max 4) with 24 px, 0.002 (max 1) with 32 px;
#             within them 4.5/255 for all three (the mirrored picture against each layer's reflection padding)
OVERLAP = 32  # cores overlap by this much and are blended
EXACT_STATISTICS = 2048  # up to this size (long side) every tile gets the picture's own statistics: a 2048 px photo
#                          comes out tiled as untiled but along its borders (0.29/255 on average, benchmarks/tiles.py)
THUMBNAIL = 1024  # above it, they come from a thumbnail this size: the default working size, so a full-resolution
#                   picture is normalised as its 1024 px preview was (URST's thumbnail size too). Against the untiled
#                   picture of a 4096 px photo (`python benchmarks/tiles.py --sizes 4096 --thumbnails 1024 2048`): mean
#                   15.8/255 off with 1024, 10.4 with 2048, the two alike to the eye; a 2048 px pass costs a quarter
#                   of the 4096 px tiles' work, a 1024 px pass a sixteenth
UNTILED = {"vgg": 0, "light": 2048}  # when no tile size is asked, pictures up to this size run in one pass: the same
#                   picture as tiles with its own statistics, in half the work (light: peak RSS 1.6 GB at 2048 px)
LUMA_THUMBNAIL = 512  # colour preservation: the whole picture's luminance statistics, from a thumbnail this size


@dataclass(frozen=True)
class Tile:
    """A tile's core [y0, y1) × [x0, x1) and the crop [cy0, cy1) × [cx0, cx1) that is stylised around it."""
    y0: int
    y1: int
    x0: int
    x1: int
    cy0: int
    cy1: int
    cx0: int
    cx1: int


def spans(length: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """(start, end) of the fewest tiles of at most `tile` px covering [0, length), all the same size, neighbours
    overlapping by at least `overlap`."""
    if length <= tile:
        return [(0, length)]
    n = math.ceil((length - overlap) / (tile - overlap))
    size = min(tile, math.ceil((length + (n - 1) * overlap) / n))
    return [(round(i * (length - size) / (n - 1)), round(i * (length - size) / (n - 1)) + size) for i in range(n)]


def plan_tiles(height: int, width: int, tile: int, margin: int = MARGIN, overlap: int = OVERLAP,
               align: int = 8, mirror: bool = False) -> list[Tile]:
    """Raster order (row by row): the order `stylize_tiled` blends them in. Crops start on multiples of `align`
    (the network's downsampling), so every tile sees the pixel grid in the same phase as the whole picture.
    mirror False: crops end at the picture's borders (the network's own padding there, as in an untiled run); True:
    they reach `margin` px beyond them too, where `crop` mirrors the picture (the light generator's folded tile graph
    is zero-padded at every border of its input, cst/engines.py), and their sizes are multiples of `align`."""
    assert tile > overlap >= 0 and margin >= 0, (tile, overlap, margin)
    out = []
    for y0, y1 in spans(height, tile, overlap):
        for x0, x1 in spans(width, tile, overlap):
            if mirror:
                cy0, cx0 = (y0 - margin) // align * align, (x0 - margin) // align * align
                cy1, cx1 = cy0 - (cy0 - y1 - margin) // align * align, cx0 - (cx0 - x1 - margin) // align * align
            else:
                cy0, cx0 = max(0, y0 - margin) // align * align, max(0, x0 - margin) // align * align
                cy1, cx1 = min(height, y1 + margin), min(width, x1 + margin)
            out.append(Tile(y0, y1, x0, x1, cy0, cy1, cx0, cx1))
    return out


def crop(photo: Image.Image, t: Tile) -> torch.Tensor:
    """A tile's crop of the picture as (1, 3, h, w) in [0, 1]; where the crop reaches beyond the picture, the
    picture mirrored (about its border pixels, as far as needed)."""
    width, height = photo.size
    x = pil_to_tensor(photo.crop((max(t.cx0, 0), max(t.cy0, 0), min(t.cx1, width), min(t.cy1, height))))
    pads = [max(0, -t.cx0), max(0, t.cx1 - width), max(0, -t.cy0), max(0, t.cy1 - height)]
    while any(pads):  # reflection reaches at most one pixel less than the picture's size: repeat for more
        step = [min(p, x.shape[3 - i // 2] - 1) for i, p in enumerate(pads)]
        if not any(step):  # one pixel wide: nothing to mirror but itself
            return torch.nn.functional.pad(x, pads, mode="replicate")
        x = torch.nn.functional.pad(x, step, mode="reflect")
        pads = [p - q for p, q in zip(pads, step)]
    return x


def stylize_tile(stylizer: Stylizer, photo: Image.Image, t: Tile, stats) -> tuple[torch.Tensor, torch.Tensor]:
    """(stylised, photo) of a tile's core, each (1, 3, y1 - y0, x1 - x0) in [0, 1]: the network on its crop,
    normalised with the given statistics (colour preservation is the caller's)."""
    x = crop(photo, t)
    core = (slice(None), slice(None), slice(t.y0 - t.cy0, t.y1 - t.cy0), slice(t.x0 - t.cx0, t.x1 - t.cx0))
    return stylizer(x, norm_stats=stats)[core], x[core]


def _ramp(n: int, overlap: int) -> np.ndarray:
    """Weights along one axis of a tile for blending into what is already written: 0 → 1 over the first `overlap`."""
    w = np.ones(n, dtype=np.float32)
    if overlap > 0:
        w[:overlap] = (np.arange(overlap, dtype=np.float32) + 0.5) / overlap
    return w


def pooled_statistics(stylizer: Stylizer, x: torch.Tensor, tile: int = 512, margin: int = MARGIN) -> dict:
    """VGG generator: the exact {layer: (mean, std)} of picture x's VGG features, computed tile by tile (bounded
    memory at any size). Exact because VGG features do not depend on any normalisation; each tile's core is read
    from features computed with `margin` px of picture around it."""
    assert not stylizer.model.is_light and tile % 8 == 0 and margin % 8 == 0
    x = stylizer.model.pad_to_multiple(x)
    height, width = x.shape[2:]
    pooled: dict[str, F_.PooledMeanStd] = {}
    for y0 in range(0, height, tile):
        for x0 in range(0, width, tile):
            y1, x1 = min(y0 + tile, height), min(x0 + tile, width)
            cy0, cx0 = max(0, y0 - margin), max(0, x0 - margin)
            feats = stylizer.model.encode_content(x[:, :, cy0:min(height, y1 + margin), cx0:min(width, x1 + margin)])
            for layer, f in feats.items():
                s = _stride(layer)
                pooled.setdefault(layer, F_.PooledMeanStd()).add(
                    f[:, :, (y0 - cy0) // s:(y1 - cy0) // s, (x0 - cx0) // s:(x1 - cx0) // s])
    return {layer: p.result() for layer, p in pooled.items()}


def _stride(layer: str) -> int:
    """relu1_1 is at full resolution, relu2_1 at 1/2, relu3_1 at 1/4, relu4_1 at 1/8."""
    return 2 ** (int(layer[4]) - 1)


def thumbnail_size(long_side: int) -> int:
    """Long side of the thumbnail whose statistics a picture's tiles share: the picture itself up to
    EXACT_STATISTICS px, THUMBNAIL px above."""
    return long_side if long_side <= EXACT_STATISTICS else THUMBNAIL


def picture_statistics(stylizer: Stylizer, photo: Image.Image, thumbnail: int | None = None):
    """(normalisation statistics, luminance statistics or None) of the whole photo, from a thumbnail of long side
    `thumbnail` (default `thumbnail_size`; the photo itself when it is smaller): what every tile is normalised with.
    The VGG generator's are computed tile by tile and exactly (`pooled_statistics`); the light generator's in one
    pass over the thumbnail (each layer's depend on the previous layers' normalisation, so tiles cannot pool them).
    Measured alternatives were worse: statistics pooled over a sample of windows of the photo miss parts of the
    picture, and mixing a thumbnail's normalisation with full-scale measurements compounds through the layers."""
    thumb = pil_to_tensor(fit_within(photo, thumbnail or thumbnail_size(max(photo.size))))
    stats = stylizer.statistics(thumb) if stylizer.model.is_light else pooled_statistics(stylizer, thumb)
    luma = None
    if stylizer.preserve_color:
        small = fit_within(photo, LUMA_THUMBNAIL)
        margin, align, mirror = _margins(stylizer)
        whole = plan_tiles(small.height, small.width, max(small.size), margin, 0, align, mirror)[0]
        luma = stylizer.luminance_stats(*stylize_tile(stylizer, small, whole, stats))
    return stats, luma


def _margins(stylizer: Stylizer, margin: int | None = None) -> tuple:
    """(margin, align, mirror) of `plan_tiles` for this stylizer's generator."""
    architecture = stylizer.model.config.architecture
    return (MARGINS[architecture] if margin is None else margin), stylizer.model.downsampling, architecture == "light"


def stylize_tiled(stylizer: Stylizer, photo: Image.Image, *, tile: int, margin: int | None = None,
                  overlap: int = OVERLAP, thumbnail: int | None = None,
                  progress: Callable[[int, int], None] | None = None) -> Image.Image:
    """Stylise an RGB PIL picture at its own size, tile by tile; returns an RGB PIL picture of the same size.
    margin: default the generator's (MARGINS); thumbnail: see `picture_statistics`. progress(done, total) is called
    after each tile."""
    width, height = photo.size
    margin, align, mirror = _margins(stylizer, margin)
    tiles = plan_tiles(height, width, tile, margin, overlap, align, mirror)
    if len(tiles) == 1:  # one tile: the picture's own statistics are the whole picture's, and one pass does
        x = pil_to_tensor(photo)
        result = tensor_to_pil(stylizer.colour(stylizer(x), x))
        if progress is not None:
            progress(1, 1)
        return result
    stats, luma = picture_statistics(stylizer, photo, thumbnail)
    canvas = np.empty((height, width, 3), dtype=np.uint8)
    row_end, done_rows = {}, 0  # previous tile's right edge in this row; bottom edge of the previous row
    for i, t in enumerate(tiles):
        new = stylizer.colour(*stylize_tile(stylizer, photo, t, stats), luma)[0]
        new = new.permute(1, 2, 0).mul(255.0).cpu().numpy()
        left = max(0, row_end.get(t.y0, 0) - t.x0) if t.x0 > 0 else 0
        top = max(0, done_rows - t.y0) if t.y0 > 0 else 0
        region = canvas[t.y0:t.y1, t.x0:t.x1]
        # blended only where the weight is below 1: the top rows and the left columns that overlap earlier tiles
        weight = _ramp(t.y1 - t.y0, top)[:, None, None] * _ramp(t.x1 - t.x0, left)[None, :, None]
        blend = [(slice(0, top), slice(None)), (slice(top, None), slice(0, left))]
        before = [region[rows, cols].astype(np.float32) for rows, cols in blend]
        region[...] = _to_uint8(new)
        for (rows, cols), old in zip(blend, before):
            w = weight[rows, cols]
            region[rows, cols] = _to_uint8(w * new[rows, cols] + (1.0 - w) * old)
        row_end[t.y0] = t.x1
        if t.x1 == width:
            done_rows = t.y1
        if progress is not None:
            progress(i + 1, len(tiles))
    return Image.fromarray(canvas)


def _to_uint8(a: np.ndarray) -> np.ndarray:
    return np.clip(a + 0.5, 0, 255).astype(np.uint8)


def seam_score(picture: Image.Image | np.ndarray, tiles: list[Tile], band: int = 8) -> float:
    """Mean absolute gradient across the tiles' inner borders (where each blend begins and ends) ÷ the same measured
    `band` px to either side: 1.0
    means the borders are as smooth as the rest of the picture; a seam raises it."""
    a = np.asarray(picture, dtype=np.float32)
    across, inside = [], []
    height, width = a.shape[:2]
    for x in sorted({t.x0 for t in tiles if t.x0 > 0} | {t.x1 for t in tiles if t.x1 < width}):
        across.append(np.abs(a[:, x] - a[:, x - 1]).mean())
        for dx in (band, -band):
            if 0 < x + dx < width:
                inside.append(np.abs(a[:, x + dx] - a[:, x + dx - 1]).mean())
    for y in sorted({t.y0 for t in tiles if t.y0 > 0} | {t.y1 for t in tiles if t.y1 < height}):
        across.append(np.abs(a[y] - a[y - 1]).mean())
        for dy in (band, -band):
            if 0 < y + dy < height:
                inside.append(np.abs(a[y + dy] - a[y + dy - 1]).mean())
    if not across or not inside:
        return 1.0
    return float(np.mean(across) / max(np.mean(inside), 1e-6))
