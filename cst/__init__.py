"""cst — content-preserving style transfer.

    from cst import StyleTransferModel, DEFAULT_MODEL
    model = StyleTransferModel.from_pretrained(DEFAULT_MODEL)
    picture = model.stylize("photo.jpg", "painting.jpg", style_weight=2.0)
"""
from .errors import StyleTransferError
from .frontend import DEFAULT_MODEL
from .model import StyleTransferConfig, StyleTransferModel

__version__ = "0.2.0"

# DEFAULT_MODEL: the embedded default (the VGG generator). The light real-time generator is an architecture
# (`StyleTransferConfig(architecture="light")`), trained with train/run.py; see docs/light_model.md.
# `CST_MODEL=org/name[@revision]` in the app/CLI selects a Hub model instead.
__all__ = ["StyleTransferModel", "StyleTransferConfig", "StyleTransferError", "DEFAULT_MODEL",
           "__version__"]
