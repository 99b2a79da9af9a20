"""Fixtures shared by the core tests: a tiny seeded generator (saved or in memory) and synthetic images.

Everything is made here, offline: no test reads /work/shared or the network.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cst import StyleTransferConfig, StyleTransferModel

# One intra-op thread: these tests run tiny tensors, where thread start-up and, on a shared busy machine, waiting for
# a second core cost far more than they save (measured: a 40x32 forward pass takes 30 ms on 1 thread, 1 s on 2 under
# load). Subprocesses started by the tests get OMP_NUM_THREADS=1 for the same reason.
torch.set_num_threads(1)

# Channels 8, 64 px working size: builds in milliseconds once VGG19 is loaded (about 1 s, once per process).
# TINY_CONFIG is the VGG generator (the first architecture); TINY_LIGHT the light real-time one.
TINY_CONFIG = dict(architecture="vgg", decoder_channels=(8, 8, 8), condition_dim=8, style_size=64, max_size=128)
TINY_LIGHT = dict(architecture="light", light_widths=(8, 8), light_blocks=1, style_embedding_dim=16, style_size=64,
                  max_size=128)


def _tiny_model(seed: int = 0, **overrides) -> StyleTransferModel:
    torch.manual_seed(seed)
    base = TINY_LIGHT if overrides.get("architecture") == "light" else TINY_CONFIG
    model = StyleTransferModel(StyleTransferConfig(**{**base, **overrides}))
    # the conditioning MLPs' last layers start at (near) zero, i.e. identity modulation: randomise them so that the
    # sliders change the output and a save/load round trip has to carry real conditioning weights.
    last = model.conditioner.head[-1] if model.is_light else model.decoder.film.mlp[-1]
    with torch.no_grad():
        torch.nn.init.normal_(last.weight, std=0.5)
        torch.nn.init.normal_(last.bias, std=0.1)
        if model.is_light:
            torch.nn.init.normal_(model.conditioner.slider_gain.weight, std=0.5)
    return model.eval()


def _image(width: int, height: int, seed: int = 0) -> Image.Image:
    """RGB gradient + a coloured disc + noise: structure for the content terms, colour for the style terms."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    x, y = x / max(width - 1, 1), y / max(height - 1, 1)
    img = np.stack([x, y, 1.0 - 0.5 * (x + y)], axis=-1) * 0.7 + 0.15
    cx, cy = rng.uniform(0.3, 0.7, 2)
    img[(x - cx) ** 2 + (y - cy) ** 2 < 0.05] = rng.uniform(0.0, 1.0, 3)
    img = img + rng.normal(0.0, 0.04, img.shape)
    return Image.fromarray((img.clip(0.0, 1.0) * 255).round().astype(np.uint8))


@pytest.fixture(scope="session")
def make_model():
    """make_model(seed=0, **config_overrides) -> a tiny StyleTransferModel in eval mode, FiLM randomised."""
    return _tiny_model


@pytest.fixture
def tiny_model() -> StyleTransferModel:
    return _tiny_model()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny model saved with save_pretrained (config.json + model.safetensors). Do not modify: shared."""
    path = tmp_path_factory.mktemp("tiny_model")
    _tiny_model().save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def make_image():
    """make_image(width, height, seed=0) -> a synthetic RGB PIL image."""
    return _image


@pytest.fixture
def write_image(tmp_path):
    """write_image(name, width=48, height=40, seed=0, **save_kwargs) -> Path of a synthetic image under tmp_path."""

    def write(name: str, width: int = 48, height: int = 40, seed: int = 0, **save_kwargs) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        _image(width, height, seed).save(path, **save_kwargs)
        return path

    return write


class _MakeDirsOnUnpickle:
    """Pickles to 'create a folder': what a malicious weight file could do if unpickled without weights_only."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        import os
        return os.makedirs, (self.marker,)


@pytest.fixture
def malicious_pickle(tmp_path):
    """malicious_pickle(path, key) writes a torch.save'd {key: payload} to `path`; unpickling it without
    weights_only creates the returned marker folder, so `not marker.exists()` proves the file was never unpickled."""

    def write(path: Path, key: str) -> Path:
        marker = tmp_path / f"pwned-{path.name}"
        torch.save({key: _MakeDirsOnUnpickle(str(marker))}, path)
        return marker

    return write
