"""Which videos a long job has finished, so a rerun resumes where it stopped.

A video's step is marked done only after all its labels are saved; a video cut off half-way is redone whole (its
frame fields are overwritten, never appended to, so no label is duplicated). Marks are added and removed by single
atomic updates (``$addToSet`` / ``$pull``), so two jobs finishing steps on the same videos keep each other's marks.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone

import fiftyone as fo
from bson import ObjectId
from fiftyone import ViewField as F

COMPLETED_FIELD = "sam2_completed"
"""Sample field: the list of steps finished on the video, like ``"import_sav"`` or ``"apply_sam2/predictions"``."""


def unfinished(samples: fo.core.collections.SampleCollection, step: str):
    """The samples on which ``step`` has not finished."""
    if not samples.has_sample_field(COMPLETED_FIELD):
        return samples.view()
    return samples.match(~F(COMPLETED_FIELD).exists() | ~F(COMPLETED_FIELD).contains(step))


def _update_marks(dataset: fo.Dataset, sample_ids: list[str], update: dict) -> None:
    if not dataset.has_sample_field(COMPLETED_FIELD):
        dataset.add_sample_field(COMPLETED_FIELD, fo.ListField, subfield=fo.StringField)
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    dataset._sample_collection.update_many(
        {"_id": {"$in": [ObjectId(i) for i in sample_ids]}}, {**update, "$set": {"last_modified_at": now}}
    )
    # the samples held in memory (FiftyOne keeps one object per sample) read their new marks, as after set_values
    fo.Sample._reload_docs(dataset._sample_collection_name, sample_ids=sample_ids, hard=True)


def mark_finished(sample: fo.Sample, step: str) -> None:
    """Record ``step`` as finished on ``sample``."""
    _update_marks(sample.dataset, [sample.id], {"$addToSet": {COMPLETED_FIELD: step}})


def mark_unfinished(samples: fo.core.collections.SampleCollection, step: str) -> None:
    """Forget ``step`` on every sample of ``samples`` (before an overwrite)."""
    if samples.has_sample_field(COMPLETED_FIELD):
        finished = samples.match(F(COMPLETED_FIELD).contains(step)).values("id")
        _update_marks(samples._dataset, finished, {"$pull": {COMPLETED_FIELD: step}})


def finish_each(
    samples: fo.core.collections.SampleCollection, step: str, overwrite: bool = False
) -> Iterator[tuple[int, int, fo.Sample]]:
    """``(position, count, sample)`` for each sample of ``samples`` on which ``step`` is unfinished (every sample
    with ``overwrite``); a sample is marked finished when the caller's loop body for it completes, so an error or
    a stop in the body leaves it unfinished for the next run."""
    if overwrite:
        mark_unfinished(samples, step)
    sample_ids = unfinished(samples, step).values("id")
    dataset = samples._dataset
    for position, sample_id in enumerate(sample_ids):
        sample = dataset[sample_id]
        yield position, len(sample_ids), sample
        mark_finished(sample, step)
