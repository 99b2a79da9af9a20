"""Training script end to end: accelerate launch, exact resume, two processes, NaN stop, Hub push (upload faked); and
faults: kill -9 at random moments (benchmarks/train_faults.py does ten), a full disk, a pickle in a checkpoint."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks import train_faults as faults

ROOT = Path(__file__).resolve().parent.parent
RUN = str(ROOT / "train" / "run.py")


@pytest.fixture(scope="module")
def image_dirs(tmp_path_factory):
    """Six smooth 'photos' and four striped 'artworks' made here, plus one broken file that must be skipped."""
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:80, 0:96] / 96.0
    for i in range(6):
        arr = np.stack([np.sin(xx * (i + 2)), np.cos(yy * (i + 3)), xx * yy], axis=2) * 0.5 + 0.5
        (root / "content" / "sub").mkdir(parents=True, exist_ok=True)
        Image.fromarray((arr * 255).astype(np.uint8)).save(root / "content" / ("sub" if i % 2 else "") / f"p{i}.png")
    (root / "content" / "broken.jpg").write_bytes(b"not a jpeg")
    (root / "style").mkdir()
    for i in range(4):
        stripes = ((xx * (4 + 3 * i) + yy * i) % 1.0 > 0.5)[..., None] * rng.uniform(0, 1, 3) + rng.uniform(0, .3, 3)
        Image.fromarray((np.clip(stripes, 0, 1) * 255).astype(np.uint8)).save(root / "style" / f"s{i}.jpg")
    return root


def train_args(data: Path, out: Path, *extra: str) -> list[str]:
    return ["--content-dir", str(data / "content"), "--style-dir", str(data / "style"), "--output-dir", str(out),
            "--image-size", "64", "--batch-size", "2", "--pretrain-generator-steps", "2",
            "--pretrain-discriminator-steps", "1", "--decoder-channels", "16", "16", "8", "--light-widths", "8", "16",
            "--light-blocks", "1", "--style-size", "32", "--discriminator-base-channels",
            "8", "--log-every", "1", "--sample-every", "3", "--checkpoint-every", "2", "--checkpoints-total-limit", "2", "--num-workers", "0", *extra]


def run(cmd: list[str], env_extra: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", **(env_extra or {})}
    env.pop("HF_TOKEN", None)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT)
    return proc


def accelerate(args: list[str], **kw) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--cpu",
                "--num_cpu_threads_per_process", "1", "--mixed_precision", "no", RUN, *args], **kw)


def losses_by_step(out: Path) -> dict[int, dict]:
    rows = [json.loads(line) for line in (out / "losses.jsonl").read_text().splitlines()]
    return {r["step"]: r for r in rows}


@pytest.fixture(scope="module")
def full_run(image_dirs, tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    proc = accelerate(train_args(image_dirs, out, "--max-steps", "6"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc


def test_accelerate_launch_trains_saves_and_the_result_stylises(full_run):
    out, proc = full_run
    final = out / "final"
    assert sorted(p.name for p in final.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert "1 unreadable skipped" in proc.stderr  # the broken file was counted, not fatal
    history = losses_by_step(out)
    assert [history[s]["stage"] for s in range(1, 7)] == ["generator"] * 2 + ["discriminator"] + ["joint"] * 3
    assert all(np.isfinite(v) for r in history.values() for k, v in r.items() if k not in ("step", "stage"))
    assert (out / "samples" / "step-0000003.png").is_file() and (out / "samples" / "step-0000006.png").is_file()
    card = (final / "README.md").read_text()
    assert "6 (2 generator pre-training, 1 discriminator pre-training" in card and "64 px" in card

    from cst import StyleTransferModel

    model = StyleTransferModel.from_pretrained(str(final))
    assert model.config.decoder_channels == (16, 16, 8)
    photo = np.full((40, 52, 3), 120, np.uint8)
    result = model.stylize(photo, np.random.default_rng(1).integers(0, 255, (32, 32, 3), dtype=np.uint8))
    assert result.size == (52, 40)


def test_resumed_run_matches_uninterrupted_run(full_run, image_dirs, tmp_path):
    out_full, _ = full_run
    out = tmp_path / "resumed"
    first = accelerate(train_args(image_dirs, out, "--max-steps", "4"))
    assert first.returncode == 0, first.stderr[-3000:]
    assert (out / "checkpoints" / "step-4").is_dir()
    second = accelerate(train_args(image_dirs, out, "--max-steps", "6", "--resume-from-checkpoint", "latest"))
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resumed from" in second.stderr and "at step 4" in second.stderr
    full, resumed = losses_by_step(out_full), losses_by_step(out)
    for step in (5, 6):
        for key in ("g_loss", "d_loss", "content", "style", "adversarial"):
            assert resumed[step][key] == pytest.approx(full[step][key], rel=1e-5, abs=1e-6), (step, key)
    # only the newest checkpoints are kept
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-4", "step-6"]
    # a checkpoint exports to the same model the run wrote at that step
    exported = run([sys.executable, str(ROOT / "train" / "export.py"), str(out / "checkpoints" / "step-6"),
                    "-o", str(tmp_path / "exported")])
    assert exported.returncode == 0, exported.stderr[-2000:]
    from safetensors.torch import load_file

    a, b = load_file(tmp_path / "exported" / "model.safetensors"), load_file(out / "final" / "model.safetensors")
    assert a.keys() == b.keys() and all(bool((a[k] == b[k]).all()) for k in a)


def test_max_minutes_stops_checkpoints_and_publishes_then_resumes(image_dirs, tmp_path):
    """A spent --max-minutes budget ends the run at the next log step as max_steps would: checkpoint, final/, a line
    that says so; the next launch resumes from there."""
    out = tmp_path / "budget"
    first = accelerate(train_args(image_dirs, out, "--max-steps", "50", "--max-minutes", "0.0001", "--log-every", "3",
                                  "--checkpoint-every", "100"))
    assert first.returncode == 0, first.stderr[-3000:]
    assert "stopped at step 3 of 50: --max-minutes 0.0001 spent" in first.stderr
    assert (out / "checkpoints" / "step-3").is_dir() and (out / "final" / "model.safetensors").is_file()
    assert max(losses_by_step(out)) == 3
    second = accelerate(train_args(image_dirs, out, "--max-steps", "5", "--resume-from-checkpoint", "latest"))
    assert second.returncode == 0, second.stderr[-3000:]
    assert "stopped at step" not in second.stderr and max(losses_by_step(out)) == 5
    bad = accelerate(train_args(image_dirs, out, "--max-minutes", "0"))
    assert bad.returncode != 0 and "--max-minutes must be positive, got 0" in bad.stderr


def test_data_on_device_cuts_the_same_crops_and_trains(image_dirs, tmp_path):
    """--data-on-device: images decoded once onto the device, crops cut there: the same boxes and flips as the CPU
    pipeline for the same keys (resampling differs only by torch's vs PIL's bicubic), the same whole-image thumbnails,
    and a run with it trains and publishes."""
    import torch

    from train.data import AugmentedImages, DeviceImages, ImageSource

    source = ImageSource(str(image_dirs / "style"))
    keys = [(i % len(source), 1000 + i) for i in range(12)]
    on_device = DeviceImages(source, 48, (0.2, 0.9), torch.device("cpu"), thumbnail_size=24)
    crops, thumbs = on_device.batch(keys)
    reference = [AugmentedImages(source, 48, (0.2, 0.9), 24)[key] for key in keys]
    for crop, thumb, (ref_crop, ref_thumb) in zip(crops, thumbs, reference):
        assert (crop - ref_crop).abs().mean() < 0.02 < (crop - ref_crop.flip(2)).abs().mean()
        assert torch.equal(thumb, ref_thumb)
    out = tmp_path / "on_device"
    proc = accelerate(train_args(image_dirs, out, "--max-steps", "3", "--data-on-device", "true"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "final" / "model.safetensors").is_file() and max(losses_by_step(out)) == 3
    assert "data on cpu: 6 images of" in proc.stderr  # the run took the on-device path (six photos)


def test_learning_rates_given_on_resume_replace_the_checkpoints(full_run, image_dirs, tmp_path):
    """Optimiser state restores the old learning rates; the flags of the resuming run must win."""
    import shutil

    out_full, _ = full_run
    out = tmp_path / "relr"
    shutil.copytree(out_full / "checkpoints" / "step-4", out / "checkpoints" / "step-4")
    proc = accelerate(train_args(image_dirs, out, "--max-steps", "5", "--resume-from-checkpoint", "latest",
                                 "--learning-rate", "3e-5", "--discriminator-learning-rate", "7e-5"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "at step 4 (learning rates: generator 3e-05, FiLM 0.001, discriminator 7e-05)" in proc.stderr


DDP_ARGS = ("--max-steps", "3", "--checkpoint-every", "2")  # checkpoints at steps 2 and 3


@pytest.fixture(scope="module")
def ddp_run(image_dirs, tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    proc = run(["torchrun", "--nproc_per_node", "2", "--master_port", str(faults.free_port()), RUN,
                *train_args(image_dirs, out, *DDP_ARGS)], env_extra={"ACCELERATE_USE_CPU": "1"})
    return out, proc


def test_two_cpu_processes_stay_in_sync(ddp_run):
    out, proc = ddp_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 process(es)" in proc.stderr
    assert "generator replicas in sync across 2 processes: True" in proc.stderr
    assert (out / "final" / "model.safetensors").is_file()
    assert len(list((out / "checkpoints" / "step-3").glob("random_states_*.pkl"))) == 2  # each rank's RNG saved


def test_non_finite_loss_stops_with_the_step_and_saves_nothing(image_dirs, tmp_path):
    out = tmp_path / "nan"
    proc = accelerate(train_args(image_dirs, out, "--max-steps", "6", "--learning-rate", "1e30",
                                 "--checkpoint-every", "100"))
    assert proc.returncode == 1
    assert "error: non-finite loss at step" in proc.stdout + proc.stderr
    assert not (out / "final").exists() and not (out / "checkpoints").exists()


def test_push_to_hub_uploads_exactly_weights_config_and_card(image_dirs, tmp_path, monkeypatch):
    """The network upload is faked at the HfApi boundary only; everything else is the real script."""
    import huggingface_hub

    from train import run as train_run

    uploaded = {}

    def fake_create_repo(self, repo_id, **kw):
        uploaded["repo"] = repo_id

    def fake_upload_folder(self, *, repo_id, folder_path, **kw):
        uploaded["files"] = sorted(p.name for p in Path(folder_path).iterdir())
        uploaded["card"] = (Path(folder_path) / "README.md").read_text()

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", fake_create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", fake_upload_folder)
    monkeypatch.setenv("HF_TOKEN", "hf_fake_token_for_test")
    monkeypatch.setenv("ACCELERATE_USE_CPU", "1")
    args = train_args(image_dirs, tmp_path / "push", "--max-steps", "3", "--push-to-hub", "someone/cst-test")
    assert train_run.main(args) == 0
    assert uploaded["repo"] == "someone/cst-test"
    assert uploaded["files"] == ["README.md", "config.json", "model.safetensors"]
    assert 'from_pretrained("someone/cst-test")' in uploaded["card"]


def test_push_without_token_fails_before_training(image_dirs, tmp_path):
    env = {"HF_HOME": str(tmp_path / "hf"), "HF_TOKEN": ""}
    proc = accelerate(train_args(image_dirs, tmp_path / "notoken", "--max-steps", "3", "--push-to-hub", "a/b"),
                      env_extra=env)
    assert proc.returncode != 0
    assert "--push-to-hub needs a Hugging Face token" in proc.stderr
    assert not (tmp_path / "notoken" / "checkpoints").exists()


def test_hub_dataset_source_reads_images_through_the_datasets_library(image_dirs):
    """--content-dataset/--style-dataset go through `datasets.load_dataset`; a local image folder stands in for a Hub
    id offline (same loader, same image-column detection)."""
    from train.data import AugmentedImages, ImageSource

    source = ImageSource(None, str(image_dirs / "style"))
    assert len(source) == 4 and source.image_column == "image"
    crop = AugmentedImages(source, 32)[(0, 123)]
    assert crop.shape == (3, 32, 32) and 0.0 <= float(crop.min()) and float(crop.max()) <= 1.0


def test_style_loss_layers_flag_takes_a_list_and_rejects_unknown_layers(image_dirs, capsys):
    from train import run as train_run

    base = ["--content-dir", str(image_dirs / "content"), "--style-dir", str(image_dirs / "style")]
    assert train_run.parse_args(base).loss.style_loss_layers == ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    assert train_run.parse_args(base + ["--style-loss-layers", "relu3_1", "relu5_1"]).loss.style_loss_layers == (
        "relu3_1", "relu5_1")
    with pytest.raises(SystemExit):
        train_run.parse_args(base + ["--style-loss-layers", "relu4_1", "relu6_1"])
    assert "--style-loss-layers must name layers among" in capsys.readouterr().err


def test_relu5_1_style_term_reaches_the_generator_output(image_dirs):
    """The relu5_1 style term (beyond the generator's relu4_1 encoder) adds to the loss and sends gradient back."""
    import torch

    from train import run as train_run
    from cst import functional as F_
    from cst import losses as L
    from cst.model import STYLE_LAYERS
    from cst.vgg import LAYER_ORDER, VGG19Features

    base = ["--content-dir", str(image_dirs / "content"), "--style-dir", str(image_dirs / "style")]
    net = VGG19Features("relu5_1")
    g = torch.Generator().manual_seed(0)
    content, style = torch.rand(1, 3, 64, 64, generator=g), torch.rand(1, 3, 64, 64, generator=g) ** 3
    content_feats, style_feats = net(content, STYLE_LAYERS), net(style, LAYER_ORDER)
    stats = {k: F_.calc_mean_std(style_feats[k]) for k in STYLE_LAYERS}
    styles = {}
    for layers in (["relu1_1", "relu2_1", "relu3_1", "relu4_1"], ["relu5_1"], list(LAYER_ORDER)):
        # no sliced-Wasserstein term here: its random projections depend on how many layers came before
        cfg = train_run.parse_args(base + ["--style-loss-layers", *layers, "--style-wasserstein-weight", "0"])
        output = content.clone().requires_grad_(True)
        parts = L.generator_objective(cfg.loss, net, output, content, content_feats, style_feats, stats,
                                      torch.ones(1, 3), torch.Generator().manual_seed(1))
        parts["style"].sum().backward()
        assert output.grad.abs().sum() > 0
        styles[len(layers)] = parts["style"].item()
    assert styles[1] > 0
    assert styles[5] == pytest.approx(styles[4] + styles[1], rel=1e-3)


@pytest.mark.parametrize("squared", [False, True])
def test_gram_style_term_is_the_evaluations_relative_error(image_dirs, squared):
    """Training's Gram term is cst.eval's metric ‖G_out − G_style‖ / ‖G_style‖ per layer (or its square)."""
    import torch

    from train import run as train_run
    from cst import eval as cst_eval
    from cst import functional as F_
    from cst import losses as L
    from cst.model import STYLE_LAYERS
    from cst.vgg import VGG19Features

    cfg = train_run.parse_args([
        "--content-dir", str(image_dirs / "content"), "--style-dir", str(image_dirs / "style"),
        "--style-loss-layers", "relu3_1", "--style-mean-std-weight", "0", "--style-wasserstein-weight", "0",
        "--style-gram-weight", "1", "--style-gram-squared", str(squared)])
    net = VGG19Features("relu4_1")
    g = torch.Generator().manual_seed(0)
    content, style = torch.rand(2, 3, 48, 48, generator=g), torch.rand(2, 3, 48, 48, generator=g) ** 2
    content_feats, style_feats = net(content, STYLE_LAYERS), net(style, STYLE_LAYERS)
    stats = {k: F_.calc_mean_std(v) for k, v in style_feats.items()}
    parts = L.generator_objective(cfg.loss, net, content, content, content_feats, style_feats, stats, torch.ones(2, 3), g)
    for i in range(2):
        expected = cst_eval.relative_error(F_.gram_matrix(content_feats["relu3_1"][i:i + 1]),
                                           F_.gram_matrix(style_feats["relu3_1"][i:i + 1]))
        assert parts["style"][i].item() == pytest.approx(expected ** 2 if squared else expected, rel=1e-4)


def test_crop_scale_sets_how_much_of_the_image_a_training_crop_covers(image_dirs, tmp_path, capsys):
    from train import run as train_run
    from train.data import AugmentedImages, ImageSource

    ramp = np.tile(np.linspace(0, 255, 400).astype(np.uint8), (300, 1))  # left-to-right grey ramp, 400 x 300
    (tmp_path / "ramp").mkdir()
    Image.fromarray(ramp).convert("RGB").save(tmp_path / "ramp" / "ramp.png")
    source = ImageSource(str(tmp_path / "ramp"), None)
    for seed in range(5):
        small = AugmentedImages(source, 32, (0.04, 0.04))[(0, seed)]
        whole = AugmentedImages(source, 32, (1.0, 1.0))[(0, seed)]
        assert float(small.max() - small.min()) < 0.3  # a crop ~1/5 of the width sees ~1/5 of the ramp
        assert float(whole.max() - whole.min()) > 0.6  # most of it (the aspect ratio is jittered too)
    base = ["--content-dir", str(image_dirs / "content"), "--style-dir", str(image_dirs / "style")]
    assert train_run.parse_args(base + ["--crop-scale", "0.04", "0.16"]).crop_scale == (0.04, 0.16)
    with pytest.raises(SystemExit):
        train_run.parse_args(base + ["--crop-scale", "0", "0.5"])
    assert "--crop-scale needs 0 < min <= max <= 1" in capsys.readouterr().err


# -- the named steps, in-process on a tiny model ---------------------------------------------------------------
@pytest.fixture
def trainer(image_dirs, tmp_path, monkeypatch):
    import torch
    from accelerate import Accelerator

    from train import run as train_run

    monkeypatch.setenv("ACCELERATE_USE_CPU", "1")
    torch.manual_seed(0)
    cfg = train_run.parse_args(train_args(image_dirs, tmp_path / "steps", "--max-steps", "4"))
    t = train_run.Trainer(cfg, Accelerator(cpu=True))
    t.open_data()
    return t


def _snapshot(module):
    """Parameters only: spectral norm's power-iteration buffers move on every forward pass by design."""
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def _changed(before, module):
    return sorted(k for k, v in module.named_parameters() if not v.detach().equal(before[k]))


def test_discriminator_step_updates_only_the_discriminator(trainer):
    g0, d0 = _snapshot(trainer.gen.trainable_modules()), _snapshot(trainer.disc)
    logs = trainer.discriminator_step(trainer.next_batch(0, 0))
    assert set(logs) == {"d_loss"} and logs["d_loss"].isfinite()
    assert _changed(g0, trainer.gen.trainable_modules()) == [] and _changed(d0, trainer.disc)


def test_generator_step_updates_only_the_generator_and_logs_every_term(trainer):
    g0, d0 = _snapshot(trainer.gen.trainable_modules()), _snapshot(trainer.disc)
    logs = trainer.generator_step(trainer.next_batch(0, 0), adversarial=True)
    assert set(logs) == {"g_loss", "content", "style", "tv", "adversarial"}
    assert _changed(d0, trainer.disc) == [] and _changed(g0, trainer.gen.trainable_modules())


def test_light_generator_is_conditioned_on_the_whole_painting_not_the_crop(trainer):
    b = trainer.next_batch(0, 0)
    size = trainer.cfg.generator.style_size
    assert trainer.gen.is_light and b.style.shape[-1] == trainer.cfg.image_size
    assert not torch_equal_stats(b.cond_stats, b.style_stats)  # thumbnails of whole paintings, at style_size
    assert size == 32


def torch_equal_stats(a, b) -> bool:
    return all(a[k][0].shape == b[k][0].shape and bool((a[k][0] == b[k][0]).all()) for k in a)


def test_distillation_warm_start_pulls_towards_the_teacher(image_dirs, tmp_path, make_model):
    """Stage 0: pixel L1 to a saved model's outputs; it is logged and runs before the method's stages."""
    teacher = tmp_path / "teacher"
    make_model().save_pretrained(teacher)
    out = tmp_path / "distill"
    proc = accelerate(train_args(image_dirs, out, "--max-steps", "4", "--distill-from", str(teacher),
                                 "--distill-steps", "2", "--pretrain-generator-steps", "3"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    stages = {r["step"]: r["stage"] for r in losses_by_step(out).values()}
    assert stages == {1: "distill", 2: "distill", 3: "generator", 4: "discriminator"}
    assert "distill_l1" in losses_by_step(out)[1] and "images_per_s" in losses_by_step(out)[1]


def test_train_config_round_trips_strictly_and_nests_the_library_configs(image_dirs):
    from cst import StyleTransferConfig
    from cst.errors import StyleTransferError
    from train.config import TrainConfig
    from train import run as train_run

    cfg = train_run.parse_args(train_args(image_dirs, Path("x"), "--style-gram-weight", "3", "--architecture", "vgg"))
    assert isinstance(cfg.generator, StyleTransferConfig) and cfg.generator.architecture == "vgg"
    assert cfg.loss.style_gram_weight == 3 and cfg.discriminator.base_channels == 8
    data = json.loads(json.dumps(cfg.to_dict()))
    assert TrainConfig.from_dict(data) == cfg
    with pytest.raises(StyleTransferError, match="unknown keys"):
        TrainConfig.from_dict({**data, "loss": {**data["loss"], "gram": 1}})


def test_fresh_light_run_standardises_the_style_input_in_generator_and_ema(trainer):
    import torch

    assert torch.equal(trainer.gen.conditioner.style_center, torch.zeros_like(trainer.gen.conditioner.style_center))
    trainer.fit_style_normalisation()
    center = trainer.gen.conditioner.style_center
    assert center.abs().sum() > 0 and torch.equal(center, trainer.ema.conditioner.style_center)
    assert (trainer.gen.conditioner.style_scale > 0).all()


# -- faults: kill -9, a full disk, a pickle in a checkpoint ------------------------------------------------------
def test_kill_9_at_random_moments_then_resume_ends_with_the_uninterrupted_weights(full_run, image_dirs, tmp_path):
    """SIGKILL inside the second checkpoint save, a random fraction of a step after a step, and inside a save again;
    each time the newest complete checkpoint loads, a half-written one is never resumed from, and the run ends with
    exactly the weights and losses of the uninterrupted run."""
    import random

    out_full, _ = full_run
    out = tmp_path / "killed"
    cmd = faults.command([*train_args(image_dirs, out, "--max-steps", "6"), "--resume-from-checkpoint", "latest"])
    complete = {p.name for p in (out_full / "checkpoints" / "step-6").iterdir()}
    kills = [faults.Kill("save", 2), faults.Kill("step", 1 + random.Random(0).random()), faults.Kill("save", 2)]
    records = faults.kill_and_resume(cmd, faults.environment(), out, kills, complete, tmp_path, tmp_path / "log")
    report = "\n".join(map(str, records))
    assert all(r["problem"] is None for r in records), report
    assert sum(r["inside_save"] for r in records) >= 1, report  # a kill landed inside a save: .tmp-step-N left
    for r in records:  # the next launch resumed from the newest complete checkpoint, not from a .tmp-step-N
        assert r["next_resumed_at"] in (None, r["latest"]), report
    assert r["next_resumed_at"] == r["latest"] > 0, report  # the last launch resumed from a real checkpoint
    assert faults.same_weights(out, out_full), report
    assert faults.history(out) == faults.history(out_full)


def test_kill_9_of_the_two_process_run_inside_a_save(ddp_run, image_dirs, tmp_path):
    """torchrun and both workers killed at once while they write the step-3 checkpoint; the resumed two-process run
    ends with the uninterrupted two-process run's weights."""
    out_full, proc = ddp_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "ddp-killed"

    def cmd() -> list[str]:  # a fresh rendezvous port for each launch
        return faults.command([*train_args(image_dirs, out, *DDP_ARGS), "--resume-from-checkpoint", "latest"],
                              processes=2)

    complete = {p.name for p in (out_full / "checkpoints" / "step-3").iterdir()}
    records = faults.kill_and_resume(cmd, faults.environment(), out, [faults.Kill("save", 2)], complete, tmp_path,
                                     tmp_path / "log")
    [record] = records
    assert record["problem"] is None and record["latest"] == 2, record
    assert record["next_resumed_at"] == 2, record
    assert faults.same_weights(out, out_full)


def test_full_disk_while_saving_a_checkpoint_on_a_real_tmpfs(image_dirs, tmp_path):
    """The output folder on a 60 MB tmpfs: the step-2 checkpoint (about 41 MB) fits, step-4 does not. The run stops
    with a one-line error naming the checkpoint kept, leaves no partial folder, and step-2 still loads."""
    mount = tmp_path / "small_disk"
    mount.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=60m", "tmpfs", str(mount)], capture_output=True,
                             text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip()}): the in-process ENOSPC test covers it")
    try:
        out = mount / "run"
        proc = subprocess.run(faults.command(train_args(image_dirs, out, "--max-steps", "6")), cwd=ROOT,
                              env=faults.environment(), capture_output=True, text=True, timeout=600)
        messages = [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("error: ")]
        assert proc.returncode == 1, proc.stderr[-3000:]
        assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
        assert len(messages) == 1 and "could not write checkpoint step-4" in messages[0], messages
        assert "No space left on device" in messages[0] and "Kept: step-2." in messages[0], messages
        assert [p.name for p in (out / "checkpoints").iterdir()] == ["step-2"]  # no .tmp-step-4 left behind
        from train.run import check_tensors_only

        check_tensors_only(out / "checkpoints" / "step-2")  # every file of it loads
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_full_disk_while_saving_in_process(trainer, tmp_path, monkeypatch):
    """The same without a tmpfs: the checkpoint writer (torch.save, which Accelerate writes the optimiser state and
    the EMA with) writes half its bytes, then fails with ENOSPC, as a full disk does."""
    import errno

    import torch

    from train import run as train_run

    out = tmp_path / "out"
    train_run.save_checkpoint(trainer.acc, out, 2, keep=2)
    real_save = torch.save

    def save_on_a_full_disk(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        path = Path(f)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(torch, "save", save_on_a_full_disk)
    with pytest.raises(train_run.CheckpointError) as caught:
        train_run.save_checkpoint(trainer.acc, out, 4, keep=2)
    message = str(caught.value)
    assert "\n" not in message and "could not write checkpoint step-4" in message
    assert "No space left on device" in message and "Kept: step-2." in message
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["step-2"]
    monkeypatch.setattr(torch, "save", real_save)
    train_run.check_tensors_only(out / "checkpoints" / "step-2")


@pytest.mark.parametrize("name", ["custom_checkpoint_0.pkl", "custom_checkpoint_1.pkl", "random_states_0.pkl"])
def test_a_checkpoint_holding_a_pickle_payload_is_refused_unexecuted(name, full_run, image_dirs, tmp_path,
                                                                    malicious_pickle, monkeypatch):
    """Accelerate restores the objects registered for checkpointing (our step counter, the EMA) with
    torch.load(weights_only=False): a crafted file there would run code on resume. It must be refused first."""
    import shutil

    from train import run as train_run

    out_full, _ = full_run
    out = tmp_path / "run"
    shutil.copytree(out_full / "checkpoints" / "step-4", out / "checkpoints" / "step-4")
    marker = malicious_pickle(out / "checkpoints" / "step-4" / name, "step")
    monkeypatch.setenv("ACCELERATE_USE_CPU", "1")
    with pytest.raises(SystemExit) as caught:
        train_run.main(train_args(image_dirs, out, "--max-steps", "6", "--resume-from-checkpoint", "latest"))
    assert not marker.exists()
    message = str(caught.value.code)
    assert f"refusing to resume from {out / 'checkpoints' / 'step-4'}: {name} holds more than tensors" in message
    assert "\n" not in message
    if name == "custom_checkpoint_0.pkl":  # the EMA generator: train/export.py reads it as tensors only, too
        from train.export import export

        shutil.copy(out_full / "train_config.json", out / "train_config.json")
        with pytest.raises(Exception, match="Weights only load failed"):
            export(out / "checkpoints" / "step-4", tmp_path / "exported")
        assert not marker.exists()
