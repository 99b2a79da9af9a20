"""Example inputs for the Space, all offline: scikit-image's bundled sample photos with cst's built-in paintings.

The photos ship inside the scikit-image wheel (public domain / CC0; no download) and are written to a folder at
start-up; the styles are the public-domain paintings in cst/presets, used by name (precomputed statistics).
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import skimage.data
from PIL import Image

from cst import presets
from cst.imageio import save_image_atomic

DEFAULT_FOLDER = Path(tempfile.gettempdir()) / "cst-space-examples"

# name -> loader of an HxWx3 uint8 photo; all four ship inside the scikit-image wheel
PHOTOS: dict[str, Callable[[], np.ndarray]] = {
    "astronaut": skimage.data.astronaut,
    "chelsea": skimage.data.chelsea,
    "coffee": skimage.data.coffee,
    "rocket": skimage.data.rocket,
}

# (photo, built-in style) pairs shown as the Space's examples, in this order
PAIRS: list[tuple[str, str]] = [
    ("astronaut", "starry-night"),
    ("chelsea", "great-wave"),
    ("coffee", "water-lilies"),
    ("rocket", "the-scream"),
    ("chelsea", "woman-with-a-hat"),
    ("astronaut", "composition-1913"),
]


def write_photos(folder: str | Path = DEFAULT_FOLDER) -> dict[str, Path]:
    """Write the photos (JPEG) into `folder`; returns name -> path.

    Rewritten on every start (well under a second) so the files always match this code; each write is atomic, so
    two servers starting at once never read a half-written file.
    """
    folder = Path(folder)
    paths = {}
    for name, load in PHOTOS.items():
        paths[name] = folder / f"{name}.jpg"
        save_image_atomic(Image.fromarray(load()), paths[name])
    return paths


def examples(folder: str | Path = DEFAULT_FOLDER) -> list[list[str]]:
    """The example rows [photo path, painting path, preset name], photos written into `folder` first."""
    photos, paintings = write_photos(folder), presets.presets()
    return [[str(photos[photo]), str(paintings[name].path), name] for photo, name in PAIRS]
