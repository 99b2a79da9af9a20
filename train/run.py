"""Train the cst generator and discriminator; publish the EMA generator.

    accelerate launch train/run.py --content-dir photos/ --style-dir paintings/ --output-dir runs/v1 \
        --image-size 256 --batch-size 8 --mixed-precision bf16 --max-steps 40000 [--push-to-hub org/name]

Stages by step count (the method's order, after an optional warm start):
  0. steps [0, distill):   optional: reproduce a saved model's outputs (pixel L1; cheap warm start)
  1. steps [.., G):        generator alone, α·content + β·style (+ TV)
  2. steps [G, G+D):       discriminator alone: real style crops vs generator outputs, generator frozen
  3. steps [G+D, max):     joint: α·content + β·style + λ·adversarial, alternating D and G updates
Each sample draws its own (α, β, λ) log-uniformly in [weight_min, weight_max] and the generator sees them
(loss-conditional training), so the sliders choose the trade-off after training. The objective is
`cst.losses.generator_objective`; the configuration is train/config.py.
"""
from __future__ import annotations

import copy
import json
import logging
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError

if __package__ in (None, ""):  # run as a script (`accelerate launch train/run.py`): make `cst` and `train` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from accelerate import Accelerator  # noqa: E402
from accelerate.utils import ProjectConfiguration, set_seed  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from cst import StyleTransferModel  # noqa: E402
from cst import functional as F_  # noqa: E402
from cst import losses as L  # noqa: E402
from cst.discriminator import StyleDiscriminator  # noqa: E402
from cst.imageio import write_atomic  # noqa: E402
from cst.light import style_vector  # noqa: E402
from cst.model import STYLE_LAYERS  # noqa: E402
from cst.vgg import LAYER_ORDER, VGG19Features  # noqa: E402
from train.card import write_model_card  # noqa: E402
from train.config import TrainConfig, parse_args  # noqa: E402
from train.data import AugmentedImages, DeviceImages, ImageSource, StepSampler, thumbnail  # noqa: E402

logger = logging.getLogger("cst.train")
STAGES = ("distill", "generator", "discriminator", "joint")
EMA_WARMUP_STEPS = 100  # the EMA copies the generator outright until then (early weights are not worth averaging)
# checkpointed objects registered with Accelerate, in order: save_state names them custom_checkpoint_{index}.pkl
CHECKPOINTED = ("ema", "progress")
SEED_STRIDE, MICRO_STRIDE = 1_000_003, 101  # per-(seed, step, micro-batch, rank) RNG seeds never collide
CONTENT_SALT, STYLE_SALT = 0, 1  # the two data streams draw from different permutations
STYLE_NORM_IMAGES = 256  # paintings whose style vectors standardise the light conditioner's input


def checkpoint_file(name: str) -> str:
    """File name of a registered object inside a checkpoint folder (train/export.py reads the EMA by this)."""
    return f"custom_checkpoint_{CHECKPOINTED.index(name)}.pkl"


def accumulate_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """ema = decay·ema + (1 − decay)·model, parameter by parameter (buffers copied)."""
    with torch.no_grad():
        for p_ema, p in zip(ema.parameters(), model.parameters()):
            p_ema.lerp_(p.detach().to(p_ema.dtype), 1.0 - decay)
        for b_ema, b in zip(ema.buffers(), model.buffers()):
            b_ema.copy_(b)


def sample_loss_weights(batch: int, cfg: TrainConfig, generator: torch.Generator) -> torch.Tensor:
    """(B, 3) = (α, β, λ), each log-uniform in [weight_min, weight_max]."""
    lo, hi = math.log(cfg.generator.weight_min), math.log(cfg.generator.weight_max)
    return torch.exp(lo + (hi - lo) * torch.rand(batch, 3, generator=generator))


def stage_of(cfg: TrainConfig, step: int) -> str:
    if step < cfg.distill_steps:
        return "distill"
    if step < cfg.pretrain_generator_steps:
        return "generator"
    return "discriminator" if step < cfg.pretrain_generator_steps + cfg.pretrain_discriminator_steps else "joint"


