"""Segment all: the automatic mask generator on one frame, each mask a new object of the tracking session; Track
all: automatic masklets from one frame on, painted frame by frame."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import torch

from sam2_plugins.auto_masklets import MaskGenerator

from .tracking import FrameLabels, paint_masks


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


def painted_masklets(
    masklets: Iterable[tuple[int, list[int], torch.Tensor]], labels: np.ndarray, first_id: int
) -> Iterator[FrameLabels]:
    """Each frame of automatic masklets (`sam2_plugins.auto_masklets`, objects 0, 1, ...) painted on a copy of that
    frame of the ``(T, H, W)`` labels as labels ``first_id``, ``first_id + 1``, ... (runs in the worker)."""
    for frame_idx, obj_ids, logits in masklets:
        frame_labels = np.array(labels[frame_idx])
        paint_masks(frame_labels, [first_id + int(obj_id) for obj_id in obj_ids], logits.float().cpu().numpy())
        yield frame_idx, frame_labels
