"""Operator ``recover_runs``: find the SAM 2 runs whose worker died, list their unfinished videos, re-queue them."""

from __future__ import annotations

import fiftyone.operators as foo
import fiftyone.operators.types as types

from .dead_runs import default_stale_after, find_dead_runs, recover_dead_runs, stale_after_error
from .forms import mark_invalid


def _found_text(runs, stale_after: float) -> str:
    if not runs:
        return f"No running SAM 2 run of this dataset has gone {stale_after} s without a heartbeat."
    return f"Runs that lost their worker ({len(runs)}):\n" + "\n".join(f"- {run.describe()}" for run in runs)


class RecoverRuns(foo.Operator):
    @property
    def config(self) -> foo.OperatorConfig:
        return foo.OperatorConfig(
            name="recover_runs",
            label="SAM 2: recover runs whose worker died",
            description="Mark scheduled SAM 2 runs without a heartbeat failed and re-queue their unfinished videos",
            dynamic=True,
            allow_immediate_execution=True,
            allow_delegated_execution=False,
        )

    def resolve_input(self, ctx) -> types.Property:
        inputs = types.Object()
        inputs.int(
            "stale_after",
            label="Dead after (seconds without a heartbeat)",
            default=default_stale_after(),
            description="a running apply_sam2 or auto_masklets run this long silent has lost its worker",
        )
        stale_after = ctx.params.get("stale_after") or default_stale_after()
        error = stale_after_error(stale_after)
        if error:
            mark_invalid(inputs, "stale_after", error)
        else:
            inputs.view("found", types.Notice(label=_found_text(find_dead_runs(ctx.dataset, stale_after), stale_after)))
        return types.Property(inputs, view=types.View(label="Recover runs whose worker died"))

    def execute(self, ctx) -> dict:
        stale_after = ctx.params.get("stale_after") or default_stale_after()
        recovered = recover_dead_runs(ctx.dataset, stale_after)
        return {
            "recovered": [
                {
                    "operation_id": run.operation_id,
                    "label": run.label,
                    "last_heartbeat": run.last_heartbeat.isoformat(),
                    "unfinished_videos": run.unfinished_videos,
                    "requeued_as": run.requeued_as,
                }
                for run in recovered
            ],
            "summary": _found_text(recovered, stale_after),
        }

    def resolve_output(self, ctx) -> types.Property:
        outputs = types.Object()
        outputs.str("summary", label="Result", view=types.MarkdownView())
        return types.Property(outputs)
