"""A FiftyOne dataset with two J&F runs that differ: run A scores the ground truth against itself, run B a copy that
misses one object on one scored frame of the last video; the first video has an object that cannot be scored."""

from __future__ import annotations

from pathlib import Path

import fiftyone as fo
import numpy as np

from sam2_plugins.datasets.sav_eval import EVAL_ANNOTATIONS_FOLDER, write_sav_object_masks
from sam2_plugins.fiftyone_plugin.import_sav import import_sav
from sam2_plugins.fiftyone_plugin.jf_evaluation import evaluate_jf
from sam2_plugins.frames import frame_name
from sam2_plugins.sample_data import write_sav_val

NUM_VIDEOS = 3
NUM_FRAMES = 17  # annotated frames 0, 4, 8, 12, 16; scored 4, 8, 12
SCORED_FRAME_NUMBERS = (5, 9, 13)  # FiftyOne frame numbers of SA-V frames 4, 8, 12
MISSED_FRAME_NUMBER = 9
UNSCORED_OBJECT = "007"
RUN_A, RUN_B = "perfect", "degraded"


def write_videos(root: Path) -> list[str]:
    """SA-V val videos; the first gets an object annotated only on its first frame (skipped, so unscored)."""
    videos = write_sav_val(root, num_videos=NUM_VIDEOS, num_frames=NUM_FRAMES)
    first = videos[0]
    mask = np.zeros(first.masks.shape[2:], bool)
    mask[2:12, 2:12] = True
    write_sav_object_masks(root / EVAL_ANNOTATIONS_FOLDER, first.video_id, UNSCORED_OBJECT, {frame_name(0): mask})
    return [video.video_id for video in videos]


def degraded_copy(dataset, video_id: str) -> None:
    """Frame field ``degraded``: the ground truth, less object 0 on one scored frame of ``video_id``."""
    for sample in dataset.iter_samples(autosave=True):
        for number, frame in sample.frames.items():
            detections = frame["ground_truth"].detections if frame["ground_truth"] is not None else []
            keep = [
                d.copy()
                for d in detections
                if not (sample["video_id"] == video_id and number == MISSED_FRAME_NUMBER and d.index == 0)
            ]
            frame["degraded"] = fo.Detections(detections=keep)


def dataset_with_two_runs(root: Path, name: str):
    """The dataset (named ``name``) with runs RUN_A (evaluated first) and RUN_B; returns it and the video ids."""
    video_ids = write_videos(root)
    dataset, _ = import_sav(root, dataset_name=name)
    degraded_copy(dataset, video_ids[-1])
    evaluate_jf(dataset, "ground_truth", "ground_truth", RUN_A)
    evaluate_jf(dataset, "ground_truth", "degraded", RUN_B)
    return dataset, video_ids
