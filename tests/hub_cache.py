"""A Hugging Face Hub cache folder written by hand, offline, exactly as huggingface_hub's file_download.py lays it out:

    HF_HUB_CACHE/models--{org}--{name}/blobs/{etag}                       the file contents
                                      /refs/main                          the commit hash (no newline)
                                      /snapshots/{commit}/{filename} -> ../../blobs/{etag}
"""
from __future__ import annotations

import hashlib
from pathlib import Path

COMMIT = "4f1c0d2e8b7a69503c1d2e3f4a5b6c7d8e9f0a1b"


def build_hub_cache(cache: Path, repo_id: str, model_dir: Path, commit: str = COMMIT, main: bool = True) -> Path:
    """Put the files of `model_dir` into `cache` as if huggingface_hub had downloaded `repo_id` at `commit` (and, with
    `main`, as the commit the branch main points to). Call it again with another commit to cache a second revision."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    (repo / "refs").mkdir(exist_ok=True)
    snapshot.mkdir(parents=True)
    for path in sorted(model_dir.iterdir()):
        data = path.read_bytes()
        if path.suffix == ".safetensors":  # LFS file: etag = sha256 of the content
            etag = hashlib.sha256(data).hexdigest()
        else:  # regular git file: etag = git blob sha1
            etag = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        (repo / "blobs" / etag).write_bytes(data)
        (snapshot / path.name).symlink_to(Path("..", "..", "blobs", etag))
    if main:
        (repo / "refs" / "main").write_text(commit)
    return cache
