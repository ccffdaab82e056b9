"""Panel ``jf_panel``: a J&F run's per-video distribution, worst videos and objects, and a second run against it;
below, the dataset's fine-tuning runs (``finetune_sam2``): config, loss curve, held-out scores before and after, and
the tuned checkpoint of the run picked.

It shows what the J&F run's protocol reports: its name, the global scores (DAVIS and MOSE add J/F Recall and Decay,
LVOS Recall and V) and those statistics per object.

Everything the panel reads back in a later event (keys, the sample ids behind each table row) lives in panel
state; panel data (write-only) only carries what is drawn.
"""

from __future__ import annotations

import fiftyone.operators as foo
import fiftyone.operators.types as types
from fiftyone import ViewField as F

from sam2_plugins.evaluate import get_protocol

from .finetune_runs import FINETUNE_HINT, finetune_run_keys, loss_layout, loss_traces, run_summary
from .jf_charts import (
    DIFFERENCE_BIN_EDGES,
    JF_BIN_EDGES,
    RUN_COLORS,
    bin_match,
    count_text,
    diagonal_trace,
    difference_range,
    highest_bar,
    histogram_layout,
    histogram_trace,
    scatter_layout,
    scatter_trace,
    score_text,
    table_title,
)
from .jf_evaluation import METHOD, RUN_TYPE, SCORES
from .tracks import video_name

NO_COMPARISON = "(none)"
VIDEO_ROWS = 10
OBJECT_ROWS = 25


def jf_evaluation_keys(dataset) -> list[str]:
    """The dataset's J&F evaluation keys, newest first."""
    if dataset is None:
        return []
    keys = dataset.list_evaluations(type=RUN_TYPE, method=METHOD)
    return sorted(keys, key=lambda key: dataset.get_evaluation_info(key).timestamp, reverse=True)


def video_scores(samples, eval_key: str, compare_key: str | None = None) -> list[dict]:
    """One row per video scored by ``eval_key``: sample id, video, its J&F, J, F and, with ``compare_key``, the
    other run's J&F and the change (B - A; None where B did not score the video)."""
    view = samples.exists(f"{eval_key}_JF")
    ids = view.values("id")
    names = view.values("video_id") if samples.has_sample_field("video_id") else ids
    a_jf, a_j, a_f = (view.values(f"{eval_key}_{m}") for m in ("JF", "J", "F"))
    b_jf = view.values(f"{compare_key}_JF") if compare_key else [None] * len(ids)
    return [
        {
            "sample_id": sample_id,
            "video": name or sample_id,
            "JF": jf,
            "J": j,
            "F": f,
            "JF_B": jf_b,
            "change": None if jf_b is None else jf_b - jf,
        }
        for sample_id, name, jf, j, f, jf_b in zip(ids, names, a_jf, a_j, a_f, b_jf)
    ]


def protocol_statistics(results) -> list[str]:
    """The statistics ``results``' protocol reports beyond J&F, J and F (``J-Recall``, ``J-Decay``, ``V``...)."""
    return [name for name in results.global_scores if name not in SCORES]


def statistic_column(name: str) -> str:
    """A statistic's key in panel rows: ``J-Recall`` -> ``J_Recall`` (table columns are plain keys)."""
    return name.replace("-", "_")


def object_scores(results, compare_results=None) -> list[dict]:
    """One row per object scored by ``results``: video, object, J, F, J&F, the protocol's other statistics and the
    other run's J&F and change."""
    others = compare_results.objects if compare_results is not None else {}
    statistics = protocol_statistics(results)
    rows = []
    for key, score in results.objects.items():
        video, obj = key.rsplit("/", 1)
        jf = (score["J"] + score["F"]) / 2
        other = others.get(key)
        jf_b = None if other is None else (other["J"] + other["F"]) / 2
        change = None if jf_b is None else jf_b - jf
        row = {"video": video, "object": obj, "J": score["J"], "F": score["F"], "JF": jf}
        row |= {statistic_column(name): score.get(name) for name in statistics}
        rows.append(row | {"JF_B": jf_b, "change": change})
    return rows


def worst_first(rows: list[dict], count: int) -> list[dict]:
    return sorted(rows, key=lambda row: row["JF"])[:count]


