"""The bad-input corpus (issue #14): every kind of file a user could hand in, made here in milliseconds, offline.

Each `ImageKind` writes one file (or folder) and says what cst must answer: the picture it holds (`size`, upright, and
where the file is lossless the exact RGB picture it stands for, `source`) or a one-line refusal (`match`, a fragment
of the message). tests/test_bad_input.py runs every kind through the Python API, the CLI and the Space's API.
"""
from __future__ import annotations

import io
import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

# a 1-bit PNG declaring 10 gigapixels over a few bytes: cst must refuse it from the header
from benchmarks.load import bomb_png

W, H = 40, 24  # the base picture: landscape and asymmetric, so a wrong orientation shows in its size or pixels


def base_image(width: int = W, height: int = H, seed: int = 0) -> Image.Image:
    """Smooth gradient (JPEG keeps it) + a bright block at the top-left (orientation shows) + a little noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    arr = np.stack([x / width, y / height, 1 - x / (2 * width)], axis=-1) * 180 + 30
    arr[: height // 3, : width // 4] = (250, 40, 40)
    arr += rng.normal(0, 3, arr.shape)
    return Image.fromarray(arr.clip(0, 255).astype(np.uint8))


def encoded(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


# EXIF orientation k -> the transpose that makes the stored pixels of an upright picture (the inverse of what
# ImageOps.exif_transpose applies for k)
STORE_FOR_ORIENTATION = {1: None, 2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
                         4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_90,
                         7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_270}


@dataclass(frozen=True)
class ImageKind:
    name: str
    write: Callable[[Path], Path]  # writes the input under a folder, returns its path
    size: tuple[int, int] | None = None  # (W, H) of the upright picture; None: it must be refused
    match: str = ""  # refusals: a fragment of the one-line message
    source: Callable[[], Image.Image] | None = None  # the exact RGB picture a lossless file stands for

    @property
    def refused(self) -> bool:
        return self.size is None


def _bytes(name: str, data: bytes | Callable[[], bytes]) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        path = folder / name
        path.write_bytes(data() if callable(data) else data)
        return path
    return write


def _saved(name: str, make: Callable[[], Image.Image], **save_kwargs) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        path = folder / name
        make().save(path, **save_kwargs)
        return path
    return write


def _frames(name: str, **save_kwargs) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        path = folder / name
        first, second = base_image(seed=1), base_image(seed=2).transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        first.save(path, save_all=True, append_images=[second], **save_kwargs)
        return path
    return write


def _oriented(k: int) -> ImageKind:
    upright = base_image(seed=k)
    transpose = STORE_FOR_ORIENTATION[k]
    stored = upright if transpose is None else upright.transpose(transpose)
    exif = Image.Exif()
    exif[0x0112] = k
    return ImageKind(f"exif orientation {k}", _saved(f"orientation{k}.png", lambda: stored, exif=exif.tobytes()),
                     size=upright.size, source=lambda: upright)


def _folder(name: str) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        path = folder / name
        path.mkdir()
        base_image().save(path / "inside.png")  # a folder of images is still not *an* image
        return path
    return write


def _grey() -> Image.Image:
    return base_image().convert("L")


def _grey16() -> Image.Image:  # 16-bit grey whose values are the 8-bit grey's x 257: exactly that grey in 8 bits
    return Image.fromarray(np.asarray(_grey(), np.uint16) * 257)


def _palette() -> Image.Image:
    return base_image().quantize(64)


def _rgba() -> Image.Image:
    arr = np.asarray(base_image().convert("RGBA")).copy()
    arr[:, W // 2:, 3] = 0  # the right half transparent
    arr[H // 2:, : W // 2, 3] = 128  # a quarter half-transparent
    return Image.fromarray(arr)


def _on_white(img: Image.Image) -> Image.Image:
    return Image.alpha_composite(Image.new("RGBA", img.size, "white"), img).convert("RGB")


SVG = (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="40" height="24">'
       b'<rect width="40" height="24" fill="#c33"/></svg>\n')
FAKE_HEIC = struct.pack(">I", 24) + b"ftypheic" + b"\0\0\0\0mif1heic" + b"\0" * 200  # an ISO-BMFF HEIC start

IMAGE_KINDS: list[ImageKind] = [
    ImageKind("empty file", _bytes("empty.jpg", b""), match="is empty"),
    ImageKind("text named .jpg", _bytes("notes.jpg", b"this is not a picture\n" * 30), match="not an image"),
    ImageKind("truncated JPEG", _bytes("cut.jpg", lambda: encoded(base_image(), "JPEG", quality=90)[:300]),
              match="could not be decoded"),
    ImageKind("truncated PNG", _bytes("cut.png", lambda: encoded(base_image(), "PNG")[:400]),
              match="could not be decoded"),
    ImageKind("1x1 pixel", _saved("dot.png", lambda: Image.new("RGB", (1, 1), "red")), match="too small"),
    ImageKind("1x10000 pixels", _saved("line.png", lambda: Image.new("RGB", (1, 10_000), "red")), match="too small"),
    ImageKind("decompression bomb (10 gigapixels declared)", _bytes("bomb.png", bomb_png), match="too large"),
    # downscaled to the working size it would be 4 px high: too few rows for the network, so it keeps 16
    ImageKind("4100x16 strip", _saved("strip.png", lambda: base_image(4100, 16)), size=(4100, 16),
              source=lambda: base_image(4100, 16)),
    ImageKind("CMYK JPEG", _saved("cmyk.jpg", lambda: base_image().convert("CMYK"), quality=95), size=(W, H)),
    ImageKind("16-bit grey PNG", _saved("grey16.png", _grey16), size=(W, H), source=lambda: _grey().convert("RGB")),
    ImageKind("8-bit grey PNG", _saved("grey.png", _grey), size=(W, H), source=lambda: _grey().convert("RGB")),
    ImageKind("palette PNG", _saved("palette.png", _palette), size=(W, H), source=lambda: _palette().convert("RGB")),
    ImageKind("RGBA with transparency", _saved("rgba.png", _rgba), size=(W, H), source=lambda: _on_white(_rgba())),
    *[_oriented(k) for k in range(1, 9)],
    ImageKind("animated GIF", _frames("anim.gif", duration=100, loop=0), match="2 frames"),
    ImageKind("lossless WebP", _saved("photo.webp", base_image, lossless=True), size=(W, H), source=base_image),
    ImageKind("multi-page TIFF", _frames("pages.tiff"), match="2 frames"),
    ImageKind("PNG named .heic", _saved("photo.heic", base_image, format="PNG"), size=(W, H), source=base_image),
    ImageKind("HEIC (not supported)", _bytes("real.heic", FAKE_HEIC), match="not an image"),
    ImageKind("SVG", _bytes("drawing.svg", SVG), match="not an image"),
    ImageKind("path that does not exist", lambda folder: folder / "missing.png", match="not found"),
    ImageKind("folder instead of a file", _folder("a_folder.png"), match="folder"),
]
IMAGE_KIND_NAMES = [kind.name for kind in IMAGE_KINDS]
KINDS = {kind.name: kind for kind in IMAGE_KINDS}


@dataclass(frozen=True)
class SliderKind:
    """A bad (or extreme) setting: the Python API's keyword, its value, and the CLI flag that carries the same."""

    name: str
    keyword: str  # stylize()'s and the Space's API parameter
    value: object
    match: str | None  # a fragment of the refusal (which also names the setting); None: accepted, a picture

    @property
    def flag(self) -> str:
        return "--" + self.keyword.replace("_", "-")


