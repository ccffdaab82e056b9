"""Meta's image predictor beside ours on one seeded random model in the official format (parity tests only)."""

from __future__ import annotations

import pytest
import torch
import torchvision_standin

from sam2_plugins.model import Sam2ImagePredictor

torchvision_standin.install()  # before Meta's modules import torchvision
reference_build = pytest.importorskip("sam2.build_sam")
reference_predictor = pytest.importorskip("sam2.sam2_image_predictor")
reference_transforms = pytest.importorskip("sam2.utils.transforms")

CONFIG = "sam2.1_hiera_t"
IMAGE_SIZE = 1024  # Meta's image predictor hard-codes the feature sizes of 1024 px inputs
PARITY_MARKS = [
    pytest.mark.parity,
    pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning"),  # in SAM2Transforms
]
"""The image parity modules' ``pytestmark``."""
MIN_IOU = 0.99
"""Least IoU of our mask with the reference's."""
SCORE_TOLERANCE = 1e-3
"""Largest difference of a predicted IoU or stability score from the reference's."""


def reference_and_ours(tmp_path_factory, config: str = CONFIG, seed: int = 0, **options):
    """Meta's predictor and ours on one seeded random model, saved and reloaded as an official checkpoint."""
    folder = "sam2.1" if config.startswith("sam2.1") else "sam2"
    torch.manual_seed(seed)
    model = reference_build.build_sam2(f"configs/{folder}/{config}.yaml", None, device="cpu")
    checkpoint = tmp_path_factory.mktemp("checkpoint") / f"{config}_{seed}.pt"
    torch.save({"model": model.state_dict()}, checkpoint)
    ours = Sam2ImagePredictor.from_checkpoint(checkpoint, config=config, image_size=IMAGE_SIZE, device="cpu", **options)
    return reference_predictor.SAM2ImagePredictor(model, **options), ours
