"""The cst Space: a Gradio page (and a `/stylize` API) around `StyleTransferModel.stylize`.

    python app.py                              # http://127.0.0.1:7860 (GRADIO_SERVER_NAME / _PORT override)
    CST_MODEL=org/name@rev python app.py       # a Hub model (or a local folder) instead of the embedded default

The model is loaded once in `main()` (importing this file loads nothing); a model that cannot be loaded falls back to
the embedded default, and the page says which one runs. Paper symbols, as in cst.model: α = content_weight,
β = style_weight, λ = adversarial_weight.

The page: inputs on the left (photo, style image, the nine built-in paintings as a dropdown and as thumbnails, and
one plain-words control, "content ↔ style"; the strength, the loss weights α, β, λ, output size and colours, and a
second style in accordions), on the right a before/after comparison of photo and result, its scores and the Stylize
button, so all show on a 1366x768 screen. The loss-weight sliders move over log10(weight) and show the weight in their
label; hidden Number inputs carry the weights themselves, so the `/stylize` API takes plain weights. The
"content ↔ style" control t in [-1, 1] sets both: log10 α = -t·R and log10 β = t·R with R = 1 for the trained range
0.1-10 (so α = 10^-t, β = 10^t; t = 0 is α = β = 1, the default); moving α or β sets t = (log10 β - log10 α) / 2R.
`preset` (a built-in style's name, default None) is the API's last parameter and wins over `style`.

The `/stylize` API returns (the stylised picture's path, its scores {"content_kept": %, "style_taken": %}; see
cst.scores); the page shows them beside the comparison.
"""
from __future__ import annotations

import atexit
import ctypes
import functools
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import torch
from gradio.route_utils import delete_files_created_by_app
from PIL import Image

import app_examples
from cst import DEFAULT_MODEL, StyleTransferError, StyleTransferModel, frontend, presets, space_video
from cst.imageio import fit_within, load_image
from cst.scores import picture_scores, style_reference
from cst.space_video import user_error

log = logging.getLogger("cst.app")

TITLE = "cst — content-preserving style transfer"
DEFAULT_MODEL_NAME = "the built-in default model (cst/default_model)"
# long side of the result in px: the cap keeps one request to seconds on a CPU Space; photos are never upscaled
OUTPUT_SIZE_MIN, OUTPUT_SIZE_MAX, OUTPUT_SIZE_DEFAULT = 256, 1024, 512
STYLE2_BLEND_DEFAULT = 0.5  # share of the optional second style
FULL_RESOLUTION_MAX_MP = 16  # "Full resolution" (in tiles) up to this many megapixels: ~4000x4000, 20 s on 2 cores
PREVIEW_MAX_SIDE = 2048  # the before/after comparison shows at most this; the full picture is a download
MAX_UPLOAD = "50mb"  # Gradio refuses bigger uploads itself; a 50 MP camera JPEG is well under this
# requests waiting beyond the ones running; one more is refused at once (gradio_client: QueueError "Queue is full!
# Please try again.") instead of waiting without end
QUEUE_SIZE = int(os.environ.get("CST_QUEUE_SIZE", "32"))
# uploads and results live in Gradio's cache folder (tempfile.gettempdir()/gradio, or GRADIO_TEMP_DIR); the files
# this app made are deleted once they are this old (looked for four times as often), all of them when it stops
CACHE_MAX_AGE_S = int(os.environ.get("CST_CACHE_MAX_AGE_S", "3600"))
DEFAULT_PRESET = "starry-night"  # the built-in style the page opens with
WEIGHT_STEP = 0.05  # the loss-weight sliders move in steps of log10(weight): 41 positions from 0.1 to 10
# the loss-weight sliders hold log10(weight); this turns a position into the weight the hidden API input carries
LOG_TO_WEIGHT_JS = "(position) => Number(Math.pow(10, position).toPrecision(3))"
BALANCE_STEP = 0.05  # the content <-> style control's step, over [-1, 1]
COMPARISON_START = 15  # % of the before/after comparison that shows the photo at first: mostly the result
SCORES_HELP = ("content kept: 100 % = your photo, 0 % = the painting · style taken: 0 % = your photo, "
               "100 % = the painting's texture and colours")
