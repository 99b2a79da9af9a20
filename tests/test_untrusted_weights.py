"""Untrusted weights: pickle is never loaded; a model.safetensors with extra or oversized tensors is refused from its
header before anything large is allocated; CST_MODEL=org/name@revision pins that commit. (Checkpoints of a training
run that hold a pickle payload: tests/test_train.py. Broken model folders on every interface: test_bad_input.py.)
"""
from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import huggingface_hub
import numpy as np
import pytest
import torch
from PIL import Image

from cst import StyleTransferError, StyleTransferModel, cli, frontend
from hub_cache import build_hub_cache

ROOT = Path(__file__).resolve().parents[1]
REPO_ID = "cst-tests/pinned"
COMMIT_A, COMMIT_B = "a" * 40, "b" * 40  # two commits of one repo; main points at B


def one_line_error(call) -> str:
    with pytest.raises(StyleTransferError) as caught:
        call()
    message = str(caught.value)
    assert message and "\n" not in message
    return message


# -- pickle is never loaded ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["pytorch_model.bin", "model.pt", "model.ckpt"])
def test_a_pickle_beside_good_weights_is_never_opened(name, tmp_path, tiny_model_dir, malicious_pickle):
    folder = tmp_path / "model"
    folder.mkdir()
    for part in ("config.json", "model.safetensors"):
        (folder / part).write_bytes((tiny_model_dir / part).read_bytes())
    marker = malicious_pickle(folder / name, "decoder.to_rgb.1.weight")
    model = StyleTransferModel.from_pretrained(folder)  # loads the safetensors ...
    frontend.load_model(str(folder))  # ... the way the CLI and the Space do, too
    assert not marker.exists()  # ... and never unpickles the other file
    expected = StyleTransferModel.from_pretrained(tiny_model_dir).trainable_state_dict()
    assert all(torch.equal(v, expected[k]) for k, v in model.trainable_state_dict().items())
    with pytest.raises(StyleTransferError, match="never pickle"):  # asked for it by name, it is refused
        StyleTransferModel.from_pretrained(tiny_model_dir).load_weights(folder / name)
    assert not marker.exists()


# -- extra or oversized tensors: refused from the header ---------------------------------------------------------
def crafted_safetensors(path: Path, good: Path, extra: dict[str, tuple[str, list[int]]] = (),
                        replace: dict[str, tuple[str, list[int]]] = ()) -> Path:
    """A copy of the `good` safetensors file whose header adds tensors (`extra`) or gives some a new dtype and shape
    (`replace`), with the data section grown to match: a sparse file, so a "1 GB" tensor costs no disk."""
    raw = good.read_bytes()
    length = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + length])
    metadata = header.pop("__metadata__", None)
    data = raw[8 + length:]
    itemsize = {"F32": 4, "F16": 2, "I64": 8}
    entries, offset = {}, 0
    for name, entry in [*header.items(), *dict(extra).items()]:
        dtype, shape = dict(replace).get(name, (entry["dtype"], entry["shape"])) if isinstance(entry, dict) else entry
        size = int(np.prod(shape, dtype=np.int64)) * itemsize[dtype]
        entries[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps({**({"__metadata__": metadata} if metadata else {}), **entries}).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data[:offset])
        f.truncate(8 + len(text) + offset)  # the rest as a hole
    return path


def folder_with(weights: Path, tiny_model_dir: Path) -> Path:
    (weights.parent / "config.json").write_bytes((tiny_model_dir / "config.json").read_bytes())
    return weights.parent


@pytest.fixture
def crafted(tmp_path, tiny_model_dir):
    """name -> a model folder whose model.safetensors is crafted."""
    good = tiny_model_dir / "model.safetensors"
    kinds = {
        "extra 64 MB tensor": dict(extra={"decoder.extra.weight": ("F32", [4096, 4096])}),
        "oversized 1 GB tensor": dict(replace={"decoder.to_rgb.1.weight": ("F32", [3, 8, 3, 3, 1000, 10, 100])}),
        "integer tensor": dict(replace={"decoder.to_rgb.1.bias": ("I64", [3])}),
    }
    folders = {}
    for i, (name, change) in enumerate(kinds.items()):
        (tmp_path / str(i)).mkdir()
        folders[name] = folder_with(crafted_safetensors(tmp_path / str(i) / "model.safetensors", good, **change),
                                    tiny_model_dir)
    return folders


def test_crafted_headers_are_refused_with_one_line(crafted):
    assert "unexpected keys ['decoder.extra.weight']" in one_line_error(
        lambda: StyleTransferModel.from_pretrained(crafted["extra 64 MB tensor"]))
    assert "decoder.to_rgb.1.weight has shape (3, 8, 3, 3, 1000, 10, 100)" in one_line_error(
        lambda: StyleTransferModel.from_pretrained(crafted["oversized 1 GB tensor"]))
    assert "decoder.to_rgb.1.bias has dtype I64" in one_line_error(
        lambda: StyleTransferModel.from_pretrained(crafted["integer tensor"]))


