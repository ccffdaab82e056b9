"""The lineage of a session in napari: a Tracks layer (a track per label, napari's graph of parents) that follows
the Labels layer, and daughters coloured near their mother in the Labels layer."""

from __future__ import annotations

import colorsys
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from napari.layers import Labels, Tracks
from napari.utils.colormaps import DirectLabelColormap
from napari.viewer import Viewer
from scipy import ndimage

from sam2_plugins.division import Divisions

from .frame_axes import FrameAxes
from .tracking import TrackingSession

DAUGHTER_HUE_SHIFT = 0.06
"""How far (of the colour wheel) each daughter's hue lies from its mother's, one each way."""
TRACK_DIMENSIONS = (3, 4)
"""Labels layers whose lineage a Tracks layer can show: (T, Y, X) and (T, Z, Y, X) (napari's Tracks layer)."""
COLORED_AHEAD = 64
"""Labels above the largest one in use that keep napari's colours while daughters are coloured (the next objects'
clicks show in their label's colour)."""


def frame_centroids(frame_labels: np.ndarray) -> dict[int, tuple[float, float]]:
    """``{label: (y, x)}`` centre of mass of every label of one ``(H, W)`` label image."""
    ids = np.unique(frame_labels)
    ids = ids[ids != 0]
    centres = ndimage.center_of_mass(np.ones(frame_labels.shape), frame_labels, ids)
    return {int(label): (float(y), float(x)) for label, (y, x) in zip(ids, centres)}


def track_rows(frame_idx: int, centroids: Mapping[int, tuple[float, float]], frame_axes: FrameAxes) -> np.ndarray:
    """napari Tracks rows of one frame's ``{label: (y, x)}`` centroids: ``(track_id, *coordinates in the Labels
    layer's axes)``."""
    rows = np.zeros((len(centroids), len(frame_axes.shape) + 1))
    rows[:, 0] = list(centroids)
    if frame_axes.sequence is not None:
        rows[:, 1 + frame_axes.sequence] = frame_idx
    for axis, index in frame_axes.fixed:
        rows[:, 1 + axis] = index
    rows[:, [1 + axis for axis in frame_axes.plane]] = np.array(list(centroids.values())).reshape(-1, 2)
    return rows


def track_data(frame_rows: Sequence[np.ndarray]) -> np.ndarray:
    """napari Tracks data of every frame's `track_rows`, by id then frame."""
    data = np.concatenate(frame_rows)
    return data[np.lexsort(data[:, ::-1].T)] if len(data) else data


def tracks_graph(parents: Mapping[int, int], data: np.ndarray) -> dict[int, list[int]]:
    """napari's graph of parents, ``{child: [parent]}``, for the children and parents that have a track in ``data``."""
    present = set(np.unique(data[:, 0]).astype(int).tolist())
    return {child: [parent] for child, parent in parents.items() if child in present and parent in present}


def daughter_colors(base_color, divisions: Divisions) -> dict[int, np.ndarray]:
    """RGBA of every object of ``divisions``: a mother keeps ``base_color(label)`` (unless it is a daughter itself),
    its daughters take its hue turned by ``DAUGHTER_HUE_SHIFT`` one way and the other."""
    colors: dict[int, np.ndarray] = {}

    def color_of(obj_id: int) -> np.ndarray:
        if obj_id not in colors:
            colors[obj_id] = np.asarray(base_color(obj_id), dtype=np.float32).reshape(4)
        return colors[obj_id]

    for division in divisions:  # in the order made: a mother divided before her daughters did
        red, green, blue, alpha = color_of(division.mother)
        hue, saturation, value = colorsys.rgb_to_hsv(red, green, blue)
        for shift, daughter in zip((-DAUGHTER_HUE_SHIFT, DAUGHTER_HUE_SHIFT), division.daughters):
            rgb = colorsys.hsv_to_rgb((hue + shift) % 1.0, max(saturation, 0.5), max(value, 0.5))
            colors[daughter] = np.array([*rgb, alpha], dtype=np.float32)
    return colors


