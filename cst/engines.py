"""Inference engines: ONNX export of a cst model, and the runtime `stylize` should use on a CPU.

`export_onnx(model, "model.onnx")` (also `python -m cst export-onnx MODEL -o model.onnx`) writes, atomically:

    model.onnx        the content path: inputs  content  (1, 3, H, W) float32 RGB in [0, 1], any H and W
                                                         (padded to the network's multiple inside, cropped back)
                                                style    (1, 1920) float32 = cst.light.style_vector(stats, STYLE_LAYERS)
                                                weights  (1, 3) float32 = the sliders (α, β, λ), > 0
                                                strength (1,) float32 in [0, 1]
                                        output  image    (1, 3, H, W) float32 RGB in [0, 1] (clamped)
    model.style.onnx  the style path: input style_image (1, 3, h, w) float32 RGB in [0, 1], resized beforehand so
                      that its long side is the model's style_size (metadata key `cst.style_size`);
                      output style (1, 1920).
                      Run it once per style and cache the vector: that is the whole point of the split.
    model.int8.onnx   (int8=True) the content path with int8 convolutions (onnxruntime static QDQ quantisation,
                      per-channel weights, activations calibrated on scikit-image's sample photos).

Both architectures export ("light" and "vgg"); the light one is the one meant for real time. The graphs come from
torch's TorchScript-based ONNX exporter (opset 17): it needs no extra package and exports in about a second.

`best_engine(model)` is what `StyleTransferModel.stylize` should call: onnxruntime (fp32) for a light model on the
CPU, measured 1.4-3x faster than eager torch on the photo and about 1.4x on the style there (benchmarks/speed.py;
int8 is no faster at 1024 px and drifts), else plain torch. Sessions are built once per model on first use (about
1 s for the content graph, 2 s for the style graph) and cached; they are rebuilt when the model's weights change (a
parameter's version counter moves). `CST_ENGINE=torch` opts out.

Large pictures of a light model, stylised in tiles that share one set of statistics (cst/tiling.py), run two more
graphs built in memory: the statistics graph (`StatisticsGraph`, `OnnxEngine.statistics`: every norm layer's own
statistics of a thumbnail of the whole picture) once per picture, then each tile through the content graph with those
statistics, the sliders and the strength folded into the conv weights, zero-padded (`FoldedTileGraph`,
`OnnxEngine.run(..., statistics=)`; exported once per picture, in a fraction of a second).

Video frames of a light model run another graph, built in memory on first use (`OnnxEngine.run_smoothed`, not
exported to a file): the content graph whose conditional norms take momentum·previous + (1 − momentum)·own
statistics, with `previous` (1, 2·ΣC) as an input and the statistics it used as a second output
(`SmoothedContentGraph`; cst/video.py's running statistics at onnxruntime's speed).
"""
from __future__ import annotations

import hashlib
import io
import os
import tempfile
import threading
import warnings
import weakref
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from torch import nn

from . import functional as F_
from .errors import StyleTransferError
from .light import VGG_CHANNELS, split_pairs, stats_from_vector, style_vector
from .model import STYLE_LAYERS, StyleTransferModel

ONNX_OPSET = 17
STYLE_DIM = 2 * sum(VGG_CHANNELS[layer] for layer in STYLE_LAYERS)  # 1920
CONTENT_INPUTS = ("content", "style", "weights", "strength")
FOLDED_KEPT = 2  # folded tile graphs an engine keeps (pictures tiled at the same time, as the app can)


class ContentGraph(nn.Module):
    """What model.onnx computes: `stylize`'s tensor part, (content, style vector, weights, strength) -> RGB in [0, 1].

    The model pads to its multiple without a branch (`pad_to_multiple`), so the traced graph holds for every H and W,
    not just the shape it was traced with."""

    def __init__(self, model: StyleTransferModel):
        super().__init__()
        self.model = model

    def forward(self, content: torch.Tensor, style: torch.Tensor, weights: torch.Tensor,
                strength: torch.Tensor) -> torch.Tensor:
        return self.model(content, stats_from_vector(style, STYLE_LAYERS), weights, strength).clamp(0.0, 1.0)


