"""cst — content-preserving style transfer.

    from cst import StyleTransferModel, DEFAULT_MODEL
    model = StyleTransferModel.from_pretrained(DEFAULT_MODEL)
    picture = model.stylize("photo.jpg", "painting.jpg", style_weight=2.0)
"""
from pathlib import Path

from .errors import StyleTransferError
from .model import StyleTransferConfig, StyleTransferModel

__version__ = "0.1.0"

# The embedded default checkpoint (config.json + model.safetensors), shipped inside the package so that
# everything works offline. `CST_MODEL=org/name` in the app/CLI selects a Hub model instead.
DEFAULT_MODEL = str(Path(__file__).resolve().parent / "default_model")

__all__ = ["StyleTransferModel", "StyleTransferConfig", "StyleTransferError", "DEFAULT_MODEL", "__version__"]
