"""A synthetic time-lapse of dividing cells with its ground-truth lineage, in the Cell Tracking Challenge format.

Round cells wander, push each other apart and grow; when a cell has lived its cycle it divides: its track ends and
two daughters, each with half its area, start on the next frame on either side of its division axis. Pixels where
cells overlap go to the cell whose centre is nearest relative to its radius, so daughters touch along a straight
line as real ones do. Images follow the 12-bit camera of :func:`sam2_plugins.sample_data.synthetic_cells`. The same
arguments always give the same data.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .ctc import check_labels, write_ctc_ground_truth
from .lineage import Lineage
from .sample_data import CAMERA_MAX, CAMERA_OFFSET

SEGMENTATION_STRIDE = 5
"""The ground truth's SEG folder holds every 5th frame by default (CTC's SEG ground truth covers some frames)."""


@dataclass(frozen=True)
class DividingCells:
    """Images ``(T, H, W)`` uint16, labels ``(T, H, W)`` uint16 (label = track id) and their lineage."""

    images: np.ndarray
    labels: np.ndarray
    lineage: Lineage


@dataclass
class _Cell:
    track_id: int
    centre: np.ndarray
    birth_radius: float
    birth: int
    cycle: int
    brightness: float
    axis: float

    def radius(self, frame: int) -> float:
        """The radius at ``frame``: the area grows linearly and doubles over a cycle."""
        return self.birth_radius * np.sqrt(1.0 + (frame - self.birth) / self.cycle)


def dividing_cells(
    num_frames: int = 30,
    size: int = 128,
    num_cells: int = 3,
    max_cells: int | None = None,
    cycle: tuple[int, int] = (8, 14),
    seed: int = 0,
) -> DividingCells:
    """``num_cells`` cells dividing every ``cycle`` frames (a random whole number in that range, per cell) until
    ``max_cells`` (default 4 x ``num_cells``) are alive, on a ``size`` x ``size`` field."""
    max_cells = 4 * num_cells if max_cells is None else max_cells
    if num_frames < 1 or num_cells < 1 or max_cells < num_cells or size < 32 or not 2 <= cycle[0] <= cycle[1]:
        raise ValueError(
            f"dividing_cells: need num_frames >= 1, 1 <= num_cells <= max_cells, size >= 32 and 2 <= cycle[0] <= "
            f"cycle[1]; got num_frames={num_frames}, num_cells={num_cells}, max_cells={max_cells}, size={size}, "
            f"cycle={cycle}"
        )
    rng = np.random.default_rng(seed)
    # full-grown cells of all max_cells cover about a third of the field
    full_radius = size * np.sqrt(0.33 / (np.pi * max_cells))
    if full_radius / np.sqrt(2) < 2.5:
        raise ValueError(f"dividing_cells: {max_cells} cells do not fit a {size} x {size} field; make it larger")
    lineage = Lineage()
    alive: list[_Cell] = []
    for _ in range(num_cells):
        cell = _new_cell(rng, lineage, 0, rng.uniform(full_radius, size - full_radius, 2), full_radius, cycle)
        cell.birth = -int(rng.integers(0, cell.cycle))  # cells start at different points of their cycle
        alive.append(cell)
    images = np.empty((num_frames, size, size), np.uint16)
    labels = np.zeros((num_frames, size, size), np.uint16)
    for frame in range(num_frames):
        if frame:
            alive = _divide(rng, lineage, alive, frame, max_cells, full_radius, cycle)
            _move(rng, alive, frame, size)
        for cell in alive:
            lineage.extend(cell.track_id, frame)
        labels[frame], signal = _draw(alive, frame, size)
        photons = rng.poisson(signal * np.exp(-0.005 * frame))
        noisy = CAMERA_OFFSET + photons + rng.normal(0, 6, (size, size))
        images[frame] = np.clip(noisy, 0, CAMERA_MAX).astype(np.uint16)
    check_labels(labels, lineage, source="dividing_cells")
    return DividingCells(images, labels, lineage)


def write_dividing_cells(
    root: str | os.PathLike,
    cells: DividingCells | None = None,
    sequence: str = "01",
    segmentation_stride: int = SEGMENTATION_STRIDE,
) -> Path:
    """Write ``cells`` (default: :func:`dividing_cells`'s) as a CTC sequence with ground truth under ``root``:
    ``01/tTTT.tif``, ``01_GT/TRA`` and ``01_GT/SEG`` (every ``segmentation_stride``-th frame). Returns ``01_GT``."""
    cells = dividing_cells() if cells is None else cells
    return write_ctc_ground_truth(
        root,
        sequence,
        cells.images,
        cells.labels,
        cells.lineage,
        range(0, len(cells.labels), segmentation_stride),
    )


def _new_cell(
    rng: np.random.Generator,
    lineage: Lineage,
    frame: int,
    centre: np.ndarray,
    radius: float,
    cycle: tuple[int, int],
    parent: int = 0,
) -> _Cell:
    track = lineage.add(lineage.next_id(), frame, parent=parent)
    return _Cell(
        track_id=track.track_id,
        centre=np.asarray(centre, np.float64),
        birth_radius=radius / np.sqrt(2),
        birth=frame,
        cycle=int(rng.integers(cycle[0], cycle[1] + 1)),
        brightness=float(rng.uniform(900, 2000)),
        axis=float(rng.uniform(0, np.pi)),
    )


def _divide(
    rng: np.random.Generator,
    lineage: Lineage,
    alive: list[_Cell],
    frame: int,
    max_cells: int,
    full_radius: float,
    cycle: tuple[int, int],
) -> list[_Cell]:
    """The cells alive on ``frame``: those whose cycle is over divide while fewer than ``max_cells`` are alive."""
    next_alive = []
    count = len(alive)
    for cell in alive:
        if frame - cell.birth < cell.cycle or count >= max_cells:
            next_alive.append(cell)
            continue
        count += 1
        radius = cell.radius(frame - 1)
        offset = 0.5 * radius * np.array([np.sin(cell.axis), np.cos(cell.axis)])
        for side in (-1, 1):
            next_alive.append(
                _new_cell(rng, lineage, frame, cell.centre + side * offset, radius, cycle, parent=cell.track_id)
            )
    return next_alive


def _move(rng: np.random.Generator, alive: list[_Cell], frame: int, size: int) -> None:
    """A random step for each cell, then overlaps relaxed: cells push apart and stay inside the field."""
    for cell in alive:
        cell.centre = cell.centre + rng.normal(0, 0.6, 2)
    centres = np.array([cell.centre for cell in alive])
    radii = np.array([cell.radius(frame) for cell in alive])
    for _ in range(4):
        delta = centres[:, None, :] - centres[None, :, :]
        distance = np.maximum(np.linalg.norm(delta, axis=2), 1e-6)
        overlap = np.maximum(0.0, 0.85 * (radii[:, None] + radii[None, :]) - distance)
        np.fill_diagonal(overlap, 0.0)
        centres = centres + 0.25 * np.sum((overlap / distance)[:, :, None] * delta, axis=1)
        centres = np.clip(centres, radii[:, None], size - 1 - radii[:, None])
    for cell, centre in zip(alive, centres):
        cell.centre = centre


def _draw(alive: list[_Cell], frame: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The label image and the photon rate of the cells on ``frame``."""
    labels = np.zeros((size, size), np.uint16)
    signal = np.zeros((size, size))
    nearest = np.full((size, size), np.inf)
    for cell in alive:
        radius = cell.radius(frame)
        top, left = np.maximum(np.floor(cell.centre - radius).astype(int), 0)
        bottom, right = np.minimum(np.ceil(cell.centre + radius).astype(int) + 1, size)
        rows, columns = np.ogrid[top:bottom, left:right]
        distance = np.hypot(rows - cell.centre[0], columns - cell.centre[1]) / radius
        window = (slice(top, bottom), slice(left, right))
        mine = (distance <= 1.0) & (distance < nearest[window])
        nearest[window][mine] = distance[mine]
        labels[window][mine] = cell.track_id
        signal[window] += cell.brightness * np.clip(1.0 - 0.6 * distance**2, 0.0, None) * (distance <= 1.0)
    return labels, signal
