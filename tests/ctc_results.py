"""Tracking results with the errors the CTC measures count, made from a ground truth of dividing cells.

Each error is applied to the ground-truth labels on some frames; gaps left behind become child tracks and the
result is relabelled at random, so it is a valid CTC result whose labels are not the ground truth's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sam2_plugins.ctc import lineage_from_labels, split_gaps, write_ctc
from sam2_plugins.lineage import Lineage, Track
from sam2_plugins.sample_cells import DividingCells

ERRORS = (
    "missed",
    "shortened",
    "false",
    "split",
    "merged",
    "shifted",
    "wrong_parent",
    "lost_division",
    "renamed",
    "mother_continues",
)


def tracking_result(cells: DividingCells, errors: tuple[str, ...], seed: int) -> tuple[list[np.ndarray], Lineage]:
    """The ground truth of ``cells`` with ``errors`` (names from ``ERRORS``), as CTC label frames and lineage."""
    rng = np.random.default_rng(seed)
    labels = cells.labels.copy()
    lineage = cells.lineage
    parents = {track.track_id: track.parent for track in lineage if track.parent}
    num_frames = len(labels)
    long_tracks = [track for track in lineage if track.last - track.first >= 5]
    next_label = len(lineage) + 1

    def pick() -> tuple[int, int, int]:
        track = long_tracks[int(rng.integers(len(long_tracks)))]
        start = int(rng.integers(track.first + 1, track.last - 2))
        return track.track_id, start, start + 2

    for error in errors:
        if error == "missed":  # a cell not found on two frames inside its track: the rest is a child track
            label, start, stop = pick()
            for frame in range(start, stop):
                labels[frame][labels[frame] == label] = 0
        elif error == "shortened":  # a track ending two frames early (its children keep their parent)
            track = long_tracks[int(rng.integers(len(long_tracks)))]
            for frame in (track.last - 1, track.last):
                labels[frame][labels[frame] == track.track_id] = 0
        elif error == "false":  # a blob where there is no cell, for four frames
            start = int(rng.integers(0, num_frames - 4))
            empty = np.argwhere(cells.labels[start : start + 4].max(axis=0) == 0)
            row, column = empty[int(rng.integers(len(empty)))]
            rows, columns = np.ogrid[: labels.shape[1], : labels.shape[2]]
            blob = (rows - row) ** 2 + (columns - column) ** 2 <= 9
            for frame in range(start, start + 4):
                labels[frame][blob & (labels[frame] == 0)] = next_label
            next_label += 1
        elif error == "split":  # a cell cut in two labels for two frames
            label, start, stop = pick()
            for frame in range(start, stop):
                cell = labels[frame] == label
                columns = np.nonzero(cell)[1]
                if columns.size == 0:  # removed by an earlier error
                    continue
                labels[frame][cell & (np.arange(labels.shape[2]) > np.median(columns))[None, :]] = next_label
            next_label += 1
        elif error == "merged":  # two sister cells under one label for two frames
            sisters = [track for track in lineage if track.parent and track.last - track.first >= 4]
            first = sisters[int(rng.integers(len(sisters)))]
            second = next(t for t in lineage if t.parent == first.parent and t.track_id != first.track_id)
            for frame in range(first.first + 1, min(first.first + 3, first.last, second.last)):
                labels[frame][labels[frame] == second.track_id] = first.track_id
        elif error == "shifted":  # a cell found only in part: it matches nothing (FN) and is a false positive
            label, start, stop = pick()
            for frame in range(start, stop):
                cell = labels[frame] == label
                rows = np.nonzero(cell)[0]
                if rows.size == 0:
                    continue
                labels[frame][cell & (np.arange(labels.shape[1]) > np.percentile(rows, 40))[:, None]] = 0
        elif error == "wrong_parent":  # a daughter given to another cell that ended before it began
            daughters = [track for track in lineage if track.parent]
            daughter = daughters[int(rng.integers(len(daughters)))]
            others = [
                track.track_id for track in lineage if track.last < daughter.first and track.track_id != daughter.parent
            ]
            if others:
                parents[daughter.track_id] = others[int(rng.integers(len(others)))]
        elif error == "lost_division":  # a division not recognised: both daughters without parent
            daughters = [track for track in lineage if track.parent]
            mother = daughters[int(rng.integers(len(daughters)))].parent
            for track in lineage:
                if track.parent == mother:
                    parents.pop(track.track_id, None)
        elif error == "renamed":  # a track cut in two: a parent link where the truth has a track link (EC)
            label, start, _ = pick()
            for frame in range(start, num_frames):
                labels[frame][labels[frame] == label] = next_label
            parents = {child: next_label if parent == label else parent for child, parent in parents.items()}
            parents[next_label] = label
            next_label += 1
        elif error == "mother_continues":  # a daughter under its mother's label: a track link for a parent link
            mothers = sorted({track.parent for track in lineage if track.parent})
            mother = mothers[int(rng.integers(len(mothers)))]
            daughter, sister = lineage.children(mother)[:2]
            for frame in range(lineage[daughter].first, lineage[daughter].last + 1):
                labels[frame][labels[frame] == daughter] = mother
            parents = {child: mother if parent == daughter else parent for child, parent in parents.items()}
            parents.pop(daughter, None)
            parents.pop(sister, None)
        else:
            raise ValueError(f"unknown error {error!r}: choose from {ERRORS}")
    frames, parents = split_gaps(list(labels), parents)
    present = set(np.unique(np.stack(frames)).tolist())
    parents = {child: parent for child, parent in parents.items() if child in present and parent in present}
    lineage = lineage_from_labels(frames, parents)
    return _relabelled(frames, lineage, rng)


def _relabelled(
    frames: list[np.ndarray], lineage: Lineage, rng: np.random.Generator
) -> tuple[list[np.ndarray], Lineage]:
    ids = [track.track_id for track in lineage]
    new_ids = rng.choice(np.arange(1, 3 * len(ids) + 2), size=len(ids), replace=False)
    lookup = np.zeros(max(ids) + 1, np.uint16)
    lookup[ids] = new_ids
    renamed = Lineage(
        Track(int(lookup[track.track_id]), track.first, track.last, int(lookup[track.parent]) if track.parent else 0)
        for track in lineage
    )
    return [lookup[frame] for frame in frames], renamed


def write_result(folder: Path, cells: DividingCells, errors: tuple[str, ...], seed: int) -> Path:
    frames, lineage = tracking_result(cells, errors, seed)
    return write_ctc(folder, frames, lineage)
