"""Operator ``evaluate_ctc``: the Cell Tracking Challenge's SEG, DET and TRA of tracked cells in video samples.

For each video, ``pred_field``'s cells (Detections whose ``index`` is the track id, the lineage in
``<pred_field>_lineage``) are scored against ``gt_field``'s as py-ctcmetrics scores CTC folders; SEG uses the
reference segmentation in ``<gt_field>_seg`` (``import_ctc`` fills it from ``01_GT/SEG``) and is left out without
one. The scores go on each sample as ``<eval_key>_SEG``, ``<eval_key>_DET`` and ``<eval_key>_TRA`` (sortable in the
App); a video that cannot be scored is reported with the reason while the others are.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import fiftyone as fo
import fiftyone.operators as foo
import fiftyone.operators.types as types

from sam2_plugins.ctc import CtcFormatError
from sam2_plugins.lineage import LineageError
from sam2_plugins.tracking_metrics import METRICS

from .ctc_videos import GT_FIELD, RESULT_FIELD, lineage_field, score_sample, segmentation_field
from .forms import delegation_notice, frame_field_input, progress_reporter
from .parameters import from_params
from .tracks import video_name
from .views import check_videos


@dataclass
class EvaluateCtcParams:
    """What ``evaluate_ctc`` scores; the operator's form and its run share these defaults."""

    gt_field: str = GT_FIELD
    pred_field: str = RESULT_FIELD
    eval_key: str = "ctc"


def evaluate_ctc(
    samples: fo.core.collections.SampleCollection,
    gt_field: str,
    pred_field: str,
    eval_key: str,
    progress: Callable[[int, int, str], None] | None = None,
) -> tuple[dict[str, dict[str, float | None]], dict[str, str]]:
    """Score every video of ``samples``; returns each video's {SEG, DET, TRA} and the failures (video -> reason).
    Whole videos only: a clips, frames or patches view is refused, as the measures follow tracks over all frames."""
    check_videos(samples, "evaluate_ctc", clips=False)
    for field in (gt_field, pred_field):
        if not samples.has_frame_field(field):
            raise ValueError(f"'{field}' is not a frame field of dataset '{samples._dataset.name}'")
    optional = [lineage_field(gt_field), lineage_field(pred_field), "video_id"]
    fields = [name for name in optional if samples.has_sample_field(name)]
    fields += [f"frames.{name}" for name in (gt_field, pred_field, segmentation_field(gt_field))]
    fields = [name for name in fields if not name.startswith("frames.") or samples.has_frame_field(name[7:])]
    scored, failed = {}, {}
    total = len(samples)
    for done, sample in enumerate(samples.select_fields(fields).iter_samples(), start=1):
        name = video_name(sample)
        try:
            scores = score_sample(sample, gt_field, pred_field)
        except (CtcFormatError, LineageError, ValueError) as error:
            failed[name] = str(error)
        else:
            values = {"SEG": scores.seg, "DET": scores.det, "TRA": scores.tra}
            video = samples._dataset[sample.id]
            for metric, value in values.items():
                video[f"{eval_key}_{metric}"] = value
            video.save()
            scored[name] = values
        if progress is not None:
            progress(done, total, name)
    return scored, failed


class EvaluateCtc(foo.Operator):
    @property
    def config(self) -> foo.OperatorConfig:
        return foo.OperatorConfig(
            name="evaluate_ctc",
            label="SAM 2: evaluate cell tracking (CTC SEG, DET, TRA)",
            description="Score tracked cells against ground truth with the Cell Tracking Challenge measures",
            dynamic=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
        )

    def resolve_input(self, ctx) -> types.Property:
        defaults = EvaluateCtcParams()
        ctx.target_view()  # offers FiftyOne's target choice: dataset, current view or selected samples
        inputs = types.Object()
        frame_field_input(inputs, ctx, "gt_field", "Ground truth", defaults.gt_field)
        frame_field_input(inputs, ctx, "pred_field", "Tracked cells", defaults.pred_field)
        inputs.str(
            "eval_key",
            label="Evaluation key",
            default=defaults.eval_key,
            description="the scores go to <eval_key>_SEG, <eval_key>_DET and <eval_key>_TRA on each video",
        )
        delegation_notice(inputs)
        return types.Property(inputs, view=types.View(label="Evaluate cell tracking"))

    def execute(self, ctx) -> dict:
        params = from_params(EvaluateCtcParams, ctx.params)
        scored, failed = evaluate_ctc(
            ctx.target_view(),
            params.gt_field,
            params.pred_field,
            params.eval_key,
            progress=progress_reporter(ctx, "scored"),
        )
        means = {}
        for metric in METRICS:
            values = [scores[metric] for scores in scored.values() if scores[metric] is not None]
            means[metric] = sum(values) / len(values) if values else None
        shown = ", ".join(f"{metric} {value:.4f}" for metric, value in means.items() if value is not None)
        summary = f"{len(scored)} videos scored" + (f": mean {shown}" if shown else "")
        if failed:
            summary += f"; {len(failed)} failed"
        return {
            "scores": scored,
            "mean": means,
            "failures": [f"{video}: {reason}" for video, reason in failed.items()],
            "summary": summary,
        }

    def resolve_output(self, ctx) -> types.Property:
        outputs = types.Object()
        outputs.str("summary", label="Result")
        outputs.list("failures", types.String(), label="Failed videos (reason)")
        return types.Property(outputs)
