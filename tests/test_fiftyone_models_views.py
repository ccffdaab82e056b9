"""Sam2ImageModel and Sam2VideoModel through ``apply_model`` on the views a FiftyOne user makes, on a real MongoDB:
frames views and the frames of videos (labels land on the frames), clips views (a clip predicts its own frames
from its own prompts), filtered views, patches views (refused, nothing written), and FiftyOne's zoo SAM 2 image
model beside ours on the same seeded weights (same calls accepted, same masks)."""

import fiftyone_helpers  # noqa: F401  (configures FiftyOne before it is imported)
from fiftyone_helpers import TEST_MODEL, execute, import_synthetic_val, mongod, random_checkpoint  # noqa: F401

import importlib
import logging

import fiftyone as fo
import numpy as np
import pytest
from fiftyone import ViewField as F
from PIL import Image

from sam2_plugins.fiftyone_plugin import Sam2ImageModel, Sam2VideoModel
from sam2_plugins.fiftyone_plugin.masks import detection_to_mask
from sam2_plugins.frames import open_frames
from sam2_plugins.model import Sam2ImagePredictor, Sam2VideoPredictor

pytestmark = pytest.mark.fiftyone
CLIP_FIRST, CLIP_LAST = 4, 7
"""The clip of each video: frames 4..7 hold the ground truth of frame 5 only (annotated: 1, 5, 9)."""


@pytest.fixture(scope="module")
def videos(mongod, tmp_path_factory):
    """Two SA-V val videos of 9 frames (ground truth on frames 1, 5, 9), each frame with its own JPEG."""
    dataset = import_synthetic_val(tmp_path_factory.mktemp("views") / "sav_val", "models-views", num_frames=9, seed=300)
    yield dataset
    dataset.delete()


@pytest.fixture(scope="module")
def image_model(random_checkpoint):
    return Sam2ImageModel(random_checkpoint, **TEST_MODEL)


@pytest.fixture(scope="module")
def image_predictor(random_checkpoint):
    return Sam2ImagePredictor.from_checkpoint(
        random_checkpoint, TEST_MODEL["config"], TEST_MODEL["image_size"], device="cpu"
    )


def _size(sample) -> tuple[int, int]:
    return sample.metadata.frame_width, sample.metadata.frame_height


def _pixel_boxes(detections: fo.Detections, width: int, height: int) -> np.ndarray:
    return np.array(
        [
            [x * width, y * height, (x + w) * width, (y + h) * height]
            for x, y, w, h in (d.bounding_box for d in detections.detections)
        ]
    )


def _assert_box_predictions(predictor, image: np.ndarray, prompts: fo.Detections, predicted: fo.Detections) -> int:
    """``predicted`` holds the mask of each prompt box that gives one, as our image predictor gives it directly."""
    height, width = image.shape[:2]
    predictor.set_image(image)
    masks, ious, _ = predictor.predict(box=_pixel_boxes(prompts, width, height), multimask_output=False)
    masks = masks.reshape(len(prompts.detections), -1, height, width)[:, 0] > 0
    expected = {d.index: (mask, float(iou)) for d, mask, iou in zip(prompts.detections, masks, ious.reshape(-1))}
    assert [d.index for d in predicted.detections] == sorted(i for i, (mask, _) in expected.items() if mask.any())
    for detection in predicted.detections:
        mask, iou = expected[detection.index]
        np.testing.assert_array_equal(detection_to_mask(detection, (width, height)), mask)
        assert detection.confidence == pytest.approx(iou, abs=1e-6)
    return len(predicted.detections)


def test_image_model_on_a_frames_view_labels_each_frame_from_its_own_image(videos, image_model, image_predictor):
    frames = videos.to_frames()
    frames.apply_model(image_model, "frame_boxes", prompt_field="ground_truth", skip_failures=False, batch_size=4)
    assert videos.has_frame_field("frame_boxes")  # a frames view's labels are the videos' frame labels
    checked = 0
    for frame in frames.exists("ground_truth"):
        image = np.array(Image.open(frame.filepath).convert("RGB"))
        checked += _assert_box_predictions(image_predictor, image, frame.ground_truth, frame.frame_boxes)
    assert checked > 0
    assert len(frames.exists("frame_boxes")) == len(frames)  # frames without prompts get empty Detections

    # a filtered frames view prompts only with the labels it keeps
    only_first = frames.filter_labels("ground_truth", F("index") == 0)
    only_first.apply_model(image_model, "first_object", prompt_field="ground_truth", skip_failures=False)
    assert set(videos.distinct("frames.first_object.detections.index")) == {0}
    assert len(videos.to_frames().exists("first_object")) == len(only_first)


