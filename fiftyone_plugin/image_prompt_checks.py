"""Which prompts an image dataset offers (``automatic`` or its fields of boxes and clicks) and why one is refused:
the checks the operator parameters and the image predictions share."""

from __future__ import annotations

import fiftyone as fo

from .views import label_fields, wrong_label_field

AUTOMATIC = "automatic"
"""The prompt mode that segments everything (the automatic mask generator)."""
IMAGE_PROMPT_TYPES = (fo.Detections, fo.Keypoints)


def is_image_collection(samples: fo.core.collections.SampleCollection | None) -> bool:
    return samples is not None and samples.media_type == "image"


def image_prompt_fields(samples: fo.core.collections.SampleCollection | None) -> list[str]:
    """The sample fields of ``samples`` holding Detections or Keypoints, sorted."""
    return label_fields(samples, IMAGE_PROMPT_TYPES)


def image_prompt_error(samples: fo.core.collections.SampleCollection, prompt: str) -> str | None:
    """Why ``prompt`` is neither ``automatic`` nor a sample field of Detections / Keypoints of ``samples``."""
    problem = None if prompt == AUTOMATIC else wrong_label_field(samples, prompt, IMAGE_PROMPT_TYPES)
    if problem is None:
        return None
    what, offered = problem
    return (
        f"prompt '{prompt}' {what} of image dataset '{samples._dataset.name}'; pass '{AUTOMATIC}' to segment "
        f"everything, or a field of boxes (Detections) or clicks (Keypoints): {offered}"
    )
