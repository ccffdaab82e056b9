"""Every view a FiftyOne user can make, through the operator executor as the App runs the operators.

Each operator acts on exactly what the view holds (the videos matched, selected or sorted, the objects a label
filter keeps, the frames of each clip) or refuses, naming the view and what to target instead.
"""

import fiftyone_helpers  # noqa: F401  (configures FiftyOne before it is imported)
from fiftyone_helpers import (  # noqa: F401
    TEST_GENERATOR,
    TEST_MODEL,
    execute,
    import_synthetic_val,
    mongod,
    queued_operations,
    random_checkpoint,
    run_as_worker,
)

import fiftyone as fo
import numpy as np
import pytest
from fiftyone import ViewField as F
from fiftyone.operators.executor import ExecutionError, ExecutionRunState
from PIL import Image

from sam2_plugins.metrics import frame_scores

pytestmark = pytest.mark.fiftyone

ANNOTATED_EVERY = 4
"""The synthetic val split annotates frames 1, 5, 9, 13, 17 (SA-V's 6 fps in 24 fps frames)."""


@pytest.fixture(scope="module")
def dataset(mongod, random_checkpoint, tmp_path_factory):
    """Two synthetic val videos of 17 frames, predicted once whole from ground-truth masks into 'sam2'."""
    dataset = import_synthetic_val(tmp_path_factory.mktemp("views") / "sav_val", "views", num_videos=2, seed=31)
    execute("apply_sam2", dataset=dataset, checkpoint=random_checkpoint, pred_field="sam2", **TEST_MODEL)
    return dataset


def predicted_frames(dataset, field: str) -> dict[str, dict[int, list[int]]]:
    """``{video_id: {frame number: sorted object indices}}`` of the frames where ``field`` holds Detections."""
    out = {}
    for sample in dataset.select_fields(["video_id", f"frames.{field}"]):
        frames = {n: sorted(d.index for d in f[field].detections) for n, f in sample.frames.items() if f[field]}
        if frames:
            out[sample.video_id] = frames
    return out


def masks_of(dataset, video_id: str, field: str, number: int) -> dict[int, np.ndarray]:
    """``{object index: full-frame mask}`` of ``field`` on frame ``number`` of a video."""
    sample = dataset.match(F("video_id") == video_id).first()
    size = (sample.metadata.frame_width, sample.metadata.frame_height)
    detections = sample.frames[number][field]
    return {d.index: d.to_segmentation(frame_size=size).mask > 0 for d in detections.detections}


def apply(view, checkpoint: str, pred_field: str, **params) -> dict:
    return execute("apply_sam2", view=view, checkpoint=checkpoint, pred_field=pred_field, **TEST_MODEL, **params)


def video_ids(dataset) -> list[str]:
    return dataset.values("video_id")


@pytest.mark.parametrize(
    "make_view",
    [
        lambda d: d.match(F("video_id") == video_ids(d)[1]),
        lambda d: d.sort_by("video_id", reverse=True).limit(1),
        lambda d: d.skip(1),
        lambda d: d.select(d.first().id),
        lambda d: d.select_fields("frames.ground_truth"),
        lambda d: d.exclude_fields("frames.sam2"),
    ],
    ids=["match", "sort_limit", "skip", "select", "select_fields", "exclude_fields"],
)
def test_views_of_videos_predict_exactly_their_videos(dataset, random_checkpoint, make_view, request):
    view = make_view(dataset)
    field = f"view_{request.node.callspec.id}"
    result = apply(view, random_checkpoint, field)
    expected = sorted(dataset.select(view.values("id")).values("video_id"))
    assert sorted(result["predicted"]) == expected
    whole = predicted_frames(dataset, "sam2")
    ours = predicted_frames(dataset, field)
    assert ours == {video: whole[video] for video in expected}  # same frames and objects, no other video
    for video in expected:
        for number in (1, 9, 17):
            theirs, mine = masks_of(dataset, video, "sam2", number), masks_of(dataset, video, field, number)
            assert all(np.array_equal(mine[index], theirs[index]) for index in theirs)  # pixel-exact


