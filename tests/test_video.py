"""Video: clips made here with PyAV (a pan over a scikit-image photo, a sine tone), stylised by tiny models.

Checked on real files: frame count, frame rate and timestamps (also a variable frame rate), the sound's packets copied
byte for byte, the rotation applied, even sizes and the downscaling note, the atomic output, and one-line errors for
what is not a usable video; on frame streams: the image path at smoothing 0, scene cuts, the ONNX and torch paths
agreeing, and the consistency figure's direction (the temporal levers lower the warping error of a pan).
"""
from __future__ import annotations

import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from cst import cli, video_eval
from cst.errors import StyleTransferError
from cst.video import VideoStylizer, probe, stylize_frames, stylize_video, working_size

ROOT = Path(__file__).resolve().parents[1]
FPS = 12
SIZE = (96, 64)  # (W, H)
SAMPLE_RATE = 44100


def pan_frames(n: int = 12, size: tuple[int, int] = SIZE, step: int = 3) -> list[np.ndarray]:
    """A camera pan over scikit-image's astronaut: `step` px a frame to the right."""
    from skimage import data

    photo = data.astronaut()
    w, h = size
    return [np.ascontiguousarray(photo[120:120 + h, 60 + step * t:60 + step * t + w]) for t in range(n)]


def write_clip(path: Path, frames: list[np.ndarray] | None = None, *, audio: bool = True, video: bool = True,
               rotate: int | None = None, codec: str = "libx264", pix_fmt: str = "yuv420p",
               pts: list[int] | None = None, time_base: Fraction = Fraction(1, 100 * FPS)) -> Path:
    """Write a clip with PyAV: the frames (default: a 12-frame pan) at FPS, and a 440 Hz tone as long as them."""
    frames = pan_frames() if frames is None else frames
    pts = [round(t / FPS / time_base) for t in range(len(frames))] if pts is None else pts
    with av.open(str(path), "w") as out:
        stream = None
        if video:
            stream = out.add_stream(codec, rate=FPS)
            stream.width, stream.height = (frames[0].shape[1], frames[0].shape[0]) if frames else SIZE
            stream.pix_fmt, stream.time_base = pix_fmt, time_base
            stream.codec_context.time_base = time_base  # else the encoder rounds the timestamps to 1/FPS
            if rotate is not None:
                stream.set_display_rotation(rotate)
        sound = out.add_stream("aac", rate=SAMPLE_RATE, layout="mono") if audio else None
        out.start_encoding()  # the header, even when no frame follows
        for frame, t in zip(frames if video else [], pts):
            picture = av.VideoFrame.from_ndarray(frame, format="rgb24")
            picture.pts, picture.time_base = t, time_base
            for packet in stream.encode(picture):
                out.mux(packet)
        if stream is not None:
            for packet in stream.encode():
                out.mux(packet)
        if sound is not None:
            seconds = max(len(frames), 1) / FPS
            tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(int(SAMPLE_RATE * seconds)) / SAMPLE_RATE))
            tone = tone.astype(np.float32)
            for start in range(0, len(tone), 1024):
                chunk = av.AudioFrame.from_ndarray(tone[None, start:start + 1024], format="flt", layout="mono")
                chunk.sample_rate, chunk.pts = SAMPLE_RATE, start
                for packet in sound.encode(chunk):
                    out.mux(packet)
            for packet in sound.encode():
                out.mux(packet)
    return path


def decoded(path: Path) -> tuple[list[np.ndarray], list[float], list[int]]:
    """(RGB frames, their times in s, their display rotations) of a video file."""
    frames, times, rotations = [], [], []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            times.append(float(frame.time))
            rotations.append(frame.rotation)
    return frames, times, rotations


def audio_packets(path: Path) -> list[tuple[float, bytes]]:
    with av.open(str(path)) as container:
        return [(float(p.pts * p.time_base), bytes(p)) for p in container.demux(audio=0) if p.dts is not None]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name)


@pytest.fixture(scope="module")
def light(request):
    make_model = request.getfixturevalue("make_model")
    return make_model(architecture="light")


