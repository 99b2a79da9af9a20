"""The light real-time generator and the model's forward in stages (the seams tiles and video build on)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from cst import StyleTransferConfig, StyleTransferError, StyleTransferModel
from cst.imageio import pil_to_tensor
from cst.light import LightTransformer


@pytest.fixture
def light(make_model):
    return make_model(architecture="light")


def test_default_config_is_the_light_generator_and_old_configs_mean_vgg():
    assert StyleTransferConfig().architecture == "light"
    # a config.json written before the light generator existed has no "architecture" key: the VGG generator
    old = StyleTransferConfig.from_dict({"decoder_channels": [8, 8, 8], "skip_connections": True})
    assert old.architecture == "vgg"
    with pytest.raises(StyleTransferError, match="architecture must be one of"):
        StyleTransferConfig(architecture="resnet")


def test_light_model_has_no_vgg_on_the_content_path(light, make_image, monkeypatch):
    """Encoding the style uses VGG19; stylising a photo with cached statistics never calls it (in torch, where the
    call can be seen: the onnxruntime engine would hide a VGG inside its graph)."""
    monkeypatch.setenv("CST_ENGINE", "torch")
    stats = light.style_stats(make_image(40, 40, seed=3))
    calls = []
    hook = light.encoder.register_forward_hook(lambda *a: calls.append(1))
    try:
        out = light.stylize(make_image(44, 36), stats)
        assert calls == [] and out.size == (44, 36)
        light.style_stats(make_image(40, 40, seed=4))  # the hook does see the encoder when it runs
        assert calls
    finally:
        hook.remove()


def test_light_save_load_round_trip_is_exact_and_strict(light, make_image, tmp_path):
    light.save_pretrained(tmp_path / "m")
    keys = set(load_file(str(tmp_path / "m" / "model.safetensors")))
    assert keys and all(k.startswith(("conditioner.", "transformer.")) for k in keys)  # no VGG copy
    assert json.loads((tmp_path / "m" / "config.json").read_text())["architecture"] == "light"
    again = StyleTransferModel.from_pretrained(tmp_path / "m")
    photo, style = make_image(40, 32), make_image(32, 32, seed=5)
    assert np.array_equal(np.asarray(light.stylize(photo, style)), np.asarray(again.stylize(photo, style)))
    # a light file in a vgg model (or the reverse) is refused by key, not silently half-loaded
    vgg = StyleTransferModel(StyleTransferConfig(architecture="vgg", decoder_channels=(8, 8, 8)))
    with pytest.raises(StyleTransferError, match="missing keys"):
        vgg.load_weights(tmp_path / "m" / "model.safetensors")


def test_strength_zero_gives_back_the_photo_and_one_the_stylisation(light, make_image):
    photo, style = make_image(48, 40), make_image(32, 32, seed=7)
    kept = np.asarray(light.stylize(photo, style, strength=0.0)).astype(int)
    assert np.abs(kept - np.asarray(photo).astype(int)).max() <= 1  # 8-bit rounding only
    full = np.asarray(light.stylize(photo, style, strength=1.0)).astype(int)
    half = np.asarray(light.stylize(photo, style, strength=0.5)).astype(int)
    assert np.abs(half - (full + kept) / 2).mean() < 1.0  # strength mixes the stylisation with the photo


def test_sliders_and_styles_change_the_light_output(light, make_image):
    photo = make_image(40, 40)
    a = np.asarray(light.stylize(photo, make_image(32, 32, seed=1), style_weight=0.1)).astype(float)
    b = np.asarray(light.stylize(photo, make_image(32, 32, seed=1), style_weight=10.0)).astype(float)
    c = np.asarray(light.stylize(photo, make_image(32, 32, seed=2) .rotate(90), style_weight=0.1)).astype(float)
    assert np.abs(a - b).mean() > 0.5 and np.abs(a - c).mean() > 0.5


def test_norm_statistics_from_outside_replace_each_layers_own(light, make_image):
    """The seam for tiles and video: statistics recorded on one picture, given back, reproduce it exactly; given to
    a crop of it, every crop gets the same affine map as the whole."""
    x = pil_to_tensor(make_image(48, 48))
    stats = light.style_stats(make_image(32, 32, seed=4))
    w = torch.ones(1, 3)
    params = light.condition(stats, w)
    record: list = []
    with torch.no_grad():
        whole = light.transformer(x, params, record=record)
        again = light.transformer(x, params, norm_stats=record)
        crop_own = light.transformer(x[:, :, :24, :24], params)
        crop_shared = light.transformer(x[:, :, :24, :24], params, norm_stats=record)
    assert len(record) == len(LightTransformer.channels(light.config.light_widths, light.config.light_blocks))
    assert torch.allclose(whole, again, atol=1e-5)
    # away from the crop's border (receptive field), the crop with shared statistics matches the whole picture
    inner = (slice(None), slice(None), slice(4, 16), slice(4, 16))
    assert (crop_shared[inner] - whole[inner]).abs().max() < (crop_own[inner] - whole[inner]).abs().max()


def test_statistics_only_pass_records_the_same_statistics(light, make_image):
    """Tiling's thumbnail pass stops at the last norm's statistics (its phases measured without interleaving them):
    the recorded statistics equal the full pass's."""
    x = pil_to_tensor(make_image(60, 44))
    params = light.condition(light.style_stats(make_image(32, 32, seed=4)), torch.ones(1, 3))
    full: list = []
    part: list = []
    with torch.no_grad():
        light.transformer(x, params, record=full)
        assert light.transformer(x, params, record=part, statistics_only=True) is None
    assert len(part) == len(full)
    for (m1, s1), (m2, s2) in zip(full, part):
        assert torch.allclose(m1, m2, atol=1e-5) and torch.allclose(s1, s2, atol=1e-5)


