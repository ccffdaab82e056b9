"""What makes a J&F evaluation meaningless, caught before anything is scored: missing or unmatched predictions."""

from __future__ import annotations

import fiftyone as fo

from .views import held_span

NAMED_AT_MOST = 10
"""Errors name this many videos or indices, then say how many more."""


def _listed(names: list) -> str:
    more = f" and {len(names) - NAMED_AT_MOST} more" if len(names) > NAMED_AT_MOST else ""
    return ", ".join(str(name) for name in names[:NAMED_AT_MOST]) + more


def unpredicted_sample_ids(samples: fo.core.collections.SampleCollection, gt_field: str, pred_field: str) -> list[str]:
    """The samples with ground-truth objects in ``gt_field`` and no frame holding ``pred_field``, one video at a time.

    Frame counts unwind a video's frames; a ``F("frames")`` expression would gather them into one document, over
    MongoDB's 16 MB document limit for a real-size SA-V video with masks on every frame.
    """
    unpredicted = []
    for sample_id in samples.values("id"):
        video = samples.select(sample_id)
        if video.count(f"frames.{gt_field}.detections") and not video.count(f"frames.{pred_field}"):
            unpredicted.append(sample_id)
    return unpredicted


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
    ids = unpredicted_sample_ids(samples, gt_field, pred_field)
    if ids:
        named = samples.select(ids[:NAMED_AT_MOST], ordered=True)
        names = [held_span(samples, sample).name for sample in named] + ids[NAMED_AT_MOST:]
        raise ValueError(
            f"no predictions in '{pred_field}' for {len(names)} video(s) or clip(s) with ground truth in "
            f"'{gt_field}': "
            f"{_listed(names)}; predict them (apply_sam2 pred_field='{pred_field}'), evaluate a view without them, "
            "or pass allow_missing=True to score them as empty masks"
        )
