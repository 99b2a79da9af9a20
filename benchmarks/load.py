"""Load on the Space: the real app (`python app.py`, a real HTTP server in its own process) under concurrent
gradio_client clients, with bad uploads mixed in. Prints figures; exits 1 if a check fails.

    python benchmarks/load.py                              # 20 clients x 5 requests on the embedded default model
    python benchmarks/load.py --clients 4 --requests 3 --model tests-tiny   # a quick run on an untrained tiny model
    taskset -c 1 python benchmarks/load.py                 # the server (which inherits the affinity) on one core

What it does and checks:
1. mixed load: CLIENTS threads, each its own gradio_client Client (as separate visitors are), all starting at once,
   each sending REQUESTS requests: a photo of a random size among SIZES, or (one in BAD_SHARE) a bad upload (text
   named .jpg, truncated PNG, a 1x1 picture, a decompression bomb). Every good request must come back as a picture of
   its size (no failure at all), every bad one as an error message (not a crash, not a hang). Latency is the
   client's wall time per request (upload, queue, stylise, download): p50 and p95 of the good ones.
2. memory: the server's resident set (VmRSS) after a warm-up (one request a visitor), after the mixed load, and its
   peak (VmHWM); the growth across the load must stay under --max-growth-mb.
3. the bounded queue: one burst of more requests at once than the queue holds (--queue-size waiting, plus the ones
   running): the ones over capacity get gradio_client's QueueError ("Queue is full! Please try again."), not a
   timeout, and the others their pictures; meanwhile a request sent as plain HTTP (files uploaded beforehand) times
   the server's own answer: HTTP 503 "Queue is full", at once (milliseconds on an idle machine).
4. uploads: every uploaded file lands in Gradio's cache folder under the server's TMPDIR (nowhere else), and the
   files of this run are gone once the server has stopped (Gradio's delete_cache, see app.py); with --cache-age the
   periodic sweep is shown too.

tests/test_load.py runs a small version (4 clients x 3 requests, tiny pictures, a queue of 4).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import zlib
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SIZES = ((96, 64), (160, 120), (256, 192), (384, 288))  # (W, H) of the good photos: mixed, all under output_size
OUTPUT_SIZE = 512
BAD_SHARE = 0.2


# -- the server ---------------------------------------------------------------------------------------------------
@dataclass
class Space:
    """`python app.py` running: its URL, process, server log and the TMPDIR its Gradio cache lives under."""

    url: str
    process: subprocess.Popen
    log_path: Path
    tmp: Path

    @property
    def gradio_cache(self) -> Path:
        return self.tmp / "gradio"  # tempfile.gettempdir() / "gradio" in the server (GRADIO_TEMP_DIR unset)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_space(home: Path, env: dict[str, str | None] | None = None, startup_timeout_s: float = 300):
    """Start `python app.py` (offline, on a free port, with its own TMPDIR and an empty HF_HOME under `home`), wait
    until it serves, yield a Space; stop it at the end (stop_space) if it still runs. `env` is added to this
    process's environment; a None value removes that variable (e.g. {"CST_MODEL": None}: the Space's default)."""
    (home / "tmp").mkdir(parents=True, exist_ok=True)
    (home / "hf_home").mkdir(exist_ok=True)
    port = free_port()
    full_env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1",
                "HF_HUB_OFFLINE": "1", "HF_HOME": str(home / "hf_home"), "GRADIO_ANALYTICS_ENABLED": "False",
                "TMPDIR": str(home / "tmp"), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **(env or {})}
    full_env = {name: value for name, value in full_env.items() if value is not None}
    full_env.pop("GRADIO_TEMP_DIR", None)
    log_path = home / "server.log"
    with open(log_path, "wb") as log:  # SIGINT as Ctrl-C (a shell's background job would inherit it ignored)
        process = subprocess.Popen([sys.executable, "app.py"], cwd=REPO, env=full_env, stdout=log,
                                   stderr=subprocess.STDOUT, preexec_fn=lambda: signal.signal(signal.SIGINT,
                                                                                              signal.SIG_DFL))
    space = Space(f"http://127.0.0.1:{port}", process, log_path, home / "tmp")
    try:
        deadline = time.monotonic() + startup_timeout_s
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"app.py exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{space.url}/config", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"app.py did not serve within {startup_timeout_s} s:\n"
                                       f"{log_path.read_text()[-3000:]}") from None
                time.sleep(0.3)
        yield space
    finally:
        stop_space(space)


def stop_space(space: Space, timeout_s: float = 30) -> bool:
    """Ctrl-C (SIGINT): Gradio closes the server and deletes the files this app put in its cache. SIGKILL if it
    hangs; returns whether it stopped by itself."""
    if space.process.poll() is None:
        space.process.send_signal(signal.SIGINT)
        try:
            space.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            space.process.kill()
            space.process.wait()
            return False
    return True


def memory_mb(pid: int) -> dict[str, float]:
    """The resident set now (VmRSS) and its peak so far (VmHWM) of a process, in MB (Linux /proc)."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            values[line.split(":")[0]] = int(line.split()[1]) / 1024
    return {"rss": values["VmRSS"], "peak": values["VmHWM"]}