CSS = """
#header h2 { margin: 0 0 2px 0; }
#header p { margin: 0; }
#result-column { position: sticky; top: 8px; align-self: flex-start; }  /* the result stays in view while scrolling */
#model-info p { margin: 0; font-size: 0.85em; }
#style-credit p { margin: 0; font-size: 0.85em; }
#scores p { margin: 0; text-align: center; }
#scores-help p { margin: 0; font-size: 0.8em; text-align: center; opacity: 0.75; }
#preset-gallery .grid-wrap { padding: 4px; overflow: hidden; }
#preset-gallery .grid-container { grid-template-columns: repeat(var(--grid-cols), minmax(0, 1fr)) !important;
                                  grid-template-rows: none !important; grid-auto-rows: auto !important; gap: 6px; }
#preset-gallery .thumbnail-item { aspect-ratio: 1 / 1; }
"""


@dataclass(frozen=True)
class LoadedModel:
    """The model the Space runs and how the page names it."""

    model: StyleTransferModel
    name: str  # "org/name@rev", a folder, or DEFAULT_MODEL_NAME
    fallback_notice: str = ""  # why the model asked for (CST_MODEL) is not the one running; "" when it is


def load_model(spec: str | None) -> LoadedModel:
    """`spec` = "org/name", "org/name@revision" or a folder; None/"" or any failure gives the embedded default."""
    notice = ""
    if spec:
        try:
            return LoadedModel(frontend.load_model(spec), spec)
        # ValueError also covers huggingface_hub's HFValidationError (a malformed repo id), which cst lets through
        except (StyleTransferError, ValueError, OSError) as err:
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            notice = f"`CST_MODEL={spec}` could not be loaded ({reason}); running the built-in default instead."
            log.warning(notice)
    return LoadedModel(StyleTransferModel.from_pretrained(DEFAULT_MODEL), DEFAULT_MODEL_NAME, notice)


