"""Video: stylise frame streams and video files, with one style encoding and temporal consistency built in.

    stylizer = model.prepare("starry-night", style_weight=2.0)     # the style, encoded once per clip
    for out in stylize_frames(stylizer, frames):                  # frames: H x W x 3 uint8 arrays or PIL images
        ...                                                       # out: H x W x 3 uint8, the same size
    stylize_video(model, "in.mp4", "out.mp4", "starry-night")      # a file: same frame rate and count, sound kept

Temporal consistency, without training (`VideoStylizer`; `python -m cst.eval --video` measures each lever):
1. Running statistics. Both generators normalise the photo (the VGG generator's AdaIN, the light generator's
   conditional instance norms). A frame normalised by its own statistics gets its own affine map, so the picture's
   colours jump whenever the content changes a little. Every layer gets an exponential moving average of the
   statistics of the frames so far instead, measured in the same forward pass (`smoothing` 0.9 averages over about
   ten frames; 0 is each frame on its own, 1 keeps the first frame's).
2. Phase alignment. The generators downsample by 4 (light) or 8 (VGG), so they are shift-equivariant only for
   shifts that are multiples of that stride: a camera pan by 3 px a frame meets a different pixel grid in each frame
   and its brush strokes shimmer. Each frame is padded by 0 to stride − 1 px so that the scene's accumulated global
   shift (phase correlation with the previous frame, followed only when its peak is clear) stays on one grid phase.
3. Motion-compensated blending. The previous output, warped along the optical flow of the input frames (OpenCV's
   DIS), is mixed in with weight `blend` where the warped previous input matches the current one (so occlusions and
   new content are not smeared): it removes the shimmer that neither lever above reaches (zooms, moving objects).
A scene cut (the frame's 16x16 thumbnail differs from the previous one's by more than `cut_threshold` on average)
starts afresh, so a new shot inherits nothing from the old one.

Files (PyAV, which ships FFmpeg): frames are decoded, stylised and encoded one at a time (never the whole clip in
memory), each keeping its timestamp, so the frame rate, a variable frame rate and the frame count are the source's;
the first audio track is copied packet by packet (not re-encoded); a rotation in the source's display matrix is
applied to the pixels (the output is upright and carries none); frames are scaled so the long side is at most
`max_size` (with a notice) and both sides are even (H.264 in yuv420p); the output is H.264 (crf 18) in .mp4, .mov,
.m4v or .mkv, written to a temporary file beside the target and renamed at the end, so a failure leaves nothing.
Bad input (not a video, a picture, an audio-only file, no frames, a stream that breaks off or is corrupt half-way)
is a one-line `StyleTransferError`, and nothing is written.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterable, Iterator, Union

import numpy as np
import torch
from PIL import Image

from .errors import StyleTransferError
from .frontend import check_max_size, check_number
from .imageio import MIN_SIDE, check_size
from .stylizer import Stylizer

Frame = Union[np.ndarray, Image.Image]

DEFAULT_SMOOTHING = 0.9  # weight of the running average against each new frame's own statistics
DEFAULT_BLEND = 0.5  # weight of the motion-compensated previous output
BLEND_TOLERANCE = 0.06  # input mismatch (0-1) after warping at which the blend's weight has fallen to 1/e
FLOW_PRESET = 0  # cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST (1 FAST, 2 MEDIUM)
ALIGN_SIZE = 256  # long side (px) of the copies the global shift is measured on
ALIGN_RESPONSE = 0.4  # alignment follows the phase correlation's peak when it is at least this high (a pan: ~0.9)
CUT_THRESHOLD = 0.2  # mean |difference| (0-1) of consecutive frames' 16x16 thumbnails that starts afresh
DEFAULT_MAX_SIZE = 512  # long side (px) frames are stylised at unless asked otherwise
VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".mkv")  # what `stylize_video` writes (H.264)
CRF = 18  # x264 quality: visually lossless for stylised frames; the encoder is a few % of the time per frame
PRESET = "veryfast"
SHORTFALL_S = 0.5  # a video stream that ends this much (or three frames) before its declared duration is truncated


# -- temporal consistency -------------------------------------------------------------------------------------------
class TemporalStatistics:
    """The `norm_stats` of a frame stream: a callable (layer, own (mean, std)) -> (mean, std) that returns an
    exponential moving average of the statistics of the frames so far: smoothing·average + (1 − smoothing)·own."""

    def __init__(self, smoothing: float = DEFAULT_SMOOTHING):
        self.smoothing = check_number(smoothing, "smoothing", low=0.0, high=1.0)
        self.state: dict = {}

    def reset(self) -> None:
        self.state.clear()

    def __call__(self, key, own: tuple) -> tuple:
        prev = self.state.get(key)
        if prev is None or any(p.shape != o.shape for p, o in zip(prev, own)):  # first frame, or a new size
            blended = tuple(own)
        else:
            m = self.smoothing
            blended = tuple(m * p + (1.0 - m) * o for p, o in zip(prev, own))
        self.state[key] = blended
        return blended


def _cv2():
    try:
        import cv2
    except ImportError:
        raise StyleTransferError("video needs OpenCV: pip install opencv-python-headless") from None
    return cv2


class VideoStylizer:
    """Stylises the frames of one stream in order, keeping what consecutive frames share (see the module docstring):
    call it on each frame (H x W x 3 uint8 array or PIL image) to get the stylised frame (H x W x 3 uint8).

    smoothing: weight of the running average of the normalisation statistics (0 = each frame's own).
    align: shift each frame by 0 to `stylizer.model.downsampling` − 1 px so that the scene's global motion (phase
        correlation) is a whole number of the network's strides: a pan then meets the same pixel grid in every frame.
    blend: weight of the previous output, warped along the optical flow of the input frames (OpenCV DIS), where the
        warped previous input matches the current one (0 = no blending).
    cut_threshold: a frame whose 16x16 thumbnail differs from the previous one's by more than this (mean |Δ|, 0-1)
        starts afresh (scene cut): statistics, alignment and blending forget the earlier frames.
    """

    def __init__(self, stylizer: Stylizer, *, smoothing: float = DEFAULT_SMOOTHING, align: bool = True,
                 blend: float = DEFAULT_BLEND, cut_threshold: float | None = CUT_THRESHOLD):
        self.stylizer = stylizer
        self.statistics = TemporalStatistics(smoothing)
        self.align = bool(align)
        self.blend = check_number(blend, "blend", low=0.0, high=0.95)
        self.cut_threshold = None if cut_threshold is None else check_number(cut_threshold, "cut_threshold", low=0.0)
        self.cv2 = _cv2() if self.align or self.blend else None
        self.frames = 0
        self.cuts = 0  # scene cuts seen after the first frame
        self._engine = None  # the smoothed ONNX engine (light models), False when there is none; on first use
        self.reset()

    def reset(self) -> None:
        """Forget the earlier frames (the next one is stylised as a first frame)."""
        self.statistics.reset()
        self._thumb = self._size = self._grey = self._small = self._out = None
        self._dis = self._window = None
        self._motion = np.zeros(2)  # the scene's accumulated global shift (px), and the offset aligned to it
        self._offset = np.zeros(2, dtype=int)

    def _is_cut(self, thumb: torch.Tensor, size: tuple) -> bool:
        if self._thumb is None:
            return False
        if size != self._size:
            return True  # a new frame size: nothing carries over
        return self.cut_threshold is not None and float((thumb - self._thumb).abs().mean()) > self.cut_threshold

    def _flow(self, grey: np.ndarray) -> np.ndarray:
        """Backward optical flow (this frame -> the previous one): for each pixel, where it was (DIS)."""
        cv2 = self.cv2
        if self._dis is None:
            self._dis = cv2.DISOpticalFlow_create(FLOW_PRESET)
        return self._dis.calc(grey.astype(np.uint8), self._grey.astype(np.uint8), None)

    def _pad(self, grey: np.ndarray) -> tuple[int, int]:
        """(left, top) padding that puts the scene on the same grid phase as in the earlier frames. The scene's
        global shift is the peak of the phase correlation with the previous frame, followed only when the peak is
        clear (a pan; not a zoom, nor an object moving over a still background)."""
        cv2 = self.cv2
        scale = min(1.0, ALIGN_SIZE / max(grey.shape))  # the correlation on a small copy: fast, and precise enough
        small = grey if scale == 1.0 else cv2.resize(grey, (round(grey.shape[1] * scale), round(grey.shape[0] * scale)),
                                                     interpolation=cv2.INTER_AREA)
        if self._small is not None:
            if self._window is None:
                self._window = cv2.createHanningWindow(small.shape[::-1], cv2.CV_32F)
            # copies: OpenCV 5's phaseCorrelate multiplies its inputs by the window in place
            (dx, dy), response = cv2.phaseCorrelate(self._small.copy(), small.copy(), self._window)
            if response >= ALIGN_RESPONSE:
                # the windowed estimate is biased towards 0 by ~2 %, which adds up over a pan: shift the previous
                # frame by it and measure the small remainder (unbiased near 0)
                moved = cv2.warpAffine(self._small, np.float32([[1, 0, dx], [0, 1, dy]]), small.shape[::-1],
                                       flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                (ex, ey), _ = cv2.phaseCorrelate(moved, small.copy(), self._window)
                self._motion += ((dx + ex) / scale, (dy + ey) / scale)
                moved = np.abs(self._motion - self._offset) > 0.75  # hysteresis: no flipping around x.5
                self._offset[moved] = np.round(self._motion[moved]).astype(int)
        self._small = small
        k = self.stylizer.model.downsampling
        return int(-self._offset[0]) % k, int(-self._offset[1]) % k

    def _blend(self, grey: np.ndarray, flow: np.ndarray, out: np.ndarray) -> np.ndarray:
        """The previous output warped along `flow`, mixed in where the warped previous input matches this one."""
        cv2 = self.cv2
        h, w = grey.shape
        map_x = flow[..., 0] + np.arange(w, dtype=np.float32)[None, :]
        map_y = flow[..., 1] + np.arange(h, dtype=np.float32)[:, None]
        seen = cv2.remap(self._grey, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        error = cv2.GaussianBlur(np.abs(grey - seen) / 255.0, (5, 5), 0)
        inside = (map_x >= 0) & (map_x <= w - 1) & (map_y >= 0) & (map_y <= h - 1)
        weight = (self.blend * np.exp(-(error / BLEND_TOLERANCE) ** 2) * inside)[..., None]
        # bicubic: each frame resamples the running output once more, and bilinear would soften its strokes (measured:
        # a third less of the blend's Gram error cost for the same warping error)
        previous = cv2.remap(self._out, map_x, map_y, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
        return weight * previous + (1.0 - weight) * out

    def _network(self, x: torch.Tensor) -> torch.Tensor:
        """The stylizer on x (1, 3, H, W), normalised with the running statistics: light models on the CPU run the
        smoothed ONNX graph (cst/engines.py), else the model in torch with `TemporalStatistics` as its norm_stats."""
        stylizer, statistics = self.stylizer, self.statistics
        if statistics.smoothing == 0.0:
            return stylizer(x)  # each frame's own statistics: the image path exactly (and its fastest engine)
        if self._engine is None:
            self._engine = False
            if stylizer.model.is_light:
                from .engines import OnnxEngine, best_engine

                engine = best_engine(stylizer.model)
                if isinstance(engine, OnnxEngine):
                    self._engine = engine
        if self._engine:
            out, used = self._engine.run_smoothed(x, stylizer.vector, stylizer.weights, stylizer.strength,
                                                  statistics.state.get("vector"), statistics.smoothing)
            statistics.state["vector"] = used
            return out
        return stylizer(x, norm_stats=statistics)

    @torch.no_grad()
    def __call__(self, frame: Frame) -> np.ndarray:
        stylizer = self.stylizer
        arr = frame_array(frame)
        x = torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0).float().div_(255.0)  # (1, 3, H, W) in [0, 1]
        thumb, size = torch.nn.functional.adaptive_avg_pool2d(x, (16, 16)), tuple(x.shape[2:])
        if self._is_cut(thumb, size):
            self.cuts += 1
            self.reset()
        self._thumb, self._size = thumb, size
        grey = None
        if self.align or self.blend:
            grey = self.cv2.cvtColor(arr, self.cv2.COLOR_RGB2GRAY).astype(np.float32)
        h, w = size
        if self.align:  # the same padded size whatever the shift: engines keep their plans for one input shape
            left, top = self._pad(grey)
            k = stylizer.model.downsampling
            full_w, full_h = -(-(w + k - 1) // k) * k, -(-(h + k - 1) // k) * k  # room for any shift, aligned
            x_in = torch.nn.functional.pad(x, (left, full_w - w - left, top, full_h - h - top), mode="replicate")
        else:
            left = top = 0
            x_in = x
        out = self._network(x_in)[:, :, top:top + h, left:left + w]
        if stylizer.preserve_color:
            luma = self.statistics("luminance", stylizer.luminance_stats(out, x))
            out = stylizer.colour(out, x, luma)
        result = out[0].clamp(0, 1).mul(255.0).permute(1, 2, 0).cpu().numpy()
        if self.blend and self._out is not None:
            result = self._blend(grey, self._flow(grey), result)
        self._grey, self._out, self.frames = grey, result, self.frames + 1
        return np.clip(result + 0.5, 0, 255).astype(np.uint8)


def frame_array(frame: Frame) -> np.ndarray:
    """An H x W x 3 uint8 array (or a PIL image) -> the H x W x 3 uint8 array, C-contiguous and writable (a view such
    as rot90's, or a read-only buffer, is copied); anything else is a one-line StyleTransferError."""
    arr = np.asarray(frame.convert("RGB")) if isinstance(frame, Image.Image) else np.asarray(frame)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise StyleTransferError(f"a frame must be an H x W x 3 uint8 array or a PIL image, got "
                                 f"{arr.dtype} {arr.shape}")
    check_size(arr.shape[1], arr.shape[0], "a frame")
    if not (arr.flags.writeable and arr.flags.c_contiguous):
        arr = np.array(arr, order="C")  # order="K" would keep a rot90 view's transposed layout
    return arr


def stylize_frames(stylizer: Stylizer, frames: Iterable[Frame], *, smoothing: float = DEFAULT_SMOOTHING,
                   align: bool = True, blend: float = DEFAULT_BLEND,
                   cut_threshold: float | None = CUT_THRESHOLD) -> Iterator[np.ndarray]:
    """Stylise a stream of frames lazily, one in, one out: H x W x 3 uint8 arrays (or PIL images) -> H x W x 3
    uint8 arrays. `stylizer` (from `model.prepare`) holds the style, encoded once; the temporal settings are
    `VideoStylizer`'s (smoothing=0, align=False, blend=0: each frame exactly as a picture)."""
    video = VideoStylizer(stylizer, smoothing=smoothing, align=align, blend=blend, cut_threshold=cut_threshold)
    for frame in frames:
        yield video(frame)


# -- files ----------------------------------------------------------------------------------------------------------
@dataclass
class VideoInfo:
    """What `probe` learns about a video file before any stylisation."""

    path: Path
    coded_size: tuple[int, int]  # (width, height) as stored
    rotation: int  # degrees counter-clockwise the display matrix turns the stored picture (0, 90, 180, 270)
    rate: Fraction | None  # average frame rate
    frames: int | None  # frame count, declared or estimated from the duration; None when unknown
    duration: float | None  # of the video stream, seconds; None when unknown
    audio: str | None  # the first audio track's codec name, None without one
    size: tuple[int, int] = field(init=False)  # (width, height) as displayed

    def __post_init__(self):
        w, h = self.coded_size
        self.size = (h, w) if self.rotation in (90, 270) else (w, h)


def _av():
    try:
        import av
    except ImportError:
        raise StyleTransferError("video needs PyAV: pip install av") from None
    return av


def _first_line(err: BaseException) -> str:
    text = (getattr(err, "strerror", None) or str(err)).strip()  # FFmpeg's message without "[Errno N] ... 'file'"
    return text.splitlines()[0] if text else type(err).__name__


def _open_input(path: Path):
    av = _av()
    if not path.exists():
        raise StyleTransferError(f"video not found: {path}")
    if path.is_dir():
        raise StyleTransferError(f"video is a folder, not a file: {path}")
    try:
        container = av.open(str(path), "r")
    except EOFError:
        raise StyleTransferError(f"{path.name} ends before any video: the file is empty or cut off") from None
    except av.FFmpegError:
        raise StyleTransferError(f"{path.name} is not a video (or a format FFmpeg cannot read)") from None
    if container.format.name == "image2" or container.format.name.endswith("_pipe"):
        container.close()
        raise StyleTransferError(f"{path.name} is a picture, not a video: use `cst stylize` for pictures")
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams})
        container.close()
        what = "an audio-only file" if kinds == ["audio"] else "not a video"
        raise StyleTransferError(f"{path.name} has no video stream ({what})")
    return container