def statistics_vector(stats: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Light models: every norm layer's (mean, std) each (1, C, 1, 1), in order -> (1, 2·ΣC) = [mean_0, std_0,
    mean_1, std_1, ...]: the normalisation statistics as the graphs take and give them."""
    return torch.cat([torch.cat([mean.flatten(1), std.flatten(1)], dim=1) for mean, std in stats], dim=1)


statistics_list = split_pairs  # (vector, norm channels) -> [(mean, std), ...]: the inverse of `statistics_vector`


class FoldedTileGraph(nn.Module):
    """Light models only: a tile of a large picture, normalised with the whole picture's statistics (`StatisticsGraph`
    of a thumbnail; cst/tiling.py), for one style, sliders, strength and set of statistics - content -> image. The
    network is `LightTransformer.fold`'s copy: every norm and the in- and output maps folded into the convs, which
    are zero-padded, so the caller gives the tile a margin on every side (tiling mirrors the picture at its borders)
    and keeps the result's core. Exported once per picture for onnxruntime (a fraction of a second); TorchEngine
    runs it eagerly."""

    def __init__(self, model: StyleTransferModel, style: torch.Tensor, weights: torch.Tensor, statistics: torch.Tensor,
                 strength: float = 1.0):
        super().__init__()
        assert model.is_light, "the folded tile graph is for light models"
        self.pad_to_multiple, self.strength = model.pad_to_multiple, float(strength)
        with torch.no_grad():
            params = model.condition(stats_from_vector(style.to(model.device), STYLE_LAYERS), weights.to(model.device))
        norm_stats = statistics_list(statistics.to(model.device), model.transformer.norm_channels)
        self.transformer = model.transformer.fold(params, norm_stats)

    def forward(self, content: torch.Tensor) -> torch.Tensor:
        h, w = content.shape[2:]
        x = self.pad_to_multiple(content)
        out = StyleTransferModel.mix_strength(self.transformer(x, None), x, self.strength)  # at 1: the network's
        return out[:, :, :h, :w].clamp(0.0, 1.0)


class StatisticsGraph(nn.Module):
    """Light models only: (content, style, weights) -> statistics (1, 2·ΣC), every norm layer's own (mean, std) on
    that picture (a thumbnail of a large one). It stops at the last norm layer's statistics: nothing at H/2 or H
    is kept."""

    def __init__(self, model: StyleTransferModel):
        super().__init__()
        assert model.is_light, "the statistics graph is for light models"
        self.model = model

    def forward(self, content: torch.Tensor, style: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        record: list = []
        params = self.model.condition(stats_from_vector(style, STYLE_LAYERS), weights)
        self.model.transformer(self.model.pad_to_multiple(content), params, record=record, statistics_only=True)
        return statistics_vector(record)


class SmoothedContentGraph(nn.Module):
    """Light models only: the content graph for video frames, whose conditional norms use a running average of the
    statistics (cst/video.py) - (content, style, weights, strength, previous, momentum) -> (image, statistics).

    `previous` (1, 2·ΣC) holds every norm layer's (mean, std) in order, as `statistics` returns them; each layer
    normalises with momentum·previous + (1 − momentum)·its own input's statistics and returns what it used, so the
    next frame passes `statistics` back as `previous` (momentum 0: each frame's own, the plain content graph)."""

    def __init__(self, model: StyleTransferModel):
        super().__init__()
        assert model.is_light, "the smoothed content graph is for light models"
        self.model = model

    def forward(self, content: torch.Tensor, style: torch.Tensor, weights: torch.Tensor, strength: torch.Tensor,
                previous: torch.Tensor, momentum: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = momentum.reshape(1, 1, 1, 1)
        before, used = statistics_list(previous, self.model.transformer.norm_channels), []

        def blend(i: int, own: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
            used.append((m * before[i][0] + (1.0 - m) * own[0], m * before[i][1] + (1.0 - m) * own[1]))
            return used[-1]

        out = self.model(content, stats_from_vector(style, STYLE_LAYERS), weights, strength, norm_stats=blend)
        return out.clamp(0.0, 1.0), statistics_vector(used)


def statistics_dim(model: StyleTransferModel) -> int:
    """Length of the statistics vector: 2·(channels of every conditional norm)."""
    return 2 * sum(model.transformer.norm_channels)


def smoothed_content_onnx(model: StyleTransferModel) -> bytes:
    """The smoothed content graph (light models; see `SmoothedContentGraph`) as ONNX bytes."""
    spatial = {2: "height", 3: "width"}
    example = (*_content_example(model), torch.zeros(1, statistics_dim(model), device=model.device),
               torch.zeros(1, device=model.device))
    return _trace_to_onnx(SmoothedContentGraph(model), example, (*CONTENT_INPUTS, "previous", "momentum"),
                          ("image", "statistics"), {"content": spatial, "image": spatial},
                          _metadata(model, "smoothed-content"))


def folded_tile_onnx(model: StyleTransferModel, style: torch.Tensor, weights: torch.Tensor,
                     statistics: torch.Tensor, strength: float = 1.0) -> bytes:
    """The folded tile graph (light models; see `FoldedTileGraph`) for this style vector, sliders, statistics and
    strength as ONNX bytes."""
    spatial = {2: "height", 3: "width"}
    graph = FoldedTileGraph(model, style, weights, statistics, strength)
    return _trace_to_onnx(graph, _content_example(model)[:1], ("content",), "image",
                          {"content": spatial, "image": spatial}, _metadata(model, "folded-tile"))


def statistics_onnx(model: StyleTransferModel) -> bytes:
    """The statistics graph (light models; see `StatisticsGraph`) as ONNX bytes."""
    return _trace_to_onnx(StatisticsGraph(model), _content_example(model)[:3], CONTENT_INPUTS[:3], "statistics",
                          {"content": {2: "height", 3: "width"}}, _metadata(model, "statistics"))


class StyleGraph(nn.Module):
    """What model.style.onnx computes: style image (1, 3, h, w) in [0, 1] -> style vector (1, 1920)."""

    def __init__(self, model: StyleTransferModel):
        super().__init__()
        self.model = model

    def forward(self, style_image: torch.Tensor) -> torch.Tensor:
        return style_vector(self.model.encode_style(style_image), STYLE_LAYERS)


def _content_example(model: StyleTransferModel, size: int = 64) -> tuple[torch.Tensor, ...]:
    device = model.device
    return (torch.rand(1, 3, size, size, device=device), torch.rand(1, STYLE_DIM, device=device),
            torch.ones(1, 3, device=device), torch.ones(1, device=device))


def _trace_to_onnx(module: nn.Module, example: tuple, input_names: Sequence[str], output_name: str | Sequence[str],
                   dynamic: dict, metadata: dict[str, str]) -> bytes:
    """One graph as ONNX bytes (TorchScript exporter; its deprecation and constant-folding notes are silenced)."""
    output_names = [output_name] if isinstance(output_name, str) else list(output_name)
    buffer = io.BytesIO()
    modes = {m: m.training for m in module.modules()}  # each submodule's own: the wrapper's is not the model's
    module.eval()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, example, buffer, dynamo=False, opset_version=ONNX_OPSET,
                              input_names=list(input_names), output_names=output_names, dynamic_axes=dynamic,
                              do_constant_folding=True)
    finally:
        for m, mode in modes.items():
            m.training = mode
    import onnx

    proto = onnx.load_from_string(buffer.getvalue())
    for key, value in metadata.items():
        proto.metadata_props.add(key=key, value=value)
    return proto.SerializeToString()


def _metadata(model: StyleTransferModel, graph: str) -> dict[str, str]:
    from . import __version__

    return {"cst.graph": graph, "cst.architecture": model.config.architecture,
            "cst.style_size": str(model.config.style_size), "cst.version": __version__,
            "cst.style_layers": ",".join(STYLE_LAYERS)}


def content_onnx(model: StyleTransferModel) -> bytes:
    """The content graph (see the module docstring) as ONNX bytes."""
    spatial = {2: "height", 3: "width"}
    return _trace_to_onnx(ContentGraph(model), _content_example(model), CONTENT_INPUTS, "image",
                          {"content": spatial, "image": spatial}, _metadata(model, "content"))


def style_onnx(model: StyleTransferModel) -> bytes:
    """The style graph (VGG19 to relu4_1 + per-layer mean/std) as ONNX bytes."""
    size = model.config.style_size
    example = (torch.rand(1, 3, size, size, device=model.device),)
    spatial = {2: "height", 3: "width"}
    return _trace_to_onnx(StyleGraph(model), example, ["style_image"], "style", {"style_image": spatial},
                          _metadata(model, "style"))


# -- int8 ------------------------------------------------------------------------------------------------------------
def calibration_feeds(model: StyleTransferModel, size: int = 256) -> list[dict[str, np.ndarray]]:
    """Inputs that calibrate the int8 activations: 3 of scikit-image's sample photos x 3 styles, at long side `size`."""
    from PIL import Image
    from skimage import data

    from .imageio import fit_within, pil_to_tensor

    def tensor(array: np.ndarray, long_side: int) -> torch.Tensor:
        return pil_to_tensor(fit_within(Image.fromarray(array), long_side)).to(model.device)

    styles = [style_vector(model.encode_style(tensor(a, model.config.style_size)), STYLE_LAYERS).cpu().numpy()
              for a in (data.coffee(), data.chelsea(), data.immunohistochemistry())]
    photos = [tensor(a, size).cpu().numpy() for a in (data.rocket(), data.hubble_deep_field(), data.colorwheel())]
    ones = np.ones((1, 3), np.float32), np.ones(1, np.float32)
    return [dict(zip(CONTENT_INPUTS, (photo, style, *ones))) for photo in photos for style in styles]


def quantize_int8(fp32_onnx: bytes, feeds: Iterable[dict[str, np.ndarray]]) -> bytes:
    """Static int8 quantisation of the convolutions (QDQ, per-channel int8 weights, uint8 activations calibrated
    by min/max on `feeds`); norms, pads and the style MLP stay fp32."""
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType, quant_pre_process,
                                          quantize_static)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.feeds = iter(feeds)

        def get_next(self):
            return next(self.feeds, None)

    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        src, pre, dst = (Path(tmp) / name for name in ("fp32.onnx", "pre.onnx", "int8.onnx"))
        src.write_bytes(fp32_onnx)
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)  # ORT's recommended clean-up before it
        quantize_static(str(pre), str(dst), Reader(), quant_format=QuantFormat.QDQ, op_types_to_quantize=["Conv"],
                        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        return dst.read_bytes()


# -- files -----------------------------------------------------------------------------------------------------------
def onnx_paths(output: str | os.PathLike) -> dict[str, Path]:
    """model.onnx -> {"content": model.onnx, "style": model.style.onnx, "int8": model.int8.onnx}."""
    output = Path(output)
    stem = output.name[:-len(".onnx")] if output.name.endswith(".onnx") else output.name
    return {"content": output, "style": output.with_name(f"{stem}.style.onnx"),
            "int8": output.with_name(f"{stem}.int8.onnx")}


def _write_all_atomic(files: dict[Path, bytes]) -> None:
    """Every payload to a temporary file beside its target first, then the renames: a failure while writing leaves
    neither a partial file nor a temporary one."""
    staged = []
    try:
        for path, payload in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
            staged.append((tmp, path))
            tmp.write_bytes(payload)
        for tmp, path in staged:
            os.replace(tmp, path)
    finally:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)