def usable_cpus() -> int:
    """CPUs this process may run on (a container's share, not the host's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def concurrency_limit() -> int:
    """Requests run at once: half the usable CPUs, so each run's torch ops still get two or more threads."""
    return max(1, usable_cpus() // 2)


def pass_uploads_unopened(image: gr.Image) -> gr.Image:
    """Make a gr.Image(type="filepath") hand an uploaded file's path on without opening it, and return it.

    Stock gr.Image opens every upload with PIL while preprocessing, so a text file fails there with an internal error
    the visitor never sees; this way `cst.imageio.load_image` reads it and says plainly what is wrong. (An instance
    override rather than a subclass: Gradio writes a .pyi stub beside the module of every Component subclass.)
    """
    stock_preprocess = image.preprocess

    def preprocess(payload):
        if payload is not None and payload.path is not None and not (payload.url or "").startswith("data:"):
            return str(payload.path)
        return stock_preprocess(payload)  # webcam/clipboard data URLs, and None

    image.preprocess = preprocess
    return image


def quiet_validation(component: gr.components.Component, name: str) -> gr.components.Component:
    """Make Gradio's own check of a value sent to the API (a slider's range, a dropdown's choices) a plain error that
    names the parameter, with no traceback in the server log, and return the component (an instance override, as
    in pass_uploads_unopened)."""
    stock_preprocess = component.preprocess

    def preprocess(payload):
        try:
            return stock_preprocess(payload)
        except gr.Error as err:
            raise user_error(f"{name}: {err.message}") from None
        except (TypeError, ValueError):
            raise user_error(f"{name}: {payload!r} is not a valid value") from None

    component.preprocess = preprocess
    return component


def stylize(loaded: LoadedModel, content: str | None, style: str | None, strength: float, content_weight: float,
            style_weight: float, adversarial_weight: float, preserve_color: bool, output_size: int,
            style2: str | None = None, style2_blend: float = STYLE2_BLEND_DEFAULT, preset: str | None = None,
            full_resolution: bool = False, progress=gr.Progress()) -> tuple[Image.Image, dict[str, float]]:
    """The `/stylize` endpoint: content and style(s) are image files; returns the stylised picture and its scores,
    {"content_kept": %, "style_taken": %} (cst.scores).

    preset: a built-in style's name (`python -m cst presets`); when given it is used instead of `style`.
    style2_blend is the share of the optional second style (0 = only the first). The result has the content's size,
    downscaled (with a notice) if its long side exceeds output_size; with full_resolution, the photo's own size (up
    to FULL_RESOLUTION_MAX_MP megapixels), stylised in tiles that share the whole picture's statistics.
    """
    if content is None:
        raise user_error("Add a content photo first.")
    try:
        first = frontend.chosen_style(style, preset)  # an unknown preset or no style: a StyleTransferError, below
        progress(0.0, desc="Reading images")
        # NaN passes Gradio's range check (every comparison with it is false): check it here, as a number
        output_size = int(frontend.check_number(output_size, "output_size", low=OUTPUT_SIZE_MIN,
                                                high=OUTPUT_SIZE_MAX))
        photo = load_image(content, "content image")  # read once; `stylize` takes the PIL image as it is
        if full_resolution and photo.width * photo.height > FULL_RESOLUTION_MAX_MP * 1e6:
            raise StyleTransferError(f"Full resolution takes photos up to {FULL_RESOLUTION_MAX_MP} MP; this one is "
                             f"{photo.width}x{photo.height} px ({photo.width * photo.height / 1e6:.0f} MP). "
                             f"Untick it to stylise at the output size.")
        work = photo if full_resolution else fit_within(photo, output_size)
        if work.size != photo.size:
            gr.Info(f"The content image is {photo.width}x{photo.height} px; it was downscaled to "
                    f"{work.width}x{work.height} (output size {output_size} px).")
        sliders = frontend.check_sliders(strength, content_weight, style_weight, adversarial_weight)
        notice = frontend.clamp_notice(sliders, loaded.model.config.weight_min, loaded.model.config.weight_max)
        if notice:
            gr.Warning(notice)
        styles = frontend.style_blend(first, style2, style2_blend)
        progress(0.2, desc="Stylising")
        picture = loaded.model.stylize(work, styles, **sliders, preserve_color=preserve_color,
                                       max_size=output_size, full_resolution=bool(full_resolution),
                                       progress=lambda done, total: progress((done, total), desc="Stylising tiles",
                                                                             unit="tiles"))
        progress(0.9, desc="Scoring")
        return picture, picture_scores(loaded.model, work, picture, style_reference(loaded.model, styles)).as_dict()
    except StyleTransferError as err:
        raise user_error(str(err)) from None
    except Exception as err:  # anything else (e.g. out of memory): say so plainly and keep serving
        log.exception("stylize failed")  # our problem: the traceback goes to the log once, here
        raise gr.Error(f"Stylisation failed ({type(err).__name__}). Try a smaller output size.",
                       print_exception=False) from None
    finally:
        release_freed_memory()


def show_result(content: str | None, result: str | None, scores: dict | None):
    """What the page shows after `/stylize`: the before/after comparison (the photo at the result's size, the result)
    and the scores line. `result` is the PNG `/stylize` wrote into Gradio's cache: shown as it is, or, past
    PREVIEW_MAX_SIDE (full resolution), as a preview with that very file as the download (swept with the cache)."""
    if content is None or result is None:
        return None, "", gr.File(visible=False)
    with Image.open(result) as img:  # the header only
        size = img.size
    full = result if max(size) > PREVIEW_MAX_SIDE else None
    shown = fit_within(load_image(result, "result"), PREVIEW_MAX_SIDE) if full else result
    size = shown.size if full else size
    photo = fit_within(load_image(content, "content image"), max(size))
    if photo.size != size:
        photo = photo.resize(size, Image.LANCZOS)
    return (photo, shown), scores_markdown(scores), gr.File(full, visible=full is not None)


def scores_markdown(scores: dict | None) -> str:
    """The line beside the result: "Content kept **72 %** · Style taken **55 %**"."""
    if not scores:
        return "Content kept **–** · Style taken **–**"
    return f"Content kept **{scores['content_kept']:.0f} %** · Style taken **{scores['style_taken']:.0f} %**"


def model_markdown(loaded: LoadedModel) -> str:
    """The line that tells the visitor which model is running (and why, after a fallback)."""
    text = f"**Model:** {loaded.name}"
    return f"{text}  \n⚠️ {loaded.fallback_notice}" if loaded.fallback_notice else text


def preset_credit(name: str | None) -> str:
    """The credit line under the style: title, artist, year and rights of a built-in painting."""
    preset = presets.get(name) if name else None
    if preset is None:
        return "**Style:** your own image (pick a built-in painting above to use one of those instead)"
    return f"**Style:** *{preset.title}*, {preset.artist} ({preset.year}) · {preset.rights}"


def weight_label(name: str, weight: float) -> str:
    """A loss-weight slider's label, with the weight the position stands for."""
    return f"{name} = {weight:.3g}"


def image_input(label: str, elem_id: str, sources=("upload", "clipboard"), height: int = 210) -> gr.Image:
    return pass_uploads_unopened(gr.Image(type="filepath", image_mode=None, label=label, elem_id=elem_id,
                                          sources=list(sources), height=height))


def log_weight_slider(name: str, info: str, elem_id: str, weight_min: float,
                      weight_max: float) -> tuple[gr.Slider, gr.Number]:
    """A slider over log10(weight) (default 0: weight 1) whose label shows the weight, and the hidden Number that
    holds the weight itself, which the `/stylize` API takes (so API callers pass plain weights)."""
    slider = gr.Slider(math.log10(weight_min), math.log10(weight_max), value=0.0, step=WEIGHT_STEP,
                       label=weight_label(name, 1.0), info=f"{info}; log scale, {weight_min:g} to {weight_max:g}",
                       elem_id=elem_id)
    weight = gr.Number(1.0, visible=False, elem_id=f"{elem_id}-value")
    slider.change(None, inputs=slider, outputs=weight, js=LOG_TO_WEIGHT_JS, queue=False, show_progress="hidden",
                  api_visibility="private")
    weight.change(lambda w: gr.Slider(label=weight_label(name, w)), inputs=weight, outputs=slider, queue=False,
                  show_progress="hidden", trigger_mode="always_last", api_visibility="private")
    return slider, weight


def balance_range(weight_min: float, weight_max: float) -> float:
    """R: the "content ↔ style" control t in [-1, 1] puts log10 α at -t·R and log10 β at t·R (R = 1 for 0.1-10)."""
    return min(math.log10(weight_max), -math.log10(weight_min))


def wire_balance(balance: gr.Slider, alpha: gr.Slider, beta: gr.Slider, span: float) -> None:
    """The "content ↔ style" control moves the α and β sliders (log10 α = -t·R, log10 β = t·R); moving α or β by
    hand moves it to t = (log10 β - log10 α) / 2R. In the browser only (no server round trip), on user input only
    (no loops)."""
    private = dict(queue=False, show_progress="hidden", api_visibility="private")
    balance.input(None, inputs=balance, outputs=[alpha, beta], js=f"(t) => [-t * {span!r}, t * {span!r}]", **private)
    from_weights = (f"(a, b) => Number((Math.round(Math.max(-1, Math.min(1, (b - a) / (2 * {span!r})))"
                    f" / {BALANCE_STEP!r}) * {BALANCE_STEP!r}).toFixed(2))")
    for slider in (alpha, beta):
        slider.input(None, inputs=[alpha, beta], outputs=balance, js=from_weights, **private)


def style_picker() -> tuple[gr.Dropdown, gr.Gallery, gr.Markdown]:
    """The built-in paintings: a dropdown ("The Starry Night — Vincent van Gogh"), the same as clickable
    thumbnails, and the chosen painting's credit."""
    table = presets.presets()
    preset = quiet_validation(gr.Dropdown([(f"{p.title} — {p.artist}", p.name) for p in table.values()], value=None,
                                          label="Built-in style (public-domain paintings)", elem_id="style-preset"),
                              "preset")
    gallery = gr.Gallery([str(p.path) for p in table.values()], columns=len(table), rows=1, height=88,
                         allow_preview=False, interactive=False, show_label=False, object_fit="cover", buttons=[],
                         elem_id="preset-gallery")
    credit = gr.Markdown(preset_credit(None), elem_id="style-credit")
    return preset, gallery, credit


def wire_style_picker(demo: gr.Blocks, style: gr.Image, preset: gr.Dropdown, gallery: gr.Gallery,
                      credit: gr.Markdown) -> None:
    """Picking a painting (dropdown or thumbnail) shows it as the style; the visitor's own style image (upload,
    paste, clear) unpicks it. The page opens with DEFAULT_PRESET picked; the API's `preset` default stays None."""
    names = list(presets.presets())
    private = dict(queue=False, show_progress="hidden", api_visibility="private")

    def pick(name: str | None):
        return name, (str(presets.get(name).path) if name else None)

    def pick_thumbnail(evt: gr.SelectData):
        return pick(names[evt.index])

    preset.input(lambda name: pick(name)[1], inputs=preset, outputs=style, **private)
    gallery.select(pick_thumbnail, outputs=[preset, style], **private)
    style.input(lambda: None, outputs=preset, **private)
    preset.change(preset_credit, inputs=preset, outputs=credit, **private)
    demo.load(lambda: pick(DEFAULT_PRESET), outputs=[preset, style], **private)


def resolve_model(model: LoadedModel | StyleTransferModel | None) -> LoadedModel:
    """build_demo's model argument as a LoadedModel: None loads CST_MODEL / the default now."""
    if model is None:
        return load_model(os.environ.get("CST_MODEL"))
    if isinstance(model, StyleTransferModel):
        return LoadedModel(model, "a model handed to build_demo()")
    return model


def settings_inputs(weight_min: float, weight_max: float) -> list[gr.components.Component]:
    """The main "content ↔ style" control, then the accordions under it: strength, loss weights, output size,
    colours, full resolution, a second style. Returns, in the API's order, [strength, content_weight, style_weight,
    adversarial_weight, preserve_color, output_size, style2, style2_blend] and full_resolution (after preset)."""
    balance = gr.Slider(-1.0, 1.0, value=0.0, step=BALANCE_STEP, label="Content ↔ style", elem_id="balance",
                        info="left keeps more of your photo, right takes more of the painting (sets α and β below)")
    with gr.Accordion("Advanced: strength, loss weights α, β, λ, output size, colours", open=False,
                      elem_id="settings"):
        strength = quiet_validation(gr.Slider(0.0, 1.0, value=1.0, step=0.05, label="Style strength",
                                              info="0 gives the photo back, 1 the full stylisation",
                                              elem_id="strength"), "strength")
        sliders = [log_weight_slider("Content weight α", "higher keeps more of the photo's structure",
                                     "content-weight", weight_min, weight_max),
                   log_weight_slider("Style weight β", "higher takes more of the style's texture",
                                     "style-weight", weight_min, weight_max),
                   log_weight_slider("Adversarial weight λ", "a small effect: higher keeps a little more of the photo",
                                     "adversarial-weight", weight_min, weight_max)]
        weights = [weight for _, weight in sliders]
        wire_balance(balance, sliders[0][0], sliders[1][0], balance_range(weight_min, weight_max))
        with gr.Row():
            output_size = quiet_validation(gr.Slider(
                OUTPUT_SIZE_MIN, OUTPUT_SIZE_MAX, value=OUTPUT_SIZE_DEFAULT, step=64, elem_id="output-size",
                label="Output size (long side, px)", info="larger photos are downscaled to this; smaller ones keep "
                                                          "their size"), "output_size")
            preserve_color = gr.Checkbox(False, label="Preserve colours",
                                         info="keep the photo's colours, take only the style's texture",
                                         elem_id="preserve-color")
        full_resolution = gr.Checkbox(False, label=f"Full resolution (up to {FULL_RESOLUTION_MAX_MP} MP)",
                                      info="stylise at the photo's own size, in tiles that share its statistics (no "
                                           "seams); the output size is ignored; tens of seconds for a large photo",
                                      elem_id="full-resolution")
    with gr.Accordion("Blend a second style", open=False, elem_id="blend"):
        with gr.Row():
            style2 = image_input("Second style (optional)", "style2-image", height=160)
            style2_blend = quiet_validation(gr.Slider(0.0, 1.0, value=STYLE2_BLEND_DEFAULT, step=0.05,
                                                      label="Second style share", elem_id="style2-blend",
                                                      info="0 = first style only, 1 = second style only"),
                                            "style2_blend")
    return [strength, *weights, preserve_color, output_size, style2, style2_blend], full_resolution


def build_demo(model: LoadedModel | StyleTransferModel | None = None,
               examples_folder: str | Path = app_examples.DEFAULT_FOLDER) -> gr.Blocks:
    """The Space's Blocks (queue configured): inputs on the left; the before/after comparison, its scores and the
    button on the right, so all fit a 1366x768 screen; the examples below. model=None loads CST_MODEL / the default
    now."""
    model = resolve_model(model)
    config = model.model.config
    sweep = (max(1, CACHE_MAX_AGE_S // 4), CACHE_MAX_AGE_S)  # Gradio's delete_cache: (every n s, files older than)
    with gr.Blocks(title=TITLE, analytics_enabled=False, delete_cache=sweep) as demo:
        gr.Markdown(f"## {TITLE}\nRepaint a photo in the style of a painting while keeping its structure: add a "
                    "photo, pick a painting (or upload your own style), press **Stylize**.", elem_id="header")
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                with gr.Row():
                    content = image_input("Content photo", "content-image", ["upload", "webcam", "clipboard"])
                    style = image_input("Style image", "style-image")
                preset, gallery, credit = style_picker()
                settings, full_resolution = settings_inputs(config.weight_min, config.weight_max)
            with gr.Column(scale=2, elem_id="result-column"):
                comparison = gr.ImageSlider(type="pil", format="png", interactive=False, height=360,
                                            slider_position=COMPARISON_START, buttons=["download", "fullscreen"],
                                            label="Before / after (drag to compare)",
                                            elem_id="comparison")
                scores_line = gr.Markdown(scores_markdown(None), elem_id="scores")
                gr.Markdown(SCORES_HELP, elem_id="scores-help")
                run = gr.Button("Stylize", variant="primary", elem_id="stylize-button")
                gr.Markdown(model_markdown(model), elem_id="model-info")
                # what the /stylize API returns; the page shows them through the comparison and the scores line
                output = gr.Image(type="filepath", format="png", visible=False, elem_id="output-image")
                scores = gr.JSON(visible=False, elem_id="scores-json")
                full_file = gr.File(label="Full-resolution result", visible=False, elem_id="full-file")
        gr.Examples(app_examples.examples(examples_folder), inputs=[content, style, preset],
                    label="Examples: scikit-image's sample photos in built-in styles", cache_examples=False)
        # the video and webcam tabs (cst/space_video.py) share the style and the sliders above
        strength, content_weight, style_weight, adversarial_weight, preserve_color, _, style2, style2_blend = settings
        space_video.video_tabs(model, style=style, preset=preset, strength=strength, content_weight=content_weight,
                               style_weight=style_weight, adversarial_weight=adversarial_weight,
                               preserve_color=preserve_color, style2=style2, style2_blend=style2_blend)
        wire_style_picker(demo, style, preset, gallery, credit)
        run.click(functools.partial(stylize, model), inputs=[content, style, *settings, preset, full_resolution],
                  outputs=[output, scores], api_name="stylize", show_progress_on=comparison).success(
            show_result, inputs=[content, output, scores], outputs=[comparison, scores_line, full_file], queue=False,
            show_progress="hidden", api_visibility="private")
    return demo.queue(default_concurrency_limit=concurrency_limit(), max_size=QUEUE_SIZE)


def _glibc():
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: nothing to tune
        return None


def limit_malloc_arenas(arenas: int = 2) -> None:
    """What MALLOC_ARENA_MAX=2 does, unless the environment sets it. glibc gives threads that allocate their own
    malloc arenas (up to 8 a core), and Gradio runs each request on a pool thread: the freed picture buffers stay
    spread over many arenas and the resident set kept growing with the requests (benchmarks/load.py, tiny model:
    +140 MB over 4 rounds of 24 requests; with 2 arenas it levels off after the first round)."""
    libc = _glibc()
    if libc is not None and "MALLOC_ARENA_MAX" not in os.environ:
        libc.mallopt(-8, arenas)  # -8: M_ARENA_MAX (malloc.h)


def release_freed_memory() -> None:
    """Give the memory freed by a request back to the system (glibc keeps it otherwise), so that an idle Space is
    back near its starting size after a burst of large pictures."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


def main() -> None:
    """Load the model once, then serve until interrupted."""
    limit_malloc_arenas()  # before any thread allocates
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    loaded = load_model(os.environ.get("CST_MODEL"))
    log.info("serving %s", loaded.name)
    # the queue runs concurrency_limit() requests at once; share the cores between them instead of oversubscribing
    torch.set_num_threads(max(1, usable_cpus() // concurrency_limit()))
    # show_error: Gradio's own refusals (e.g. a file path the caller did not upload) reach the caller as their
    # message instead of an empty error; cst's own errors are gr.Error and show anyway
    demo = build_demo(loaded)
    # Gradio empties its cache when the server shuts down, but gives up on the shutdown after 5 s while visitors are
    # still connected (a browser tab, a gradio_client's heartbeat): then nothing was deleted. Do it at exit as well.
    atexit.register(delete_files_created_by_app, demo, None)
    demo.launch(max_file_size=MAX_UPLOAD, theme=gr.themes.Soft(), css=CSS, show_error=True)


if __name__ == "__main__":
    main()
