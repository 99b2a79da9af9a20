"""`python -m cst stylize|presets|sheet ...` as a user runs it: outputs, the JSON summary, and bad input -> one line,
exit 2.

The success paths run as real subprocesses; the full matrix of bad inputs runs in-process through `cst.cli.main`
(same code, same exit codes, a fraction of the time), and a representative few again as subprocesses, which is
where a stray traceback would show.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import huggingface_hub
import numpy as np
import pytest
from PIL import Image

import cst.eval
import cst.imageio
from cst import StyleTransferModel, cli, presets

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m cst ARGS` in a fresh interpreter, offline, one thread, no CST_MODEL unless given."""
    full_env = {k: v for k, v in os.environ.items() if k != "CST_MODEL"}
    full_env.update({"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", **(env or {})})
    return subprocess.run([sys.executable, "-m", "cst", *map(str, args)], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=300)


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), np.int16)


def assert_one_line_error(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("cst: error: "), stderr
    return lines[0]


@pytest.fixture
def files(tmp_path, write_image):
    """A photo (odd size), two styles, and where the output should go."""
    return {
        "photo": write_image("photo.jpg", 53, 37, seed=1, quality=95),
        "style": write_image("style.png", 40, 40, seed=2),
        "style2": write_image("style2.png", 40, 40, seed=3),
        "out": tmp_path / "out" / "result.png",
    }


# -- success paths (subprocess) ------------------------------------------------------------------------------------
def test_single_image_with_sliders_and_json(tmp_path, files, tiny_model_dir):
    sliders = {"strength": 0.8, "content_weight": 0.5, "style_weight": 3.0, "adversarial_weight": 2.0}
    proc = run_cli("stylize", files["photo"], "--style", files["style"], "-o", files["out"], "--model", tiny_model_dir,
                   "--strength", 0.8, "--content-weight", 0.5, "--style-weight", 3, "--adversarial-weight", 2,
                   "--preserve-color", "--max-size", 32, "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["inputs"] == [str(files["photo"])] and summary["outputs"] == [str(files["out"])]
    assert summary["failed"] == [] and summary["seconds"] > 0
    assert summary["settings"] == {**sliders, "preserve_color": True, "max_size": 32, "full_resolution": False,
                                   "tile_size": None}
    assert summary["model"] == str(tiny_model_dir) and summary["styles"] == [str(files["style"])]
    # the file is the photo's size and exactly what the Python API gives for the same settings
    expected = StyleTransferModel.from_pretrained(tiny_model_dir).stylize(
        files["photo"], files["style"], preserve_color=True, max_size=32, **sliders)
    assert Image.open(files["out"]).size == (53, 37)
    assert np.array_equal(pixels(files["out"]), np.asarray(expected, np.int16))
    assert sorted(p.name for p in files["out"].parent.iterdir()) == ["result.png"]  # no temporary files left
    # each picture's scores, as the Python API gives them
    model = StyleTransferModel.from_pretrained(tiny_model_dir)
    [image] = summary["images"]
    assert image["scores"] == model.scores(files["photo"], expected, files["style"]).as_dict()
    assert set(image["scores"]) == {"content_kept", "style_taken"}
    assert all(0.0 <= v <= 100.0 for v in image["scores"].values()) and image["scores"]["content_kept"] < 100.0


def test_folder_of_images_with_cst_model_from_the_environment(tmp_path, write_image, files, tiny_model_dir):
    photos = tmp_path / "photos"
    write_image("photos/a.jpg", 40, 32, seed=4, quality=95)
    write_image("photos/b.PNG", 33, 47, seed=5)
    write_image("photos/nested/c.png", 32, 32, seed=6)  # not recursive: ignored
    (photos / "notes.txt").write_text("not an image, and not an image suffix: ignored")
    out_dir = tmp_path / "styled"
    proc = run_cli("stylize", photos, "--style", files["style"], "-o", out_dir, "--json", cwd=tmp_path,
                   env={"CST_MODEL": str(tiny_model_dir)})
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["model"] == str(tiny_model_dir)
    assert summary["inputs"] == [str(photos / "a.jpg"), str(photos / "b.PNG")]
    assert summary["outputs"] == [str(out_dir / "a.jpg"), str(out_dir / "b.PNG")]  # same names and extensions
    assert sorted(p.name for p in out_dir.iterdir()) == ["a.jpg", "b.PNG"]
    assert Image.open(out_dir / "a.jpg").format == "JPEG" and Image.open(out_dir / "b.PNG").size == (33, 47)
    assert [set(image["scores"]) for image in summary["images"]] == [{"content_kept", "style_taken"}] * 2


def test_folder_with_a_broken_image_writes_the_others_and_exits_1(tmp_path, write_image, files, tiny_model_dir):
    photos = tmp_path / "photos"
    write_image("photos/a.png", 40, 32, seed=4)
    (photos / "b.jpg").write_bytes(b"\xff\xd8\xff\xe0 only the start of a jpeg")
    write_image("photos/c.png", 32, 40, seed=6)
    out_dir = tmp_path / "styled"
    proc = run_cli("stylize", photos, "--style", files["style"], "-o", out_dir, "--model", tiny_model_dir, "--json",
                   cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert any(line.startswith("cst: error: ") and "b.jpg" in line for line in proc.stderr.splitlines())
    assert sorted(p.name for p in out_dir.iterdir()) == ["a.png", "c.png"]
    summary = json.loads(proc.stdout)
    assert [f["input"] for f in summary["failed"]] == [str(photos / "b.jpg")]
    assert summary["outputs"] == [str(out_dir / "a.png"), str(out_dir / "c.png")]


def test_style_blend(tmp_path, files, tiny_model_dir):
    proc = run_cli("stylize", files["photo"], "--style", files["style"], "--style", files["style2"],
                   "--style-blend", "0.7,0.3", "-o", files["out"], "--model", tiny_model_dir, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(files["out"])
    model = StyleTransferModel.from_pretrained(tiny_model_dir)
    blended = np.asarray(model.stylize(files["photo"], [(files["style"], 0.7), (files["style2"], 0.3)]), np.int16)
    single = np.asarray(model.stylize(files["photo"], files["style"]), np.int16)
    assert np.array_equal(pixels(files["out"]), blended)
    assert not np.array_equal(blended, single)


# -- the style is encoded once, whatever the number of photos -------------------------------------------------------
@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_style_is_encoded_once_per_style_image(json_flag, tmp_path, write_image, files, tiny_model_dir, monkeypatch,
                                               capsys):
    for i in range(3):
        write_image(f"photos/{i}.png", 32, 32, seed=i)
    calls = {"encode_style": 0, "stylize_styles": []}
    real_encode, real_stylize = StyleTransferModel.encode_style, StyleTransferModel.stylize

    def counting_encode(self, style):
        calls["encode_style"] += 1
        return real_encode(self, style)

    def recording_stylize(self, content, style, **kwargs):
        calls["stylize_styles"].append(style)
        return real_stylize(self, content, style, **kwargs)

    monkeypatch.setattr(StyleTransferModel, "encode_style", counting_encode)
    monkeypatch.setattr(StyleTransferModel, "stylize", recording_stylize)
    code = cli.main(["stylize", str(tmp_path / "photos"), "--style", str(files["style"]), "--style",
                     str(files["style2"]), "-o", str(tmp_path / "styled"), "--model", str(tiny_model_dir), *json_flag])
    assert code == 0, capsys.readouterr().err
    # once per style image, not once per photo (--json: once more, at the scores' size)
    assert calls["encode_style"] == (4 if json_flag else 2)
    styles = calls["stylize_styles"]
    assert len(styles) == 3 and all(isinstance(s, dict) for s in styles) and all(s is styles[0] for s in styles)


# -- bad input: exit 2, one line, nothing written -------------------------------------------------------------------
def _bad_input(case: str, tmp_path: Path, files: dict, model_dir: Path, monkeypatch) -> list[str]:
    """The argv for one bad-input case (files prepared under tmp_path)."""
    content, styles, out, extra = files["photo"], [files["style"]], files["out"], []
    if case == "content is not an image":
        content = tmp_path / "notes.jpg"
        content.write_text("hello\n" * 50)
    elif case == "content is truncated":
        content = tmp_path / "cut.jpg"
        content.write_bytes(files["photo"].read_bytes()[:400])
    elif case == "content is empty":
        content = tmp_path / "empty.png"
        content.write_bytes(b"")
    elif case == "content is 1x1":
        content = tmp_path / "dot.png"
        Image.new("RGB", (1, 1)).save(content)
    elif case == "content is over the pixel limit":
        monkeypatch.setattr(cst.imageio, "MAX_PIXELS", 1000)  # the 53x37 photo is 1961 px
    elif case == "content does not exist":
        content = tmp_path / "nope.jpg"
    elif case == "style is not an image":
        styles = [tmp_path / "style.txt"]
        styles[0].write_text("impressionism")
    elif case == "negative style weight":
        extra = ["--style-weight", "-1"]
    elif case == "NaN content weight":
        extra = ["--content-weight", "nan"]
    elif case == "infinite adversarial weight":
        extra = ["--adversarial-weight", "inf"]
    elif case == "strength above 1":
        extra = ["--strength", "1.5"]
    elif case == "max size too small":
        extra = ["--max-size", "4"]
    elif case == "blend length mismatch":
        extra = ["--style-blend", "0.7,0.3"]
    elif case == "blend not numbers":
        styles, extra = [files["style"], files["style2"]], ["--style-blend", "warm,cold"]
    elif case == "blend all zero":
        styles, extra = [files["style"], files["style2"]], ["--style-blend", "0,0"]
    elif case == "output under a file":
        (tmp_path / "blocker").write_text("a file where a folder should be")
        out = tmp_path / "blocker" / "result.png"
    elif case == "output format unknown":
        out = tmp_path / "out" / "result.xyz"
    elif case == "output is the input":
        out = files["photo"]
    elif case == "folder without images":
        content = tmp_path / "empty_folder"
        content.mkdir()
        (content / "readme.txt").write_text("no pictures here")
    elif case == "folder output is a file":
        content = tmp_path / "photos"
        content.mkdir()
        Image.new("RGB", (32, 32)).save(content / "a.png")
        out = tmp_path / "taken.png"
        out.write_bytes(b"an existing file")
    elif case == "model not in the offline cache":
        monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
        model_dir = "cst-tests/not-downloaded"
    elif case == "model folder does not exist":
        model_dir = tmp_path / "no_such_model"
    elif case == "argparse: no --style":
        styles = []
    elif case == "argparse: weight is not a number":
        extra = ["--style-weight", "lots"]
    else:
        raise AssertionError(case)
    argv = ["stylize", str(content)]
    for style in styles:
        argv += ["--style", str(style)]
    return argv + ["-o", str(out), "--model", str(model_dir), *extra]


BAD_INPUTS = [
    "content is not an image", "content is truncated", "content is empty", "content is 1x1",
    "content is over the pixel limit", "content does not exist", "style is not an image", "negative style weight",
    "NaN content weight", "infinite adversarial weight", "strength above 1", "max size too small",
    "blend length mismatch", "blend not numbers", "blend all zero", "output under a file", "output format unknown",
    "output is the input", "folder without images", "folder output is a file", "model not in the offline cache",
    "model folder does not exist", "argparse: no --style",
    "argparse: weight is not a number",
]


def _nothing_written(tmp_path: Path, files: dict, photo_bytes: bytes):
    assert not files["out"].exists() and not (tmp_path / "out").exists()
    assert not any(p.name.startswith(".") and ".tmp-" in p.name for p in tmp_path.rglob("*"))
    assert files["photo"].read_bytes() == photo_bytes  # the input is untouched


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_in_process(case, tmp_path, files, tiny_model_dir, monkeypatch, capsys):
    argv = _bad_input(case, tmp_path, files, tiny_model_dir, monkeypatch)
    photo_bytes = files["photo"].read_bytes()
    try:
        code = cli.main(argv)
    except SystemExit as exit_:  # argparse errors exit from inside parse_args
        code = exit_.code
    except Exception as err:  # noqa: BLE001 - a traceback is exactly the failure this test is about
        pytest.fail(f"{case}: {type(err).__name__} escaped to the user as a traceback: {err}")
    captured = capsys.readouterr()
    assert code == 2, captured.err
    assert_one_line_error(captured.err)
    assert captured.out == ""
    _nothing_written(tmp_path, files, photo_bytes)


@pytest.mark.parametrize("case", ["content is truncated", "negative style weight", "output under a file",
                                  "argparse: no --style"])
def test_bad_input_in_a_real_process(case, tmp_path, files, tiny_model_dir, monkeypatch):
    argv = _bad_input(case, tmp_path, files, tiny_model_dir, monkeypatch)
    photo_bytes = files["photo"].read_bytes()
    proc = run_cli(*argv, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert_one_line_error(proc.stderr)
    assert proc.stdout == ""
    _nothing_written(tmp_path, files, photo_bytes)


def test_output_folder_gets_the_photos_name(tmp_path, files, tiny_model_dir, capsys):
    existing = tmp_path / "existing"
    existing.mkdir()
    for out, expected in ((existing, existing / "photo.jpg"), (f"{tmp_path / 'new'}/", tmp_path / "new" / "photo.jpg")):
        code = cli.main(["stylize", str(files["photo"]), "--style", str(files["style"]), "-o", str(out),
                         "--model", str(tiny_model_dir)])
        assert code == 0, capsys.readouterr().err
        assert Image.open(expected).format == "JPEG" and Image.open(expected).size == (53, 37)


def test_help_lists_the_sliders(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["stylize", "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--style-blend", "--strength", "--content-weight", "--style-weight", "--adversarial-weight",
                 "--preserve-color", "--max-size", "--model", "--json", "CST_MODEL"):
        assert flag in text


# -- built-in styles: `presets`, `--style NAME`, `sheet` -------------------------------------------------------------
def test_presets_lists_name_title_artist_year(capsys):
    assert cli.main(["presets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(presets.presets()) == 9
    for line, preset in zip(lines, presets.presets().values()):
        name, _, rest = line.partition(" ")
        assert name == preset.name
        assert rest.strip() == f"{preset.title} — {preset.artist} ({preset.year})"


def test_builtin_style_by_name(tmp_path, files, tiny_model_dir, capsys):
    code = cli.main(["stylize", str(files["photo"]), "--style", "starry-night", "-o", str(files["out"]),
                     "--model", str(tiny_model_dir)])
    assert code == 0, capsys.readouterr().err
    model = StyleTransferModel.from_pretrained(tiny_model_dir)
    expected = np.asarray(model.stylize(files["photo"], presets.get("starry-night").path), np.int16)
    assert np.array_equal(pixels(files["out"]), expected)  # the name stands for the bundled painting
    other = np.asarray(model.stylize(files["photo"], "great-wave"), np.int16)
    assert not np.array_equal(expected, other)


def test_weight_outside_the_trained_range_is_clamped_with_a_one_line_note(tmp_path, files, tiny_model_dir, capsys):
    code = cli.main(["stylize", str(files["photo"]), "--style", str(files["style"]), "-o", str(files["out"]),
                     "--model", str(tiny_model_dir), "--style-weight", "50"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.err.splitlines() == ["cst: note: --style-weight=50 outside the trained range 0.1-10: "
                                         "clamped into it"]
    expected = StyleTransferModel.from_pretrained(tiny_model_dir).stylize(files["photo"], files["style"],
                                                                         style_weight=10.0)
    assert np.array_equal(pixels(files["out"]), np.asarray(expected, np.int16))


def test_the_embedded_default_is_the_light_generator(monkeypatch):
    from cst import frontend

    monkeypatch.delenv("CST_MODEL", raising=False)
    assert frontend.load_model(None).config.architecture == "light"
    assert frontend.load_model("default").config.architecture == "light"


@pytest.mark.parametrize("command", ["stylize", "sheet"])
def test_relative_model_folder_that_does_not_exist(command, tmp_path, files, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = [command, str(files["photo"]), "-o", str(files["out"]), "--model", "./missing_dir"]
    code = cli.main(argv + (["--style", "starry-night"] if command == "stylize" else []))
    assert code == 2
    assert "./missing_dir: no such model folder" in assert_one_line_error(capsys.readouterr().err)
    assert not files["out"].exists()


def test_sheet_shows_every_preset_beside_its_result(tmp_path, files, tiny_model_dir, monkeypatch, capsys):
    asked = []
    real_stylize = StyleTransferModel.stylize

    def recording_stylize(self, content, style, **kwargs):
        asked.append((style, content.size, kwargs["style_weight"]))
        return real_stylize(self, content, style, **kwargs)

    monkeypatch.setattr(StyleTransferModel, "stylize", recording_stylize)
    out = tmp_path / "sheets" / "sheet.jpg"
    code = cli.main(["sheet", str(files["photo"]), "-o", str(out), "--model", str(tiny_model_dir),
                     "--style-weight", "2"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.out.strip() == str(out)
    assert asked == [(name, (53, 37), 2.0) for name in presets.presets()]  # every preset, with the sliders
    rows = -(-len(presets.presets()) // cli.SHEET_PAIRS_PER_ROW)
    with Image.open(out) as sheet:
        assert sheet.format == "JPEG"
        assert sheet.size == (cst.eval.PAD + 2 * cli.SHEET_PAIRS_PER_ROW * (cst.eval.TILE + cst.eval.PAD),
                              cst.eval.sheet_height(rows))
    assert [p.name for p in out.parent.iterdir()] == ["sheet.jpg"]  # written atomically: no temporary file left


@pytest.mark.parametrize("case", ["photo does not exist", "photo is a folder", "photo is not an image",
                                  "output format unknown", "output is the input", "negative style weight"])
def test_sheet_bad_input_is_one_line_and_writes_nothing(case, tmp_path, files, tiny_model_dir, capsys):
    photo, out, extra = files["photo"], files["out"], []
    if case == "photo does not exist":
        photo = tmp_path / "nope.jpg"
    elif case == "photo is a folder":
        photo = tmp_path
    elif case == "photo is not an image":
        photo = tmp_path / "notes.jpg"
        photo.write_text("hello\n")
    elif case == "output format unknown":
        out = tmp_path / "out" / "sheet.xyz"
    elif case == "output is the input":
        out = files["photo"]
    else:
        extra = ["--style-weight", "-1"]
    photo_bytes = files["photo"].read_bytes()
    code = cli.main(["sheet", str(photo), "-o", str(out), "--model", str(tiny_model_dir), *extra])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert_one_line_error(captured.err)
    _nothing_written(tmp_path, files, photo_bytes)
