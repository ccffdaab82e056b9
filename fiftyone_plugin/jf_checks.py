"""What makes a J&F evaluation meaningless, caught before anything is scored: missing or unmatched predictions."""

from __future__ import annotations

import fiftyone as fo
from fiftyone import ViewField as F

NAMED_AT_MOST = 10
"""Errors name this many videos or indices, then say how many more."""


def _listed(names: list) -> str:
    more = f" and {len(names) - NAMED_AT_MOST} more" if len(names) > NAMED_AT_MOST else ""
    return ", ".join(str(name) for name in names[:NAMED_AT_MOST]) + more


def check_predictions(
    samples: fo.core.collections.SampleCollection, gt_field: str, pred_field: str, allow_missing: bool
) -> None:
    """Raise ``ValueError`` when ``pred_field`` cannot be scored against ``gt_field``.

    Predictions match ground-truth objects by ``index``: a prediction field sharing no index with the ground truth
    was made for other objects. A video with ground-truth objects and no frame of predictions was not predicted:
    an error unless ``allow_missing`` scores it as empty masks (as ``sam2-plugins evaluate --allow-missing``).
    """
    gt_indices = set(samples.distinct(f"frames.{gt_field}.detections.index"))
    pred_indices = set(samples.distinct(f"frames.{pred_field}.detections.index"))
    if gt_indices and pred_indices and not gt_indices & pred_indices:
        raise ValueError(
            f"prediction field '{pred_field}' shares no object index with ground truth '{gt_field}' "
            f"(predicted {_listed(sorted(pred_indices))}; ground truth {_listed(sorted(gt_indices))}): predictions "
            f"match objects by index; predict from '{gt_field}' (apply_sam2 gt_field='{gt_field}') or pick the "
            "ground truth these predictions were made from"
        )
    if allow_missing or gt_field == pred_field:
        return
    with_objects = samples.match(F("frames").filter(F(f"{gt_field}.detections").length() > 0).length() > 0)
    unpredicted = with_objects.match(F("frames").filter(F(pred_field).exists()).length() == 0)
    if len(unpredicted):
        ids = unpredicted.values("id")
        video_ids = unpredicted.values("video_id") if samples.has_sample_field("video_id") else [None] * len(ids)
        names = [video_id or sample_id for video_id, sample_id in zip(video_ids, ids)]
        raise ValueError(
            f"no predictions in '{pred_field}' for {len(names)} video(s) with ground truth in '{gt_field}': "
            f"{_listed(names)}; predict them (apply_sam2 pred_field='{pred_field}'), evaluate a view without them, "
            "or pass allow_missing=True to score them as empty masks"
        )