def test_filtered_labels_prompt_only_the_objects_kept_and_keep_the_others_predictions(dataset, random_checkpoint):
    dataset.clone_frame_field("sam2", "kept_others")
    labels = {field: dataset.count(f"frames.{field}.detections") for field in ("ground_truth", "sam2")}
    kept = dataset.filter_labels("frames.ground_truth", F("index").is_in([0, 2]))
    result = apply(kept, random_checkpoint, "kept_others", overwrite=True)
    assert sorted(result["predicted"]) == sorted(video_ids(dataset))
    whole = predicted_frames(dataset, "sam2")
    assert predicted_frames(dataset, "kept_others") == whole  # objects 1 and 3 kept, 0 and 2 predicted again
    assert {field: dataset.count(f"frames.{field}.detections") for field in labels} == labels  # other fields intact
    apply(kept, random_checkpoint, "only_kept")
    only = predicted_frames(dataset, "only_kept")
    assert {index for frames in only.values() for indices in frames.values() for index in indices} == {0, 2}
    # objects 1 and 3 are exactly the whole run's; 0 and 2 are the filtered run's
    video = video_ids(dataset)[0]
    others, theirs, again = (masks_of(dataset, video, f, 9) for f in ("kept_others", "sam2", "only_kept"))
    assert all(np.array_equal(others[i], theirs[i]) for i in (1, 3))
    assert all(np.array_equal(others[i], again[i]) for i in (0, 2) if i in again)


def test_a_clip_is_prompted_from_its_own_frames_and_predicts_only_them(dataset, random_checkpoint):
    first, second = video_ids(dataset)
    clips = dataset.to_clips([[(4, 16), (10, 12)], [(1, 8)]])
    result = apply(clips, random_checkpoint, "clipped")
    assert result["predicted"] == [f"{first} frames 4-16", f"{second} frames 1-8"]
    assert result["unprompted"] == [f"{first} frames 10-12"]  # no object shows first there
    assert "1 hold no object's first visible frame of 'ground_truth'" in result["summary"]
    clipped = predicted_frames(dataset, "clipped")
    # objects 0, 1, 3 show first on frame 1, before the first clip: only object 2 (first on 9) is prompted there
    assert set(clipped[first]) <= set(range(9, 17)) and set(map(tuple, clipped[first].values())) == {(2,)}
    assert set(clipped[second]) <= set(range(1, 9)) and clipped[second][1] == [0, 1, 3]

    # exactly the whole videos prompted on those frames only, up to each clip's last frame
    for video_id, prompt_frames in ((first, {9: [2]}), (second, {1: [0, 1, 3]})):
        video = dataset.match(F("video_id") == video_id).first()
        for number, indices in prompt_frames.items():
            kept = [d for d in video.frames[number].ground_truth.detections if d.index in indices]
            video.frames[number]["prompts_in_clip"] = fo.Detections(detections=kept)
        video.save()
    # ground-truth prompts run without the interactive post-processing (Meta's VOS protocol): the same switch here
    apply(dataset.view(), random_checkpoint, "from_clip_prompts", prompt="prompts_in_clip", apply_postprocessing=False)
    reference = predicted_frames(dataset, "from_clip_prompts")
    assert {n: reference[first][n] for n in range(9, 17)} == clipped[first]
    assert {n: reference[second][n] for n in range(1, 9)} == clipped[second]
    for video_id, numbers in ((first, range(9, 17)), (second, range(1, 9))):
        for number in numbers:
            ours = masks_of(dataset, video_id, "clipped", number)
            theirs = masks_of(dataset, video_id, "from_clip_prompts", number)
            assert all(np.array_equal(ours[i], theirs[i]) for i in ours), (video_id, number)


def test_overlapping_trajectory_clips_each_add_their_object(dataset, random_checkpoint):
    trajectories = dataset.to_trajectories("frames.ground_truth")
    first = video_ids(dataset)[0]
    one_video = trajectories.match(F("_sample_id") == dataset.match(F("video_id") == first).first()._id)
    result = apply(one_video, random_checkpoint, "per_object")
    assert len(result["predicted"]) == 4
    frames = predicted_frames(dataset, "per_object")[first]
    first_frames = {index: min(n for n, indices in frames.items() if index in indices) for index in range(4)}
    assert first_frames == {0: 1, 1: 1, 2: 9, 3: 1}  # each from its trajectory's start; object 2 appears on 9


