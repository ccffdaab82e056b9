"""Sample data: a synthetic fluorescent-cell time-lapse (12-bit camera in uint16) with ground-truth labels."""

from __future__ import annotations

import numpy as np

CAMERA_OFFSET = 100
CAMERA_MAX = 4095


def synthetic_cells(
    n_frames: int = 24, size: int = 256, n_cells: int = 6, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """A ``(T, size, size)`` uint16 time-lapse of drifting, breathing elliptical cells and its ``(T, size, size)``
    uint16 labels (cell k is label k + 1).

    Cells start on a jittered grid and drift slowly enough that they never touch; intensities follow a 12-bit
    camera (offset 100, Poisson shot noise, read noise, photobleaching), so the data are dark when mapped over
    the full uint16 range.
    """
    if n_cells < 1 or n_frames < 1 or size < 32:
        raise ValueError(
            f"synthetic_cells: need n_frames >= 1, n_cells >= 1 and size >= 32, got {n_frames}, {n_cells}, {size}"
        )
    rng = np.random.default_rng(seed)
    grid = int(np.ceil(np.sqrt(n_cells)))
    cell_pitch = size / grid
    slots = rng.permutation(grid * grid)[:n_cells]
    centres = np.stack([(slots // grid + 0.5) * cell_pitch, (slots % grid + 0.5) * cell_pitch], axis=1)
    radii = rng.uniform(0.22, 0.32, size=(n_cells, 2)) * cell_pitch
    angles = rng.uniform(0, np.pi, size=n_cells)
    brightness = rng.uniform(1200, 2600, size=n_cells)
    drift_amplitude = 0.12 * cell_pitch
    phases = rng.uniform(0, 2 * np.pi, size=(n_cells, 2))

    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    image = np.empty((n_frames, size, size), dtype=np.uint16)
    labels = np.zeros((n_frames, size, size), dtype=np.uint16)
    for t in range(n_frames):
        phase = 2 * np.pi * t / max(n_frames, 2)
        signal = np.zeros((size, size))
        for k in range(n_cells):
            centre = centres[k] + drift_amplitude * np.sin(phase + phases[k])
            breathing = 1.0 + 0.08 * np.sin(2 * phase + phases[k, 0])
            distance = _elliptical_distance(rows, cols, centre, radii[k] * breathing, angles[k] + 0.3 * phase)
            inside = distance <= 1.0
            labels[t][inside] = k + 1
            signal += brightness[k] * np.exp(-1.5 * distance**2) * (distance <= 1.15)
        bleaching = np.exp(-0.01 * t)
        photons = rng.poisson(signal * bleaching)
        read_noise = rng.normal(0, 6, size=(size, size))
        image[t] = np.clip(CAMERA_OFFSET + photons + read_noise, 0, CAMERA_MAX).astype(np.uint16)
    return image, labels


def _elliptical_distance(
    rows: np.ndarray, cols: np.ndarray, centre: np.ndarray, radii: np.ndarray, angle: float
) -> np.ndarray:
    """Distance to ``centre`` in units of the rotated ellipse's radii (1 on its outline)."""
    dy, dx = rows - centre[0], cols - centre[1]
    along = dx * np.cos(angle) + dy * np.sin(angle)
    across = -dx * np.sin(angle) + dy * np.cos(angle)
    return np.sqrt((along / radii[1]) ** 2 + (across / radii[0]) ** 2)


def fluorescent_cells_sample() -> list[tuple]:
    """npe2 sample-data provider: the time-lapse as an Image layer and its ground truth as a Labels layer."""
    image, labels = synthetic_cells()
    return [
        (
            image,
            {"name": "cells (16-bit)", "colormap": "gray", "contrast_limits": (CAMERA_OFFSET, int(image.max()))},
            "image",
        ),
        (labels, {"name": "cells ground truth", "opacity": 0.4, "visible": False}, "labels"),
    ]