def test_image_model_on_videos_segments_the_decoded_frames_into_a_frame_field(videos, image_model):
    one_video = videos.limit(1)
    one_video.apply_model(image_model, "frames.decoded", prompt_field="frames.ground_truth", skip_failures=False)
    assert videos.has_frame_field("decoded") and not videos.has_sample_field("decoded")
    sample = one_video.first()
    assert all(frame.decoded is not None for frame in sample.frames.values())
    for frame in sample.frames.values():
        prompted = {d.index for d in frame.ground_truth.detections} if frame.ground_truth else set()
        assert {d.index for d in frame.decoded.detections} <= prompted
    assert sum(len(frame.decoded.detections) for frame in sample.frames.values()) > 0
    assert len(videos.skip(1).exists("frames.decoded")) == 0  # the view's other video is untouched


def test_video_model_on_a_clips_view_predicts_only_the_clip_from_its_own_prompts(videos, random_checkpoint):
    clips = videos.to_clips((F("frame_number") >= CLIP_FIRST) & (F("frame_number") <= CLIP_LAST))
    assert clips.values("support") == [[CLIP_FIRST, CLIP_LAST]] * len(videos)
    model = Sam2VideoModel(random_checkpoint, **TEST_MODEL)
    clips.apply_model(model, "clip_masks", prompt_field="frames.ground_truth", skip_failures=False)

    predictor = Sam2VideoPredictor.from_checkpoint(
        random_checkpoint, TEST_MODEL["config"], image_size=TEST_MODEL["image_size"], device="cpu"
    )
    for sample in videos:
        labelled = sorted(n for n, frame in sample.frames.items() if frame.clip_masks is not None)
        assert labelled == [5, 6, 7]  # from the clip's first prompt (frame 5) to its end, nothing outside
        # the reference: the video prompted with frame 5's masks only (not frame 1's), tracked to the clip's end
        source = open_frames(str(sample.frames[1].filepath).rsplit("/", 1)[0])
        size = _size(sample)
        session = predictor.init_video(source)
        for detection in sample.frames[5].ground_truth.detections:
            session.add_mask(5 - 1, detection.index, detection_to_mask(detection, size))
        compared = 0
        for frame_idx, obj_ids, logits in session.propagate(max_frames=CLIP_LAST - 5):
            stored = {d.index: d for d in sample.frames[frame_idx + 1].clip_masks.detections}
            for obj_id, mask in zip(obj_ids, (logits > 0).cpu().numpy()):
                if mask.any():
                    np.testing.assert_array_equal(detection_to_mask(stored.pop(obj_id), size), mask)
                    compared += 1
            assert not stored
        session.close()
        source.close()
        assert compared > 0


def test_patches_views_are_refused_and_nothing_is_written(videos, image_model, random_checkpoint, caplog):
    patches = videos.to_frames().to_patches("ground_truth")
    with pytest.raises(ValueError, match=r"cannot be applied to a patches view .*prompt_field='ground_truth'"):
        patches.apply_model(image_model, "on_patches", prompt_field="ground_truth", skip_failures=False)
    with caplog.at_level(logging.WARNING, logger="fiftyone.core.models"):
        patches.limit(2).apply_model(image_model, "on_patches", prompt_field="ground_truth")
    assert caplog.text.count("cannot be applied to a patches view") == 2  # skip_failures: said for each patch
    assert not videos.has_frame_field("on_patches") and not patches.has_field("on_patches")
    with pytest.raises(ValueError, match="Video models can only be applied to video collections"):
        videos.to_frames().apply_model(
            Sam2VideoModel(random_checkpoint, **TEST_MODEL), "x", prompt_field="ground_truth"
        )


def _write_rgb_images(folder, count: int = 2) -> list[str]:
    rng = np.random.default_rng(11)
    paths = []
    for number in range(count):
        image = rng.integers(0, 70, (120, 160, 3), dtype=np.uint8)
        image[20 + 5 * number : 70, 20:80] = (220, 50, 40)
        image[50:110, 90 + 4 * number : 150] = (40, 200, 70)
        paths.append(str(folder / f"zoo{number}.png"))
        Image.fromarray(image).save(paths[-1])
    return paths


