"""npe2 reader and writers: Labels as TIFF hyperstacks and SA-V PNG folders that re-open aligned with their image,
and tracking results in the Cell Tracking Challenge format (a Labels layer and a Tracks layer with its lineage).

File > Save Selected Layers offers both writers for a Labels layer, and the CTC writer for a Labels layer with its
Tracks layer (or a Labels layer alone); File > Open reads our TIFFs (another program's TIFF is left to napari's own
reader), SA-V video folders (``<obj_id>/<frame>.png``) and CTC folders (``mask000.tif``... + ``res_track.txt``, or
``man_track*`` ground truth).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from napari.types import FullLayerData, LayerDataTuple

from sam2_plugins.ctc import GROUND_TRUTH_TRACK_FILE, RESULT_TRACK_FILE, read_ctc, write_ctc_result
from sam2_plugins.lineage import Lineage

from .export import (
    SAV_GEOMETRY_FILE,
    LabelsGeometry,
    export_labels_sav,
    labels_tiff_geometry,
    read_labels_sav,
    read_labels_tiff,
    sav_object_folders,
    save_labels_tiff,
)
from .frame_axes import FrameAxes
from .lineage_layers import frame_centroids, track_data, track_rows, tracks_graph

TIFF_SUFFIXES = (".tif", ".tiff")


def get_reader(path: str | Sequence[str]) -> Callable[[str | Sequence[str]], list[LayerDataTuple]] | None:
    """The reader of one path we wrote (a TIFF with our geometry, an SA-V video folder) or of a CTC folder; None for
    anything else."""
    if not isinstance(path, str):
        if len(path) != 1:
            return None
        path = path[0]
    location = Path(path)
    if location.is_dir() and any(
        (location / name).is_file()
        for name in (RESULT_TRACK_FILE, GROUND_TRUTH_TRACK_FILE, f"TRA/{GROUND_TRUTH_TRACK_FILE}")
    ):
        return read_ctc_layers
    if location.is_dir():
        ours = sav_object_folders(location) or (location / SAV_GEOMETRY_FILE).is_file()
        return read_sav_layer if ours else None
    if location.suffix.lower() in TIFF_SUFFIXES and location.is_file():
        return read_tiff_layer if labels_tiff_geometry(location) is not None else None
    return None


def read_tiff_layer(path: str | Sequence[str]) -> list[LayerDataTuple]:
    """A Labels layer from a TIFF written by :func:`save_labels_tiff`."""
    location = _single(path)
    labels, geometry = read_labels_tiff(location)
    return [_labels_layer(labels, geometry, location.stem)]


def read_sav_layer(path: str | Sequence[str]) -> list[LayerDataTuple]:
    """A Labels layer from an SA-V video folder."""
    location = _single(path)
    labels, geometry = read_labels_sav(location)
    return [_labels_layer(labels, geometry, location.name)]


def write_labels_tiff(path: str, data: np.ndarray, meta: dict) -> list[str]:
    """Write a Labels layer as a TIFF hyperstack with its calibration and axis order."""
    geometry = LabelsGeometry.of_layer(np.asarray(data), meta)
    return [str(save_labels_tiff(data, path, geometry))]


def write_labels_sav(path: str, data: np.ndarray, meta: dict) -> list[str]:
    """Write a Labels layer's tracked frames as the SA-V video folder ``path`` (one PNG folder per object)."""
    folder = Path(path)
    geometry = LabelsGeometry.of_layer(np.asarray(data), meta)
    return [str(export_labels_sav(data, folder.parent, folder.name, geometry))]


def read_ctc_layers(path: str | Sequence[str]) -> list[LayerDataTuple]:
    """A CTC folder (result, ground truth or its TRA folder) as a Labels layer ``(T, H, W)`` and a Tracks layer whose
    graph holds the lineage's parents."""
    location = _single(path)
    frames, lineage = read_ctc(location)
    return ctc_layers(np.stack(frames), lineage, location.name)


def ctc_layers(labels: np.ndarray, lineage: Lineage, name: str, **labels_options) -> list[LayerDataTuple]:
    """``(T, H, W)`` CTC labels as a Labels layer ``name`` and their lineage as a Tracks layer (label centroids,
    napari's graph of parents)."""
    axes = {"axis_labels": ("t", "y", "x")}
    layers = [(labels, {"name": name, **axes, **labels_options}, "labels")]
    frame_axes = FrameAxes.at(labels.shape, 0)
    tracks = track_data([track_rows(t, frame_centroids(frame), frame_axes) for t, frame in enumerate(labels)])
    if len(tracks):
        graph = tracks_graph({track.track_id: track.parent for track in lineage if track.parent}, tracks)
        layers.append((tracks, {"name": f"{name} tracks", "graph": graph, **axes}, "tracks"))
    return layers


def write_ctc_layers(path: str, layer_data: list[FullLayerData]) -> list[str]:
    """Write a Labels layer (with the Tracks layer of its lineage, whose graph gives the parents) as the CTC result
    folder ``path``: ``mask000.tif``... and ``res_track.txt``. A label lost for some frames goes on as a new track
    whose parent is the part before."""
    labels = [(data, meta) for data, meta, kind in layer_data if kind == "labels"]
    if len(labels) != 1:
        raise ValueError(f"{path}: select one Labels layer (and its Tracks layer) to save as a CTC result folder")
    data, meta = labels[0]
    graph = next((meta.get("graph") or {} for _, meta, kind in layer_data if kind == "tracks"), {})
    parents = {int(child): int(parents[0]) for child, parents in graph.items() if parents}
    frames = FrameAxes.from_metadata(meta.get("metadata") or {}, np.shape(data)).frame_view(np.asarray(data))
    return [str(write_ctc_result(path, frames, parents))]


def _labels_layer(labels: np.ndarray, geometry: LabelsGeometry, name: str) -> LayerDataTuple:
    return labels, {"name": name, **geometry.layer_kwargs()}, "labels"


def _single(path: str | Sequence[str]) -> Path:
    return Path(path if isinstance(path, str) else path[0])
