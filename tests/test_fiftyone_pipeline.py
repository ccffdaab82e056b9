"""import -> apply_sam2 -> evaluate_jf -> export through the operator executor on a real MongoDB.

The stored J&F must equal `sam2-plugins evaluate` on the exported PNGs; reruns resume without duplicates; two
delegated-operation workers share a sharded run; the evaluation loads by class name in a fresh process.
"""

import fiftyone_helpers  # noqa: F401  (configures FiftyOne before it is imported)
from fiftyone_helpers import (  # noqa: F401
    PLUGIN_NAME,
    TEST_IMAGE_SIZE,
    TEST_MODEL,
    assert_same_predictions,
    execute,
    form_errors,
    fresh_dataset_name,
    launch_workers,
    mongod,
    random_checkpoint,
    resolve_form,
    worker_environment,
)

import json
import subprocess
import sys
import time

import fiftyone as fo
import numpy as np
import pytest
from fiftyone import ViewField as F
from fiftyone.operators.executor import ExecutionError

from sam2_plugins.cli import main as cli_main
from sam2_plugins.fiftyone_plugin import Sam2VideoModel
from sam2_plugins.fiftyone_plugin.apply_sam2 import apply_sam2
from sam2_plugins.fiftyone_plugin.completion import mark_finished, unfinished
from sam2_plugins.fiftyone_plugin.video_prompts import label_field_prompts
from sam2_plugins.model.official import OFFICIAL_CHECKPOINTS
from sam2_plugins.prompt_simulation import interior_center, mask_box
from sam2_plugins.sample_data import write_sav_val

pytestmark = pytest.mark.fiftyone


@pytest.fixture(scope="module")
def val_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline") / "sav_val"
    write_sav_val(root, num_videos=2, num_frames=9, seed=200)
    return root


@pytest.fixture(scope="module")
def predicted(mongod, val_root, random_checkpoint):
    """The val sample imported and predicted once with 'gt_masks' into 'sam2': the baseline of the module."""
    name = "pipeline"
    execute("import_sav", dataset_dir=str(val_root), dataset_name=name)
    dataset = fo.load_dataset(name)
    result = execute(
        "apply_sam2", dataset=dataset, checkpoint=random_checkpoint, prompt="gt_masks", pred_field="sam2", **TEST_MODEL
    )
    assert sorted(result["predicted"]) == sorted(dataset.values("video_id"))
    return dataset


def test_registry_lists_our_operators_without_errors(mongod):
    import fiftyone.plugins.context as fopc

    contexts = {c.name: c for c in fopc.build_plugin_contexts(enabled=True)}
    ours = contexts[PLUGIN_NAME]
    assert ours.errors == []
    assert {i.name for i in ours.instances} == {
        "import_vos",
        "import_sav",
        "apply_sam2",
        "auto_masklets",
        "recover_runs",
        "evaluate_jf",
        "export_sav_predictions",
        "import_ctc",
        "export_ctc",
        "evaluate_ctc",
        "finetune_sam2",
        "jf_panel",
    }
    assert all(not c.errors for c in contexts.values())


def test_predictions_follow_the_prompts(predicted):
    gt_indices = set(predicted.distinct("frames.ground_truth.detections.index"))
    for sample in predicted:
        first_prompt = min(n for n, f in sample.frames.items() if f.ground_truth and f.ground_truth.detections)
        for number, frame in sample.frames.items():
            if number < first_prompt:
                continue
            assert frame.sam2 is not None, number
            for d in frame.sam2.detections:
                assert d.index in gt_indices and 0.0 <= d.confidence <= 1.0
                assert d.masklet_type == "manual" and d.label == f"{d.masklet_id:03d}"
    assert "apply_sam2/sam2" in predicted.first().sam2_completed


