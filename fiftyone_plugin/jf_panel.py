"""Panel ``jf_panel``: the per-video J&F distribution of an evaluation, its worst videos, and sorting by J&F."""

from __future__ import annotations

import fiftyone.operators as foo
import fiftyone.operators.types as types

from .jf_evaluation import RUN_TYPE

WORST_VIDEOS = 10


def jf_evaluation_keys(dataset) -> list[str]:
    """The dataset's J&F evaluation keys, oldest first."""
    return dataset.list_evaluations(type=RUN_TYPE) if dataset is not None else []


def worst_videos(samples, eval_key: str, count: int = WORST_VIDEOS) -> list[dict]:
    """The ``count`` videos with the lowest ``{eval_key}_JF``: id, video_id, J&F, J and F."""
    view = samples.exists(f"{eval_key}_JF").sort_by(f"{eval_key}_JF").limit(count)
    names = view.values("video_id") if samples.has_sample_field("video_id") else view.values("filepath")
    rows = zip(view.values("id"), names, *(view.values(f"{eval_key}_{m}") for m in ("JF", "J", "F")))
    return [
        {"sample_id": i, "video_id": n, "JF": round(jf, 2), "J": round(j, 2), "F": round(f, 2)}
        for i, n, jf, j, f in rows
    ]


class JFPanel(foo.Panel):
    @property
    def config(self) -> foo.PanelConfig:
        return foo.PanelConfig(name="jf_panel", label="SAM 2: J&F", icon="insights")

    def on_load(self, ctx) -> None:
        keys = jf_evaluation_keys(ctx.dataset)
        self._show(ctx, keys[-1] if keys else None)

    def on_change_eval_key(self, ctx) -> None:
        self._show(ctx, ctx.params.get("value"))

    def _show(self, ctx, eval_key: str | None) -> None:
        ctx.panel.state.eval_key = eval_key
        if eval_key is None:
            return
        results = ctx.dataset.load_evaluation_results(eval_key)
        scores = [v for v in ctx.dataset.values(f"{eval_key}_JF") if v is not None]
        ctx.panel.state.summary = "  ".join(f"**{k}** {v:.1f}" for k, v in results.metrics().items())
        ctx.panel.data.histogram = [{"type": "histogram", "x": scores, "nbinsx": 20, "name": "videos"}]
        ctx.panel.data.worst = worst_videos(ctx.dataset, eval_key)

    def sort_by_jf(self, ctx) -> None:
        eval_key = ctx.panel.state.eval_key
        if eval_key:
            ctx.ops.set_view(ctx.dataset.sort_by(f"{eval_key}_JF"))

    def open_video(self, ctx) -> None:
        rows = ctx.panel.data.worst or []
        row = ctx.params.get("row")
        if row is not None and 0 <= row < len(rows):
            ctx.ops.set_view(ctx.dataset.select(rows[row]["sample_id"]))

    def render(self, ctx) -> types.Property:
        panel = types.Object()
        keys = jf_evaluation_keys(ctx.dataset)
        if not keys:
            panel.md("No J&F evaluation yet: run **SAM 2: evaluate J&F** first.", name="empty")
            return types.Property(panel, view=types.GridView(orientation="vertical"))
        panel.enum(
            "eval_key", values=keys, label="Evaluation", on_change=self.on_change_eval_key, view=types.DropdownView()
        )
        panel.md(ctx.panel.state.summary or "", name="summary")
        panel.plot(
            "histogram",
            layout={"title": "Per-video J&F", "xaxis": {"title": "J&F"}, "yaxis": {"title": "videos"}, "bargap": 0.05},
        )
        table = types.TableView()
        for key, label in (("video_id", "Video"), ("JF", "J&F"), ("J", "J"), ("F", "F")):
            table.add_column(key, label=label)
        table.add_row_action("open", self.open_video, label="Open", icon="open_in_new")
        panel.list("worst", types.Object(), view=table, label=f"{WORST_VIDEOS} worst videos")
        panel.btn("sort_by_jf", label="Sort videos by J&F, worst first", on_click=self.sort_by_jf)
        return types.Property(panel, view=types.GridView(orientation="vertical"))
