"""The Space end to end: `python app.py` as a real server, called through gradio_client and driven in chromium.

One server is shared by the module. It starts the way a Space without network starts: HF_HUB_OFFLINE=1, an empty
HF_HOME and a CST_MODEL that cannot be fetched, so every test also checks that the fallback serves the default model.
"""
from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from cst import presets

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
MISSING_MODEL = "someorg/missing-model"
CONTENT_SIZE = (96, 80)  # (W, H): not a multiple of 8, so the generator's pad-and-crop is exercised too
STARTUP_TIMEOUT_S = 180


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_serving(url: str, process: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"app.py exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/config", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    process.terminate()
    pytest.fail(f"app.py did not serve within {STARTUP_TIMEOUT_S} s:\n{log_path.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def space(tmp_path_factory):
    """(URL, server log) of `python app.py` started offline, with no Hub cache and an unreachable CST_MODEL."""
    home = tmp_path_factory.mktemp("space")
    (home / "hf_home").mkdir()
    (home / "tmp").mkdir()
    port = _free_port()
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1",
           "HF_HUB_OFFLINE": "1", "HF_HOME": str(home / "hf_home"), "CST_MODEL": MISSING_MODEL,
           "GRADIO_ANALYTICS_ENABLED": "False", "TMPDIR": str(home / "tmp")}  # gradio's cache and the examples
    log_path = home / "server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "app.py"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_serving(url, process, log_path)
        yield url, log_path
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="module")
def server(space) -> str:
    return space[0]


