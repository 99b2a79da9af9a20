"""Command line:

    python -m cst stylize CONTENT --style STYLE -o OUT [sliders]     # STYLE: an image or a built-in name
    python -m cst presets                                            # the built-in styles, one a line
    python -m cst sheet PHOTO -o sheet.jpg [sliders]                 # PHOTO in every built-in style, one picture
    python -m cst export-onnx [MODEL] -o model.onnx [--int8] [--no-style]   (see cst/engines.py for the graphs)
    python -m cst video CLIP --style STYLE -o OUT.mp4 [sliders] [--smoothing S] [--blend B]   (see cst/video.py)

CONTENT is a photo or a folder. For a folder, every image directly inside it (suffixes in
`cst.imageio.IMAGE_SUFFIXES`, not recursive) is stylised into the folder -o names, under the same file name and
extension (photo.jpg -> OUT/photo.jpg), so nothing is renamed and nothing collides.

Errors are one line on stderr, `cst: error: ...`, never a traceback. Exit codes: 0 all written; 2 bad input or
settings (nothing written); 1 a folder where some images could not be stylised (reported and skipped, the others
written). Outputs are written atomically: a failure never leaves a partial file.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
import time
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from . import DEFAULT_MODEL, frontend, presets
from .errors import StyleTransferError
from .frontend import check_number
from .imageio import IMAGE_SUFFIXES, fit_within, load_image, save_image_atomic

WEIGHT_FLAGS = {"content_weight": "--content-weight", "style_weight": "--style-weight",
                "adversarial_weight": "--adversarial-weight"}
SHEET_MAX_SIZE = 512  # `sheet`'s default working resolution: the tiles are small, and 512 px is the textures' scale
SHEET_PAIRS_PER_ROW = 3  # painting | result pairs side by side: nine presets make a 3 x 3 grid


def _prog() -> str:
    """How the user invoked us, for usage lines: `python -m cst`, or the `cst` console script."""
    return "python -m cst" if Path(sys.argv[0]).name == "__main__.py" else "cst"


class _Parser(argparse.ArgumentParser):
    """argparse with our one-line error format (argparse's own prints the whole usage first)."""

    def error(self, message: str):
        self.exit(2, f"cst: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """The `python -m cst` argument parser: sub-commands `stylize`, `presets`, `sheet` and `export-onnx`."""
    parser = _Parser(prog=_prog(), description="cst: content-preserving style transfer.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    p = commands.add_parser(
        "stylize", help="repaint photos in the style of one or more artworks",
        description="Repaint CONTENT (a photo, or every image in a folder) in the style of --style. "
                    "The style is encoded once and reused for every photo.")
    p.add_argument("content", metavar="CONTENT",
                   help="a photo, or a folder: every image directly inside it is stylised (not recursive)")
    p.add_argument("--style", action="append", required=True, metavar="STYLE",
                   help="style image, or a built-in style name (see 'presets'); repeat to blend several styles")
    p.add_argument("--style-blend", metavar="W1,W2,...",
                   help="one weight per --style, comma-separated, normalised to sum 1 (default: equal weights)")
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="output image (format from the extension: .png, .jpg, .webp, ...); an existing folder or "
                        "a path ending in '/' gets CONTENT's file name; for a folder CONTENT, the output folder. "
                        "Missing folders on the way are created; -o equal to the input is refused")
    _add_settings_arguments(p, "long side in px of the working resolution (default: the model's, 1024); the output "
                               "always has the photo's size")
    p.add_argument("--full-resolution", action="store_true",
                   help="stylise at the photo's own size (up to the image limit), in tiles that share the whole "
                        "picture's statistics: no seams, bounded memory (--max-size is then ignored)")
    p.add_argument("--tile-size", type=int, default=None, metavar="N",
                   help="tile size in px for pictures larger than the model's working size (default: the model's: "
                        "1392 for the light model, which runs pictures up to 2048 px in one pass; 512 for the VGG "
                        "generator); smaller tiles use less memory")
    p.add_argument("--json", action="store_true",
                   help="print a JSON summary (inputs, outputs, failures, settings, seconds, and each picture's "
                        "scores: content kept and style taken in %%) on stdout")
    p.set_defaults(run=stylize_command)
    commands.add_parser("presets", help="list the built-in styles (use a name as --style)",
                        description="The built-in styles: name, title, artist, year, one a line. Each name works "
                                    "wherever a style image does.").set_defaults(run=presets_command)
    _add_sheet_parser(commands)
    _add_export_parser(commands)
    _add_video_parser(commands)
    return parser


def _add_settings_arguments(p: argparse.ArgumentParser, max_size_help: str) -> None:
    """The sliders, --preserve-color, --max-size and --model, shared by `stylize` and `sheet`."""
    p.add_argument("--strength", type=float, default=1.0, metavar="S",
                   help="mixes the stylised picture with the photo: 0 = the photo, 1 = fully stylised (default 1)")
    p.add_argument("--content-weight", type=float, default=1.0, metavar="A",
                   help="α, keep the photo's structure: > 0, trained range 0.1-10 (default 1)")
    p.add_argument("--style-weight", type=float, default=1.0, metavar="B",
                   help="β, take the style's texture and colour: > 0, trained range 0.1-10 (default 1)")
    p.add_argument("--adversarial-weight", type=float, default=1.0, metavar="L",
                   help="λ, look like real brushwork (the discriminator's term): > 0, trained range 0.1-10 "
                        "(default 1)")
    p.add_argument("--preserve-color", action="store_true", help="keep the photo's colours, take only the style's "
                                                                  "luminance texture")
    p.add_argument("--max-size", type=int, default=None, metavar="N", help=max_size_help)
    p.add_argument("--model", default=None, metavar="ID_OR_DIR",
                   help="model folder or Hub repo id (default: $CST_MODEL, else the model bundled with cst)")


def _add_sheet_parser(commands) -> None:
    p = commands.add_parser(
        "sheet", help="render a photo in every built-in style, as one contact sheet",
        description="Stylise PHOTO in each built-in style and write one contact sheet: the painting (title, artist, "
                    "year) beside the result, three pairs a row. Written atomically.")
    p.add_argument("photo", metavar="PHOTO", help="the photo")
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="the sheet (format from the extension: .jpg, .png, ...); an existing folder or a path ending "
                        "in '/' gets PHOTO_presets.jpg (photo.jpg -> photo_presets.jpg)")
    _add_settings_arguments(p, f"long side in px at which each style is rendered (default {SHEET_MAX_SIZE}); the "
                               f"results are then shrunk to the sheet's tiles")
    p.set_defaults(run=sheet_command)


def _add_export_parser(commands) -> None:
    p = commands.add_parser(
        "export-onnx", help="export a model as ONNX graphs for onnxruntime",
        description="Write the content path (photo, cached style vector, sliders, strength -> picture) to OUT, and "
                    "the style path (style image -> style vector, run once per style) to OUT's stem + .style.onnx; "
                    "with --int8 also OUT's stem + .int8.onnx. Each file is written atomically.")
    p.add_argument("model", nargs="?", default=None, metavar="MODEL",
                   help="model folder or Hub repo id (default: $CST_MODEL, else the model bundled with cst)")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="the .onnx file to write")
    p.add_argument("--int8", action="store_true", help="also write an int8-quantised content graph (OUT stem + "
                                                       ".int8.onnx; not faster on every CPU, see cst/engines.py)")
    p.add_argument("--no-style", action="store_true", help="skip the style graph")
    p.set_defaults(run=export_onnx_command)


def _add_video_parser(commands) -> None:
    from .video import CUT_THRESHOLD, DEFAULT_BLEND, DEFAULT_MAX_SIZE, DEFAULT_SMOOTHING, VIDEO_SUFFIXES

    p = commands.add_parser(
        "video", help="stylise a video clip (sound kept, frame rate and count kept)",
        description="Stylise every frame of CLIP in the style of --style and write OUT: the same frame rate and "
                    "frame count, the sound copied unchanged, the rotation applied, H.264 in "
                    f"{'/'.join(VIDEO_SUFFIXES)}, written atomically. The style is encoded once; consecutive frames "
                    "share running normalisation statistics, are aligned to the scene's global motion and blended "
                    "along the optical flow, so what barely changes does not flicker (see cst/video.py).")
    p.add_argument("clip", metavar="CLIP", help="the video file")
    p.add_argument("--style", action="append", required=True, metavar="STYLE",
                   help="style image, or a built-in style name (see 'presets'); repeat to blend several styles")
    p.add_argument("--style-blend", metavar="W1,W2,...",
                   help="one weight per --style, comma-separated, normalised to sum 1 (default: equal weights)")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="the stylised video (.mp4, .mov, .m4v, .mkv)")
    _add_settings_arguments(p, f"long side in px of the frames (default {DEFAULT_MAX_SIZE}); larger frames are "
                               f"downscaled, with a note")
    p.add_argument("--smoothing", type=float, default=DEFAULT_SMOOTHING, metavar="S",
                   help=f"weight of the running average of the normalisation statistics across frames, 0-1: 0 = "
                        f"each frame on its own, 1 = the first frame's (default {DEFAULT_SMOOTHING:g})")
    p.add_argument("--blend", type=float, default=DEFAULT_BLEND, metavar="B",
                   help=f"weight of the previous stylised frame, warped along the motion, 0-0.95: 0 = off "
                        f"(default {DEFAULT_BLEND:g})")
    p.add_argument("--no-align", action="store_true",
                   help="do not shift frames onto the network's pixel grid along a camera pan")
    p.add_argument("--cut-threshold", type=float, default=CUT_THRESHOLD, metavar="T",
                   help=f"a frame this different from the previous one (mean |Δ| of 16x16 thumbnails, 0-1) starts "
                        f"afresh, as after a scene cut (default {CUT_THRESHOLD:g})")
    p.set_defaults(run=video_command)


def _style_blend(text: str | None, num_styles: int) -> list[float]:
    """'0.7,0.3' -> [0.7, 0.3]; one finite, non-negative weight per style, not all zero."""
    if text is None:
        return [1.0] * num_styles
    parts = [part.strip() for part in text.split(",")]
    weights = [check_number(part, "--style-blend weight", low=0.0) for part in parts]
    if len(weights) != num_styles:
        raise StyleTransferError(f"--style-blend has {len(weights)} weight(s) for {num_styles} --style image(s)")
    if sum(weights) <= 0:
        raise StyleTransferError("--style-blend weights must not all be zero")
    return weights


def _check_output_name(path: Path) -> None:
    """Fail before any work when the output format cannot be written (the extension decides it)."""
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None or fmt not in Image.SAVE:
        raise StyleTransferError(f"cannot write images named {path.name}: use an extension such as .png or .jpg")


def _check_writable(folder: Path) -> None:
    """The nearest existing ancestor of `folder` must be a folder we may create files in."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise StyleTransferError(f"cannot write to {folder}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise StyleTransferError(f"cannot write to {folder}: no permission to write in {existing}")


def _plan(content: Path, output: str) -> tuple[list[tuple[Path, Path]], bool]:
    """(photo, output path) pairs, and whether CONTENT is a folder. Everything checkable is checked here."""
    if not content.exists():
        raise StyleTransferError(f"content not found: {content}")
    out = Path(output)
    if content.is_dir():
        photos = frontend.list_images(content, "content")
        if out.exists() and not out.is_dir():
            raise StyleTransferError(f"-o must be a folder when CONTENT is a folder, but {out} is a file")
        if not out.exists() and out.suffix.lower() in IMAGE_SUFFIXES:
            raise StyleTransferError(f"-o must be a folder when CONTENT is a folder, but {out} is named like an "
                                     f"image; give a folder name")
        if out.resolve() == content.resolve():
            raise StyleTransferError(f"refusing to write into the input folder {content}: choose another -o folder")
        _check_writable(out)
        return [(photo, out / photo.name) for photo in photos], True
    if out.is_dir() or output.endswith(("/", os.sep)):
        out = out / content.name
    if out.resolve() == content.resolve():
        raise StyleTransferError(f"refusing to overwrite the input {content}: choose another -o")
    _check_output_name(out)
    _check_writable(out.parent)
    return [(content, out)], False


def _settings(args: argparse.Namespace) -> dict:
    """The checked stylize() keyword arguments from the command line (max_size None: the model's default)."""
    sliders = frontend.check_sliders(args.strength, args.content_weight, args.style_weight, args.adversarial_weight,
                                     ("--strength", *WEIGHT_FLAGS.values()))
    settings = {**sliders, "preserve_color": bool(args.preserve_color),
                "max_size": frontend.check_max_size(args.max_size, "--max-size")}
    if hasattr(args, "full_resolution"):  # `stylize` only
        settings["full_resolution"] = bool(args.full_resolution)
        settings["tile_size"] = frontend.check_max_size(args.tile_size, "--tile-size")
    return settings


def _load_model(args: argparse.Namespace, settings: dict):
    """(model, the spec it came from); says on stderr when a loss weight lies outside the model's trained range."""
    model_id = args.model or os.environ.get("CST_MODEL") or DEFAULT_MODEL
    model = frontend.load_model(model_id)
    flags = {flag: settings[key] for key, flag in WEIGHT_FLAGS.items()}  # the note names what the user typed
    notice = frontend.clamp_notice(flags, model.config.weight_min, model.config.weight_max)
    if notice:
        print(f"cst: note: {notice}", file=sys.stderr)
    return model, model_id


def _stylize_to(model, photo: Path, style, settings: dict, target: Path, reference=None) -> dict | None:
    """Stylise one photo and write it atomically; with a style `reference` (cst.scores), return the picture's
    scores {"content_kept": %, "style_taken": %}. Any failure is a StyleTransferError. A tiled picture shows a
    progress bar of its tiles."""
    bar = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc=photo.name, unit="tile", file=sys.stderr, leave=False, disable=None)
        bar.update(done - bar.n)

    try:
        picture = model.stylize(photo, style, progress=progress, **settings)
    finally:
        if bar is not None:
            bar.close()
    try:
        save_image_atomic(picture, target)
    except OSError as err:
        raise StyleTransferError(f"cannot write {target}: {err.strerror or err}") from None
    if reference is None:
        return None
    from .scores import picture_scores
    return picture_scores(model, photo, picture, reference).as_dict()


def stylize_command(args: argparse.Namespace) -> int:
    """`stylize`: validate everything, load the model, encode the style once, stylise each photo."""
    start = time.perf_counter()
    settings = _settings(args)
    blend = _style_blend(args.style_blend, len(args.style))
    jobs, is_folder = _plan(Path(args.content), args.output)

    # Heavy work starts here, after every cheap check has passed.
    model, model_id = _load_model(args, settings)
    if settings["max_size"] is None:
        settings["max_size"] = model.config.max_size
    # The style is encoded once and reused for every photo; several styles are blended by `stylize` itself.
    style_arg = args.style[0] if len(args.style) == 1 else list(zip(args.style, blend))
    style = model.resolve_style(style_arg)
    reference = None
    if args.json:  # each picture's scores, measured against the style encoded once here (cst.scores)
        from .scores import style_reference
        reference = style_reference(model, style_arg)

    written, failed, images = [], [], []
    for photo, target in tqdm(jobs, desc="cst", unit="image", file=sys.stderr, disable=None if is_folder else True):
        t0 = time.perf_counter()
        try:
            scores = _stylize_to(model, photo, style, settings, target, reference)
        except StyleTransferError as err:
            if not is_folder:
                raise
            failed.append({"input": str(photo), "error": str(err)})
            tqdm.write(f"cst: error: {err} (skipped)", file=sys.stderr)
            continue
        written.append(str(target))
        images.append({"input": str(photo), "output": str(target), "scores": scores,
                       "seconds": round(time.perf_counter() - t0, 4)})
        if not args.json:
            tqdm.write(str(target), file=sys.stdout)

    if args.json:
        summary = {
            "model": str(model_id),
            "styles": [str(s) for s in args.style],
            "style_blend": [w / sum(blend) for w in blend],
            "settings": settings,
            "inputs": [str(photo) for photo, _ in jobs],
            "outputs": written,
            "failed": failed,
            "images": images,
            "seconds": round(time.perf_counter() - start, 4),
        }
        print(json.dumps(summary, indent=2))
    if failed:
        print(f"cst: error: {len(failed)} of {len(jobs)} images failed", file=sys.stderr)
        return 1
    return 0


def presets_command(args: argparse.Namespace) -> int:
    """`presets`: one built-in style a line: name, then title, artist (year)."""
    found = presets.presets()
    width = max(len(name) for name in found)
    for name, preset in found.items():
        print(f"{name:<{width}}  {preset.title} — {preset.artist} ({preset.year})")
    return 0


def _sheet_target(photo: Path, output: str) -> Path:
    """Where `sheet` writes (an existing folder gets PHOTO's stem + _presets.jpg), checked before any work."""
    if not photo.exists():
        raise StyleTransferError(f"photo not found: {photo}")
    if photo.is_dir():
        raise StyleTransferError(f"sheet takes one photo, but {photo} is a folder")
    out = Path(output)
    if out.is_dir() or output.endswith(("/", os.sep)):
        out = out / f"{photo.stem}_presets.jpg"
    if out.resolve() == photo.resolve():
        raise StyleTransferError(f"refusing to overwrite the input {photo}: choose another -o")
    _check_output_name(out)
    _check_writable(out.parent)
    return out


def _sheet_captions(preset) -> tuple[str, str]:
    """(under the painting: title / artist, year; under the result: how to ask for it) - short enough for a tile."""
    title = textwrap.shorten(preset.title, width=30, placeholder="…")
    return f"{title}\n{preset.artist}, {preset.year}", f"--style {preset.name}"


def sheet_command(args: argparse.Namespace) -> int:
    """`sheet`: PHOTO in every built-in style, painting | result pairs in a grid, one picture written atomically."""
    try:
        from .eval import contact_sheet  # pulls in the evaluation's imports (scikit-image): only when needed
    except ImportError as err:
        raise StyleTransferError(f"sheet needs the package {err.name}: pip install scikit-image") from None

    settings = _settings(args)
    target = _sheet_target(Path(args.photo), args.output)
    photo = load_image(args.photo, "photo")
    model, _ = _load_model(args, settings)
    settings["max_size"] = settings["max_size"] or SHEET_MAX_SIZE
    work = fit_within(photo, settings["max_size"])  # the result keeps this size: the sheet's tiles are small anyway
    tiles, captions = [], []
    for preset in tqdm(list(presets.presets().values()), desc="cst sheet", unit="style", file=sys.stderr,
                       disable=None):
        tiles += [load_image(preset.path, f"preset {preset.name}"), model.stylize(work, preset.name, **settings)]
        captions += _sheet_captions(preset)
    per_row = 2 * SHEET_PAIRS_PER_ROW
    while len(tiles) % per_row:  # a last row that is not full: blank tiles
        tiles.append(Image.new("RGB", (1, 1), "white"))
        captions.append("")
    rows = range(0, len(tiles), per_row)
    sheet = contact_sheet([tiles[i:i + per_row] for i in rows], [captions[i:i + per_row] for i in rows],
                          ["painting", "your photo"] * SHEET_PAIRS_PER_ROW)
    try:
        save_image_atomic(sheet, target)
    except OSError as err:
        raise StyleTransferError(f"cannot write {target}: {err.strerror or err}") from None
    print(target)
    return 0


def export_onnx_command(args: argparse.Namespace) -> int:
    """`export-onnx`: check the output and the model, build every graph in memory, then write them atomically."""
    from . import engines

    out = Path(args.output)
    if out.suffix != ".onnx" or out.is_dir() or args.output.endswith(("/", os.sep)):
        raise StyleTransferError(f"-o must name a .onnx file, got {args.output}")
    _check_writable(out.parent)
    model = frontend.load_model(args.model)
    try:
        written = engines.export_onnx(model, out, style=not args.no_style, int8=args.int8)
    except OSError as err:
        raise StyleTransferError(f"cannot write {out}: {err.strerror or err}") from None
    for path in written:
        print(path)
    return 0


def video_command(args: argparse.Namespace) -> int:
    """`video`: check everything cheap, load the model, encode the style once, stream the frames through."""
    from .video import check_output, probe, stylize_video

    settings = _settings(args)
    blend = _style_blend(args.style_blend, len(args.style))
    temporal = {"smoothing": check_number(args.smoothing, "--smoothing", low=0.0, high=1.0),
                "blend": check_number(args.blend, "--blend", low=0.0, high=0.95),
                "cut_threshold": check_number(args.cut_threshold, "--cut-threshold", low=0.0),
                "align": not args.no_align}
    clip = Path(args.clip)
    target = check_output(args.output, clip)
    _check_writable(target.parent)
    info = probe(clip)  # not a video, no frames, audio only: said before the model loads

    model, _ = _load_model(args, settings)
    style = model.resolve_style(args.style[0] if len(args.style) == 1 else list(zip(args.style, blend)))
    stylizer = model.prepare(style, strength=settings["strength"], content_weight=settings["content_weight"],
                             style_weight=settings["style_weight"], adversarial_weight=settings["adversarial_weight"],
                             preserve_color=settings["preserve_color"])
    bar = tqdm(total=info.frames, desc=clip.name, unit="frame", file=sys.stderr, disable=None)

    def progress(done: int, total: int | None) -> None:
        bar.update(done - bar.n)

    try:
        summary = stylize_video(model, clip, target, stylizer, max_size=settings["max_size"], progress=progress,
                                notice=lambda text: tqdm.write(f"cst: note: {text}", file=sys.stderr), **temporal)
    finally:
        bar.close()
    sound = f", sound ({summary['audio']}) copied" if summary["audio"] else ", no sound"
    print(f"{target}  ({summary['frames']} frames, {summary['size'][0]}x{summary['size'][1]}{sound})")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m cst`; returns the exit code (0 ok, 1 some images failed, 2 bad input)."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except StyleTransferError as err:
        print(f"cst: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cst: error: interrupted", file=sys.stderr)
        return 130
