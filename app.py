"""The cst Space: a Gradio page (and a `/stylize` API) around `StyleTransferModel.stylize`.

    python app.py                              # http://127.0.0.1:7860 (GRADIO_SERVER_NAME / _PORT override)
    CST_MODEL=org/name@rev python app.py       # a Hub model (or a local folder) instead of the embedded default

The model is loaded once in `main()` (importing this file loads nothing); a model that cannot be loaded falls back to
the embedded default, and the page says which one runs. Paper symbols, as in cst.model: α = content_weight,
β = style_weight, λ = adversarial_weight.
"""
from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import torch
from PIL import Image

import app_examples
from cst import DEFAULT_MODEL, StyleTransferError, StyleTransferModel, frontend
from cst.imageio import fit_within, load_image

log = logging.getLogger("cst.app")

TITLE = "cst — content-preserving style transfer"
DEFAULT_MODEL_NAME = "the built-in default model (cst/default_model)"
# long side of the result in px: the cap keeps one request to seconds on a CPU Space; photos are never upscaled
OUTPUT_SIZE_MIN, OUTPUT_SIZE_MAX, OUTPUT_SIZE_DEFAULT = 256, 1024, 512
STYLE2_BLEND_DEFAULT = 0.5  # share of the optional second style
MAX_UPLOAD = "50mb"  # Gradio refuses bigger uploads itself; a 50 MP camera JPEG is well under this


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


def stylize(loaded: LoadedModel, content: str | None, style: str | None, strength: float, content_weight: float,
            style_weight: float, adversarial_weight: float, preserve_color: bool, output_size: int,
            style2: str | None = None, style2_blend: float = STYLE2_BLEND_DEFAULT,
            progress=gr.Progress()) -> Image.Image:
    """The `/stylize` endpoint: content and style(s) are image files; returns the stylised picture.

    style2_blend is the share of the optional second style (0 = only `style`). The result has the content's size,
    downscaled (with a notice) if its long side exceeds output_size.
    """
    if content is None:
        raise gr.Error("Add a content photo first.")
    if style is None:
        raise gr.Error("Add a style image first.")
    try:
        progress(0.0, desc="Reading images")
        photo = load_image(content, "content image")  # read once; `stylize` takes the PIL image as it is
        work = fit_within(photo, int(output_size))
        if work.size != photo.size:
            gr.Info(f"The content image is {photo.width}x{photo.height} px; it was downscaled to "
                    f"{work.width}x{work.height} (output size {int(output_size)} px).")
        styles = [(style, 1.0 - style2_blend), (style2, style2_blend)] if style2 is not None else style
        progress(0.2, desc="Stylising")
        return loaded.model.stylize(work, styles, strength=strength, content_weight=content_weight,
                                    style_weight=style_weight, adversarial_weight=adversarial_weight,
                                    preserve_color=preserve_color, max_size=int(output_size))
    except StyleTransferError as err:
        raise gr.Error(str(err)) from None
    except Exception as err:  # anything else (e.g. out of memory): say so plainly and keep serving
        log.exception("stylize failed")
        raise gr.Error(f"Stylisation failed ({type(err).__name__}). Try a smaller output size.") from None


def model_markdown(loaded: LoadedModel) -> str:
    """The line that tells the visitor which model is running (and why, after a fallback)."""
    text = f"**Model:** {loaded.name}"
    return f"{text}  \n⚠️ {loaded.fallback_notice}" if loaded.fallback_notice else text