SLIDER_KINDS: list[SliderKind] = [
    SliderKind("NaN strength", "strength", float("nan"), "must be finite"),
    SliderKind("+inf content weight", "content_weight", float("inf"), "must be finite"),
    SliderKind("-inf adversarial weight", "adversarial_weight", float("-inf"), "must be finite"),
    SliderKind("negative style weight", "style_weight", -1.0, "must be > 0"),
    SliderKind("huge strength", "strength", 1e300, "must be <= 1"),
    SliderKind("huge style weight (clamped)", "style_weight", 1e300, None),
    SliderKind("string content weight", "content_weight", "lots", "lots"),
]
SLIDER_KIND_NAMES = [kind.name for kind in SLIDER_KINDS]


def style_files(folder: Path, count: int) -> list[Path]:
    """`count` distinct small style images (a blend of many styles)."""
    paths = []
    for i in range(count):
        path = folder / f"style{i:02d}.png"
        rng = np.random.default_rng(100 + i)
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


@dataclass(frozen=True)
class OutputKind:
    """Where the CLI is told to write (-o), given its scratch folder and the input photo; `match`: the refusal, or
    None when the picture must be written there."""

    name: str
    target: Callable[[Path, Path], Path]
    match: str | None


def _symlinked_input(scratch: Path, photo: Path) -> Path:
    (scratch / "link").symlink_to(photo.parent, target_is_directory=True)
    return scratch / "link" / photo.name  # another spelling of the input


