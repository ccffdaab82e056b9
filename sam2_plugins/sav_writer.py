"""SA-V prediction folders, as the official evaluator reads them: ``root/<video>/<object>/<frame>.png`` (0/255),
every object a PNG on every frame of the video."""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image

from .atomic import atomic_write
from .frames import frame_name
from .masks import MaskFormatError, write_binary_png


class SavPredictionWriter:
    """One video's prediction folder being written; see :func:`write_sav_predictions`."""

    def __init__(self, folder: Path, num_frames: int, frame_size: tuple[int, int], objects: Iterable[str] = ()):
        self.folder = folder
        self.num_frames = num_frames
        self.frame_size = tuple(frame_size)
        self._frames_written: dict[str, set[int]] = {}
        for obj in objects:
            self._object_frames(obj)

    def add(self, frame: int, obj: str, mask: np.ndarray) -> None:
        """Write object ``obj``'s ``(H, W)`` mask on frame ``frame`` (0-based); a second mask replaces the first."""
        path = self.folder / obj / f"{frame_name(frame)}.png"
        if not 0 <= frame < self.num_frames:
            raise IndexError(f"{path}: frame {frame} is outside the video's {self.num_frames} frames")
        if np.shape(mask) != self.frame_size:
            raise MaskFormatError(
                f"{path}: mask of shape {np.shape(mask)} for frames of (height, width) {self.frame_size}; "
                "pass masks at the video's size"
            )
        write_binary_png(path, mask)
        self._object_frames(obj).add(frame)

    def fill_empty_frames(self) -> None:
        """Give every object an empty PNG on each frame it has no mask on."""
        empty = _empty_png(self.frame_size)
        for obj, frames in self._frames_written.items():
            (self.folder / obj).mkdir(exist_ok=True)
            for frame in sorted(set(range(self.num_frames)) - frames):
                (self.folder / obj / f"{frame_name(frame)}.png").write_bytes(empty)

    def _object_frames(self, obj: str) -> set[int]:
        if obj not in self._frames_written:
            if not obj or obj in (".", "..") or os.sep in obj or "/" in obj:
                raise ValueError(f"{self.folder}: object name {obj!r} is not a folder name; use e.g. '001'")
            self._frames_written[obj] = set()
        return self._frames_written[obj]


@contextmanager
def write_sav_predictions(
    root: str | os.PathLike, video: str, num_frames: int, frame_size: tuple[int, int], objects: Iterable[str] = ()
) -> Iterator[SavPredictionWriter]:
    """Write ``root/video`` in the SA-V prediction layout: ``add`` masks in the ``with`` block, in any order.

    ``frame_size`` is (height, width); ``objects`` get their folder even when no mask is added. On leaving the block
    every object gets an empty PNG on each frame it has no mask on, and the folder, written under a temporary name
    until then, replaces any previous ``root/video`` whole (objects no longer predicted go with it). An error
    leaves the previous folder as it was.
    """
    folder = Path(root) / video
    folder.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(folder) as partial:
        partial.mkdir()
        writer = SavPredictionWriter(partial, num_frames, frame_size, objects)
        yield writer
        writer.fill_empty_frames()


def _empty_png(frame_size: tuple[int, int]) -> bytes:
    """The 0/255 PNG of an empty mask, encoded once and copied to every frame that needs it."""
    buffer = io.BytesIO()
    Image.fromarray(np.zeros(frame_size, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()
