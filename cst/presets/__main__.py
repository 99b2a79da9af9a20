"""Recompute cst/presets/stats.safetensors for the style sizes of the default model and of the VGG generator."""
from cst import StyleTransferModel

from . import write_stats

if __name__ == "__main__":
    SIZES = (160, 512)  # the light default's style_size, and the VGG generator's
    write_stats(StyleTransferModel(), SIZES)
    print(f"wrote statistics of the presets at style sizes {SIZES}")
