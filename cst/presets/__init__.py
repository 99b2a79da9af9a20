"""Built-in styles: nine public-domain paintings with their credits (PRESETS.tsv) and precomputed statistics.

A preset name works wherever a style image does: `model.stylize(photo, "starry-night")`,
`python -m cst stylize photo.jpg --style starry-night`. `stats.safetensors` holds each preset's VGG19 statistics at
the style sizes the shipped models use, so a preset costs no style encoding; other sizes are computed from the image.
"""
from __future__ import annotations

import csv
import functools
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

FOLDER = Path(str(resources.files(__package__)))
STATS_FILE = FOLDER / "stats.safetensors"


@dataclass(frozen=True)
class Preset:
    name: str  # the identifier users type: "starry-night"
    title: str
    artist: str
    year: str
    rights: str
    source: str  # public repository and path it was taken from

    @property
    def path(self) -> Path:
        return FOLDER / f"{self.name}.jpg"

    @property
    def credit(self) -> str:
        return f"{self.title}, {self.artist} ({self.year})"


@functools.lru_cache(maxsize=1)
def presets() -> dict[str, Preset]:
    """name -> Preset, in the order of PRESETS.tsv."""
    with open(FOLDER / "PRESETS.tsv", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return {r["name"]: Preset(r["name"], r["title"], r["artist"], r["year"], r["rights"],
                              f"{r['source_repo']}/{r['source_path']}") for r in rows}


def get(name: str) -> Preset | None:
    """The preset called `name` (case and surrounding spaces ignored), or None."""
    return presets().get(name.strip().lower()) if isinstance(name, str) else None


def _key(name: str, size: int, layer: str, part: str) -> str:
    return f"{name}/{size}/{layer}/{part}"


@functools.lru_cache(maxsize=1)
def _stored() -> dict[str, torch.Tensor]:
    return load_file(str(STATS_FILE)) if STATS_FILE.is_file() else {}


def stored_stats(name: str, size: int, layers: tuple[str, ...]) -> dict | None:
    """Precomputed {layer: (mean, std)} of preset `name` at style size `size`, or None if not stored."""
    store = _stored()
    if not all(_key(name, size, k, "mean") in store for k in layers):
        return None
    return {k: (store[_key(name, size, k, "mean")], store[_key(name, size, k, "std")]) for k in layers}


def write_stats(model, sizes: tuple[int, ...], path: Path = STATS_FILE) -> None:
    """Compute every preset's statistics with `model.style_stats` at each size and store them (maintainers' tool:
    `python -m cst.presets` after changing the presets or the shipped models' style sizes)."""
    state = {}
    for size in sizes:
        for name, preset in presets().items():
            for layer, (mean, std) in model.style_stats(preset.path, style_size=size).items():
                state[_key(name, size, layer, "mean")] = mean.contiguous()
                state[_key(name, size, layer, "std")] = std.contiguous()
    save_file(state, str(path))
    _stored.cache_clear()
