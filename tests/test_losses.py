"""Every loss in cst/losses.py and every tensor function in cst/functional.py against values worked out by hand.

The tensors are tiny (one or two channels, 2x2 positions) so that each expected number can be checked in the comment
beside it. calc_mean_std uses the population variance plus eps = 1e-5 under the square root.
"""
import math

import pytest
import torch

from cst import functional as F_
from cst import losses as L

EPS = 1e-5
SIGMA_1234 = math.sqrt(1.25 + EPS)  # std of [1, 2, 3, 4]: var = (2.25 + 0.25 + 0.25 + 2.25) / 4 = 1.25 -> 1.1180385


def close(actual, expected, atol=1e-5):
    torch.testing.assert_close(torch.as_tensor(actual).float(), torch.as_tensor(expected).float(), atol=atol, rtol=0)


# -- cst/functional.py -------------------------------------------------------------------------------------------
def test_calc_mean_std_by_hand():
    # channel 0 = [[1, 2], [3, 4]]: mean 2.5, std sqrt(1.25 + eps); channel 1 = all 5: mean 5, std sqrt(eps) (> 0)
    feat = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[5.0, 5.0], [5.0, 5.0]]]])
    mean, std = F_.calc_mean_std(feat)
    assert mean.shape == std.shape == (1, 2, 1, 1)
    close(mean.flatten(), [2.5, 5.0])
    close(std.flatten(), [SIGMA_1234, math.sqrt(EPS)])


def test_gram_matrix_by_hand():
    # F = [[1, 2], [3, 4]] (2 channels x 2 positions); G = F Fᵀ / 2 = [[5, 11], [11, 25]] / 2
    feat = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])  # (1, 2, 1, 2)
    close(F_.gram_matrix(feat), [[[2.5, 5.5], [5.5, 12.5]]])


def test_adain_by_hand_and_strength():
    content = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])  # μ_c = 2.5, σ_c = 1.1180385
    mean, std = torch.full((1, 1, 1, 1), 10.0), torch.full((1, 1, 1, 1), 2.0)
    # t = 2 (x − 2.5) / 1.1180385 + 10: x = 1 -> 7.316729, 2 -> 9.105576, 3 -> 10.894424, 4 -> 12.683271
    full = [[[[7.316729, 9.105576], [10.894424, 12.683271]]]]
    close(F_.adaptive_instance_normalization(content, mean, std), full)
    # strength 0.5: (t + x) / 2 -> 4.158365, 5.552788, 6.947212, 8.341636
    close(F_.adaptive_instance_normalization(content, mean, std, 0.5), [[[[4.158365, 5.552788], [6.947212, 8.341636]]]])
    # strength 0 gives the content back exactly
    assert torch.equal(F_.adaptive_instance_normalization(content, mean, std, 0.0), content)
    # per-sample strength (B,): sample 0 untouched, sample 1 fully stylised
    both = F_.adaptive_instance_normalization(content.repeat(2, 1, 1, 1), mean.repeat(2, 1, 1, 1),
                                              std.repeat(2, 1, 1, 1), torch.tensor([0.0, 1.0]))
    close(both[0:1], content)
    close(both[1:2], full)


def test_blend_style_stats_by_hand():
    a = {"relu1_1": (torch.zeros(1, 1, 1, 1), torch.ones(1, 1, 1, 1))}
    b = {"relu1_1": (torch.full((1, 1, 1, 1), 10.0), torch.full((1, 1, 1, 1), 5.0))}
    # weights (3, 1) normalise to (0.75, 0.25): mean 0.25·10 = 2.5, std 0.75·1 + 0.25·5 = 2.0
    mean, std = F_.blend_style_stats([a, b], [3.0, 1.0])["relu1_1"]
    close(mean.flatten(), [2.5])
    close(std.flatten(), [2.0])
    # (1, 0) is exactly the first style
    mean, std = F_.blend_style_stats([a, b], [1.0, 0.0])["relu1_1"]
    assert torch.equal(mean, a["relu1_1"][0]) and torch.equal(std, a["relu1_1"][1])


def _yiq(rgb):
    return torch.einsum("ij,bjhw->bihw", F_._RGB_TO_YIQ, rgb)


