"""Shared by the napari tests: a seeded random-weight checkpoint in the official format, small enough for CPU."""
from pathlib import Path

import torch

from sam2_plugins.model import build_model

CONFIG = "sam2.1_hiera_t"
IMAGE_SIZE = 128


def write_random_checkpoint(folder: Path, seed: int = 0) -> Path:
    """``{"model": state_dict}`` of a seeded random SAM 2.1 tiny at ``IMAGE_SIZE``, saved under ``folder``."""
    torch.manual_seed(seed)
    path = folder / f"{CONFIG}_random_{seed}.pt"
    torch.save({"model": build_model(CONFIG, image_size=IMAGE_SIZE).state_dict()}, path)
    return path
