"""Operator ``evaluate_jf``: SA-V J&F of a prediction field, stored as a FiftyOne evaluation run."""

from __future__ import annotations

from dataclasses import dataclass

import fiftyone.operators as foo
import fiftyone.operators.types as types

from .forms import delegation_notice, eval_key_input, frame_field_input, progress_reporter
from .jf_charts import score_text
from .jf_evaluation import evaluate_jf
from .parameters import from_params
from .views import videos_error

DISPLAY_DIGITS = 1
"""Scores in the operator's result are rounded to this many decimals (the stored run keeps them exact)."""


@dataclass
class EvaluateJFParams:
    """What ``evaluate_jf`` scores; the operator's form and its run share these defaults."""

    gt_field: str = "ground_truth"
    pred_field: str = "sam2"
    eval_key: str = "eval_jf"
    skip_first_and_last: bool = True
    allow_missing: bool = False
    overwrite: bool = False
    """Replace an existing run of ``eval_key`` (the form asks for it when the key exists)."""


class EvaluateJF(foo.Operator):
    @property
    def config(self) -> foo.OperatorConfig:
        return foo.OperatorConfig(
            name="evaluate_jf",
            label="SAM 2: evaluate J&F (SA-V)",
            description=(
                "Score predicted masklets with the official SA-V J&F, on the objects and frames the view holds: "
                "a filtered-labels view scores the objects it keeps, a clips view each clip as a video of its own "
                "frames; frames and patches views are refused"
            ),
            dynamic=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
        )

    def resolve_input(self, ctx) -> types.Property:
        defaults = EvaluateJFParams()
        inputs = types.Object()
        # ctx.target_view() offers FiftyOne's target choice: dataset, current view or selected samples
        view_error = None if ctx.dataset is None else videos_error(ctx.target_view(), "evaluate_jf", clips=True)
        if view_error:
            inputs.view("view_error", types.Error(label=view_error))
            return types.Property(inputs, view=types.View(label="Evaluate J&F"))
        frame_field_input(inputs, ctx, "gt_field", "Ground truth", defaults.gt_field)
        frame_field_input(inputs, ctx, "pred_field", "Predictions", defaults.pred_field)
        eval_key_input(inputs, ctx, defaults.eval_key)
        inputs.bool(
            "skip_first_and_last",
            label="Skip each object's first and last annotated frame",
            default=defaults.skip_first_and_last,
        )
        inputs.bool(
            "allow_missing",
            label="Score videos without predictions as empty",
            default=defaults.allow_missing,
            description="otherwise a video with ground truth and no predictions is an error",
        )
        delegation_notice(inputs)
        return types.Property(inputs, view=types.View(label="Evaluate J&F"))

    def execute(self, ctx) -> dict:
        params = from_params(EvaluateJFParams, ctx.params)
        view = ctx.target_view()
        results = evaluate_jf(
            view,
            params.gt_field,
            params.pred_field,
            params.eval_key,
            skip_first_and_last=params.skip_first_and_last,
            progress=progress_reporter(ctx, "evaluated"),
            allow_missing=params.allow_missing,
        )
        if not ctx.delegated:
            ctx.trigger("reload_dataset")
        scores = {name: round(score, DISPLAY_DIGITS) for name, score in results.global_scores.items()}
        return {**scores, "summary": "  ".join(f"{name} {score_text(score)}" for name, score in scores.items())}

    def resolve_output(self, ctx) -> types.Property:
        outputs = types.Object()
        outputs.str("summary", label="Result")
        return types.Property(outputs)