def test_preserve_color_by_hand():
    # stylised: a red and a blue pixel, Y = 0.299 and 0.114 (mean 0.2065, std sqrt(0.0925² + eps) = 0.0925540)
    # content: grey 0.2 and grey 0.6, Y = 0.2 and 0.6 (mean 0.4, std sqrt(0.2² + eps) = 0.2000250), I = Q = 0
    # Y_out = 0.4 ± 0.0925 / 0.0925540 · 0.2000250 = 0.599908 (red pixel), 0.200092 (blue pixel); with I = Q = 0
    # the inverse YIQ transform gives R = G = B = Y: the content's (absent) colour, the stylised image's light pattern.
    stylized = torch.tensor([[[[1.0, 0.0]], [[0.0, 0.0]], [[0.0, 1.0]]]])  # (1, 3, 1, 2)
    content = torch.tensor([[[[0.2, 0.6]], [[0.2, 0.6]], [[0.2, 0.6]]]])
    out = F_.preserve_color(stylized, content)
    close(out, torch.tensor([0.599908, 0.200092]).view(1, 1, 1, 2).expand(1, 3, 1, 2), atol=1e-4)


def test_preserve_color_keeps_content_chroma():
    content = torch.tensor([[[[0.6, 0.3]], [[0.4, 0.5]], [[0.3, 0.6]]]])  # two coloured pixels
    stylized = torch.tensor([[[[0.3, 0.7]], [[0.3, 0.7]], [[0.3, 0.7]]]])  # grey, dark then light
    out = F_.preserve_color(stylized, content)
    close(_yiq(out)[:, 1:], _yiq(content)[:, 1:], atol=1e-5)  # I and Q are the content's
    assert _yiq(out)[0, 0, 0, 0] < _yiq(out)[0, 0, 0, 1]  # luminance order is the stylised image's


# -- content losses ----------------------------------------------------------------------------------------------
def test_l1_and_l2_per_sample_by_hand():
    output = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]], [[[1.0, 1.0], [1.0, 1.0]]]])
    target = torch.tensor([[[[0.0, 0.0], [0.0, 0.0]]], [[[0.0, 2.0], [1.0, 1.0]]]])
    # sample 0: |.| = 1 2 3 4 -> 2.5; squares 1 4 9 16 -> 7.5. sample 1: diffs 1, −1, 0, 0 -> 0.5 and 0.5
    close(L.l1_per_sample(output, target), [2.5, 0.5])
    close(L.l2_per_sample(output, target), [7.5, 0.5])


def test_perceptual_per_sample_by_hand_and_target_is_constant():
    out = {"a": torch.full((1, 2, 2, 2), 3.0, requires_grad=True), "b": torch.zeros(1, 1, 2, 2), "c": torch.zeros(1, 1)}
    target = {"a": torch.ones(1, 2, 2, 2, requires_grad=True), "b": torch.full((1, 1, 2, 2), 0.5),
              "c": torch.full((1, 1), 100.0)}
    # layer a: (3 − 1)² = 4; layer b: 0.5² = 0.25; layer c is not asked for
    loss = L.perceptual_per_sample(out, target, ("a", "b"))
    close(loss, [4.25])
    loss.sum().backward()
    assert out["a"].grad is not None and target["a"].grad is None  # the target is detached


# -- style losses ------------------------------------------------------------------------------------------------
def test_mean_std_per_sample_by_hand():
    # channel 0 [[1, 2], [3, 4]]: μ 2.5, σ 1.1180385 vs style (0.5, 0.1180385): (2)², (1)²
    # channel 1 all 5: μ 5, σ sqrt(eps) vs style (4, sqrt(eps)): (1)², 0
    # per term the channels are averaged: means (4 + 1) / 2 = 2.5, stds (1 + 0) / 2 = 0.5 -> 3.0
    feat = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[5.0, 5.0], [5.0, 5.0]]]])
    style_mean = torch.tensor([0.5, 4.0]).view(1, 2, 1, 1)
    style_std = torch.tensor([SIGMA_1234 - 1.0, math.sqrt(EPS)]).view(1, 2, 1, 1)
    close(L.mean_std_per_sample(feat, style_mean, style_std), [3.0], atol=1e-4)


def test_gram_per_sample_by_hand():
    feat = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])  # Gram [[2.5, 5.5], [5.5, 12.5]] (see test_gram_matrix)
    style_gram = torch.tensor([[[2.5, 5.5], [5.5, 10.5]]])
    # only entry (1, 1) differs, by 2: 2² / 4 entries = 1.0
    close(L.gram_per_sample(feat, style_gram), [1.0])


def test_sliced_wasserstein_one_channel_by_hand():
    # C = 1: every unit direction is ±1, and both signs give the same sorted differences.
    # output [4, 1, 3, 2] sorted [1, 2, 3, 4]; style [0, 8, 0, 0] sorted [0, 0, 0, 8]
    # diffs 1, 2, 3, −4 -> squares 1, 4, 9, 16 -> mean 7.5   (direction −1: 4, −3, −2, −1 -> the same 7.5)
    output = torch.tensor([[[[4.0, 1.0], [3.0, 2.0]]]])
    style = torch.tensor([[[[0.0, 8.0], [0.0, 0.0]]]])
    close(L.sliced_wasserstein_per_sample(output, style, generator=torch.Generator().manual_seed(0)), [7.5])


