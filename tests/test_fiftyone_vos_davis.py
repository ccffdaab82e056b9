"""import_vos -> apply_sam2 -> evaluate_jf -> export on a DAVIS 2017 root of real DAVIS masks, on a real MongoDB.

The ground truth is OSVOS's published masks with bike-packing's object 1 appearing only on frame 3 (as lab-coat's
in DAVIS 2017 val), the predictions RVOS's (``real_mask_roots.py``). The stored scores must equal the official
DAVIS 2017 evaluator (J/F Mean, Recall, Decay per object and globally) and ``sam2-plugins evaluate``, the export
must give back the palette PNGs it was fed, and SAM 2 must prompt the late object on its first annotated frame.
"""

import fiftyone_helpers  # noqa: F401  (configures FiftyOne before it is imported)
from fiftyone_helpers import (  # noqa: F401
    TEST_MODEL,
    execute,
    form_errors,
    mongod,
    panel_event,
    random_checkpoint,
    resolve_form,
)

import json
import sys
from pathlib import Path

import fiftyone as fo
import numpy as np
import pytest
from fiftyone import ViewField as F
from fiftyone.operators.executor import ExecutionError
from PIL import Image
from real_mask_roots import (
    LATE_FRAMES,
    LATE_OBJECT,
    NUM_FRAMES,
    RESOLUTION,
    SEQUENCES,
    ground_truth,
    prediction,
    write_davis_root,
    write_predictions,
)

from sam2_plugins.cli import main as cli_main
from sam2_plugins.fiftyone_plugin.jf_charts import score_text
from sam2_plugins.fiftyone_plugin.jf_panel import JFPanel
from sam2_plugins.fiftyone_plugin.masks import mask_to_detection
from sam2_plugins.fiftyone_plugin.tracks import masklet_summaries

pytestmark = pytest.mark.fiftyone

OFFICIAL_DAVIS = Path(__file__).resolve().parents[2] / "shared" / "reference" / "davis2017_evaluation"
DATASET = "davis-real"


@pytest.fixture(scope="module")
def davis(shared_fixtures, tmp_path_factory) -> dict[str, Path]:
    """The DAVIS root and RVOS's results folder."""
    folder = tmp_path_factory.mktemp("davis")
    return {
        "root": write_davis_root(shared_fixtures, folder / "DAVIS"),
        "rvos": write_predictions(shared_fixtures, folder / "rvos"),
    }


@pytest.fixture(scope="module")
def imported(mongod, davis, shared_fixtures) -> fo.Dataset:
    """The root imported by the operator, with RVOS's masks as the prediction field 'rvos' (objects by label)."""
    result = execute("import_vos", dataset_dir=str(davis["root"]), dataset_name=DATASET)
    assert result["imported"] == list(SEQUENCES) and result["layout"] == "davis" and not result["failed"]
    dataset = fo.load_dataset(DATASET)
    for sample in dataset.iter_samples(autosave=True):
        index_of = {int(m.object_id): m.index for m in masklet_summaries(sample)}
        for number, frame in sample.frames.items():
            labels = prediction(shared_fixtures, sample.video_id, number - 1)
            detections = [
                mask_to_detection(labels == label, index=index, label=str(label)) for label, index in index_of.items()
            ]
            frame["rvos"] = fo.Detections(detections=[d for d in detections if d is not None])
    return dataset


def official_metrics(root: Path, results: Path) -> dict:
    sys.path.insert(0, str(OFFICIAL_DAVIS))
    try:
        from davis2017.evaluation import DAVISEvaluation

        return DAVISEvaluation(str(root), "semi-supervised", "val").evaluate(str(results))
    finally:
        sys.path.remove(str(OFFICIAL_DAVIS))


def our_key(official_key: str) -> str:
    """The official evaluator's ``<sequence>_<n>`` as ``sam2-plugins evaluate`` names it: ``<sequence>/<n:03d>``."""
    sequence, number = official_key.rsplit("_", 1)
    return f"{sequence}/{int(number):03d}"