# -- what the visitors upload ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Upload:
    name: str  # what it is, for the report
    path: Path
    size: tuple[int, int] | None  # the picture's (W, H); None: a bad upload, must be answered with an error


def photo(width: int, height: int, seed: int):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    arr = np.stack([x / width, y / height, 1 - x / (2 * width)], axis=-1) * 180 + 30
    arr += rng.normal(0, 8, arr.shape)
    return Image.fromarray(arr.clip(0, 255).astype(np.uint8))


def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A few bytes of PNG that declare width x height pixels."""
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def make_uploads(folder: Path, sizes=SIZES, copies: int = 2) -> tuple[list[Upload], list[Upload], Path]:
    """(good photos, bad uploads, the style image). File names start with "load-" so the run's uploads can be told
    apart in the server's cache; `copies` distinct photos per size (distinct bytes: Gradio caches by content)."""
    import io

    folder.mkdir(parents=True, exist_ok=True)
    goods = []
    for w, h in sizes:
        for c in range(copies):
            path = folder / f"load-good-{w}x{h}-{c}.png"
            photo(w, h, seed=w * 10 + c).save(path)
            goods.append(Upload(f"{w}x{h}", path, (w, h)))
    bads = []
    (folder / "load-bad-text.jpg").write_text("not a picture\n" * 40)
    bads.append(Upload("text named .jpg", folder / "load-bad-text.jpg", None))
    buf = io.BytesIO()
    photo(96, 64, seed=1).save(buf, format="PNG")
    (folder / "load-bad-truncated.png").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    bads.append(Upload("truncated PNG", folder / "load-bad-truncated.png", None))
    photo(1, 1, seed=2).save(folder / "load-bad-1x1.png")
    bads.append(Upload("1x1 picture", folder / "load-bad-1x1.png", None))
    (folder / "load-bad-bomb.png").write_bytes(bomb_png())
    bads.append(Upload("decompression bomb", folder / "load-bad-bomb.png", None))
    style = folder / "load-style.png"
    photo(64, 64, seed=3).transpose(2).save(style)
    return goods, bads, style


# -- requests -----------------------------------------------------------------------------------------------------
@dataclass
class Result:
    upload: Upload
    seconds: float
    outcome: str  # "picture", "error" (an error message), "busy" (QueueError) or "failed" (anything else)
    detail: str = ""  # the picture's size, or the message

    @property
    def ok(self) -> bool:
        """A good upload gave its picture at its size; a bad one an error message; busy is judged separately."""
        if self.upload.size is None:
            return self.outcome == "error" and bool(self.detail) and "\n" not in self.detail
        return self.outcome == "picture" and self.detail == "x".join(map(str, self.upload.size))


