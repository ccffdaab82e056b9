"""Form inputs shared by the operators, each checked while the form is filled (``resolve_input``).

A value that would fail at run time marks its input invalid with the reason and the fix, so the App refuses to
submit the form and ``execute_operator`` raises FiftyOne's validation error before anything runs.
"""

from __future__ import annotations

from pathlib import Path

import fiftyone as fo
import fiftyone.operators.types as types

from sam2_plugins.model.official import OFFICIAL_CHECKPOINTS
from sam2_plugins.model_loading import checkpoint_error

OFFERED_IMAGE_SIZES = tuple(range(128, 2048 + 1, 32))
"""Model input sizes the forms offer: multiples of 32 (the image encoder's total stride) up to twice SAM 2's."""
FINETUNE_METHOD = "sam2_finetune"
"""The ``method`` of the runs ``finetune_sam2`` registers: their checkpoints are offered by :func:`checkpoint_input`."""
DELEGATION_NOTICE = (
    "Scheduled (delegated) runs wait in a queue until a worker runs them: start one with "
    "`fiftyone delegated launch` against this database. Choose Execute to run now in the App."
)


def _choices(values) -> types.AutocompleteView:
    view = types.AutocompleteView()
    for value in values:
        view.add_choice(value, label=value)
    return view


def frame_field_name(name: str) -> str:
    """A frame field's name without FiftyOne's ``frames.`` prefix, which may be given or not."""
    return name.removeprefix("frames.")


def mark_invalid(inputs: types.Object, name: str, message: str) -> None:
    """Show ``message`` under the input ``name`` and keep the form from running."""
    inputs.properties[name].invalid = True
    inputs.properties[name].error_message = message


def frame_label_fields(ctx, *label_types: type) -> list[str]:
    """The frame fields of ``ctx.dataset`` (a video dataset, or a grouped one with video slices) holding one of
    ``label_types``, sorted."""
    if ctx.dataset is None or ctx.dataset.get_frame_field_schema() is None:
        return []
    return sorted(name for t in label_types for name in ctx.dataset.get_frame_field_schema(embedded_doc_type=t))


def frame_field_error(ctx, value: str | None, *label_types: type) -> str | None:
    """Why ``value`` is not a frame field of ``ctx.dataset`` holding ``label_types``, or None if it is."""
    if ctx.dataset is None or not value:
        return None
    name = frame_field_name(value)
    kinds = " or ".join(t.__name__ for t in label_types)
    if not ctx.dataset.has_frame_field(name):
        offered = ", ".join(frame_label_fields(ctx, *label_types)) or "none"
        return f"'{value}' is not a frame field of dataset '{ctx.dataset.name}'; pick one holding {kinds}: {offered}"
    if name not in frame_label_fields(ctx, *label_types):
        stored = ctx.dataset.get_field(f"frames.{name}")
        actual = getattr(stored, "document_type", type(stored)).__name__
        return f"frame field '{value}' holds {actual}, not {kinds}; pick a field of {kinds}"
    return None


def frame_field_input(
    inputs: types.Object,
    ctx,
    name: str,
    label: str,
    default: str,
    label_types: tuple[type, ...] = (fo.Detections,),
    description: str | None = None,
) -> None:
    """A frame field of ``label_types``, offered from the dataset's fields and checked to exist with that type."""
    inputs.str(
        name,
        label=label,
        default=default,
        description=description,
        view=_choices(frame_label_fields(ctx, *label_types)),
    )
    error = frame_field_error(ctx, ctx.params.get(name, default), *label_types)
    if error:
        mark_invalid(inputs, name, error)


def folder_error(value: str, expected: str) -> str:
    """Why ``value`` is not an existing folder: a file, or nothing at all; ``expected`` names the folder wanted."""
    if Path(value).expanduser().is_file():
        return f"{value} is a file, not a folder; give the path of {expected}"
    return f"{value}: no such folder; give the path of {expected}"


def folder_input(inputs: types.Object, ctx, name: str, label: str, description: str, expected: str) -> None:
    """A required folder that must exist; ``expected`` names it in the error (``"an SA-V split folder"``)."""
    inputs.str(name, label=label, required=True, description=description)
    value = ctx.params.get(name)
    if value and not Path(value).expanduser().is_dir():
        mark_invalid(inputs, name, folder_error(value, expected))


