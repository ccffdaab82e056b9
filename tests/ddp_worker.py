"""Trains a `Finetuner` built as `sam2-plugins finetune` builds it and saves what each process ended with.

Run under `torchrun` by tests/test_training_ddp.py (or imported there for single-process runs): every process
writes `OUT_DIR/rank<r>.pt` with its final weights, its losses and gradients of the first step, the objects in its first
batch and the clips it drew, so the test can compare processes with each other and with single-process runs.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import torch
import torch.distributed as dist

from sam2_plugins.datasets import detect_layout
from sam2_plugins.model.predictor import load_model
from sam2_plugins.training.optimizer import OptimizerRecipe
from sam2_plugins.training.prompting import PromptRecipe
from sam2_plugins.training.trainer import Finetuner, FinetuneSettings, init_distributed


def train(train_root: Path, checkpoint: Path, image_size: int, steps: int, seed: int, freeze: tuple[str, ...]) -> dict:
    """`steps` steps of clicked clips (every step learns), gradients unclipped (the clip comes after averaging)."""
    device = init_distributed() or torch.device("cpu")
    settings = FinetuneSettings(
        steps=steps,
        frames_per_clip=2,
        objects_per_clip=3,
        freeze=freeze,
        seed=seed,
        optimizer=replace(OptimizerRecipe(), max_grad_norm=float("inf")),
        prompts=replace(PromptRecipe(), point_probability=1.0),
    )
    model = load_model(checkpoint, None, image_size=image_size, apply_postprocessing=False)
    videos = detect_layout(train_root).videos(train_root)
    finetuner = Finetuner(model, videos, settings, train_root.parent / "unused.pt", {}, device)
    model.train()
    drawn, first_losses, first_gradients, first_objects = [], None, None, 0
    for _ in range(steps):
        batch = [finetuner.clips.sample() for _ in range(settings.batch_size)]
        drawn += [(clip.video_id, clip.frames, clip.objects) for clip in batch]
        losses = finetuner.train_step(batch)
        if first_gradients is None:
            first_losses = losses
            first_gradients = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
            first_objects = sum(len(clip.objects) for clip in batch)
    return {
        "model": model.state_dict(),
        "losses": first_losses,
        "gradients": first_gradients,
        "objects": first_objects,
        "clips": drawn,
        "world_size": dist.get_world_size() if dist.is_initialized() else 1,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--train_root", type=Path, required=True)
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--image_size", type=int, required=True)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--freeze", nargs="*", default=["image_encoder"])
    parser.add_argument("--out_dir", type=Path, required=True)
    args = parser.parse_args()
    record = train(args.train_root, args.checkpoint, args.image_size, args.steps, args.seed, tuple(args.freeze))
    rank = dist.get_rank() if dist.is_initialized() else 0
    torch.save(record, args.out_dir / f"rank{rank}.pt")
    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