def request(client, upload: Upload, style: Path, output_size: int = OUTPUT_SIZE, timeout_s: float = 900) -> Result:
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError
    from PIL import Image

    t0 = time.perf_counter()
    try:
        job = client.submit(content=handle_file(str(upload.path)), style=handle_file(str(style)),
                            output_size=output_size, api_name="/stylize")
        path, _scores = job.result(timeout=timeout_s)  # /stylize returns (picture, scores)
        with Image.open(path) as img:
            outcome, detail = "picture", f"{img.width}x{img.height}"
    except AppError as err:
        outcome, detail = "error", str(err)
    except Exception as err:  # noqa: BLE001 - what else a client can meet is the point of the measurement
        name = type(err).__name__
        outcome, detail = ("busy" if name == "QueueError" else "failed"), f"{name}: {err}"
    return Result(upload, time.perf_counter() - t0, outcome, detail)


def clients(url: str, count: int, downloads: Path | None = None) -> list:
    """`count` gradio_client Clients, one a visitor (each fetches the app's config once, here, not in the timing)."""
    from gradio_client import Client

    folder = str(downloads or tempfile.mkdtemp(prefix="cst-load-"))
    return [Client(url, verbose=False, download_files=folder) for _ in range(count)]


def together(handles: list, work) -> list[Result]:
    """Run work(client) -> list[Result] in one thread a client, all released at the same moment."""
    results: list[Result] = []
    lock, start = threading.Lock(), threading.Barrier(len(handles))

    def visitor(client):
        start.wait()
        done = work(client)
        with lock:
            results.extend(done)

    threads = [threading.Thread(target=visitor, args=(c,)) for c in handles]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def run_load(url: str, count: int, per_client: int, goods: list[Upload], bads: list[Upload], style: Path,
             seed: int = 0, bad_share: float = BAD_SHARE) -> list[Result]:
    """`count` visitors start together, each sending `per_client` requests one after another; one in `bad_share`
    (drawn at random, seeded) is a bad upload."""
    rng, handles = random.Random(seed), clients(url, count)
    plans = {id(c): [rng.choice(bads) if rng.random() < bad_share else rng.choice(goods) for _ in range(per_client)]
             for c in handles}
    return together(handles, lambda client: [request(client, upload, style) for upload in plans[id(client)]])


def burst(handles: list, upload: Upload, style: Path) -> list[Result]:
    """One request from each client, all sent at the same moment."""
    return together(handles, lambda client: [request(client, upload, style)])


def upload(url: str, path: Path) -> dict:
    """Upload a file as the page does; returns the FileData the API takes."""
    import httpx

    with open(path, "rb") as f:
        response = httpx.post(f"{url}/gradio_api/upload", files={"files": (path.name, f)}, timeout=60)
    response.raise_for_status()
    return {"path": response.json()[0], "meta": {"_type": "gradio.FileData"}}


def join_now(url: str, content: dict, style: dict) -> tuple[int, float, str]:
    """One /stylize request as plain HTTP with files already uploaded: (HTTP status, seconds to the answer, its text).
    What the server itself answers when the queue is full, without a client's uploads in the timing."""
    import json

    import httpx

    body = json.dumps({"data": [content, style, 1.0, 1.0, 1.0, 1.0, False, OUTPUT_SIZE, None, 0.5, None, False]})
    t0 = time.perf_counter()
    response = httpx.post(f"{url}/gradio_api/call/stylize", content=body, timeout=60,
                          headers={"content-type": "application/json"})
    return response.status_code, time.perf_counter() - t0, response.text[:200]


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(q / 100 * len(values) + 0.5) - 1))]  # nearest rank


@dataclass
class Summary:
    good: int
    good_failed: list[Result]
    bad: int
    bad_unanswered: list[Result]
    p50: float
    p95: float
    errors: dict[str, str] = field(default_factory=dict)  # bad upload -> the message it got


