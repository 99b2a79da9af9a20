"""Kill a tiny training run with SIGKILL at random moments, resume it each time, and check it ends with exactly the
weights of an uninterrupted run. Prints what each kill hit; exits 1 if any check fails.

    python benchmarks/train_faults.py                     # 10 kills of a one-process run (a few minutes)
    python benchmarks/train_faults.py --processes 2       # the same for `torchrun --nproc_per_node 2` (gloo, CPU)
    python benchmarks/train_faults.py --kills 3 --seed 1

A kill lands at one of three kinds of moment, drawn at random (seeded):
- start: a random delay after launch (imports, model building, resuming);
- step: right after a random number of new training steps has been logged, plus a random fraction of a step;
- save: while Accelerate writes a checkpoint (as soon as checkpoints/.tmp-step-N appears, i.e. inside the save).
After each kill: every checkpoints/step-N is complete (it has every file of a finished save), a half-written
.tmp-step-N is never the one `--resume-from-checkpoint latest` takes, and the newest checkpoint loads (its EMA
generator is exported with train/export.py and every pickle in it loads as tensors only). The run is then resumed
(`--resume-from-checkpoint latest`) and killed again; after the last kill it runs to the end, and its final EMA
generator and its loss history must equal the uninterrupted run's exactly (CPU training here is deterministic).

tests/test_train.py runs a short version of this (three kills, and one of the two-process run).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUN = REPO / "train" / "run.py"
POLL_S = 0.002  # how often the output folder is looked at while waiting for the moment to kill
STEP_LINE = re.compile(rb" INFO step \d+ ")  # train/run.py logs each step so: "... INFO step 3 joint g_loss=..."
STEP_FRACTION_S = 0.5  # a "step" kill waits a random fraction of this after the step is logged (a step: ~0.3-1.5 s)


def tiny_data(root: Path) -> Path:
    """Six smooth 'photos' and four striped 'artworks' under root/content and root/style (made here, offline)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:80, 0:96] / 96.0
    (root / "content").mkdir(parents=True, exist_ok=True)
    (root / "style").mkdir(exist_ok=True)
    for i in range(6):
        arr = np.stack([np.sin(xx * (i + 2)), np.cos(yy * (i + 3)), xx * yy], axis=2) * 0.5 + 0.5
        Image.fromarray((arr * 255).astype(np.uint8)).save(root / "content" / f"p{i}.png")
    for i in range(4):
        stripes = ((xx * (4 + 3 * i) + yy * i) % 1.0 > 0.5)[..., None] * rng.uniform(0, 1, 3) + rng.uniform(0, .3, 3)
        Image.fromarray((np.clip(stripes, 0, 1) * 255).astype(np.uint8)).save(root / "style" / f"s{i}.jpg")
    return root


def tiny_args(data: Path, out: Path, max_steps: int, checkpoint_every: int = 2) -> list[str]:
    """The tiny run of tests/test_train.py: a light generator at 64 px, batch 2, checkpoints every 2 steps."""
    return ["--content-dir", str(data / "content"), "--style-dir", str(data / "style"), "--output-dir", str(out),
            "--image-size", "64", "--batch-size", "2", "--pretrain-generator-steps", "2",
            "--pretrain-discriminator-steps", "1", "--decoder-channels", "16", "16", "8", "--light-widths", "8", "16",
            "--light-blocks", "1", "--style-size", "32", "--discriminator-base-channels", "8", "--log-every", "1",
            "--sample-every", "3", "--checkpoint-every", str(checkpoint_every), "--checkpoints-total-limit", "2",
            "--num-workers", "0", "--max-steps", str(max_steps)]


def command(args: list[str], processes: int = 1, port: int | None = None) -> list[str]:
    """`python train/run.py ARGS` (one process) or `torchrun --nproc_per_node N train/run.py ARGS`."""
    if processes == 1:
        return [sys.executable, str(RUN), *args]
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes), "--master_port",
            str(port or free_port()), str(RUN), *args]


def environment() -> dict[str, str]:
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("HF_TOKEN", None)
    return env


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- looking at a run's output folder -------------------------------------------------------------------------------
def checkpoints(out: Path) -> list[Path]:
    from train.run import checkpoint_steps

    return checkpoint_steps(out / "checkpoints")


def partial_checkpoints(out: Path) -> list[Path]:
    return sorted((out / "checkpoints").glob(".tmp-step-*")) if (out / "checkpoints").is_dir() else []


def new_partials(out: Path, before: set[tuple[str, int]]) -> list[Path]:
    """The .tmp-step-N folders started since `before` (name, ctime) was taken: a killed save's leftover stays until
    a later save of the same step clears it, and must not count as this launch's."""
    found = []
    for path in partial_checkpoints(out):
        with contextlib.suppress(FileNotFoundError):
            if (path.name, path.stat().st_ctime_ns) not in before:
                found.append(path)
    return found


def partial_ids(out: Path) -> set[tuple[str, int]]:
    ids = set()
    for path in partial_checkpoints(out):
        with contextlib.suppress(FileNotFoundError):
            ids.add((path.name, path.stat().st_ctime_ns))
    return ids


