"""Which videos a long job has finished, so a rerun resumes where it stopped.

A video's step is marked done only after all its labels are saved; a video cut off half-way is redone whole (its
frame fields are overwritten, never appended to, so no label is duplicated).
"""

from __future__ import annotations

import fiftyone as fo
from fiftyone import ViewField as F

COMPLETED_FIELD = "sam2_completed"
"""Sample field: the list of steps finished on the video, like ``"import_sav"`` or ``"apply_sam2/predictions"``."""


def unfinished(samples: fo.core.collections.SampleCollection, step: str):
    """The samples on which ``step`` has not finished."""
    if not samples.has_sample_field(COMPLETED_FIELD):
        return samples.view()
    return samples.match(~F(COMPLETED_FIELD).exists() | ~F(COMPLETED_FIELD).contains(step))


def mark_finished(sample: fo.Sample, step: str) -> None:
    """Record ``step`` as finished on ``sample`` and save it."""
    steps = list(sample[COMPLETED_FIELD] or []) if sample.has_field(COMPLETED_FIELD) else []
    if step not in steps:
        sample[COMPLETED_FIELD] = steps + [step]
        sample.save()


def mark_unfinished(samples: fo.core.collections.SampleCollection, step: str) -> None:
    """Forget ``step`` on every sample (before an overwrite)."""
    if samples.has_sample_field(COMPLETED_FIELD):
        for sample in samples.match(F(COMPLETED_FIELD).contains(step)).iter_samples(autosave=True):
            sample[COMPLETED_FIELD] = [s for s in sample[COMPLETED_FIELD] if s != step]
