"""How an N-D image layer is read as a video: one sequence axis, a 2D frame plane, every other axis at one index.

A (T, Y, X) time-lapse or a (Z, Y, X) z-stack is a video along its first axis; a (Y, X, Z) stack along its last. A
(T, Z, Y, X) stack propagates along T at one Z, or along Z at one T. The frame plane is the last two axes other
than the sequence axis (what the 2D view shows once the sequence axis is a slider). A single 2D image is a video
of one frame (``sequence`` None).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sam2_plugins.frames import FrameSource, open_frames

METADATA_KEY = "sam2_frame_axes"
"""Key of a Labels layer's ``metadata`` recording the frame axes it was tracked on (read by the writers)."""


@dataclass(frozen=True)
class FrameAxes:
    """A layer of shape ``shape`` (the RGB channel axis excluded) read along ``sequence`` (None: one 2D image),
    ``fixed`` axes indexed."""

    shape: tuple[int, ...]
    sequence: int | None
    fixed: tuple[tuple[int, int], ...] = ()

    @classmethod
    def at(cls, shape: Sequence[int], sequence_axis: int, position: Sequence[float] = ()) -> FrameAxes:
        """Frames along ``sequence_axis``; axes beyond the sequence and the plane stay at ``position`` (data
        coordinates, one per axis; index 0 where it is missing). A 2D layer is one frame (``sequence_axis`` unused).
        """
        shape = tuple(int(n) for n in shape)
        if len(shape) == 2:
            return cls(shape, None)
        if len(shape) < 2:
            raise ValueError(f"a {len(shape)}D layer {shape} is no image; SAM 2 needs 2D frames")
        if not -len(shape) <= sequence_axis < len(shape):
            raise ValueError(f"sequence axis {sequence_axis} does not exist in a {len(shape)}D layer {shape}")
        sequence = sequence_axis % len(shape)
        others = [axis for axis in range(len(shape)) if axis != sequence]
        fixed = []
        for axis in others[:-2]:
            index = int(np.rint(position[axis])) if axis < len(position) else 0
            fixed.append((axis, min(max(index, 0), shape[axis] - 1)))
        return cls(shape, sequence, tuple(fixed))

    @classmethod
    def from_metadata(cls, metadata: dict, shape: Sequence[int]) -> FrameAxes:
        """The frame axes recorded in a layer's ``metadata``; a layer without them is a video along axis 0."""
        recorded = metadata.get(METADATA_KEY)
        if recorded is None or len(shape) == 2:
            return cls.at(shape, 0)
        return cls(tuple(int(n) for n in shape), int(recorded["sequence"]), tuple(map(tuple, recorded["fixed"])))

    def to_metadata(self) -> dict:
        """What :meth:`from_metadata` reads back (JSON-serializable)."""
        return {METADATA_KEY: {"sequence": self.sequence, "fixed": [list(pair) for pair in self.fixed]}}

    @property
    def plane(self) -> tuple[int, int]:
        """The (y, x) axes of a frame."""
        fixed_axes = {axis for axis, _ in self.fixed}
        y, x = (axis for axis in range(len(self.shape)) if axis != self.sequence and axis not in fixed_axes)
        return y, x

    @property
    def num_frames(self) -> int:
        return 1 if self.sequence is None else self.shape[self.sequence]

    def frame_view(self, array: np.ndarray) -> np.ndarray:
        """``array`` (of the layer's shape, trailing channels allowed) as ``(T, H, W, ...)``: a view for numpy arrays,
        so painting it paints the layer."""
        if self.sequence is None:
            return array[None]
        selection: list[int | slice] = [slice(None)] * array.ndim
        for axis, index in self.fixed:
            selection[axis] = index
        sequence = self.sequence - sum(axis < self.sequence for axis, _ in self.fixed)
        return np.moveaxis(array[tuple(selection)], sequence, 0)

    def open_frames(self, data) -> FrameSource:
        """The image layer's ``data`` as a frame source, read one frame at a time (lazy arrays stay lazy)."""
        if self.sequence is None:
            return open_frames(data[None])
        return open_frames(data, axis=self.sequence, fixed=dict(self.fixed))

    def frame_of(self, coords: np.ndarray) -> tuple[int, np.ndarray] | None:
        """(frame index, in-plane (y, x)) of a point ``(ndim,)`` or of a shape's vertices ``(n, ndim)`` in data
        coordinates; None when it lies off the fixed indices (another Z of a 4D stack)."""
        coords = np.asarray(coords, dtype=float)
        for axis, index in self.fixed:
            if np.any(np.rint(coords[..., axis]) != index):
                return None
        frame = 0 if self.sequence is None else int(np.rint(np.mean(coords[..., self.sequence])))
        return frame, coords[..., list(self.plane)]

    def axis_letters(self, labels: Sequence[str] = ()) -> str:
        """One TIFF axis letter per axis: the layer's ``axis_labels`` when they are distinct letters of TZCYX with Y
        and X on the plane, else Y, X on the plane and T, Z, C on the other axes in their order (the file's layout
        is the image's, whichever axis the session tracked)."""
        given = "".join(label.upper() for label in labels)
        if (
            len(given) == len(self.shape)
            and set(given) <= set("TZCYX")
            and len(set(given)) == len(given)
            and (given[self.plane[0]], given[self.plane[1]]) == ("Y", "X")
        ):
            return given
        letters = dict(zip(self.plane, "YX"))
        letters.update(zip((axis for axis in range(len(self.shape)) if axis not in self.plane), "TZC"))
        if len(letters) != len(self.shape):
            raise ValueError(f"a {len(self.shape)}D layer has more axes than a TIFF hyperstack (T, Z, C, Y, X)")
        return "".join(letters[axis] for axis in range(len(self.shape)))


def axis_names(layer_labels: Sequence[str], world_labels: Sequence[str] = ()) -> tuple[str, ...]:
    """A name per axis of a layer for the user: its axis label (T, Z...), else the viewer's label of that axis (a
    slider the user renamed; the viewer's last axes are the layer's), else "axis <i>". napari's default labels
    ("-3", "0"...) are numbers, not names."""
    offset = len(world_labels) - len(layer_labels)
    names = []
    for axis, label in enumerate(layer_labels):
        world = world_labels[axis + offset] if axis + offset >= 0 else ""
        given = [str(name) for name in (label, world) if str(name).strip() and not str(name).lstrip("-").isdigit()]
        names.append(given[0] if given else f"axis {axis}")
    return tuple(names)
