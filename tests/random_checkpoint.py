"""Seeded random-weight checkpoints in the official format, shared by the suite (no real weights here)."""

from pathlib import Path

import torch

from sam2_plugins.model import build_model

CONFIG = "sam2.1_hiera_t"
IMAGE_SIZE = 128
"""The suite's default model: small enough for CPU; plumbing only, the masks mean nothing."""


def write_random_checkpoint(folder: Path, config: str = CONFIG, image_size: int = IMAGE_SIZE, seed: int = 0) -> Path:
    """``{"model": state_dict}`` of a seeded random ``config`` at ``image_size``, saved under ``folder``."""
    path = folder / f"{config}_{image_size}px_random_{seed}.pt"
    if not path.is_file():
        torch.manual_seed(seed)
        torch.save({"model": build_model(config, image_size=image_size).state_dict()}, path)
    return path
