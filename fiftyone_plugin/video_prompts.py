"""The SAM 2 prompts of one video sample: from its ground truth (masks, boxes, clicks) or a field of user labels.

Ground-truth prompts go on each object's first annotated frame where it is visible (the SA-V / VOS protocol).
User prompts: Detections (their mask, else their box) or Keypoints (clicks), one object per ``index``
(Detections and Keypoints without one each get a new track id). As for FiftyOne's zoo SAM models, a Keypoint's
per-point ``sam_labels`` or ``sam2_labels`` (1 positive, 0 negative) say each click's polarity; without them
every click is positive, or negative where the Keypoint's label is ``"negative"``. NaN points (FiftyOne's missing
points) are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import fiftyone as fo
import numpy as np

from sam2_plugins.prompt_simulation import mask_box
from sam2_plugins.prompts import ObjectPrompt

from .masks import detection_to_mask
from .tracks import detections_by_frame, frame_index, frame_size

GT_PROMPTS = ("gt_masks", "gt_boxes", "gt_clicks")
NEGATIVE_LABEL = "negative"
POINT_LABEL_FIELDS = ("sam_labels", "sam2_labels")
"""Keypoint attributes holding per-point click labels, in the order FiftyOne's zoo reads them."""


@dataclass
class LabelPrompts:
    """The library's prompts converted from a sample's labels, with what each object's predictions inherit from
    its labels (``label``, SA-V ``masklet_id`` / ``masklet_type``) by track id."""

    prompts: list[ObjectPrompt] = field(default_factory=list)
    attributes: dict[int, dict] = field(default_factory=dict)


def _label_attributes(label: fo.Label) -> dict:
    """What predictions inherit from their prompt: label and SA-V masklet identity."""
    names = ("label", "masklet_id", "masklet_type")
    values = {name: label.get_field(name) for name in names if label.has_field(name)}
    return {name: value for name, value in values.items() if value is not None}


def ground_truth_prompts(sample: fo.Sample, gt_field: str, mode: str, num_clicks: int = 1) -> LabelPrompts:
    """``mode`` 'gt_masks', 'gt_boxes' or 'gt_clicks' (``num_clicks`` simulated) on each ground-truth object's
    first visible frame."""
    size = frame_size(sample)
    found = LabelPrompts()
    for number, objects in sorted(detections_by_frame(sample, gt_field).items()):
        for index, detection in objects.items():
            if index in found.attributes:
                continue
            mask = detection_to_mask(detection, size)
            if not mask.any():
                continue
            frame = frame_index(number)
            if mode == "gt_masks":
                prompt = ObjectPrompt(frame, index, mask=mask)
            elif mode == "gt_boxes":
                prompt = ObjectPrompt(frame, index, box=mask_box(mask))
            else:
                prompt = ObjectPrompt(frame, index, mask=mask, simulated_clicks=num_clicks)
            found.prompts.append(prompt)
            found.attributes[index] = _label_attributes(detection)
    found.prompts.sort(key=lambda prompt: prompt.obj_id)
    return found


def keypoint_clicks(keypoint: fo.Keypoint, width: int, height: int) -> tuple[list[tuple[float, float]], list[int]]:
    """A Keypoint's clicks as pixel (x, y) points and labels 1/0, NaN points left out."""
    labels = next(
        (keypoint[name] for name in POINT_LABEL_FIELDS if keypoint.has_field(name) and keypoint[name] is not None),
        None,
    )
    if labels is None:
        labels = [0 if keypoint.label == NEGATIVE_LABEL else 1] * len(keypoint.points)
    if len(labels) != len(keypoint.points):
        raise ValueError(
            f"Keypoint {keypoint.id} has {len(keypoint.points)} points but {len(labels)} sam2_labels: "
            "give one label (1 positive, 0 negative) per point"
        )
    kept = [(point, int(label)) for point, label in zip(keypoint.points, labels) if not np.isnan(point).any()]
    return [(x * width, y * height) for (x, y), _ in kept], [label for _, label in kept]


def _new_id(used: set[int]) -> int:
    new = max(used, default=-1) + 1
    used.add(new)
    return new


def label_field_prompts(sample: fo.Sample, prompt_field: str) -> LabelPrompts:
    """Prompts from a frame field of Detections or Keypoints drawn by a user: per frame and track id, a mask, or a
    box with the Keypoints' clicks, or clicks."""
    width, height = frame_size(sample)
    found = LabelPrompts()
    used: set[int] = set()
    parts: dict[tuple[int, int], dict] = {}
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
            clicks = keypoint_clicks(item, width, height) if isinstance(item, fo.Keypoint) else None
            if clicks is not None and not clicks[0]:
                continue  # every point missing: no prompt
            obj_id = item.index if item.index is not None else _new_id(used)
            part = parts.setdefault((number, obj_id), {"points": [], "labels": []})
            found.attributes.setdefault(obj_id, _label_attributes(item))
            if isinstance(item, fo.Detection):
                if item.has_mask:
                    part["mask"] = detection_to_mask(item, (width, height))
                else:
                    x, y, w, h = item.bounding_box
                    part["box"] = (x * width, y * height, (x + w) * width, (y + h) * height)
            else:
                part["points"] += clicks[0]
                part["labels"] += clicks[1]
    for (number, obj_id), part in parts.items():
        try:
            found.prompts.append(ObjectPrompt(frame_index(number), obj_id, **part))
        except ValueError as error:
            raise ValueError(f"frame {number} of '{prompt_field}' in video {sample.filepath}: {error}") from None
    return found
