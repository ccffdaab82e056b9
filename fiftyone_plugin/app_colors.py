"""Distinct App colours for fields that are looked at together: ground truth (or prompts) and SAM 2's predictions.

The App picks a field's colour from the colour pool by the field's place in it, so two fields can get the same
colour (``frames.ground_truth`` and ``frames.sam2`` do). The operators that create a prediction field give it and
the field it is compared with colours of their own in the dataset's saved colour scheme: the first colours of the
pool that no other field of the scheme uses. A colour already set for a field (by the user or a previous run) is
kept.
"""

from __future__ import annotations

import fiftyone as fo


def _field_path(samples: fo.core.collections.SampleCollection, name: str) -> str:
    return f"frames.{name}" if samples.media_type == "video" else name


def distinguish_field_colors(
    samples: fo.core.collections.SampleCollection, pred_field: str, compared_field: str | None = None
) -> None:
    """Give ``compared_field`` (when it is a label field of ``samples``: ground truth, prompts) and ``pred_field``
    (sample fields of images, frame fields of videos) each a pool colour no other field of the colour scheme uses,
    unless they have a colour already."""
    dataset = samples._root_dataset  # a clips or frames view's colours are those of the dataset it comes from
    names = [compared_field] if compared_field and dataset.has_field(_field_path(dataset, compared_field)) else []
    scheme = dataset.app_config.color_scheme or fo.ColorScheme()
    entries = [dict(entry) for entry in scheme.fields or []]
    colored = {entry["path"] for entry in entries if entry.get("fieldColor")}
    used = {entry["fieldColor"].lower() for entry in entries if entry.get("fieldColor")}
    free = (color for color in scheme.color_pool or fo.app_config.color_pool if color.lower() not in used)
    changed = False
    for path in (_field_path(dataset, name) for name in [*names, pred_field]):
        color = None if path in colored else next(free, None)
        if color is None:
            continue
        entry = next((entry for entry in entries if entry["path"] == path), None)
        if entry is None:
            entries.append({"path": path, "fieldColor": color})
        else:
            entry["fieldColor"] = color
        changed = True
    if changed:
        scheme.fields = entries
        dataset.app_config.color_scheme = scheme
        dataset.save()
