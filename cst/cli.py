"""Command line: `python -m cst stylize CONTENT --style STYLE -o OUT [sliders]`, and
`python -m cst export-onnx [MODEL] -o model.onnx [--int8] [--no-style]` (see cst/engines.py for the graphs).

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
import time
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from . import DEFAULT_MODEL, frontend
from .errors import StyleTransferError
from .frontend import check_number
from .imageio import IMAGE_SUFFIXES, save_image_atomic



def _prog() -> str:
    """How the user invoked us, for usage lines: `python -m cst`, or the `cst` console script."""
    return "python -m cst" if Path(sys.argv[0]).name == "__main__.py" else "cst"


class _Parser(argparse.ArgumentParser):
    """argparse with our one-line error format (argparse's own prints the whole usage first)."""

    def error(self, message: str):
        self.exit(2, f"cst: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """The `python -m cst` argument parser: sub-commands `stylize` and `export-onnx`."""
    parser = _Parser(prog=_prog(), description="cst: content-preserving style transfer.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    p = commands.add_parser(
        "stylize", help="repaint photos in the style of one or more artworks",
        description="Repaint CONTENT (a photo, or every image in a folder) in the style of --style. "
                    "The style is encoded once and reused for every photo.")
    p.add_argument("content", metavar="CONTENT",
                   help="a photo, or a folder: every image directly inside it is stylised (not recursive)")
    p.add_argument("--style", action="append", required=True, metavar="STYLE",
                   help="style image; repeat to blend several styles")
    p.add_argument("--style-blend", metavar="W1,W2,...",
                   help="one weight per --style, comma-separated, normalised to sum 1 (default: equal weights)")
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="output image (format from the extension: .png, .jpg, .webp, ...); an existing folder or "
                        "a path ending in '/' gets CONTENT's file name; for a folder CONTENT, the output folder")
    p.add_argument("--strength", type=float, default=1.0, metavar="S",
                   help="how far the photo's feature statistics move to the style's: 0 = none, 1 = fully (default 1)")
    p.add_argument("--content-weight", type=float, default=1.0, metavar="A",
                   help="α, keep the photo's structure: > 0, trained range 0.1-10 (default 1)")
    p.add_argument("--style-weight", type=float, default=1.0, metavar="B",
                   help="β, take the style's texture and colour: > 0, trained range 0.1-10 (default 1)")
    p.add_argument("--adversarial-weight", type=float, default=1.0, metavar="L",
                   help="λ, look like real brushwork (the discriminator's term): > 0, trained range 0.1-10 "
                        "(default 1)")
    p.add_argument("--preserve-color", action="store_true", help="keep the photo's colours, take only the style's "
                                                                  "luminance texture")
    p.add_argument("--max-size", type=int, default=None, metavar="N",
                   help="long side in px of the working resolution (default: the model's, 1024); the output always "
                        "has the photo's size")
    p.add_argument("--model", default=None, metavar="ID_OR_DIR",
                   help="model folder or Hub repo id (default: $CST_MODEL, else the model bundled with cst)")
    p.add_argument("--json", action="store_true",
                   help="print a JSON summary (inputs, outputs, failures, settings, seconds) on stdout")
    p.set_defaults(run=stylize_command)
    _add_export_parser(commands)
    return parser


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


def stylize_command(args: argparse.Namespace) -> int:
    """`stylize`: validate everything, load the model, encode the style once, stylise each photo."""
    start = time.perf_counter()
    sliders = frontend.check_sliders(args.strength, args.content_weight, args.style_weight, args.adversarial_weight,
                                     ("--strength", "--content-weight", "--style-weight", "--adversarial-weight"))
    settings = {**sliders, "preserve_color": bool(args.preserve_color),
                "max_size": frontend.check_max_size(args.max_size, "--max-size")}
    blend = _style_blend(args.style_blend, len(args.style))
    jobs, is_folder = _plan(Path(args.content), args.output)

    # Heavy work starts here, after every cheap check has passed.
    model_id = args.model or os.environ.get("CST_MODEL") or DEFAULT_MODEL
    model = frontend.load_model(model_id)
    notice = frontend.clamp_notice(sliders, model.config.weight_min, model.config.weight_max)
    if notice:
        print(f"cst: note: {notice}", file=sys.stderr)
    if settings["max_size"] is None:
        settings["max_size"] = model.config.max_size
    # The style is encoded once and reused for every photo; several styles are blended by `stylize` itself.
    style = model.resolve_style(args.style[0] if len(args.style) == 1 else list(zip(args.style, blend)))

    written, failed, images = [], [], []
    for photo, target in tqdm(jobs, desc="cst", unit="image", file=sys.stderr, disable=None if is_folder else True):
        t0 = time.perf_counter()
        try:
            picture = model.stylize(photo, style, strength=settings["strength"],
                                    content_weight=settings["content_weight"], style_weight=settings["style_weight"],
                                    adversarial_weight=settings["adversarial_weight"],
                                    preserve_color=settings["preserve_color"], max_size=settings["max_size"])
            try:
                save_image_atomic(picture, target)
            except OSError as err:
                raise StyleTransferError(f"cannot write {target}: {err.strerror or err}") from None
        except StyleTransferError as err:
            if not is_folder:
                raise
            failed.append({"input": str(photo), "error": str(err)})
            tqdm.write(f"cst: error: {err} (skipped)", file=sys.stderr)
            continue
        written.append(str(target))
        images.append({"input": str(photo), "output": str(target), "seconds": round(time.perf_counter() - t0, 4)})
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
