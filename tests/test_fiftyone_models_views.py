"""Sam2ImageModel and Sam2VideoModel through ``apply_model`` on the views a FiftyOne user makes, on a real MongoDB:
frames views and the frames of videos (labels land on the frames), clips views (a clip predicts its own frames
from its own prompts), filtered views, patches views (refused, nothing written), and FiftyOne's zoo SAM 2 image
model beside ours on the same seeded weights (same calls accepted, same masks)."""

import fiftyone_helpers  # noqa: F401  (configures FiftyOne before it is imported)
from fiftyone_helpers import TEST_MODEL, import_synthetic_val, mongod, random_checkpoint  # noqa: F401

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
        # the reference: the clip's frames alone as a video, prompted with frame 5's masks only
        folder = str(sample.frames[1].filepath).rsplit("/", 1)[0]
        with open_frames(folder) as source:
            clip = np.stack([source[n - 1] for n in range(CLIP_FIRST, CLIP_LAST + 1)])
        size = _size(sample)
        session = predictor.init_video(clip)
        for detection in sample.frames[5].ground_truth.detections:
            session.add_mask(5 - CLIP_FIRST, detection.index, detection_to_mask(detection, size))
        compared = 0
        for frame_idx, obj_ids, logits in session.propagate():
            stored = {d.index: d for d in sample.frames[CLIP_FIRST + frame_idx].clip_masks.detections}
            for obj_id, mask in zip(obj_ids, (logits > 0).cpu().numpy()):
                if mask.any():
                    np.testing.assert_array_equal(detection_to_mask(stored.pop(obj_id), size), mask)
                    compared += 1
            assert not stored
        session.close()
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
