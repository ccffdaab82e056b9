"""Export of a Labels stack: one TIFF stack, or SA-V per-object PNG folders."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import tifffile


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
        tifffile.imwrite(partial, labels.astype(np.uint16), imagej=True, metadata={"axes": "TYX"})
    else:
        tifffile.imwrite(partial, labels.astype(np.uint32), metadata={"axes": "TYX"})
    os.replace(partial, path)
    return path


def _checked_labels(labels: np.ndarray, path: Path) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 3 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{path}: labels must be a (T, H, W) integer array, got {labels.dtype} {labels.shape}")
    if labels.min(initial=0) < 0:
        raise ValueError(f"{path}: labels hold negative ids; object ids must be >= 0 (0 is background)")
    return labels