@pytest.mark.parametrize("size", [(7, 5), (12, 16)])
def test_upsample_conv_is_nearest_upsampling_then_the_conv_with_the_same_gradients(size):
    """The generator's upsample-then-conv is computed at the lower resolution (cst.light.upsample_conv): the same
    picture, border rows and columns included, and the same gradients for training."""
    from cst.light import _conv, upsample_conv

    torch.manual_seed(0)
    conv = _conv(6, 5)
    x = torch.randn(2, 6, *size, requires_grad=True)
    want = conv(torch.nn.functional.interpolate(x, scale_factor=2.0, mode="nearest"))
    got = upsample_conv(conv, x)
    assert got.shape == want.shape == (2, 5, 2 * size[0], 2 * size[1])
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    grad = torch.randn_like(want)
    expected = torch.autograd.grad(want, (x, conv.weight, conv.bias), grad)
    for g, e in zip(torch.autograd.grad(got, (x, conv.weight, conv.bias), grad), expected):
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-4)
    conv.padding_mode = "zeros"  # as in a folded copy (LightTransformer.fold)
    torch.testing.assert_close(upsample_conv(conv, x), conv(torch.nn.functional.interpolate(x, scale_factor=2.0)),
                               rtol=1e-5, atol=1e-5)


def test_a_folded_copy_is_the_network_with_given_statistics_away_from_its_zero_padded_borders(light, make_image):
    """Tiles run a copy with the norms and the in- and output maps folded into the convs, zero-padded: inside the
    receptive field's reach of the borders it is the network normalised with those statistics, to float rounding."""
    x = pil_to_tensor(make_image(64, 56))
    params = light.condition(light.style_stats(make_image(32, 32, seed=4)), torch.tensor([[2.0, 0.5, 1.0]]))
    record: list = []
    with torch.no_grad():
        light.transformer(pil_to_tensor(make_image(40, 48, seed=3)), params, record=record)  # another picture's
        want = light.transformer(x, params, norm_stats=record)
        folded = light.transformer.fold(params, record)
        got = folded(x, None)
    assert folded.folded and not light.transformer.folded and got.shape == want.shape
    inner = (slice(None), slice(None), slice(16, -16), slice(16, -16))  # the tiny model's receptive field: 16 px
    torch.testing.assert_close(got[inner], want[inner], rtol=1e-4, atol=1e-4)
    assert (got - want).abs().max() > 1e-3  # its borders differ: a margin keeps them out of a tile's core


def test_vgg_forward_in_stages_equals_the_one_call(make_model, make_image):
    model = make_model()  # the VGG generator
    x = pil_to_tensor(make_image(40, 40))
    stats = model.style_stats(make_image(32, 32, seed=6))
    w = torch.tensor([[1.0, 2.0, 0.5]])
    with torch.no_grad():
        one = model(x, stats, w)
        feats = model.encode_content(x)
        own = {k: (f.mean(dim=(2, 3), keepdim=True), f.var(dim=(2, 3), keepdim=True, unbiased=False).add(1e-5).sqrt())
               for k, f in feats.items()}
        staged = model.decoder(model.fuse(feats, stats, content_stats=own), w)
    assert torch.allclose(one, staged, atol=1e-4)


def test_old_vgg_model_folder_still_loads(make_model, make_image, tmp_path):
    """A folder saved before this change: config.json without "architecture", decoder.* weights."""
    model = make_model()
    model.save_pretrained(tmp_path / "old")
    config = json.loads((tmp_path / "old" / "config.json").read_text())
    for key in ("architecture", "light_widths", "light_blocks", "style_embedding_dim"):
        config.pop(key)
    (tmp_path / "old" / "config.json").write_text(json.dumps(config))
    loaded = StyleTransferModel.from_pretrained(tmp_path / "old")
    assert loaded.config.architecture == "vgg"
    photo, style = make_image(40, 32), make_image(32, 32, seed=2)
    assert np.array_equal(np.asarray(model.stylize(photo, style)), np.asarray(loaded.stylize(photo, style)))


def test_style_input_standardisation_is_fitted_saved_and_used(light, make_image, tmp_path):
    """The conditioner standardises style vectors with the training paintings' spread; the buffers travel with the
    weights, and they change what the network does with a style."""
    from cst.light import style_vector
    from cst.model import STYLE_LAYERS

    styles = [light.style_stats(make_image(32, 32, seed=s)) for s in range(6)]
    vecs = torch.cat([style_vector(s, STYLE_LAYERS) for s in styles])
    photo = make_image(40, 40)
    before = np.asarray(light.stylize(photo, styles[0])).astype(int)
    light.conditioner.fit_style_normalisation(vecs)
    standardised = (vecs - light.conditioner.style_center) / light.conditioner.style_scale
    varying = light.conditioner.style_scale > 1e-3  # constant inputs (e.g. dead channels) keep a floor scale
    assert standardised.mean(0).abs().max() < 1e-4 and (standardised.std(0)[varying] - 1).abs().max() < 1e-2
    assert np.abs(np.asarray(light.stylize(photo, styles[0])).astype(int) - before).mean() > 0.1
    light.save_pretrained(tmp_path / "m")
    assert "conditioner.style_center" in load_file(str(tmp_path / "m" / "model.safetensors"))
    again = StyleTransferModel.from_pretrained(tmp_path / "m")
    assert torch.equal(again.conditioner.style_scale, light.conditioner.style_scale)
