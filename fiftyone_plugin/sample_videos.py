"""FiftyOne video samples as VOS videos (:class:`sam2_plugins.datasets.VosVideo`), so the library's training and
held-out J&F read a dataset's ground-truth masklets as they read a benchmark folder.

An object is a track: the Detections of the ground-truth frame field sharing an ``index`` (object id ``str(index)``).
Its annotated frames are those ``sav_masklets`` lists (``import_vos`` / ``import_sav``), else every frame where the
field is set. The view decides what is read: a filtered-labels view trains on the objects it keeps.
"""

from __future__ import annotations

from collections.abc import Iterable

import fiftyone as fo
import numpy as np

from sam2_plugins.datasets import VosVideo
from sam2_plugins.frames import FrameSource, open_frames

from .masks import detection_to_mask
from .tracks import annotated_frames, detections_by_frame, frame_index, frame_size, video_name
from .video_predictions import frames_source


class SampleVideo(VosVideo):
    """One video sample's frames and ground-truth masklets in ``gt_field``; labels are read when it is made."""

    layout = "fiftyone"
    split = None

    def __init__(self, sample: fo.Sample, gt_field: str):
        self.video_id = video_name(sample)
        self.sample_id = str(sample.id)
        self._source = frames_source(sample)
        self._size = frame_size(sample)
        by_frame = detections_by_frame(sample, gt_field)
        self._detections = {frame_index(number): objects for number, objects in by_frame.items()}
        self._annotated = {
            str(index): [frame_index(number) for number in numbers]
            for index, numbers in annotated_frames(sample, by_frame).items()
        }

    def frames(self) -> FrameSource:
        return open_frames(self._source)

    @property
    def frame_size(self) -> tuple[int, int]:
        return self._size[1], self._size[0]

    @property
    def object_ids(self) -> list[str]:
        return [obj for obj in self._annotated if self._visible_frames(obj)]

    def annotated_frames(self, obj: str | None = None) -> list[int]:
        if obj is not None:
            return self._annotated[obj]
        return sorted({t for obj in self.object_ids for t in self._annotated[obj]})

    def masks(self, frame: int, objects: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        on_frame = self._detections.get(frame, {})
        wanted = self.object_ids if objects is None else objects
        return {obj: detection_to_mask(on_frame[int(obj)], self._size) for obj in wanted if int(obj) in on_frame}

    def first_frame(self, obj: str) -> int:
        return self._visible_frames(obj)[0]

    def _visible_frames(self, obj: str) -> list[int]:
        index = int(obj)
        return sorted(t for t, objects in self._detections.items() if index in objects)


def sample_videos(samples: fo.core.collections.SampleCollection, gt_field: str) -> list[SampleVideo]:
    """Every video of ``samples`` holding at least one ground-truth masklet in ``gt_field``, in view order."""
    videos = [SampleVideo(sample, gt_field) for sample in samples.iter_samples()]
    return [video for video in videos if video.object_ids]