def test_clips_jf_equals_the_full_datasets_on_the_same_frames(dataset):
    full = execute("evaluate_jf", dataset=dataset, pred_field="sam2", eval_key="full")
    clips = dataset.to_clips([[(2, 17)], [(2, 17)]])
    execute("evaluate_jf", view=clips, pred_field="sam2", eval_key="clips")
    scored = dataset.load_evaluation_results("clips").objects
    expected = {}
    for sample in dataset:
        size = (sample.metadata.frame_width, sample.metadata.frame_height)
        for masklet in sample.sav_masklets:
            # a clip is scored as a video of its frames: each object's first and last annotated frame in it skipped
            numbers = [n for n in masklet["annotated_frames"] if 2 <= n <= 17][1:-1]
            scores = []
            for number in numbers:
                masks = {}
                for field in ("ground_truth", "sam2"):
                    detections = sample.frames[number][field]
                    found = [d for d in detections.detections if d.index == masklet["index"]] if detections else []
                    masks[field] = found[0].to_segmentation(frame_size=size).mask > 0 if found else None
                empty = np.zeros((size[1], size[0]), bool)
                gt, pred = (empty if masks[f] is None else masks[f] for f in ("ground_truth", "sam2"))
                scores.append(frame_scores(gt, pred))
            expected[f"{sample.video_id} frames 2-17/{masklet['index']:03d}"] = scores
    assert scored.keys() == expected.keys()
    for key, scores in expected.items():
        assert scored[key]["J"] == pytest.approx(100 * np.mean([j for j, _ in scores]), abs=1e-9), key
        assert scored[key]["F"] == pytest.approx(100 * np.mean([f for _, f in scores]), abs=1e-9), key
    # the same frames' scores that the full dataset's run stored on its ground truth
    for sample in dataset:
        for detection in sample.frames[13].ground_truth.detections:
            key = f"{sample.video_id} frames 2-17/{detection.label}"
            assert detection.full_J == pytest.approx(expected[key][-1][0], abs=1e-12)
    assert set(full) == {"J&F", "J", "F", "summary"}


def test_a_label_filter_scores_only_the_objects_it_keeps(dataset):
    gt_labels = dataset.count("frames.ground_truth.detections")
    execute("evaluate_jf", dataset=dataset, pred_field="sam2", eval_key="all_objects")
    kept = dataset.filter_labels("frames.ground_truth", F("index").is_in([0, 2]))
    execute("evaluate_jf", view=kept, pred_field="sam2", eval_key="kept_objects")
    everything = dataset.load_evaluation_results("all_objects").objects
    scored = dataset.load_evaluation_results("kept_objects").objects
    assert scored == {key: value for key, value in everything.items() if key.endswith(("/000", "/002"))}
    assert dataset.count("frames.ground_truth.detections") == gt_labels  # the filtered-out objects are kept


def test_one_frame_clips_cannot_inflate_jf(dataset, random_checkpoint):
    # the App's "to clips" on SA-V ground truth: one clip per annotated frame
    clips = dataset.to_clips("frames.ground_truth")
    assert {tuple(support) for support in clips.values("support")} == {(n, n) for n in range(1, 18, ANNOTATED_EVERY)}
    apply(clips, random_checkpoint, "one_frame")
    # only where each object shows first (0, 1, 3 on frame 1, 2 on frame 9): never a scored frame's own answer
    assert {video: frames for video, frames in predicted_frames(dataset, "one_frame").items()} == {
        video: {1: [0, 1, 3], 9: [2]} for video in video_ids(dataset)
    }
    # on the whole dataset, the annotated frames the clips left unpredicted are named, not silently scored empty
    first = video_ids(dataset)[0]
    with pytest.raises(
        ExecutionError, match=f"no predictions on 6 frame.*in 2 video.*: {first} \\(frames 5, 13, 17\\)"
    ):
        execute("evaluate_jf", dataset=dataset, pred_field="one_frame", eval_key="one_frame")
    execute("evaluate_jf", dataset=dataset, pred_field="one_frame", eval_key="one_frame", allow_missing=True)
    for sample in dataset:  # the scored frames 5, 9, 13 have no prediction but object 2's own first frame
        scores = {(n, d.index): d.one_frame_J for n in (5, 9, 13) for d in sample.frames[n].ground_truth.detections}
        assert scores and all(score == 0.0 for (number, index), score in scores.items() if (number, index) != (9, 2))
    # on the clips view itself: the clips without predictions are named; each clip's only frame is its first and
    # last, so nothing is left to score
    with pytest.raises(ExecutionError, match=f"no predictions in 'one_frame' for 6 .*clip.*: {first} frames 5-5, "):
        execute("evaluate_jf", view=clips, pred_field="one_frame", eval_key="on_clips")
    with pytest.raises(ExecutionError, match="nothing to score in dataset 'views'.*first and last annotated frame"):
        execute("evaluate_jf", view=clips, pred_field="one_frame", eval_key="on_clips", allow_missing=True)
    assert "on_clips" not in dataset.list_evaluations()