def _under_a_file(scratch: Path, photo: Path) -> Path:
    (scratch / "blocker").write_text("a file where a folder should be")
    return scratch / "blocker" / "out.png"


def _read_only_folder(scratch: Path, photo: Path) -> Path:
    (scratch / "locked").mkdir()
    (scratch / "locked").chmod(0o555)
    return scratch / "locked" / "out.png"


OUTPUT_KINDS: list[OutputKind] = [
    # decided: missing folders on the way to -o are created (as `mkdir -p` would), like the parents of a file
    OutputKind("inside missing folders", lambda scratch, photo: scratch / "new" / "deeper" / "out.png", None),
    OutputKind("the input itself", lambda scratch, photo: photo, "refusing to overwrite the input"),
    OutputKind("the input through a symlinked folder", _symlinked_input, "refusing to overwrite the input"),
    OutputKind("under a file", _under_a_file, "is a file, not a folder"),
    OutputKind("in /proc (unwritable even for root)", lambda scratch, photo: Path("/proc/cst-test/out.png"),
               "cannot write"),
    OutputKind("in a read-only folder", _read_only_folder, "no permission"),  # not for root: see the test
]


@dataclass(frozen=True)
class ModelKind:
    """A broken or hostile model folder: `write(folder, good_model_folder)` fills it; `pickle` names a malicious
    pickle (the tests' malicious_pickle fixture) to add; `match`: a fragment of the refusal."""

    name: str
    write: Callable[[Path, Path], None]
    match: str
    pickle: str | None = None


def _files(*names: str, config: dict | None = None, weights: Callable[[bytes], bytes] | None = None):
    def write(folder: Path, good: Path) -> None:
        for name in names:
            (folder / name).write_bytes((good / name).read_bytes())
        if config is not None:
            (folder / "config.json").write_text(json.dumps({**json.loads((good / "config.json").read_text()),
                                                            **config}))
        if weights is not None:
            (folder / "model.safetensors").write_bytes(weights((good / "model.safetensors").read_bytes()))
    return write


MODEL_KINDS: list[ModelKind] = [
    ModelKind("a pickle only", _files(), "pytorch_model.bin", pickle="pytorch_model.bin"),
    ModelKind("config.json and a pickle", _files("config.json"), "pytorch_model.bin", pickle="pytorch_model.bin"),
    ModelKind("corrupt model.safetensors", _files("config.json", weights=lambda data: b"\x07garbage" * 64),
              "not a readable safetensors file"),
    ModelKind("truncated model.safetensors", _files("config.json", weights=lambda data: data[: len(data) // 2]),
              "not a readable safetensors file"),
    ModelKind("config.json: a width as a string", _files("model.safetensors", config={"condition_dim": "8"}),
              "condition_dim must be an integer"),
    ModelKind("config.json: a list as a string", _files("model.safetensors", config={"decoder_channels": "abc"}),
              "decoder_channels must be a list"),
    ModelKind("config.json: a flag as a string", _files("model.safetensors", config={"skip_connections": "no"}),
              "skip_connections must be true or false"),
    ModelKind("config.json: a size of null", _files("model.safetensors", config={"max_size": None}),
              "max_size must be an integer"),
]
