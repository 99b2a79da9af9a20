"""Image input/output: anything a user hands us becomes an RGB PIL image, or a one-line StyleTransferError.

Handles paths, bytes, PIL images and HxW / HxWx{1,3,4} arrays (uint8, uint16, float in [0, 1]); EXIF orientation;
RGBA/LA/P with transparency (composited on white), CMYK, 16-bit and float modes; a pixel limit checked from the header
before decoding (decompression bombs); truncated and empty files.
"""
from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Callable, Union

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import StyleTransferError

ImageLike = Union[str, os.PathLike, bytes, Image.Image, np.ndarray]

MAX_PIXELS = 64_000_000  # refuse to decode anything larger (about 8000 x 8000): memory, and decompression bombs
MIN_SIDE = 16  # the generator downsamples by 8; below this there is no picture left to stylise
PNG_COMPRESS_LEVEL = 1  # zlib level of the PNGs cst writes: a stylised photo's texture barely compresses, and level 1
#                         writes a 4096 px result in 2.0 s against 4.7 s at Pillow's default 6, for a file a tenth
#                         larger (`python benchmarks/tiles.py --sizes 4096`, its last line)
RGB_MODES = ("RGB", "RGBA", "RGBX", "RGBa", "P", "PA")  # modes whose colour profile (ICC) describes RGB
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")


def check_size(width: int, height: int, name: str) -> None:
    if width * height > MAX_PIXELS:
        raise StyleTransferError(
            f"{name} is too large: {width}x{height} px ({width * height / 1e6:.0f} MP, limit {MAX_PIXELS / 1e6:.0f} MP)")
    if min(width, height) < MIN_SIDE:
        raise StyleTransferError(f"{name} is too small: {width}x{height} px (at least {MIN_SIDE} px a side)")


def _array_to_pil(arr: np.ndarray, name: str) -> Image.Image:
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise StyleTransferError(f"{name} array must be HxW, HxWx3 or HxWx4, got shape {arr.shape}")
    if arr.dtype == np.uint8:
        pass
    elif arr.dtype == np.uint16:
        arr = (arr.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
    elif np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise StyleTransferError(f"{name} array has NaN or infinite values")
        arr = (np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    else:
        raise StyleTransferError(f"{name} array has dtype {arr.dtype}; use uint8, uint16 or float in [0, 1]")
    return Image.fromarray(np.ascontiguousarray(arr))


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode -> RGB, compositing transparency on white and scaling 16-bit/float greys to 8 bits. An RGB
    colour profile (info["icc_profile"]) is kept for the result; a CMYK or grey one, which would not fit, is not."""
    icc = img.info.get("icc_profile") if img.mode in RGB_MODES else None
    rgb = _convert_rgb(img)
    rgb.info.pop("icc_profile", None)
    if icc:
        rgb.info["icc_profile"] = icc
    return rgb


def _convert_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        img = Image.fromarray((np.clip(arr / hi, 0, 1) * 255 + 0.5).astype(np.uint8))
    elif img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        hi = 1.0 if arr.max() <= 1.0 else 255.0
        img = Image.fromarray((np.clip(arr / hi, 0, 1) * 255 + 0.5).astype(np.uint8))
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "RGBa", "La", "PA"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return img.convert("RGB")


def load_image(image: ImageLike, name: str = "image") -> Image.Image:
    """Open/convert `image` to an upright RGB PIL image, or raise StyleTransferError with a one-line reason."""
    if isinstance(image, np.ndarray):
        img = _array_to_pil(image, name)
        check_size(img.width, img.height, name)
        return _to_rgb(img)
    if isinstance(image, Image.Image):
        check_size(image.width, image.height, name)
        return _to_rgb(ImageOps.exif_transpose(image))
    if isinstance(image, (bytes, bytearray)):
        if not image:
            raise StyleTransferError(f"{name} is empty (0 bytes)")
        source, label = io.BytesIO(image), f"{name} (bytes)"
    elif isinstance(image, (str, os.PathLike)):
        path = Path(image)
        if not path.exists():
            raise StyleTransferError(f"{name} not found: {path}")
        if path.is_dir():
            raise StyleTransferError(f"{name} is a folder, not an image file: {path}")
        if path.stat().st_size == 0:  # a failed download or copy, typically: say so rather than "not an image"
            raise StyleTransferError(f"{name} {path.name} is empty (0 bytes)")
        source, label = path, f"{name} {path.name}"
    else:
        raise StyleTransferError(f"{name} must be a path, bytes, a PIL image or a numpy array, not {type(image).__name__}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as img:  # lazy: only the header is read here
                check_size(img.width, img.height, label)
                frames = getattr(img, "n_frames", 1)
                if frames > 1:  # refused rather than silently cut to its first frame
                    raise StyleTransferError(f"{label} has {frames} frames (animated or multi-page); cst stylises "
                                             f"single pictures: save the frame you want as its own file")
                img.load()
                img = ImageOps.exif_transpose(img)
                return _to_rgb(img)
    except StyleTransferError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        if isinstance(err, UnidentifiedImageError):
            raise StyleTransferError(f"{label} is not an image (or a format Pillow cannot read)") from None
        raise StyleTransferError(f"{label} is too large to decode safely") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise StyleTransferError(f"{label} could not be decoded ({str(err).splitlines()[0] or 'truncated file'})") from None


def pil_to_tensor(img: Image.Image) -> torch.Tensor:
    """RGB PIL -> (1, 3, H, W) float32 in [0, 1]."""
    arr = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0).contiguous()


def tensor_to_pil(x: torch.Tensor) -> Image.Image:
    """(1, 3, H, W) or (3, H, W) in [0, 1] -> RGB PIL (values clamped, rounded)."""
    if x.dim() == 4:
        assert x.shape[0] == 1, f"expected one image, got a batch of {x.shape[0]}"
        x = x[0]
    arr = (x.detach().float().clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(arr)


def fit_within(img: Image.Image, max_side: int | None) -> Image.Image:
    """Downscale (never upscale) so the longer side is at most `max_side`, but never the shorter below MIN_SIDE (a
    long strip keeps the rows the generator needs, and stays longer than `max_side`); None keeps the size."""
    if max_side is None or max(img.size) <= max_side:
        return img
    scale = max(max_side / max(img.size), min(1.0, MIN_SIDE / min(img.size)))
    if scale >= 1.0:
        return img
    size = (max(MIN_SIDE, round(img.width * scale)), max(MIN_SIDE, round(img.height * scale)))
    return img.resize(size, Image.LANCZOS)


def write_atomic(path: str | os.PathLike, write: Callable[[Path], object]) -> None:
    """`write(tmp)` to a temporary file beside `path`, then rename it over `path`: a failure or a kill never leaves a
    partial `path` (and a failure no temporary file either)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_image_atomic(img: Image.Image, path: str | os.PathLike) -> None:
    """Write to a temporary file beside `path`, then rename: a failure never leaves a partial output file."""
    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None or fmt not in Image.SAVE:
        raise StyleTransferError(f"cannot write an image in the format of {path.name}: use .png, .jpg, .webp, .bmp or .tif")
    path.parent.mkdir(parents=True, exist_ok=True)
    options = {"quality": 95} if fmt == "JPEG" else {"compress_level": PNG_COMPRESS_LEVEL} if fmt == "PNG" else {}
    if img.info.get("icc_profile") and fmt in ("JPEG", "PNG", "WEBP", "TIFF"):
        options["icc_profile"] = img.info["icc_profile"]  # the photo's colour space, kept (cst stylize)
    write_atomic(path, lambda tmp: img.save(tmp, format=fmt, **options))