def test_auto_masklets_on_a_view_tracks_only_its_videos(dataset, random_checkpoint):
    second = video_ids(dataset)[1]
    result = execute(
        "auto_masklets",
        view=dataset.match(F("video_id") == second),
        checkpoint=random_checkpoint,
        pred_field="auto",
        masklets_field="auto_summaries",
        **TEST_MODEL,
        **TEST_GENERATOR,
    )
    assert list(result["tracked"]) == [second]
    assert list(predicted_frames(dataset, "auto")) == [second]


FRAMES_REFUSAL = "this is a frames view \\(to_frames\\) of dataset 'views': target the video dataset"


@pytest.mark.parametrize(
    ("operator", "params", "message"),
    [
        ("apply_sam2", {"pred_field": "never"}, f"apply_sam2 works on videos .*; {FRAMES_REFUSAL}, or a clips view"),
        ("auto_masklets", {"pred_field": "never"}, f"auto_masklets works on whole videos; {FRAMES_REFUSAL}"),
        ("evaluate_jf", {"pred_field": "sam2", "eval_key": "never"}, f"evaluate_jf works on .*; {FRAMES_REFUSAL}"),
        ("export_sav_predictions", {"pred_field": "sam2"}, f"export_sav_predictions works on .*; {FRAMES_REFUSAL}"),
    ],
)
def test_frames_views_are_refused_naming_what_to_target(
    dataset, random_checkpoint, tmp_path, operator, params, message
):
    if operator in ("apply_sam2", "auto_masklets"):
        params = {**params, "checkpoint": random_checkpoint, **TEST_MODEL}
    if operator == "export_sav_predictions":
        params = {**params, "output_dir": str(tmp_path / "out")}
    for view in (dataset.to_frames(), dataset.to_frames().to_patches("ground_truth")):
        expected = message if not view._is_patches else message.split(";")[0] + "; this is a patches view"
        with pytest.raises(ExecutionError, match=expected):
            execute(operator, view=view, **params)
    assert not dataset.has_frame_field("never") and "never" not in dataset.list_evaluations()
    assert not (tmp_path / "out").exists()


