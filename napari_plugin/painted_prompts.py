"""Painted labels as SAM 2 mask prompts: the selected label painted on a frame, or every label of a frame of any
Labels layer (micro-sam's output, a previous session's labels) seeding one object each.

Label ``k`` prompts object ``k`` (the session's ``add_mask``), so a previous session's labels continue as the same
objects.
"""

from __future__ import annotations

import numpy as np

from .frame_axes import FrameAxes


def painted_mask(labels: np.ndarray, frame_idx: int, obj_id: int) -> dict[int, np.ndarray]:
    """``{obj_id: mask}``: the pixels of label ``obj_id`` on frame ``frame_idx`` of a ``(T, H, W)`` label stack."""
    if obj_id < 1:
        raise ValueError(f"label {obj_id} is background; select the label of the object you painted (1 or more)")
    mask = np.asarray(labels[frame_idx]) == obj_id
    if not mask.any():
        raise ValueError(
            f"label {obj_id} has no painted pixels on frame {frame_idx}; paint it there with the brush first "
            "(or select the label you painted)"
        )
    return {obj_id: mask}


def frame_masks(
    source: np.ndarray, frame_axes: FrameAxes, frame_idx: int, name: str = "labels"
) -> dict[int, np.ndarray]:
    """Every label of frame ``frame_idx`` of ``source`` as ``{label: (H, W) mask}``.

    ``source`` is a label array of the image's shape (read along ``frame_axes``), one frame ``(H, W)`` of it, or a
    ``(T, H, W)`` stack of the session's frames (its frame ``frame_idx`` is used).
    """
    frame_shape = tuple(frame_axes.shape[axis] for axis in frame_axes.plane)
    if tuple(source.shape) == frame_axes.shape:
        frame = frame_axes.frame_view(source)[frame_idx]
    elif tuple(source.shape) == frame_shape:
        frame = source
    elif tuple(source.shape) == (frame_axes.num_frames, *frame_shape):
        frame = source[frame_idx]
    else:
        raise ValueError(
            f"{name}: shape {tuple(source.shape)} fits neither the image {frame_axes.shape}, one of its frames "
            f"{frame_shape} nor its {frame_axes.num_frames} frames; pick a Labels layer drawn on this image"
        )
    frame = np.asarray(frame)
    if not np.issubdtype(frame.dtype, np.integer):
        raise ValueError(f"{name}: labels must be integers, got {frame.dtype}")
    ids = [int(obj_id) for obj_id in np.unique(frame) if obj_id > 0]
    if not ids:
        raise ValueError(f"{name}: frame {frame_idx} holds no labels; pick a frame where objects are labelled")
    return {obj_id: frame == obj_id for obj_id in ids}