def test_every_frame_object_and_pixel_is_imported_and_the_late_object_starts_on_its_first_frame(
    imported, shared_fixtures, davis
):
    assert imported.info["vos_imports"] == [
        {"layout": "davis", "split": "val", "root": str(davis["root"].resolve()), "protocol": "davis"}
    ]
    for sample in imported:
        assert (sample.vos_layout, sample.video_split, sample.vos_source) == ("davis", "val", str(davis["root"]))
        assert sample.metadata.total_frame_count == NUM_FRAMES == len(sample.frames)
        size = (sample.metadata.frame_width, sample.metadata.frame_height)
        summaries = {m.object_id: m for m in masklet_summaries(sample)}
        labels_0 = ground_truth(shared_fixtures, sample.video_id, 0)
        assert sorted(summaries) == [str(label) for label in range(1, int(labels_0.max()) + 1)]
        for number, frame in sample.frames.items():
            assert Path(frame.filepath) == davis["root"] / "JPEGImages" / RESOLUTION / sample.video_id / (
                f"{number - 1:05d}.jpg"
            )
            labels = ground_truth(shared_fixtures, sample.video_id, number - 1)
            rendered = {d.label: d.to_segmentation(frame_size=size).mask > 0 for d in frame.ground_truth.detections}
            assert sorted(rendered) == [str(label) for label in np.unique(labels) if label]
            for label, mask in rendered.items():
                assert np.array_equal(mask, labels == int(label)), (sample.video_id, number, label)
                assert summaries[label].index == next(
                    d.index for d in frame.ground_truth.detections if d.label == label
                )
        for obj, summary in summaries.items():
            assert summary.annotated_frames == list(range(1, NUM_FRAMES + 1))  # DAVIS annotates every frame
            late = (sample.video_id, int(obj)) == LATE_OBJECT
            assert summary.first_appeared_frame == (LATE_FRAMES + 1 if late else 1)


def test_stored_scores_equal_the_official_davis_2017_evaluator_and_the_cli(imported, davis, tmp_path):
    form = resolve_form("evaluate_jf", imported, pred_field="rvos")
    assert form["protocol_notice"].view.label == "Scored by DAVIS 2017 semi-supervised (davis2017-evaluation)"
    assert "skip_first_and_last" not in form  # DAVIS fixes the frames it scores
    result = execute("evaluate_jf", dataset=imported, gt_field="ground_truth", pred_field="rvos", eval_key="rvos")
    assert result["protocol"] == "davis"
    stored = imported.load_evaluation_results("rvos")
    assert stored.config.protocol == "davis"
    official = official_metrics(davis["root"], davis["rvos"])
    j, f = official["J"], official["F"]
    keys = list(j["M_per_object"])  # "<sequence>_<n>", in the evaluator's order
    ours_of = {key: our_key(key) for key in keys}
    assert list(ours_of.values()) == list(stored.objects)
    for position, key in enumerate(keys):
        ours = stored.objects[ours_of[key]]
        for name, value in {
            "J": j["M"][position],
            "F": f["M"][position],
            "J-Recall": j["R"][position],
            "F-Recall": f["R"][position],
            "J-Decay": j["D"][position],
            "F-Decay": f["D"][position],
        }.items():
            assert ours[name] == pytest.approx(value * 100, abs=1e-6), (key, name)
    expected_global = {
        "J&F": (np.mean(j["M"]) + np.mean(f["M"])) / 2,
        "J": np.mean(j["M"]),
        "F": np.mean(f["M"]),
        "J-Recall": np.mean(j["R"]),
        "F-Recall": np.mean(f["R"]),
        "J-Decay": np.mean(j["D"]),
        "F-Decay": np.mean(f["D"]),
    }
    assert stored.global_scores.keys() == expected_global.keys()
    for name, value in expected_global.items():
        assert stored.global_scores[name] == pytest.approx(value * 100, abs=1e-6), name
    # the command line on the same PNGs
    out = tmp_path / "cli.json"
    gt_root = davis["root"] / "Annotations" / RESOLUTION
    command = ["evaluate", "--gt_root", str(gt_root), "--pred_root", str(davis["rvos"]), "--protocol", "davis"]
    assert cli_main([*command, "--json", str(out)]) == 0
    cli = json.loads(out.read_text())
    for name, value in cli["global"].items():
        assert stored.global_scores[name] == pytest.approx(value, abs=1e-9), name


