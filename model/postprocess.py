"""Mask post-processing: filling small holes in predicted masks (no CUDA extension needed)."""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

FILLED_HOLE_LOGIT = 0.1  # a filled hole becomes barely foreground
_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def small_regions(mask: np.ndarray, max_area: float) -> np.ndarray:
    """The pixels of 8-connected regions of at most `max_area` pixels in each 2D plane of a (..., H, W) bool mask."""
    small_pixels = np.zeros_like(mask)
    for index in np.ndindex(mask.shape[:-2]):
        labels, count = ndimage.label(mask[index], structure=_EIGHT_CONNECTED)
        if count == 0:
            continue
        areas = np.bincount(labels.ravel())
        small = areas <= max_area
        small[0] = False  # label 0 is outside the mask
        small_pixels[index] = small[labels]
    return small_pixels


def fill_holes(mask_logits: torch.Tensor, max_area: int) -> torch.Tensor:
    """Turn background regions (logits <= 0, 8-connected) of at most `max_area` pixels into foreground.

    `mask_logits` is (B, 1, H, W); as in Meta's SAM 2, every small background component counts as a hole.
    """
    if max_area <= 0:
        return mask_logits
    holes = small_regions((mask_logits <= 0).cpu().numpy(), max_area)
    if not holes.any():
        return mask_logits
    return torch.where(torch.from_numpy(holes).to(mask_logits.device), FILLED_HOLE_LOGIT, mask_logits)
