"""J&F runs as FiftyOne evaluation results: report(), print_report(), plot_jf_distribution(), and the panel's data.

Two real runs on a real dataset (tests/jf_runs.py): A scores the ground truth against itself, B a copy missing one
object on one scored frame of the last video.
"""

import fiftyone_helpers  # noqa: F401  (configures FiftyOne before it is imported)
from fiftyone_helpers import mongod, panel_event  # noqa: F401

import re

import numpy as np
import pytest
from fiftyone import ViewField as F
from jf_runs import RUN_A, RUN_B, SCORED_FRAME_NUMBERS, UNSCORED_OBJECT, dataset_with_two_runs

from sam2_plugins.fiftyone_plugin.jf_charts import (
    DIFFERENCE_BIN_EDGES,
    JF_BIN_EDGES,
    bin_match,
    histogram_trace,
    score_text,
    table_title,
)
from sam2_plugins.fiftyone_plugin.jf_evaluation import RUN_TYPE, JFEvaluationResults, evaluate_jf
from sam2_plugins.fiftyone_plugin.jf_panel import (
    JFPanel,
    changed_most,
    jf_evaluation_keys,
    object_scores,
    video_scores,
    worst_first,
)

pytestmark = pytest.mark.fiftyone


@pytest.fixture(scope="module")
def runs(mongod, tmp_path_factory):
    dataset, video_ids = dataset_with_two_runs(tmp_path_factory.mktemp("jf") / "sav_val", "jf-results")
    yield dataset, video_ids
    dataset.delete()


def pixel_counts(dataset, video: str, obj: str, field: str) -> dict:
    """tp, fp, fn of one object on its scored frames (the middle annotated ones), from FiftyOne's own masks."""
    sample = dataset.match(F("video_id") == video).first()
    index = int(obj)
    counts = {"tp": 0, "fp": 0, "fn": 0}
    for number in SCORED_FRAME_NUMBERS:
        frame = sample.frames[number]
        size = (sample.metadata.frame_width, sample.metadata.frame_height)
        masks = []
        for name in ("ground_truth", field):
            found = [d for d in frame[name].detections if d.index == index] if frame[name] else []
            masks.append(found[0].to_segmentation(frame_size=size).mask > 0 if found else np.zeros(size[::-1], bool))
        gt, pred = masks
        counts["tp"] += int((gt & pred).sum())
        counts["fp"] += int((pred & ~gt).sum())
        counts["fn"] += int((gt & ~pred).sum())
    return counts


def test_report_breaks_the_scores_down_per_video_and_object(runs):
    dataset, video_ids = runs
    results = dataset.load_evaluation_results(RUN_B)
    report = results.report()
    assert {k: report["global"][k] for k in ("J&F", "J", "F")} == results.metrics() == results.global_scores
    assert next(iter(report)) == video_ids[0] and list(report)[-1] == "global"
    for video in video_ids:
        keys = [k for k in results.objects if k.startswith(f"{video}/")]
        assert list(report)[list(report).index(video) + 1 : list(report).index(video) + 1 + len(keys)] == keys
        for key in keys:
            stored = results.objects[key]
            assert report[key]["J&F"] == (stored["J"] + stored["F"]) / 2 and report[key]["J"] == stored["J"]
        assert report[video]["J"] == pytest.approx(np.mean([report[k]["J"] for k in keys]), abs=1e-12)
        assert report[video]["J&F"] == pytest.approx((report[video]["J"] + report[video]["F"]) / 2, abs=1e-12)
        # the per-video fields evaluate_jf wrote on the samples, from the scores before they were stored
        sample = dataset.match(F("video_id") == video).first()
        assert report[video]["J&F"] == pytest.approx(sample[f"{RUN_B}_JF"], abs=1e-9)
        assert report[video]["F"] == pytest.approx(sample[f"{RUN_B}_F"], abs=1e-9)
    assert report[video_ids[-1]]["J&F"] < 100.0 == report[video_ids[0]]["J&F"]
    unscored = f"{video_ids[0]}/{UNSCORED_OBJECT}"
    assert list(results.unscored) == [unscored] and unscored not in report
    assert results.video_scores() == {video: report[video]["J&F"] for video in video_ids}