def find_checkpoint(cfg: TrainConfig) -> Path | None:
    if cfg.resume_from_checkpoint is None:
        return None
    if cfg.resume_from_checkpoint != "latest":
        path = Path(cfg.resume_from_checkpoint)
        if not path.is_dir():
            raise SystemExit(f"error: checkpoint not found: {path}")
        return path
    found = checkpoint_steps(Path(cfg.output_dir) / "checkpoints")
    return found[-1] if found else None


class Progress:
    """The step counter, saved and restored with the Accelerate state."""

    def __init__(self):
        self.step = 0

    def state_dict(self) -> dict:
        return {"step": self.step}

    def load_state_dict(self, state: dict) -> None:
        self.step = int(state["step"])


@dataclass
class Batch:
    content: torch.Tensor  # (B, 3, S, S) photo crops
    style: torch.Tensor  # (B, 3, S, S) artwork crops: what the losses and the discriminator compare with
    weights: torch.Tensor  # (B, 3) = (α, β, λ)
    rng: torch.Generator  # for the sliced Wasserstein projections
    style_feats: dict  # loss-network features of the style crops (every loss layer)
    style_stats: dict  # (mean, std) of the style crops at the generator's layers
    cond_stats: dict  # what the generator is conditioned on (light: the whole painting, small, as at inference)


def build_models(cfg: TrainConfig) -> tuple[StyleTransferModel, StyleDiscriminator]:
    generator = StyleTransferModel(cfg.generator)
    if cfg.init_from:
        init = StyleTransferModel.from_pretrained(cfg.init_from)
        if init.config != cfg.generator:
            raise SystemExit(f"error: --init-from {cfg.init_from} has config {init.config}, this run {cfg.generator}")
        generator.trainable_modules().load_state_dict(init.trainable_modules().state_dict())
    return generator, StyleDiscriminator(cfg.discriminator)


def build_optimisers(cfg: TrainConfig, generator: StyleTransferModel, discriminator: StyleDiscriminator):
    """Adam for the generator (the slider MLP in its own group, at film_learning_rate) and the discriminator."""
    film_ids = {id(p) for p in generator.slider_parameters()}
    opt_g = torch.optim.Adam([
        {"params": [p for p in generator.trainable_modules().parameters() if id(p) not in film_ids]},
        {"params": generator.slider_parameters(), "lr": cfg.film_learning_rate},
    ], lr=cfg.learning_rate, betas=cfg.adam_betas)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=cfg.discriminator_learning_rate, betas=cfg.adam_betas)
    return opt_g, opt_d