def test_stored_jf_equals_the_cli_on_exported_pngs(predicted, val_root, tmp_path):
    metrics = execute("evaluate_jf", dataset=predicted, gt_field="ground_truth", pred_field="sam2", eval_key="jf")
    assert "jf" in predicted.list_evaluations()
    info = predicted.get_evaluation_info("jf")
    assert (info.config.gt_field, info.config.pred_field, info.config.method) == ("ground_truth", "sam2", "sav_jf")
    stored = predicted.load_evaluation_results("jf")
    shown = {name: round(score, 1) for name, score in stored.global_scores.items()}
    summary = "  ".join(f"{name} {score:.1f}" for name, score in shown.items()) + " · SA-V (sav_evaluator.py)"
    assert metrics == {**shown, "protocol": "sav", "summary": summary}

    pred_root = tmp_path / "pred"
    assert (
        execute("export_sav_predictions", dataset=predicted, pred_field="sam2", output_dir=str(pred_root))[
            "videos_written"
        ]
        == 2
    )
    for sample in predicted:
        folders = sorted(p.name for p in (pred_root / sample.video_id).iterdir())
        assert folders == ["000", "001", "002", "003"]
        assert len(list((pred_root / sample.video_id / "000").glob("*.png"))) == sample.metadata.total_frame_count
    out = tmp_path / "cli.json"
    assert (
        cli_main(
            [
                "evaluate",
                "--gt_root",
                str(val_root / "Annotations_6fps"),
                "--pred_root",
                str(pred_root),
                "-q",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    cli = json.loads(out.read_text())
    for metric in ("J&F", "J", "F"):
        assert stored.global_scores[metric] == pytest.approx(cli["global"][metric], abs=1e-9)
    assert stored.objects.keys() == cli["objects"].keys()
    for key, scores in cli["objects"].items():
        assert stored.objects[key]["J"] == pytest.approx(scores["J"], abs=1e-9)
        assert stored.objects[key]["F"] == pytest.approx(scores["F"], abs=1e-9)
    for sample in predicted:
        objects = [v for k, v in cli["objects"].items() if k.startswith(sample.video_id)]
        assert sample.jf_J == pytest.approx(np.mean([o["J"] for o in objects]), abs=1e-9)
        assert sample.jf_JF == pytest.approx((sample.jf_J + sample.jf_F) / 2)
    scored = predicted.values("frames.ground_truth.detections.jf_J", unwind=True)
    assert any(v is not None for v in scored)

    # a fresh process loads the run by the classes' fully-qualified names
    code = (
        "import fiftyone as fo, json; r = fo.load_dataset('pipeline').load_evaluation_results('jf'); "
        "print(type(r).__module__ + '.' + type(r).__name__); print(json.dumps(r.metrics()))"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], env=worker_environment(), capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    class_name, loaded = run.stdout.strip().splitlines()[-2:]
    assert class_name == "sam2_plugins.fiftyone_plugin.jf_evaluation.JFEvaluationResults"
    assert json.loads(loaded) == pytest.approx(stored.metrics())

    # the export is resumable: finished videos are skipped unless overwrite
    assert (
        execute("export_sav_predictions", dataset=predicted, pred_field="sam2", output_dir=str(pred_root))[
            "videos_written"
        ]
        == 0
    )
    # the run owns its fields: renamed and deleted with it
    predicted.rename_evaluation("jf", "jf2")
    assert predicted.has_sample_field("jf2_JF") and not predicted.has_sample_field("jf_JF")
    assert predicted.has_frame_field("ground_truth.detections.jf2_J")
    predicted.delete_evaluation("jf2")
    assert not predicted.has_sample_field("jf2_JF") and not predicted.has_frame_field("ground_truth.detections.jf2_J")


def test_ground_truth_scores_100(predicted):
    results = execute(
        "evaluate_jf",
        dataset=predicted,
        gt_field="ground_truth",
        pred_field="ground_truth",
        eval_key="gt_vs_gt",
        skip_first_and_last=False,
    )
    summary = "J&F 100.0  J 100.0  F 100.0 · SA-V (sav_evaluator.py)"
    assert results == {"J&F": 100.0, "J": 100.0, "F": 100.0, "protocol": "sav", "summary": summary}


def test_nothing_to_score_registers_no_run_and_writes_no_field(val_root, fresh_dataset_name):
    execute("import_sav", dataset_dir=str(val_root), dataset_name=fresh_dataset_name)
    dataset = fo.load_dataset(fresh_dataset_name)
    no_masks = dataset.filter_labels("frames.ground_truth", F("index") < 0, only_matches=False)
    with pytest.raises(
        ExecutionError,
        match="nothing to score in dataset .*: no object of 'ground_truth' in the 2 videos .* kept by the view's",
    ):
        execute("evaluate_jf", view=no_masks, gt_field="ground_truth", pred_field="ground_truth", eval_key="jf")
    assert dataset.list_evaluations() == []
    assert not dataset.has_sample_field("jf_JF") and not dataset.has_frame_field("ground_truth.detections.jf_J")
    assert set(dataset.count_values("frames.ground_truth.detections.jf_J")) == {None}  # no detection scored
    second = dataset.values("video_id")[1]
    second_masked = dataset.filter_labels("frames.ground_truth", F("$video_id") == second, only_matches=False)
    results = execute(
        "evaluate_jf",
        view=second_masked,
        gt_field="ground_truth",
        pred_field="ground_truth",
        eval_key="jf",
        skip_first_and_last=False,
    )
    assert results["summary"] == "J&F 100.0  J 100.0  F 100.0 · SA-V (sav_evaluator.py)"
    assert dataset.list_evaluations() == ["jf"]
    assert dataset.values("jf_JF") == [None, 100.0]  # the first video stored has no score


def test_rerun_after_a_crash_resumes_with_the_same_result(predicted, random_checkpoint):
    class Stop(Exception):
        pass

    def crash_in_second_video(fraction: float, label: str) -> None:
        if fraction > 0.7:
            raise Stop(label)

    with pytest.raises(Stop):
        apply_sam2(
            predicted, checkpoint=random_checkpoint, pred_field="resumed", progress=crash_in_second_video, **TEST_MODEL
        )
    assert predicted.count("frames.resumed") > 0
    result = execute("apply_sam2", dataset=predicted, checkpoint=random_checkpoint, pred_field="resumed", **TEST_MODEL)
    assert len(result["predicted"]) == 1  # the finished video is skipped
    assert_same_predictions(predicted, "resumed")
    again = execute(
        "apply_sam2",
        view=predicted.limit(1),
        checkpoint=random_checkpoint,
        pred_field="resumed",
        overwrite=True,
        **TEST_MODEL,
    )
    assert again["predicted"] == [predicted.first().video_id]  # overwrite redoes finished videos
    assert_same_predictions(predicted, "resumed")


def test_box_click_and_user_prompts(predicted, random_checkpoint):
    one_video = predicted.limit(1)
    for prompt, field in (("gt_boxes", "boxes"), ("gt_clicks", "clicks")):
        execute(
            "apply_sam2",
            view=one_video,
            checkpoint=random_checkpoint,
            prompt=prompt,
            num_clicks=3,
            pred_field=field,
            **TEST_MODEL,
        )
        prompted = set(one_video.distinct(f"frames.{field}.detections.index"))
        assert prompted and prompted <= set(one_video.distinct("frames.ground_truth.detections.index"))
        assert one_video.count(f"frames.{field}") == one_video.first().metadata.total_frame_count
    assert predicted.skip(1).count("frames.boxes") == 0  # only the view was predicted

    sample = one_video.first()
    frame = sample.frames[1]
    size = (sample.metadata.frame_width, sample.metadata.frame_height)
    person = next(d for d in frame.ground_truth.detections if d.index == 0)
    x, y = interior_center(person.to_segmentation(frame_size=size).mask > 0)
    frame["my_clicks"] = fo.Keypoints(keypoints=[fo.Keypoint(points=[(x / size[0], y / size[1])], index=7)])
    sample.save()
    execute(
        "apply_sam2",
        view=one_video,
        checkpoint=random_checkpoint,
        prompt="my_clicks",
        pred_field="from_clicks",
        **TEST_MODEL,
    )
    assert one_video.distinct("frames.from_clicks.detections.index") == [7]


def test_bad_parameters_are_clear_errors(predicted, random_checkpoint):
    with pytest.raises(ExecutionError, match="Path: prompt. Reason: 'no_such_field' is not a frame field"):
        execute("apply_sam2", dataset=predicted, checkpoint=random_checkpoint, prompt="no_such_field", **TEST_MODEL)
    with pytest.raises(ValueError, match="neither one of"):
        apply_sam2(predicted, checkpoint=random_checkpoint, prompt="no_such_field", **TEST_MODEL)
    with pytest.raises(ExecutionError, match="Path: num_clicks"):  # the form allows 1, 3 or 5
        execute(
            "apply_sam2",
            dataset=predicted,
            checkpoint=random_checkpoint,
            prompt="gt_clicks",
            num_clicks=2,
            pred_field="x",
            **TEST_MODEL,
        )
    with pytest.raises(ValueError, match="num_clicks must be one of"):
        apply_sam2(predicted, checkpoint=random_checkpoint, prompt="gt_clicks", num_clicks=2, **TEST_MODEL)
    with pytest.raises(ExecutionError, match="Path: pred_field. Reason: 'nothing' is not a frame field"):
        execute("evaluate_jf", dataset=predicted, gt_field="ground_truth", pred_field="nothing", eval_key="bad")
    with pytest.raises(ExecutionError, match="Path: checkpoint. Reason: /no/such.pt: no such checkpoint"):
        execute("apply_sam2", dataset=predicted, checkpoint="/no/such.pt", pred_field="y", **TEST_MODEL)


def test_two_workers_share_a_sharded_run(predicted, random_checkpoint, tmp_path):
    from bson import ObjectId
    from fiftyone.operators.delegated import DelegatedOperationService
    from fiftyone.operators.executor import ExecutionRunState

    logs = [tmp_path / f"worker{i}.log" for i in range(2)]
    workers = launch_workers(logs)
    deadline = time.monotonic() + 180
    try:
        # a view that changes as the shards run: each finished video leaves it
        not_done = unfinished(predicted, "apply_sam2/sharded")
        result = execute(
            "apply_sam2", view=not_done, checkpoint=random_checkpoint, pred_field="sharded", num_shards=2, **TEST_MODEL
        )
        assert len(result["queued"]) == 2
        service = DelegatedOperationService()
        while True:
            states = [service.get(ObjectId(op_id)).run_state for op_id in result["queued"]]
            if all(s in ExecutionRunState.TERMINAL_STATES for s in states):
                break
            assert time.monotonic() < deadline + 300, states
            time.sleep(1)
        assert states == [ExecutionRunState.COMPLETED] * 2, [
            service.get(ObjectId(i)).run_result for i in result["queued"]
        ]
    finally:
        for worker in workers:
            worker.terminate()
            worker.wait(timeout=30)
    ran = ["Running operation" in log.read_text() for log in logs]
    assert ran == [True, True], [log.read_text()[-2000:] for log in logs]
    predicted.reload()  # the workers added the field
    assert_same_predictions(predicted, "sharded")  # every video of the view when queued was predicted
    assert len(unfinished(predicted, "apply_sam2/sharded")) == 0


def test_train_videos_are_read_from_their_mp4_with_manual_and_auto_objects(mongod, random_checkpoint, tmp_path):
    from sam2_plugins.sample_data import write_sav_train

    write_sav_train(tmp_path / "train", num_videos=1, num_frames=9)
    execute("import_sav", dataset_dir=str(tmp_path / "train"), dataset_name="train-pipeline")
    dataset = fo.load_dataset("train-pipeline")
    execute("apply_sam2", dataset=dataset, checkpoint=random_checkpoint, pred_field="sam2", **TEST_MODEL)
    sample = dataset.first()
    assert sample.frames[9].sam2 is not None  # every mp4 frame, not only the annotated ones
    assert set(dataset.distinct("frames.sam2.detections.masklet_type")) <= {"manual", "auto"}
    execute("export_sav_predictions", dataset=dataset, pred_field="sam2", output_dir=str(tmp_path / "pred"))
    folders = sorted(p.name for p in (tmp_path / "pred" / sample.video_id).iterdir())
    assert folders == ["000", "001", "002", "003", "auto_000", "auto_001"]
    assert len(list((tmp_path / "pred" / sample.video_id / "auto_001").glob("*.png"))) == 9
    metrics = execute("evaluate_jf", dataset=dataset, gt_field="ground_truth", pred_field="sam2", eval_key="jf")
    assert 0.0 <= metrics["J&F"] <= 100.0
    assert len(dataset.load_evaluation_results("jf").objects) + len(dataset.load_evaluation_results("jf").unscored) == 6


def test_finished_marks_of_two_runs_on_the_same_video_are_both_kept(predicted):
    first, second = predicted.first(), predicted.first()  # two jobs, each holding the sample as it loaded it
    mark_finished(first, "apply_sam2/run_a")
    mark_finished(second, "apply_sam2/run_b")  # its copy predates run_a's mark
    marks = predicted.first().sam2_completed
    assert {"apply_sam2/run_a", "apply_sam2/run_b"} <= set(marks) and len(marks) == len(set(marks))
    mark_finished(first, "apply_sam2/run_a")  # marking again adds nothing
    assert predicted.first().sam2_completed == marks
    second["a_later_field"] = 1.0  # a job saving its stale copy afterwards keeps the marks
    second.save()
    assert predicted.first().sam2_completed == marks
    assert len(unfinished(predicted, "apply_sam2/run_b")) == len(predicted) - 1


def test_registering_the_plugin_and_resolving_its_forms_loads_no_torch(predicted):
    code = (
        "import sys, asyncio\n"
        "import fiftyone.plugins.context as fopc\n"
        "from fiftyone.operators.executor import resolve_type\n"
        "from fiftyone.operators.registry import OperatorRegistry\n"
        f"[ours] = [c for c in fopc.build_plugin_contexts(enabled=True) if c.name == '{PLUGIN_NAME}']\n"
        "assert not ours.errors and ours.instances, ours.errors\n"
        "for name in ('import_sav', 'apply_sam2', 'evaluate_jf', 'export_sav_predictions'):\n"
        f"    form = asyncio.run(resolve_type(OperatorRegistry(), '{PLUGIN_NAME}/' + name, "
        "{'dataset_name': 'pipeline', 'params': {}}))\n"
        "    assert form.type.properties, name\n"
        "print('torch' in sys.modules)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], env=worker_environment(), capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines()[-1] == "False"


def add_user_prompts(sample) -> None:
    """On frame 1: a box around object 0 and clicks on object 1, as a user would draw them in the App."""
    size = (sample.metadata.frame_width, sample.metadata.frame_height)
    frame = sample.frames[1]
    masks = {d.index: d.to_segmentation(frame_size=size).mask > 0 for d in frame.ground_truth.detections}
    boxes = []
    for index in (0, 1):
        x0, y0, x1, y1 = mask_box(masks[index])
        box = [x0 / size[0], y0 / size[1], (x1 - x0) / size[0], (y1 - y0) / size[1]]
        boxes.append(fo.Detection(label=f"box{index}", bounding_box=box, index=index))
    frame["user_boxes"] = fo.Detections(detections=boxes)
    inside = interior_center(masks[1])
    outside = interior_center(~masks[1])
    positive, negative = ((x / size[0], y / size[1]) for x, y in (inside, outside))
    nan = (float("nan"), float("nan"))  # FiftyOne's missing point: skipped, never a click
    frame["user_clicks"] = fo.Keypoints(
        keypoints=[fo.Keypoint(points=[positive, negative, nan], sam2_labels=[1, 0, 1], index=1)]
    )
    frame["user_clicks_by_label"] = fo.Keypoints(
        keypoints=[
            fo.Keypoint(points=[positive], index=1),
            fo.Keypoint(points=[negative], label="negative", index=1),
        ]
    )
    sample.save()


def test_a_missing_checkpoint_is_refused_before_any_sample(predicted, tmp_path):
    missing = str(tmp_path / "no_such.pt")
    with pytest.raises(ValueError, match="no_such.pt: no such checkpoint; pick one of the official names"):
        Sam2VideoModel(checkpoint=missing)
    with pytest.raises(ValueError, match="no_such.pt: no such checkpoint"):
        apply_sam2(predicted, checkpoint=missing, pred_field="never_written")
    assert not predicted.has_frame_field("never_written")


def test_sam2_video_model_with_apply_model_predicts_as_the_operator(predicted, random_checkpoint):
    one_video = predicted.limit(1)
    sample = one_video.first()
    add_user_prompts(sample)
    [prompt] = label_field_prompts(sample, "user_clicks").prompts
    size = (sample.metadata.frame_width, sample.metadata.frame_height)
    assert prompt.labels == (1, 0) and len(prompt.points) == 2  # sam2_labels honoured, the NaN point left out
    assert label_field_prompts(sample, "user_clicks_by_label").prompts[0].labels == (1, 0)
    assert all(0 <= x < size[0] and 0 <= y < size[1] for x, y in prompt.points)

    model = Sam2VideoModel(checkpoint=random_checkpoint, **TEST_MODEL)
    one_video.apply_model(model, "model_boxes", prompt_field="frames.user_boxes")
    one_video.apply_model(model, "model_clicks", prompt_field="user_clicks")  # with or without "frames."
    for prompt_field, model_field in (("frames.user_boxes", "model_boxes"), ("user_clicks_by_label", "model_clicks")):
        execute(
            "apply_sam2",
            view=one_video,
            checkpoint=random_checkpoint,
            prompt=prompt_field,
            pred_field=f"operator_{model_field}",
            **TEST_MODEL,
        )
        assert one_video.count(f"frames.{model_field}") == sample.metadata.total_frame_count
        assert_same_predictions(one_video, model_field, f"operator_{model_field}")
    assert set(one_video.distinct("frames.model_boxes.detections.index")) == {0, 1}
    assert set(one_video.distinct("frames.model_boxes.detections.label")) == {"box0", "box1"}
    with pytest.raises(ValueError, match="has no prompt in frame field 'user_boxes'"):
        predicted.skip(1).apply_model(model, "never", prompt_field="frames.user_boxes", skip_failures=False)


def test_forms_refuse_bad_input_before_anything_runs(predicted, random_checkpoint):
    good = {"checkpoint": random_checkpoint, "image_size": 256}
    assert form_errors("apply_sam2", predicted, **good) == {}
    errors = form_errors(
        "apply_sam2", predicted, checkpoint="/no/such.pt", image_size=100, prompt="gt_masks", gt_field="nothing"
    )
    assert set(errors) == {"checkpoint", "image_size", "gt_field"}
    assert "image size 100 is not one of 128..2048 in steps of 32" in errors["image_size"]
    assert "'nothing' is not a frame field" in errors["gt_field"] and "ground_truth" in errors["gt_field"]
    predicted.first().frames[1]["a_classification"] = fo.Classification(label="cat")
    predicted.first().save()
    assert "holds Classification" in form_errors("apply_sam2", predicted, prompt="a_classification")["prompt"]
    with pytest.raises(ExecutionError, match="Path: image_size. Reason: image size 100"):
        execute("apply_sam2", dataset=predicted, checkpoint=random_checkpoint, image_size=100, pred_field="never")
    assert not predicted.has_frame_field("never")

    form = resolve_form("apply_sam2", predicted, **good)
    assert "num_clicks" not in form and "num_clicks" in resolve_form("apply_sam2", predicted, prompt="gt_clicks")
    assert "gt_field" not in resolve_form("apply_sam2", predicted, prompt="user_boxes")
    assert {choice.value for choice in form["checkpoint"].view.choices} == set(OFFICIAL_CHECKPOINTS)
    assert "fiftyone delegated launch" in form["delegation_notice"].view.label
    assert form["view_target"].type.values == ["DATASET"]  # FiftyOne's target choice: nothing else to offer here
    with_selection = resolve_form("apply_sam2", predicted, selected=[predicted.first().id], **good)
    assert set(with_selection["view_target"].type.values) == {"DATASET", "SELECTED_SAMPLES"}

    execute("evaluate_jf", dataset=predicted, pred_field="sam2", eval_key="taken")
    errors = form_errors("evaluate_jf", predicted, pred_field="sam2", eval_key="taken")
    assert errors == {"eval_key": "evaluation 'taken' exists: pick another key, or tick the box to replace it"}
    assert form_errors("evaluate_jf", predicted, pred_field="sam2", eval_key="taken", overwrite=True) == {}
    assert (
        "`<video_id>/<object>/<frame>.png` (SA-V)"
        in resolve_form("export_sav_predictions", predicted)["output_dir"].view.description
    )


def test_target_view_selected_samples(predicted, random_checkpoint):
    second = predicted.skip(1).first()
    execute(
        "apply_sam2",
        dataset=predicted,
        selected=[second.id],
        view_target="SELECTED_SAMPLES",
        checkpoint=random_checkpoint,
        pred_field="selected_only",
        **TEST_MODEL,
    )
    assert predicted.match(F("frames").filter(F("selected_only").exists()).length() > 0).values("id") == [second.id]


def test_missing_or_unmatched_predictions_are_errors(predicted):
    one_video_only = predicted.first()
    one_video_only.frames[1]["partial"] = fo.Detections(detections=list(one_video_only.frames[1].sam2.detections))
    one_video_only.save()
    missing = predicted.skip(1).first().video_id
    with pytest.raises(ExecutionError, match=f"no predictions in 'partial' for 1 video.*: {missing}; .*allow_missing"):
        execute("evaluate_jf", dataset=predicted, pred_field="partial", eval_key="partial")
    assert "partial" not in predicted.list_evaluations()
    scored = execute("evaluate_jf", dataset=predicted, pred_field="partial", eval_key="partial", allow_missing=True)
    assert 0 <= scored["J&F"] < 100 and "partial" in predicted.list_evaluations()
    assert predicted.skip(1).first()["partial_JF"] == 0.0  # scored as empty masks

    other = predicted.first()
    other.frames[1]["other_objects"] = fo.Detections(
        detections=[fo.Detection(bounding_box=[0.1, 0.1, 0.2, 0.2], mask=np.ones((3, 3), bool), index=40)]
    )
    other.save()
    with pytest.raises(ExecutionError, match="'other_objects' shares no object index with ground truth 'ground_truth'"):
        execute("evaluate_jf", dataset=predicted, pred_field="other_objects", eval_key="other", allow_missing=True)
