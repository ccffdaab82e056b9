"""Which prompts an image dataset offers (``automatic`` or its fields of boxes and clicks) and why one is refused:
the checks the operator parameters and the image predictions share."""

from __future__ import annotations

import fiftyone as fo

AUTOMATIC = "automatic"
"""The prompt mode that segments everything (the automatic mask generator)."""
IMAGE_PROMPT_TYPES = (fo.Detections, fo.Keypoints)


def is_image_collection(samples: fo.core.collections.SampleCollection | None) -> bool:
    return samples is not None and samples.media_type == "image"


def image_prompt_fields(samples: fo.core.collections.SampleCollection | None) -> list[str]:
    """The sample fields of ``samples`` holding Detections or Keypoints, sorted."""
    if samples is None:
        return []
    return sorted(name for t in IMAGE_PROMPT_TYPES for name in samples.get_field_schema(embedded_doc_type=t))


def image_prompt_error(samples: fo.core.collections.SampleCollection, prompt: str) -> str | None:
    """Why ``prompt`` is neither ``automatic`` nor a sample field of Detections / Keypoints of ``samples``."""
    if prompt == AUTOMATIC or prompt in image_prompt_fields(samples):
        return None
    offered = ", ".join(image_prompt_fields(samples)) or "none"
    what = "holds no Detections or Keypoints" if samples.has_sample_field(prompt) else "is not a field"
    return (
        f"prompt '{prompt}' {what} of image dataset '{samples._dataset.name}'; pass '{AUTOMATIC}' to segment "
        f"everything, or a field of boxes (Detections) or clicks (Keypoints): {offered}"
    )
