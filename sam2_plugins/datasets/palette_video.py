"""A video whose ground truth is one label-map PNG per annotated frame (DAVIS 2017, MOSE, LVOS, YouTube-VOS and
``vos_inference.py``'s default input): ``<annotations folder>/<frame>.png``, 0 = background, label k = object
``"k"``, 255 = DAVIS's void (not an object)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..masks import read_mask_png, read_png_palette
from .layout import FolderVideo

if TYPE_CHECKING:
    from collections.abc import Iterable

VOID_LABEL = 255
"""DAVIS marks pixels left out of scoring with label 255; it is never an object."""


class PaletteVideo(FolderVideo):
    """``frames_folder`` of JPEG frames and ``annotations_folder`` of label-map PNGs named like the frames.

    Objects are the labels found in the PNGs (all of them are read once, on first use); layouts with a meta file
    (LVOS, YouTube-VOS) override what it states.
    """

    @functools.cached_property
    def annotation_files(self) -> dict[int, Path]:
        """Frame index -> its ground-truth PNG (a PNG named after no frame is an error naming it)."""
        files = {}
        for path in sorted(self.annotations_folder.glob("*.png")):
            if not path.name.startswith("."):
                files[self.frame_index(path.stem, path)] = path
        return dict(sorted(files.items()))

    @functools.cached_property
    def _labels(self) -> dict[int, list[str]]:
        """Frame index -> the object ids in its PNG (every PNG decoded once)."""
        return {frame: list(self.split_objects(self._label_map(frame))) for frame in self.annotation_files}

    @property
    def object_ids(self) -> list[str]:
        return sorted({obj for labels in self._labels.values() for obj in labels}, key=int)

    def annotated_frames(self, obj: str | None = None) -> list[int]:
        return list(self.annotation_files)

    def first_frame(self, obj: str) -> int:
        for frame, labels in self._labels.items():
            if obj in labels:
                return frame
        raise KeyError(f"{self.annotations_folder}: object {obj!r} is in no annotation PNG of video {self.video_id}")

    def masks(self, frame: int, objects: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        found = self.split_objects(self._label_map(frame))
        return found if objects is None else {obj: found[obj] for obj in objects if obj in found}

    def split_objects(self, labels: np.ndarray) -> dict[str, np.ndarray]:
        """Object id -> its mask, for each object in the label map ``labels`` (0 and the void label are none)."""
        present = np.flatnonzero(np.bincount(labels.ravel(), minlength=VOID_LABEL + 1))
        return {str(label): labels == label for label in present if label not in (0, VOID_LABEL)}

    @functools.cached_property
    def palette(self) -> bytes | None:
        files = self.annotation_files
        return read_png_palette(next(iter(files.values()))) if files else None

    def _label_map(self, frame: int) -> np.ndarray:
        path = self.annotation_files.get(frame)
        if path is None:
            raise KeyError(f"{self.annotations_folder}: no annotation PNG for frame {self.frame_names[frame]!r}")
        return self._check_frame_size(path, read_mask_png(path))
