"""What makes a J&F evaluation meaningless, caught before anything is scored: missing or unmatched predictions."""

from __future__ import annotations

import fiftyone as fo

from .views import held_span

NAMED_AT_MOST = 10
"""Errors name this many videos or indices, then say how many more."""


def _listed(names: list) -> str:
    more = f" and {len(names) - NAMED_AT_MOST} more" if len(names) > NAMED_AT_MOST else ""
    return ", ".join(str(name) for name in names[:NAMED_AT_MOST]) + more


def prediction_gaps(
    samples: fo.core.collections.SampleCollection, gt_field: str, pred_field: str
) -> tuple[list[str], dict[str, list[int]]]:
    """The samples with ground-truth objects in ``gt_field`` and no frame of ``pred_field``; and for the others, sample
    id -> the frame numbers with ground-truth objects and no ``pred_field`` from the sample's first predicted frame on.

    Frames before the first predicted one are left out: SAM 2 propagates from each video's first prompt, so they are
    the protocol's unpredicted frames. Only ids are read, one video at a time: gathering a real-size SA-V video's
    masks into one document would pass MongoDB's 16 MB limit.
    """
    unpredicted, gaps = [], {}
    for sample_id in samples.values("id"):
        video = samples.select(sample_id)
        [numbers] = video.values("frames.frame_number")
        [annotated] = video.values(f"frames.{gt_field}.detections.id")
        [predicted] = video.values(f"frames.{pred_field}.detections.id")
        first = next((number for number, ids in zip(numbers, predicted) if ids is not None), None)
        if first is None:
            if any(annotated):
                unpredicted.append(sample_id)
            continue
        missing = [
            number
            for number, gt_ids, pred_ids in zip(numbers, annotated, predicted)
            if gt_ids and pred_ids is None and number >= first
        ]
        if missing:
            gaps[sample_id] = missing
    return unpredicted, gaps


def check_predictions(
    samples: fo.core.collections.SampleCollection, gt_field: str, pred_field: str, allow_missing: bool
) -> None:
    """Raise ``ValueError`` when ``pred_field`` cannot be scored against ``gt_field``.

    Predictions match ground-truth objects by ``index``: a prediction field sharing no index with the ground truth
    was made for other objects. A video with ground-truth objects and no frame of predictions was not predicted:
    an error unless ``allow_missing`` scores it as empty masks (as ``sam2-plugins evaluate --allow-missing``); so are
    annotated frames left without predictions after a video's first predicted one (a run on clips, a run cut short),
    which would otherwise be scored as empty masks without a word.
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
    unpredicted, gaps = prediction_gaps(samples, gt_field, pred_field)
    fix = (
        f"predict them (apply_sam2 pred_field='{pred_field}'), evaluate a view without them, or pass "
        "allow_missing=True to score them as empty masks"
    )
    if unpredicted:
        named = samples.select(unpredicted[:NAMED_AT_MOST], ordered=True)
        names = [held_span(samples, sample).name for sample in named] + unpredicted[NAMED_AT_MOST:]
        raise ValueError(
            f"no predictions in '{pred_field}' for {len(names)} video(s) or clip(s) with ground truth in "
            f"'{gt_field}': {_listed(names)}; {fix}"
        )
    if gaps:
        named = samples.select(list(gaps)[:NAMED_AT_MOST], ordered=True)
        names = [f"{held_span(samples, sample).name} (frames {_listed(gaps[sample.id])})" for sample in named]
        raise ValueError(
            f"'{pred_field}' has no predictions on {sum(map(len, gaps.values()))} frame(s) with ground truth in "
            f"'{gt_field}' after its first predicted frame, in {len(gaps)} video(s) or clip(s) (a run on clips "
            f"or cut short?): {_listed(names)}; {fix}"
        )
