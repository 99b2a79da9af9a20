"""The Space's video and webcam tabs (cst/video.py in Gradio), built inside the caller's Blocks:

    with gr.Blocks() as demo:
        ...  # the picture page: style picker, sliders
        space_video.video_tabs(model, style=style, preset=preset, strength=strength, content_weight=...)

Both tabs use the page's style (built-in painting or own image, optional second style) and sliders, so what a
visitor set up for a photo applies to a clip and to the webcam as it is.

- Video: upload a clip of up to MAX_SECONDS s; the result has the clip's frame rate, frame count and sound, its
  frames at most the chosen size (long side); progress shows the frames done. API: `/stylize_video`.
- Webcam: the browser streams camera frames; each is stylised at WEBCAM_SIZE px with the running statistics,
  alignment and blending of `cst.video.VideoStylizer` kept in the session's state, so the picture does not flicker.
  It keeps up with a light (real-time) model; with the embedded VGG model it shows a frame every second or so.
"""
from __future__ import annotations

import functools
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import numpy as np
from PIL import Image

from . import frontend
from .errors import StyleTransferError
from .imageio import fit_within
from .video import DEFAULT_MAX_SIZE, VideoStylizer, stylize_video

log = logging.getLogger("cst.app")

MAX_SECONDS = 10  # the longest clip the Space takes
VIDEO_SIZE_MIN, VIDEO_SIZE_MAX, VIDEO_SIZE_DEFAULT = 128, 512, 256  # long side of the frames (px)
WEBCAM_SIZE = 256  # long side of the webcam frames stylised (px)
WEBCAM_EVERY = 0.1  # seconds between webcam frames sent by the browser (it skips frames while one is in work)


def user_error(message: str) -> gr.Error:
    """A mistake of the visitor's: shown on the page, and no traceback in the server log (it is not our bug)."""
    return gr.Error(message, print_exception=False)


def _styles(style, preset, style2, style2_blend):
    """The page's style inputs -> what `model.prepare` takes (a preset wins over an image)."""
    first = frontend.chosen_style(style, preset)
    blend = frontend.check_number(style2_blend, "style2_blend", low=0.0, high=1.0)
    return frontend.style_blend(first, style2, blend)


def _prepare(model, style, preset, strength, content_weight, style_weight, adversarial_weight, preserve_color,
             style2, style2_blend):
    sliders = frontend.check_sliders(strength, content_weight, style_weight, adversarial_weight)
    return model.prepare(_styles(style, preset, style2, style2_blend), **sliders,
                         preserve_color=bool(preserve_color)), sliders


def stylize_clip(model, clip: str | None, style: str | None, strength: float, content_weight: float,
                 style_weight: float, adversarial_weight: float, preserve_color: bool, frame_size: int,
                 style2: str | None = None, style2_blend: float = 0.5, preset: str | None = None,
                 progress=gr.Progress()) -> str:
    """The `/stylize_video` endpoint: a clip (up to MAX_SECONDS s) -> the stylised clip (mp4, its sound kept)."""
    if clip is None:
        raise user_error("Add a video clip first.")
    try:
        size = frontend.check_max_size(int(frontend.check_number(frame_size, "frame_size", low=VIDEO_SIZE_MIN,
                                                                 high=VIDEO_SIZE_MAX)), "frame_size")
        if size > model.config.max_size:  # this model's working size: frames are stylised whole
            gr.Info(f"Frames are stylised at {model.config.max_size} px at most with this model.")
            size = model.config.max_size
        stylizer, sliders = _prepare(model, style, preset, strength, content_weight, style_weight,
                                     adversarial_weight, preserve_color, style2, style2_blend)
        notice = frontend.clamp_notice(sliders, model.config.weight_min, model.config.weight_max)
        if notice:
            gr.Warning(notice)
        target = Path(tempfile.mkdtemp(prefix="cst-video-")) / f"{Path(clip).stem}_cst.mp4"
        progress(0.0, desc="Reading the clip")

        def frames_done(done: int, total: int | None) -> None:
            progress((min(done, total), total) if total else (done, None), desc="Stylising frames", unit="frames")

        summary = stylize_video(model, clip, target, stylizer, max_size=size, max_seconds=MAX_SECONDS,
                                progress=frames_done, notice=gr.Info)
        log.info("video: %s frames at %sx%s", summary["frames"], *summary["size"])
        return str(target)
    except StyleTransferError as err:
        raise user_error(str(err)) from None
    except gr.Error:
        raise
    except Exception as err:  # our problem: the traceback goes to the log once, the visitor gets one line
        log.exception("stylize_video failed")
        raise gr.Error(f"Video stylisation failed ({type(err).__name__}). Try a shorter clip or smaller frames.",
                       print_exception=False) from None