class Trainer:
    """The run's state and its named steps; `main` drives it: build → resume → loop → publish."""

    def __init__(self, cfg: TrainConfig, accelerator: Accelerator):
        self.cfg, self.acc = cfg, accelerator
        generator, discriminator = build_models(cfg)
        self.ema = copy.deepcopy(generator).requires_grad_(False)
        opt_g, opt_d = build_optimisers(cfg, generator, discriminator)
        self.generator, self.discriminator, self.opt_g, self.opt_d = accelerator.prepare(
            generator, discriminator, opt_g, opt_d)
        self.ema.to(accelerator.device)
        self.progress = Progress()
        accelerator.register_for_checkpointing(*(getattr(self, name) for name in CHECKPOINTED))
        self.gen = accelerator.unwrap_model(self.generator)
        self.disc = accelerator.unwrap_model(self.discriminator)
        self.encoder = self.gen.encoder  # frozen VGG19 (to relu4_1), shared by the generator and the losses
        deepest = max(cfg.loss.style_loss_layers, key=LAYER_ORDER.index)
        self.loss_net = self.encoder if LAYER_ORDER.index(deepest) <= LAYER_ORDER.index(self.encoder.last_layer) \
            else VGG19Features(deepest).to(accelerator.device)  # the same frozen weights, a few layers deeper
        self.layers = cfg.loss.feature_layers(STYLE_LAYERS)
        self.d_loss_fn, self.g_adv_fn = L.ADVERSARIAL_LOSSES[cfg.adversarial_loss]
        self._teacher = None  # the distillation teacher, loaded on the first distillation step (not after resume)

    # -- resume and data ---------------------------------------------------------------------------------------
    def resume(self) -> None:
        ckpt = find_checkpoint(self.cfg)
        if ckpt is None:
            return
        check_tensors_only(ckpt)
        self.acc.load_state(str(ckpt))
        # the optimiser state restores the checkpoint's learning rates and betas; this run's flags win
        for group, lr in zip(self.opt_g.param_groups, (self.cfg.learning_rate, self.cfg.film_learning_rate)):
            group.update(lr=lr, betas=self.cfg.adam_betas)
        for group in self.opt_d.param_groups:
            group.update(lr=self.cfg.discriminator_learning_rate, betas=self.cfg.adam_betas)
        logger.info("resumed from %s at step %d (learning rates: generator %g, FiLM %g, discriminator %g)", ckpt,
                    self.progress.step, *(g["lr"] for g in self.opt_g.param_groups), self.opt_d.param_groups[0]["lr"])

    def open_data(self) -> None:
        cfg = self.cfg
        self.contents = ImageSource(cfg.content_dir, None) if cfg.content_dir else \
            ImageSource(None, cfg.content_dataset, cfg.dataset_split)
        self.styles = ImageSource(cfg.style_dir, None) if cfg.style_dir else \
            ImageSource(None, cfg.style_dataset, cfg.dataset_split)
        thumbs = cfg.generator.style_size if self.gen.is_light else None
        self.content_iter = self._loader(self.contents, CONTENT_SALT, None)
        self.style_iter = self._loader(self.styles, STYLE_SALT, thumbs)
        logger.info("data: %d photos (%d unreadable skipped), %d artworks (%d skipped); %d process(es)",
                    len(self.contents), self.contents.skipped, len(self.styles), self.styles.skipped,
                    self.acc.num_processes)

    @torch.no_grad()
    def fit_style_normalisation(self) -> None:
        """light, fresh runs: standardise the conditioner's style input with the vectors of (up to
        STYLE_NORM_IMAGES) training paintings, as thumbnails at the style size, exactly as at inference."""
        side, vecs = self.cfg.generator.style_size, []
        for i in range(min(len(self.styles), STYLE_NORM_IMAGES)):
            thumb = thumbnail(self.styles.open(i), side).to(self.acc.device)
            vecs.append(style_vector(self.gen.encode_style(thumb), STYLE_LAYERS))
        for model in (self.gen, self.ema):
            model.conditioner.fit_style_normalisation(torch.cat(vecs))
        logger.info("style input standardised over %d paintings", len(vecs))

    def _loader(self, source: ImageSource, salt: int, thumbnail_size: int | None):
        cfg = self.cfg
        sampler = StepSampler(len(source), cfg.batch_size, cfg.seed, self.acc.process_index, self.acc.num_processes,
                              self.progress.step * cfg.gradient_accumulation_steps, salt)
        if cfg.data_on_device:
            images = DeviceImages(source, cfg.image_size, cfg.crop_scale, self.acc.device, thumbnail_size)
            logger.info("data on %s: %d images of %s decoded once", self.acc.device, len(images.images), source.name)
            return (images.batch(keys) for keys in sampler)
        return iter(DataLoader(AugmentedImages(source, cfg.image_size, cfg.crop_scale, thumbnail_size),
                               batch_sampler=sampler, num_workers=cfg.num_workers,
                               persistent_workers=cfg.num_workers > 0))

    @torch.no_grad()
    def next_batch(self, step: int, micro: int) -> Batch:
        device = self.acc.device
        content = next(self.content_iter).to(device)
        style, thumb = next(self.style_iter), None
        if isinstance(style, (list, tuple)):  # light generator: (crop, whole-painting thumbnail)
            style, thumb = style[0], style[1].to(device)
        style = style.to(device)
        rng = torch.Generator().manual_seed(self.cfg.seed * SEED_STRIDE + (
            step * self.cfg.gradient_accumulation_steps + micro) * MICRO_STRIDE + self.acc.process_index)
        weights = sample_loss_weights(content.shape[0], self.cfg, rng).to(device)
        with self.acc.autocast():
            style_feats = self.loss_net(style, self.layers)
            style_stats = {k: F_.calc_mean_std(style_feats[k]) for k in STYLE_LAYERS}
            cond_stats = self.gen.encode_style(thumb) if thumb is not None else style_stats
        return Batch(content, style, weights, rng, style_feats, style_stats, cond_stats)

    # -- the named steps: each returns its logs ------------------------------------------------------------------
    def distill_step(self, b: Batch) -> dict[str, torch.Tensor]:
        """Warm start: pixel L1 to the teacher's output for the same photo, style and sliders."""
        if self._teacher is None:
            self._teacher = StyleTransferModel.from_pretrained(self.cfg.distill_from).to(self.acc.device)
        with torch.no_grad():
            target = self._teacher(b.content, b.style_stats, b.weights).clamp(0, 1)
        loss = L.l1_per_sample(self.generator(b.content, b.cond_stats, b.weights), target).mean()
        self._update(self.opt_g, loss)
        return {"distill_l1": loss.detach()}

    def discriminator_step(self, b: Batch) -> dict[str, torch.Tensor]:
        """Real style crops vs generator outputs for that style (generator frozen)."""
        with torch.no_grad():
            fake = self.gen(b.content, b.cond_stats, b.weights).clamp(0, 1)
        real_logits = self.discriminator(b.style, b.style_stats)
        fake_logits = self.discriminator(fake, b.style_stats)
        loss = sum(self.d_loss_fn(r.float(), f.float()) for r, f in zip(real_logits, fake_logits))
        self._update(self.opt_d, loss)
        return {"d_loss": loss.detach()}

    def generator_step(self, b: Batch, adversarial: bool) -> dict[str, torch.Tensor]:
        """α·content + β·style + τ·TV per sample (+ λ·adversarial in the joint stage), averaged over the batch."""
        with torch.no_grad():
            content_feats = self.encoder(b.content, STYLE_LAYERS)
        output = self.generator(b.content, b.cond_stats, b.weights)
        terms = L.generator_objective(self.cfg.loss, self.loss_net, output, b.content, content_feats, b.style_feats,
                                      b.style_stats, b.weights, b.rng)
        per_sample, logs = terms["total"], {}
        if adversarial:
            self.disc.requires_grad_(False)
            adv = sum(self.g_adv_fn(o.float()) for o in self.disc(output, b.style_stats))
            self.disc.requires_grad_(True)
            per_sample = per_sample + b.weights[:, 2] * self.cfg.loss.adversarial_scale * adv
            logs["adversarial"] = adv.mean().detach()
        loss = per_sample.mean()
        self._update(self.opt_g, loss)
        return {**logs, "g_loss": loss.detach(), **{k: terms[k].mean().detach() for k in ("content", "style", "tv")}}

    def _update(self, optimiser: torch.optim.Optimizer, loss: torch.Tensor) -> None:
        self.acc.backward(loss)
        optimiser.step()
        optimiser.zero_grad(set_to_none=True)

    def train_step(self, step: int) -> tuple[str, dict[str, torch.Tensor]]:
        """One optimiser step of the stage `step` belongs to (micro-batches accumulated)."""
        stage, logs = stage_of(self.cfg, step), {}
        for micro in range(self.cfg.gradient_accumulation_steps):
            b = self.last_batch = self.next_batch(step, micro)
            with self.acc.accumulate(self.generator, self.discriminator), self.acc.autocast():
                if stage == "distill":
                    logs.update(self.distill_step(b))
                if stage in ("discriminator", "joint"):
                    logs.update(self.discriminator_step(b))
                if stage in ("generator", "joint"):
                    logs.update(self.generator_step(b, adversarial=stage == "joint"))
            self.check_finite(step, logs)
        if self.acc.sync_gradients and stage != "discriminator":
            accumulate_ema(self.ema.trainable_modules(), self.gen.trainable_modules(),
                           self.cfg.ema_decay if step > EMA_WARMUP_STEPS else 0.0)
        return stage, logs

    def check_finite(self, step: int, logs: dict[str, torch.Tensor]) -> None:
        """A NaN/inf anywhere stops every process at the same step, before anything is saved."""
        values = torch.stack([v.float() for v in logs.values()])
        bad = self.acc.reduce((~torch.isfinite(values)).any().float().reshape(1), reduction="sum")
        if bad.item() > 0:
            names = [k for k, v in logs.items() if not torch.isfinite(v)]
            raise NonFinite(f"error: non-finite loss at step {step}: {', '.join(names) or 'on another process'}"
                            f" ({ {k: float(v) for k, v in logs.items()} }); stopping, nothing saved")

    # -- logging, samples, checkpoints, publishing ----------------------------------------------------------------
    def record(self, stage: str, logs: dict[str, float], history: Path) -> None:
        step = self.progress.step
        self.acc.log({**logs, "stage": STAGES.index(stage)}, step=step)
        logger.info("step %d %s %s", step, stage, " ".join(f"{k}={v:.4g}" for k, v in logs.items()))
        if self.acc.is_main_process:  # machine-readable history, appended (survives resume)
            with open(history, "a") as f:
                f.write(json.dumps({"step": step, "stage": stage, **logs}) + "\n")

    def save_samples(self, content: torch.Tensor, style: torch.Tensor, out_dir: Path) -> None:
        grid = sample_grid(self.ema, content, style)
        save_grid(grid, out_dir / "samples" / f"step-{self.progress.step:07d}.png")
        for tracker in self.acc.trackers:
            if tracker.name == "tensorboard":
                tracker.writer.add_image("samples", grid, self.progress.step)

    def check_replicas(self) -> None:
        """DDP keeps replicas identical; prove it rather than assume it."""
        if self.acc.num_processes == 1:
            return
        checksum = torch.stack([p.detach().double().sum() for p in self.gen.trainable_modules().parameters()]).sum()
        sums = self.acc.gather(checksum.reshape(1).to(self.acc.device))
        in_sync = bool((sums == sums[0]).all())
        logger.info("generator replicas in sync across %d processes: %s", self.acc.num_processes, in_sync)
        if not in_sync:
            raise RuntimeError(f"generator replicas diverged: checksums {sums.tolist()}")

    def publish(self, out_dir: Path, last_logs: dict, seconds: float, token: str | None) -> None:
        """Main process: the EMA generator as final/ (config.json, model.safetensors, model card), then the Hub."""
        final, tmp = out_dir / "final", out_dir / ".tmp-final"
        shutil.rmtree(tmp, ignore_errors=True)  # of a run killed while publishing
        self.ema.save_pretrained(tmp)  # written aside, then swapped in: final/ is never half-written
        samples = sorted((out_dir / "samples").glob("step-*.png"))
        write_model_card(tmp / "README.md", cfg=self.cfg.to_dict(), steps=self.progress.step, last_losses=last_logs,
                         num_photos=len(self.contents), num_artworks=len(self.styles),
                         num_processes=self.acc.num_processes, seconds=seconds,
                         sample_grid=samples[-1] if samples else None)
        replace_folder(tmp, final)
        logger.info("saved %s", final)
        if self.cfg.push_to_hub:
            from huggingface_hub import HfApi

            api = HfApi(token=token)
            api.create_repo(self.cfg.push_to_hub, exist_ok=True, repo_type="model")
            api.upload_folder(repo_id=self.cfg.push_to_hub, folder_path=str(final), repo_type="model",
                              commit_message=f"cst: {self.progress.step} steps")
            logger.info("pushed to https://huggingface.co/%s", self.cfg.push_to_hub)


