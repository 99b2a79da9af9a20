"""Which VGG layer's AdaIN makes a VGG model's picture? Each layer's style statistics applied alone, and left out alone.

    python benchmarks/layers.py --model vgg_model                 # the earlier VGG default (README), 3 photos x 3 paintings
    python benchmarks/layers.py --model FOLDER -o docs/layers.jpg --photos astronaut --styles udnie starry-night

A VGG-architecture generator applies AdaIN at relu1_1 ... relu4_1 and its decoder reads relu4_1 plus the skips
(config `skip_layers`). For every (photo, painting) pair the script decodes:
  - "all": every layer stylised (what `stylize` does),
  - "only L": layer L stylised, the others left as the photo's own features,
  - "not L": every layer but L stylised.
It prints the mean absolute difference (0-255) of each from the photo itself reconstructed (no layer stylised), and,
with -o, writes a contact sheet. A layer whose "only L" moves the picture as much as "all" makes the picture on its
own; one whose "only L" stays near 0 is not used by the decoder.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing cst

from cst import StyleTransferModel, presets  # noqa: E402
from cst.eval import contact_sheet  # noqa: E402
from cst.imageio import fit_within, pil_to_tensor, save_image_atomic, tensor_to_pil  # noqa: E402
from cst.model import STYLE_LAYERS  # noqa: E402


def variants(model: StyleTransferModel, photo: torch.Tensor, style: str) -> dict[str, torch.Tensor]:
    """{name: picture (1, 3, H, W) in [0, 1]} for the photo reconstructed, all layers, only L and not L."""
    x = model.pad_to_multiple(photo)
    feats = model.encode_content(x)
    fused = model.fuse(feats, model.style_stats(style))
    weights = torch.ones(1, 3)
    chosen = {"photo (none)": feats, "all": fused}
    for layer in STYLE_LAYERS:
        chosen[f"only {layer}"] = {**feats, layer: fused[layer]}
    for layer in STYLE_LAYERS:
        chosen[f"not {layer}"] = {**fused, layer: feats[layer]}
    h, w = photo.shape[2:]
    with torch.no_grad():
        return {name: model.decoder(f, weights)[:, :, :h, :w].clamp(0, 1) for name, f in chosen.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="a VGG-architecture model folder (the earlier default: README)")
    p.add_argument("--photos", nargs="+", default=["astronaut", "chelsea", "coffee"], help="scikit-image samples")
    p.add_argument("--styles", nargs="+", default=["udnie", "starry-night", "great-wave"], help="built-in paintings")
    p.add_argument("--size", type=int, default=320, help="long side of the photos (px)")
    p.add_argument("-o", "--output", type=Path, help="write a contact sheet (photo, painting, each variant)")
    p.add_argument("--show", nargs="+", metavar="VARIANT",
                   help='the sheet\'s variant columns (default all of them), e.g. --show all "only relu1_1" "not relu1_1"')
    args = p.parse_args(argv)
    from skimage import data

    model = StyleTransferModel.from_pretrained(args.model).eval()
    if model.is_light:
        p.error("--model must be a VGG-architecture model (the light generator has no VGG layers to ablate)")
    print(f"model {args.model}: skips from {list(model.decoder.skips.values()) or 'none'}")
    totals: dict[str, list[float]] = {}
    rows, captions, header = [], [], None
    for photo_name in args.photos:
        photo = fit_within(Image.fromarray(getattr(data, photo_name)()).convert("RGB"), args.size)
        x = pil_to_tensor(photo)
        for style in args.styles:
            pictures = variants(model, x, style)
            base = pictures["photo (none)"]
            diffs = {k: float((v - base).abs().mean()) * 255 for k, v in pictures.items() if k != "photo (none)"}
            for k, d in diffs.items():
                totals.setdefault(k, []).append(d)
            shown = args.show or list(pictures)
            unknown = sorted(set(shown) - set(pictures))
            if unknown:
                p.error(f"--show: unknown variants {unknown}; choose among {list(pictures)}")
            header = ["photo", "painting", *shown]
            rows.append([photo, Image.open(presets.get(style).path).convert("RGB"),
                         *(tensor_to_pil(pictures[k]) for k in shown)])
            captions.append([photo_name, style, *(f"{diffs[k]:.1f}/255" if k in diffs else "" for k in shown)])
    print(f"mean |picture - photo reconstructed| over {len(rows)} pairs (0-255):")
    for name, values in totals.items():
        print(f"  {name:<14} {np.mean(values):5.1f}")
    if args.output:
        save_image_atomic(contact_sheet(rows, captions, header), args.output)
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
