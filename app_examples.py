"""Example images for the Space, all made offline at start-up: nothing here is a shipped image file.

Photos come from scikit-image's bundled samples (public domain / CC0, installed with the package); the styles are
procedural "artworks" drawn with numpy from a fixed seed, so every start draws the same pictures.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import skimage.color
import skimage.data
from PIL import Image

from cst.imageio import save_image_atomic

ARTWORK_SIZE = 320  # px a side; the model resizes styles to config.style_size anyway, so small is enough
DEFAULT_FOLDER = Path(tempfile.gettempdir()) / "cst-space-examples"

# name -> loader of an HxWx3 uint8 photo; all four ship inside the scikit-image wheel (no download)
PHOTOS: dict[str, Callable[[], np.ndarray]] = {
    "astronaut": skimage.data.astronaut,
    "chelsea": skimage.data.chelsea,
    "coffee": skimage.data.coffee,
    "rocket": skimage.data.rocket,
}


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel centre coordinates in [0, 1), each (size, size): y down, x right."""
    coords = (np.arange(size, dtype=np.float64) + 0.5) / size
    return np.meshgrid(coords, coords, indexing="ij")


def _palette(*hex_colours: str) -> np.ndarray:
    """('#e63946', ...) -> (N, 3) uint8."""
    return np.array([[int(h[i:i + 2], 16) for i in (1, 3, 5)] for h in hex_colours], dtype=np.uint8)


def stripes(size: int, rng: np.random.Generator) -> np.ndarray:
    """Wobbly diagonal bands in a flat five-colour palette (a poster-like style)."""
    y, x = _grid(size)
    phase = rng.uniform(0, 2 * np.pi)
    t = 7.0 * (x + y) + 0.8 * np.sin(2 * np.pi * 2.5 * y + phase) + 0.4 * np.sin(2 * np.pi * 6 * x)
    palette = _palette("#e63946", "#f1faee", "#a8dadc", "#457b9d", "#1d3557")
    return palette[np.floor(t).astype(int) % len(palette)]


def mosaic(size: int, rng: np.random.Generator, tiles: int = 70) -> np.ndarray:
    """Voronoi tiles in blues and golds with dark grout (a mosaic style)."""
    y, x = _grid(size)
    seeds = rng.uniform(0, 1, size=(tiles, 2))  # (T, 2) tile centres as (y, x)
    dist = np.hypot(y[..., None] - seeds[:, 0], x[..., None] - seeds[:, 1])  # (H, W, T)
    nearest = np.argsort(dist, axis=-1)[..., :2]  # (H, W, 2)
    d1 = np.take_along_axis(dist, nearest[..., :1], axis=-1)[..., 0]
    d2 = np.take_along_axis(dist, nearest[..., 1:], axis=-1)[..., 0]
    palette = _palette("#0b3c5d", "#328cc1", "#d9b310", "#f4e9cd", "#1d2731", "#c06014").astype(np.float64)
    tile_colours = palette[rng.integers(0, len(palette), tiles)] + rng.normal(0, 12, size=(tiles, 3))  # (T, 3)
    img = tile_colours[nearest[..., 0]]
    grout = (d2 - d1) < 2.5 / size  # thin lines where two tiles are almost equally near
    img[grout] = (30, 24, 20)
    return np.clip(img, 0, 255).astype(np.uint8)


def swirl(size: int, rng: np.random.Generator) -> np.ndarray:
    """Swirling rainbow brush-strokes around a centre (a starry-night-like style)."""
    y, x = _grid(size)
    cy, cx = rng.uniform(0.35, 0.65, size=2)
    r, theta = np.hypot(y - cy, x - cx), np.arctan2(y - cy, x - cx)
    twist = theta + 9.0 * r  # the spiral: angle grows with the radius
    strokes = np.sin(14 * twist) * np.cos(40 * r)
    hue = (0.58 + 0.9 * r + 0.08 * np.sin(3 * twist)) % 1.0  # blue centre, through violet and red to gold
    sat = np.clip(0.65 + 0.25 * strokes, 0, 1)
    val = np.clip(0.55 + 0.35 * strokes + 0.2 * np.sin(60 * r), 0, 1)
    rgb = skimage.color.hsv2rgb(np.stack([hue, sat, val], axis=-1))  # (H, W, 3) float in [0, 1]
    return (rgb * 255 + 0.5).astype(np.uint8)


def rings(size: int, rng: np.random.Generator, circles: int = 7) -> np.ndarray:
    """Concentric coloured rings on a dark ground (a Kandinsky-like style)."""
    y, x = _grid(size)
    img = np.empty((size, size, 3), dtype=np.uint8)
    img[:] = (24, 26, 38)
    palette = _palette("#ffbe0b", "#fb5607", "#ff006e", "#8338ec", "#3a86ff", "#f1faee")
    for _ in range(circles):
        cy, cx = rng.uniform(0.1, 0.9, size=2)
        radius = rng.uniform(0.08, 0.3)
        d = np.hypot(y - cy, x - cx)
        inside = d < radius
        band = np.floor(d / radius * 4).astype(int)  # 4 rings per circle
        colours = palette[rng.permutation(len(palette))[:4]]
        img[inside] = colours[band[inside] % 4]
    return img


# name -> painter(size, rng) -> HxWx3 uint8; the seed is the position, so each picture is fixed
ARTWORKS: dict[str, Callable[[int, np.random.Generator], np.ndarray]] = {
    "stripes": stripes, "mosaic": mosaic, "swirl": swirl, "rings": rings,
}


def write_examples(folder: str | Path = DEFAULT_FOLDER) -> dict[str, Path]:
    """Write the photos (JPEG) and artworks (PNG) into `folder`; returns name -> path.

    Rewritten on every start (well under a second) so the files always match this code; each write is atomic, so
    two servers starting at once never read a half-written file.
    """
    folder = Path(folder)
    paths = {}
    for name, load in PHOTOS.items():
        paths[name] = folder / f"{name}.jpg"
        save_image_atomic(Image.fromarray(load()), paths[name])
    for seed, (name, paint) in enumerate(ARTWORKS.items()):
        paths[name] = folder / f"{name}.png"
        save_image_atomic(Image.fromarray(paint(ARTWORK_SIZE, np.random.default_rng(seed))), paths[name])
    return paths
