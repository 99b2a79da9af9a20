"""The bad-input corpus (tests/bad_inputs.py) on every interface: the Python API, the CLI and the Space's API.

Every kind gets the right picture or a one-line error: never a traceback, a partial output file or a changed input.
The CLI runs in-process through `cst.cli.main` (same code and exit codes, a fraction of the time) and, for a few
kinds, as a real `python -m cst` process. The Space is the real `python app.py` server on the tiny model, called
through gradio_client, or as raw HTTP for what gradio_client will not send (NaN, paths it did not upload).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from bad_inputs import (IMAGE_KIND_NAMES, IMAGE_KINDS, MODEL_KINDS, OUTPUT_KINDS, SLIDER_KIND_NAMES, SLIDER_KINDS,
                        base_image, bomb_png, style_files)
from benchmarks.load import running_space, upload
from cst import StyleTransferError, StyleTransferModel, cli

ROOT = Path(__file__).resolve().parents[1]
SPACE_TOLERANCE = 2  # /255: the server runs torch with other thread counts than this process; same model, same input


# -- helpers -------------------------------------------------------------------------------------------------------
def fingerprint(path: Path):
    """What must not change: a file's bytes, a folder's files and their bytes; None for nothing there."""
    if path.is_dir():
        return {str(p.relative_to(path)): fingerprint(p) for p in sorted(path.rglob("*")) if p.is_file()}
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def one_line(message: str) -> str:
    assert message and "\n" not in message and "Traceback" not in message, f"not one plain line: {message!r}"
    return message


def api_error(call) -> str:
    with pytest.raises(StyleTransferError) as caught:
        call()
    return one_line(str(caught.value))


def pixels(img) -> np.ndarray:
    if isinstance(img, (str, Path)):
        with Image.open(img) as opened:
            img = opened.convert("RGB")
    return np.asarray(img, np.int16)


def run_main(argv: list[str], capsys) -> tuple[int, str, str]:
    """`python -m cst ARGV` in-process: (exit code, stdout, stderr); an exception escaping main fails the test."""
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as exit_:  # argparse errors exit from inside parse_args
        code = exit_.code
    except Exception as err:  # noqa: BLE001 - a traceback is exactly the failure this corpus is about
        pytest.fail(f"{type(err).__name__} escaped to the user as a traceback: {err}")
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def cli_error(code: int, out: str, err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("cst: error: "), (code, err)
    assert out == "" and "Traceback" not in err
    return one_line(lines[0])


def nothing_written(folder: Path) -> None:
    """No output and no temporary file anywhere under the output folder (which may not exist at all)."""
    assert not folder.exists() or [p.name for p in folder.rglob("*")] == []


# -- the corpus, written once ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("corpus")
    return {kind.name: kind.write(folder) for kind in IMAGE_KINDS}


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> dict[str, Path]:
    """A plain photo and style for the cases where the other input is the bad one."""
    folder = tmp_path_factory.mktemp("good")
    photo, style = folder / "photo.png", style_files(folder, 1)[0]
    base_image(seed=9).save(photo)
    return {"photo": photo, "style": style}


@pytest.fixture(scope="module")
def model(tiny_model_dir) -> StyleTransferModel:
    return StyleTransferModel.from_pretrained(tiny_model_dir)


# -- the corpus itself -------------------------------------------------------------------------------------------
BLEND_SIZES = (0, 50)  # a blend of no style, and of fifty


def test_the_corpus_has_over_30_kinds_and_the_bomb_is_small(tmp_path):
    kinds = [*IMAGE_KIND_NAMES, *SLIDER_KIND_NAMES, *BLEND_SIZES, *(k.name for k in OUTPUT_KINDS),
             *(k.name for k in MODEL_KINDS)]
    assert len(kinds) >= 30 and len(set(kinds)) == len(kinds)
    path = tmp_path / "bomb.png"
    path.write_bytes(bomb_png())
    assert path.stat().st_size < 200  # a few bytes on disk ...
    with pytest.raises(Image.DecompressionBombError, match="10000000000 pixels"):
        Image.open(path)  # ... that claim 10 gigapixels (Pillow's own guard refuses it even before cst's)


# -- image kinds -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", IMAGE_KINDS, ids=IMAGE_KIND_NAMES)
def test_python_api(kind, corpus, good, model):
    path = corpus[kind.name]
    before = fingerprint(path)
    if kind.refused:
        message = api_error(lambda: model.stylize(path, good["style"]))
        assert kind.match in message and "content image" in message, message
        message = api_error(lambda: model.stylize(good["photo"], path))
        assert kind.match in message and "style image" in message, message
    else:
        out = model.stylize(path, good["style"])
        assert out.mode == "RGB" and out.size == kind.size  # upright, the photo's size
        as_style = model.stylize(good["photo"], path)  # the same file works as a style
        assert as_style.size == base_image().size
        if kind.source is not None:  # a lossless file: exactly the picture it stands for
            assert np.array_equal(pixels(out), pixels(model.stylize(kind.source(), good["style"])))
            assert np.array_equal(pixels(as_style), pixels(model.stylize(good["photo"], kind.source())))
    assert fingerprint(path) == before


@pytest.mark.parametrize("kind", IMAGE_KINDS, ids=IMAGE_KIND_NAMES)
def test_cli(kind, corpus, good, model, tiny_model_dir, tmp_path, capsys):
    path = corpus[kind.name]
    before, out = fingerprint(path), tmp_path / "out" / "result.png"
    if kind.name == "folder instead of a file":  # a folder CONTENT is a batch (a feature): give it as the style
        argv = ["stylize", good["photo"], "--style", path, "-o", out, "--model", tiny_model_dir]
    else:
        argv = ["stylize", path, "--style", good["style"], "-o", out, "--model", tiny_model_dir]
    code, stdout, stderr = run_main(argv, capsys)
    if kind.refused:
        assert kind.match in cli_error(code, stdout, stderr)
        nothing_written(tmp_path / "out")
    else:
        assert code == 0, stderr
        assert sorted(p.name for p in out.parent.iterdir()) == ["result.png"]  # and no temporary file
        assert np.array_equal(pixels(out), pixels(model.stylize(path, good["style"])))  # what the API gives
    assert fingerprint(path) == before


def test_cli_in_a_real_process(corpus, good, tiny_model_dir, tmp_path):
    """One kind again as a real `python -m cst` process (where a stray traceback would show); test_cli.py runs more."""
    kind = next(k for k in IMAGE_KINDS if k.name.startswith("decompression bomb"))
    path = corpus[kind.name]
    before, out = fingerprint(path), tmp_path / "out" / "result.png"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "cst", "stylize", str(path), "--style", str(good["style"]), "-o",
                           str(out), "--model", str(tiny_model_dir)], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=300)
    assert kind.match in cli_error(proc.returncode, proc.stdout, proc.stderr)
    nothing_written(tmp_path / "out")
    assert fingerprint(path) == before


# -- settings: NaN, infinities, negative, huge, a string -------------------------------------------------------
def clamped(kind, model, good) -> np.ndarray:
    """The picture a clamped setting must give: the same setting at the end of the trained range."""
    assert kind.value > model.config.weight_max
    return pixels(model.stylize(good["photo"], good["style"], **{kind.keyword: model.config.weight_max}))


@pytest.mark.parametrize("kind", SLIDER_KINDS, ids=SLIDER_KIND_NAMES)
def test_settings_python_api(kind, good, model):
    call = lambda: model.stylize(good["photo"], good["style"], **{kind.keyword: kind.value})  # noqa: E731
    if kind.match is None:  # out of the trained range: clamped into it
        assert np.array_equal(pixels(call()), clamped(kind, model, good))
    else:
        message = api_error(call)
        assert kind.match in message and kind.keyword in message, message


@pytest.mark.parametrize("kind", SLIDER_KINDS, ids=SLIDER_KIND_NAMES)
def test_settings_cli(kind, good, model, tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "out" / "result.png"
    code, stdout, stderr = run_main(["stylize", good["photo"], "--style", good["style"], "-o", out, "--model",
                                     tiny_model_dir, f"{kind.flag}={kind.value}"], capsys)
    if kind.match is None:
        assert code == 0, stderr
        assert np.array_equal(pixels(out), clamped(kind, model, good))
        assert f"cst: note: {kind.flag}=1e+300 outside the trained range" in stderr
    else:
        message = cli_error(code, stdout, stderr)
        assert kind.match in message and kind.flag in message, message
        nothing_written(tmp_path / "out")


# -- blends of no style and of fifty -----------------------------------------------------------------------------
def test_blends_python_api(good, model, tmp_path):
    assert "style must be one image or a list of (style image, weight) pairs" in api_error(
        lambda: model.stylize(good["photo"], []))
    styles = style_files(tmp_path, 50)
    out = model.stylize(good["photo"], [(s, 1.0) for s in styles])
    assert out.size == base_image().size
    # fifty times the same style is that style (up to float rounding of the blend)
    same = model.stylize(good["photo"], [(styles[0], 1.0)] * 50)
    assert np.abs(pixels(same) - pixels(model.stylize(good["photo"], styles[0]))).max() <= 1


def test_blends_cli(good, model, tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "out" / "result.png"
    code, stdout, stderr = run_main(["stylize", good["photo"], "-o", out, "--model", tiny_model_dir], capsys)
    assert "--style" in cli_error(code, stdout, stderr)  # argparse: the argument is required
    nothing_written(tmp_path / "out")
    styles = style_files(tmp_path, 50)
    code, stdout, stderr = run_main(["stylize", good["photo"], *(a for s in styles for a in ("--style", s)), "-o",
                                     out, "--model", tiny_model_dir], capsys)
    assert code == 0, stderr
    assert np.array_equal(pixels(out), pixels(model.stylize(good["photo"], [(s, 1.0) for s in styles])))


# -- where the CLI writes ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", OUTPUT_KINDS, ids=[k.name for k in OUTPUT_KINDS])
def test_output_cli(kind, good, model, tiny_model_dir, tmp_path, capsys):
    if kind.name == "in a read-only folder" and os.geteuid() == 0:
        pytest.skip("root writes into a read-only folder anyway; 'under a file' and '/proc' cover unwritable targets")
    photo = tmp_path / "input" / "photo.png"
    photo.parent.mkdir()
    photo.write_bytes(good["photo"].read_bytes())
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    target = kind.target(scratch, photo)
    before = fingerprint(photo)
    code, stdout, stderr = run_main(["stylize", photo, "--style", good["style"], "-o", target, "--model",
                                     tiny_model_dir], capsys)
    if kind.match is None:
        assert code == 0, stderr
        assert np.array_equal(pixels(target), pixels(model.stylize(photo, good["style"])))
    else:
        assert kind.match in cli_error(code, stdout, stderr)
        assert sorted(p.name for p in photo.parent.iterdir()) == ["photo.png"]  # no partial or temporary file
        written = [p for p in scratch.rglob("*") if p.is_file() and p.name not in ("blocker",)]
        assert written == []
    assert fingerprint(photo) == before


# -- model folders ---------------------------------------------------------------------------------------------
@pytest.fixture
def bad_model(request, tmp_path, tiny_model_dir, malicious_pickle):
    """(folder, kind, marker): the model folder of a ModelKind; marker is the file a malicious pickle would create
    if it were ever unpickled (None without one)."""
    kind = request.param
    folder = tmp_path / "model"
    folder.mkdir()
    kind.write(folder, tiny_model_dir)
    marker = malicious_pickle(folder / kind.pickle, "decoder.to_rgb.1.weight") if kind.pickle else None
    yield folder, kind, marker
    assert marker is None or not marker.exists(), "a pickle was loaded"


MODEL_IDS = [k.name for k in MODEL_KINDS]


@pytest.mark.parametrize("bad_model", MODEL_KINDS, ids=MODEL_IDS, indirect=True)
def test_model_python_api(bad_model):
    folder, kind, _ = bad_model
    assert kind.match in api_error(lambda: StyleTransferModel.from_pretrained(folder))


@pytest.mark.parametrize("bad_model", MODEL_KINDS, ids=MODEL_IDS, indirect=True)
def test_model_cli(bad_model, good, tmp_path, capsys):
    folder, kind, _ = bad_model
    out = tmp_path / "out" / "result.png"
    code, stdout, stderr = run_main(["stylize", good["photo"], "--style", good["style"], "-o", out, "--model",
                                     folder], capsys)
    assert kind.match in cli_error(code, stdout, stderr)
    nothing_written(tmp_path / "out")


@pytest.mark.parametrize("bad_model", MODEL_KINDS, ids=MODEL_IDS, indirect=True)
def test_model_space_falls_back_to_the_default_and_says_why(bad_model):
    import app

    folder, kind, _ = bad_model
    loaded = app.load_model(str(folder))  # what `CST_MODEL=folder python app.py` does at start
    assert loaded.name == app.DEFAULT_MODEL_NAME
    assert f"`CST_MODEL={folder}` could not be loaded" in loaded.fallback_notice
    assert kind.match in one_line(loaded.fallback_notice)


# -- the Space's API ---------------------------------------------------------------------------------------------
API_ORDER = ("content", "style", "strength", "content_weight", "style_weight", "adversarial_weight", "preserve_color",
             "output_size", "style2", "style2_blend", "preset", "full_resolution")
API_DEFAULTS = dict(strength=1.0, content_weight=1.0, style_weight=1.0, adversarial_weight=1.0, preserve_color=False,
                    output_size=256, style2=None, style2_blend=0.5, preset=None, full_resolution=False)


def server_file(path: str) -> dict:
    return {"path": path, "meta": {"_type": "gradio.FileData"}}


def raw_stylize(url: str, **params) -> tuple[str, object]:
    """/stylize as plain HTTP (what gradio_client will not send: NaN, paths it did not upload): (event, data)."""
    import httpx

    values = {**API_DEFAULTS, **params}
    body = json.dumps({"data": [values[name] for name in API_ORDER]})  # NaN and Infinity as JavaScript writes them
    response = httpx.post(f"{url}/gradio_api/call/stylize", content=body, timeout=30,
                          headers={"content-type": "application/json"})
    response.raise_for_status()
    event_id = response.json()["event_id"]
    event = data = None
    with httpx.stream("GET", f"{url}/gradio_api/call/stylize/{event_id}", timeout=120) as stream:
        for line in stream.iter_lines():
            if line.startswith("event: "):
                event = line[len("event: "):]
            elif line.startswith("data: ") and event in ("complete", "error"):
                data = json.loads(line[len("data: "):])
                break
    return event, data


@pytest.fixture(scope="module")
def tiny_space(tmp_path_factory, tiny_model_dir):
    """The Space (`python app.py`, a real HTTP server) on the tiny model."""
    with running_space(tmp_path_factory.mktemp("space"), {"CST_MODEL": str(tiny_model_dir)}) as space:
        yield space


@pytest.fixture(scope="module")
def client(tiny_space, tmp_path_factory) -> Client:
    return Client(tiny_space.url, verbose=False, download_files=str(tmp_path_factory.mktemp("downloads")))


NOT_UPLOADABLE = ("path that does not exist", "folder instead of a file")  # gradio_client refuses before sending


@pytest.fixture(scope="module")
def space_answers(client, corpus, good, tiny_space) -> dict[str, tuple[str, object]]:
    """Every image and setting kind sent to the Space, four at a time (within its queue): name -> ("picture", path),
    ("error", message) or ("raw", (event, data)) for the raw HTTP requests. The tests below judge each answer."""
    url = tiny_space.url

    def predict(**params):
        try:
            picture, _scores = client.predict(**{"output_size": 256, **params}, api_name="/stylize")
            return "picture", picture
        except AppError as err:
            return "error", str(err)

    def image(kind):
        path = corpus[kind.name]
        if kind.name in NOT_UPLOADABLE:  # named as a path on the server: Gradio serves only what was uploaded
            return "raw", raw_stylize(url, content=server_file(str(path)),
                                      style=upload(url, good["style"]))
        return predict(content=handle_file(str(path)), style=handle_file(str(good["style"])))

    def setting(kind):
        if isinstance(kind.value, float) and not np.isfinite(kind.value):  # not JSON: gradio_client will not send it
            return "raw", raw_stylize(url, content=upload(url, good["photo"]),
                                      style=upload(url, good["style"]), **{kind.keyword: kind.value})
        return predict(content=handle_file(str(good["photo"])), style=handle_file(str(good["style"])),
                       **{kind.keyword: kind.value})

    before = {name: fingerprint(path) for name, path in corpus.items()}
    with ThreadPoolExecutor(4) as pool:
        futures = {**{kind.name: pool.submit(image, kind) for kind in IMAGE_KINDS},
                   **{kind.name: pool.submit(setting, kind) for kind in SLIDER_KINDS}}
        answers = {name: future.result() for name, future in futures.items()}
    assert {name: fingerprint(path) for name, path in corpus.items()} == before  # no input changed
    return answers


@pytest.mark.parametrize("kind", IMAGE_KINDS, ids=IMAGE_KIND_NAMES)
def test_space_api(kind, space_answers, corpus, good, model):
    what, answer = space_answers[kind.name]
    if what == "raw":
        event, data = answer
        assert event == "error" and "not uploaded by a user" in one_line(data["error"]), data
    elif kind.refused:
        assert what == "error", answer
        assert kind.match in one_line(answer) and "content image" in answer, answer
    else:
        assert what == "picture", answer
        got, expected = pixels(answer), pixels(model.stylize(corpus[kind.name], good["style"]))
        assert got.shape == expected.shape and np.abs(got - expected).max() <= SPACE_TOLERANCE


@pytest.mark.parametrize("kind", SLIDER_KINDS, ids=SLIDER_KIND_NAMES)
def test_settings_space_api(kind, space_answers, model, good):
    what, answer = space_answers[kind.name]
    if kind.match is None:  # clamped: a picture
        assert what == "picture", answer
        assert np.abs(pixels(answer) - clamped(kind, model, good)).max() <= SPACE_TOLERANCE
        return
    if what == "raw":
        event, data = answer
        assert event == "error", data
        answer = data["error"]
    else:
        assert what == "error", answer
    # not kind.match: Gradio refuses a slider value past its maximum first, in its own words ("Value 1e+300 is ...")
    assert kind.keyword in one_line(answer), answer


@pytest.mark.parametrize("params, match", [
    (dict(output_size=float("nan")), "output_size must be finite"),
    (dict(style2_blend=float("nan")), "style blend weight must be finite"),
    (dict(content=server_file("/etc/hostname")), "not uploaded by a user"),
    (dict(style=None), "Pick a built-in style or add a style image first"),  # a blend of no style
], ids=["NaN output size", "NaN second-style share", "a server file it did not upload", "no style"])
def test_space_raw_requests_get_a_message(params, match, good, tiny_space):
    url = tiny_space.url
    uploads = dict(content=upload(url, good["photo"]), style=upload(url, good["style"]))
    if "style2_blend" in params:
        uploads["style2"] = uploads["style"]
    event, data = raw_stylize(url, **{**uploads, **params})
    assert event == "error" and match in one_line(data["error"]), data


def test_space_log_holds_no_traceback_of_ours(tiny_space, client, good):
    """Run after the Space's cases: no cst traceback in the server log. The only ones allowed are Gradio's own
    InvalidPathError refusals (logged by Gradio for the raw requests naming server paths), and the server serves."""
    picture, _ = client.predict(content=handle_file(str(good["photo"])), style=handle_file(str(good["style"])),
                                output_size=256, api_name="/stylize")
    assert pixels(picture).shape == (*base_image(seed=9).size[::-1], 3)
    log = tiny_space.log_path.read_text()
    raised = set(re.findall(r"^([A-Za-z_][\w.]*(?:Error|Exception))\b", log, re.M))
    assert raised <= {"gradio.exceptions.InvalidPathError"}, log[-3000:]
    assert "stylize failed" not in log
