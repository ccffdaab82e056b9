"""Mask post-processing: filling small holes in predicted masks (no CUDA extension needed)."""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

FILLED_HOLE_LOGIT = 0.1  # a filled hole becomes barely foreground
_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def fill_holes(mask_logits: torch.Tensor, max_area: int) -> torch.Tensor:
    """Turn background regions (logits <= 0, 8-connected) of at most `max_area` pixels into foreground.

    `mask_logits` is (B, 1, H, W); as in Meta's SAM 2, every small background component counts as a hole.
    """
    if max_area <= 0:
        return mask_logits
    background = (mask_logits <= 0).cpu().numpy()
    holes = np.zeros_like(background)
    for index in np.ndindex(background.shape[:2]):
        labels, count = ndimage.label(background[index], structure=_EIGHT_CONNECTED)
        if count == 0:
            continue
        areas = np.bincount(labels.ravel())
        small = areas <= max_area
        small[0] = False  # label 0 is the foreground
        holes[index] = small[labels]
    if not holes.any():
        return mask_logits
    return torch.where(torch.from_numpy(holes).to(mask_logits.device), FILLED_HOLE_LOGIT, mask_logits)
