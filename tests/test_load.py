"""The Space under load, small: benchmarks/load.py's checks (the full run is 20 clients x 5 requests) on the real
app server with the tiny model: concurrent gradio_client clients with bad uploads mixed in, the bounded queue's busy
answer, memory, and the uploads' cleanup (the periodic sweep, and everything left when the server stops)."""
from __future__ import annotations

import time

import pytest
from gradio_client import Client, handle_file

from benchmarks import load

# the server's CST_QUEUE_SIZE and CST_CACHE_MAX_AGE_S (app.py: 32 and an hour). The age must exceed any wait in the
# queue here: the sweep deletes an upload that is older, even while its request still waits.
QUEUE_SIZE, CACHE_AGE_S = 4, 20


@pytest.fixture(scope="module")
def space(tmp_path_factory, tiny_model_dir):
    env = {"CST_MODEL": str(tiny_model_dir), "CST_QUEUE_SIZE": str(QUEUE_SIZE), "CST_CACHE_MAX_AGE_S": str(CACHE_AGE_S)}
    with load.running_space(tmp_path_factory.mktemp("load_space"), env) as space:
        yield space


@pytest.fixture(scope="module")
def uploads(tmp_path_factory):
    """Small good photos (two sizes), the bad uploads, the style; and one larger photo that keeps a worker busy."""
    folder = tmp_path_factory.mktemp("uploads")
    goods, bads, style = load.make_uploads(folder, sizes=((40, 24), (64, 48)))
    load.photo(256, 192, seed=5).save(folder / "load-slow.png")
    return goods, bads, style, load.Upload("256x192", folder / "load-slow.png", (256, 192))


def test_mixed_load_4_clients_x_3_requests(space, uploads):
    goods, bads, style, _ = uploads
    load.run_load(space.url, 4, 1, goods, bads, style, seed=1, bad_share=0)  # warm-up: every pool thread, once
    before = load.memory_mb(space.process.pid)
    summary = load.summarize(load.run_load(space.url, 4, 3, goods, bads, style, seed=0, bad_share=0.3))
    after = load.memory_mb(space.process.pid)
    assert summary.good and summary.bad  # both kinds were sent
    assert summary.good_failed == [] and summary.bad_unanswered == []
    assert any("is not an image" in m for m in summary.errors.values()), summary.errors
    growth = after["rss"] - before["rss"]
    assert growth < 25, f"the server grew by {growth:.0f} MB over 12 requests of tiny pictures"


def test_over_capacity_is_a_prompt_busy_answer(space, uploads):
    """Every worker busy on a larger photo; then more small requests at once than the queue holds: the queue takes
    QUEUE_SIZE of them, the others are refused at once with gradio_client's QueueError, not left to time out."""
    import app

    goods, _, style, slow = uploads
    visitors = load.clients(space.url, QUEUE_SIZE + 3)  # ready before the workers are taken
    workers = app.concurrency_limit()  # the server's: it inherits this process's CPUs
    jobs = [c.submit(content=handle_file(str(slow.path)), style=handle_file(str(style)), output_size=512,
                     api_name="/stylize") for c in load.clients(space.url, workers)]
    deadline, running = time.monotonic() + 60, {"PROCESSING", "PROGRESS"}  # PROGRESS: it reports gr.Progress
    while not all(job.status().code.name in running for job in jobs) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(job.status().code.name in running for job in jobs), [job.status() for job in jobs]
    answers = load.burst(visitors, goods[0], style)
    busy = [r for r in answers if r.outcome == "busy"]
    served = [r for r in answers if r.ok]
    assert busy and len(served) >= QUEUE_SIZE and len(busy) + len(served) == len(answers), answers
    assert all(r.detail == "QueueError: Queue is full! Please try again." and r.seconds < 10 for r in busy), busy
    for job in jobs:
        assert job.result(timeout=300)  # the slow ones were served too


def test_uploads_stay_in_gradios_cache_and_are_swept(space, uploads):
    def made_by_requests() -> list:  # the uploads, and the results (Gradio saves each as image.png)
        return load.cache_files(space) + sorted(space.gradio_cache.rglob("image.png"))

    made = made_by_requests()
    assert load.cache_files(space), "the uploads should be in the server's Gradio cache"
    assert load.files_outside_the_cache(space) == []  # nothing else written under the server's TMPDIR
    # the sweep runs every CACHE_AGE_S // 4 s and deletes what is older than CACHE_AGE_S
    deadline = max(p.stat().st_ctime for p in made) + CACHE_AGE_S + CACHE_AGE_S // 4 + 10
    while made_by_requests() and time.time() < deadline:
        time.sleep(0.5)
    assert made_by_requests() == [], f"files older than {CACHE_AGE_S} s are still there"


def test_stopping_the_server_removes_what_is_left(space, uploads):
    goods, _, style, _ = uploads
    assert load.request(Client(space.url, verbose=False), goods[0], style).ok
    assert load.cache_files(space)  # a fresh upload, younger than the sweep's age
    assert load.stop_space(space), "the Space did not stop on SIGINT within 30 s (killed: no clean-up)"
    assert space.process.returncode is not None
    assert load.cache_files(space) == []
