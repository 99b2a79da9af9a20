"""The style-aware multi-scale PatchGAN discriminator."""
from __future__ import annotations

import torch

from cst.discriminator import DiscriminatorConfig, StyleDiscriminator


def _stats(seed: int, batch: int = 2):
    g = torch.Generator().manual_seed(seed)
    return {k: (torch.rand(batch, c, 1, 1, generator=g) * 10, torch.rand(batch, c, 1, 1, generator=g) * 10 + 0.1)
            for k, c in (("relu1_1", 64), ("relu2_1", 128), ("relu3_1", 256), ("relu4_1", 512))}


def test_one_patch_map_per_scale_with_the_patchgan_shapes():
    disc = StyleDiscriminator(DiscriminatorConfig(base_channels=8, num_layers=3, num_scales=2))
    out = disc(torch.rand(2, 3, 64, 64), _stats(0))
    # 70x70 PatchGAN: three stride-2 convs then two stride-1 4x4 convs: 64 -> 8 -> 6; the half scale 32 -> 4 -> 2
    assert [tuple(o.shape) for o in out] == [(2, 1, 6, 6), (2, 1, 2, 2)]


def test_the_style_changes_the_judgement_of_the_same_image():
    torch.manual_seed(0)
    disc = StyleDiscriminator(DiscriminatorConfig(base_channels=8))
    image = torch.rand(2, 3, 64, 64)
    a, b = disc(image, _stats(1)), disc(image, _stats(2))
    assert all((x - y).abs().max() > 1e-4 for x, y in zip(a, b))
    # one style for a whole batch broadcasts
    one = {k: (m[:1], s[:1]) for k, (m, s) in _stats(1).items()}
    assert [tuple(o.shape) for o in disc(image, one)] == [tuple(o.shape) for o in a]


def test_spectral_norm_bounds_every_conv_and_gradients_reach_the_image():
    disc = StyleDiscriminator(DiscriminatorConfig(base_channels=8))
    convs = [m for m in disc.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(hasattr(m, "parametrizations") for m in convs)
    image = torch.rand(1, 3, 64, 64, requires_grad=True)
    sum(o.mean() for o in disc(image, _stats(3, batch=1))).backward()
    assert image.grad.abs().sum() > 0
