"""Segment all: the automatic mask generator on one frame, each mask a new object of the tracking session."""

from __future__ import annotations

import numpy as np

from sam2_plugins.auto_masklets import MaskGenerator


def segment_all(generator: MaskGenerator, frame: np.ndarray, first_id: int) -> dict[int, np.ndarray]:
    """``{obj_id: (H, W) mask}`` of every mask the generator finds in an ``(H, W, 3)`` uint8 frame, numbered from
    ``first_id`` in the generator's record order (best first); ready for `TrackingSession.add_masks`."""
    records = generator.generate(frame)
    masks = []
    for record in records:
        segmentation = record["segmentation"]
        if not isinstance(segmentation, np.ndarray):
            raise TypeError("segment_all needs the generator's binary masks: create it with output_mode='binary_mask'")
        if segmentation.any():
            masks.append(segmentation.astype(bool, copy=False))
    return {first_id + k: mask for k, mask in enumerate(masks)}
