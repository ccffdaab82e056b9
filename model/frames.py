"""What a video session reads: any random-access sequence of ``(H, W, 3)`` uint8 RGB frames.

The core does not open files. `sam2_plugins.open_frames` turns folders, videos, TIFF stacks and 16-bit or float
arrays into a `FrameSequence`; a uint8 ``(T, H, W, 3)`` array is accepted as it is.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class FrameSequence(Protocol):
    """Frames decoded on demand: ``len``, ``seq[i]`` -> ``(H, W, 3)`` uint8 RGB, and the frame size."""

    height: int
    width: int

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> np.ndarray: ...


class RgbArrayFrames:
    """A ``(T, H, W, 3)`` uint8 array (or array-like) viewed as a `FrameSequence`."""

    def __init__(self, array: np.ndarray) -> None:
        if array.ndim != 4 or array.shape[-1] != 3 or array.dtype != np.uint8:
            raise TypeError(
                f"frames array of shape {tuple(array.shape)} and dtype {array.dtype}: the model reads (T, H, W, 3) "
                "uint8 RGB; open other data with sam2_plugins.open_frames (grayscale, 16-bit, float, TIFF, video)"
            )
        self.array = array
        self.height, self.width = int(array.shape[1]), int(array.shape[2])

    def __len__(self) -> int:
        return int(self.array.shape[0])

    def __getitem__(self, index: int) -> np.ndarray:
        return np.asarray(self.array[index])

    def __repr__(self) -> str:
        return f"RgbArrayFrames(shape={tuple(self.array.shape)})"


def as_frame_sequence(frames: FrameSequence | np.ndarray) -> FrameSequence:
    """`frames` itself when it is a frame sequence, a uint8 RGB array wrapped, anything else a `TypeError`."""
    if isinstance(frames, FrameSequence):
        return frames
    if isinstance(frames, np.ndarray):
        return RgbArrayFrames(frames)
    raise TypeError(
        f"cannot read frames from {type(frames).__name__}; pass a frame sequence, e.g. "
        "sam2_plugins.open_frames('video.mp4' | 'frames/' | 'stack.tif' | array)"
    )