def test_the_panel_shows_the_protocol_and_its_recall_and_decay_per_object(imported):
    execute("evaluate_jf", dataset=imported, pred_field="rvos", eval_key="panel_run", overwrite=True)
    results = imported.load_evaluation_results("panel_run")
    panel, state = JFPanel(), {}
    ctx = panel_event(imported, panel.on_load, state)
    assert state["eval_key"] == "panel_run"
    assert "DAVIS 2017 semi-supervised" in state["summary"]
    for name in ("J&F", "J-Recall", "F-Recall", "J-Decay", "F-Decay"):
        assert f"**{name}** {score_text(results.global_scores[name])}" in state["summary"], name
    columns = [column.key for column in panel.render(ctx).type.properties["objects"].view.columns]
    assert columns == ["video", "object", "J", "F", "JF", "J_Recall", "F_Recall", "J_Decay", "F_Decay"]
    rows = {(row["video"], row["object"]): row for row in ctx.panel.data._data["objects"]}
    for key, scores in results.objects.items():
        row = rows[tuple(key.rsplit("/", 1))]
        assert (row["J_Recall"], row["F_Decay"]) == (score_text(scores["J-Recall"]), score_text(scores["F-Decay"])), key


def test_export_writes_the_davis_palette_pngs_it_was_fed(imported, davis, shared_fixtures, tmp_path):
    out = tmp_path / "export"
    result = execute("export_sav_predictions", dataset=imported, pred_field="rvos", output_dir=str(out))
    assert result["videos_written"] == len(SEQUENCES)
    for sequence in SEQUENCES:
        assert sorted(p.name for p in (out / sequence).iterdir()) == [f"{t:05d}.png" for t in range(NUM_FRAMES)]
        for t in range(NUM_FRAMES):
            written = Image.open(out / sequence / f"{t:05d}.png")
            source = Image.open(davis["root"] / "Annotations" / RESOLUTION / sequence / f"{t:05d}.png")
            assert written.mode == "P" and written.getpalette()[:48] == source.getpalette()[:48]
            assert np.array_equal(np.asarray(written), prediction(shared_fixtures, sequence, t)), (sequence, t)
    again = official_metrics(davis["root"], out)
    assert again["J"]["M_per_object"] == official_metrics(davis["root"], davis["rvos"])["J"]["M_per_object"]
    # the ground truth exported is the annotation, the late object's empty frames included
    gt_out = tmp_path / "gt"
    execute("export_sav_predictions", dataset=imported, pred_field="ground_truth", output_dir=str(gt_out))
    for sequence in SEQUENCES:
        for t in range(NUM_FRAMES):
            written = np.asarray(Image.open(gt_out / sequence / f"{t:05d}.png"))
            assert np.array_equal(written, ground_truth(shared_fixtures, sequence, t)), (sequence, t)


def test_sam2_prompts_the_late_object_on_its_first_annotated_frame(imported, random_checkpoint):
    late_video = imported.match(F("video_id") == LATE_OBJECT[0])
    execute(
        "apply_sam2", view=late_video, checkpoint=random_checkpoint, prompt="gt_masks", pred_field="sam2", **TEST_MODEL
    )
    sample = late_video.first()
    late = next(m for m in masklet_summaries(sample) if m.object_id == str(LATE_OBJECT[1]))
    size = (sample.metadata.frame_width, sample.metadata.frame_height)
    predicted = {
        number: {d.index: d for d in frame.sam2.detections} for number, frame in sample.frames.items() if frame.sam2
    }
    assert all(late.index not in predicted.get(number, {}) for number in range(1, late.first_appeared_frame))
    first = predicted[late.first_appeared_frame][late.index].to_segmentation(frame_size=size).mask > 0
    gt = next(d for d in sample.frames[late.first_appeared_frame].ground_truth.detections if d.index == late.index)
    gt_mask = gt.to_segmentation(frame_size=size).mask > 0
    assert np.count_nonzero(first & gt_mask) / np.count_nonzero(first | gt_mask) > 0.9


def test_import_sav_refuses_a_davis_root_naming_import_vos(mongod, davis):
    errors = form_errors("import_sav", dataset_dir=str(davis["root"]))
    assert "is a davis root" in errors["dataset_dir"] and "import_vos" in errors["dataset_dir"]
    with pytest.raises(ExecutionError, match="is a davis root"):
        execute("import_sav", dataset_dir=str(davis["root"]), dataset_name="never-created")
    assert not fo.dataset_exists("never-created")
    form = resolve_form("import_vos", dataset_dir=str(davis["root"]))
    assert form["detected_layout"].view.label == "davis layout, scored by the davis protocol"
