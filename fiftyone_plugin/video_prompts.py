"""The SAM 2 prompts of one video sample: from its ground truth (masks, boxes, clicks) or a field of user labels.

Ground-truth prompts go on each object's first annotated frame where it is visible (the SA-V / VOS protocol).
User prompts: Detections (their mask, else their box) or Keypoints (clicks, negative where the label is
``"negative"``), one object per ``index`` (Detections and Keypoints without one each get a new track id).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import fiftyone as fo
import numpy as np

from .masks import detection_to_mask
from .prompts import mask_box
from .tracks import detections_by_frame, frame_index, frame_size

GT_PROMPTS = ("gt_masks", "gt_boxes", "gt_clicks")
NEGATIVE_LABEL = "negative"


@dataclass
class ObjectPrompt:
    """One object's prompt on one frame (0-based ``frame_idx``); ``gt_mask`` drives simulated clicks."""

    obj_id: int
    frame_idx: int
    mask: np.ndarray | None = None
    box: tuple[float, float, float, float] | None = None
    points: list[tuple[float, float]] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    gt_mask: np.ndarray | None = None
    attributes: dict = field(default_factory=dict)


def _label_attributes(label: fo.Label) -> dict:
    """What predictions inherit from their prompt: label and SA-V masklet identity."""
    names = ("label", "masklet_id", "masklet_type")
    values = {name: label.get_field(name) for name in names if label.has_field(name)}
    return {name: value for name, value in values.items() if value is not None}


def ground_truth_prompts(sample: fo.Sample, gt_field: str, mode: str) -> list[ObjectPrompt]:
    """``mode`` 'gt_masks', 'gt_boxes' or 'gt_clicks' on each ground-truth object's first visible frame."""
    size = frame_size(sample)
    prompts: dict[int, ObjectPrompt] = {}
    for number, objects in sorted(detections_by_frame(sample, gt_field).items()):
        for index, detection in objects.items():
            if index in prompts:
                continue
            mask = detection_to_mask(detection, size)
            if not mask.any():
                continue
            prompt = ObjectPrompt(index, frame_index(number), attributes=_label_attributes(detection))
            if mode == "gt_masks":
                prompt.mask = mask
            elif mode == "gt_boxes":
                prompt.box = mask_box(mask)
            else:
                prompt.gt_mask = mask
            prompts[index] = prompt
    return [prompts[index] for index in sorted(prompts)]


def _new_id(used: set[int]) -> int:
    new = max(used, default=-1) + 1
    used.add(new)
    return new


def label_field_prompts(sample: fo.Sample, prompt_field: str) -> list[ObjectPrompt]:
    """Prompts from a frame field of Detections or Keypoints drawn by a user."""
    width, height = frame_size(sample)
    prompts: list[ObjectPrompt] = []
    used: set[int] = set()
    by_key: dict[tuple[int, int], ObjectPrompt] = {}
    for number, frame in sample.frames.items():
        labels = frame[prompt_field] if frame.has_field(prompt_field) else None
        if labels is None:
            continue
        if not isinstance(labels, (fo.Detections, fo.Keypoints)):
            raise ValueError(
                f"frame field '{prompt_field}' holds {type(labels).__name__}; prompts must be "
                "Detections (boxes or masks) or Keypoints (clicks)"
            )
        items = labels.detections if isinstance(labels, fo.Detections) else labels.keypoints
        used.update(item.index for item in items if item.index is not None)
        for item in items:
            obj_id = item.index if item.index is not None else _new_id(used)
            prompt = by_key.get((number, obj_id))
            if prompt is None:
                prompt = ObjectPrompt(obj_id, frame_index(number), attributes=_label_attributes(item))
                by_key[(number, obj_id)] = prompt
                prompts.append(prompt)
            if isinstance(item, fo.Detection):
                if item.has_mask:
                    prompt.mask = detection_to_mask(item, (width, height))
                else:
                    x, y, w, h = item.bounding_box
                    prompt.box = (x * width, y * height, (x + w) * width, (y + h) * height)
            else:
                prompt.points += [(px * width, py * height) for px, py in item.points]
                prompt.labels += [0 if item.label == NEGATIVE_LABEL else 1] * len(item.points)
    return prompts
