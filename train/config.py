"""The training run's configuration: one nested dataclass, written once to train_config.json and read back strictly.

TrainConfig holds the run's own settings plus three sections that belong to the library:
`generator` (cst.StyleTransferConfig: what the published model.safetensors is), `discriminator`
(cst.discriminator.DiscriminatorConfig) and `loss` (cst.losses.LossWeights). Command-line flags are the field names
with dashes; the discriminator's carry a `--discriminator-` prefix (`--discriminator-base-channels 32`).
"""
from __future__ import annotations

import argparse
from dataclasses import MISSING, asdict, dataclass, field, fields

from cst import StyleTransferConfig
from cst import losses as L
from cst.discriminator import DiscriminatorConfig
from cst.errors import StyleTransferError
from cst.vgg import LAYER_ORDER

SECTIONS = {"generator": (StyleTransferConfig, ""), "discriminator": (DiscriminatorConfig, "discriminator_"),
            "loss": (L.LossWeights, "")}


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
    # or stop earlier, after this many minutes of training in this launch (checked every log_every steps): the run
    # checkpoints and publishes as at max_steps, and resumes from there with a larger budget or none
    max_minutes: float | None = None
    # warm start: the first distill_steps steps train the generator to reproduce a saved model's outputs (pixel L1,
    # no loss-network backward: cheap), before the method's stages
    distill_from: str | None = None
    distill_steps: int = 0
    pretrain_generator_steps: int = 2_000  # stage 1 ends at this step
    pretrain_discriminator_steps: int = 500  # stage 2 length
    learning_rate: float = 1e-4  # generator (Adam)
    film_learning_rate: float = 1e-3  # the small MLP that reads (α, β, λ): faster, so the sliders learn early
    discriminator_learning_rate: float = 2e-4
    adam_betas: tuple[float, float] = (0.5, 0.999)
    mixed_precision: str = "no"  # no | fp16 | bf16
    seed: int = 0
    ema_decay: float = 0.999
    adversarial_loss: str = "hinge"  # hinge | nonsaturating | least_squares
    checkpoint_every: int = 500
    checkpoints_total_limit: int = 3
    resume_from_checkpoint: str | None = None  # "latest" or a path
    log_every: int = 10
    sample_every: int = 500
    report_to: str | None = None  # tensorboard
    push_to_hub: str | None = None  # org/name
    num_workers: int = 1
    # decode every image once onto the training device and cut the crops there (no per-sample CPU work; for a GPU
    # whose machine has few cores for data loading); the crops' boxes and flips are the same as without it
    data_on_device: bool = False
    init_from: str | None = None  # start the generator from a saved model (folder or Hub id)
    generator: StyleTransferConfig = field(default_factory=StyleTransferConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    loss: L.LossWeights = field(default_factory=L.LossWeights)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        """Strict inverse of to_dict: unknown keys in any section are an error."""
        run_fields = {f.name for f in fields(cls)} - set(SECTIONS)
        unknown = sorted(set(data) - run_fields - set(SECTIONS))
        if unknown:
            raise StyleTransferError(f"train_config.json has unknown keys {unknown}")
        flat = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in run_fields}
        generator = StyleTransferConfig.from_dict({"architecture": "light", **data.get("generator", {})})
        d = data.get("discriminator", {})
        bad = sorted(set(d) - {f.name for f in fields(DiscriminatorConfig)})
        if bad:
            raise StyleTransferError(f"train_config.json: discriminator has unknown keys {bad}")
        discriminator = DiscriminatorConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})
        return cls(**flat, generator=generator, discriminator=discriminator,
                   loss=L.LossWeights.from_dict(data.get("loss", {})))


def _add_flag(parser: argparse.ArgumentParser, dest: str, default, annotation: str = "") -> None:
    flag = "--" + dest.replace("_", "-")
    if isinstance(default, bool):
        parser.add_argument(flag, dest=dest, type=lambda s: s.lower() in ("1", "true", "yes"), default=default,
                            metavar="BOOL")
    elif isinstance(default, tuple):
        parser.add_argument(flag, dest=dest, type=type(default[0]), default=default,
                            nargs="+" if isinstance(default[0], str) else len(default))
    elif default is None:  # an optional value: a number where the annotation says so (`float | None`)
        parser.add_argument(flag, dest=dest, type=float if str(annotation).startswith("float") else str, default=None)
    else:
        parser.add_argument(flag, dest=dest, type=type(default), default=default)


def _default(f):
    return f.default_factory() if f.default is MISSING else f.default


def build_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    for f in fields(TrainConfig):
        if f.name not in SECTIONS:
            _add_flag(parser, f.name, f.default, f.type)
    for section, (kind, prefix) in SECTIONS.items():
        group = parser.add_argument_group(section)
        for f in fields(kind):
            _add_flag(group, prefix + f.name, _default(f))
    return parser


def parse_args(argv: list[str] | None = None, description: str = "Train the cst generator") -> TrainConfig:
    """Command line -> TrainConfig (flags are field names with dashes); inconsistent flags exit with a message."""
    parser = build_parser(description)
    args = {k: tuple(v) if isinstance(v, list) else v for k, v in vars(parser.parse_args(argv)).items()}
    sections = {name: {f.name: args.pop(prefix + f.name) for f in fields(kind)}
                for name, (kind, prefix) in SECTIONS.items()}
    try:
        cfg = TrainConfig(**args, generator=StyleTransferConfig(**sections["generator"]),
                          discriminator=DiscriminatorConfig(**sections["discriminator"]),
                          loss=L.LossWeights(**sections["loss"]))
    except StyleTransferError as err:
        parser.error(str(err))
    problem = check(cfg)
    if problem:
        parser.error(problem)
    return cfg


def check(cfg: TrainConfig) -> str | None:
    """The first inconsistency in a configuration, as a message for the user, or None."""
    if (cfg.content_dir is None) == (cfg.content_dataset is None):
        return "give one of --content-dir or --content-dataset"
    if (cfg.style_dir is None) == (cfg.style_dataset is None):
        return "give one of --style-dir or --style-dataset"
    if cfg.adversarial_loss not in L.ADVERSARIAL_LOSSES:
        return f"--adversarial-loss must be one of {sorted(L.ADVERSARIAL_LOSSES)}"
    if cfg.mixed_precision not in ("no", "fp16", "bf16"):
        return "--mixed-precision must be no, fp16 or bf16"
    bad_layers = sorted(set(cfg.loss.style_loss_layers) - set(LAYER_ORDER))
    if bad_layers or not cfg.loss.style_loss_layers:
        return f"--style-loss-layers must name layers among {' '.join(LAYER_ORDER)}; got {' '.join(bad_layers)}"
    if not 0 < cfg.crop_scale[0] <= cfg.crop_scale[1] <= 1:
        return f"--crop-scale needs 0 < min <= max <= 1, got {cfg.crop_scale[0]:g} {cfg.crop_scale[1]:g}"
    if cfg.image_size % 8 or cfg.image_size < 32:
        return "--image-size must be a multiple of 8, at least 32"
    if cfg.max_minutes is not None and not cfg.max_minutes > 0:
        return f"--max-minutes must be positive, got {cfg.max_minutes:g}"
    if cfg.distill_steps and not cfg.distill_from:
        return "--distill-steps needs --distill-from MODEL"
    return None
