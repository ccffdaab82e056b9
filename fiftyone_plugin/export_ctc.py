"""Operator ``export_ctc``: tracked cells of video samples as Cell Tracking Challenge results (see :mod:`.ctc_videos`).

Each video's Detections in ``label_field`` (their ``index`` = track id) become ``<output_dir>/<dataset>/<NN>_RES``
(``maskTTT.tif`` for every frame + ``res_track.txt``), the layout ``sam2-plugins evaluate-tracking`` and the CTC's
tools read. A video whose result folder exists is skipped unless ``overwrite``; a video that cannot be written (a
Detection without index or mask, a parent that does not end before its child) is reported with the reason while
the others are written.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import fiftyone as fo
import fiftyone.operators as foo
import fiftyone.operators.types as types

from sam2_plugins.ctc import RESULT_TRACK_FILE, CtcFormatError
from sam2_plugins.lineage import LineageError

from .ctc_videos import GT_FIELD, lineage_field, result_folder, write_sample_ctc
from .forms import delegation_notice, frame_field_input, progress_reporter
from .parameters import from_params
from .tracks import video_name
from .views import check_videos


@dataclass
class ExportCtcParams:
    """What ``export_ctc`` writes; the operator's form and its run share these defaults."""

    output_dir: str
    label_field: str = GT_FIELD
    overwrite: bool = False


def export_ctc(
    samples: fo.core.collections.SampleCollection,
    label_field: str,
    output_dir: str | Path,
    overwrite: bool = False,
    progress: Callable[[int, int, str], None] | None = None,
) -> tuple[list[Path], dict[str, str]]:
    """Write every video of ``samples`` as a CTC result; returns the folders written and the failures (video ->
    reason). Whole videos only: a clips, frames or patches view is refused, as a CTC result holds every frame."""
    check_videos(samples, "export_ctc", clips=False)
    if not samples.has_frame_field(label_field):
        raise ValueError(f"'{label_field}' is not a frame field of dataset '{samples._dataset.name}'")
    output_dir = Path(output_dir).expanduser()
    if output_dir.exists() and not output_dir.is_dir():
        raise NotADirectoryError(f"{output_dir}: a file, not a folder; pass the folder to write the results into")
    written, failed = [], {}
    sample_fields = [name for name in ("video_id", "ctc_dataset", "ctc_sequence", lineage_field(label_field))]
    fields = [name for name in sample_fields if samples.has_sample_field(name)] + [f"frames.{label_field}"]
    total = len(samples)
    for done, sample in enumerate(samples.select_fields(fields).iter_samples(), start=1):
        folder = result_folder(sample, output_dir)
        if (folder / RESULT_TRACK_FILE).exists() and not overwrite:
            continue
        try:
            written.append(write_sample_ctc(sample, label_field, folder))
        except (CtcFormatError, LineageError, ValueError) as error:
            failed[video_name(sample)] = str(error)
        if progress is not None:
            progress(done, total, video_name(sample))
    return written, failed


class ExportCtc(foo.Operator):
    @property
    def config(self) -> foo.OperatorConfig:
        return foo.OperatorConfig(
            name="export_ctc",
            label="SAM 2: export Cell Tracking Challenge results",
            description="Write tracked cells and their lineage as CTC maskTTT.tif + res_track.txt (whole videos)",
            dynamic=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
        )

    def resolve_input(self, ctx) -> types.Property:
        defaults = ExportCtcParams(output_dir="")
        ctx.target_view()  # offers FiftyOne's target choice: dataset, current view or selected samples
        inputs = types.Object()
        frame_field_input(
            inputs,
            ctx,
            "label_field",
            "Tracked cells",
            defaults.label_field,
            description="frame Detections whose index is the track id (the lineage comes from <field>_lineage)",
        )
        inputs.str(
            "output_dir",
            label="Output folder",
            required=True,
            description="gets <dataset>/<NN>_RES/maskTTT.tif + res_track.txt per video",
        )
        inputs.bool("overwrite", label="Rewrite results already exported", default=defaults.overwrite)
        delegation_notice(inputs)
        return types.Property(inputs, view=types.View(label="Export CTC results"))

    def execute(self, ctx) -> dict:
        params = from_params(ExportCtcParams, ctx.params)
        written, failed = export_ctc(
            ctx.target_view(),
            params.label_field,
            params.output_dir,
            overwrite=params.overwrite,
            progress=progress_reporter(ctx, "exported"),
        )
        skipped = len(ctx.target_view()) - len(written) - len(failed)
        summary = f"{len(written)} videos written to {params.output_dir}"
        if skipped:
            summary += f"; {skipped} skipped: their results exist (tick overwrite to rewrite them)"
        if failed:
            summary += f"; {len(failed)} failed"
        return {
            "written": [str(folder) for folder in written],
            "failures": [f"{video}: {reason}" for video, reason in failed.items()],
            "summary": summary,
        }

    def resolve_output(self, ctx) -> types.Property:
        outputs = types.Object()
        outputs.str("summary", label="Result")
        outputs.list("written", types.String(), label="Result folders written")
        outputs.list("failures", types.String(), label="Failed videos (reason)")
        return types.Property(outputs)
