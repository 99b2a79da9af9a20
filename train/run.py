"""Train the cst generator and discriminator; publish the EMA generator.

    accelerate launch train/run.py --content-dir photos/ --style-dir paintings/ --output-dir runs/v1 \
        --image-size 256 --batch-size 8 --mixed-precision bf16 --max-steps 40000 [--push-to-hub org/name]

Stages by step count (the method's order):
  1. steps [0, G):      generator alone, α·content + β·style (+ TV)
  2. steps [G, G+D):    discriminator alone: real style crops vs generator outputs, generator frozen
  3. steps [G+D, max):  joint: α·content + β·style + λ·adversarial, alternating D and G updates
Each sample draws its own (α, β, λ) log-uniformly in [weight_min, weight_max] and the generator sees them
(loss-conditional training), so the sliders choose the trade-off after training.
"""
from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout: `accelerate launch train/run.py`

from accelerate import Accelerator  # noqa: E402
from accelerate.utils import ProjectConfiguration, set_seed  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from cst import StyleTransferConfig, StyleTransferModel  # noqa: E402
from cst import functional as F_  # noqa: E402
from cst import losses as L  # noqa: E402
from cst.discriminator import DiscriminatorConfig, StyleDiscriminator  # noqa: E402
from cst.model import STYLE_LAYERS  # noqa: E402
from cst.vgg import LAYER_ORDER, VGG19Features  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from card import write_model_card  # noqa: E402
from data import AugmentedImages, ImageSource, StepSampler  # noqa: E402

logger = logging.getLogger("cst.train")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a run depends on; parsed once from the command line, never mutated."""

    output_dir: str = "runs/cst"
    content_dir: str | None = None  # folder of photos (recursive)
    style_dir: str | None = None  # folder of artworks (recursive)
    content_dataset: str | None = None  # or a Hub dataset id (image column auto-detected)
    style_dataset: str | None = None
    dataset_split: str = "train"
    image_size: int = 256  # square training crops
    batch_size: int = 8  # per process
    # area fraction of the image each training crop covers (then resized to image_size): it sets the texture scale
    # the generator learns. Small crops of ~500 px images at 128 px keep brushwork at about its size at 512 px use
    crop_scale: tuple[float, float] = (0.25, 1.0)
    gradient_accumulation_steps: int = 1
    max_steps: int = 40_000  # optimiser steps in total, all stages
    pretrain_generator_steps: int = 2_000  # stage 1 length
    pretrain_discriminator_steps: int = 500  # stage 2 length
    learning_rate: float = 1e-4  # generator (Adam)
    film_learning_rate: float = 1e-3  # the small MLP that turns (α, β, λ) into FiLM: faster, so the sliders learn early
    discriminator_learning_rate: float = 2e-4
    adam_betas: tuple[float, float] = (0.5, 0.999)
    mixed_precision: str = "no"  # no | fp16 | bf16
    seed: int = 0
    ema_decay: float = 0.999
    adversarial_loss: str = "hinge"  # hinge | nonsaturating | least_squares
    # inner weights that make each loss family O(1) at the slider value 1 (all style/content terms are relative)
    style_gram_weight: float = 1.0
    style_gram_squared: bool = False  # False: relative Gram error per layer; True: its square (the classic MSE form)
    style_mean_std_weight: float = 1.0
    style_wasserstein_weight: float = 1.0
    # VGG layers the style losses compare (the generator's AdaIN uses relu1_1..relu4_1 whatever this says); relu5_1
    # carries the large-scale texture and motif statistics that a relu4_1-only loss leaves unconstrained
    style_loss_layers: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    content_pixel_l1_weight: float = 1.0  # L1 on luminance vs the photo
    content_structure_weight: float = 1.0  # instance-normalised relu2_1/relu3_1 vs the photo (structure, not stats)
    content_pixel_l2_weight: float = 0.0  # L2 on luminance vs the photo
    adversarial_scale: float = 0.1
    total_variation_weight: float = 0.5
    # generator architecture
    decoder_channels: tuple[int, int, int] = (256, 128, 64)
    skip_connections: bool = True
    weight_min: float = 0.1
    weight_max: float = 10.0
    discriminator_channels: int = 64
    checkpoint_every: int = 500
    checkpoints_total_limit: int = 3
    resume_from_checkpoint: str | None = None  # "latest" or a path
    log_every: int = 10
    sample_every: int = 500
    report_to: str | None = None  # tensorboard
    push_to_hub: str | None = None  # org/name
    num_workers: int = 1
    init_from: str | None = None  # start the generator from a saved model (folder or Hub id)


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    """Command line -> TrainConfig; flags are the field names with dashes."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        default = f.default
        if f.type in ("bool",) or isinstance(default, bool):
            parser.add_argument(flag, type=lambda s: s.lower() in ("1", "true", "yes"), default=default, metavar="BOOL")
        elif isinstance(default, tuple):
            parser.add_argument(flag, type=type(default[0]), default=default,
                                nargs="+" if isinstance(default[0], str) else len(default))
        elif default is None:
            parser.add_argument(flag, type=str, default=None)
        else:
            parser.add_argument(flag, type=type(default), default=default)
    args = vars(parser.parse_args(argv))
    args = {k: tuple(v) if isinstance(v, list) else v for k, v in args.items()}
    cfg = TrainConfig(**args)
    if (cfg.content_dir is None) == (cfg.content_dataset is None):
        parser.error("give one of --content-dir or --content-dataset")
    if (cfg.style_dir is None) == (cfg.style_dataset is None):
        parser.error("give one of --style-dir or --style-dataset")
    if cfg.adversarial_loss not in L.ADVERSARIAL_LOSSES:
        parser.error(f"--adversarial-loss must be one of {sorted(L.ADVERSARIAL_LOSSES)}")
    if cfg.mixed_precision not in ("no", "fp16", "bf16"):
        parser.error("--mixed-precision must be no, fp16 or bf16")
    bad_layers = sorted(set(cfg.style_loss_layers) - set(LAYER_ORDER))
    if bad_layers or not cfg.style_loss_layers:
        parser.error(f"--style-loss-layers must name layers among {' '.join(LAYER_ORDER)}; got {' '.join(bad_layers)}")
    if not 0 < cfg.crop_scale[0] <= cfg.crop_scale[1] <= 1:
        parser.error(f"--crop-scale needs 0 < min <= max <= 1, got {cfg.crop_scale[0]:g} {cfg.crop_scale[1]:g}")
    if cfg.image_size % 8 or cfg.image_size < 32:
        parser.error("--image-size must be a multiple of 8, at least 32")
    return cfg