@pytest.fixture(scope="module")
def light_dir(tmp_path_factory, light) -> Path:
    path = tmp_path_factory.mktemp("tiny_light")
    light.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return write_clip(tmp_path_factory.mktemp("clips") / "pan.mp4")


# -- files ----------------------------------------------------------------------------------------------------------
def test_same_frames_rate_timestamps_and_the_sound_copied_unchanged(clip, tmp_path, light):
    out = tmp_path / "styled.mp4"
    seen = []
    summary = stylize_video(light, clip, out, "starry-night", progress=lambda done, total: seen.append((done, total)))
    frames, times, _ = decoded(out)
    source_frames, source_times, _ = decoded(clip)
    assert len(frames) == len(source_frames) == 12 == summary["frames"]
    assert times == pytest.approx(source_times, abs=1e-3)
    with av.open(str(out)) as container:
        assert container.streams.video[0].average_rate == FPS
        assert container.streams.video[0].codec_context.name == "h264"
        assert (container.streams.video[0].width, container.streams.video[0].height) == SIZE
    assert audio_packets(out) == audio_packets(clip)  # every packet of the sound, byte for byte, at the same time
    assert seen == [(i, 12) for i in range(1, 13)]
    assert not np.allclose(np.mean(frames[0], axis=(0, 1)), np.mean(source_frames[0], axis=(0, 1)), atol=2)  # styled
    assert leftovers(tmp_path) == []


def test_no_sound_and_a_variable_frame_rate(tmp_path, light):
    pts = [0, 40, 120, 160, 300, 340, 500, 520, 700, 780]  # ms: uneven gaps
    src = write_clip(tmp_path / "vfr.mkv", pan_frames(10), audio=False, pts=pts, time_base=Fraction(1, 1000))
    out = tmp_path / "vfr-out.mkv"
    summary = stylize_video(light, src, out, "great-wave")
    _, times, _ = decoded(out)
    assert times == pytest.approx([t / 1000 for t in pts], abs=1e-3)
    assert summary["audio"] is None
    with av.open(str(out)) as container:
        assert not container.streams.audio


def test_rotation_is_applied_to_the_pixels(tmp_path, light):
    src = write_clip(tmp_path / "turned.mp4", rotate=90)
    out = tmp_path / "upright.mp4"
    notes = []
    # strength 0: the light generator returns the photo itself, so the output shows the orientation exactly
    stylize_video(light, src, out, "starry-night", strength=0.0, blend=0.0, notice=notes.append)
    frames, _, rotations = decoded(out)
    source, _, source_rotations = decoded(src)
    assert source_rotations[0] == 90 and set(rotations) == {0}
    assert frames[0].shape[:2] == (SIZE[0], SIZE[1])  # 96 wide, 64 high, turned: 64 x 96
    right = np.mean([np.abs(np.rot90(s, 1).astype(int) - f).mean() for s, f in zip(source, frames)])
    wrong = np.mean([np.abs(np.rot90(s, -1).astype(int) - f).mean() for s, f in zip(source, frames)])
    assert right < 4 < wrong, (right, wrong)
    assert any("rotated by 90 degrees" in note for note in notes)


def test_odd_sizes_become_even_and_large_frames_are_downscaled_with_a_note(tmp_path, light):
    odd = [f[:63, :95] for f in pan_frames(4)]
    src = write_clip(tmp_path / "odd.mkv", odd, codec="ffv1", pix_fmt="yuv444p", audio=False)
    out = tmp_path / "odd-out.mkv"
    stylize_video(light, src, out, "starry-night")
    assert decoded(out)[0][0].shape[:2] == (62, 94)

    notes = []
    summary = stylize_video(light, src, tmp_path / "small.mp4", "starry-night", max_size=48, notice=notes.append)
    assert summary["size"] == [48, 30] and decoded(tmp_path / "small.mp4")[0][0].shape[:2] == (30, 48)
    assert notes == ["odd.mkv is 95x63 px; its frames are downscaled to 48x30 (max size 48 px)"]
    assert working_size((1920, 1080), 512) == (512, 288) and working_size((33, 17), 512) == (32, 16)