def summarize(results: list[Result]) -> Summary:
    goods = [r for r in results if r.upload.size is not None]
    bads = [r for r in results if r.upload.size is None]
    latencies = [r.seconds for r in goods if r.ok] or [float("nan")]
    return Summary(len(goods), [r for r in goods if not r.ok], len(bads), [r for r in bads if not r.ok],
                   percentile(latencies, 50), percentile(latencies, 95),
                   {r.upload.name: r.detail for r in bads if r.ok})


def cache_files(space: Space, prefix: str = "load-") -> list[Path]:
    """This run's uploads in the server's Gradio cache (Gradio keeps the uploaded file's name)."""
    return sorted(p for p in space.gradio_cache.rglob(f"{prefix}*") if p.is_file()) \
        if space.gradio_cache.exists() else []


EXAMPLES_FOLDER = "cst-space-examples"  # app_examples.py writes the examples' photos there at start-up


def files_outside_the_cache(space: Space) -> list[Path]:
    """Files the server wrote under its TMPDIR outside Gradio's cache folder (other than the examples' photos)."""
    keep = (space.gradio_cache, space.tmp / EXAMPLES_FOLDER)
    return sorted(p for p in space.tmp.rglob("*") if p.is_file() and not any(k in p.parents for k in keep))


# -- the benchmark ------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=5, help="per client")
    parser.add_argument("--model", default="default",
                        help="CST_MODEL for the server: 'default' (the embedded model), a folder, or 'tests-tiny' (an "
                             "untrained tiny model, for a quick run)")
    parser.add_argument("--queue-size", type=int, default=32, help="CST_QUEUE_SIZE for the server (app.py's default)")
    parser.add_argument("--cache-age", type=int, default=None,
                        help="CST_CACHE_MAX_AGE_S for the server (default: app.py's, an hour)")
    parser.add_argument("--max-growth-mb", type=float, default=50.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--clients-nice", type=int, default=10,
                        help="niceness of this process (the visitors) once the server runs: visitors are on other "
                             "machines; on the server's own cores they would take the CPU it needs to answer")
    args = parser.parse_args(argv)

    home = Path(tempfile.mkdtemp(prefix="cst-load-"))
    env = {"CST_QUEUE_SIZE": str(args.queue_size)}
    if args.cache_age:
        env["CST_CACHE_MAX_AGE_S"] = str(args.cache_age)
    if args.model == "tests-tiny":
        sys.path.insert(0, str(REPO))
        from cst import StyleTransferConfig, StyleTransferModel

        StyleTransferModel(StyleTransferConfig(architecture="vgg", decoder_channels=(8, 8, 8), condition_dim=8)) \
            .save_pretrained(home / "tiny")
        env["CST_MODEL"] = str(home / "tiny")
    elif args.model != "default":
        env["CST_MODEL"] = args.model
    goods, bads, style = make_uploads(home / "uploads")
    checks: list[tuple[str, bool]] = []
    t0 = time.monotonic()
    with running_space(home / "server", env) as space:
        os.nice(args.clients_nice)
        cpus = len(os.sched_getaffinity(space.process.pid))
        print(f"server: pid {space.process.pid}, {cpus} CPU(s) it may use, started in {time.monotonic() - t0:.0f} s; "
              f"model: {args.model}; queue: {args.queue_size} waiting; the visitors run at nice {os.nice(0)}")
        # warm-up: one request a visitor (every thread of the server's pool and every picture size used once)
        run_load(space.url, args.clients, 1, goods, bads, style, seed=args.seed + 1, bad_share=0)
        before = memory_mb(space.process.pid)
        t0 = time.monotonic()
        results = run_load(space.url, args.clients, args.requests, goods, bads, style, seed=args.seed)
        wall = time.monotonic() - t0
        after = memory_mb(space.process.pid)
        s = summarize(results)
        print(f"mixed load: {args.clients} clients x {args.requests} requests = {len(results)} in {wall:.0f} s "
              f"({len(results) / wall:.2f} requests/s); sizes {', '.join(f'{w}x{h}' for w, h in SIZES)} px")
        print(f"  good requests: {s.good}, failed: {len(s.good_failed)}; latency p50 {s.p50:.1f} s, "
              f"p95 {s.p95:.1f} s (client wall time: upload, queue, stylise, download)")
        print(f"  bad uploads: {s.bad}, answered with an error message: {s.bad - len(s.bad_unanswered)}")
        for name, message in sorted(s.errors.items()):
            print(f"    {name}: {message}")
        for r in s.good_failed + s.bad_unanswered:
            print(f"  NOT OK: {r.upload.name}: {r.outcome} {r.detail}")
        growth = after["rss"] - before["rss"]
        print(f"server memory: {before['rss']:.0f} MB after warm-up, {after['rss']:.0f} MB after the load "
              f"({growth:+.0f} MB across {len(results)} requests), peak {after['peak']:.0f} MB")
        checks += [("no good request failed", not s.good_failed), ("every bad upload got an error message",
                                                                     not s.bad_unanswered),
                   (f"memory growth under {args.max_growth_mb:g} MB", growth < args.max_growth_mb)]

        over = args.queue_size + 16
        small = next(u for u in goods if u.size == SIZES[1])
        probe = upload(space.url, small.path), upload(space.url, style)
        visitors = clients(space.url, over)
        answers: list[Result] = []
        thread = threading.Thread(target=lambda: answers.extend(burst(visitors, small, style)))
        thread.start()
        status, seconds, text = 0, 0.0, ""
        while thread.is_alive() and status != 503:  # the server's own answer while the queue is full
            status, seconds, text = join_now(space.url, *probe)
            time.sleep(0.2)
        thread.join()
        busy = [r for r in answers if r.outcome == "busy"]
        served = [r for r in answers if r.ok]
        other = [r for r in answers if r.outcome != "busy" and not r.ok]
        print(f"burst of {over} at once (queue {args.queue_size}): {len(busy)} busy answers (gradio_client raises "
              f"{busy[0].detail if busy else '-'}; {max((r.seconds for r in busy), default=0):.1f} s at most, its "
              f"uploads included), {len(served)} pictures, {len(other)} other")
        for r in other:
            print(f"  other: {r.outcome} after {r.seconds:.1f} s: {r.detail}")
        print(f"  the server's answer to a request while the queue is full: HTTP {status} in {seconds * 1000:.0f} ms: "
              f"{text}")
        checks += [("over capacity gets a busy answer (the server: HTTP 503 within 5 s)", bool(busy) and status == 503
                    and seconds < 5),
                   ("every burst request got a picture or a busy answer", not other)]
        uploaded = cache_files(space)
        outside = files_outside_the_cache(space)
        print(f"uploads: {len(uploaded)} files of this run in Gradio's cache ({space.gradio_cache}); "
              f"{len(outside)} files elsewhere under the server's TMPDIR")
        checks.append(("uploads stay in Gradio's cache", bool(uploaded) and not outside))
        if args.cache_age:
            deadline = time.monotonic() + 3 * args.cache_age
            while cache_files(space) and time.monotonic() < deadline:
                time.sleep(1)
            print(f"after the sweep (files older than {args.cache_age} s): {len(cache_files(space))} left")
            checks.append(("the periodic sweep removes old uploads", not cache_files(space)))
        peak = memory_mb(space.process.pid)["peak"]
        t0 = time.monotonic()
        clean = stop_space(space, timeout_s=120)
    left = cache_files(space)
    print(f"after the server stopped ({'by itself, in' if clean else 'killed after'} {time.monotonic() - t0:.0f} s): "
          f"{len(left)} upload files left in its cache; peak RSS of the server {peak:.0f} MB")
    checks.append(("uploads removed when the server stops", clean and not left))
    for name, ok in checks:
        print(f"  [{'ok' if ok else 'FAILED'}] {name}")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