def _declared_duration(stream) -> float | None:
    """The video stream's own duration in seconds: the stream's (mp4), its DURATION tag (mkv), else None."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    tag = stream.metadata.get("DURATION")
    if tag:
        try:
            h, m, s = tag.split(":")
            return int(h) * 3600 + int(m) * 60 + float(s)
        except ValueError:
            return None
    return None


def _rotation(degrees: float) -> int:
    return int(round(degrees / 90.0)) % 4 * 90


def probe(path: str | os.PathLike) -> VideoInfo:
    """Open `path`, check that it is a video with at least one decodable frame, and describe it."""
    av = _av()
    path = Path(path)
    container = _open_input(path)
    try:
        stream = container.streams.video[0]
        try:
            first = next(container.decode(stream), None)
        except av.FFmpegError as err:
            raise StyleTransferError(f"{path.name}: the video stream cannot be decoded ({_first_line(err)})") from None
        if first is None:
            raise StyleTransferError(f"{path.name} has no video frames")
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        rate = Fraction(rate) if rate else None
        duration = _declared_duration(stream)
        if duration is None and len(container.streams) == 1 and container.duration:
            duration = container.duration / 1e6  # the only stream: the container's duration is the video's
        frames = stream.frames or (round(duration * rate) if duration and rate else None)
        audio = container.streams.audio[0].codec_context.name if container.streams.audio else None
        return VideoInfo(path, (first.width, first.height), _rotation(first.rotation), rate, frames, duration, audio)
    finally:
        container.close()


def working_size(size: tuple[int, int], max_size: int) -> tuple[int, int]:
    """(width, height) fitted so the long side is at most `max_size`, both sides even (yuv420p), aspect kept."""
    w, h = size
    scale = min(1.0, max_size / max(w, h))
    return tuple(max(MIN_SIDE, int(v * scale + 1e-6) // 2 * 2) for v in (w, h))  # rounded down: never upscaled


def upright_rgb(frame, size: tuple[int, int], rotation: int) -> np.ndarray:
    """A decoded PyAV frame -> H x W x 3 uint8 RGB as displayed: `size` (width, height) once turned upright by
    `rotation` (VideoInfo's), area-scaled, converted with the frame's own colour range (full-range phone clips too)."""
    w, h = size
    coded_w, coded_h = (h, w) if rotation in (90, 270) else (w, h)
    picture = frame.to_ndarray(format="rgb24", width=coded_w, height=coded_h, interpolation="AREA",
                               src_color_range=frame.color_range)
    return np.rot90(picture, rotation // 90) if rotation else picture


def check_output(path: str | os.PathLike, src: Path | None = None) -> Path:
    """The output file name: a video suffix cst writes, a writable folder, not the input itself."""
    dst = Path(path)
    if dst.suffix.lower() not in VIDEO_SUFFIXES:
        raise StyleTransferError(f"cannot write videos named {dst.name}: use {', '.join(VIDEO_SUFFIXES)}")
    if dst.is_dir():
        raise StyleTransferError(f"the output {dst} is a folder: name a video file")
    if src is not None and dst.exists() and dst.resolve() == Path(src).resolve():
        raise StyleTransferError(f"refusing to overwrite the input {src}: choose another output")
    return dst


def stylize_video(model, src: str | os.PathLike, dst: str | os.PathLike, style, *, strength: float = 1.0,
                  content_weight: float = 1.0, style_weight: float = 1.0, adversarial_weight: float = 1.0,
                  preserve_color: bool = False, max_size: int | None = None, smoothing: float = DEFAULT_SMOOTHING,
                  align: bool = True, blend: float = DEFAULT_BLEND, cut_threshold: float | None = CUT_THRESHOLD,
                  max_seconds: float | None = None,
                  progress: Callable[[int, int | None], None] | None = None,
                  notice: Callable[[str], None] | None = None) -> dict:
    """Stylise the video file `src` into `dst` (see the module docstring). `style` is anything `model.prepare`
    takes (an image, a preset name, statistics, a blend) or a prepared `Stylizer` (the sliders are then its own).
    max_size: long side of the frames in px, up to the model's working size (default DEFAULT_MAX_SIZE, or the
    model's working size if smaller); larger frames are downscaled, with a notice.
    max_seconds: refuse longer clips. progress(done, total) after each frame (total None when unknown); notice(text)
    receives one-line notes (downscaling). Returns a summary: frames, fps, size, audio, notes."""
    av = _av()
    src = Path(src)
    dst = check_output(dst, src)
    max_size = check_max_size(max_size, "max_size") or min(DEFAULT_MAX_SIZE, model.config.max_size)
    if max_size > model.config.max_size:  # frames are stylised whole (no tiles): the model's working size at most
        raise StyleTransferError(f"video frames are at most the model's working size, {model.config.max_size} px: "
                                 f"a max size of {max_size} is too large")
    info = probe(src)  # a bad or too long clip is said before the style is encoded
    if max_seconds is not None and info.duration is not None and info.duration > max_seconds + 0.05:
        raise StyleTransferError(f"{src.name} is {info.duration:.1f} s long; the limit here is {max_seconds:g} s")
    if isinstance(style, Stylizer):
        stylizer = style
    else:
        stylizer = model.prepare(style, strength=strength, content_weight=content_weight, style_weight=style_weight,
                                 adversarial_weight=adversarial_weight, preserve_color=preserve_color)
    video = VideoStylizer(stylizer, smoothing=smoothing, align=align, blend=blend, cut_threshold=cut_threshold)
    width, height = working_size(info.size, max_size)
    notes = []
    if (width, height) != info.size:
        what = "downscaled" if max(info.size) > max_size else "rounded to even sides"
        notes.append(f"{src.name} is {info.size[0]}x{info.size[1]} px; its frames are {what} to {width}x{height}"
                     + (f" (max size {max_size} px)" if what == "downscaled" else ""))
    if info.rotation:
        notes.append(f"{src.name} is displayed rotated by {info.rotation} degrees: the output is upright")
    for text in notes:
        if notice is not None:
            notice(text)

    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.stem}.tmp-{os.getpid()}{dst.suffix}")
    done = 0
    try:
        with _open_input(src) as source, av.open(str(tmp), "w") as out:
            video_in = source.streams.video[0]
            video_in.thread_type = "AUTO"
            audio_in = source.streams.audio[0] if source.streams.audio else None
            video_out = out.add_stream("libx264", rate=info.rate or 25)
            video_out.width, video_out.height, video_out.pix_fmt = width, height, "yuv420p"
            video_out.time_base = video_in.time_base
            video_out.codec_context.time_base = video_in.time_base
            video_out.options = {"crf": str(CRF), "preset": PRESET}
            audio_out = None
            if audio_in is not None:
                if audio_in.codec_context.name not in out.supported_codecs:
                    raise StyleTransferError(f"the sound of {src.name} ({audio_in.codec_context.name}) cannot go "
                                             f"into a {dst.suffix} file unchanged: write .mkv instead")
                audio_out = out.add_stream_from_template(audio_in)
            step = int(round(1 / (info.rate * video_in.time_base))) if info.rate and video_in.time_base else 1
            last_pts, last_time = None, None
            try:
                for item in _read(source, video_in, audio_in, src, lambda: (done, last_time)):
                    if isinstance(item, av.Packet):  # sound: the same packet, into the output's audio stream
                        item.stream = audio_out
                        out.mux(item)
                        continue
                    pts = item.pts if item.pts is not None else (0 if last_pts is None else last_pts + step)
                    if last_pts is not None and pts <= last_pts:  # repeated timestamps: keep them increasing
                        pts = last_pts + 1
                    picture = upright_rgb(item, (width, height), info.rotation)
                    styled = av.VideoFrame.from_ndarray(video(picture), format="rgb24")
                    styled.pts, styled.time_base = pts, video_in.time_base
                    for encoded in video_out.encode(styled):
                        out.mux(encoded)
                    last_pts, done = pts, done + 1
                    last_time = float(pts * video_in.time_base)
                    if progress is not None:
                        progress(done, info.frames)
                for encoded in video_out.encode():
                    out.mux(encoded)
            except av.FFmpegError as err:  # decoding errors are StyleTransferErrors already (_read): this is output
                raise StyleTransferError(f"cannot write {dst.name}: {_first_line(err)}") from None
            if done == 0:
                raise StyleTransferError(f"{src.name} has no video frames")
            end = last_time + (1 / float(info.rate) if info.rate else 0) - float(
                (video_in.start_time or 0) * video_in.time_base)
            if info.duration is not None and end < info.duration - max(SHORTFALL_S, 3 / float(info.rate or 25)):
                raise StyleTransferError(f"{src.name}: the video stream ends at {end:.2f} s of {info.duration:.2f} s "
                                         f"after {done} frames (the file is truncated or corrupt); nothing written")
        os.replace(tmp, dst)
    except (OSError, av.FFmpegError) as err:  # errors of the input are StyleTransferErrors by now: this is output
        raise StyleTransferError(f"cannot write {dst}: {_first_line(err)}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return {"input": str(src), "output": str(dst), "frames": done, "fps": float(info.rate) if info.rate else None,
            "size": [width, height], "source_size": list(info.size), "rotation": info.rotation,
            "audio": info.audio, "scene_cuts": video.cuts, "notes": notes}


def _read(source, video, audio, src: Path, position: Callable[[], tuple[int, float | None]]):
    """Yield the source's audio packets (ready to mux: with timestamps) and decoded video frames, in file order.
    A corrupt packet or frame, or a decoding error, is a one-line StyleTransferError saying where the stream broke
    (`position()` = (frames done, time of the last one))."""
    av = _av()
    streams = [video] + ([audio] if audio is not None else [])

    def broken(why: str) -> StyleTransferError:
        done, last_time = position()
        where = f"after frame {done} ({last_time:.2f} s)" if last_time is not None else "before its first frame"
        return StyleTransferError(f"{src.name}: the video is corrupt {where}: {why}; nothing written")

    try:
        for packet in source.demux(*streams):
            if packet.is_corrupt:
                raise broken(f"a damaged {packet.stream.type} packet")
            if packet.stream is audio:
                if packet.dts is not None:  # the demuxer's end-of-stream packet has none
                    yield packet
                continue
            for frame in packet.decode():
                if frame.is_corrupt:
                    raise broken("a damaged frame")
                yield frame
    except av.FFmpegError as err:
        raise broken(_first_line(err)) from None
