"""The auto_masklets operator on unlabeled videos through the operator executor on a real MongoDB: every frame's
Detections and every masklet summary equal a direct run of the library's `auto_masklets` with our generator and
predictor; progress is per video, a stopped run resumes, queued shards cover every video, bad targets are refused."""

import fiftyone_helpers  # noqa: F401  (configures FiftyOne before it is imported)
from fiftyone_helpers import (  # noqa: F401
    PLUGIN_NAME,
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
    worker_environment,
)

import subprocess
import sys

import fiftyone as fo
import numpy as np
import pytest
from fiftyone.operators.executor import ExecutionError

from sam2_plugins.auto_masklets import auto_masklets as library_auto_masklets
from sam2_plugins.fiftyone_plugin.auto_masklets import auto_masklets
from sam2_plugins.fiftyone_plugin.completion import mark_finished, unfinished
from sam2_plugins.fiftyone_plugin.masks import detection_to_mask
from sam2_plugins.fiftyone_plugin.tracks import MaskletSummary
from sam2_plugins.frames import open_frames
from sam2_plugins.model import Sam2AutomaticMaskGenerator, Sam2ImagePredictor, Sam2VideoPredictor
from sam2_plugins.sav_masklets import size_bucket, visibility_changes
from sam2_plugins.video_writer import write_mp4

pytestmark = pytest.mark.fiftyone
TRACKING = {"reseed_every": 2, "min_new_area": 20}
NUM_FRAMES, HEIGHT, WIDTH = 5, 48, 64


def _write_video(path, seed: int) -> str:
    rng = np.random.default_rng(seed)
    frames = np.repeat(rng.integers(0, 80, (1, HEIGHT, WIDTH, 3), dtype=np.uint8), NUM_FRAMES, axis=0)
    for t in range(NUM_FRAMES):
        frames[t, 6 + t : 24 + t, 8 + 2 * t : 28 + 2 * t] = (230, 40, 40)
        if t >= 2:  # an object entering on frame 2
            frames[t, 28:44, 40:58] = (40, 220, 60)
    write_mp4(iter(frames), path)
    return str(path)


@pytest.fixture(scope="module")
def videos(mongod, random_checkpoint, tmp_path_factory):
    """Two unlabeled videos tracked once into 'auto' (summaries in 'sav_masklets'): the module's baseline."""
    folder = tmp_path_factory.mktemp("auto_videos")
    dataset = fo.Dataset("auto-masklets")
    dataset.add_samples([fo.Sample(filepath=_write_video(folder / f"video{i}.mp4", seed=i)) for i in range(2)])
    result = execute(
        "auto_masklets",
        dataset=dataset,
        checkpoint=random_checkpoint,
        pred_field="auto",
        **TEST_GENERATOR,
        **TRACKING,
        **TEST_MODEL,
    )
    assert sorted(result["tracked"]) == sorted(dataset.values("id"))
    yield dataset
    dataset.delete()


def _direct_run(random_checkpoint, path: str):
    video_predictor = Sam2VideoPredictor.from_checkpoint(
        random_checkpoint, TEST_MODEL["config"], TEST_IMAGE_SIZE, device="cpu"
    )
    generator = Sam2AutomaticMaskGenerator(Sam2ImagePredictor(video_predictor.model, device="cpu"), **TEST_GENERATOR)
    frames = open_frames(path)
    tracker = library_auto_masklets(video_predictor, generator, frames, **TRACKING)
    outputs = {frame_idx: dict(zip(obj_ids, (logits > 0).numpy())) for frame_idx, obj_ids, logits in tracker}
    frames.close()
    return tracker, outputs


def _stored(dataset, field: str) -> dict:
    """``{(sample id, frame number, index): (mask, attributes)}`` of a frame field."""
    out = {}
    for sample in dataset:
        for number, frame in sample.frames.items():
            for d in frame[field].detections:
                attributes = (d.label, d.masklet_id, d.masklet_type, d.predicted_iou, d.stability_score)
                out[(sample.id, number, d.index)] = (detection_to_mask(d, (WIDTH, HEIGHT)), attributes)
    return out


