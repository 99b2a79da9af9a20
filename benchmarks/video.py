"""Video throughput: frames per second of cst's frame stream at 256 and 480 px, the style encoded once beforehand.
Prints figures; asserts nothing.

    python benchmarks/video.py                               # the embedded default (VGG) model
    python benchmarks/video.py --model runs/light/final      # also a light (real-time) model folder
    python benchmarks/video.py --model runs/light/final --no-default --frames 60 --sizes 256,480,720

Rows, per model and size (the frames are a 4:3 pan over scikit-image's astronaut, long side = the size):
- per frame: each frame as a picture (`stylize_frames(smoothing=0, align=False, blend=0)`: the image path, on the
  model's fastest engine - onnxruntime for light models);
- + statistics: the running normalisation statistics (light models: the smoothed ONNX graph of cst/engines.py;
  with CST_ENGINE=torch, or for the VGG model, eager torch);
- video default: statistics + phase alignment + motion-compensated blending, what `python -m cst video` runs;
- torch + statistics (light models): the same as "+ statistics" in eager torch, for comparison.
Each row: median frames/s over --frames frames after --warmup untimed ones (decoding and encoding a file are not
included: `python -m cst video` adds PyAV's decode/encode, a few ms a frame at these sizes). Threads: torch's
(OMP_NUM_THREADS), which onnxruntime follows too. Figures taken while other jobs use the CPU are low.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing cst

import numpy as np  # noqa: E402
import torch  # noqa: E402

from cst import DEFAULT_MODEL, frontend  # noqa: E402
from cst.video import DEFAULT_SMOOTHING, VideoStylizer  # noqa: E402
from cst.video_eval import _skimage_photo, pan_clip  # noqa: E402

MODES = {
    "per frame": dict(smoothing=0.0, align=False, blend=0.0),
    "+ statistics": dict(smoothing=DEFAULT_SMOOTHING, align=False, blend=0.0),
    "video default": dict(),
}


def frames_per_second(stylizer, frames: list[np.ndarray], warmup: int, **settings) -> float:
    video = VideoStylizer(stylizer, **settings)
    for frame in frames[:warmup]:
        video(frame)
    times = []
    for frame in frames[warmup:]:
        start = time.perf_counter()
        video(frame)
        times.append(time.perf_counter() - start)
    return 1.0 / statistics.median(times)


def bench(spec: str, sizes: list[int], n: int, warmup: int, style: str) -> list[tuple]:
    model = frontend.load_model(spec)
    stylizer = model.prepare(style)  # the cached style: encoded once, outside the timing
    rows = []
    for size in sizes:
        frames = pan_clip(_skimage_photo("astronaut"), n + warmup, size, (3, 1)).frames
        h, w = frames[0].shape[:2]
        for mode, settings in MODES.items():
            rows.append((spec, model.config.architecture, f"{w}x{h}", mode,
                         frames_per_second(stylizer, frames, warmup, **settings)))
        if model.is_light:
            previous = os.environ.get("CST_ENGINE")
            os.environ["CST_ENGINE"] = "torch"
            try:
                rows.append((spec, "light", f"{w}x{h}", "torch + statistics",
                             frames_per_second(stylizer, frames, warmup, **MODES["+ statistics"])))
            finally:
                if previous is None:
                    os.environ.pop("CST_ENGINE")
                else:
                    os.environ["CST_ENGINE"] = previous
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", action="append", default=[], help="a model folder or Hub id (repeatable)")
    p.add_argument("--no-default", action="store_true", help="skip the embedded default model")
    p.add_argument("--sizes", default="256,480", help="long sides in px, comma-separated")
    p.add_argument("--frames", type=int, default=30, help="timed frames per row")
    p.add_argument("--warmup", type=int, default=3, help="untimed frames first (engine set-up, caches)")
    p.add_argument("--style", default="starry-night", help="a built-in style or a style image")
    args = p.parse_args(argv)
    specs = ([] if args.no_default else [DEFAULT_MODEL]) + args.model
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    print(f"torch threads {torch.get_num_threads()}, {args.frames} frames a row after {args.warmup} untimed")
    rows = [row for spec in specs for row in bench(spec, sizes, args.frames, args.warmup, args.style)]
    width = max(len(Path(r[0]).name) for r in rows) + 2
    print(f"{'model':<{width}}{'arch':<7}{'frame':>9}  {'mode':<20}{'frames/s':>9}")
    for spec, arch, size, mode, fps in rows:
        print(f"{Path(spec).name:<{width}}{arch:<7}{size:>9}  {mode:<20}{fps:>9.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