def _bad_inputs(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, what the one-line error says)."""
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n")
    picture = tmp_path / "picture.png"
    Image.fromarray(pan_frames(1)[0]).save(picture)
    corrupt = write_clip(tmp_path / "corrupt.mp4", pan_frames(24))
    payload = bytearray(corrupt.read_bytes())
    middle = len(payload) // 2
    payload[middle:middle + 2000] = np.random.default_rng(0).integers(0, 256, 2000, dtype=np.uint8).tobytes()
    corrupt.write_bytes(bytes(payload))
    truncated = write_clip(tmp_path / "truncated.mkv", pan_frames(24))
    truncated.write_bytes(truncated.read_bytes()[:len(truncated.read_bytes()) // 2])
    return {
        "not a video": (text, "notes.mp4 is not a video"),
        "a picture": (picture, "picture.png is a picture, not a video"),
        "audio only": (write_clip(tmp_path / "sound.mka", video=False), "sound.mka has no video stream (an audio-only"),
        "no frames": (write_clip(tmp_path / "silent.mkv", []), "silent.mkv has no video frames"),
        "empty": (write_clip(tmp_path / "empty.mkv", [], audio=False), "empty.mkv ends before any video"),
        "corrupt half-way": (corrupt, "corrupt.mp4: the video is corrupt after frame"),
        "truncated": (truncated, "truncated.mkv: the video stream ends at"),
        "missing": (tmp_path / "nothing.mp4", "video not found"),
    }


def test_bad_input_is_one_line_and_writes_nothing(tmp_path, light):
    for name, (src, message) in _bad_inputs(tmp_path).items():
        out = tmp_path / "out" / f"{name}.mp4"
        with pytest.raises(StyleTransferError) as caught:
            stylize_video(light, src, out, "starry-night")
        assert message in str(caught.value) and "\n" not in str(caught.value), (name, str(caught.value))
        assert not out.exists(), name
        assert not (tmp_path / "out").exists() or leftovers(tmp_path / "out") == [], name
    with pytest.raises(StyleTransferError, match="cannot write videos named out.avi"):
        stylize_video(light, tmp_path / "notes.mp4", tmp_path / "out.avi", "starry-night")
    with pytest.raises(StyleTransferError, match="video frames are at most the model's working size, 128 px: a max size of 200 is too large"):
        stylize_video(light, tmp_path / "notes.mp4", tmp_path / "out.mp4", "starry-night", max_size=200)


# -- frame streams --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("preserve_color", [False, True])
def test_smoothing_zero_is_the_image_path_exactly(light, preserve_color):
    frames = pan_frames(3)
    stylizer = light.prepare("starry-night", style_weight=2.0, preserve_color=preserve_color)
    streamed = list(stylize_frames(stylizer, frames, smoothing=0.0, align=False, blend=0.0))
    for frame, out in zip(frames, streamed):
        picture = light.stylize(Image.fromarray(frame), "starry-night", style_weight=2.0, preserve_color=preserve_color)
        assert np.array_equal(np.asarray(picture), out)


def test_a_scene_cut_starts_afresh(light):
    from skimage import data

    other = [np.ascontiguousarray(data.coffee()[100:164, 200 + 3 * t:296 + 3 * t]) for t in range(3)]
    stylizer = light.prepare("starry-night")
    video = VideoStylizer(stylizer)
    outputs = [video(f) for f in pan_frames(4) + other]
    assert video.cuts == 1
    fresh = VideoStylizer(stylizer)(other[0])
    assert np.array_equal(outputs[4], fresh)  # the first frame after the cut owes nothing to the shot before
    assert not np.array_equal(outputs[5], VideoStylizer(stylizer)(other[1]))  # after it, the stream carries on


def test_the_onnx_path_matches_torch(light, monkeypatch):
    from cst.engines import OnnxEngine

    frames = pan_frames(5)
    video = VideoStylizer(light.prepare("the-scream"))
    fast = [video(f) for f in frames]
    assert isinstance(video._engine, OnnxEngine)  # light models run the smoothed ONNX graph
    monkeypatch.setenv("CST_ENGINE", "torch")
    video = VideoStylizer(light.prepare("the-scream"))
    slow = [video(f) for f in frames]
    assert video._engine is False
    for a, b in zip(fast, slow):
        assert np.abs(a.astype(int) - b).max() <= 2


@pytest.mark.parametrize("architecture", ["light", "vgg"])
def test_temporal_levers_lower_the_warping_error_of_a_pan(make_model, architecture):
    model = make_model(architecture=architecture)
    stylizer = model.prepare("starry-night")

    def warp(clip, **settings) -> float:
        outputs = list(stylize_frames(stylizer, clip.frames, **settings))
        return video_eval.clip_consistency(clip, outputs, None)["warp"]

    photo = video_eval._skimage_photo("astronaut")
    stride = stylizer.model.downsampling  # a pan by whole strides: only the statistics change between frames
    on_grid = video_eval.pan_clip(photo, 8, 96, (stride, 0))
    assert video_eval.clip_consistency(on_grid, on_grid.frames, None)["warp"] == 0.0  # the known shift is exact
    per_frame = warp(on_grid, smoothing=0.0, align=False, blend=0.0)
    assert warp(on_grid, smoothing=0.9, align=False, blend=0.0) < 0.9 * per_frame

    off_grid = video_eval.pan_clip(photo, 8, 96, (3, 1))  # a pan off the network's grid: phase alignment
    per_frame = warp(off_grid, smoothing=0.0, align=False, blend=0.0)
    assert warp(off_grid, smoothing=0.0, align=True, blend=0.0) < 0.5 * per_frame  # alignment on its own
    assert warp(off_grid, smoothing=0.0, align=False, blend=0.5) < 0.9 * per_frame  # blending on its own
    assert warp(off_grid) < 0.6 * per_frame  # the defaults: statistics, alignment, blending


# -- the command line -----------------------------------------------------------------------------------------------
def test_cli_video(clip, tmp_path, light_dir):
    out = tmp_path / "cli.mp4"
    proc = subprocess.run([sys.executable, "-m", "cst", "video", str(clip), "--style", "starry-night", "--style",
                           "great-wave", "--style-blend", "0.7,0.3", "-o", str(out), "--model", str(light_dir),
                           "--strength", "0.8", "--style-weight", "2", "--smoothing", "0.8", "--max-size", "64"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
                               "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"{out}  (12 frames, 64x42, sound (aac) copied)"
    assert "cst: note: pan.mp4 is 96x64 px; its frames are downscaled to 64x42" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(decoded(out)[0]) == 12 and audio_packets(out) == audio_packets(clip)


@pytest.mark.parametrize("args, message", [
    (["--smoothing", "1.5"], "--smoothing must be <= 1, got 1.5"),
    (["--blend", "-0.1"], "--blend must be >= 0, got -0.1"),
    (["--strength", "2"], "--strength must be <= 1, got 2"),
    (["-o", "{tmp}/out.gif"], "cannot write videos named out.gif"),
    (["--style", "no-such-painting"], "style image not found: no-such-painting"),
])
def test_cli_bad_settings_are_one_line(args, message, clip, tmp_path, light_dir, capsys):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    base = ["video", str(clip), "-o", str(tmp_path / "out.mp4"), "--model", str(light_dir)]
    if "--style" not in args:
        base += ["--style", "starry-night"]
    if "-o" in args:
        base = base[:2] + base[4:]
    assert cli.main(base + args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cst: error: ") and message in err and "\n" not in err, err
    assert not (tmp_path / "out.mp4").exists()


def test_cli_not_a_video(tmp_path, light_dir, capsys):
    src = tmp_path / "audio.mka"
    write_clip(src, video=False)
    assert cli.main(["video", str(src), "--style", "starry-night", "-o", str(tmp_path / "o.mp4"),
                     "--model", str(light_dir)]) == 2
    assert capsys.readouterr().err.strip() == "cst: error: audio.mka has no video stream (an audio-only file)"
    assert probe(write_clip(tmp_path / "ok.mkv", pan_frames(2), audio=False)).frames == 2


# -- the Space ------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def space(tmp_path_factory, light_dir):
    """`python app.py` serving the tiny light model, offline (benchmarks/load.py's running_space)."""
    from benchmarks.load import running_space

    with running_space(tmp_path_factory.mktemp("space"), {"CST_MODEL": str(light_dir)}) as space:
        yield space


def test_space_video_endpoint_keeps_frames_and_sound_and_shows_progress(space, clip, tmp_path):
    import asyncio

    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    client = Client(space.url, verbose=False, download_files=str(tmp_path))
    job = client.submit(clip=handle_file(str(clip)), style=None, preset="great-wave", strength=0.9,
                        frame_size=128, api_name="/stylize_video")

    async def updates() -> list:
        return [u async for u in job]

    progress = [unit for u in asyncio.run(updates()) for unit in (getattr(u, "progress_data", None) or [])]
    result = Path(job.result(timeout=120))
    frames, times, _ = decoded(result)
    assert len(frames) == 12 and frames[0].shape[:2] == (64, 96)
    assert times == pytest.approx(decoded(clip)[1], abs=1e-3)
    assert audio_packets(result) == audio_packets(clip)
    assert any(p.desc == "Stylising frames" and p.unit == "frames" and p.length == 12 for p in progress), progress

    long_clip = write_clip(tmp_path / "long.mp4", pan_frames(2) * 61, audio=False)  # 122 frames at 12 fps
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n")
    for path, kwargs, message in [
            (long_clip, {"preset": "starry-night"}, "long.mp4 is 10.2 s long; the limit here is 10 s"),
            (text, {"preset": "starry-night"}, "notes.mp4 is not a video"),
            (clip, {}, "Pick a built-in style or add a style image first")]:
        with pytest.raises(AppError) as caught:
            client.predict(clip=handle_file(str(path)), style=None, api_name="/stylize_video", **kwargs)
        assert message in str(caught.value) and "\n" not in str(caught.value), str(caught.value)
    assert "Traceback" not in space.log_path.read_text()


def test_webcam_frames_share_one_stream_until_the_settings_change(light):
    from cst import space_video

    frames = pan_frames(3, size=(320, 240))
    settings = dict(style=None, strength=1.0, content_weight=1.0, style_weight=1.0, adversarial_weight=1.0,
                    preserve_color=False, preset="starry-night")
    out, state = space_video.stylize_webcam(light, frames[0], None, **settings)
    assert out.shape == (192, 256, 3) and state.video.frames == 1  # fitted to WEBCAM_SIZE
    out, again = space_video.stylize_webcam(light, frames[1], state, **settings)
    assert again is state and state.video.frames == 2  # the same stream: statistics and alignment carry on
    _, changed = space_video.stylize_webcam(light, frames[2], state, **{**settings, "style_weight": 3.0})
    assert changed is not state and changed.video.frames == 1  # new sliders: the style is prepared again
    assert space_video.stylize_webcam(light, None, state, **settings) == (None, state)


# -- python -m cst.eval --video -------------------------------------------------------------------------------------
def test_eval_video_prints_the_table(tmp_path, light_dir, capsys):
    import json

    import cst.eval

    report = tmp_path / "video.json"
    assert cst.eval.main(["--video", "--model", str(light_dir), "--size", "128", "--frames", "3", "--styles",
                          "starry-night", "--baseline-styles", "", "--no-gram", "--json", str(report)]) == 0
    out = capsys.readouterr().out
    for row in ("cst per frame", "cst + statistics 0.9", "cst + statistics + align", "cst video (+ blend 0.5)",
                "input frames (floor)"):
        assert row in out, out
    summary = json.loads(report.read_text())["summary"]
    assert summary["input frames (floor)"]["pan_warp"] == 0.0  # the pans' known shifts are exact
    assert 0.0 < summary["input frames (floor)"]["flow_warp"] < 6.0  # DIS flow on the zoom clip: a small residue
    assert cst.eval.main(["--video", "--styles", "nope"]) == 2
    assert capsys.readouterr().err.startswith("error: --styles takes built-in style names")
