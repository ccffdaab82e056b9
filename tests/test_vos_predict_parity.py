"""`sam2_plugins.vos_predict` against Meta's `tools/vos_inference.py` (run as a module on CPU, as its README says) on
the same seeded random weights and textured synthetic videos: the same PNG files, every object's mask IoU >= 0.99."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_predictor_parity import _predictors, reference_memories_in_float32  # noqa: F401 (an autouse fixture)

from sam2_plugins.datasets.sav_eval import EVAL_ANNOTATIONS_FOLDER, EVAL_FRAMES_FOLDER
from sam2_plugins.frame_names import frame_name
from sam2_plugins.masks import davis_palette
from sam2_plugins.sample_data import write_sav_val
from sam2_plugins.vos_predict import VosOptions, list_videos, predict_videos

pytestmark = pytest.mark.parity

VOS_INFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "sam2_tools" / "vos_inference.py"
NUM_FRAMES, SIZE = 9, (72, 96)
MIN_IOU = 0.99
PALETTE = bytes(range(256)) * 3  # a palette of the input's own, not the DAVIS one


@pytest.fixture(scope="module")
def meta():
    """Meta's script as a module."""
    spec = importlib.util.spec_from_file_location("vos_inference", VOS_INFERENCE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """A video in SA-V val layout (per-object folders, annotated every 4th frame), and the same as palette PNGs:
    ``Annotations_all`` with every object, ``Annotations_first`` with those on the first frame only."""
    root = tmp_path_factory.mktemp("vos")
    videos = write_sav_val(root, num_videos=1, num_frames=NUM_FRAMES, size=SIZE)
    for video in videos:
        labels = np.zeros((NUM_FRAMES, *SIZE), np.uint8)
        for obj in reversed(range(len(video.masks))):  # the lowest id on top, as in DAVIS
            labels[video.masks[obj]] = obj + 1
        on_first_frame = np.isin(labels, np.unique(labels[0]))
        for folder, kept in (("Annotations_all", labels), ("Annotations_first", np.where(on_first_frame, labels, 0))):
            (root / folder / video.video_id).mkdir(parents=True)
            for t in video.annotated_frames:
                image = Image.fromarray(kept[t], mode="P")
                image.putpalette(PALETTE)
                image.save(root / folder / video.video_id / f"{frame_name(t)}.png")
    return root


CASES = {
    "sav-default": ("Annotations_6fps", True, VosOptions()),
    "davis-default": ("Annotations_first", False, VosOptions()),
    "davis-all-masks-threshold": ("Annotations_first", False, VosOptions(score_thresh=0.5, use_all_masks=True)),
    "ytvos-later-objects": ("Annotations_all", False, VosOptions(track_later_objects=True)),
    "sav-later-objects-all-masks": ("Annotations_6fps", True, VosOptions(track_later_objects=True, use_all_masks=True)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_predict_writes_metas_files(meta, dataset, tmp_path, case):
    annotations, per_object, options = CASES[case]
    assert annotations != EVAL_ANNOTATIONS_FOLDER or per_object
    reference, ours = _predictors("sam2.1_hiera_t", apply_postprocessing=False, tmp_path=tmp_path)
    reference.non_overlap_masks = not per_object  # what vos_inference.py's main() sets through hydra
    frames_dir, masks_dir = dataset / EVAL_FRAMES_FOLDER, dataset / annotations
    run = meta.vos_separate_inference_per_object if options.track_later_objects else meta.vos_inference
    videos = sorted(p.name for p in frames_dir.iterdir())
    for video in videos:
        run(
            reference,
            str(frames_dir),
            str(masks_dir),
            str(tmp_path / "meta"),
            video,
            score_thresh=options.score_thresh,
            use_all_masks=options.use_all_masks,
            per_obj_png_file=per_object,
        )
    report = []
    written = predict_videos(ours, list_videos(frames_dir, masks_dir), tmp_path / "ours", options, report.append)
    assert [path.name for path in written] == videos and len(report) == len(videos)

    expected_files = sorted(p.relative_to(tmp_path / "meta") for p in (tmp_path / "meta").rglob("*.png"))
    assert sorted(p.relative_to(tmp_path / "ours") for p in (tmp_path / "ours").rglob("*.png")) == expected_files
    informative = same_pixels = same_bytes = 0
    for relative in expected_files:
        theirs, mine = Image.open(tmp_path / "meta" / relative), Image.open(tmp_path / "ours" / relative)
        assert mine.mode == theirs.mode == "P", relative
        assert mine.getpalette() == theirs.getpalette(), relative
        assert bytes(theirs.getpalette()[:768]) == (davis_palette() if per_object else PALETTE), relative
        expected, actual = np.asarray(theirs), np.asarray(mine)
        for label in set(np.unique(expected)) - {0}:
            union = np.count_nonzero((expected == label) | (actual == label))
            iou = np.count_nonzero((expected == label) & (actual == label)) / union
            assert iou >= MIN_IOU, f"{relative}, object {label}: IoU {iou}"
        assert set(np.unique(actual)) <= set(np.unique(expected)) | {0}, relative
        if np.array_equal(actual, expected):
            same_pixels += 1
            files = (tmp_path / "ours" / relative, tmp_path / "meta" / relative)
            same_bytes += int(files[0].read_bytes() == files[1].read_bytes())
        informative += int(0.02 < np.count_nonzero(actual) / actual.size < 0.98)
    assert informative >= len(expected_files) // 3, "too few non-trivial masks to compare"
    assert same_bytes == same_pixels > 0  # where the masks are equal, the files are byte for byte Meta's
