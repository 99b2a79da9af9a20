"""Export the EMA generator of a training checkpoint as a model folder (config.json + model.safetensors).

    python train/export.py runs/v1/checkpoints/step-3000 -o my-model

Useful while a run is still going (the run itself only writes `final/` at its last step). The generator's
configuration is read from the run's train_config.json (strictly); the checkpoint's EMA state is read with
`torch.load(weights_only=True)`: tensors only, nothing unpickled beyond them.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

if __package__ in (None, ""):  # run as a script: make `cst` and `train` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cst import StyleTransferModel  # noqa: E402
from train.config import TrainConfig  # noqa: E402
from train.run import checkpoint_file  # noqa: E402

EMA_FILE = checkpoint_file("ema")


def export(checkpoint: Path, output: Path) -> StyleTransferModel:
    """Rebuild the run's generator from train_config.json beside the checkpoints and load the EMA weights."""
    cfg = TrainConfig.from_dict(json.loads((checkpoint.parent.parent / "train_config.json").read_text()))
    model = StyleTransferModel(cfg.generator)
    state = torch.load(checkpoint / EMA_FILE, map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    model.save_pretrained(output)
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path, help="a checkpoints/step-N folder of a train/run.py run")
    parser.add_argument("-o", "--output", type=Path, required=True, help="model folder to write")
    args = parser.parse_args(argv)
    if not (args.checkpoint / EMA_FILE).is_file():
        parser.error(f"{args.checkpoint} is not a train/run.py checkpoint (no {EMA_FILE})")
    export(args.checkpoint, args.output)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
