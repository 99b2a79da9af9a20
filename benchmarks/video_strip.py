"""The README's video pictures: a camera pan over scikit-image's astronaut stylised frame by frame as pictures and as
a video (cst.video's defaults), as an animated GIF side by side and as a still strip of a few frames.

    python benchmarks/video_strip.py -o docs/                      # the embedded default model, starry-night
    python benchmarks/video_strip.py -o docs/ --model runs/light/final --style great-wave

Writes OUT/video_pan.gif (per frame | video, looping) and OUT/video_strip.jpg (rows: the photo, per frame, video;
columns: every --every-th frame). The GIF shares one palette across all frames (no dithering), so the GIF itself adds
no flicker.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from cst import DEFAULT_MODEL, frontend  # noqa: E402
from cst.eval import _font  # noqa: E402
from cst.video import stylize_frames  # noqa: E402
from cst.video_eval import _skimage_photo, pan_clip  # noqa: E402

CAPTION = 16


def labelled(panels: list[np.ndarray], labels: list[str]) -> Image.Image:
    h, w = panels[0].shape[:2]
    canvas = Image.new("RGB", (w * len(panels) + 4 * (len(panels) - 1), h + CAPTION), "white")
    draw = ImageDraw.Draw(canvas)
    for i, (panel, label) in enumerate(zip(panels, labels)):
        canvas.paste(Image.fromarray(panel), (i * (w + 4), CAPTION))
        draw.text((i * (w + 4) + 3, 2), label, fill="black", font=_font(11))
    return canvas


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-o", "--output", type=Path, required=True, help="folder to write the GIF and the strip into")
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--style", default="starry-night")
    p.add_argument("--size", type=int, default=144, help="long side of the frames (px)")
    p.add_argument("--frames", type=int, default=14)
    p.add_argument("--every", type=int, default=5, help="the strip shows every this many frames")
    args = p.parse_args(argv)
    model = frontend.load_model(args.model)
    stylizer = model.prepare(args.style)
    clip = pan_clip(_skimage_photo("astronaut"), args.frames, args.size, (3, 1))
    per_frame = list(stylize_frames(stylizer, clip.frames, smoothing=0.0, align=False, blend=0.0))
    video = list(stylize_frames(stylizer, clip.frames))
    args.output.mkdir(parents=True, exist_ok=True)

    labels = ["each frame as a picture", "cst video"]
    gif_frames = [labelled([a, b], labels) for a, b in zip(per_frame, video)]
    palette = Image.fromarray(np.concatenate([np.asarray(f) for f in gif_frames], axis=0)).quantize(
        colors=256, method=Image.Quantize.MEDIANCUT)
    quantised = [f.quantize(palette=palette, dither=Image.Dither.NONE) for f in gif_frames]
    gif = args.output / "video_pan.gif"
    quantised[0].save(gif, save_all=True, append_images=quantised[1:], duration=125, loop=0, optimize=True)

    picks = list(range(0, args.frames, args.every))
    rows = [("the pan (3 px right, 1 px down a frame)", clip.frames), ("each frame as a picture", per_frame),
            ("cst video", video)]
    h, w = clip.frames[0].shape[:2]
    strip = Image.new("RGB", (len(picks) * (w + 4) - 4, len(rows) * (h + CAPTION)), "white")
    draw = ImageDraw.Draw(strip)
    for r, (label, frames) in enumerate(rows):
        draw.text((3, r * (h + CAPTION) + 2), f"{label}: frames {', '.join(str(i) for i in picks)}", fill="black",
                  font=_font(11))
        for c, i in enumerate(picks):
            strip.paste(Image.fromarray(frames[i]), (c * (w + 4), r * (h + CAPTION) + CAPTION))
    still = args.output / "video_strip.jpg"
    strip.save(still, quality=88)
    for path in (gif, still):
        print(f"{path}  {path.stat().st_size / 1024:.0f} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
