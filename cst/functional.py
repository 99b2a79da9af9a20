"""Pure tensor functions shared by the model, the losses and the evaluation (no modules, no state)."""
from __future__ import annotations

import torch

# A style is described per VGG layer by the channel mean and std of its features: {layer: (mean, std)},
# each of shape (B, C, 1, 1). It is cheap to keep, to cache and to blend.
StyleStats = dict[str, tuple[torch.Tensor, torch.Tensor]]


def calc_mean_std(feat: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """Channel mean and std over space: (B, C, H, W) -> two (B, C, 1, 1). eps keeps std > 0 on flat regions."""
    assert feat.dim() == 4, f"expected (B, C, H, W), got {tuple(feat.shape)}"
    b, c = feat.shape[:2]
    var, mean = torch.var_mean(feat.reshape(b, c, -1).float(), dim=2, unbiased=False)  # one pass over the data
    return mean.view(b, c, 1, 1), (var + eps).sqrt().view(b, c, 1, 1)


class PooledMeanStd:
    """`calc_mean_std` of a feature map seen in pieces (tiles, strips): `add` each piece's (B, C, h, w) values, then
    `result()` gives what `calc_mean_std` gives for the whole, to rounding (sums in float64)."""

    def __init__(self):
        self.total = self.square = 0.0
        self.count = 0

    def add(self, piece: torch.Tensor) -> None:
        piece = piece.double()
        self.total = self.total + piece.sum((2, 3), keepdim=True)
        self.square = self.square + (piece ** 2).sum((2, 3), keepdim=True)
        self.count += piece.shape[2] * piece.shape[3]

    def result(self, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
        mean = self.total / self.count
        var = (self.square / self.count - mean ** 2).clamp_min(0.0) + eps  # biased variance + eps, as calc_mean_std
        return mean.float(), var.sqrt().float()


def adaptive_instance_normalization(content: torch.Tensor, style_mean: torch.Tensor, style_std: torch.Tensor,
                                    strength: torch.Tensor | float = 1.0,
                                    content_stats: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """AdaIN (Huang & Belongie 2017): t = σ_s (f_c − μ_c) / σ_c + μ_s, then t = s·t + (1 − s)·f_c.

    content: (B, C, H, W); style_mean/std: (B, C, 1, 1); strength: float or (B,) in [0, 1]; content_stats: (μ_c, σ_c)
    from outside (a thumbnail of the whole picture, for tiles) instead of the content's own.
    """
    assert style_mean.shape[:2] == content.shape[:2], f"style stats {tuple(style_mean.shape)} vs {tuple(content.shape)}"
    c_mean, c_std = content_stats if content_stats is not None else calc_mean_std(content)
    t = (content.float() - c_mean) / c_std * style_std + style_mean
    if not torch.is_tensor(strength):
        strength = torch.tensor(float(strength), device=content.device)
    s = strength.float().reshape(-1, 1, 1, 1)
    return (s * t + (1.0 - s) * content.float()).to(content.dtype)


def blend_style_stats(stats: list[StyleStats], weights: list[float]) -> StyleStats:
    """Weighted mean of several styles' (μ, σ) per layer; weights are normalised to sum to 1."""
    assert len(stats) == len(weights) and stats, "need one weight per style"
    total = float(sum(weights))
    out = {}
    for layer in stats[0]:
        mean = sum(w / total * s[layer][0] for s, w in zip(stats, weights))
        std = sum(w / total * s[layer][1] for s, w in zip(stats, weights))
        out[layer] = (mean, std)
    return out


def gram_matrix(feat: torch.Tensor) -> torch.Tensor:
    """Gram matrix normalised by the number of positions: (B, C, H, W) -> (B, C, C)."""
    b, c, h, w = feat.shape
    flat = feat.reshape(b, c, h * w).float()
    return flat @ flat.transpose(1, 2) / (h * w)


# ITU-R BT.601 luma / chroma (YIQ) used for colour preservation: keep the output's luminance, the photo's colour.
_RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])


def luminance(rgb: torch.Tensor) -> torch.Tensor:
    """BT.601 luma Y of (B, 3, H, W) RGB -> (B, 1, H, W)."""
    return torch.einsum("j,bjhw->bhw", _RGB_TO_YIQ[0].to(rgb), rgb).unsqueeze(1)


def preserve_color(stylized: torch.Tensor, content: torch.Tensor,
                   luma_stats: tuple[torch.Tensor, ...] | None = None) -> torch.Tensor:
    """Luminance-only transfer (Gatys et al. 2016, 'Preserving colour'): output's Y with the content's I and Q.

    The output's luminance is first matched to the content's mean/std so brightness stays close to the photo.
    stylized, content: (B, 3, H, W) RGB in [0, 1] of the same size. Returns RGB in [0, 1].
    luma_stats: (mean_s, std_s, mean_c, std_c) of the whole pictures' luminance, for tiles of a larger picture.
    """
    assert stylized.shape == content.shape, f"{tuple(stylized.shape)} vs {tuple(content.shape)}"
    m = _RGB_TO_YIQ.to(stylized)
    yiq_s = torch.einsum("ij,bjhw->bihw", m, stylized.float())
    yiq_c = torch.einsum("ij,bjhw->bihw", m, content.float())
    y_s, y_c = yiq_s[:, :1], yiq_c[:, :1]
    ms, ss, mc, sc = luma_stats if luma_stats is not None else (*calc_mean_std(y_s), *calc_mean_std(y_c))
    y = (y_s - ms) / ss * sc + mc
    yiq = torch.cat([y, yiq_c[:, 1:]], dim=1)
    return torch.einsum("ij,bjhw->bihw", torch.linalg.inv(m), yiq).clamp(0, 1).to(stylized.dtype)
