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
    """The ground truth of ``cells`` with ``errors`` (names from ``ERRORS``), as CTC label frames and lineage.

    Each error goes to tracks that no earlier error touched (nor their parents and children), so errors do not
    combine into something that is not a valid result; an error with no such track left is skipped.
    """
    rng = np.random.default_rng(seed)
    labels = cells.labels.copy()
    lineage = cells.lineage
    parents = {track.track_id: track.parent for track in lineage if track.parent}
    num_frames = len(labels)
    next_label = len(lineage) + 1
    touched: set[int] = set()

    def choose(candidates: list[Track]) -> Track | None:
        free = [track for track in candidates if not {track.track_id, *_family(lineage, track)} & touched]
        if not free:
            return None
        track = free[int(rng.integers(len(free)))]
        touched.update({track.track_id, *_family(lineage, track)})
        return track

    def long_track() -> Track | None:
        return choose([track for track in lineage if track.last - track.first >= 5])

    def frames_inside(track: Track) -> range:
        start = int(rng.integers(track.first + 1, track.last - 2))
        return range(start, start + 2)

    for error in errors:
        if error == "false":  # a blob where there is no cell, for four frames
            start = int(rng.integers(0, num_frames - 4))
            empty = np.argwhere(labels[start : start + 4].max(axis=0) == 0)
            row, column = empty[int(rng.integers(len(empty)))]
            rows, columns = np.ogrid[: labels.shape[1], : labels.shape[2]]
            blob = (rows - row) ** 2 + (columns - column) ** 2 <= 9
            for frame in range(start, start + 4):
                labels[frame][blob & (labels[frame] == 0)] = next_label
            next_label += 1
            continue
        if error in ("missed", "shortened", "split", "shifted", "renamed"):
            track = long_track()
            if track is None:
                continue
            label = track.track_id
            if error == "missed":  # not found on two frames inside its track: the rest is a child track
                for frame in frames_inside(track):
                    labels[frame][labels[frame] == label] = 0
            elif error == "shortened":  # a track ending two frames early (its children keep their parent)
                for frame in (track.last - 1, track.last):
                    labels[frame][labels[frame] == label] = 0
            elif error == "split":  # a cell cut in two labels for two frames
                for frame in frames_inside(track):
                    cell = labels[frame] == label
                    middle = np.median(np.nonzero(cell)[1])
                    labels[frame][cell & (np.arange(labels.shape[2]) > middle)[None, :]] = next_label
                next_label += 1
            elif error == "shifted":  # found only in part: matches nothing (FN) and is a false positive
                for frame in frames_inside(track):
                    cell = labels[frame] == label
                    cut = np.percentile(np.nonzero(cell)[0], 40)
                    labels[frame][cell & (np.arange(labels.shape[1]) > cut)[:, None]] = 0
            else:  # renamed: cut in two tracks, a parent link where the truth has a track link (EC)
                for frame in range(frames_inside(track).start, track.last + 1):
                    labels[frame][labels[frame] == label] = next_label
                parents = {child: next_label if parent == label else parent for child, parent in parents.items()}
                parents[next_label] = label
                next_label += 1
        elif error == "merged":  # two sister cells under one label for two frames
            first = choose([track for track in lineage if track.parent and track.last - track.first >= 4])
            if first is None:
                continue
            second = lineage[next(child for child in lineage.children(first.parent) if child != first.track_id)]
            for frame in range(first.first + 1, min(first.first + 3, first.last, second.last)):
                labels[frame][labels[frame] == second.track_id] = first.track_id
        elif error == "wrong_parent":  # a daughter given to another cell that ended before it began
            daughter = choose([track for track in lineage if track.parent])
            other = daughter and choose([track for track in lineage if track.last < daughter.first])
            if other is not None:
                parents[daughter.track_id] = other.track_id
        elif error == "lost_division":  # a division not recognised: both daughters without parent
            daughter = choose([track for track in lineage if track.parent])
            if daughter is not None:
                for child in lineage.children(daughter.parent):
                    parents.pop(child, None)
        elif error == "mother_continues":  # a daughter under its mother's label: a track link for a parent link
            mother = choose([track for track in lineage if lineage.children(track.track_id)])
            if mother is None:
                continue
            daughter, sister = lineage.children(mother.track_id)[:2]
            if {daughter, sister} - touched or {*lineage.children(daughter), *lineage.children(sister)} & touched:
                continue
            for frame in range(lineage[daughter].first, lineage[daughter].last + 1):
                labels[frame][labels[frame] == daughter] = mother.track_id
            parents = {child: mother.track_id if parent == daughter else parent for child, parent in parents.items()}
            parents.pop(daughter, None)
            parents.pop(sister, None)
        else:
            raise ValueError(f"unknown error {error!r}: choose from {ERRORS}")
    frames, parents = split_gaps(list(labels), parents)
    return _relabelled(frames, lineage_from_labels(frames, parents), rng)


def _family(lineage: Lineage, track: Track) -> set[int]:
    """The track's parent, children and sisters."""
    family = set(lineage.children(track.track_id))
    if track.parent:
        family |= {track.parent, *lineage.children(track.parent)}
    return family


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
