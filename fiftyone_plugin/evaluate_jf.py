"""Operator ``evaluate_jf``: J&F of a prediction field by its benchmark's protocol (SA-V, DAVIS, MOSE, LVOS), stored
as a FiftyOne evaluation run."""

from __future__ import annotations

from dataclasses import dataclass

import fiftyone.operators as foo
import fiftyone.operators.types as types

from sam2_plugins.evaluate import PROTOCOLS, get_protocol

from .forms import delegation_notice, eval_key_input, frame_field_input, mark_invalid, progress_reporter
from .jf_charts import score_text
from .jf_evaluation import AUTO_PROTOCOL, DEFAULT_PROTOCOL, evaluate_jf, resolve_protocol
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
    protocol: str = AUTO_PROTOCOL
    """A name of ``sam2_plugins.evaluate.PROTOCOLS``, or ``auto``: the protocol of the layout the videos came from."""
    skip_first_and_last: bool = True
    """SA-V's rule only: skip each object's first and last annotated frame."""
    allow_missing: bool = False
    overwrite: bool = False
    """Replace an existing run of ``eval_key`` (the form asks for it when the key exists)."""


class EvaluateJF(foo.Operator):
    @property
    def config(self) -> foo.OperatorConfig:
        return foo.OperatorConfig(
            name="evaluate_jf",
            label="SAM 2: evaluate J&F",
            description=(
                "Score predicted masklets by the benchmark's own protocol (SA-V J&F; DAVIS and MOSE J/F Mean, "
                "Recall and Decay; LVOS), on the objects and frames the view holds: "
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
        inputs.enum(
            "protocol",
            [AUTO_PROTOCOL, *PROTOCOLS],
            label="Scoring protocol",
            default=defaults.protocol,
            description="auto: the protocol of the layout the videos were imported from",
            view=types.DropdownView(),
        )
        try:
            rules = resolve_protocol(ctx.target_view(), ctx.params.get("protocol") or defaults.protocol)
        except ValueError as error:
            mark_invalid(inputs, "protocol", str(error))
            rules = None
        if rules is not None:
            inputs.view("protocol_notice", types.Notice(label=f"Scored by {rules.title}"))
        if rules is not None and rules.name == DEFAULT_PROTOCOL:
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
            protocol=params.protocol,
        )
        if not ctx.delegated:
            ctx.trigger("reload_dataset")
        scores = {name: round(score, DISPLAY_DIGITS) for name, score in results.global_scores.items()}
        summary = "  ".join(f"{name} {score_text(score)}" for name, score in scores.items())
        title = get_protocol(results.config.protocol).title
        return {**scores, "protocol": results.config.protocol, "summary": f"{summary} · {title}"}

    def resolve_output(self, ctx) -> types.Property:
        outputs = types.Object()
        outputs.str("summary", label="Result")
        return types.Property(outputs)