def test_a_header_pointing_outside_the_file_is_refused(tmp_path, tiny_model_dir):
    weights = crafted_safetensors(tmp_path / "model.safetensors", tiny_model_dir / "model.safetensors")
    raw = weights.read_bytes()
    weights.write_bytes(raw[: len(raw) - 16])  # the last tensor's bytes cut short: its offsets lie past the end
    message = one_line_error(lambda: StyleTransferModel.from_pretrained(folder_with(weights, tiny_model_dir)))
    assert f"{weights} is not a readable safetensors file" in message
    weights.write_bytes(struct.pack("<Q", 10**15) + b"{}")  # a header "length" of a petabyte
    assert "not a readable safetensors file" in one_line_error(
        lambda: StyleTransferModel.from_pretrained(weights.parent))


RSS_PROBE = """
import json, sys
import safetensors.torch
from cst import StyleTransferError, StyleTransferModel

def reset_peak():  # Linux: the high-water mark of the resident set starts again from the current size
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")

def peak_mb():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024

def current_mb():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024

good, *crafted = sys.argv[1:]
StyleTransferModel.from_pretrained(good)  # warm up: the model is built once, VGG19 and all
errors, growth = [], {}
for folder in crafted:
    reset_peak()
    base = current_mb()
    try:
        StyleTransferModel.from_pretrained(folder)
    except StyleTransferError as err:
        errors.append(str(err))
    growth[folder] = peak_mb() - base
reset_peak()
base = current_mb()
# control: the extra tensor read into memory, as loading it into a model would (load_file maps the file lazily)
extra = safetensors.torch.load_file(crafted[0] + "/model.safetensors")["decoder.extra.weight"].clone()
print(json.dumps({"growth": growth, "control": peak_mb() - base, "errors": errors}))
"""


def test_refused_before_any_large_allocation(crafted, tiny_model_dir):
    """In a fresh process, the peak resident memory while each crafted folder is refused grows by (almost) nothing,
    while reading the extra tensor into memory (the control) grows it by its 64 MB: the measurement would see it."""
    folders = [str(crafted["extra 64 MB tensor"]), str(crafted["oversized 1 GB tensor"])]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", RSS_PROBE, str(tiny_model_dir), *folders], capture_output=True,
                          text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    peaks = json.loads(proc.stdout.splitlines()[-1])
    assert len(peaks["errors"]) == 2
    assert all(growth < 16 for growth in peaks["growth"].values()), peaks  # MB, a model's worth of VGG19 at most
    assert peaks["control"] > 60, peaks


# -- CST_MODEL=org/name@revision -------------------------------------------------------------------------------
@pytest.fixture
def two_commits(tmp_path, make_model, monkeypatch):
    """A Hub cache holding REPO_ID at COMMIT_A (model seed 1) and COMMIT_B (seed 2, what main points at), used
    offline by this process; returns (cache, {commit: model})."""
    models = {COMMIT_A: make_model(seed=1), COMMIT_B: make_model(seed=2)}
    cache = tmp_path / "hub"
    for commit, model in models.items():
        model.save_pretrained(tmp_path / commit)
        build_hub_cache(cache, REPO_ID, tmp_path / commit, commit=commit, main=commit == COMMIT_B)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache, models


def same_weights(a: StyleTransferModel, b: StyleTransferModel) -> bool:
    x, y = a.trainable_state_dict(), b.trainable_state_dict()
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def test_cst_model_at_a_revision_pins_that_commit(two_commits, monkeypatch, tmp_path, make_image, capsys):
    import app

    _, models = two_commits
    assert not same_weights(models[COMMIT_A], models[COMMIT_B])
    for spec, commit in ((f"{REPO_ID}@{COMMIT_A}", COMMIT_A), (REPO_ID, COMMIT_B), (f"{REPO_ID}@{COMMIT_B}", COMMIT_B)):
        monkeypatch.setenv("CST_MODEL", spec)
        assert same_weights(frontend.load_model(None), models[commit]), spec  # the Python front end
        loaded = app.load_model(os.environ["CST_MODEL"])  # the Space, as main() calls it
        assert loaded.name == spec and not loaded.fallback_notice and same_weights(loaded.model, models[commit])
    # the CLI, with CST_MODEL pinned to the commit main no longer points at
    monkeypatch.setenv("CST_MODEL", f"{REPO_ID}@{COMMIT_A}")
    photo, style, out = tmp_path / "photo.png", tmp_path / "style.png", tmp_path / "out.png"
    make_image(40, 24, seed=3).save(photo)
    make_image(24, 24, seed=4).save(style)
    assert cli.main(["stylize", str(photo), "--style", str(style), "-o", str(out)]) == 0
    expected = models[COMMIT_A].stylize(photo, style)
    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(expected))
    # a commit that is not in the cache is a one-line error, not the other commit
    message = one_line_error(lambda: frontend.load_model(f"{REPO_ID}@{'c' * 40}"))
    assert REPO_ID in message
