"""Export of a Labels stack: one TIFF stack, or SA-V per-object PNG folders."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import tifffile

from sam2_plugins.sav_writer import write_sav_predictions


def save_labels_tiff(labels: np.ndarray, path: str | os.PathLike) -> Path:
    """Write ``(T, H, W)`` labels as a TIFF stack (uint16 ImageJ hyperstack, uint32 when ids exceed 65535).

    The file is written beside ``path`` first and renamed at the end, so an existing file survives a failure.
    """
    path = Path(path)
    labels = _checked_labels(labels, path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{path}: the folder {path.parent} does not exist; create it or pick another path")
    partial = path.with_name(f".{path.name}.partial")
    if labels.max(initial=0) <= np.iinfo(np.uint16).max:
        tifffile.imwrite(
            partial,
            labels.astype(np.uint16, copy=False),
            imagej=True,
            photometric="minisblack",
            metadata={"axes": "TYX"},
        )
    else:
        tifffile.imwrite(
            partial, labels.astype(np.uint32, copy=False), photometric="minisblack", metadata={"axes": "TYX"}
        )
    os.replace(partial, path)
    return path


def save_labels_sav(labels: np.ndarray, root: str | os.PathLike, video_name: str) -> Path:
    """Write ``(T, H, W)`` labels in the SA-V prediction layout: ``root/video_name/<obj:03d>/<frame>.png``.

    Every object present on some frame gets a 0/255 PNG for every frame (empty where it is absent), which is what
    ``sam2-plugins evaluate`` reads; the video folder replaces a previous one whole once written
    (:func:`sam2_plugins.sav_writer.write_sav_predictions`). The stack is read once, a frame at a time.
    """
    root = Path(root)
    labels = _checked_labels(labels, root)
    with write_sav_predictions(root, video_name, len(labels), labels.shape[1:]) as writer:
        for frame_idx, frame_labels in enumerate(labels):
            for obj_id in np.unique(frame_labels):
                if obj_id != 0:
                    writer.add(frame_idx, f"{int(obj_id):03d}", frame_labels == obj_id)
    return root / video_name


def _checked_labels(labels: np.ndarray, path: Path) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 3 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{path}: labels must be a (T, H, W) integer array, got {labels.dtype} {labels.shape}")
    if labels.min(initial=0) < 0:
        raise ValueError(f"{path}: labels hold negative ids; object ids must be >= 0 (0 is background)")
    return labels
