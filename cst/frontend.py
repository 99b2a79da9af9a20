"""What every front end (CLI, Space, evaluation, training data) shares: which model a spec names, slider values, image
listing and size limits. One place each, so the CLI, the app and `python -m cst.eval` answer the same input alike.

Model specs: None or "" (the embedded default, or $CST_MODEL), "default", a folder, "org/name" or "org/name@revision" on the Hugging Face Hub.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

from .errors import StyleTransferError
from .imageio import IMAGE_SUFFIXES, MIN_SIDE

# The embedded models (config.json + model.safetensors), shipped inside the package so that everything works offline
DEFAULT_MODEL = str(Path(__file__).resolve().parent / "default_model")  # the light real-time generator
MODEL_ALIASES = {"default": DEFAULT_MODEL}
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")  # weight files cst never loads (pickle)


def check_number(value, name: str, *, low: float | None = None, high: float | None = None,
                 exclusive_low: bool = False) -> float:
    """A finite float within bounds, else a one-line StyleTransferError."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise StyleTransferError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(x):
        raise StyleTransferError(f"{name} must be finite, got {value!r}")
    if low is not None and (x < low or (exclusive_low and x <= low)):
        raise StyleTransferError(f"{name} must be {'>' if exclusive_low else '>='} {low:g}, got {x:g}")
    if high is not None and x > high:
        raise StyleTransferError(f"{name} must be <= {high:g}, got {x:g}")
    return x


def check_sliders(strength, content_weight, style_weight, adversarial_weight,
                  names: tuple[str, str, str, str] = ("strength", "content_weight", "style_weight",
                                                      "adversarial_weight")) -> dict[str, float]:
    """The four sliders checked: strength in [0, 1], the loss weights α, β, λ > 0. `names` are what the user typed
    (the CLI's `--style-weight`, the API's `style_weight`), so the message names the right thing."""
    return {"strength": check_number(strength, names[0], low=0.0, high=1.0),
            "content_weight": check_number(content_weight, names[1], low=0.0, exclusive_low=True),
            "style_weight": check_number(style_weight, names[2], low=0.0, exclusive_low=True),
            "adversarial_weight": check_number(adversarial_weight, names[3], low=0.0, exclusive_low=True)}


def clamp_notice(settings: dict[str, float], weight_min: float, weight_max: float) -> str | None:
    """A one-line notice when a loss weight lies outside the trained range (it is clamped into it), else None."""
    out = [f"{k}={v:g}" for k, v in settings.items() if k != "strength" and not weight_min <= v <= weight_max]
    if not out:
        return None
    return f"{', '.join(out)} outside the trained range {weight_min:g}-{weight_max:g}: clamped into it"


def check_max_size(max_size, name: str = "max_size") -> int | None:
    """None (the model's default) or an integer long side of at least MIN_SIDE px."""
    if max_size is None:
        return None
    if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < MIN_SIDE:
        raise StyleTransferError(f"{name} must be an integer of at least {MIN_SIDE}, got {max_size!r}")
    return max_size


def chosen_style(style, preset: str | None):
    """The style a page's inputs pick: a built-in style's name (`preset`, which wins over the style image; only
    names, so a preset never reads a file the caller names), else the style image; a one-line StyleTransferError for
    an unknown name or no style at all. The Space's picture, video and webcam endpoints share it."""
    from . import presets

    if preset and presets.get(preset) is None:
        raise StyleTransferError(f"{preset!r} is not a built-in style; pick one of: {', '.join(presets.presets())}")
    first = presets.get(preset).name if preset else style
    if first is None:
        raise StyleTransferError("Pick a built-in style or add a style image first.")
    return first


def style_blend(first, style2, share):
    """`first` alone, or blended with an optional second style that takes `share` of it: what `stylize` and
    `prepare` take as their style."""
    return [(first, 1.0 - share), (style2, share)] if style2 is not None else first


def resolve_model_spec(spec: str | os.PathLike | None) -> tuple[str, str | None]:
    """spec -> (folder or repo id, revision or None). A spec that looks like a path but is not a folder is a
    one-line "no such folder" error, not a Hub id complaint."""
    spec = str(spec) if spec not in (None, "") else os.environ.get("CST_MODEL") or DEFAULT_MODEL
    if spec in MODEL_ALIASES:
        return MODEL_ALIASES[spec], None
    path = Path(spec).expanduser()
    if path.is_dir():
        return str(path), None
    looks_local = path.is_absolute() or spec.startswith((".", "~")) or spec.count("/") != 1 or path.exists()
    if looks_local:
        what = "is a file, not a model folder" if path.exists() else "no such model folder"
        raise StyleTransferError(f"{spec}: {what} (a model is a folder with config.json and model.safetensors, "
                                 f"or a Hub id org/name[@revision])")
    repo_id, _, revision = spec.partition("@")
    return repo_id, revision or None


def load_model(spec: str | os.PathLike | None = None):
    """The model a spec names (see the module docstring), loaded strictly; errors are one line."""
    from huggingface_hub.utils import logging as hub_logging

    from .model import StyleTransferModel

    hub_logging.set_verbosity_error()  # the Hub's "config.json not found" warnings would break the one-line errors
    name, revision = resolve_model_spec(spec)
    return StyleTransferModel.from_pretrained(name, revision=revision)


def list_images(folder: str | os.PathLike, name: str = "image", recursive: bool = False) -> list[Path]:
    """Sorted image files (IMAGE_SUFFIXES) in `folder` (or under it, recursively); a missing folder, a file, or a
    folder without images is a one-line error."""
    folder = Path(folder)
    if not folder.exists():
        raise StyleTransferError(f"{name} folder not found: {folder}")
    if not folder.is_dir():
        raise StyleTransferError(f"{name} folder is not a folder: {folder}")
    found = folder.rglob("*") if recursive else folder.iterdir()
    files = sorted(p for p in found if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise StyleTransferError(f"no images ({' '.join(IMAGE_SUFFIXES)}) in {name} folder {folder}")
    return files