def test_report_gives_pixel_precision_recall_and_support_per_object(runs):
    dataset, video_ids = runs
    report = dataset.load_evaluation_results(RUN_B).report()
    missed = f"{video_ids[-1]}/000"  # missing on one of its three scored frames
    counts = pixel_counts(dataset, video_ids[-1], "000", "degraded")
    assert counts["fn"] > 0 and counts["fp"] == 0
    assert report[missed]["precision"] == 1.0
    assert report[missed]["recall"] == counts["tp"] / (counts["tp"] + counts["fn"]) < 1.0
    assert report[missed]["f1-score"] == 2 * counts["tp"] / (2 * counts["tp"] + counts["fn"])
    assert report[missed]["support"] == counts["tp"] + counts["fn"]
    other = f"{video_ids[0]}/001"
    assert report[other]["support"] == pixel_counts(dataset, video_ids[0], "001", "degraded")["tp"]
    assert report[other]["recall"] == report[other]["precision"] == 1.0
    assert report["global"]["support"] == sum(report[k]["support"] for k in report if "/" in k)


def test_print_report_shows_each_video_its_objects_the_total_and_the_unscored(runs, capsys):
    dataset, video_ids = runs
    results = dataset.load_evaluation_results(RUN_B)
    results.print_report()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["video", "/", "object", "J&F", "J", "F", "precision", "recall", "f1-score", "support"]
    report = results.report()
    expected = []
    for row, s in report.items():
        name = ["Global", "score"] if row == "global" else [row.split("/")[-1]]
        values = [f"{s[m]:.1f}" for m in ("J&F", "J", "F")] + [f"{s[m] * 100:.1f}" for m in ("precision", "recall")]
        expected.append([*name, *values, f"{s['f1-score'] * 100:.1f}", str(s["support"])])
    assert [line.split() for line in lines[1 : 1 + len(expected)]] == expected
    assert lines[1].startswith(video_ids[0]) and lines[2].startswith("  000")
    assert lines[2 + len(expected)] == "1 objects not scored:"
    assert lines[3 + len(expected)].startswith(f"  {video_ids[0]}/{UNSCORED_OBJECT}: ")
    results.print_report(digits=3)
    assert f"{report['global']['J&F']:.3f}" in capsys.readouterr().out


def test_plot_jf_distribution_counts_videos_on_0_to_100(runs):
    dataset, _ = runs
    results_a, results_b = (dataset.load_evaluation_results(k) for k in (RUN_A, RUN_B))
    figure = results_b.plot_jf_distribution(results_a, title="two runs")
    assert [trace.name for trace in figure.data] == [RUN_B, RUN_A]
    assert list(figure.layout.xaxis.range) == [0, 100]
    assert figure.layout.xaxis.title.text == "J&F per video" and figure.layout.yaxis.title.text == "videos"
    assert figure.layout.title.text == "two runs"
    assert figure.layout.yaxis.dtick == 1  # whole videos: at most 3 in a bar
    counts_b, counts_a = (list(trace.y) for trace in figure.data)
    assert counts_a[-1] == len(dataset)  # a perfect 100 is in the last bar [95, 100]
    assert sum(counts_b) == len(dataset)
    expected_b, _ = np.histogram(list(results_b.video_scores().values()), bins=JF_BIN_EDGES)
    assert counts_b == expected_b.tolist()


