"""apply_sam2 on an image dataset through the operator executor on a real MongoDB: boxes, Keypoint clicks and
``automatic`` give exactly the masks of direct calls to our image predictor and mask generator; reruns resume,
shards queued as delegated operations cover every image, and the form refuses bad prompts."""

import fiftyone_helpers  # noqa: F401  (configures FiftyOne before it is imported)
from fiftyone_helpers import (  # noqa: F401
    TEST_GENERATOR,
    TEST_IMAGE_SIZE,
    TEST_MODEL,
    execute,
    form_errors,
    mongod,
    queued_operations,
    random_checkpoint,
    resolve_form,
    run_as_worker,
)

import fiftyone as fo
import numpy as np
import pytest
from fiftyone.operators.executor import ExecutionError
from PIL import Image

from sam2_plugins.fiftyone_plugin import Sam2ImageModel
from sam2_plugins.fiftyone_plugin.apply_sam2 import apply_sam2
from sam2_plugins.fiftyone_plugin.completion import unfinished
from sam2_plugins.fiftyone_plugin.masks import detection_to_mask
from sam2_plugins.fiftyone_plugin.parameters import MaskGeneratorParams
from sam2_plugins.frames import image_to_rgb_uint8
from sam2_plugins.model import Sam2AutomaticMaskGenerator, Sam2ImagePredictor

pytestmark = pytest.mark.fiftyone
HEIGHT, WIDTH = 48, 64
NAN = float("nan")


def _write_images(folder) -> list[str]:
    """Two 8-bit RGB PNGs with bright rectangles and a 16-bit grayscale PNG (read by the percentile rule)."""
    rng = np.random.default_rng(7)
    paths = []
    for number in range(2):
        image = rng.integers(0, 80, (HEIGHT, WIDTH, 3), dtype=np.uint8)
        image[6 + 4 * number : 26, 8:30] = (230, 40, 40)
        image[20:44, 34 + 3 * number : 60] = (40, 220, 60)
        paths.append(folder / f"rgb{number}.png")
        Image.fromarray(image).save(paths[-1])
    deep = (rng.random((HEIGHT, WIDTH)) * 3000 + 1000).astype(np.uint16)
    deep[10:30, 12:40] = 60000
    paths.append(folder / "deep16.png")
    Image.fromarray(deep).save(paths[-1])
    assert Image.open(paths[-1]).mode.startswith("I;16")
    return [str(p) for p in paths]


def _expected_image(path: str) -> np.ndarray:
    array = np.array(Image.open(path))
    return image_to_rgb_uint8(array) if array.dtype != np.uint8 else array


@pytest.fixture(scope="module")
def images(mongod, tmp_path_factory):
    """Three images with a box field (one box with an index, one without) and a click field (a Keypoint with a
    negative click and a NaN point, and one whose only point is NaN)."""
    dataset = fo.Dataset("images-apply-sam2")
    for path in _write_images(tmp_path_factory.mktemp("images")):
        boxes = fo.Detections(
            detections=[
                fo.Detection(label="red", bounding_box=[8 / WIDTH, 6 / HEIGHT, 22 / WIDTH, 20 / HEIGHT], index=3),
                fo.Detection(label="green", bounding_box=[34 / WIDTH, 20 / HEIGHT, 26 / WIDTH, 24 / HEIGHT]),
            ]
        )
        clicks = fo.Keypoints(
            keypoints=[
                fo.Keypoint(
                    label="red",
                    points=[(18 / WIDTH, 16 / HEIGHT), (50 / WIDTH, 30 / HEIGHT), (NAN, NAN)],
                    sam2_labels=[1, 0, 1],
                ),
                fo.Keypoint(label="missing", points=[(NAN, NAN)]),
            ]
        )
        dataset.add_sample(fo.Sample(filepath=path, boxes=boxes, clicks=clicks))
    yield dataset
    dataset.delete()


@pytest.fixture(scope="module")
def predictor(random_checkpoint):
    return Sam2ImagePredictor.from_checkpoint(random_checkpoint, TEST_MODEL["config"], TEST_IMAGE_SIZE, device="cpu")


def _stored(dataset, field: str) -> dict[str, list[fo.Detection]]:
    return {sample.filepath: sample[field].detections for sample in dataset}


def _assert_mask(detection: fo.Detection, expected: np.ndarray) -> None:
    np.testing.assert_array_equal(detection_to_mask(detection, (WIDTH, HEIGHT)), expected)


