"""Meta's training augmentations for SAM 2 clips, in torch: the same flip, affine warp and grayscale on every frame
of a clip, a colour jitter shared by the clip and another drawn per frame (sam2.1 fine-tuning recipe values)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

GRAY_WEIGHTS = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class ColourJitter:
    """Brightness, contrast and saturation factors drawn uniformly in [1 - x, 1 + x]."""

    brightness: float
    contrast: float
    saturation: float

    def apply(self, images: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """`images` (N, 3, H, W) in [0, 1], one draw for all N."""
        for kind, strength in (
            ("brightness", self.brightness),
            ("contrast", self.contrast),
            ("saturation", self.saturation),
        ):
            if strength <= 0:
                continue
            factor = float(rng.uniform(max(0.0, 1 - strength), 1 + strength))
            if kind == "brightness":
                reference = torch.zeros_like(images)
            elif kind == "contrast":
                reference = _gray(images).mean(dim=(-3, -2, -1), keepdim=True).expand_as(images)
            else:
                reference = _gray(images).expand_as(images)
            images = (factor * images + (1 - factor) * reference).clamp(0, 1)
        return images


@dataclass(frozen=True)
class Augmentation:
    """Clip augmentation; the defaults are Meta's fine-tuning recipe."""

    flip_probability: float = 0.5
    degrees: float = 25.0
    shear: float = 20.0
    clip_jitter: ColourJitter = ColourJitter(0.1, 0.03, 0.03)
    grayscale_probability: float = 0.05
    frame_jitter: ColourJitter = ColourJitter(0.1, 0.05, 0.05)

    def apply(
        self, images: torch.Tensor, masks: torch.Tensor, rng: np.random.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Augment a clip: `images` (T, 3, S, S) in [0, 1], `masks` (T, O, S, S) bool."""
        if rng.random() < self.flip_probability:
            images, masks = images.flip(-1), masks.flip(-1)
        images, masks = self._warp(images, masks, rng)
        images = self.clip_jitter.apply(images, rng)
        if rng.random() < self.grayscale_probability:
            images = _gray(images).expand_as(images).contiguous()
        images = torch.cat([self.frame_jitter.apply(frame[None], rng) for frame in images])
        return images, masks

    def _warp(
        self, images: torch.Tensor, masks: torch.Tensor, rng: np.random.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One random rotation and shear about the centre for the whole clip; images bilinear, masks nearest.
        A warp that would push every object out of the first frame is not applied."""
        angle = math.radians(rng.uniform(-self.degrees, self.degrees))
        shear_x = math.radians(rng.uniform(-self.shear, self.shear))
        rotation = torch.tensor([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
        shearing = torch.tensor([[1.0, math.tan(shear_x)], [0.0, 1.0]])
        inverse = torch.linalg.inv(rotation @ shearing)  # grid_sample maps output pixels to input pixels
        theta = torch.cat([inverse, torch.zeros(2, 1)], dim=1).unsqueeze(0).to(images.dtype)
        grid = F.affine_grid(theta.expand(images.shape[0], -1, -1), list(images.shape), align_corners=False)
        warped_masks = F.grid_sample(masks.float(), grid, mode="nearest", align_corners=False) > 0.5
        if not warped_masks[0].any():
            return images, masks
        return F.grid_sample(images, grid, mode="bilinear", align_corners=False), warped_masks


def _gray(images: torch.Tensor) -> torch.Tensor:
    weights = torch.tensor(GRAY_WEIGHTS, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    return (images * weights).sum(dim=1, keepdim=True)