def test_the_zoo_sam2_image_model_and_ours_take_the_same_calls_and_give_the_same_masks(mongod, tmp_path):
    """FiftyOne's own SAM 2 image model (Meta's predictor) and ours on one seeded checkpoint at 1024 px: the same
    ``apply_model`` call, box prompts, the same masks (IoU >= 0.99, as the image parity tests) and confidences.

    The zoo keeps only the part of each mask inside its prompt box (it crops the mask to the box); ours keeps the
    whole mask, as Meta's predictor returns it, so the masks are compared inside the boxes. The zoo is run one
    image at a time: with ``batch_size`` > 1 it decodes every image of a batch from the batch's last image
    (``SAM2ImagePredictor._predict`` without ``img_idx``); ours gives the same masks at any batch size."""
    import torch
    from image_parity import CONFIG, IMAGE_SIZE, MIN_IOU, SCORE_TOLERANCE, reference_build  # the torchvision stand-in

    fosam2 = importlib.import_module("fiftyone.utils.sam2")  # imports torchvision: after the stand-in

    torch.manual_seed(0)
    checkpoint = tmp_path / "seeded.pt"
    torch.save(
        {"model": reference_build.build_sam2(f"configs/sam2.1/{CONFIG}.yaml", None, "cpu").state_dict()}, checkpoint
    )
    zoo = fosam2.SegmentAnything2ImageModel(
        fosam2.SegmentAnything2ImageModelConfig(
            {
                "entrypoint_fcn": "sam2.build_sam.build_sam2",
                "entrypoint_args": {"config_file": f"configs/sam2.1/{CONFIG}.yaml"},
                "model_path": str(checkpoint),
                "device": "cpu",
            }
        )
    )
    ours = Sam2ImageModel(str(checkpoint), config=CONFIG, image_size=IMAGE_SIZE, device="cpu")
    dataset = fo.Dataset()
    boxes = [(20, 20, 80, 70), (90, 50, 150, 110)]  # x0, y0, x1, y1 pixels of the 160 x 120 images
    for path in _write_rgb_images(tmp_path):
        prompts = [
            fo.Detection(bounding_box=[x0 / 160, y0 / 120, (x1 - x0) / 160, (y1 - y0) / 120])
            for x0, y0, x1, y1 in boxes
        ]
        dataset.add_sample(fo.Sample(filepath=path, boxes=fo.Detections(detections=prompts)))
    call = {"prompt_field": "boxes", "confidence_thresh": 0.0, "batch_size": 1, "num_workers": 0}
    for label_field, model in (("zoo", zoo), ("ours", ours)):
        dataset.apply_model(model, label_field, skip_failures=False, progress=False, **call)
    dataset.apply_model(ours, "ours_batched", skip_failures=False, progress=False, **{**call, "batch_size": 2})
    batched, single = (dataset.values(f"{field}.detections.mask", unwind=True) for field in ("ours_batched", "ours"))
    assert len(batched) == len(single) and all(np.array_equal(a, b) for a, b in zip(batched, single))
    compared = 0
    for sample in dataset:
        assert len(sample.zoo.detections) == len(sample.ours.detections)
        for (x0, y0, x1, y1), theirs, mine in zip(boxes, sample.zoo.detections, sample.ours.detections):
            inside = np.zeros((120, 160), bool)
            inside[y0:y1, x0:x1] = True
            a, b = (detection_to_mask(d, (160, 120)) & inside for d in (theirs, mine))
            assert a.any() and (a & b).sum() / (a | b).sum() >= MIN_IOU
            assert mine.confidence == pytest.approx(theirs.confidence, abs=SCORE_TOLERANCE)
            compared += 1
    assert compared == 2 * len(dataset)
    dataset.delete()


def test_apply_sam2_colours_video_ground_truth_and_predictions_apart(videos, random_checkpoint):
    execute(
        "apply_sam2",
        view=videos.limit(1),
        checkpoint=random_checkpoint,
        prompt="gt_masks",
        pred_field="sam2",
        **TEST_MODEL,
    )
    videos.reload()
    colours = {entry["path"]: entry["fieldColor"] for entry in videos.app_config.color_scheme.fields}
    assert set(colours) == {"frames.ground_truth", "frames.sam2"}
    assert colours["frames.ground_truth"] != colours["frames.sam2"]