@dataclass
class WebcamState:
    """A webcam session's stream: the settings it was prepared for and its VideoStylizer."""

    key: tuple
    video: VideoStylizer


def stylize_webcam(model, frame: np.ndarray | None, state: WebcamState | None, style, strength, content_weight,
                   style_weight, adversarial_weight, preserve_color, style2=None, style2_blend=0.5, preset=None):
    """One webcam frame -> (stylised frame, state). The style is encoded again only when the settings change."""
    if frame is None:
        return None, state
    key = (style, preset, strength, content_weight, style_weight, adversarial_weight, bool(preserve_color), style2,
           style2_blend)
    try:
        if state is None or state.key != key:
            stylizer, _ = _prepare(model, style, preset, strength, content_weight, style_weight, adversarial_weight,
                                   preserve_color, style2, style2_blend)
            state = WebcamState(key, VideoStylizer(stylizer))
        picture = fit_within(Image.fromarray(np.asarray(frame, dtype=np.uint8)[..., :3]), WEBCAM_SIZE)
        return state.video(np.asarray(picture)), state
    except StyleTransferError as err:
        raise user_error(str(err)) from None


def video_tabs(model, *, style: gr.components.Component, preset: gr.components.Component,
               strength: gr.components.Component, content_weight: gr.components.Component,
               style_weight: gr.components.Component, adversarial_weight: gr.components.Component,
               preserve_color: gr.components.Component, style2: gr.components.Component | None = None,
               style2_blend: gr.components.Component | None = None) -> gr.Tabs:
    """Build the Video and Webcam tabs inside the current Blocks, wired to the page's style and slider components;
    `model` is a StyleTransferModel (or anything with a `.model` that is one, like app.LoadedModel)."""
    model = getattr(model, "model", model)
    second = [c for c in (style2, style2_blend) if c is not None]
    sliders = [strength, content_weight, style_weight, adversarial_weight, preserve_color]
    with gr.Tabs(elem_id="video-tabs") as tabs:
        with gr.Tab("Video", elem_id="video-tab"):
            gr.Markdown(f"Stylise a clip of up to {MAX_SECONDS} s with the style and sliders above: the same frame "
                        f"rate and frame count, the sound kept, no flicker between frames.")
            with gr.Row():
                clip = gr.Video(sources=["upload"], include_audio=True, label=f"Clip (up to {MAX_SECONDS} s)",
                                height=240, elem_id="video-input")
                result = gr.Video(label="Stylised clip", interactive=False, include_audio=True, height=240,
                                  elem_id="video-output")
            with gr.Row():
                frame_size = gr.Slider(VIDEO_SIZE_MIN, VIDEO_SIZE_MAX, value=VIDEO_SIZE_DEFAULT, step=32,
                                       label="Frame size (long side, px)", elem_id="video-size",
                                       info=f"larger frames are downscaled to this (the CLI's default is "
                                            f"{DEFAULT_MAX_SIZE})")
                run = gr.Button("Stylize video", variant="primary", elem_id="video-button")
            inputs = [clip, style, *sliders, frame_size, *second]
            if len(second) < 2:  # the API's positions stay fixed: hidden defaults for a missing second style
                inputs += [gr.State(None), gr.State(0.5)][len(second):]
            run.click(functools.partial(stylize_clip, model), inputs=[*inputs, preset], outputs=result,
                      api_name="stylize_video", concurrency_limit=1)
        with gr.Tab("Webcam", elem_id="webcam-tab"):
            gr.Markdown(f"Your camera, stylised live at {WEBCAM_SIZE} px with the style and sliders above (it keeps "
                        f"up with a light real-time model; the built-in VGG model shows about a frame a second).")
            with gr.Row():
                camera = gr.Image(sources=["webcam"], streaming=True, type="numpy", label="Camera",
                                  elem_id="webcam-input")
                live = gr.Image(label="Stylised", interactive=False, streaming=True, elem_id="webcam-output")
            state = gr.State(None)
            extra = second + [gr.State(None), gr.State(0.5)][len(second):]
            camera.stream(functools.partial(stylize_webcam, model),
                          inputs=[camera, state, style, *sliders, *extra, preset], outputs=[live, state],
                          stream_every=WEBCAM_EVERY, time_limit=300, concurrency_limit=2, api_visibility="private",
                          show_progress="hidden")
    return tabs
