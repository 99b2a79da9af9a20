"""Loading by Hub repo id from a real huggingface_hub cache folder (tests/hub_cache.py), offline; push_to_hub without
the network.
"""
import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import huggingface_hub
import numpy as np
import pytest
from huggingface_hub import ModelCard
from PIL import Image

from cst import StyleTransferError, StyleTransferModel
from hub_cache import COMMIT, build_hub_cache

REPO_ID = "cst-tests/tiny-style"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def hub_cache(tmp_path, tiny_model_dir):
    return build_hub_cache(tmp_path / "hub", REPO_ID, tiny_model_dir)


@pytest.fixture
def offline(monkeypatch):
    """HF_HUB_OFFLINE=1 for this process too (huggingface_hub read the variable at import, so patch the constant)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


@pytest.fixture
def photo_and_style(tmp_path, make_image):
    photo, style = tmp_path / "photo.png", tmp_path / "style.png"
    make_image(45, 33, seed=1).save(photo)
    make_image(32, 32, seed=2).save(style)
    return photo, style


def test_repo_id_from_the_cache_in_process(hub_cache, offline, tiny_model_dir, photo_and_style, monkeypatch):
    photo, style = photo_and_style
    expected = np.asarray(StyleTransferModel.from_pretrained(tiny_model_dir).stylize(photo, style))
    by_cache_dir = StyleTransferModel.from_pretrained(REPO_ID, cache_dir=hub_cache)
    assert np.array_equal(np.asarray(by_cache_dir.stylize(photo, style)), expected)
    pinned = StyleTransferModel.from_pretrained(REPO_ID, cache_dir=hub_cache, revision=COMMIT)
    assert np.array_equal(np.asarray(pinned.stylize(photo, style)), expected)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hub_cache))  # what HF_HUB_CACHE=... does
    by_env = StyleTransferModel.from_pretrained(REPO_ID)
    assert np.array_equal(np.asarray(by_env.stylize(photo, style)), expected)


def test_repo_id_from_the_cache_in_a_fresh_process(hub_cache, tiny_model_dir, photo_and_style, tmp_path):
    # The most faithful check: a new interpreter that only has HF_HUB_CACHE and HF_HUB_OFFLINE=1 to go on.
    photo, style = photo_and_style
    out = tmp_path / "out.png"
    script = ("import sys; from cst import StyleTransferModel; "
              "StyleTransferModel.from_pretrained(sys.argv[1]).stylize(sys.argv[2], sys.argv[3]).save(sys.argv[4])")
    env = {**os.environ, "HF_HUB_CACHE": str(hub_cache), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(ROOT)}
    env.pop("HF_HOME", None)
    proc = subprocess.run([sys.executable, "-c", script, REPO_ID, str(photo), str(style), str(out)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    expected = np.asarray(StyleTransferModel.from_pretrained(tiny_model_dir).stylize(photo, style))
    assert np.array_equal(np.asarray(Image.open(out)), expected)


def test_uncached_repo_offline_is_a_one_line_error(tmp_path, offline):
    with pytest.raises(StyleTransferError, match="cst-tests/not-downloaded") as err:
        StyleTransferModel.from_pretrained("cst-tests/not-downloaded", cache_dir=tmp_path / "empty")
    assert "\n" not in str(err.value)


def test_push_to_hub_uploads_safetensors_config_and_card(tiny_model, monkeypatch):
    uploads = []

    class FakeApi:  # stands in for the Hub: nothing leaves the machine
        def __init__(self, token=None):
            pass

        def create_repo(self, repo_id, **kwargs):
            return type("RepoUrl", (), {"repo_id": repo_id})()

        def upload_folder(self, *, repo_id, folder_path, **kwargs):
            folder = Path(folder_path)
            uploads.append((repo_id, {p.name: p.read_bytes() for p in folder.iterdir()}))
            return "https://huggingface.co/fake/commit"

    monkeypatch.setattr(huggingface_hub.hub_mixin, "HfApi", FakeApi)
    assert callable(StyleTransferModel.push_to_hub)
    tiny_model.push_to_hub("cst-tests/pushed")
    [(repo_id, files)] = uploads
    assert repo_id == "cst-tests/pushed"
    assert sorted(files) == ["README.md", "config.json", "model.safetensors"]  # no pickle anywhere
    assert json.loads(files["config.json"]) == json.loads(json.dumps(asdict(tiny_model.config)))
    card = ModelCard(files["README.md"].decode())
    assert card.data.library_name == "cst" and card.data.pipeline_tag == "image-to-image"
    assert "style-transfer" in card.data.tags


def test_packaged_model_card_is_model_card_md_without_repo_images():
    """cst/default_model/README.md (what a Hub upload of the default model shows) must not drift from model_card.md:
    the same text, except that images of the repository's docs/ become a line naming the file."""
    import re

    repo_lines = (ROOT / "model_card.md").read_text().splitlines()
    packaged_lines = (ROOT / "cst" / "default_model" / "README.md").read_text().splitlines()
    assert len(repo_lines) == len(packaged_lines)
    for repo_line, packaged_line in zip(repo_lines, packaged_lines):
        image = re.fullmatch(r"!\[[^\]]*\]\((docs/[^)]+)\)", repo_line)
        if image:
            assert f"`{image.group(1)}` in the cst repository" in packaged_line
        else:
            assert packaged_line == repo_line
