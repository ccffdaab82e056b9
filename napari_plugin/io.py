"""npe2 reader and writers: Labels as TIFF hyperstacks and SA-V PNG folders that re-open aligned with their image.

File > Save Selected Layers offers both writers for a Labels layer; File > Open reads our TIFFs (another program's
TIFF is left to napari's own reader) and SA-V video folders (``<obj_id>/<frame>.png``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from napari.types import LayerDataTuple

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

TIFF_SUFFIXES = (".tif", ".tiff")


def get_reader(path: str | Sequence[str]) -> Callable[[str | Sequence[str]], list[LayerDataTuple]] | None:
    """The reader of one path we wrote (a TIFF with our geometry, an SA-V video folder); None for anything else."""
    if not isinstance(path, str):
        if len(path) != 1:
            return None
        path = path[0]
    location = Path(path)
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


def _labels_layer(labels: np.ndarray, geometry: LabelsGeometry, name: str) -> LayerDataTuple:
    return labels, {"name": name, **geometry.layer_kwargs()}, "labels"


def _single(path: str | Sequence[str]) -> Path:
    return Path(path if isinstance(path, str) else path[0])