def test_sliced_wasserstein_different_sample_counts_by_hand():
    # output [1, 2, 3, 4] (4 positions) vs style 0..7 (8 positions): the style's sorted values are taken at indices
    # round(linspace(0, 7, 4)) = 0, 2, 5, 7 -> [0, 2, 5, 7]; diffs 1, 0, −2, −3 -> 1, 0, 4, 9 -> 3.5
    output = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    style = torch.arange(8.0).view(1, 1, 2, 4)
    close(L.sliced_wasserstein_per_sample(output, style, generator=torch.Generator().manual_seed(0)), [3.5])


def test_sliced_wasserstein_zero_for_same_distribution_positive_otherwise():
    gen = torch.Generator().manual_seed(0)
    feat = torch.randn(2, 8, 6, 5, generator=gen)
    perm = torch.randperm(30, generator=gen)
    shuffled = feat.flatten(2)[:, :, perm].view_as(feat)  # same feature vectors at other positions
    close(L.sliced_wasserstein_per_sample(feat, shuffled, generator=torch.Generator().manual_seed(1)), [0.0, 0.0])
    other = torch.cat([shuffled[:1], shuffled[1:] * 1.5 + 0.5])  # sample 1 differs, sample 0 does not
    loss = L.sliced_wasserstein_per_sample(feat, other, generator=torch.Generator().manual_seed(1))
    assert loss.shape == (2,)
    close(loss[0], 0.0)
    assert loss[1] > 0.1
    # a single style feature map (batch 1) is compared with every sample
    loss = L.sliced_wasserstein_per_sample(feat, shuffled[:1], generator=torch.Generator().manual_seed(1))
    close(loss[0], 0.0)
    assert loss[1] > 0.1


# -- regularisers and adversarial losses -------------------------------------------------------------------------
def test_total_variation_by_hand():
    # [[0, 1], [3, 5]]: vertical |3 − 0|, |5 − 1| -> mean 3.5; horizontal |1 − 0|, |5 − 3| -> mean 1.5;
    # total 5.0
    close(L.total_variation_per_sample(torch.tensor([[[[0.0, 1.0], [3.0, 5.0]]]])), [5.0])


def test_hinge_losses_by_hand():
    # D: real [2, 0.5] -> relu(1 − 2) = 0, relu(0.5) = 0.5, mean 0.25; fake [−2, 0] -> 0, relu(1) = 1, mean 0.5
    close(L.d_hinge_loss(torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.0])), 0.75)
    # G: −mean(D(fake)) per sample: [1, 3] -> −2; [−1, −1] -> 1
    close(L.g_hinge_per_sample(torch.tensor([[[[1.0, 3.0]]], [[[-1.0, -1.0]]]])), [-2.0, 1.0])


def test_nonsaturating_losses_by_hand():
    ln3 = math.log(3.0)
    # softplus(−ln 3) = ln(1 + 1/3) = ln(4/3); softplus(ln 3) = ln 4; total ln(16/3) = 1.673976
    close(L.d_nonsaturating_loss(torch.tensor([ln3]), torch.tensor([ln3])), math.log(16 / 3))
    # per sample: D(fake) = ln 3 -> ln(4/3) = 0.287682; D(fake) = 0 -> ln 2 = 0.693147
    close(L.g_nonsaturating_per_sample(torch.tensor([[ln3], [0.0]])), [math.log(4 / 3), math.log(2.0)])


def test_least_squares_losses_by_hand():
    # D: 0.5 (3 − 1)² + 0.5 · 2² = 2 + 2 = 4
    close(L.d_least_squares_loss(torch.tensor([3.0]), torch.tensor([2.0])), 4.0)
    # G: 0.5 (3 − 1)² = 2; 0.5 (1 − 1)² = 0
    close(L.g_least_squares_per_sample(torch.tensor([[3.0], [1.0]])), [2.0, 0.0])


@pytest.mark.parametrize("name", sorted(L.ADVERSARIAL_LOSSES))
def test_adversarial_pairs_point_the_right_way(name):
    d_loss, g_loss = L.ADVERSARIAL_LOSSES[name]
    good, bad = torch.full((2, 1, 3, 3), 3.0), torch.full((2, 1, 3, 3), -3.0)
    # D is rewarded for high logits on real and low on fake; G for high logits on its fakes
    assert d_loss(good, bad) < d_loss(bad, good)
    g_fooling, g_caught = g_loss(good), g_loss(bad)
    assert g_fooling.shape == (2,) and (g_fooling < g_caught).all()