def changed_most(rows: list[dict], count: int) -> list[dict]:
    changed = [row for row in rows if row["change"] is not None]
    return sorted(changed, key=lambda row: -abs(row["change"]))[:count]


def _displayed(rows: list[dict]) -> list[dict]:
    """A table's rows with their scores written with one decimal."""
    return [{k: score_text(v) if isinstance(v, float) else v for k, v in row.items()} for row in rows]


class JFPanel(foo.Panel):
    @property
    def config(self) -> foo.PanelConfig:
        return foo.PanelConfig(
            name="jf_panel",
            label="SAM 2: J&F",
            icon="insights",
            help_markdown=(
                "Per-video and per-object SA-V J&F of a run; pick a second run to compare the two. Below: the "
                "fine-tuning runs of the dataset, with their loss curves and held-out scores before and after."
            ),
        )

    def on_load(self, ctx) -> None:
        keys = jf_evaluation_keys(ctx.dataset)
        ctx.panel.state.eval_key = keys[0] if keys else None
        ctx.panel.state.compare_key = NO_COMPARISON
        finetune_keys = finetune_run_keys(ctx.dataset)
        ctx.panel.state.finetune_key = finetune_keys[0] if finetune_keys else None
        self._show(ctx)

    def on_change_finetune_key(self, ctx) -> None:
        ctx.panel.state.finetune_key = ctx.params.get("value")
        self._show(ctx)

    def on_change_eval_key(self, ctx) -> None:
        ctx.panel.state.eval_key = ctx.params.get("value")
        if ctx.panel.state.compare_key == ctx.panel.state.eval_key:
            ctx.panel.state.compare_key = NO_COMPARISON
        self._show(ctx)

    def on_change_compare_key(self, ctx) -> None:
        ctx.panel.state.compare_key = ctx.params.get("value") or NO_COMPARISON
        self._show(ctx)

    def _keys(self, ctx) -> tuple[str | None, str | None]:
        """Run A and run B (None when there is no comparison), both still on the dataset."""
        keys = jf_evaluation_keys(ctx.dataset)
        eval_key = ctx.panel.state.eval_key
        compare_key = ctx.panel.state.compare_key
        eval_key = eval_key if eval_key in keys else None
        compare_key = compare_key if compare_key in keys and compare_key != eval_key else None
        return eval_key, compare_key

    def _show(self, ctx) -> None:
        eval_key, compare_key = self._keys(ctx)
        ctx.panel.state.selection = None
        ctx.panel.data.clear()  # data is patched: a shorter list would keep the old items past its end
        self._show_finetune(ctx)
        if eval_key is None:
            return
        results = ctx.dataset.load_evaluation_results(eval_key)
        compare_results = ctx.dataset.load_evaluation_results(compare_key) if compare_key else None
        videos = video_scores(ctx.dataset, eval_key, compare_key)
        objects = object_scores(results, compare_results)
        sample_ids = {row["video"]: row["sample_id"] for row in videos}
        for row in objects:
            row["sample_id"] = sample_ids.get(row["video"])

        ctx.panel.state.summary = "\n\n".join(
            self._run_summary(label, key, run)
            for label, key, run in (("A", eval_key, results), ("B", compare_key, compare_results))
            if run is not None
        )
        traces = [histogram_trace([row["JF"] for row in videos], JF_BIN_EDGES, f"A: {eval_key}", RUN_COLORS[0])]
        if compare_key:
            scores_b = [row["JF_B"] for row in videos if row["JF_B"] is not None]
            traces.append(histogram_trace(scores_b, JF_BIN_EDGES, f"B: {compare_key}", RUN_COLORS[1]))
        ctx.panel.data.histogram = traces
        ctx.panel.state.histogram_highest = highest_bar(traces)

        tables = {"worst": worst_first(videos, VIDEO_ROWS), "objects": worst_first(objects, OBJECT_ROWS)}
        if compare_key:
            compared = [row for row in videos if row["change"] is not None]
            ctx.panel.data.scatter = [
                diagonal_trace(),
                scatter_trace(
                    [row["JF"] for row in compared],
                    [row["JF_B"] for row in compared],
                    [row["sample_id"] for row in compared],
                    [row["video"] for row in compared],
                ),
            ]
            changes = [row["change"] for row in compared]
            ctx.panel.state.difference_range = difference_range(changes)
            differences = [histogram_trace(changes, DIFFERENCE_BIN_EDGES, "B - A", RUN_COLORS[1])]
            ctx.panel.data.differences = differences
            ctx.panel.state.differences_highest = highest_bar(differences)
            tables["changed"] = changed_most(videos, VIDEO_ROWS)
            tables["objects"] = changed_most(objects, OBJECT_ROWS)
        titles = {"worst": (len(videos), "video", "worst"), "objects": (len(objects), "object", "worst")}
        if compare_key:
            changed_objects = sum(row["change"] is not None for row in objects)
            titles.update(
                changed=(len(compared), "video", "changed most"), objects=(changed_objects, "object", "changed most")
            )
        for name, rows in tables.items():
            ctx.panel.data.set(name, _displayed(rows))
            ctx.panel.state.set(f"{name}_ids", [row["sample_id"] for row in rows])
            ctx.panel.state.set(f"{name}_title", table_title(len(rows), *titles[name]))
        ctx.panel.state.statistics = protocol_statistics(results)
        unscored = [{"object": key, "reason": reason} for key, reason in results.unscored.items()]
        ctx.panel.state.unscored_count = len(unscored)
        ctx.panel.data.unscored = unscored

    def _finetune_key(self, ctx) -> str | None:
        key = ctx.panel.state.finetune_key
        return key if key in finetune_run_keys(ctx.dataset) else None

    def _show_finetune(self, ctx) -> None:
        """The picked fine-tuning run's summary and loss curve."""
        key = self._finetune_key(ctx)
        ctx.panel.state.finetune_summary = run_summary(ctx.dataset, key) if key else None
        history = ctx.dataset.load_run_results(key).loss if key else []
        ctx.panel.state.finetune_steps = len(history)
        ctx.panel.data.loss = loss_traces(history)

    @staticmethod
    def _run_summary(label: str, key: str, results) -> str:
        scores = "  ".join(f"**{name}** {score_text(value)}" for name, value in results.global_scores.items())
        counts = f"{count_text(len(results.objects), 'object')} scored, {len(results.unscored)} not scored"
        protocol = get_protocol(results.config.protocol).title
        return f"**{label}** `{key}` ({results.config.pred_field}, {protocol}): {scores} · {counts}"

    def on_click_histogram(self, ctx) -> None:
        """Show the videos of the clicked bar, worst first."""
        eval_key, compare_key = self._keys(ctx)
        key = compare_key if ctx.params.get("trace_idx") == 1 and compare_key else eval_key
        index = ctx.params.get("idx")
        if key is None or index is None:
            return
        field = f"{key}_JF"
        ctx.ops.set_view(ctx.dataset.match(bin_match(F(field), JF_BIN_EDGES, index)).sort_by(field))

    def on_click_differences(self, ctx) -> None:
        """Show the videos whose J&F changed by the clicked bar's amount, most worsened first."""
        eval_key, compare_key = self._keys(ctx)
        index = ctx.params.get("idx")
        if compare_key is None or index is None:
            return
        change = F(f"{compare_key}_JF") - F(f"{eval_key}_JF")
        view = ctx.dataset.match(bin_match(change, DIFFERENCE_BIN_EDGES, index)).sort_by(change)
        ctx.ops.set_view(view)

    def on_click_scatter(self, ctx) -> None:
        """Select the clicked video in the grid."""
        sample_id = ctx.params.get("id")
        if sample_id:
            ctx.ops.set_selected_samples([sample_id])
            name = video_name(ctx.dataset[sample_id])
            ctx.panel.state.selection = (
                f"Selected **{name}** in the grid: A {score_text(ctx.params['x'])}, B {score_text(ctx.params['y'])}"
            )

    def open_video(self, ctx) -> None:
        """Open the row's video in the sample modal, first showing it when the current view hides it."""
        ids = ctx.panel.state.get(f"{ctx.params.get('path')}_ids") or []
        row = ctx.params.get("row")
        if row is None or not 0 <= row < len(ids) or ids[row] is None:
            return
        sample_id = ids[row]
        if len(ctx.view.select(sample_id)) == 0:
            ctx.ops.set_view(ctx.dataset.select(sample_id))
        ctx.ops.open_sample(id=sample_id)

    def sort_by_jf(self, ctx) -> None:
        eval_key, _ = self._keys(ctx)
        if eval_key:
            field = f"{eval_key}_JF"
            ctx.ops.set_view(ctx.dataset.exists(field).sort_by(field))

    def show_all(self, ctx) -> None:
        ctx.ops.clear_view()

    def render(self, ctx) -> types.Property:
        panel = types.Object()
        if self._keys(ctx)[0] is None:
            panel.md("No J&F evaluation yet: run **SAM 2: evaluate J&F** first.", name="empty")
        else:
            self._render_jf(ctx, panel)
        self._render_finetune(ctx, panel)
        return types.Property(panel, view=types.GridView(orientation="vertical"))

    def _render_finetune(self, ctx, panel: types.Object) -> None:
        panel.md("**Fine-tuning runs**", name="finetune_title")
        keys = finetune_run_keys(ctx.dataset)
        if self._finetune_key(ctx) is None:
            panel.md(FINETUNE_HINT, name="finetune_empty")
            return
        panel.enum(
            "finetune_key",
            values=keys,
            label="Run",
            on_change=self.on_change_finetune_key,
            view=types.DropdownView(),
        )
        panel.md(ctx.panel.state.finetune_summary or "", name="finetune_summary")
        panel.plot("loss", layout=loss_layout(ctx.panel.state.finetune_steps or 1))

    def _render_jf(self, ctx, panel: types.Object) -> None:
        keys = jf_evaluation_keys(ctx.dataset)
        eval_key, compare_key = self._keys(ctx)
        panel.enum(
            "eval_key", values=keys, label="Run (A)", on_change=self.on_change_eval_key, view=types.DropdownView()
        )
        panel.enum(
            "compare_key",
            values=[NO_COMPARISON, *(key for key in keys if key != eval_key)],
            label="Compare with (B)",
            on_change=self.on_change_compare_key,
            view=types.DropdownView(),
        )
        panel.md(ctx.panel.state.summary or "", name="summary")
        panel.plot(
            "histogram",
            layout=histogram_layout("J&F per video", [0, 100], ctx.panel.state.histogram_highest or 0),
            on_click=self.on_click_histogram,
        )
        if compare_key:
            panel.md(ctx.panel.state.selection or "Click a point to select its video.", name="selection")
            panel.plot("scatter", layout=scatter_layout(eval_key, compare_key), on_click=self.on_click_scatter)
            panel.plot(
                "differences",
                layout=histogram_layout(
                    "change in J&F per video (B - A)",
                    ctx.panel.state.difference_range or [-100, 100],
                    ctx.panel.state.differences_highest or 0,
                ),
                on_click=self.on_click_differences,
            )
            self._table(
                panel,
                "changed",
                ctx.panel.state.changed_title or "",
                [("video", "Video"), ("JF", "J&F A"), ("JF_B", "J&F B"), ("change", "B - A")],
            )
        else:
            self._table(
                panel,
                "worst",
                ctx.panel.state.worst_title or "",
                [("video", "Video"), ("JF", "J&F"), ("J", "J"), ("F", "F")],
            )
        object_columns = [("video", "Video"), ("object", "Object"), ("J", "J"), ("F", "F"), ("JF", "J&F")]
        object_columns += [(statistic_column(name), name) for name in ctx.panel.state.statistics or []]
        if compare_key:
            object_columns += [("JF_B", "J&F B"), ("change", "B - A")]
        self._table(panel, "objects", ctx.panel.state.objects_title or "", object_columns)
        if ctx.panel.state.unscored_count:
            table = types.TableView()
            table.add_column("object", label="Object")
            table.add_column("reason", label="Why it has no score")
            label = f"{count_text(ctx.panel.state.unscored_count, 'object')} not scored"
            panel.list("unscored", types.Object(), view=table, label=label)
        panel.btn("sort_by_jf", label="Sort videos by J&F, worst first", on_click=self.sort_by_jf)
        panel.btn("show_all", label="Show all videos", on_click=self.show_all)

    def _table(self, panel, name: str, label: str, columns: list[tuple[str, str]]) -> None:
        table = types.TableView()
        for key, column_label in columns:
            table.add_column(key, label=column_label)
        table.add_row_action("open", self.open_video, label="Open", icon="open_in_new")
        panel.list(name, types.Object(), view=table, label=label)