def steps_logged(log: Path, offset: int) -> int:
    """Training steps this launch has logged: the "step N" lines of its log after `offset` (the size of the log when
    it was launched; the runs of one output folder share the log)."""
    with open(log, "rb") as f:
        f.seek(offset)
        return len(STEP_LINE.findall(f.read()))


def latest_step(out: Path) -> int:
    found = checkpoints(out)
    return int(found[-1].name.split("-")[1]) if found else 0


def check_checkpoints(out: Path, complete_files: set[str], scratch: Path) -> str | None:
    """Every step-N holds every file of a finished save, and the newest loads; returns what it found wrong."""
    from train.export import export
    from train.run import check_tensors_only

    for ckpt in checkpoints(out):
        names = {p.name for p in ckpt.iterdir()}
        if names != complete_files:
            return f"{ckpt.name} is incomplete: {sorted(complete_files - names)} missing"
    found = checkpoints(out)
    if found:
        try:
            check_tensors_only(found[-1])  # every pickle in it loads, as tensors
            export(found[-1], scratch / f"export-{found[-1].name}")  # the EMA generator, through train/export.py
        except (SystemExit, Exception) as err:  # noqa: BLE001 - reported as a failed check
            return f"{found[-1].name} does not load: {err}"
    return None


def final_state(out: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(out / "final" / "model.safetensors"))


def history(out: Path) -> dict[int, dict]:
    rows = [json.loads(line) for line in (out / "losses.jsonl").read_text().splitlines()]
    return {r["step"]: {k: v for k, v in r.items() if k != "images_per_s"} for r in rows}


# -- killing ------------------------------------------------------------------------------------------------------
@dataclass
class Kill:
    moment: str  # "start", "step" or "save"
    amount: float  # start: seconds after launch; step: new steps to wait for (+ a fraction); save: which save (1, 2)

    def __str__(self) -> str:
        return {"start": f"start+{self.amount:.1f}s",
                "step": f"{int(self.amount)} steps+{self.amount % 1 * STEP_FRACTION_S:.2f}s",
                "save": f"inside save #{int(self.amount)}"}[self.moment]


def draw_kills(count: int, rng: random.Random) -> list[Kill]:
    kinds = ["save", "step", "start", "save", "step"]  # saves twice as likely: the moment that matters most
    kills = []
    for _ in range(count):
        moment = rng.choice(kinds)
        amount = {"start": rng.uniform(0.5, 6.0), "step": rng.randint(1, 4) + rng.random(),
                  "save": rng.choice([1, 2])}[moment]
        kills.append(Kill(moment, amount))
    return kills


