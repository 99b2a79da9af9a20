"""ONNX export (cst/engines.py, `python -m cst export-onnx`): onnxruntime gives torch's pictures, and bad input is one
line with nothing written.

Models here are untrained (random weights are enough to prove that the graphs compute what torch computes); the
conditioner's last layer is randomised so that the style vector and the sliders really move the output.
"""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from cst import StyleTransferConfig, StyleTransferModel, cli, engines
from cst.imageio import pil_to_tensor
from cst.light import style_vector
from cst.model import STYLE_LAYERS

ROOT = Path(__file__).resolve().parents[1]
SMALL_LIGHT = dict(light_widths=(8, 16), light_blocks=1, style_embedding_dim=32, style_size=64)


def _light(**config) -> StyleTransferModel:
    torch.manual_seed(0)
    model = StyleTransferModel(StyleTransferConfig(**config)).eval()
    with torch.no_grad():
        torch.nn.init.normal_(model.conditioner.head[-1].weight, std=0.05)
        torch.nn.init.normal_(model.conditioner.head[-1].bias, std=0.05)
    return model


@pytest.fixture(scope="module")
def light_model() -> StyleTransferModel:
    return _light()  # the default light architecture, untrained


@pytest.fixture(scope="module")
def light_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("light_model")
    _light(**SMALL_LIGHT).save_pretrained(path)
    return path


def _session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _inputs(make_image, model: StyleTransferModel, width: int, height: int):
    """A photo, a style image at the model's style size, and its stats/vector as torch computes them."""
    from cst.imageio import pil_to_tensor

    photo = pil_to_tensor(make_image(width, height, seed=1))
    style_image = pil_to_tensor(make_image(model.config.style_size, model.config.style_size * 3 // 4, seed=2))
    stats = model.encode_style(style_image)
    return photo, style_image, stats, style_vector(stats, STYLE_LAYERS)


def _compare(model, paths, make_image, size=(70, 53), weights=(0.5, 2.0, 1.0), strength=0.8) -> float:
    """Run both exported graphs in onnxruntime and torch's stylize computation; returns the max abs difference."""
    photo, style_image, stats, vec = _inputs(make_image, model, *size)
    w = torch.tensor([weights])
    with torch.no_grad():
        expected = model(photo, stats, w, strength).clamp(0, 1)
    got_vec = _session(paths["style"]).run(None, {"style_image": style_image.numpy()})[0]
    np.testing.assert_allclose(got_vec, vec.numpy(), rtol=1e-4, atol=1e-4)  # log(std): float32 VGG rounding
    feeds = {"content": photo.numpy(), "style": got_vec, "weights": w.numpy(),
             "strength": np.array([strength], np.float32)}
    got = _session(paths["content"]).run(None, feeds)[0]
    assert got.shape == tuple(expected.shape)
    diff = float(np.abs(got - expected.numpy()).max())
    print(f"{model.config.architecture} {size}: onnxruntime vs torch max abs diff {diff:.2e}")
    return diff


def test_light_export_matches_torch_at_any_size(tmp_path, light_model, make_image):
    written = engines.export_onnx(light_model, tmp_path / "model.onnx")
    paths = engines.onnx_paths(tmp_path / "model.onnx")
    assert written == [paths["content"], paths["style"]]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "model.style.onnx"]  # no temporary files
    for size in [(70, 53), (128, 96)]:  # neither is the traced 64x64; 70x53 is not a multiple of 4 (padded inside)
        assert _compare(light_model, paths, make_image, size) < 1e-3
    meta = {p.key: p.value for p in onnx.load(str(paths["content"])).metadata_props}
    assert meta["cst.architecture"] == "light" and meta["cst.style_size"] == str(light_model.config.style_size)


def test_vgg_export_matches_torch(tmp_path, make_model, make_image):
    model = make_model(architecture="vgg")
    engines.export_onnx(model, tmp_path / "vgg.onnx")
    assert _compare(model, engines.onnx_paths(tmp_path / "vgg.onnx"), make_image, (45, 37)) < 1e-3


def test_int8_export_runs_with_bounded_drift(tmp_path, light_model, make_image):
    paths = engines.onnx_paths(tmp_path / "model.onnx")
    written = engines.export_onnx(light_model, paths["content"], style=False, int8=True)
    assert written == [paths["content"], paths["int8"]]
    photo, _, stats, vec = _inputs(make_image, light_model, 96, 64)
    with torch.no_grad():
        expected = light_model(photo, stats, torch.ones(1, 3)).clamp(0, 1).numpy()
    feeds = {"content": photo.numpy(), "style": vec.numpy(), "weights": np.ones((1, 3), np.float32),
             "strength": np.ones(1, np.float32)}
    diff = np.abs(_session(paths["int8"]).run(None, feeds)[0] - expected)
    print(f"int8 vs torch fp32: max abs diff {diff.max():.3f}, mean {diff.mean():.4f}")
    assert diff.mean() < 0.05 and diff.max() < 0.5  # int8 drifts; it must not be garbage


def test_engines_match_torch_and_cache_per_model(light_model, make_image, monkeypatch):
    photo, style_image, stats, vec = _inputs(make_image, light_model, 50, 38)
    w = torch.tensor([[2.0, 0.5, 1.0]])
    engine = engines.best_engine(light_model)
    assert isinstance(engine, engines.OnnxEngine) and engines.best_engine(light_model) is engine  # built once
    with torch.no_grad():
        expected = light_model(photo, stats, w, 0.5).clamp(0, 1)
    assert (engine.run(photo, vec, w, 0.5) - expected).abs().max() < 1e-3
    assert (engines.TorchEngine(light_model).run(photo, vec, w, 0.5) - expected).abs().max() < 1e-5
    got_stats = engine.encode_style(style_image)
    for layer in STYLE_LAYERS:
        for got, want in zip(got_stats[layer], stats[layer]):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-3)
    monkeypatch.setenv("CST_ENGINE", "torch")
    assert isinstance(engines.best_engine(light_model), engines.TorchEngine)