def hub_token_or_exit(cfg: TrainConfig) -> str | None:
    """Check for a token before training, not after hours of it."""
    if not cfg.push_to_hub:
        return None
    from huggingface_hub import get_token

    token = os.environ.get("HF_TOKEN") or get_token()
    if not token:
        raise SystemExit("error: --push-to-hub needs a Hugging Face token: set HF_TOKEN or run `hf auth login`")
    return token


def accumulate_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """ema = decay·ema + (1 − decay)·model, parameter by parameter (buffers copied)."""
    with torch.no_grad():
        for p_ema, p in zip(ema.parameters(), model.parameters()):
            p_ema.lerp_(p.detach().to(p_ema.dtype), 1.0 - decay)
        for b_ema, b in zip(ema.buffers(), model.buffers()):
            b_ema.copy_(b)


def sample_loss_weights(batch: int, cfg: TrainConfig, generator: torch.Generator) -> torch.Tensor:
    """(B, 3) = (α, β, λ), each log-uniform in [weight_min, weight_max]."""
    lo, hi = math.log(cfg.weight_min), math.log(cfg.weight_max)
    return torch.exp(lo + (hi - lo) * torch.rand(batch, 3, generator=generator))


def instance_norm(x: torch.Tensor) -> torch.Tensor:
    mean, std = F_.calc_mean_std(x)
    return (x.float() - mean) / std


def luminance(rgb: torch.Tensor) -> torch.Tensor:
    return (0.299 * rgb[:, 0] + 0.587 * rgb[:, 1] + 0.114 * rgb[:, 2]).unsqueeze(1)


def feature_layers(cfg: TrainConfig) -> tuple[str, ...]:
    """Layers the losses read: the generator's AdaIN layers (content terms, AdaIN target) plus the style-loss layers."""
    return tuple(dict.fromkeys(STYLE_LAYERS + tuple(cfg.style_loss_layers)))