def test_box_prompts_match_direct_predictor_calls(images, predictor, random_checkpoint):
    result = execute(
        "apply_sam2", dataset=images, checkpoint=random_checkpoint, prompt="boxes", pred_field="by_box", **TEST_MODEL
    )
    assert sorted(result["predicted"]) == ["deep16.png", "rgb0.png", "rgb1.png"]
    boxes = np.array([[8, 6, 30, 26], [34, 20, 60, 44]], dtype=np.float64)
    for path, detections in _stored(images, "by_box").items():
        predictor.set_image(_expected_image(path))
        masks, ious, _ = predictor.predict(box=boxes, multimask_output=False)
        expected = {3: (masks[0, 0] > 0, ious[0, 0], "red"), 4: (masks[1, 0] > 0, ious[1, 0], "green")}
        assert [d.index for d in detections] == [i for i in (3, 4) if expected[i][0].any()]
        assert detections, f"{path}: no mask at all, the comparison would mean nothing"
        for detection in detections:
            mask, iou, label = expected[detection.index]
            _assert_mask(detection, mask)
            assert detection.confidence == pytest.approx(float(iou), abs=1e-6)
            assert detection.label == label


def test_keypoint_prompts_skip_nan_points_and_take_the_best_of_three(images, predictor, random_checkpoint):
    execute(
        "apply_sam2", dataset=images, checkpoint=random_checkpoint, prompt="clicks", pred_field="by_click", **TEST_MODEL
    )
    for path, detections in _stored(images, "by_click").items():
        predictor.set_image(_expected_image(path))
        masks, ious, _ = predictor.predict(
            point_coords=np.array([[18.0, 16.0], [50.0, 30.0]]), point_labels=np.array([1, 0]), multimask_output=True
        )
        best = int(np.argmax(ious))
        assert [(d.index, d.label) for d in detections] == [(0, "red")]  # the all-NaN Keypoint gives no object
        _assert_mask(detections[0], masks[best] > 0)
        assert detections[0].confidence == pytest.approx(float(ious[best]), abs=1e-6)


def test_automatic_matches_the_mask_generator(images, predictor, random_checkpoint):
    execute(
        "apply_sam2",
        dataset=images,
        checkpoint=random_checkpoint,
        prompt="automatic",
        pred_field="everything",
        **TEST_GENERATOR,
        **TEST_MODEL,
    )
    generator = Sam2AutomaticMaskGenerator(predictor, **TEST_GENERATOR)
    found = 0
    for path, detections in _stored(images, "everything").items():
        records = generator.generate(_expected_image(path))
        assert [d.index for d in detections] == list(range(len(records)))
        for detection, record in zip(detections, records):
            _assert_mask(detection, record["segmentation"])
            assert detection.confidence == pytest.approx(record["predicted_iou"], abs=1e-6)
            assert detection.stability_score == pytest.approx(record["stability_score"], abs=1e-6)
        found += len(records)
    assert found > 0
    assert images.has_sample_field("everything.detections.stability_score")  # declared: the App filters by it


def test_rerun_resumes_and_shards_cover_every_image(images, random_checkpoint):
    from fiftyone.operators.executor import ExecutionRunState

    class Stop(Exception):
        pass

    def stop_after_the_first(fraction: float, label: str) -> None:
        if fraction > 0:
            raise Stop(label)

    with pytest.raises(Stop, match="image 2/3"):
        apply_sam2(
            images,
            checkpoint=random_checkpoint,
            prompt="boxes",
            pred_field="resumed",
            progress=stop_after_the_first,
            **TEST_MODEL,
        )
    assert len(unfinished(images, "apply_sam2/resumed")) == 2  # the first image is finished
    again = execute(
        "apply_sam2", dataset=images, checkpoint=random_checkpoint, prompt="boxes", pred_field="resumed", **TEST_MODEL
    )
    assert len(again["predicted"]) == 2
    result = execute(
        "apply_sam2",
        dataset=images,
        checkpoint=random_checkpoint,
        prompt="boxes",
        pred_field="sharded",
        num_shards=2,
        **TEST_MODEL,
    )
    operations = queued_operations(result)
    shard_ids = [op.context.request_params["params"]["shard_sample_ids"] for op in operations]
    assert sorted(i for ids in shard_ids for i in ids) == sorted(images.values("id")) and all(shard_ids)
    assert run_as_worker(operations) == [ExecutionRunState.COMPLETED] * 2
    images.reload()
    expected = _stored(images, "by_box")
    for field in ("resumed", "sharded"):
        for path, detections in _stored(images, field).items():
            assert [(d.index, d.mask.tolist(), d.bounding_box) for d in detections] == [
                (d.index, d.mask.tolist(), d.bounding_box) for d in expected[path]
            ], (field, path)