@pytest.mark.parametrize("size", [(50, 38), (72, 96)])
def test_both_engines_take_a_thumbnails_statistics_and_use_them_for_a_tile(light_model, make_image, size):
    """Tiling's two calls (cst/tiling.py): the statistics of one picture (the whole photo's thumbnail), then another
    picture (a tile) normalised with them through the folded tile graph - in onnxruntime as in eager torch, at sizes
    the graphs were not traced at; inside the tile, the model normalised with those statistics."""
    thumb, _, stats, vec = _inputs(make_image, light_model, *size)
    tile = pil_to_tensor(make_image(132, 136, seed=9))
    w = torch.tensor([[2.0, 0.5, 1.0]])
    record: list = []
    with torch.no_grad():
        light_model.transformer(light_model.pad_to_multiple(thumb), light_model.condition(stats, w), record=record)
        expected = light_model(tile, stats, w, 0.5, norm_stats=record).clamp(0, 1)
        own = light_model(tile, stats, w, 0.5).clamp(0, 1)
        folded = engines.FoldedTileGraph(light_model, vec, w, engines.statistics_vector(record), 0.5)(tile)
    inner = (slice(None), slice(None), slice(60, -60), slice(60, -60))  # beyond the receptive field (about 50 px)
    assert (expected - own)[inner].abs().mean() > 1e-3  # the thumbnail's statistics are not the tile's own
    assert (folded - expected)[inner].abs().max() < 1e-4
    for engine in (engines.onnx_engine(light_model), engines.TorchEngine(light_model)):
        got = engine.statistics(thumb, vec, w)
        assert got.shape == (1, engines.statistics_dim(light_model))
        torch.testing.assert_close(got, engines.statistics_vector(record), rtol=1e-4, atol=1e-4)
        assert (engine.run(tile, vec, w, 0.5, statistics=got) - folded).abs().max() < 1e-3, engine.name


