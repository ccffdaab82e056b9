"""Form inputs shared by the operators."""

from __future__ import annotations

import fiftyone as fo
import fiftyone.operators.types as types


def detections_field_input(
    inputs: types.Object, ctx, name: str, label: str, default: str, description: str | None = None
) -> None:
    """A frame-level Detections field, offered from the dataset's fields, ``default`` when left out."""
    fields = []
    if ctx.dataset is not None and ctx.dataset.media_type == "video":
        fields = sorted(ctx.dataset.get_frame_field_schema(embedded_doc_type=fo.Detections))
    choices = types.AutocompleteView()
    for field in fields:
        choices.add_choice(field, label=field)
    inputs.str(name, label=label, default=default, description=description, view=choices)


def progress_reporter(ctx, verb: str):
    """A ``progress(done, total, item)`` callback that reports to the App or the delegated-operation record."""

    def progress(done: int, total: int, item: str) -> None:
        ctx.set_progress(progress=done / max(total, 1), label=f"{verb} {item} ({done}/{total})")

    return progress