def _assert_same(dataset, field: str, reference: str = "auto") -> None:
    ours, theirs = _stored(dataset, field), _stored(dataset, reference)
    assert ours.keys() == theirs.keys()
    for key, (mask, attributes) in ours.items():
        np.testing.assert_array_equal(mask, theirs[key][0], err_msg=str(key))
        assert attributes == theirs[key][1], key


def test_frames_and_summaries_equal_the_library_run(videos, random_checkpoint):
    stored = _stored(videos, "auto")
    masklets_found = 0
    for sample in videos:
        tracker, outputs = _direct_run(random_checkpoint, sample.filepath)
        assert sorted(outputs) == list(range(NUM_FRAMES))
        assert sorted(sample.frames) == list(range(1, NUM_FRAMES + 1))
        expected_keys = set()
        for frame_idx, masks in outputs.items():
            for obj_id, mask in masks.items():
                if not mask.any():
                    continue
                key = (sample.id, frame_idx + 1, obj_id)
                expected_keys.add(key)
                masklet = tracker.masklets[obj_id]
                np.testing.assert_array_equal(stored[key][0], mask, err_msg=str(key))
                assert stored[key][1] == pytest.approx(
                    (f"auto_{obj_id:03d}", obj_id, "auto", masklet.predicted_iou, masklet.stability_scores[frame_idx])
                )
        assert {key for key in stored if key[0] == sample.id} == expected_keys
        summaries = [MaskletSummary.from_dict(stored) for stored in sample.sav_masklets]
        assert [s.index for s in summaries] == [m.obj_id for m in tracker.masklets] == list(range(len(summaries)))
        for summary, masklet in zip(summaries, tracker.masklets):
            tracked = sorted(masklet.rles)
            visible = [outputs[t][masklet.obj_id].any() for t in tracked]
            areas = [int(outputs[t][masklet.obj_id].sum()) for t, shown in zip(tracked, visible) if shown]
            assert summary.annotated_frames == [t + 1 for t in tracked]
            assert summary.first_appeared_frame == (tracked[visible.index(True)] + 1 if any(visible) else None)
            assert summary.frame_count == len(tracked) and summary.visibility_changes == visibility_changes(visible)
            assert summary.size_abs == pytest.approx(np.mean(areas) if areas else 0.0)
            assert summary.size_rel == pytest.approx(summary.size_abs / (HEIGHT * WIDTH))
            assert summary.size_bucket == size_bucket(summary.size_abs)
            assert (summary.masklet_type, summary.predicted_iou) == ("auto", pytest.approx(masklet.predicted_iou))
        masklets_found += len(summaries)
    assert masklets_found > 0 and len(stored) > 0
    for name in ("masklet_id", "masklet_type", "stability_score", "predicted_iou"):  # declared: the App filters them
        assert videos.has_frame_field(f"auto.detections.{name}"), name


def test_progress_per_video_and_a_stopped_run_resumes(videos, random_checkpoint):
    first, second = videos.values("id")
    labels = []

    class Stop(Exception):
        pass

    def stop_in_the_second_video(fraction: float, label: str) -> None:
        labels.append((fraction, label))
        if label == f"{second}: frame 3/{NUM_FRAMES}":
            raise Stop(label)

    options = {"checkpoint": random_checkpoint, "pred_field": "resumed", **TEST_GENERATOR, **TRACKING, **TEST_MODEL}
    with pytest.raises(Stop):
        auto_masklets(videos, progress=stop_in_the_second_video, **options)
    assert [label for _, label in labels] == [f"{first}: frame {k}/{NUM_FRAMES}" for k in range(1, NUM_FRAMES + 1)] + [
        f"{second}: frame {k}/{NUM_FRAMES}" for k in range(1, 4)
    ]
    fractions = [fraction for fraction, _ in labels]
    assert fractions == sorted(fractions) and fractions[NUM_FRAMES - 1] == 0.5
    assert unfinished(videos, "auto_masklets/resumed").values("id") == [second]
    again = execute("auto_masklets", dataset=videos, **options)
    assert list(again["tracked"]) == [second]  # the finished video is skipped, the stopped one redone whole
    videos.reload()
    _assert_same(videos, "resumed")
    redone = execute("auto_masklets", view=videos.select(first), overwrite=True, **options)
    assert list(redone["tracked"]) == [first]