def test_onnx_engine_folds_each_pictures_statistics_once_and_keeps_the_last_few(make_image):
    """onnxruntime runs a picture's tiles through a graph with its statistics folded into the weights, built on the
    first tile and reused for the rest; a few are kept (pictures tiled at the same time), the oldest dropped."""
    model = _light(**SMALL_LIGHT)
    engine = engines.OnnxEngine(model, threads=1)
    _, _, stats, vec = _inputs(make_image, model, 32, 32)
    tiles = [pil_to_tensor(make_image(36, 28, seed=s)) for s in (3, 4)]
    w = torch.ones(1, 3)
    pictures = [engine.statistics(pil_to_tensor(make_image(48, 40, seed=s)), vec, w) for s in range(engines.FOLDED_KEPT + 1)]
    first = [engine.run(t, vec, w, statistics=pictures[0]) for t in tiles]
    session = next(iter(engine._folded.values()))
    assert len(engine._folded) == 1 and engine.run(tiles[1], vec, w, statistics=pictures[0]).equal(first[1])
    assert next(iter(engine._folded.values())) is session  # the second tile reused the first tile's graph
    for statistics in pictures[1:]:
        engine.run(tiles[0], vec, w, statistics=statistics)
    assert len(engine._folded) == engines.FOLDED_KEPT and session not in engine._folded.values()  # the oldest went
    want = engines.TorchEngine(model).run(tiles[0], vec, w, statistics=pictures[0])
    assert (engine.run(tiles[0], vec, w, statistics=pictures[0]) - want).abs().max() < 1e-3  # rebuilt
    assert not engine.run(tiles[0], vec, w, 0.5, statistics=pictures[0]).equal(want)  # strength is in the graph
    engine.forget_pictures()
    assert not engine._folded


def test_engine_cache_follows_weight_changes_and_keeps_the_training_mode(make_image):
    model = _light(**SMALL_LIGHT)
    photo, _, stats, vec = _inputs(make_image, model, 32, 32)
    model.train()
    first = engines.onnx_engine(model, threads=1)
    assert model.training and model.transformer.training  # exporting does not switch the model to eval for good
    model.eval()
    with torch.no_grad():
        model.transformer.to_rgb.bias.add_(0.2)  # an in-place update, as an optimiser step or load_state_dict does
        expected = model(photo, stats, torch.ones(1, 3)).clamp(0, 1)
    second = engines.onnx_engine(model, threads=1)
    assert second is not first and (second.run(photo, vec, torch.ones(1, 3)) - expected).abs().max() < 1e-3


# -- the command line ----------------------------------------------------------------------------------------------
def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("cst: error: ") and "Traceback" not in err, err
    return lines[0]


def test_cli_export_writes_the_graphs(tmp_path, light_dir, capsys):
    out = tmp_path / "out" / "light.onnx"
    assert cli.main(["export-onnx", str(light_dir), "-o", str(out)]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(out), str(out.with_name("light.style.onnx"))]
    assert sorted(p.name for p in out.parent.iterdir()) == ["light.onnx", "light.style.onnx"]
    assert [i.name for i in _session(out).get_inputs()] == list(engines.CONTENT_INPUTS)


@pytest.mark.parametrize("case", ["missing model folder", "output inside a file", "not .onnx", "output is a folder"])
def test_cli_export_errors_are_one_line_and_write_nothing(tmp_path, light_dir, case, capsys):
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "a_folder").mkdir()
    model, out = {"missing model folder": (str(tmp_path / "no_such_model"), "m.onnx"),
                  "output inside a file": (str(light_dir), "a_file/m.onnx"),
                  "not .onnx": (str(light_dir), "m.png"),
                  "output is a folder": (str(light_dir), "a_folder")}[case]
    before = sorted(tmp_path.rglob("*"))
    assert cli.main(["export-onnx", model, "-o", str(tmp_path / out)]) == 2
    line = _one_line(capsys)
    assert {"missing model folder": "no such model folder", "output inside a file": "is a file, not a folder",
            "not .onnx": "must name a .onnx file", "output is a folder": "must name a .onnx file"}[case] in line
    assert sorted(tmp_path.rglob("*")) == before


def test_cli_export_failure_midway_leaves_no_file(tmp_path, light_dir, capsys, monkeypatch):
    def fail(model):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(engines, "style_onnx", fail)  # after the content graph is built, before anything is written
    assert cli.main(["export-onnx", str(light_dir), "-o", str(tmp_path / "m.onnx")]) == 2
    assert "No space left on device" in _one_line(capsys)
    assert list(tmp_path.iterdir()) == []


def test_cli_export_error_as_a_subprocess_has_no_traceback(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "cst", "export-onnx", str(tmp_path / "nope"), "-o",
                           str(tmp_path / "m.onnx")], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and proc.stderr.strip().startswith(f"cst: error: {tmp_path / 'nope'}: no such model folder")
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert not (tmp_path / "m.onnx").exists()