class NonFinite(RuntimeError):
    """A loss went NaN/inf: the run stops with a message and saves nothing."""


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


def save_grid(grid: torch.Tensor, path: Path) -> None:
    from cst.imageio import save_image_atomic, tensor_to_pil

    save_image_atomic(tensor_to_pil(grid), path)


class CheckpointError(RuntimeError):
    """A checkpoint could not be written (a full disk, say): the run stops with a message; older ones are kept."""


def replace_folder(new: Path | None, target: Path) -> None:
    """Rename the complete folder `new` to `target` (None: just delete `target`). An existing `target` is renamed
    aside to .old-NAME first and deleted after: a kill never leaves a partial `target`, only an .old- folder."""
    old = target.with_name(f".old-{target.name}")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    if new is not None:
        new.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def checkpoint_steps(root: Path) -> list[Path]:
    """The complete checkpoints under `root`, oldest first: only a finished save is ever named step-N."""
    return sorted(root.glob("step-*"), key=lambda p: int(p.name.split("-")[1]))


def check_tensors_only(ckpt: Path) -> None:
    """Accelerate restores registered objects (our EMA and step counter) with torch.load(weights_only=False), which
    runs whatever a pickle says. Load every pickle of the checkpoint the safe way first (tensors, numbers, the
    numpy RNG states; nothing executed): a file that needs more is refused before Accelerate ever opens it."""
    from accelerate.utils import load as load_tensors_only  # torch.load(weights_only=True) + numpy RNG states

    for path in sorted(ckpt.iterdir()):
        if path.suffix in (".pkl", ".bin", ".pt", ".pth"):
            try:
                load_tensors_only(path, map_location="cpu")
            except Exception as err:  # noqa: BLE001 - pickle.UnpicklingError, or whatever a crafted file raises
                reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
                raise SystemExit(f"error: refusing to resume from {ckpt}: {path.name} holds more than tensors "
                                 f"({reason}); checkpoints are never unpickled") from None


