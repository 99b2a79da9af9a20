"""Every loss of the method, as pure functions of tensors (no modules, no state).

Shapes: images (B, 3, H, W); features (B, C, H, W); logits (B, 1, h, w) or any shape. Functions whose name ends in
`_per_sample` return (B,) so loss-conditional training can weight each sample by its own (α, β, λ); the others
return a scalar. Paper symbols: total = α·content + β·style + λ·adversarial (+ τ·total variation).
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F

from .errors import StyleTransferError
from .functional import adaptive_instance_normalization, calc_mean_std, gram_matrix, luminance

CONTENT_LAYER = "relu4_1"  # AdaIN's content loss: the output's relu4_1 against the AdaIN target
STRUCTURE_LAYERS = ("relu2_1", "relu3_1")  # instance-normalised: the photo's structure without its statistics


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
    # drawn where `generator` lives (a CPU generator on a CUDA run), then moved: the same directions on any device
    where = generator.device if generator is not None else output_feat.device
    directions = torch.randn(c, num_projections, device=where, generator=generator).to(output_feat.device)
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


def relative_per_sample(error_sq: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """‖A − B‖ / ‖B‖ from the per-sample mean squared error ‖A − B‖²/n and the target B -> (B,)."""
    ratio = error_sq / l2_per_sample(target, torch.zeros_like(target)).clamp_min(1e-24)
    return torch.where(ratio > 0, ratio.clamp_min(1e-16).sqrt(), torch.zeros_like(ratio))  # finite gradient at 0


def gram_relative_error(output_feat: torch.Tensor, style_gram: torch.Tensor) -> torch.Tensor:
    """‖G(o) − G_s‖_F / ‖G_s‖_F per sample (cst.eval's Gram metric is this, averaged over layers) -> (B,)."""
    return relative_per_sample(gram_per_sample(output_feat, style_gram), style_gram.expand(output_feat.shape[0], -1, -1))


def mean_std_relative_error(output_feat: torch.Tensor, style_mean: torch.Tensor, style_std: torch.Tensor) -> torch.Tensor:
    """‖(μ, σ)(o) − (μ_s, σ_s)‖ / ‖(μ_s, σ_s)‖ per sample (cst.eval's mean/std metric) -> (B,)."""
    mean, std = calc_mean_std(output_feat)
    target = torch.cat([style_mean, style_std], dim=1).flatten(1).expand(mean.shape[0], -1)
    return relative_per_sample(l2_per_sample(torch.cat([mean, std], dim=1).flatten(1), target.detach()), target)


def instance_norm(x: torch.Tensor) -> torch.Tensor:
    """Each channel to zero mean, unit std over space (structure without statistics)."""
    mean, std = calc_mean_std(x)
    return (x.float() - mean) / std


# -- the objective ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LossWeights:
    """Inner weights of the objective: they make each term O(1) at slider value 1. The sliders α, β, λ (sampled per
    sample in training) multiply whole families: total = α·content + β·style + λ·adversarial_scale·adv + τ·TV.
    Field names are the training script's flags (--style-gram-weight ...)."""

    style_gram_weight: float = 1.0
    style_gram_squared: bool = False  # False: relative Gram error per layer; True: its square (the classic MSE form)
    style_mean_std_weight: float = 1.0
    style_wasserstein_weight: float = 1.0
    # layers the style terms compare; relu5_1 carries large-scale texture and motifs a relu4_1-only loss leaves free
    style_loss_layers: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    wasserstein_projections: int = 32
    content_pixel_l1_weight: float = 1.0  # L1 on luminance vs the photo
    content_structure_weight: float = 1.0  # instance-normalised STRUCTURE_LAYERS vs the photo
    content_pixel_l2_weight: float = 0.0  # L2 on luminance vs the photo
    # scale the structure and luminance terms by min(1, α/β): they let go as the style slider outweighs the content
    content_structure_fade: bool = True
    adversarial_scale: float = 0.1
    total_variation_weight: float = 0.5

    @classmethod
    def from_dict(cls, data: dict) -> "LossWeights":
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise StyleTransferError(f"loss weights: unknown keys {unknown}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})

    def feature_layers(self, generator_layers: tuple[str, ...]) -> tuple[str, ...]:
        """Layers the objective reads: the generator's style layers plus the style-loss layers, in order."""
        return tuple(dict.fromkeys(tuple(generator_layers) + tuple(self.style_loss_layers)))


def content_terms(w: LossWeights, out_feats: dict, content: torch.Tensor, output: torch.Tensor, content_feats: dict,
                  style_stats: dict, weights: torch.Tensor, strength: float = 1.0) -> torch.Tensor:
    """Per-sample content loss: relu4_1 vs the AdaIN target (relative), plus instance-normalised structure and
    luminance vs the photo, faded by min(1, α/β) when `w.content_structure_fade` -> (B,)."""
    target = adaptive_instance_normalization(content_feats[CONTENT_LAYER], *style_stats[CONTENT_LAYER], strength)
    loss = l2_per_sample(out_feats[CONTENT_LAYER], target) / l2_per_sample(target, torch.zeros_like(target))
    structure = sum(l2_per_sample(instance_norm(out_feats[k]), instance_norm(content_feats[k])) for k in STRUCTURE_LAYERS)
    lum_out, lum_in = luminance(output), luminance(content)
    low_level = w.content_structure_weight * structure + w.content_pixel_l1_weight * l1_per_sample(lum_out, lum_in)
    if w.content_pixel_l2_weight:
        low_level = low_level + w.content_pixel_l2_weight * l2_per_sample(lum_out, lum_in)
    fade = (weights[:, 0] / weights[:, 1]).clamp(max=1.0) if w.content_structure_fade else 1.0
    return loss + fade * low_level


def style_terms(w: LossWeights, out_feats: dict, style_feats: dict, style_stats: dict,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Per-sample style loss over `w.style_loss_layers`: relative mean/std, relative Gram (or its square) and sliced
    Wasserstein, each divided by the target's energy so every layer counts about the same -> (B,)."""
    loss = 0.0
    for layer in w.style_loss_layers:
        mean, std = style_stats[layer] if layer in style_stats else calc_mean_std(style_feats[layer])
        energy = (mean.float() ** 2 + std.float() ** 2).flatten(1).mean(1)  # E[f²] per sample
        loss = loss + w.style_mean_std_weight * mean_std_per_sample(out_feats[layer], mean, std) / energy
        gram = gram_relative_error(out_feats[layer], gram_matrix(style_feats[layer]))
        loss = loss + w.style_gram_weight * (gram ** 2 if w.style_gram_squared else gram)
        if w.style_wasserstein_weight:
            loss = loss + w.style_wasserstein_weight * sliced_wasserstein_per_sample(
                out_feats[layer], style_feats[layer], w.wasserstein_projections, generator) / energy
    return loss


def generator_objective(w: LossWeights, loss_net, output: torch.Tensor, content: torch.Tensor, content_feats: dict,
                        style_feats: dict, style_stats: dict, weights: torch.Tensor,
                        generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """Every named per-sample term (B,) of one generator output, and their weighted sum `total` without the
    adversarial term (the caller adds λ·adversarial_scale·adv, which needs the discriminator).
    weights (B, 3) = (α, β, λ); style_feats holds every style-loss layer; style_stats (mean, std) per generator layer."""
    generator_layers = tuple(k for k in content_feats)
    out_feats = loss_net(output, w.feature_layers(generator_layers))
    terms = {"content": content_terms(w, out_feats, content, output, content_feats, style_stats, weights),
             "style": style_terms(w, out_feats, style_feats, style_stats, generator),
             "tv": total_variation_per_sample(output)}
    alpha, beta, _ = weights.unbind(1)
    terms["total"] = alpha * terms["content"] + beta * terms["style"] + w.total_variation_weight * terms["tv"]
    return terms


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