def test_whole_video_operators_refuse_clips_views(dataset, random_checkpoint, tmp_path):
    clips = dataset.to_clips([[(1, 9)], [(1, 9)]])
    target = "target the videos the clips come from"
    with pytest.raises(ExecutionError, match=f"auto_masklets works on whole videos; this is a clips view .*{target}"):
        execute("auto_masklets", view=clips, checkpoint=random_checkpoint, **TEST_MODEL, **TEST_GENERATOR)
    with pytest.raises(ExecutionError, match="export_sav_predictions works on whole videos; this is a clips view"):
        execute("export_sav_predictions", view=clips, pred_field="sam2", output_dir=str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_patches_of_an_image_dataset_are_refused_with_the_image_target(mongod, random_checkpoint, tmp_path):
    path = tmp_path / "image.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(path)
    images = fo.Dataset("views-images")
    try:
        box = fo.Detection(label="cell", bounding_box=[0.1, 0.1, 0.5, 0.5])
        images.add_sample(fo.Sample(filepath=str(path), boxes=fo.Detections(detections=[box])))
        images.clone_sample_field("boxes", "found")
        images.evaluate_detections("found", gt_field="boxes", eval_key="det")
        for view in (images.to_patches("boxes"), images.to_evaluation_patches("det")):
            with pytest.raises(ExecutionError, match="this is a patches view .* target the image dataset itself"):
                apply(view, random_checkpoint, "never", prompt="boxes")
        assert not images.has_sample_field("never")
    finally:
        images.delete()


def test_a_sharded_clips_view_predicts_each_clip_once(dataset, random_checkpoint):
    first, second = video_ids(dataset)
    clips = dataset.to_clips([[(1, 4), (9, 12)], [(1, 5)]])
    operations = queued_operations(apply(clips, random_checkpoint, "sharded_clips", num_shards=2))
    clips._dataset.delete()  # FiftyOne regenerates the clips for the workers, under new clip ids
    assert run_as_worker(operations) == [ExecutionRunState.COMPLETED] * 2
    done = queued_operations({"queued": [str(operation.id) for operation in operations]})
    names = [name for operation in done for name in operation.result.result["predicted"]]
    assert sorted(names) == sorted([f"{first} frames 1-4", f"{first} frames 9-12", f"{second} frames 1-5"])
    frames = predicted_frames(dataset, "sharded_clips")
    assert {1, 9} <= set(frames[first]) <= {1, 2, 3, 4, 9, 10, 11, 12} and frames[first][9] == [2]
    assert 1 in frames[second] and set(frames[second]) <= {1, 2, 3, 4, 5}


def test_shards_of_a_filtered_view_keep_its_filter(dataset, random_checkpoint):
    one_object = dataset.filter_labels("frames.ground_truth", F("index") == 0)
    operations = queued_operations(apply(one_object, random_checkpoint, "sharded_filtered", num_shards=2))
    assert run_as_worker(operations) == [ExecutionRunState.COMPLETED] * 2
    frames = predicted_frames(dataset, "sharded_filtered")
    assert sorted(frames) == sorted(video_ids(dataset))
    assert {index for video in frames.values() for indices in video.values() for index in indices} == {0}


def test_grouped_datasets_are_refused_and_their_video_slice_predicted(dataset, random_checkpoint, tmp_path):
    video = dataset.first()
    grouped = fo.Dataset("views-grouped")
    try:
        grouped.add_group_field("group", default="left")
        group = fo.Group()
        for name in ("left", "right"):
            sample = fo.Sample(filepath=video.filepath, group=group.element(name), video_id=f"{name}_video")
            for number, frame in video.frames.items():  # its frames' JPEGs and ground truth
                sample.frames[number] = fo.Frame(filepath=frame.filepath, ground_truth=frame.ground_truth)
            grouped.add_sample(sample)
        for operator in ("apply_sam2", "auto_masklets", "evaluate_jf", "export_sav_predictions"):
            with pytest.raises(ExecutionError, match=f"{operator} works on .*grouped dataset .*select_group_slices"):
                execute(
                    operator,
                    dataset=grouped,
                    checkpoint=random_checkpoint,
                    # evaluate_jf and export_sav_predictions read an existing field: the forms let it through
                    pred_field="sam2" if operator in ("apply_sam2", "auto_masklets") else "ground_truth",
                    output_dir=str(tmp_path / "out"),
                    **TEST_MODEL,
                )
        assert not (tmp_path / "out").exists()
        result = apply(grouped.select_group_slices("right"), random_checkpoint, "sam2")
        assert result["predicted"] == ["right_video"]
        flat = grouped.select_group_slices()
        assert predicted_frames(flat, "sam2") == {"right_video": predicted_frames(dataset, "sam2")[video.video_id]}
    finally:
        grouped.delete()


def test_export_writes_only_the_videos_and_objects_the_view_holds(dataset, tmp_path):
    second = video_ids(dataset)[1]
    view = dataset.match(F("video_id") == second).filter_labels("frames.sam2", F("index") == 1)
    written = execute("export_sav_predictions", view=view, pred_field="sam2", output_dir=str(tmp_path))
    assert written["videos_written"] == 1 and sorted(p.name for p in tmp_path.iterdir()) == [second]
    with_pixels = set()
    for png in (tmp_path / second).glob("*/*.png"):
        with Image.open(png) as image:
            if np.asarray(image).any():
                with_pixels.add(png.parent.name)
    assert with_pixels == {"001"}