def write_failure(err: Exception, folder: Path) -> str:
    """One line on why a checkpoint write failed. torch.save on a full disk says only "unexpected pos 576 vs 534":
    name the full disk when the file system has (next to) nothing left."""
    text = err.strerror if isinstance(err, OSError) and err.strerror else \
        (str(err).strip().splitlines() or [type(err).__name__])[0]
    if "No space left on device" not in text and folder.exists() and shutil.disk_usage(folder).free < 2**20:
        text = f"No space left on device: {text}"
    return text


def save_checkpoint(accelerator: Accelerator, out_dir: Path, step: int, keep: int) -> None:
    """save_state into checkpoints/.tmp-step-N, then rename it to step-N: a kill mid-save leaves no step-N, so
    `latest` never takes a half-written checkpoint. Then drop the oldest beyond `keep`. A failed write (e.g. a full
    disk) removes the partial folder, keeps the older checkpoints and raises CheckpointError on every process."""
    root = out_dir / "checkpoints"
    final, tmp = root / f"step-{step}", root / f".tmp-step-{step}"
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:  # what killed runs left: half-written saves, half-deleted old checkpoints
        for leftover in [*root.glob(".tmp-step-*"), *root.glob(".old-step-*")]:
            shutil.rmtree(leftover, ignore_errors=True)
    accelerator.wait_for_everyone()
    try:
        accelerator.save_state(str(tmp))
        error = None
    # a full disk: OSError from Python's own writes, SafetensorError from safetensors, RuntimeError from torch.save
    except (OSError, RuntimeError, SafetensorError) as err:
        error = write_failure(err, root)
    # every process learns whether any failed (one that raised alone would leave the others waiting forever)
    failed = bool(accelerator.gather(torch.tensor([int(error is not None)], device=accelerator.device)).sum())
    if failed:
        if accelerator.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)  # the partial files would only fill the disk further
        kept = ", ".join(p.name for p in checkpoint_steps(root)) or "none"
        raise CheckpointError(f"error: could not write checkpoint {final.name} in {root} "
                              f"({error or 'failed on another process'}); stopping. Kept: {kept}. Free some space, "
                              f"then resume with --resume-from-checkpoint latest")
    if accelerator.is_main_process:
        replace_folder(tmp, final)  # a step saved again (resumed from an older checkpoint) replaces the old one
        for stale in checkpoint_steps(root)[:-keep] if keep > 0 else []:
            replace_folder(None, stale)  # renamed first: a kill mid-delete leaves no partial step-N
    accelerator.wait_for_everyone()