@pytest.fixture(scope="module")
def client(server, tmp_path_factory):
    return Client(server, verbose=False, download_files=str(tmp_path_factory.mktemp("downloads")))


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, Path]:
    """Small seeded pictures (content 96x80, two styles) and a text file posing as an upload."""
    folder = tmp_path_factory.mktemp("inputs")
    w, h = CONTENT_SIZE
    y, x = np.mgrid[0:h, 0:w]
    content = np.stack([x * 255 // w, y * 255 // h, np.full_like(x, 128)], axis=-1).astype(np.uint8)
    rng = np.random.default_rng(0)
    paths = {"content": folder / "content.png", "style": folder / "style.png", "style2": folder / "style2.png",
             "big": folder / "big.png", "text": folder / "notes.txt"}
    Image.fromarray(content).save(paths["content"])
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(paths["style"])
    stripes = np.zeros((64, 64, 3), dtype=np.uint8)
    stripes[::8] = (230, 60, 70)
    Image.fromarray(stripes).save(paths["style2"])
    Image.fromarray(content).resize((600, 500)).save(paths["big"])
    paths["text"].write_text("this is not a picture\n")
    return paths


def _stylize(client: Client, content: Path, style: Path, **settings):
    return client.submit(content=handle_file(str(content)), style=handle_file(str(style)), api_name="/stylize",
                         **settings)


def test_api_stylizes_to_the_content_size_and_survives_a_non_image(client, images):
    settings = dict(strength=0.7, content_weight=2.5, style_weight=0.5, adversarial_weight=4.0, preserve_color=True,
                    output_size=256, style2=handle_file(str(images["style2"])), style2_blend=0.3)
    result = Path(_stylize(client, images["content"], images["style"], **settings).result(timeout=120))
    with Image.open(result) as img:
        assert (img.format, img.size, img.mode) == ("PNG", CONTENT_SIZE, "RGB")

    with pytest.raises(AppError) as caught:
        _stylize(client, images["text"], images["style"]).result(timeout=60)
    message = str(caught.value)
    assert "notes.txt is not an image" in message  # names the file and says what is wrong ...
    assert "\n" not in message and "Traceback" not in message  # ... in one plain line

    result = Path(_stylize(client, images["content"], images["style"], output_size=256).result(timeout=120))
    with Image.open(result) as img:
        assert img.size == CONTENT_SIZE  # the server kept serving


def test_missing_style_is_a_plain_error(client, images):
    with pytest.raises(AppError, match="Pick a built-in style or add a style image first"):
        client.predict(content=handle_file(str(images["content"])), style=None, api_name="/stylize")


def test_api_takes_a_builtin_style_by_name(client, images):
    results = {}
    for preset in ("great-wave", "the-scream"):
        path = client.predict(content=handle_file(str(images["content"])), style=None, preset=preset,
                              output_size=256, api_name="/stylize")
        with Image.open(path) as img:
            assert img.size == CONTENT_SIZE
            results[preset] = np.asarray(img.convert("RGB"))
    assert not np.array_equal(results["great-wave"], results["the-scream"])
    # a preset wins over a style image given with it
    both = client.predict(content=handle_file(str(images["content"])), style=handle_file(str(images["style"])),
                          preset="great-wave", output_size=256, api_name="/stylize")
    assert np.array_equal(np.asarray(Image.open(both).convert("RGB")), results["great-wave"])
    with pytest.raises(AppError, match="preset: Value: /etc/hostname is not in the list of choices"):
        client.predict(content=handle_file(str(images["content"])), style=None, preset="/etc/hostname",
                       api_name="/stylize")


def test_weight_outside_the_trained_range_is_clamped_with_a_notice(client, images):
    job = _stylize(client, images["content"], images["style"], style_weight=50.0, output_size=256)

    async def notices() -> list[str]:
        return [update.log[0] async for update in job if getattr(update, "log", None)]

    messages = asyncio.run(notices())
    with Image.open(job.result(timeout=120)) as img:
        assert img.size == CONTENT_SIZE
    assert "style_weight=50 outside the trained range 0.1-10: clamped into it" in messages, messages


def test_user_mistakes_leave_no_traceback_in_the_server_log(space, client, images):
    for kwargs in (dict(content=handle_file(str(images["text"])), style=handle_file(str(images["style"]))),
                   dict(content=handle_file(str(images["content"])), style=None),
                   dict(content=handle_file(str(images["content"])), style=None, preset="no-such-painting"),
                   dict(content=handle_file(str(images["content"])), style=handle_file(str(images["style"])),
                        strength=-1.0),
                   dict(content=handle_file(str(images["content"])), style=handle_file(str(images["style"])),
                        output_size="large"),
                   dict(content=handle_file(str(images["content"])), style=handle_file(str(images["style"])),
                        style_weight=0.0)):
        with pytest.raises(AppError):
            client.predict(**kwargs, api_name="/stylize")
    log_text = space[1].read_text()
    assert "Traceback" not in log_text, log_text[-3000:]


def test_examples_are_skimage_photos_in_builtin_styles(server):
    with urllib.request.urlopen(f"{server}/config", timeout=10) as response:
        config = json.load(response)
    samples = next(c["props"]["samples"] for c in config["components"] if c["type"] == "dataset")
    photos = [row[0]["orig_name"] for row in samples]
    names = [row[2] for row in samples]
    assert set(photos) <= {"astronaut.jpg", "chelsea.jpg", "coffee.jpg", "rocket.jpg"}
    assert set(names) <= set(presets.presets()) and len(names) >= 4
    assert [row[1]["orig_name"] for row in samples] == [f"{name}.jpg" for name in names]  # the painting shown


def test_large_content_is_downscaled_with_a_notice(client, images):
    job = _stylize(client, images["big"], images["style"], output_size=256)

    async def notices() -> list[str]:
        return [update.log[0] async for update in job if getattr(update, "log", None)]

    messages = asyncio.run(notices())
    with Image.open(job.result(timeout=120)) as img:
        assert img.size == (256, 213)  # 600x500 fitted to a 256 px long side, not refused
    assert any("downscaled to 256x213" in message for message in messages), messages


def test_offline_start_falls_back_to_the_default_model(server):
    with urllib.request.urlopen(f"{server}/config", timeout=10) as response:
        config = json.load(response)
    model_info = next(c["props"]["value"] for c in config["components"] if c["props"].get("elem_id") == "model-info")
    assert "built-in default" in model_info
    assert f"CST_MODEL={MISSING_MODEL}` could not be loaded" in model_info


def _wait_for_result(page, previous: str | None = None) -> list[int]:
    """Wait until the result image shows (a new one, if `previous` was its src); returns its natural size."""
    page.wait_for_function(
        "(previous) => { const img = document.querySelector('#output-image img');"
        " return img && img.complete && img.naturalWidth > 0 && img.src !== previous; }", arg=previous,
        timeout=90_000)
    return page.locator("#output-image img").evaluate("img => [img.naturalWidth, img.naturalHeight]")


def _wait_for_credit(page, text: str) -> None:
    page.wait_for_function("(text) => document.querySelector('#style-credit').innerText.includes(text)", arg=text,
                           timeout=30_000)


def test_browser_presets_upload_slide_and_stylize(server, images, tmp_path):
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is missing on CI: apt-get install -y chromium")
        pytest.skip(f"{CHROMIUM} not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 768})
            page.goto(server, wait_until="domcontentloaded")
            page.locator("#stylize-button").wait_for(timeout=60_000)
            _wait_for_credit(page, "The Starry Night")  # the page opens with a built-in painting picked
            # a laptop screen shows the button and the result without scrolling
            for elem_id in ("#stylize-button", "#output-image"):
                box = page.locator(elem_id).bounding_box()
                assert box["y"] + box["height"] <= 768, (elem_id, box)

            # a built-in painting, picked from the thumbnails; only the photo is uploaded
            page.locator("#content-image input[type=file]").set_input_files(str(images["content"]))
            page.locator("#content-image img").wait_for(timeout=30_000)
            page.locator("#preset-gallery .thumbnail-item").nth(2).click()  # the third: The Great Wave
            _wait_for_credit(page, "Katsushika Hokusai")
            picked = page.locator("#style-preset input").input_value()
            assert picked == "The Great Wave off Kanagawa — Katsushika Hokusai"
            page.locator("#stylize-button").click()
            assert tuple(_wait_for_result(page)) == CONTENT_SIZE
            first = page.locator("#output-image img").get_attribute("src")

            # the visitor's own style image unpicks the painting; the loss weights are on a log scale
            page.locator("#style-image input[type=file]").set_input_files(str(images["style"]))
            _wait_for_credit(page, "your own image")
            assert page.locator("#style-preset input").input_value() == ""
            page.locator("#strength input[type=range]").fill("0.5")
            assert page.locator("#strength input[type=number]").input_value() == "0.5"
            page.locator("#settings").get_by_text("Loss weights").click()
            weight = page.locator("#style-weight input[type=range]")
            weight.wait_for(state="visible", timeout=30_000)  # the accordion opens with an animation
            for _ in range(10):  # a fill while the accordion still moves can be dropped: set it until it shows
                weight.fill("0.5")  # log10(β) = 0.5
                if page.locator("#style-weight input[type=number]").input_value() == "0.5":
                    break
                page.wait_for_timeout(500)
            page.get_by_text("Style weight β = 3.16").wait_for(timeout=30_000)
            page.locator("#stylize-button").click()
            natural = _wait_for_result(page, previous=first)
            page.screenshot(path=str(tmp_path / "space.png"), full_page=True)
        finally:
            browser.close()
    assert tuple(natural) == CONTENT_SIZE