def mark_out_of_range(inputs: types.Object, ctx) -> None:
    """Mark each number input whose value lies outside its ``min`` / ``max`` invalid, saying the accepted range
    (FiftyOne's own check says "greater than <min>" of a minimum that is itself accepted)."""
    for name, prop in inputs.properties.items():
        value = ctx.params.get(name)
        if prop.invalid or not isinstance(prop.type, types.Number) or not isinstance(value, int | float):
            continue
        minimum, maximum = prop.type.min, prop.type.max
        if minimum is not None and value < minimum:
            bound = f"at least {minimum}" if maximum is None else f"from {minimum} to {maximum}"
        elif maximum is not None and value > maximum:
            bound = f"at most {maximum}" if minimum is None else f"from {minimum} to {maximum}"
        else:
            continue
        mark_invalid(inputs, name, f"{name} must be {bound}, got {value}")


def image_size_input(inputs: types.Object, ctx, default: int) -> None:
    """The model's input size: a choice of multiples of 32."""
    choices = types.Choices()
    for size in OFFERED_IMAGE_SIZES:
        choices.add_choice(size, label=str(size))
    inputs.int(
        "image_size",
        label="Image size",
        default=default,
        view=choices,
        description="model input side in pixels (a multiple of 32); 1024 as trained, lower is faster and coarser",
    )
    value = ctx.params.get("image_size", default)
    if value is not None and value not in OFFERED_IMAGE_SIZES:
        mark_invalid(
            inputs,
            "image_size",
            f"image size {value} is not one of {OFFERED_IMAGE_SIZES[0]}..{OFFERED_IMAGE_SIZES[-1]} in steps of 32",
        )


def tuned_checkpoints(dataset: fo.Dataset | None) -> list[str]:
    """The checkpoints that ``finetune_sam2`` runs of ``dataset`` wrote and that still exist, by run key."""
    if dataset is None:
        return []
    paths = []
    for key in dataset.list_runs(method=FINETUNE_METHOD):
        path = dataset.get_run_info(key).config.checkpoint
        if Path(path).is_file() and path not in paths:
            paths.append(path)
    return paths


def checkpoint_input(inputs: types.Object, ctx, default: str) -> None:
    """The 8 official checkpoints and those fine-tuned on this dataset as a dropdown, or a local path typed in."""
    choices = _choices(OFFICIAL_CHECKPOINTS)
    for path in tuned_checkpoints(ctx.dataset):
        choices.add_choice(path, label=f"tuned: {Path(path).name}")
    inputs.str(
        "checkpoint",
        label="Checkpoint",
        default=default,
        view=choices,
        description=(
            "an official checkpoint (downloaded once to the cache), one fine-tuned on this dataset "
            "(finetune_sam2), or the path of a local .pt file"
        ),
    )
    value = ctx.params.get("checkpoint", default)
    error = checkpoint_error(value) if value else None
    if error:
        mark_invalid(inputs, "checkpoint", error)


def eval_key_input(inputs: types.Object, ctx, default: str) -> None:
    """An evaluation key; an existing one is flagged and needs ``overwrite`` ticked."""
    inputs.str(
        "eval_key",
        label="Evaluation key",
        default=default,
        description="names the run and its fields `<eval_key>_J`, `<eval_key>_F`, `<eval_key>_JF`",
    )
    key = ctx.params.get("eval_key", default)
    if ctx.dataset is None or key not in ctx.dataset.list_evaluations():
        return
    inputs.bool("overwrite", label=f"Replace the existing evaluation '{key}'", default=False)
    if not ctx.params.get("overwrite"):
        mark_invalid(inputs, "eval_key", f"evaluation '{key}' exists: pick another key, or tick the box to replace it")


def delegation_notice(inputs: types.Object) -> None:
    """Says that scheduled runs need a worker."""
    inputs.view("delegation_notice", types.Notice(label=DELEGATION_NOTICE))


def progress_reporter(ctx, verb: str):
    """A ``progress(done, total, item)`` callback that reports to the App or the delegated-operation record."""

    def progress(done: int, total: int, item: str) -> None:
        ctx.set_progress(progress=done / max(total, 1), label=f"{verb} {item} ({done}/{total})")

    return progress
