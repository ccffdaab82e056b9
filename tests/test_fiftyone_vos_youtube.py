"""import_vos -> apply_sam2 -> export on a YouTube-VOS valid root of real DAVIS masks, on a real MongoDB: frames
named every 5th, an object appearing on frame 3 with its only PNG there, hidden ground truth (a submission zip,
not a local score)."""

import fiftyone_helpers  # noqa: F401  (configures FiftyOne before it is imported)
from fiftyone_helpers import TEST_MODEL, execute, form_errors, mongod, random_checkpoint  # noqa: F401

import zipfile
from pathlib import Path

import fiftyone as fo
import numpy as np
import pytest
from fiftyone.operators.executor import ExecutionError
from PIL import Image
from real_mask_roots import LATE_FRAMES, LATE_OBJECT, NUM_FRAMES, ground_truth, write_youtube_vos_root, ytvos_name

from sam2_plugins.fiftyone_plugin.tracks import masklet_summaries

pytestmark = pytest.mark.fiftyone

SEQUENCE, LATE_LABEL = LATE_OBJECT


@pytest.fixture(scope="module")
def ytvos(shared_fixtures, tmp_path_factory) -> Path:
    return write_youtube_vos_root(shared_fixtures, tmp_path_factory.mktemp("ytvos") / "youtube-vos")


@pytest.fixture(scope="module")
def imported(mongod, ytvos) -> fo.Dataset:
    result = execute("import_vos", dataset_dir=str(ytvos))
    assert (result["dataset"], result["layout"], result["imported"]) == ("youtube-vos-valid", "youtube-vos", [SEQUENCE])
    return fo.load_dataset(result["dataset"])


def test_frames_keep_their_names_and_each_object_starts_on_its_own_png(imported, ytvos, shared_fixtures):
    sample = imported.first()
    assert (sample.vos_layout, sample.video_split) == ("youtube-vos", "valid")
    assert [Path(frame.filepath).stem for frame in sample.frames.values()] == [ytvos_name(t) for t in range(NUM_FRAMES)]
    summaries = {m.object_id: m for m in masklet_summaries(sample)}
    late = summaries[str(LATE_LABEL)]
    assert (late.first_appeared_frame, late.annotated_frames) == (LATE_FRAMES + 1, [LATE_FRAMES + 1])
    assert summaries["2"].first_appeared_frame == 1
    size = (sample.metadata.frame_width, sample.metadata.frame_height)
    annotated = {n: f.ground_truth for n, f in sample.frames.items() if f.ground_truth is not None}
    assert sorted(annotated) == [1, LATE_FRAMES + 1]
    [late_detection] = annotated[LATE_FRAMES + 1].detections
    labels = ground_truth(shared_fixtures, SEQUENCE, LATE_FRAMES)
    assert late_detection.label == str(LATE_LABEL)
    assert np.array_equal(late_detection.to_segmentation(frame_size=size).mask > 0, labels == LATE_LABEL)


def test_sam2_predicts_the_late_object_from_its_first_annotated_frame(imported, random_checkpoint):
    execute(
        "apply_sam2", dataset=imported, checkpoint=random_checkpoint, prompt="gt_masks", pred_field="sam2", **TEST_MODEL
    )
    sample = imported.first()
    late = next(m for m in masklet_summaries(sample) if m.object_id == str(LATE_LABEL))
    predicted = {n: {d.index for d in f.sam2.detections} for n, f in sample.frames.items() if f.sam2 is not None}
    assert all(late.index not in predicted.get(n, set()) for n in range(1, late.first_appeared_frame))
    size = (sample.metadata.frame_width, sample.metadata.frame_height)
    frame = sample.frames[late.first_appeared_frame]
    [prompt] = [d for d in frame.ground_truth.detections if d.index == late.index]
    [answer] = [d for d in frame.sam2.detections if d.index == late.index]
    gt_mask, mask = (d.to_segmentation(frame_size=size).mask > 0 for d in (prompt, answer))
    assert np.count_nonzero(gt_mask & mask) / np.count_nonzero(gt_mask | mask) > 0.9


def test_hidden_ground_truth_is_not_scored_here_and_exports_as_the_server_takes_it(imported, ytvos, tmp_path):
    with pytest.raises(ExecutionError, match="scored by its benchmark's server .*submission_zip"):
        execute("evaluate_jf", dataset=imported, pred_field="ground_truth", eval_key="never")
    assert imported.list_evaluations() == []
    assert (
        "scored by its benchmark's server"
        in form_errors("evaluate_jf", imported, pred_field="ground_truth")["protocol"]
    )
    out, archive = tmp_path / "pred", tmp_path / "submission.zip"
    result = execute(
        "export_sav_predictions",
        dataset=imported,
        pred_field="ground_truth",
        output_dir=str(out),
        submission_zip=str(archive),
    )
    assert result["videos_written"] == 1 and str(archive) in result["summary"]
    names = [f"Annotations/{SEQUENCE}/{ytvos_name(t)}.png" for t in range(NUM_FRAMES)]
    with zipfile.ZipFile(archive) as submission:
        assert sorted(submission.namelist()) == names
        with submission.open(names[LATE_FRAMES]) as png:
            labels = np.asarray(Image.open(png))
    source = Image.open(ytvos / "valid" / "Annotations" / SEQUENCE / f"{ytvos_name(LATE_FRAMES)}.png")
    assert np.array_equal(labels, np.asarray(source))
