"""A video whose ground truth is a folder per object (SA-V val/test and ``vos_inference.py --per_obj_png_file``
input): ``<annotations folder>/<object>/<frame>.png``, one object per PNG (0/255 gray, or 0/1); objects may
overlap, and an object has a file (possibly empty) on every frame it is annotated on."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..masks import MaskFormatError, read_binary_mask_png, read_png_palette
from ..safe_names import safe_component
from .layout import FolderVideo

if TYPE_CHECKING:
    from collections.abc import Iterable


class ObjectFolderVideo(FolderVideo):
    """``frames_folder`` of JPEG frames and ``annotations_folder`` with one PNG folder per object."""

    @functools.cached_property
    def object_ids(self) -> list[str]:
        folders = sorted(entry.name for entry in self.annotations_folder.iterdir() if entry.is_dir())
        return [safe_component(name, f"{self.annotations_folder}: object folder") for name in folders]

    @functools.cached_property
    def _files(self) -> dict[str, dict[int, Path]]:
        """Object id -> frame index -> its PNG, frames in order."""
        files = {}
        for obj in self.object_ids:
            paths = [path for path in (self.annotations_folder / obj).glob("*.png") if not path.name.startswith(".")]
            frames = {self.frame_index(path.stem, path): path for path in paths}
            files[obj] = dict(sorted(frames.items()))
        return files

    def annotated_frames(self, obj: str | None = None) -> list[int]:
        if obj is not None:
            return list(self._object_files(obj))
        return sorted({frame for frames in self._files.values() for frame in frames})

    def masks(self, frame: int, objects: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        found = {}
        for obj in self.object_ids if objects is None else objects:
            path = self._object_files(obj).get(frame)
            if path is not None:
                found[obj] = self._read(path)
        return found

    def first_frame(self, obj: str) -> int:
        for frame, path in self._object_files(obj).items():
            if self._read(path).any():
                return frame
        raise MaskFormatError(
            f"{self.annotations_folder / obj}: object {obj} is empty on every annotated frame, so it has no frame to "
            "be prompted on; restore its masks or remove its folder"
        )

    @functools.cached_property
    def palette(self) -> bytes | None:
        for frames in self._files.values():
            for path in frames.values():
                return read_png_palette(path)
        return None

    def _object_files(self, obj: str) -> dict[int, Path]:
        if obj not in self._files:
            raise KeyError(f"{self.annotations_folder}: no folder for object {obj!r} in video {self.video_id}")
        return self._files[obj]

    def _read(self, path: Path) -> np.ndarray:
        return self._check_frame_size(path, read_binary_mask_png(path))
