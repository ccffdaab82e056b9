"""Operator ``evaluate_jf``: SA-V J&F of a prediction field, stored as a FiftyOne evaluation run."""

from __future__ import annotations

import fiftyone.operators as foo
import fiftyone.operators.types as types

from .forms import detections_field_input, progress_reporter
from .jf_evaluation import evaluate_jf


class EvaluateJF(foo.Operator):
    @property
    def config(self) -> foo.OperatorConfig:
        return foo.OperatorConfig(
            name="evaluate_jf",
            label="SAM 2: evaluate J&F (SA-V)",
            description="Score predicted masklets with the official SA-V J&F",
            allow_immediate_execution=True,
            allow_delegated_execution=True,
        )

    def resolve_input(self, ctx) -> types.Property:
        inputs = types.Object()
        detections_field_input(inputs, ctx, "gt_field", "Ground truth", "ground_truth")
        detections_field_input(inputs, ctx, "pred_field", "Predictions", "sam2")
        inputs.str(
            "eval_key",
            label="Evaluation key",
            default="eval_jf",
            description="names the run and its fields {eval_key}_J, {eval_key}_F, {eval_key}_JF",
        )
        inputs.bool("skip_first_and_last", label="Skip each object's first and last annotated frame", default=True)
        return types.Property(inputs, view=types.View(label="Evaluate J&F"))

    def execute(self, ctx) -> dict:
        results = evaluate_jf(
            ctx.view,
            ctx.params.get("gt_field", "ground_truth"),
            ctx.params.get("pred_field", "sam2"),
            ctx.params.get("eval_key", "eval_jf"),
            skip_first_and_last=ctx.params.get("skip_first_and_last", True),
            progress=progress_reporter(ctx, "evaluated"),
        )
        if not ctx.delegated:
            ctx.trigger("reload_dataset")
        return results.metrics()

    def resolve_output(self, ctx) -> types.Property:
        outputs = types.Object()
        for metric in ("J&F", "J", "F"):
            outputs.float(metric, label=metric)
        return types.Property(outputs)