def test_form_offers_image_prompts_and_refuses_others(images, random_checkpoint):
    form = resolve_form("apply_sam2", images, prompt="automatic")
    assert {"points_per_side", "pred_iou_thresh", "stability_score_thresh"} <= set(form)
    assert "gt_field" not in form and "num_clicks" not in form
    choices = [c.value for c in form["prompt"].view.choices]
    assert choices[0] == "automatic" and {"boxes", "clicks"} <= set(choices) and "filepath" not in choices
    assert "points_per_side" not in resolve_form("apply_sam2", images, prompt="boxes")
    errors = form_errors("apply_sam2", images, prompt="gt_masks")
    assert "pass 'automatic'" in errors["prompt"] and "boxes" in errors["prompt"] and "clicks" in errors["prompt"]
    with pytest.raises(ExecutionError, match="Path: prompt. Reason: prompt 'filepath' holds no Detections"):
        execute(
            "apply_sam2", dataset=images, checkpoint=random_checkpoint, prompt="filepath", pred_field="x", **TEST_MODEL
        )
    with pytest.raises(ValueError, match="holds no Detections or Keypoints"):
        apply_sam2(images, checkpoint=random_checkpoint, prompt="filepath", pred_field="x", **TEST_MODEL)


def test_sam2_image_model_with_apply_model_predicts_as_the_operator(images, random_checkpoint):
    images.apply_model(Sam2ImageModel(random_checkpoint, **TEST_MODEL), "model_boxes", prompt_field="boxes")
    model = Sam2ImageModel(random_checkpoint, **TEST_MODEL, generator=MaskGeneratorParams(**TEST_GENERATOR))
    images.apply_model(model, "model_everything")
    for field, reference in (("model_boxes", "by_box"), ("model_everything", "everything")):
        ours, theirs = _stored(images, field), _stored(images, reference)
        for path, detections in ours.items():
            assert [(d.index, d.mask.tolist(), d.bounding_box, d.confidence) for d in detections] == [
                (d.index, d.mask.tolist(), d.bounding_box, d.confidence) for d in theirs[path]
            ], (field, path)


def test_apply_model_confidence_thresh_drops_detections_below_it_and_keeps_the_others(images, random_checkpoint):
    model = Sam2ImageModel(random_checkpoint, **TEST_MODEL)
    images.apply_model(model, "unfiltered", prompt_field="boxes", skip_failures=False)
    confidences = images.values("unfiltered.detections.confidence", unwind=True)
    threshold = (min(confidences) + max(confidences)) / 2
    images.apply_model(
        model,
        "thresholded",
        prompt_field="boxes",
        confidence_thresh=threshold,
        batch_size=2,
        num_workers=2,  # FiftyOne says it ignores it: the model reads its images itself
        skip_failures=False,
        progress=False,
    )
    images.apply_model(model, "only_red", prompt_field="boxes", classes=["red"], skip_failures=False)
    kept = dropped = 0
    for path, unfiltered in _stored(images, "unfiltered").items():
        expected = [(d.index, d.mask.tolist(), d.confidence) for d in unfiltered if d.confidence >= threshold]
        thresholded = _stored(images, "thresholded")[path]
        assert [(d.index, d.mask.tolist(), d.confidence) for d in thresholded] == expected, path
        kept, dropped = kept + len(expected), dropped + len(unfiltered) - len(expected)
        assert [d.index for d in _stored(images, "only_red")[path]] == [d.index for d in unfiltered if d.label == "red"]
    assert kept > 0 and dropped > 0


def test_apply_sam2_gives_prompts_and_predictions_their_own_colours_and_keeps_the_users(images, random_checkpoint):
    images.app_config.color_scheme = fo.ColorScheme(fields=[{"path": "user_coloured", "fieldColor": "#123456"}])
    images.save()
    for pred_field in ("user_coloured", "coloured"):
        execute(
            "apply_sam2",
            dataset=images,
            checkpoint=random_checkpoint,
            prompt="boxes",
            pred_field=pred_field,
            **TEST_MODEL,
        )
    images.reload()
    colours = {entry["path"]: entry["fieldColor"] for entry in images.app_config.color_scheme.fields}
    assert colours["user_coloured"] == "#123456"  # the user's colour is kept
    assert set(colours) == {"user_coloured", "boxes", "coloured"}
    assert len(set(colours.values())) == 3 and {colours["boxes"], colours["coloured"]} <= set(fo.app_config.color_pool)
