"""evaluate_jf on a real-size SA-V video whose frames hold more than MongoDB's 16 MB document limit of masks."""

import fiftyone_helpers  # noqa: F401  (configures FiftyOne before it is imported)
from fiftyone_helpers import execute, fresh_dataset_name, mongod  # noqa: F401

import fiftyone as fo
import numpy as np
import pytest
from fiftyone.operators.executor import ExecutionError
from sav_real import HEIGHT, VIDEO_ID, WIDTH

pytestmark = pytest.mark.fiftyone

BSON_DOCUMENT_LIMIT = 16 * 1024 * 1024


def predict_noise(sample: fo.Sample, field: str) -> None:
    """Full-frame noisy masks for every ground-truth object on every frame, as random weights predict: masks that
    barely compress, so the video's frames outgrow one MongoDB document."""
    noise = np.random.default_rng(0).random((HEIGHT, WIDTH)) < 0.5
    for number, frame in sample.frames.items():
        frame[field] = fo.Detections(
            detections=[
                fo.Detection(
                    bounding_box=[0, 0, 1, 1], mask=np.roll(noise, 7 * number + d.index, axis=1), index=d.index
                )
                for d in frame.ground_truth.detections
            ]
        )
    sample.save()


def test_a_video_with_more_than_16_mb_of_frames_is_evaluated(sav_real_train, fresh_dataset_name):
    execute("import_sav", dataset_dir=str(sav_real_train), dataset_name=fresh_dataset_name, include_auto=False)
    dataset = fo.load_dataset(fresh_dataset_name)
    predict_noise(dataset.first(), "sam2")
    assert dataset.stats()["frames_bytes"] > BSON_DOCUMENT_LIMIT

    scores = execute("evaluate_jf", dataset=dataset, gt_field="ground_truth", pred_field="sam2", eval_key="jf")
    assert 0 < scores["J&F"] < 100 and dataset.list_evaluations() == ["jf"]
    assert dataset.first()["jf_JF"] == pytest.approx(scores["J&F"], abs=0.05)

    dataset.add_frame_field("never_predicted", fo.EmbeddedDocumentField, embedded_doc_type=fo.Detections)
    with pytest.raises(ExecutionError, match=f"no predictions in 'never_predicted' for 1 video.*: {VIDEO_ID}; "):
        execute("evaluate_jf", dataset=dataset, pred_field="never_predicted", eval_key="never")
    assert dataset.list_evaluations() == ["jf"]