class LineageLayers:
    """Keeps a Tracks layer and the Labels layer's colours in step with a tracking session's labels (its ``(T, H,
    W)`` view of the Labels layer's data) and divisions.

    Call `refresh` with the frames that changed: the Tracks layer is rebuilt from per-frame rows kept here, so a
    propagated frame costs one frame's centroids.
    """

    def __init__(
        self, viewer: Viewer, labels_layer: Labels, tracking: TrackingSession, frame_axes: FrameAxes, grid: Mapping
    ):
        self.viewer = viewer
        self.labels_layer = labels_layer
        self.tracking = tracking
        self.frame_axes = frame_axes
        self._grid = dict(grid)
        self._base_colormap = labels_layer.colormap
        self._rows = [track_rows(0, {}, frame_axes)] * len(tracking.labels)
        self.tracks_layer: Tracks | None = None
        self._colored: tuple | None = None
        self.refresh()

    def refresh(self, frames: Iterable[int] | None = None) -> None:
        """Re-read ``frames`` (every frame when None) and update the Tracks layer and the daughters' colours."""
        labels = self.tracking.labels
        for frame_idx in range(len(labels)) if frames is None else frames:
            centroids = frame_centroids(np.asarray(labels[frame_idx]))
            self._rows[frame_idx] = track_rows(frame_idx, centroids, self.frame_axes)
        self._update_tracks()
        self._update_colors()

    def _update_tracks(self) -> None:
        if self.frame_axes.sequence is None or len(self.frame_axes.shape) not in TRACK_DIMENSIONS:
            return  # a single 2D image has no tracks; napari's Tracks layer holds 2D+t and 3D+t only
        data = track_data(self._rows)
        if not len(data):  # napari's Tracks layer can't hold no track
            if self.tracks_layer is not None and self.tracks_layer in self.viewer.layers:
                self.viewer.layers.remove(self.tracks_layer)
            self.tracks_layer = None
            return
        graph = tracks_graph(self.tracking.divisions.parents(), data)
        if self.tracks_layer is None:
            self.tracks_layer = Tracks(
                data, graph=graph, name=f"{self.labels_layer.name} tracks", tail_length=30, **self._grid
            )
        else:
            self.tracks_layer.graph = {}
            self.tracks_layer.data = data
            self.tracks_layer.graph = graph
        layers = self.viewer.layers
        if self.tracks_layer not in layers:  # above the labels, below the prompts; the user's selection stays
            selected, active = set(layers.selection), layers.selection.active
            above_labels = layers.index(self.labels_layer) + 1 if self.labels_layer in layers else len(layers)
            layers.insert(above_labels, self.tracks_layer)
            layers.selection.update(selected)
            layers.selection.difference_update({self.tracks_layer})
            layers.selection.active = active

    def _update_colors(self) -> None:
        """Daughters near their mother in the Labels layer; labels outside a lineage keep napari's colours."""
        divisions = self.tracking.divisions
        if not len(divisions):
            if self.labels_layer.colormap is not self._base_colormap:
                self.labels_layer.colormap = self._base_colormap
            self._colored = None
            return
        base = self._base_colormap.map
        in_use = max((int(rows[:, 0].max(initial=0)) for rows in self._rows), default=0)
        largest = max(in_use, int(self.labels_layer.selected_label))
        key = (largest, tuple(divisions))
        if key == self._colored:  # a new colormap redraws every label: only when the colours change
            return
        self._colored = key
        labels = np.arange(1, largest + COLORED_AHEAD + 1)
        colors = dict(zip(labels.tolist(), base(labels)))
        colors.update(daughter_colors(base, divisions))
        self.labels_layer.colormap = DirectLabelColormap(color_dict={None: np.zeros(4), **colors})