def process_table() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, state) of every process (Linux /proc)."""
    table = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # it just ended
            continue
        table[int(stat.parent.name)] = (int(fields[1]), fields[0])
    return table


def process_tree(root: int, table: dict[int, tuple[int, str]] | None = None) -> set[int]:
    """A process and all its descendants."""
    table = process_table() if table is None else table
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, (ppid, _) in table.items() if ppid == parent and pid not in tree]
        tree.update(children)
        frontier += children
    return tree


def kill_tree(root: int, known: set[int] = frozenset()) -> None:
    """SIGKILL a process and all its descendants at once, as a machine that dies would (torchrun starts its workers
    in sessions of their own, so its process group is not enough), and wait until none is left running. `known`:
    the tree as last seen, killed first (no time lost listing /proc at the moment that matters)."""
    tree = set(known) | {root}
    for pid in tree:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    tree |= process_tree(root)  # anything started since it was last seen
    for pid in tree:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    while True:
        table = process_table()
        if all(table.get(pid, (0, "Z"))[1] == "Z" for pid in tree):  # gone, or a zombie (holds nothing)
            return
        time.sleep(0.02)


def run_until_killed(cmd: list[str], env: dict, out: Path, kill: Kill, log: Path, timeout_s: float = 600) -> dict:
    """Start `cmd` and SIGKILL it with all its processes at the moment `kill` names; returns what the kill hit. A run
    that ends before its moment comes is reported as such."""
    seen_saves, hit, wait_until, stale = set(), None, None, partial_ids(out)
    offset = log.stat().st_size if log.exists() else 0
    with open(log, "ab") as sink:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=sink, stderr=subprocess.STDOUT)
    started, tree, tree_seen = time.monotonic(), {proc.pid}, 0.0
    while hit is None:
        if proc.poll() is not None:
            return {"kill": str(kill), "hit": f"nothing: the run ended first (exit {proc.returncode})",
                    "inside_save": False}
        now, steps = time.monotonic(), steps_logged(log, offset)
        if now - started > timeout_s:
            hit = "nothing: timed out"
        elif kill.moment == "start" and now - started >= kill.amount:
            hit = f"{now - started:.1f}s after launch, {steps} new steps"
        elif kill.moment == "step" and steps >= int(kill.amount):
            wait_until = wait_until or now + (kill.amount % 1) * STEP_FRACTION_S
            if now >= wait_until:
                hit = f"{steps} new steps logged"
        elif kill.moment == "save":
            partial = new_partials(out, stale)
            seen_saves.update(p.name for p in partial)
            if partial and len(seen_saves) >= int(kill.amount):
                hit = f"while writing {partial[-1].name[len('.tmp-'):]}"
        if hit is None:
            if now - tree_seen > 0.25:  # torchrun's workers, known before the moment comes
                tree, tree_seen = process_tree(proc.pid), now
            time.sleep(POLL_S)
    kill_tree(proc.pid, tree)
    proc.wait()
    return {"kill": str(kill), "hit": hit, "inside_save": bool(new_partials(out, stale))}


RESUMED = re.compile(rb"resumed from \S*step-(\d+) at step")


def kill_and_resume(cmd, env: dict, out: Path, kills: list[Kill], complete_files: set[str], scratch: Path,
                    log: Path) -> list[dict]:
    """Kill the run at each moment in turn (it resumes from `latest` each time), then let it finish. `cmd` is the
    command, or a function returning it (called for each launch: torchrun wants a fresh port). One record a kill:
    what it hit, the half-written checkpoint it left (if any), the latest complete checkpoint after it, what
    check_checkpoints found wrong (None), and the step the next launch resumed from (0: from scratch)."""
    records = []
    for kill in kills:
        offset = log.stat().st_size if log.exists() else 0
        record = run_until_killed(cmd() if callable(cmd) else cmd, env, out, kill, log)
        record.update(latest=latest_step(out), partial=[p.name for p in partial_checkpoints(out)],
                      problem=check_checkpoints(out, complete_files, scratch), log_offset=offset)
        records.append(record)
    offset = log.stat().st_size if log.exists() else 0
    with open(log, "ab") as sink:
        finished = subprocess.run(cmd() if callable(cmd) else cmd, cwd=REPO, env=env, stdout=sink,
                                  stderr=subprocess.STDOUT, timeout=900)
    if finished.returncode != 0:
        raise RuntimeError(f"the last resume failed (exit {finished.returncode}); see {log}")
    text = log.read_bytes()
    starts = [r["log_offset"] for r in records[1:]] + [offset]
    ends = starts[1:] + [len(text)]
    for record, begin, end in zip(records, starts, ends):
        found = RESUMED.search(text, begin, end)
        if found:
            record["next_resumed_at"] = int(found.group(1))
        else:  # from scratch, if it got as far as opening the data (it logs that after resuming); else unknown
            record["next_resumed_at"] = 0 if text.find(b" INFO data: ", begin, end) >= 0 else None
    return records


def same_weights(a: Path, b: Path) -> bool:
    import torch

    x, y = final_state(a), final_state(b)
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--processes", type=int, default=1, choices=(1, 2))
    parser.add_argument("--max-steps", type=int, default=20, help="long enough for every kill to land")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (printed)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    scratch = Path(tempfile.mkdtemp(prefix="cst-faults-"))
    data, env = tiny_data(scratch / "data"), environment()
    try:
        t0 = time.monotonic()
        reference = scratch / "reference"
        subprocess.run(command(tiny_args(data, reference, args.max_steps), args.processes), cwd=REPO, env=env,
                       check=True, capture_output=True, timeout=900)
        complete = {p.name for p in checkpoints(reference)[-1].iterdir()}
        print(f"uninterrupted run: {args.max_steps} steps, {args.processes} process(es), "
              f"{time.monotonic() - t0:.0f} s; a checkpoint holds {sorted(complete)}")
        out = scratch / "killed"
        def cmd() -> list[str]:  # a fresh port for each torchrun
            return command([*tiny_args(data, out, args.max_steps), "--resume-from-checkpoint", "latest"],
                           args.processes)

        kills = draw_kills(args.kills, random.Random(args.seed))
        t0 = time.monotonic()
        records = kill_and_resume(cmd, env, out, kills, complete, scratch, scratch / "killed.log")
        print(f"{'#':>2}  {'kill':<22} {'hit':<42} {'partial left':<13} {'latest':>6} {'resumed at':>10}  check")
        for i, r in enumerate(records, 1):
            print(f"{i:>2}  {r['kill']:<22} {r['hit']:<42} {','.join(r['partial']) or '-':<13} "
                  f"{'step-' + str(r['latest']) if r['latest'] else '-':>6} {str(r['next_resumed_at']):>10}  "
                  f"{r['problem'] or 'ok'}")
        weights_equal, history_equal = same_weights(out, reference), history(out) == history(reference)
        inside = sum(r["inside_save"] for r in records)
        problems = [r["problem"] for r in records if r["problem"]]
        problems += [f"kill {i}: resumed at {r['next_resumed_at']}, not at the latest complete step-{r['latest']}"
                     for i, r in enumerate(records, 1) if r["next_resumed_at"] not in (None, r["latest"])]
        print(f"{len(records)} kills ({inside} inside a checkpoint save) in {time.monotonic() - t0:.0f} s; final "
              f"EMA weights equal the uninterrupted run's: {weights_equal}; loss history equal: {history_equal}; "
              f"checkpoint problems: {len(problems)}")
        return 0 if weights_equal and history_equal and not problems else 1
    finally:
        if args.keep:
            print(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
