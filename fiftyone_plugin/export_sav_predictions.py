"""Operator ``export_sav_predictions``: predictions as the SA-V layout the official evaluator reads.

``<output_dir>/<video_id>/<object>/<frame_index:05d>.png`` (0/255) for every frame of the video and every object
of ``pred_field`` or of the import's ``sav_masklets`` (an object predicted empty everywhere still gets its
folder); ``<object>`` is ``<masklet_id:03d>`` (``auto_<masklet_id:03d>`` for automatic masklets, whose
ids repeat the manual ones). A video is written to a temporary folder and renamed when complete, so a rerun
skips finished videos and never sees a half-written one; ``overwrite`` replaces the frame PNGs and keeps any other
file in the video's folder. Each video id must be a plain folder name of one sample only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import fiftyone as fo
import fiftyone.operators as foo
import fiftyone.operators.types as types

from sam2_plugins.safe_names import safe_component
from sam2_plugins.sav_writer import write_sav_predictions

from .forms import delegation_notice, frame_field_input, progress_reporter
from .masks import detection_to_mask
from .parameters import from_params
from .tracks import (
    MASKLETS_FIELD,
    detection_object_name,
    frame_index,
    frame_size,
    masklet_summaries,
    video_name,
)
from .views import check_videos


def _write_video(sample: fo.Sample, pred_field: str, output_dir: Path) -> Path:
    size = frame_size(sample)
    objects = [masklet.object_name for masklet in masklet_summaries(sample)]
    video_id = video_name(sample)
    frames = sample.metadata.total_frame_count
    with write_sav_predictions(output_dir, video_id, frames, (size[1], size[0]), objects) as writer:
        for number, frame in sample.frames.items():
            detections = frame[pred_field] if frame.has_field(pred_field) else None
            for detection in detections.detections if detections is not None else []:
                writer.add(frame_index(number), detection_object_name(detection), detection_to_mask(detection, size))
    return output_dir / video_id


def _check_video_names(samples: fo.core.collections.SampleCollection) -> None:
    """Before anything is written: every video's folder name is a single file name and names one video only."""
    fields = ["video_id"] if samples.has_sample_field("video_id") else []
    exporting: dict[str, str] = {}
    for sample in samples.select_fields(fields).iter_samples():
        name = safe_component(video_name(sample), f"video_id of sample {sample.id}")
        if name in exporting:
            raise ValueError(
                f"samples {exporting[name]} and {sample.id} both have video_id {name!r}, so both would be written to "
                f"one folder; give each video its own video_id, or export a view without one of them"
            )
        exporting[name] = sample.id


def export_sav_predictions(
    samples: fo.core.collections.SampleCollection,
    pred_field: str,
    output_dir: str | Path,
    overwrite: bool = False,
    progress: Callable[[int, int, str], None] | None = None,
) -> list[Path]:
    """Write every video's predicted masks; returns the video folders written in this call.

    Whole videos only (a view of them: the objects a filter keeps, the videos matched or selected): a clips, frames
    or patches view is refused, as the SA-V layout holds every frame of a video. Video ids that cannot name a folder
    (``/``, ``..``, control characters) or that two samples share are refused before anything is written; a rewrite
    replaces only the frame PNGs, never other files in a video's folder.
    """
    check_videos(samples, "export_sav_predictions", clips=False)
    if not samples.has_frame_field(pred_field):
        raise ValueError(
            f"'{pred_field}' is not a frame field of dataset '{samples._dataset.name}': pass the field apply_sam2 wrote"
        )
    if len(samples) == 0:
        raise ValueError(f"nothing to export: the target view of dataset '{samples._dataset.name}' has no videos")
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise NotADirectoryError(f"{output_dir}: a file, not a folder; pass the folder to write the videos into")
    _check_video_names(samples)
    output_dir.mkdir(parents=True, exist_ok=True)
    written = []
    total = len(samples)
    fields = [f for f in ("video_id", MASKLETS_FIELD) if samples.has_sample_field(f)] + [f"frames.{pred_field}"]
    for done, sample in enumerate(samples.select_fields(fields).iter_samples(), start=1):
        video_id = video_name(sample)
        if (output_dir / video_id).exists() and not overwrite:
            continue
        written.append(_write_video(sample, pred_field, output_dir))
        if progress is not None:
            progress(done, total, video_id)
    return written


@dataclass
class ExportSavPredictionsParams:
    """What ``export_sav_predictions`` writes; the operator's form and its run share these defaults."""

    output_dir: str
    pred_field: str = "sam2"
    overwrite: bool = False


class ExportSavPredictions(foo.Operator):
    @property
    def config(self) -> foo.OperatorConfig:
        return foo.OperatorConfig(
            name="export_sav_predictions",
            label="SAM 2: export predictions (SA-V layout)",
            description="Write predicted masklets as the per-object PNG folders of SA-V (whole videos)",
            dynamic=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
        )

    def resolve_input(self, ctx) -> types.Property:
        defaults = ExportSavPredictionsParams(output_dir="")
        ctx.target_view()  # offers FiftyOne's target choice: dataset, current view or selected samples
        inputs = types.Object()
        frame_field_input(inputs, ctx, "pred_field", "Predictions", defaults.pred_field)
        inputs.str(
            "output_dir",
            label="Output folder",
            required=True,
            description="gets `<video_id>/<object>/<frame:05d>.png` for every frame",
        )
        inputs.bool("overwrite", label="Rewrite videos already exported", default=defaults.overwrite)
        delegation_notice(inputs)
        return types.Property(inputs, view=types.View(label="Export SA-V predictions"))

    def resolve_output(self, ctx) -> types.Property:
        outputs = types.Object()
        outputs.str("summary", label="Result")
        return types.Property(outputs)

    def execute(self, ctx) -> dict:
        params = from_params(ExportSavPredictionsParams, ctx.params)
        folders = export_sav_predictions(
            ctx.target_view(),
            params.pred_field,
            params.output_dir,
            overwrite=params.overwrite,
            progress=progress_reporter(ctx, "exported"),
        )
        skipped = len(ctx.target_view()) - len(folders)
        summary = f"{len(folders)} videos written to {params.output_dir}"
        if skipped:
            summary += f"; {skipped} skipped: their folders exist (tick overwrite to rewrite them)"
        return {
            "videos_written": len(folders),
            "videos_skipped": skipped,
            "output_dir": params.output_dir,
            "summary": summary,
        }