def export_onnx(model: StyleTransferModel, output: str | os.PathLike, *, style: bool = True,
                int8: bool = False) -> list[Path]:
    """Write the content graph to `output` (+ the style graph, + the int8 content graph): see the module docstring.
    Every graph is built in memory first, so a failure writes nothing. Returns the paths written."""
    paths = onnx_paths(output)
    if paths["content"].suffix != ".onnx":
        raise StyleTransferError(f"the output must be a .onnx file, got {paths['content'].name}")
    graphs = {paths["content"]: content_onnx(model)}
    if style:
        graphs[paths["style"]] = style_onnx(model)
    if int8:
        graphs[paths["int8"]] = quantize_int8(graphs[paths["content"]], calibration_feeds(model))
    _write_all_atomic(graphs)
    return list(graphs)


# -- engines ---------------------------------------------------------------------------------------------------------
def default_threads() -> int:
    """Intra-op threads for onnxruntime: torch's (its default is the CPU's physical cores; it honours
    OMP_NUM_THREADS and torch.set_num_threads), so one setting governs both runtimes."""
    return max(1, torch.get_num_threads())


class TorchEngine:
    """The model's own forward pass (eager torch), optionally under bf16 autocast or in channels-last layout
    (channels_last=True converts the model's weights in place)."""

    def __init__(self, model: StyleTransferModel, *, bf16: bool = False, channels_last: bool = False):
        self.model, self.bf16, self.channels_last = model, bf16, channels_last
        self.graph = ContentGraph(model)
        self.name = "torch" + "-bf16" * bf16 + "-channels-last" * channels_last
        if channels_last:
            model.to(memory_format=torch.channels_last)

    @torch.no_grad()
    def run(self, content: torch.Tensor, style: torch.Tensor, weights: torch.Tensor,
            strength: float | torch.Tensor = 1.0, statistics: torch.Tensor | None = None) -> torch.Tensor:
        """content (1, 3, H, W) in [0, 1], style vector (1, 1920), weights (1, 3) -> (1, 3, H, W) in [0, 1].
        statistics (light models): the content is a tile, normalised with these statistics (1, 2·ΣC) instead of its
        own (`statistics` of a thumbnail of the whole picture) by the folded tile graph (`FoldedTileGraph`: zero
        padding at the tile's borders, which the caller keeps in its margins)."""
        if self.channels_last:
            content = content.contiguous(memory_format=torch.channels_last)
        strength = torch.as_tensor(strength, dtype=torch.float32, device=content.device).reshape(1)
        with torch.autocast(content.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            if statistics is None:
                return self.graph(content, style, weights, strength).float()
            return FoldedTileGraph(self.model, style, weights, statistics, float(strength))(content).float()

    @torch.no_grad()
    def statistics(self, content: torch.Tensor, style: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Light models: the normalisation statistics (1, 2·ΣC) of content (1, 3, H, W) (`StatisticsGraph`)."""
        return StatisticsGraph(self.model)(content, style, weights)

    @torch.no_grad()
    def encode_style(self, style_image: torch.Tensor) -> F_.StyleStats:
        """(1, 3, h, w) in [0, 1], already at the model's style_size -> StyleStats (fp32)."""
        with torch.autocast(style_image.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            stats = self.model.encode_style(style_image)
        return {layer: (mean.float(), std.float()) for layer, (mean, std) in stats.items()}


class OnnxEngine:
    """The content graph in onnxruntime on the CPU. Build it with `onnx_engine(model)`, which caches it."""

    def __init__(self, model: StyleTransferModel, *, int8: bool = False, threads: int | None = None):
        import onnxruntime as ort

        payload = content_onnx(model)
        if int8:
            payload = quantize_int8(payload, calibration_feeds(model))
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or default_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: no notes on stderr
        self.name = "onnxruntime-int8" if int8 else "onnxruntime"
        self.threads = options.intra_op_num_threads
        self._model, self._options, self._sessions = weakref.ref(model), options, {}
        self.session = self._new_session(payload)
        self._folded: dict[str, "ort.InferenceSession"] = {}  # folded tile graphs by (style, sliders, statistics)
        self._lock = threading.Lock()

    def _new_session(self, payload: bytes) -> "ort.InferenceSession":
        import onnxruntime as ort

        return ort.InferenceSession(payload, self._options, providers=["CPUExecutionProvider"])

    def _session(self, build) -> "ort.InferenceSession":
        """The session of the graph that `build(model)` exports (its ONNX bytes), built on first use and kept."""
        if build not in self._sessions:
            self._sessions[build] = self._new_session(build(self._model()))
        return self._sessions[build]

    def run(self, content: torch.Tensor, style: torch.Tensor, weights: torch.Tensor,
            strength: float | torch.Tensor = 1.0, statistics: torch.Tensor | None = None) -> torch.Tensor:
        """Same contract as `TorchEngine.run`; tensors come back on the CPU. With statistics, the folded tile graph
        for this style, sliders, strength and statistics (`FoldedTileGraph`: built on the first tile of a picture, a
        fraction of a second, and kept for the next; the last FOLDED_KEPT are kept)."""
        if statistics is None:
            feeds = dict(zip(CONTENT_INPUTS, (_array(content), _array(style), _array(weights), _array(strength, (1,)))))
            return torch.from_numpy(self.session.run(None, feeds)[0])
        key = hashlib.sha1(b"".join(_array(t).tobytes() for t in (style, weights, strength, statistics))).hexdigest()
        with self._lock:
            session = self._folded.pop(key, None)
            if session is None:
                session = self._new_session(folded_tile_onnx(self._model(), torch.as_tensor(style),
                                                             torch.as_tensor(weights), torch.as_tensor(statistics),
                                                             float(strength)))
            self._folded[key] = session  # the most recent last
            while len(self._folded) > FOLDED_KEPT:
                self._folded.pop(next(iter(self._folded)))
        return torch.from_numpy(session.run(None, {"content": _array(content)})[0])

    def forget_pictures(self) -> None:
        """Drop the folded tile graphs kept for recent pictures (a benchmark that stylises one picture again times
        what a new picture costs)."""
        with self._lock:
            self._folded.clear()

    def statistics(self, content: torch.Tensor, style: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Same contract as `TorchEngine.statistics`; its session is built on the first call. It runs once per
        picture, on a thumbnail that can be the largest input of all (up to 2048 px), so its memory arena is shrunk
        back after each run: the tiles that follow do not stack their own arena on top of it (peak RSS)."""
        import onnxruntime as ort

        feeds = dict(zip(CONTENT_INPUTS, (_array(content), _array(style), _array(weights))))
        shrink = ort.RunOptions()
        shrink.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
        return torch.from_numpy(self._session(statistics_onnx).run(None, feeds, shrink)[0])

    def run_smoothed(self, content: torch.Tensor, style: torch.Tensor, weights: torch.Tensor,
                     strength: float | torch.Tensor, previous: torch.Tensor | None,
                     momentum: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Light models: a video frame through the smoothed content graph (`SmoothedContentGraph`; its session is
        built on the first call, about a second) -> (image, statistics to pass as `previous` next time).
        previous None: the first frame (its own statistics)."""
        if previous is None:
            previous, momentum = torch.zeros(1, statistics_dim(self._model())), 0.0
        feeds = dict(zip((*CONTENT_INPUTS, "previous", "momentum"),
                         (_array(content), _array(style), _array(weights), _array(strength, (1,)), _array(previous),
                          _array(momentum, (1,)))))
        image, stats = self._session(smoothed_content_onnx).run(None, feeds)
        return torch.from_numpy(image), torch.from_numpy(stats)

    def encode_style(self, style_image: torch.Tensor) -> F_.StyleStats:
        """The style path (VGG19 to relu4_1, fp32) in onnxruntime; its session is built on the first call (about
        2 s). (1, 3, h, w) in [0, 1], already at the model's style_size -> StyleStats on the CPU."""
        vector = self._session(style_onnx).run(None, {"style_image": _array(style_image)})[0]
        return stats_from_vector(torch.from_numpy(vector), STYLE_LAYERS)


def _array(t, shape: tuple | None = None) -> np.ndarray:
    """A tensor or number as a contiguous float32 numpy array on the CPU (an onnxruntime feed)."""
    a = torch.as_tensor(t, dtype=torch.float32).detach().cpu().contiguous().numpy()
    return a.reshape(shape) if shape else a


_ENGINES: "weakref.WeakKeyDictionary[StyleTransferModel, dict]" = weakref.WeakKeyDictionary()
_ENGINES_LOCK = threading.Lock()  # the app serves requests from several threads: build each engine once


def _fingerprint(model: StyleTransferModel) -> tuple:
    """Changes whenever the trained weights or buffers do: in-place updates bump a tensor's version, reassignment
    its id."""
    return tuple((id(t), t._version) for t in model.trainable_modules().state_dict(keep_vars=True).values())


def onnx_engine(model: StyleTransferModel, *, int8: bool = False, threads: int | None = None) -> OnnxEngine:
    """An `OnnxEngine` for `model`, built on first use (about a second; int8 a few) and cached with the model."""
    threads = threads or default_threads()
    key, fingerprint = (int8, threads), _fingerprint(model)
    with _ENGINES_LOCK:
        cache = _ENGINES.setdefault(model, {})
        if key not in cache or cache[key][0] != fingerprint:
            cache[key] = (fingerprint, OnnxEngine(model, int8=int8, threads=threads))
        return cache[key][1]


def best_engine(model: StyleTransferModel) -> TorchEngine | OnnxEngine:
    """The fastest engine that keeps quality: onnxruntime fp32 for a light model on the CPU (int8 is not faster
    there and drifts), else eager torch. CST_ENGINE=torch forces torch."""
    if model.is_light and model.device.type == "cpu" and os.environ.get("CST_ENGINE", "").lower() != "torch":
        try:
            return onnx_engine(model)
        except ImportError:  # onnxruntime not installed: torch still works
            pass
    return TorchEngine(model)