def hub_token_or_exit(cfg: TrainConfig) -> str | None:
    """Check for a token before training, not after hours of it."""
    if not cfg.push_to_hub:
        return None
    from huggingface_hub import get_token

    token = os.environ.get("HF_TOKEN") or get_token()
    if not token:
        raise SystemExit("error: --push-to-hub needs a Hugging Face token: set HF_TOKEN or run `hf auth login`")
    return token


def start(cfg: TrainConfig) -> Accelerator:
    out_dir = Path(cfg.output_dir)
    accelerator = Accelerator(
        mixed_precision=cfg.mixed_precision, gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        log_with=cfg.report_to,
        project_config=ProjectConfiguration(project_dir=str(out_dir), logging_dir=str(out_dir / "logs")))
    logging.basicConfig(level=logging.INFO if accelerator.is_main_process else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(message)s")
    set_seed(cfg.seed)
    if accelerator.device.type == "cuda":  # fixed crop sizes: let cuDNN pick its kernels; TF32 for fp32 matmuls
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    return accelerator


def trim_history(history: Path, step: int) -> None:
    """Drop entries logged after the checkpoint we resume from, and a last line cut short by a killed process."""
    if history.exists():
        kept = []
        for line in history.read_text().splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if entry["step"] <= step:
                kept.append(line)
        write_text_atomic(history, "".join(line + "\n" for line in kept))


def write_text_atomic(path: Path, text: str) -> None:
    write_atomic(path, lambda tmp: tmp.write_text(text))


def out_of_time(acc: Accelerator, deadline: float | None, check: bool) -> bool:
    """Whether the --max-minutes budget is spent, decided at `check` steps only and the same on every process
    (any process past the deadline stops them all at this step)."""
    if deadline is None or not check:
        return False
    late = torch.tensor([float(time.time() > deadline)], device=acc.device)
    return bool(acc.reduce(late, reduction="sum").item() > 0)


def loop(t: Trainer, out_dir: Path) -> dict[str, float]:
    """Steps from the resumed one to max_steps: train, log (with images/s), sample, checkpoint."""
    cfg, acc, history = t.cfg, t.acc, out_dir / "losses.jsonl"
    bar = tqdm(total=cfg.max_steps, initial=t.progress.step, disable=not acc.is_local_main_process, desc="train",
               dynamic_ncols=True)
    fixed, last_logs, images, timer = None, {}, 0, time.time()
    deadline = timer + 60.0 * cfg.max_minutes if cfg.max_minutes else None
    for step in range(t.progress.step, cfg.max_steps):
        stage, logs = t.train_step(step)
        images += cfg.batch_size * cfg.gradient_accumulation_steps * acc.num_processes
        if fixed is None:  # the sample grid's photos and styles: the run's first batch
            fixed = t.last_batch.content[:4].clone(), t.last_batch.style[:4].clone()
        t.progress.step = step + 1
        last_logs = {k: float(v) for k, v in logs.items()}
        bar.update(1)
        bar.set_postfix(stage=stage, **{k: f"{v:.3g}" for k, v in last_logs.items() if k in ("g_loss", "d_loss")})
        done = t.progress.step == cfg.max_steps or out_of_time(acc, deadline, t.progress.step % cfg.log_every == 0)
        if t.progress.step % cfg.log_every == 0 or done:
            last_logs["images_per_s"] = images / max(time.time() - timer, 1e-9)
            images, timer = 0, time.time()
            t.record(stage, last_logs, history)
        if acc.is_main_process and (t.progress.step % cfg.sample_every == 0 or done):
            t.save_samples(*fixed, out_dir)
        if t.progress.step % cfg.checkpoint_every == 0 or done:
            save_checkpoint(acc, out_dir, t.progress.step, cfg.checkpoints_total_limit)
        if done:
            break
    if t.progress.step < cfg.max_steps:
        logger.info("stopped at step %d of %d: --max-minutes %g spent", t.progress.step, cfg.max_steps,
                    cfg.max_minutes)
    bar.close()
    return last_logs


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv, description=__doc__.split("\n\n")[0])
    token = hub_token_or_exit(cfg)
    out_dir = Path(cfg.output_dir)
    accelerator = start(cfg)
    trainer = Trainer(cfg, accelerator)
    trainer.resume()
    if accelerator.is_main_process:
        trim_history(out_dir / "losses.jsonl", trainer.progress.step)
    trainer.open_data()
    if trainer.gen.is_light and trainer.progress.step == 0 and not cfg.init_from:
        trainer.fit_style_normalisation()
    if accelerator.is_main_process:
        accelerator.init_trackers("cst", config={k: str(v) for k, v in cfg.to_dict().items()})
        out_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out_dir / "train_config.json", json.dumps(cfg.to_dict(), indent=2))
    started = time.time()
    try:
        last_logs = loop(trainer, out_dir)
    except (NonFinite, CheckpointError) as err:
        accelerator.print(str(err))
        accelerator.end_training()
        return 1
    accelerator.wait_for_everyone()
    trainer.check_replicas()
    if accelerator.is_main_process:
        trainer.publish(out_dir, last_logs, time.time() - started, token)
    accelerator.end_training()
    return 0


if __name__ == "__main__":
    sys.exit(main())
