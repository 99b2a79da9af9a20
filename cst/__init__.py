"""cst — content-preserving style transfer.

    from cst import StyleTransferModel, DEFAULT_MODEL
    model = StyleTransferModel.from_pretrained(DEFAULT_MODEL)
    picture = model.stylize("photo.jpg", "painting.jpg", style_weight=2.0)
"""
from .errors import StyleTransferError
from .frontend import DEFAULT_MODEL
from .model import StyleTransferConfig, StyleTransferModel

__version__ = "0.3.2"

# DEFAULT_MODEL: the embedded default, the light real-time generator (no VGG on the photo's path). The earlier
# default (VGG19 encoder + AdaIN decoder) is not shipped; README "Two generator architectures" says how to restore it.
# `CST_MODEL=org/name[@revision]` in the app/CLI selects a Hub model instead.
__all__ = ["StyleTransferModel", "StyleTransferConfig", "StyleTransferError", "DEFAULT_MODEL",
           "__version__"]