def test_shards_queued_as_delegated_operations_cover_every_video(videos, random_checkpoint):
    from fiftyone.operators.executor import ExecutionRunState

    result = execute(
        "auto_masklets",
        dataset=videos,
        checkpoint=random_checkpoint,
        pred_field="sharded",
        masklets_field="sharded_masklets",
        num_shards=2,
        **TEST_GENERATOR,
        **TRACKING,
        **TEST_MODEL,
    )
    operations = queued_operations(result)
    shard_ids = [op.context.request_params["params"]["shard_sample_ids"] for op in operations]
    assert sorted(shard_ids) == sorted([[i] for i in videos.values("id")])
    assert run_as_worker(operations) == [ExecutionRunState.COMPLETED] * 2
    videos.reload()
    _assert_same(videos, "sharded")
    assert videos.values("sharded_masklets") == videos.values("sav_masklets")


def test_sav_imports_images_and_bad_numbers_are_refused(videos, random_checkpoint, tmp_path):
    imported = fo.Dataset("auto-masklets-imported")
    imported.add_sample(fo.Sample(filepath=videos.first().filepath))
    mark_finished(imported.first(), "import_sav")
    try:
        errors = form_errors("auto_masklets", imported, checkpoint=random_checkpoint)
        assert (
            "imported from SA-V" in errors["masklets_field"] and "'auto_masklets_masklets'" in errors["masklets_field"]
        )
        assert "masklets_field" not in form_errors("auto_masklets", imported, masklets_field="mine")
        with pytest.raises(ExecutionError, match="Path: masklets_field. Reason: 1 videos"):
            execute("auto_masklets", dataset=imported, checkpoint=random_checkpoint, **TEST_MODEL)
        with pytest.raises(ValueError, match="imported from SA-V"):
            auto_masklets(imported, checkpoint=random_checkpoint, **TEST_MODEL)
    finally:
        imported.delete()
    images = fo.Dataset("auto-masklets-images")
    images.add_sample(fo.Sample(filepath=str(tmp_path / "image.png")))
    try:
        assert "not_videos" in resolve_form("auto_masklets", images)
        with pytest.raises(ValueError, match="holds images; auto_masklets tracks objects through videos"):
            auto_masklets(images, checkpoint=random_checkpoint, **TEST_MODEL)
    finally:
        images.delete()
    with pytest.raises(ValueError, match="reseed_every=0"):
        auto_masklets(videos, checkpoint=random_checkpoint, reseed_every=0, **TEST_MODEL)


def test_registering_and_resolving_the_form_loads_no_torch(videos):
    code = (
        "import sys, asyncio\n"
        "from fiftyone.operators.executor import resolve_type\n"
        "from fiftyone.operators.registry import OperatorRegistry\n"
        f"form = asyncio.run(resolve_type(OperatorRegistry(), '{PLUGIN_NAME}/auto_masklets', "
        f"{{'dataset_name': '{videos.name}', 'params': {{}}}}))\n"
        "assert {'points_per_side', 'reseed_every', 'masklets_field', 'num_shards'} <= set(form.type.properties)\n"
        "assert 'min_new_area' not in form.type.properties\n"
        f"form = asyncio.run(resolve_type(OperatorRegistry(), '{PLUGIN_NAME}/auto_masklets', "
        f"{{'dataset_name': '{videos.name}', 'params': {{'reseed_every': 8}}}}))\n"
        "assert {'new_object_iou', 'new_object_coverage', 'min_new_area'} <= set(form.type.properties)\n"
        "print('torch' in sys.modules)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], env=worker_environment(), capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines()[-1] == "False"