def generator_losses(cfg: TrainConfig, loss_net, output: torch.Tensor, content: torch.Tensor,
                     content_feats: dict, style_feats: dict, style_stats: dict, strength: float,
                     generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Per-sample (B,) content and style losses of one generator output. All feature terms are relative
    (divided by the target's energy), so every layer counts about the same whatever its activation scale.
    style_feats holds every layer of cfg.style_loss_layers; style_stats the generator's (mean, std) per STYLE_LAYERS."""
    out_feats = loss_net(output, feature_layers(cfg))
    # content: relu4_1 against the AdaIN target (AdaIN's content loss), structure at relu2_1/relu3_1 against the
    # photo after instance norm (structure without the photo's feature statistics), luminance in pixels
    target = F_.adaptive_instance_normalization(content_feats["relu4_1"], *style_stats["relu4_1"], strength)
    content_loss = L.l2_per_sample(out_feats["relu4_1"], target) / L.l2_per_sample(target, torch.zeros_like(target))
    for layer in ("relu2_1", "relu3_1"):
        content_loss = content_loss + cfg.content_structure_weight * L.l2_per_sample(instance_norm(out_feats[layer]),
                                                      instance_norm(content_feats[layer]))
    lum_out, lum_in = luminance(output), luminance(content)
    content_loss = content_loss + cfg.content_pixel_l1_weight * L.l1_per_sample(lum_out, lum_in)
    if cfg.content_pixel_l2_weight:
        content_loss = content_loss + cfg.content_pixel_l2_weight * L.l2_per_sample(lum_out, lum_in)
    style_loss = torch.zeros_like(content_loss)
    for layer in cfg.style_loss_layers:
        mean, std = style_stats[layer] if layer in style_stats else F_.calc_mean_std(style_feats[layer])
        energy = (mean.float() ** 2 + std.float() ** 2).flatten(1).mean(1)  # E[f²] per sample
        style_loss = style_loss + cfg.style_mean_std_weight * L.mean_std_per_sample(out_feats[layer], mean, std) / energy
        gram_s = F_.gram_matrix(style_feats[layer])
        gram_ratio = L.gram_per_sample(out_feats[layer], gram_s) / L.l2_per_sample(gram_s, torch.zeros_like(gram_s))
        # ‖G_out − G_style‖ / ‖G_style‖ (cst.eval's metric) unless squared: squaring lets the worst layer dominate
        style_loss = style_loss + cfg.style_gram_weight * (
            gram_ratio if cfg.style_gram_squared else (gram_ratio + 1e-8).sqrt())
        if cfg.style_wasserstein_weight:
            style_loss = style_loss + cfg.style_wasserstein_weight * L.sliced_wasserstein_per_sample(
                out_feats[layer], style_feats[layer], num_projections=32, generator=generator) / energy
    tv = L.total_variation_per_sample(output)
    return {"content": content_loss, "style": style_loss, "tv": tv}


def find_checkpoint(cfg: TrainConfig) -> Path | None:
    if cfg.resume_from_checkpoint is None:
        return None
    if cfg.resume_from_checkpoint != "latest":
        path = Path(cfg.resume_from_checkpoint)
        if not path.is_dir():
            raise SystemExit(f"error: checkpoint not found: {path}")
        return path
    found = sorted((Path(cfg.output_dir) / "checkpoints").glob("step-*"), key=lambda p: int(p.name.split("-")[1]))
    return found[-1] if found else None


class Progress:
    """The step counter, saved and restored with the Accelerate state."""

    def __init__(self):
        self.step = 0

    def state_dict(self) -> dict:
        return {"step": self.step}

    def load_state_dict(self, state: dict) -> None:
        self.step = int(state["step"])


@torch.no_grad()
def sample_grid(model: StyleTransferModel, content: torch.Tensor, style: torch.Tensor,
                settings=((1.0, 0.3), (1.0, 1.0), (1.0, 3.0))) -> torch.Tensor:
    """Rows: content | style | output at each (α, β) setting. Returns (3, rows·S, cols·S) in [0, 1]."""
    rows = []
    for c, s in zip(content, style):
        stats = model.encode_style(s[None])
        outs = [model(c[None], stats, torch.tensor([[a, b, 1.0]], device=c.device)).clamp(0, 1)[0] for a, b in settings]
        rows.append(torch.cat([c, s, *outs], dim=2))
    return torch.cat(rows, dim=1).float().cpu()


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    token = hub_token_or_exit(cfg)
    out_dir = Path(cfg.output_dir)
    accelerator = Accelerator(
        mixed_precision=cfg.mixed_precision,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        log_with=cfg.report_to,
        project_config=ProjectConfiguration(project_dir=str(out_dir), logging_dir=str(out_dir / "logs")),
    )
    logging.basicConfig(level=logging.INFO if accelerator.is_main_process else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(message)s")
    set_seed(cfg.seed)

    # -- models ------------------------------------------------------------------------------------------------
    gen_config = StyleTransferConfig(decoder_channels=cfg.decoder_channels, skip_connections=cfg.skip_connections,
                                     weight_min=cfg.weight_min, weight_max=cfg.weight_max)
    generator = StyleTransferModel(gen_config)
    if cfg.init_from:
        init = StyleTransferModel.from_pretrained(cfg.init_from)
        if init.config != gen_config:
            raise SystemExit(f"error: --init-from {cfg.init_from} has config {init.config}, this run {gen_config}")
        generator.load_state_dict(init.state_dict())
    discriminator = StyleDiscriminator(DiscriminatorConfig(base_channels=cfg.discriminator_channels))
    ema = copy.deepcopy(generator).requires_grad_(False)
    film_params = list(generator.decoder.film.parameters())
    film_ids = {id(p) for p in film_params}
    opt_g = torch.optim.Adam([
        {"params": [p for p in generator.decoder.parameters() if id(p) not in film_ids]},
        {"params": film_params, "lr": cfg.film_learning_rate},
    ], lr=cfg.learning_rate, betas=cfg.adam_betas)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=cfg.discriminator_learning_rate, betas=cfg.adam_betas)
    generator, discriminator, opt_g, opt_d = accelerator.prepare(generator, discriminator, opt_g, opt_d)
    ema.to(accelerator.device)
    progress = Progress()
    accelerator.register_for_checkpointing(ema, progress)
    gen_unwrapped = accelerator.unwrap_model(generator)
    disc_unwrapped = accelerator.unwrap_model(discriminator)
    encoder = gen_unwrapped.encoder  # frozen VGG19 (to relu4_1), shared by the generator and the losses
    deepest = max(cfg.style_loss_layers, key=LAYER_ORDER.index)
    loss_net = encoder if LAYER_ORDER.index(deepest) <= LAYER_ORDER.index(encoder.last_layer) else \
        VGG19Features(deepest).to(accelerator.device)  # the same frozen weights, a few layers deeper
    d_loss_fn, g_adv_fn = L.ADVERSARIAL_LOSSES[cfg.adversarial_loss]

    ckpt = find_checkpoint(cfg)
    if ckpt is not None:
        accelerator.load_state(str(ckpt))
        # the optimiser state restores the checkpoint's learning rates and betas; this run's flags win
        for group, lr in zip(opt_g.param_groups, (cfg.learning_rate, cfg.film_learning_rate)):
            group.update(lr=lr, betas=cfg.adam_betas)
        for group in opt_d.param_groups:
            group.update(lr=cfg.discriminator_learning_rate, betas=cfg.adam_betas)
        logger.info("resumed from %s at step %d (learning rates: generator %g, FiLM %g, discriminator %g)", ckpt,
                    progress.step, *(g["lr"] for g in opt_g.param_groups), opt_d.param_groups[0]["lr"])
    start_step = progress.step
    history = out_dir / "losses.jsonl"
    if accelerator.is_main_process and history.exists():  # drop entries logged after the checkpoint we resume from
        kept = [line for line in history.read_text().splitlines() if line and json.loads(line)["step"] <= start_step]
        history.write_text("".join(line + "\n" for line in kept))

    # -- data: one loader per image kind, each sampler deterministic in (seed, step, rank) ---------------------------
    contents = ImageSource(cfg.content_dir, None) if cfg.content_dir else ImageSource(None, cfg.content_dataset, cfg.dataset_split)
    styles = ImageSource(cfg.style_dir, None) if cfg.style_dir else ImageSource(None, cfg.style_dataset, cfg.dataset_split)

    def loader(source: ImageSource, salt: int):
        sampler = StepSampler(len(source), cfg.batch_size, cfg.seed, accelerator.process_index,
                              accelerator.num_processes, start_step * cfg.gradient_accumulation_steps, salt)
        return iter(DataLoader(AugmentedImages(source, cfg.image_size, cfg.crop_scale), batch_sampler=sampler,
                               num_workers=cfg.num_workers, persistent_workers=cfg.num_workers > 0))

    content_iter, style_iter = loader(contents, 0), loader(styles, 1)
    logger.info("data: %d photos (%d unreadable skipped), %d artworks (%d skipped); %d process(es)",
                len(contents), contents.skipped, len(styles), styles.skipped, accelerator.num_processes)

    if accelerator.is_main_process:
        accelerator.init_trackers("cst", config={k: str(v) if isinstance(v, tuple) or v is None else v
                                                 for k, v in asdict(cfg).items()})
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "train_config.json").write_text(json.dumps(asdict(cfg), indent=2))
    g_end = cfg.pretrain_generator_steps
    d_end = g_end + cfg.pretrain_discriminator_steps
    bar = tqdm(total=cfg.max_steps, initial=start_step, disable=not accelerator.is_local_main_process,
               desc="train", dynamic_ncols=True)
    fixed_content = fixed_style = None
    last_logs: dict[str, float] = {}
    started = time.time()

    for step in range(start_step, cfg.max_steps):
        stage = "generator" if step < g_end else "discriminator" if step < d_end else "joint"
        logs = {}
        for micro in range(cfg.gradient_accumulation_steps):
            content = next(content_iter).to(accelerator.device)
            style = next(style_iter).to(accelerator.device)
            if fixed_content is None:
                fixed_content, fixed_style = content[:4].clone(), style[:4].clone()
            rng = torch.Generator().manual_seed(
                cfg.seed * 1_000_003 + (step * cfg.gradient_accumulation_steps + micro) * 101 + accelerator.process_index)
            weights = sample_loss_weights(content.shape[0], cfg, rng).to(accelerator.device)
            with accelerator.accumulate(generator, discriminator), accelerator.autocast():
                with torch.no_grad():
                    style_feats = loss_net(style, feature_layers(cfg))
                    style_stats = {k: F_.calc_mean_std(style_feats[k]) for k in STYLE_LAYERS}
                    content_feats = encoder(content, STYLE_LAYERS)
                if stage in ("discriminator", "joint"):
                    with torch.no_grad():
                        fake = gen_unwrapped(content, style_stats, weights).clamp(0, 1)
                    real_logits = discriminator(style, style_stats)
                    fake_logits = discriminator(fake, style_stats)
                    d_loss = sum(d_loss_fn(r.float(), f.float()) for r, f in zip(real_logits, fake_logits))
                    accelerator.backward(d_loss)
                    opt_d.step()
                    opt_d.zero_grad(set_to_none=True)
                    logs["d_loss"] = d_loss.detach()
                if stage in ("generator", "joint"):
                    output = generator(content, style_stats, weights)
                    parts = generator_losses(cfg, loss_net, output, content, content_feats, style_feats,
                                             style_stats, 1.0, rng)
                    alpha, beta, lam = weights.unbind(1)
                    per_sample = alpha * parts["content"] + beta * parts["style"] + cfg.total_variation_weight * parts["tv"]
                    if stage == "joint":
                        disc_unwrapped.requires_grad_(False)
                        adv = sum(g_adv_fn(o.float()) for o in disc_unwrapped(output, style_stats))
                        disc_unwrapped.requires_grad_(True)
                        per_sample = per_sample + lam * cfg.adversarial_scale * adv
                        logs["adversarial"] = adv.mean().detach()
                    g_loss = per_sample.mean()
                    accelerator.backward(g_loss)
                    opt_g.step()
                    opt_g.zero_grad(set_to_none=True)
                    logs.update(g_loss=g_loss.detach(), content=parts["content"].mean().detach(),
                                style=parts["style"].mean().detach(), tv=parts["tv"].mean().detach())
            # a NaN/inf anywhere stops every process at the same step, before anything is saved
            values = torch.stack([v.float() for v in logs.values()])
            bad = accelerator.reduce((~torch.isfinite(values)).any().float().reshape(1), reduction="sum")
            if bad.item() > 0:
                names = [k for k, v in logs.items() if not torch.isfinite(v)]
                accelerator.print(f"error: non-finite loss at step {step}: {', '.join(names) or 'on another process'}"
                                  f" ({ {k: float(v) for k, v in logs.items()} }); stopping, nothing saved")
                accelerator.end_training()
                return 1
        if accelerator.sync_gradients and stage in ("generator", "joint"):
            accumulate_ema(ema.decoder, gen_unwrapped.decoder, cfg.ema_decay if step > 100 else 0.0)
        progress.step = step + 1
        last_logs = {k: float(v) for k, v in logs.items()}
        bar.update(1)
        bar.set_postfix(stage=stage, **{k: f"{v:.3g}" for k, v in last_logs.items() if k in ("g_loss", "d_loss")})
        if progress.step % cfg.log_every == 0 or progress.step == cfg.max_steps:
            accelerator.log({**last_logs, "stage": ["generator", "discriminator", "joint"].index(stage)}, step=progress.step)
            logger.info("step %d %s %s", progress.step, stage, " ".join(f"{k}={v:.4g}" for k, v in last_logs.items()))
            if accelerator.is_main_process:  # machine-readable history, appended (survives resume)
                with open(history, "a") as f:
                    f.write(json.dumps({"step": progress.step, "stage": stage, **last_logs}) + "\n")
        if accelerator.is_main_process and (progress.step % cfg.sample_every == 0 or progress.step == cfg.max_steps):
            grid = sample_grid(ema, fixed_content, fixed_style)
            save_grid(grid, out_dir / "samples" / f"step-{progress.step:07d}.png")
            for tracker in accelerator.trackers:
                if tracker.name == "tensorboard":
                    tracker.writer.add_image("samples", grid, progress.step)
        if progress.step % cfg.checkpoint_every == 0 or progress.step == cfg.max_steps:
            save_checkpoint(accelerator, out_dir, progress.step, cfg.checkpoints_total_limit)
    bar.close()

    # -- the end: EMA generator, model card, push ----------------------------------------------------------------
    accelerator.wait_for_everyone()
    if accelerator.num_processes > 1:  # DDP keeps replicas identical; prove it rather than assume it
        checksum = torch.stack([p.detach().double().sum() for p in gen_unwrapped.decoder.parameters()]).sum()
        sums = accelerator.gather(checksum.reshape(1).to(accelerator.device))
        in_sync = bool((sums == sums[0]).all())
        logger.info("generator replicas in sync across %d processes: %s", accelerator.num_processes, in_sync)
        if not in_sync:
            raise RuntimeError(f"generator replicas diverged: checksums {sums.tolist()}")
    if accelerator.is_main_process:
        final = out_dir / "final"
        if final.exists():
            shutil.rmtree(final)
        ema.save_pretrained(final)
        samples = sorted((out_dir / "samples").glob("step-*.png"))
        write_model_card(final / "README.md", cfg=asdict(cfg), steps=progress.step, last_losses=last_logs,
                         num_photos=len(contents), num_artworks=len(styles), num_processes=accelerator.num_processes,
                         seconds=time.time() - started, sample_grid=samples[-1] if samples else None)
        logger.info("saved %s", final)
        if cfg.push_to_hub:
            from huggingface_hub import HfApi

            api = HfApi(token=token)
            api.create_repo(cfg.push_to_hub, exist_ok=True, repo_type="model")
            api.upload_folder(repo_id=cfg.push_to_hub, folder_path=str(final), repo_type="model",
                              commit_message=f"cst: {progress.step} steps")
            logger.info("pushed to https://huggingface.co/%s", cfg.push_to_hub)
    accelerator.end_training()
    return 0


def save_grid(grid: torch.Tensor, path: Path) -> None:
    from cst.imageio import save_image_atomic, tensor_to_pil

    save_image_atomic(tensor_to_pil(grid), path)


def save_checkpoint(accelerator: Accelerator, out_dir: Path, step: int, keep: int) -> None:
    """save_state into checkpoints/step-N (written to a temp name, then renamed: a kill mid-save leaves no
    half checkpoint for `latest`), then drop the oldest beyond `keep`."""
    root = out_dir / "checkpoints"
    final, tmp = root / f"step-{step}", root / f".tmp-step-{step}"
    accelerator.wait_for_everyone()
    if accelerator.is_main_process and tmp.exists():
        shutil.rmtree(tmp)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
        done = sorted(root.glob("step-*"), key=lambda p: int(p.name.split("-")[1]))
        for old in done[:-keep] if keep > 0 else []:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()


if __name__ == "__main__":
    sys.exit(main())
