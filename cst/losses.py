"""Every loss of the method, as pure functions of tensors (no modules, no state).

Shapes: images (B, 3, H, W); features (B, C, H, W); logits (B, 1, h, w) or any shape. Functions whose name ends in
`_per_sample` return (B,) so loss-conditional training can weight each sample by its own (α, β, λ); the others
return a scalar. Paper symbols: total = α·content + β·style + λ·adversarial (+ τ·total variation).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .functional import calc_mean_std, gram_matrix


def _per_sample_mean(x: torch.Tensor) -> torch.Tensor:
    return x.float().reshape(x.shape[0], -1).mean(dim=1)


# -- content ---------------------------------------------------------------------------------------------------
def l1_per_sample(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error per sample: (B, ...) x2 -> (B,)."""
    return _per_sample_mean((output - target).abs())


def l2_per_sample(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error per sample: (B, ...) x2 -> (B,)."""
    return _per_sample_mean((output - target) ** 2)


def perceptual_per_sample(output_feats: dict[str, torch.Tensor], target_feats: dict[str, torch.Tensor],
                          layers: tuple[str, ...]) -> torch.Tensor:
    """Sum over `layers` of the feature MSE (Johnson et al. 2016): -> (B,)."""
    return sum(l2_per_sample(output_feats[k], target_feats[k].detach()) for k in layers)


# -- style -----------------------------------------------------------------------------------------------------
def mean_std_per_sample(output_feat: torch.Tensor, style_mean: torch.Tensor, style_std: torch.Tensor) -> torch.Tensor:
    """AdaIN's style loss for one layer: ‖μ(o) − μ_s‖² + ‖σ(o) − σ_s‖², averaged over channels -> (B,)."""
    mean, std = calc_mean_std(output_feat)
    return l2_per_sample(mean, style_mean.detach()) + l2_per_sample(std, style_std.detach())


def gram_per_sample(output_feat: torch.Tensor, style_gram: torch.Tensor) -> torch.Tensor:
    """Gatys' style loss for one layer: mean squared difference of Gram matrices (B, C, C) -> (B,)."""
    return l2_per_sample(gram_matrix(output_feat), style_gram.detach())


def sliced_wasserstein_per_sample(output_feat: torch.Tensor, style_feat: torch.Tensor, num_projections: int = 64,
                                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Sliced Wasserstein distance between the feature distributions (Heitz et al. CVPR 2021) -> (B,).

    Both feature maps are projected on the same random unit directions; the sorted projections are compared.
    The style's sample count is resampled to the output's by nearest index, so sizes may differ.
    """
    b, c = output_feat.shape[:2]
    assert style_feat.shape[:2] == (b, c) or style_feat.shape[:2] == (1, c), "style features must match channels"
    directions = torch.randn(c, num_projections, device=output_feat.device, generator=generator)
    directions = directions / directions.norm(dim=0, keepdim=True)
    proj_o = output_feat.float().reshape(b, c, -1).transpose(1, 2) @ directions  # (B, N_o, P)
    proj_s = style_feat.detach().float().reshape(style_feat.shape[0], c, -1).transpose(1, 2) @ directions
    proj_s = proj_s.expand(b, -1, -1)
    sorted_o, _ = proj_o.sort(dim=1)
    sorted_s, _ = proj_s.sort(dim=1)
    if sorted_s.shape[1] != sorted_o.shape[1]:  # quantile matching between different sample counts
        idx = torch.linspace(0, sorted_s.shape[1] - 1, sorted_o.shape[1], device=sorted_s.device).round().long()
        sorted_s = sorted_s[:, idx]
    return _per_sample_mean((sorted_o - sorted_s) ** 2)


# -- regularisers ----------------------------------------------------------------------------------------------
def total_variation_per_sample(image: torch.Tensor) -> torch.Tensor:
    """Anisotropic TV: mean |x[i+1] − x[i]| over both axes -> (B,)."""
    dh = (image[:, :, 1:, :] - image[:, :, :-1, :]).abs()
    dw = (image[:, :, :, 1:] - image[:, :, :, :-1]).abs()
    return _per_sample_mean(dh) + _per_sample_mean(dw)


# -- adversarial (logits in, no sigmoid in the networks) -------------------------------------------------------
def d_hinge_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator hinge loss (Lim & Ye 2017): E[relu(1 − D(real))] + E[relu(1 + D(fake))]."""
    return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()


def g_hinge_per_sample(fake_logits: torch.Tensor) -> torch.Tensor:
    """Generator hinge loss: −D(fake), per sample -> (B,)."""
    return -_per_sample_mean(fake_logits)


def d_nonsaturating_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Goodfellow's discriminator loss on logits: softplus(−D(real)) + softplus(D(fake))."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def g_nonsaturating_per_sample(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss: softplus(−D(fake)) -> (B,)."""
    return _per_sample_mean(F.softplus(-fake_logits))


def d_least_squares_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """LSGAN (Mao et al. 2017) discriminator: (D(real) − 1)² + D(fake)², halved."""
    return 0.5 * ((real_logits - 1.0) ** 2).mean() + 0.5 * (fake_logits ** 2).mean()


def g_least_squares_per_sample(fake_logits: torch.Tensor) -> torch.Tensor:
    """LSGAN generator: (D(fake) − 1)², halved -> (B,)."""
    return 0.5 * _per_sample_mean((fake_logits - 1.0) ** 2)


ADVERSARIAL_LOSSES = {  # name -> (discriminator loss, generator per-sample loss)
    "hinge": (d_hinge_loss, g_hinge_per_sample),
    "nonsaturating": (d_nonsaturating_loss, g_nonsaturating_per_sample),
    "least_squares": (d_least_squares_loss, g_least_squares_per_sample),
}
