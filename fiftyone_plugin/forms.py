"""Form inputs shared by the operators."""
from __future__ import annotations

import fiftyone as fo
import fiftyone.operators.types as types


def detections_field_input(inputs: types.Object, ctx, name: str, label: str, default: str, required: bool = True,
                           description: str | None = None) -> None:
    """A choice among the dataset's frame-level Detections fields, or free text for a new field."""
    fields = []
    if ctx.dataset is not None and ctx.dataset.media_type == "video":
        fields = sorted(ctx.dataset.get_frame_field_schema(embedded_doc_type=fo.Detections))
    if fields and required:
        choices = types.AutocompleteView()
        for field in fields:
            choices.add_choice(field, label=field)
        inputs.str(name, label=label, required=True, default=default if default in fields else fields[0],
                   description=description, view=choices)
    else:
        inputs.str(name, label=label, required=required, default=default, description=description)


def progress_reporter(ctx, verb: str):
    """A ``progress(done, total, item)`` callback that reports to the App or the delegated-operation record."""

    def progress(done: int, total: int, item: str) -> None:
        ctx.set_progress(progress=done / max(total, 1), label=f"{verb} {item} ({done}/{total})")

    return progress