def build_demo(model: LoadedModel | StyleTransferModel | None = None,
               examples_folder: str | Path = app_examples.DEFAULT_FOLDER) -> gr.Blocks:
    """The Space's Blocks (queue configured). model=None loads CST_MODEL / the default now."""
    if model is None:
        model = load_model(os.environ.get("CST_MODEL"))
    elif isinstance(model, StyleTransferModel):
        model = LoadedModel(model, "a model handed to build_demo()")
    weight_min, weight_max = model.model.config.weight_min, model.model.config.weight_max
    examples = app_examples.write_examples(examples_folder)

    def image_input(label: str, elem_id: str, sources=("upload", "clipboard"), height: int = 280) -> gr.Image:
        return pass_uploads_unopened(gr.Image(type="filepath", image_mode=None, label=label, elem_id=elem_id,
                                              sources=list(sources), height=height))

    def weight_slider(label: str, info: str, elem_id: str) -> gr.Slider:
        return gr.Slider(weight_min, weight_max, value=1.0, step=0.05, label=label, info=info, elem_id=elem_id)

    with gr.Blocks(title=TITLE, analytics_enabled=False) as demo:
        gr.Markdown(f"# {TITLE}\nRepaint a photo in the colours and textures of a style image while keeping its "
                    "structure. Upload a photo and a style (or pick an example below), then press **Stylize**.")
        gr.Markdown(model_markdown(model), elem_id="model-info")
        with gr.Row():
            with gr.Column(scale=3):
                with gr.Row():
                    content = image_input("Content photo", "content-image", ["upload", "webcam", "clipboard"])
                    style = image_input("Style image", "style-image")
                with gr.Accordion("Blend a second style", open=False):
                    with gr.Row():
                        style2 = image_input("Second style (optional)", "style2-image", height=180)
                        style2_blend = gr.Slider(0.0, 1.0, value=STYLE2_BLEND_DEFAULT, step=0.05,
                                                 label="Second style share", elem_id="style2-blend",
                                                 info="0 = first style only, 1 = second style only")
                strength = gr.Slider(0.0, 1.0, value=1.0, step=0.05, label="Style strength", elem_id="strength",
                                     info="0 keeps the photo's own look, 1 applies the style fully")
                with gr.Accordion(f"Loss weights α, β, λ (trained range {weight_min:g}–{weight_max:g})", open=True):
                    content_weight = weight_slider("Content weight α", "higher keeps more of the photo's structure",
                                                   "content-weight")
                    style_weight = weight_slider("Style weight β", "higher takes more of the style's texture",
                                                 "style-weight")
                    adversarial_weight = weight_slider("Adversarial weight λ", "higher looks more like a painting",
                                                       "adversarial-weight")
                with gr.Row():
                    output_size = gr.Slider(OUTPUT_SIZE_MIN, OUTPUT_SIZE_MAX, value=OUTPUT_SIZE_DEFAULT, step=64,
                                            label="Output size (long side, px)",
                                            info="larger photos are downscaled to this; smaller ones keep their size",
                                            elem_id="output-size")
                    preserve_color = gr.Checkbox(False, label="Preserve colours",
                                                 info="keep the photo's colours, take only the style's texture",
                                                 elem_id="preserve-color")
                run = gr.Button("Stylize", variant="primary", elem_id="stylize-button")
            with gr.Column(scale=2):
                output = gr.Image(type="pil", format="png", label="Stylised", interactive=False, height=480,
                                  buttons=["download", "fullscreen"], elem_id="output-image")
        gr.Examples(
            label="Examples (scikit-image photos x styles drawn at start-up)",
            examples=[[examples["astronaut"], examples["swirl"], None],
                      [examples["chelsea"], examples["mosaic"], None],
                      [examples["coffee"], examples["stripes"], examples["rings"]],
                      [examples["rocket"], examples["rings"], None]],
            inputs=[content, style, style2],
            cache_examples=False,
        )
        run.click(functools.partial(stylize, model),
                  inputs=[content, style, strength, content_weight, style_weight, adversarial_weight, preserve_color,
                          output_size, style2, style2_blend],
                  outputs=output, api_name="stylize")
    return demo.queue(default_concurrency_limit=concurrency_limit(), max_size=32)


def main() -> None:
    """Load the model once, then serve until interrupted."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    loaded = load_model(os.environ.get("CST_MODEL"))
    log.info("serving %s", loaded.name)
    # the queue runs concurrency_limit() requests at once; share the cores between them instead of oversubscribing
    torch.set_num_threads(max(1, usable_cpus() // concurrency_limit()))
    build_demo(loaded).launch(max_file_size=MAX_UPLOAD, theme=gr.themes.Soft())


if __name__ == "__main__":
    main()