def test_a_bar_filters_exactly_the_videos_it_counts(runs):
    dataset, _ = runs
    scores = dataset.values(f"{RUN_B}_JF")
    counts = histogram_trace(scores, JF_BIN_EDGES, "B", "red")["y"]
    field = F(f"{RUN_B}_JF")
    assert [len(dataset.match(bin_match(field, JF_BIN_EDGES, i))) for i in range(len(counts))] == counts
    changes = [b - a for a, b in zip(dataset.values(f"{RUN_A}_JF"), scores)]
    counts = histogram_trace(changes, DIFFERENCE_BIN_EDGES, "B - A", "blue")["y"]
    change = field - F(f"{RUN_A}_JF")
    assert [len(dataset.match(bin_match(change, DIFFERENCE_BIN_EDGES, i))) for i in range(len(counts))] == counts
    assert counts[len(counts) // 2] == len(dataset) - 1  # the bar at 0: every video but the degraded one


def test_panel_rows_compare_two_runs_per_video_and_object(runs):
    dataset, video_ids = runs
    assert jf_evaluation_keys(dataset) == [RUN_B, RUN_A]  # newest first, not alphabetical
    rows = video_scores(dataset, RUN_A, RUN_B)
    assert [row["video"] for row in rows] == dataset.values("video_id")
    assert all(row["change"] == pytest.approx(row["JF_B"] - row["JF"]) for row in rows)
    assert [row["video"] for row in changed_most(rows, 1)] == [video_ids[-1]]
    assert changed_most(rows, 1)[0]["change"] < 0
    assert worst_first(video_scores(dataset, RUN_B), 1)[0]["video"] == video_ids[-1]
    objects = object_scores(*(dataset.load_evaluation_results(k) for k in (RUN_A, RUN_B)))
    worst = changed_most(objects, 1)[0]
    assert (worst["video"], worst["object"]) == (video_ids[-1], "000")
    assert worst["JF"] == 100.0 and worst["JF_B"] < 100.0
    assert sum(row["change"] != 0 for row in objects) == 1


def test_fiftyone_model_evaluation_panel_reads_a_jf_run(runs):
    """What FiftyOne's panel reads: a supported type, no classes, a confusion matrix, custom-metric rows."""
    dataset, _ = runs
    info = dataset.get_evaluation_info(RUN_B)
    assert info.config.type == RUN_TYPE == "segmentation" and info.config.method == "sav_jf"
    results = dataset.load_evaluation_results(RUN_B)
    matrix, classes, _ = results._confusion_matrix(include_other=False, include_missing=True, tabulate_ids=False)
    assert classes == [] and matrix.max() == 0
    report = results.report()
    assert results.classes == list(results.objects) and all("precision" in report[c] for c in results.classes)
    rows = {record["label"]: record["value"] for record in results.custom_metrics.values()}
    assert rows == results.metrics() and set(rows) == {"J&F", "J", "F"}


def test_reevaluating_keeps_the_key_newest(runs, tmp_path):
    dataset, _ = runs
    evaluate_jf(dataset, "ground_truth", "degraded", "again")
    try:
        assert jf_evaluation_keys(dataset)[0] == "again"
    finally:
        dataset.delete_evaluation("again")
    assert not dataset.has_sample_field("again_JF")


def test_a_run_stored_before_pixel_counts_still_reports_its_scores(runs, capsys):
    """Runs stored without pixel counts (older versions of the plugin) report J&F, J and F only."""
    dataset, _ = runs
    stored = dataset.load_evaluation_results(RUN_B)
    old = JFEvaluationResults(
        dataset, stored.config, RUN_B, stored.global_scores, stored.objects, stored.unscored, backend=stored.backend
    )
    report = old.report()
    assert old.classes == [] and set(report["global"]) == {"J&F", "J", "F"}
    assert {row: scores["J&F"] for row, scores in report.items()} == {
        row: scores["J&F"] for row, scores in stored.report().items()
    }
    old.print_report()
    assert capsys.readouterr().out.splitlines()[0].split() == ["video", "/", "object", "J&F", "J", "F"]


ONE_DECIMAL = re.compile(r"^-?\d+\.\d$")


def test_panel_titles_count_right_and_every_score_has_one_decimal(runs):
    dataset, video_ids = runs
    panel, state = JFPanel(), {}
    ctx = panel_event(dataset, panel.on_load, state)
    results = dataset.load_evaluation_results(RUN_B)
    count = len(results.objects)
    assert state["worst_title"] == f"{len(video_ids)} videos, worst first"  # not "10 worst videos" over 3
    assert state["objects_title"] == f"{count} objects, worst first"
    rendered = panel.render(ctx).type.properties
    assert (
        rendered["worst"].view.label == state["worst_title"]
        and rendered["unscored"].view.label == "1 object not scored"
    )
    data = ctx.panel.data._data
    cells = [row[key] for name in ("worst", "objects") for row in data[name] for key in ("J", "F", "JF")]
    assert len(cells) == 3 * (len(video_ids) + count) and all(ONE_DECIMAL.match(cell) for cell in cells)
    assert re.findall(r"\*\*(J&F|J|F)\*\* (\S+)", state["summary"]) == [
        (name, f"{score:.1f}") for name, score in results.global_scores.items()
    ]

    ctx = panel_event(dataset, panel.on_change_compare_key, state, value=RUN_A)
    assert state["changed_title"] == f"{len(video_ids)} videos, changed most first"
    assert state["objects_title"] == f"{count} objects, changed most first"
    rendered = panel.render(ctx).type.properties
    assert (
        rendered["changed"].view.label == state["changed_title"]
        and rendered["objects"].view.label == state["objects_title"]
    )
    cells = [row[key] for row in ctx.panel.data._data["changed"] for key in ("JF", "JF_B", "change")]
    assert all(ONE_DECIMAL.match(cell) for cell in cells) and "100.0" in cells and "0.0" in cells


def test_score_and_title_texts():
    assert [score_text(v) for v in (3, 0.2, 97.25, -0.04, None)] == ["3.0", "0.2", "97.2", "0.0", None]
    assert table_title(10, 37, "video", "worst") == "10 of 37 videos, worst first"
    assert table_title(1, 1, "object", "changed most") == "1 object, changed most first"
