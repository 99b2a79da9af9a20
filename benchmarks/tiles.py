"""Full-resolution stylisation in tiles: time per megapixel, peak memory, seams, drift from the untiled picture and
stroke scale, one run, this machine.

    python benchmarks/tiles.py                         # the default model: 1024 (untiled reference), 2048, 4096, 8000x6000
    python benchmarks/tiles.py --model FOLDER --sizes 2048 4096 --picture docs/tiles_4096.jpg
    python benchmarks/tiles.py --sizes 4096 --thumbnails 1024 2048     # the statistics' thumbnail against one pass
    python benchmarks/tiles.py --sizes 2048 --margins 16 24 32         # the tiles' margin against one pass

The photos are mosaics of scikit-image's sample photos (nothing downloaded), each cell upscaled to CELL px, so a
4096 px photo has the detail of a 1024 px one in every cell. Each size runs in its own process, so its peak RSS
(VmHWM, after the first run) is its own. Figures:
- s/MP: seconds per megapixel of `model.stylize(..., full_resolution=True)`, photo decoded and result written as
  the CLI writes it (PNG, `imageio.save_image_atomic`) included, the fastest of `--repeats` runs, after one warm-up
  call of each path (the engines' graphs are built once per process, about a second each: not counted); the 1024 px
  row is the untiled reference (the model's working size). The last line: writing the largest square result as PNG
  at Pillow's default zlib level and at cst's.
- seam: mean |gradient| across the tiles' borders ÷ just inside them (1.0: no seam; target ≤ 1.05).
- drift: mean |tiled − untiled| /255 on the same photo, for photos up to 2048 px (target ≤ 2). The light model runs
  those in one pass by itself (`tiling.UNTILED`), so its tiled run asks for tiles of FORCED_TILE px.
- Gram@1024: Gram error (cst.losses.gram_relative_error, VGG19 relu1_1-4_1) against the style of the result brought
  down to 1024 px: at 4096 px the brush strokes are 4x smaller relative to the picture and partly turn to noise.
  `--stroke` adds rows `@N`: the largest photo stylised at N px and resized up (strokes N/size as large).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CELL = 1024  # each scikit-image photo fills a CELL x CELL square of the mosaic
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field")
STYLE = "starry-night"
FORCED_TILE = 1024  # tiles asked for on photos up to 2048 px (which light models run in one pass): the drift row
BORDER = 32  # --margins: the band along the picture's borders measured apart
LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")


def mosaic(width: int, height: int) -> Image.Image:
    """A width x height photo tiled with scikit-image's sample photos, one per CELL square."""
    from skimage import data

    out = Image.new("RGB", (width, height))
    for k, (y, x) in enumerate((y, x) for y in range(0, height, CELL) for x in range(0, width, CELL)):
        im = Image.fromarray(getattr(data, PHOTOS[k % len(PHOTOS)])()).convert("RGB")
        s = CELL / min(im.size)
        im = im.resize((max(CELL, round(im.width * s)), max(CELL, round(im.height * s))), Image.LANCZOS)
        out.paste(im.crop((0, 0, CELL, CELL)), (x, y))
    return out


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM) in MB."""
    from benchmarks.speed import _status_kb  # the one /proc/self/status reader of the benchmarks
    return (_status_kb("VmHWM") or float("nan")) / 1024


def worker(args: argparse.Namespace) -> dict:
    """One size in this process: stylise the mosaic photo file at full resolution (or untiled at 1024)."""
    import torch

    from cst.engines import best_engine
    from cst.frontend import load_model
    from cst.imageio import save_image_atomic
    torch.set_num_threads(args.threads)
    model = load_model(args.model)
    width, height = args.worker
    photo = Path(args.tmp) / f"photo-{width}x{height}.png"
    out = Path(args.tmp) / (f"out-{width}x{height}{'-whole' if args.whole else ''}-{args.work_size or 'full'}"
                            f"{f'-tile{args.tile_size}' if args.tile_size else ''}.png")  # one file per row
    stats = model.style_stats(STYLE)
    gray = Image.new("RGB", (96, 96), (128, 128, 128))
    model.stylize(gray, stats)  # warm-up: engines, allocator
    model.stylize(gray, stats, full_resolution=True, tile_size=48)  # and the tiles' engines (built once per process)
    if args.whole:  # untiled: the whole picture through the network at once
        model.config.max_size = max(width, height)
    times, tiles = [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        if args.whole:
            result = model.stylize(photo, stats, full_resolution=True)
        elif args.work_size:  # stroke size: stylised at a smaller working size, resized up to the photo's
            result = model.stylize(photo, stats, max_size=args.work_size, tile_size=args.tile_size)
        else:
            result = model.stylize(photo, stats, full_resolution=True, tile_size=args.tile_size,
                                   progress=lambda done, total: tiles.append(total))
        save_image_atomic(result, out)  # as the CLI writes it
        times.append(time.perf_counter() - start)
        engine = best_engine(model)
        if hasattr(engine, "forget_pictures"):  # the next run pays for its folded tile graph as a new picture would
            engine.forget_pictures()
        peak = peak_rss_mb() if len(times) == 1 else peak  # of the first run: one stylisation's, in a fresh process
        del result
    seconds = min(times)
    return {"size": f"{width}x{height}", "seconds": seconds, "s_per_mp": seconds / (width * height / 1e6),
            "peak_rss_mb": peak, "tiles": tiles[-1] if tiles else 0, "tile": args.tile_size, "output": str(out), "whole": args.whole, "work": args.work_size}


def thumbnails(args: argparse.Namespace, size: int) -> list[str]:
    """The statistics' thumbnail size against the untiled picture (`--thumbnails`): the size x size mosaic in one
    pass in eager torch (it fits in memory here, if slowly), then in tiles with each thumbnail size; mean |difference|
    /255 and the Gram error at viewing size of each."""
    import torch

    from cst import tiling
    from cst.engines import TorchEngine
    from cst.frontend import load_model
    from cst.imageio import pil_to_tensor, tensor_to_pil

    torch.set_num_threads(args.threads)
    model = load_model(args.model)
    stylizer, photo = model.prepare(STYLE), mosaic(size, size)
    style = style_features(model)
    start = time.perf_counter()
    whole = tensor_to_pil(TorchEngine(model).run(pil_to_tensor(photo), stylizer.vector, stylizer.weights))
    lines = [f"{size} px untiled (eager torch, {time.perf_counter() - start:.0f} s): Gram@1024 "
             f"{gram_at_1024(whole, (model, style)):.3f}"]
    untiled = np.asarray(whole, dtype=np.float32)
    for thumb in args.thumbnails:
        out = tiling.stylize_tiled(stylizer, photo, tile=args.tile_size or model.tile_size(), thumbnail=thumb)
        drift = np.abs(np.asarray(out, dtype=np.float32) - untiled).mean()
        lines.append(f"{size} px in tiles, statistics from a {thumb} px thumbnail: {drift:.1f}/255 from the untiled "
                     f"picture, Gram@1024 {gram_at_1024(out, (model, style)):.3f}")
    return lines


def margins(args: argparse.Namespace, size: int) -> list[str]:
    """The tiles' margin against one pass (`--margins`): the size x size mosaic (at most EXACT_STATISTICS px, so the
    tiles share the picture's own statistics) in one pass, then in tiles of FORCED_TILE px with each margin; mean
    |difference| /255 inside (beyond BORDER px of the picture's borders: the receptive field of the tiles' margins)
    and in the BORDER px band (light models: the picture mirrored beyond its borders against each layer's reflection
    padding), and the seam score."""
    import torch

    from cst import tiling
    from cst.frontend import load_model
    from cst.imageio import pil_to_tensor, tensor_to_pil

    torch.set_num_threads(args.threads)
    assert size <= tiling.EXACT_STATISTICS, f"--margins compares photos up to {tiling.EXACT_STATISTICS} px"
    model = load_model(args.model)
    stylizer, photo = model.prepare(STYLE), mosaic(size, size)
    whole = np.asarray(tensor_to_pil(stylizer(pil_to_tensor(photo))), dtype=np.float32)
    band, lines = slice(BORDER, -BORDER), []
    for margin in args.margins:
        out = np.asarray(tiling.stylize_tiled(stylizer, photo, tile=FORCED_TILE, margin=margin), dtype=np.float32)
        diff = np.abs(out - whole)
        inner = diff[band, band]
        edge = (diff.sum() - inner.sum()) / (diff.size - inner.size)
        seam = tiling.seam_score(out, tiling.plan_tiles(size, size, FORCED_TILE, margin))
        lines.append(f"{size} px in tiles of {FORCED_TILE} px, margin {margin} px, against one pass: inside mean "
                     f"{inner.mean():.4f}/255, max {inner.max():.0f}; the outer {BORDER} px mean {edge:.2f}/255; "
                     f"seam {seam:.3f}")
    return lines


def png_levels(path: str) -> str:
    """Writing a result as PNG at Pillow's default zlib level (6) and at cst's (imageio.PNG_COMPRESS_LEVEL): seconds
    and size (the fastest of 3 writes each, in memory)."""
    import io

    from cst.imageio import PNG_COMPRESS_LEVEL
    with Image.open(path) as im:
        im.load()
        parts = []
        for level in (6, PNG_COMPRESS_LEVEL):
            times = []
            for _ in range(3):
                buffer, start = io.BytesIO(), time.perf_counter()
                im.save(buffer, format="PNG", compress_level=level)
                times.append(time.perf_counter() - start)
            parts.append(f"level {level} {min(times):.2f} s, {buffer.tell() / 1e6:.1f} MB")
    return f"writing the {im.width}x{im.height} result as PNG: " + "; ".join(parts) + " (cst writes the last)"


def run_worker(args, width: int, height: int, whole: bool = False, work_size: int | None = None,
               tile_size: int | None = None) -> dict:
    tile_size = tile_size or args.tile_size
    cmd = [sys.executable, __file__, "--worker", str(width), str(height), "--tmp", args.tmp,
           "--threads", str(args.threads), "--repeats", str(args.repeats)] + (["--model", args.model] if args.model else []) + \
          (["--tile-size", str(tile_size)] if tile_size else []) + (["--whole"] if whole else []) + \
          (["--work-size", str(work_size)] if work_size else [])
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if done.returncode != 0:
        raise SystemExit(f"worker {width}x{height} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def gram_at_1024(picture, style_stats_model) -> float:
    """picture: a path or a PIL image."""
    import torch

    from cst.imageio import fit_within, load_image, pil_to_tensor
    from cst.losses import gram_relative_error
    model, style = style_stats_model
    x = pil_to_tensor(fit_within(picture if isinstance(picture, Image.Image) else load_image(picture), 1024))
    with torch.no_grad():
        feats = model.encoder(x, LAYERS)
        return float(np.mean([gram_relative_error(feats[k], style[k]).item() for k in LAYERS]))


def style_features(model):
    import torch

    from cst import presets
    from cst.imageio import fit_within, load_image, pil_to_tensor
    x = pil_to_tensor(fit_within(load_image(presets.get(STYLE).path), 512))
    from cst.functional import gram_matrix
    with torch.no_grad():
        return {k: gram_matrix(f) for k, f in model.encoder(x, LAYERS).items()}


def picture(result: str, tile: int, path: str) -> None:
    """The 4096 px result at 1/4 scale beside a 1:1 crop over a tile corner (of the interior corners, the one in the
    smoothest part of the picture, where a seam would show most)."""
    from cst.tiling import plan_tiles
    with Image.open(result) as im:
        im.load()
        tiles = plan_tiles(im.height, im.width, tile)
        a = np.asarray(im.convert("L"), dtype=np.float32)

        def busy(t) -> float:  # seams would show most where the picture is smooth
            near = a[max(0, t.y0 - 256):t.y0 + 256, max(0, t.x0 - 256):t.x0 + 256]
            return float(np.abs(np.diff(near, axis=0)).mean() + np.abs(np.diff(near, axis=1)).mean())
        corner = min((t for t in tiles if t.x0 > 0 and t.y0 > 0), key=busy)
        crop = im.crop((corner.x0 - 256, corner.y0 - 256, corner.x0 + 256, corner.y0 + 256))
        small = im.resize((im.width * 512 // im.height, 512), Image.LANCZOS)
    sheet = Image.new("RGB", (small.width + 512 + 8, 512), "white")
    sheet.paste(small, (0, 0))
    sheet.paste(crop, (small.width + 8, 0))
    from PIL import ImageDraw
    d = ImageDraw.Draw(sheet)
    s = 512 / im.height
    x, y = corner.x0 * s, corner.y0 * s
    d.rectangle((x - 256 * s, y - 256 * s, x + 256 * s, y + 256 * s), outline="red", width=2)
    sheet.save(path, quality=88)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="model folder or Hub id (default: the embedded default)")
    p.add_argument("--sizes", nargs="+", default=["2048", "4096", "8000x6000"], help="photo sizes: N or WxH")
    p.add_argument("--tile-size", type=int, default=None, help="tile size (default: the model's)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--repeats", type=int, default=3, help="runs of each size in its process; the fastest is shown "
                                                            "(this shared machine's timings vary by 20 %% between runs)")
    p.add_argument("--picture", default=None, help="write the 4096 px result with a zoomed tile corner here")
    p.add_argument("--worker", nargs=2, type=int, help=argparse.SUPPRESS)
    p.add_argument("--whole", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--work-size", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--stroke", action="store_true", help="also stylise the largest square photo at 1/2 and 1/4 of "
                                                         "its size, resized up (bigger strokes): Gram error compared")
    p.add_argument("--thumbnails", nargs="+", type=int, default=None, metavar="N",
                   help="instead: the largest size in one pass (eager torch; 4096 px needs about 8 GB and a minute) "
                        "against tiles whose statistics come from thumbnails of these sizes")
    p.add_argument("--margins", nargs="+", type=int, default=None, metavar="N",
                   help="instead: the largest size (at most 2048 px) in one pass against tiles with these margins")
    p.add_argument("--tmp", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return
    largest = max(int(v) for size in args.sizes for v in size.split("x"))
    if args.thumbnails:
        print("\n".join(thumbnails(args, largest)))
        return
    if args.margins:
        print("\n".join(margins(args, largest)))
        return
    from cst.frontend import load_model
    from cst.tiling import plan_tiles, seam_score
    sizes = [tuple(int(v) for v in s.split("x")) if "x" in s else (int(s), int(s)) for s in args.sizes]
    png_line, square = None, max((w for w, h in sizes if w == h), default=None)  # the largest square photo
    with tempfile.TemporaryDirectory() as tmp:
        args.tmp = tmp
        for w, h in [(1024, 1024), *sizes]:
            mosaic(w, h).save(Path(tmp) / f"photo-{w}x{h}.png")
        os.sync()  # the photos' writeback done before any timing (it ran during the reference row: up to 1.3x slower)
        model = load_model(args.model)
        tile = args.tile_size or model.tile_size()
        style = style_features(model)
        ref = run_worker(args, 1024, 1024, whole=True)
        rows = [dict(ref, seam=None, drift=None, gram=gram_at_1024(ref["output"], (model, style)))]
        for w, h in sizes:
            row = run_worker(args, w, h)  # as `stylize` does it: light models run up to 2048 px in one pass
            if FORCED_TILE < max(w, h) <= 2048:  # the tiles against the untiled picture: tiles asked for if need be
                whole = row if not row["tiles"] else run_worker(args, w, h, whole=True)
                if not row["tiles"]:
                    rows.append(dict(row, seam=None, drift=None, gram=gram_at_1024(row["output"], (model, style))))
                    row = run_worker(args, w, h, tile_size=FORCED_TILE)
                with Image.open(whole["output"]) as im:
                    untiled = np.asarray(im.convert("RGB"), dtype=np.float32)
            with Image.open(row["output"]) as im:
                out = np.asarray(im.convert("RGB"), dtype=np.float32)
            row["seam"] = seam_score(out, plan_tiles(h, w, row.get("tile") or tile)) if row["tiles"] else None
            row["drift"] = float(np.abs(out - untiled).mean()) if FORCED_TILE < max(w, h) <= 2048 else None
            row["gram"] = gram_at_1024(row["output"], (model, style))
            if args.picture and (w, h) == (4096, 4096):
                picture(row["output"], tile, args.picture)
            if w == h == square:
                png_line = png_levels(row["output"])
            rows.append(row)
            if args.stroke and w == h == square:
                for work in (w // 2, w // 4):
                    row = run_worker(args, w, h, work_size=work)
                    row.update(seam=None, drift=None, gram=gram_at_1024(row["output"], (model, style)))
                    rows.append(row)
    print(f"model {args.model or 'default'}, tile {tile} px, {args.threads} threads, style {STYLE}, "
          f"fastest of {args.repeats} runs")
    print(f"{'size':>10} {'mode':>16} {'seconds':>8} {'s/MP':>6} {'peak RSS':>9} {'seam':>6} {'drift':>6} {'Gram@1024':>9}")
    for r in rows:
        fmt = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731
        mode = lambda r: (f"@{r['work']}" if r["work"] else "whole" if r["whole"] or not r["tiles"]  # noqa: E731
                          else f"{r['tiles']} tiles" + (f" of {r['tile']}" if r["tile"] else ""))
        print(f"{r['size']:>10} {mode(r):>16} {r['seconds']:8.1f} {r['s_per_mp']:6.2f} "
              f"{r['peak_rss_mb']:7.0f}MB {fmt(r['seam'], '6.3f')} {fmt(r['drift'], '6.2f')} {r['gram']:9.3f}")
    if png_line:
        print(png_line)


if __name__ == "__main__":
    main()
