"""The Cell Tracking Challenge's SEG, DET and TRA measures of a tracking result, with py-ctcmetrics' definitions.

Each frame's reference cells are matched to result cells: a result cell matches a reference cell when it covers more
than half of its pixels (so a reference cell has at most one match). SEG is the mean IoU of the ``SEG`` ground truth's
cells with their match (0 without one). 3D ground truth given as z-slices (``man_seg_TTT_ZZZ.tif``) is matched on the
stacked slices, and a frame of k slices counts k times, as in py-ctcmetrics.

DET and TRA count the operations that turn the result's acyclic graph into the reference's (Matula et al. 2015,
AOGM): vertices are (frame, cell), edges join a label on consecutive frames and a parent's last frame to its child's
first. A result cell matching no reference cell is a false positive (FP, weight 1), an unmatched reference cell a
false negative (FN, 10), a result cell matching k > 1 reference cells needs k - 1 splits (NS, 5); among the uniquely
matched result cells, an edge the reference lacks is redundant (ED, 1), a reference edge the result lacks is missing
(EA, 1.5), and a shared edge of the other kind (track link vs parent link) is wrong (EC, 1).
DET = 1 - min(AOGM_D, AOGM_D0) / AOGM_D0 with AOGM_D = 5 NS + 10 FN + FP and AOGM_D0 = 10 x reference vertices;
TRA = 1 - min(AOGM, AOGM_0) / AOGM_0 with AOGM_0 = 10 x vertices + 1.5 x edges of the reference.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .ctc import (
    GROUND_TRUTH_TRACK_FILE,
    RESULT_MASK_PREFIX,
    RESULT_TRACK_FILE,
    TRACKING_MASK_PREFIX,
    CtcFormatError,
    check_present_labels,
    mask_paths,
    read_label_image,
    segmentation_paths,
)
from .lineage import Lineage

METRICS = ("SEG", "DET", "TRA")
WEIGHTS = {"NS": 5.0, "FN": 10.0, "FP": 1.0, "ED": 1.0, "EA": 1.5, "EC": 1.0}
"""The AOGM operation weights of the CTC's DET and TRA."""


@dataclass(frozen=True)
class FrameMatch:
    """One frame's cells (sorted labels) and the reference/result pairs matched on it with their IoU."""

    reference: np.ndarray
    result: np.ndarray
    matched_reference: np.ndarray
    matched_result: np.ndarray
    iou: np.ndarray


@dataclass
class TrackingScores:
    """SEG, DET and TRA of one sequence (None: not computed) and the AOGM counts behind DET and TRA."""

    sequence: str
    seg: float | None = None
    det: float | None = None
    tra: float | None = None
    counts: dict[str, float] = field(default_factory=dict)
    seg_frames: list[int] = field(default_factory=list)

    def to_json(self) -> dict:
        scores = {"sequence": self.sequence, "SEG": self.seg, "DET": self.det, "TRA": self.tra}
        if self.seg is not None and self.det is not None:
            scores["OP_CSB"] = (self.seg + self.det) / 2
        if self.seg is not None and self.tra is not None:
            scores["OP_CTB"] = (self.seg + self.tra) / 2
        scores.update(self.counts)
        scores["SEG_frames"] = self.seg_frames
        return scores


def match_frame(reference: np.ndarray, result: np.ndarray) -> FrameMatch:
    """Match the cells of two label images of one frame (0 is the background)."""
    if reference.shape != result.shape:
        raise CtcFormatError(f"reference labels of shape {reference.shape}, result labels of shape {result.shape}")
    reference = reference.ravel()
    result = result.ravel()
    reference_area = np.bincount(reference)
    result_area = np.bincount(result)
    reference_labels = np.flatnonzero(reference_area)
    result_labels = np.flatnonzero(result_area)
    reference_labels = reference_labels[reference_labels != 0]
    result_labels = result_labels[result_labels != 0]
    both = (reference != 0) & (result != 0)
    stride = np.int64(result_area.size)
    pairs, intersection = np.unique(reference[both].astype(np.int64) * stride + result[both], return_counts=True)
    matched_reference = pairs // stride
    matched_result = pairs % stride
    covered = 2 * intersection > reference_area[matched_reference]
    matched_reference = matched_reference[covered]
    matched_result = matched_result[covered]
    intersection = intersection[covered]
    union = reference_area[matched_reference] + result_area[matched_result] - intersection
    return FrameMatch(reference_labels, result_labels, matched_reference, matched_result, intersection / union)


def seg_score(matches: Iterable[FrameMatch]) -> float:
    """SEG: the IoUs of the matched reference cells summed over all reference cells (1 when there are none)."""
    total_iou = 0.0
    cells = 0
    for match in matches:
        total_iou += float(np.sum(match.iou))
        cells += len(match.reference)
    return total_iou / max(cells, 1)


def aogm_counts(matches: Sequence[FrameMatch], reference_lineage: Lineage, result_lineage: Lineage) -> dict[str, float]:
    """The AOGM operations (NS, FN, FP, ED, EA, EC) turning the result graph into the reference graph, with the
    reference's vertex and edge counts (``vertices``, ``edges``), the AOGM and its empty-result value AOGM_0."""
    reference_offsets = np.cumsum([0] + [len(match.reference) for match in matches])
    result_offsets = np.cumsum([0] + [len(match.result) for match in matches])
    result_to_reference = np.full(int(result_offsets[-1]), -1, dtype=np.int64)
    counts = dict.fromkeys(("NS", "FN", "FP"), 0)
    for frame, match in enumerate(matches):
        matched, per_result = np.unique(match.matched_result, return_counts=True)
        counts["FN"] += len(match.reference) - len(match.matched_reference)
        counts["FP"] += len(match.result) - len(matched)
        counts["NS"] += int(np.sum(per_result[per_result > 1] - 1))
        unique = np.isin(match.matched_result, matched[per_result == 1])
        result_index = np.searchsorted(match.result, match.matched_result[unique]) + result_offsets[frame]
        reference_index = np.searchsorted(match.reference, match.matched_reference[unique]) + reference_offsets[frame]
        result_to_reference[result_index] = reference_index
    num_reference = int(reference_offsets[-1])
    reference_edges = _edges(reference_lineage, [match.reference for match in matches], reference_offsets)
    result_edges = _edges(result_lineage, [match.result for match in matches], result_offsets)
    mapped_start = result_to_reference[result_edges[:, 0]]
    mapped_end = result_to_reference[result_edges[:, 1]]
    kept = (mapped_start >= 0) & (mapped_end >= 0)
    result_keys = mapped_start[kept] * num_reference + mapped_end[kept]
    result_kinds = result_edges[kept, 2]
    reference_keys = reference_edges[:, 0] * num_reference + reference_edges[:, 1]
    shared, in_reference, in_result = np.intersect1d(reference_keys, result_keys, return_indices=True)
    counts["ED"] = len(result_keys) - len(shared)
    counts["EA"] = len(reference_keys) - len(shared)
    counts["EC"] = int(np.sum(reference_edges[in_reference, 2] != result_kinds[in_result]))
    counts["vertices"] = num_reference
    counts["edges"] = len(reference_keys)
    counts["AOGM"] = sum(WEIGHTS[name] * counts[name] for name in WEIGHTS)
    counts["AOGM_0"] = WEIGHTS["FN"] * num_reference + WEIGHTS["EA"] * len(reference_keys)
    return counts


def det_score(counts: dict[str, float]) -> float:
    """DET from :func:`aogm_counts`: the detection part of AOGM against the cost of an empty result."""
    detection = WEIGHTS["NS"] * counts["NS"] + WEIGHTS["FN"] * counts["FN"] + WEIGHTS["FP"] * counts["FP"]
    empty = WEIGHTS["FN"] * counts["vertices"]
    return 1.0 - min(detection, empty) / empty


def tra_score(counts: dict[str, float]) -> float:
    """TRA from :func:`aogm_counts`: AOGM against the cost of building the reference graph from nothing."""
    return 1.0 - min(counts["AOGM"], counts["AOGM_0"]) / counts["AOGM_0"]


def _edges(lineage: Lineage, labels: Sequence[np.ndarray], offsets: np.ndarray) -> np.ndarray:
    """The graph's edges as rows (start vertex, end vertex, kind: 0 track link, 1 parent link); a vertex is the
    position of (frame, label) in the frames' concatenated sorted labels."""
    edges = []
    for frame in range(len(labels) - 1):
        _, here, there = np.intersect1d(labels[frame], labels[frame + 1], assume_unique=True, return_indices=True)
        edges.append(np.stack([here + offsets[frame], there + offsets[frame + 1], np.zeros_like(here)], axis=1))
    for track in lineage:
        if track.parent == 0:
            continue
        parent = lineage[track.parent]
        start = _vertex(labels, offsets, parent.last, parent.track_id)
        end = _vertex(labels, offsets, track.first, track.track_id)
        if start is not None and end is not None:
            edges.append(np.array([[start, end, 1]]))
    return np.concatenate(edges).astype(np.int64) if edges else np.zeros((0, 3), np.int64)


def _vertex(labels: Sequence[np.ndarray], offsets: np.ndarray, frame: int, label: int) -> int | None:
    if frame >= len(labels):
        return None
    position = int(np.searchsorted(labels[frame], label))
    if position == len(labels[frame]) or labels[frame][position] != label:
        return None
    return int(offsets[frame]) + position


def evaluate_sequence(
    gt: str | os.PathLike,
    res: str | os.PathLike,
    metrics: Sequence[str] = METRICS,
    progress: Callable[[Iterable, int], Iterable] | None = None,
) -> TrackingScores:
    """SEG, DET and TRA of the result folder ``res`` (``mask*.tif`` + ``res_track.txt``) against the ground-truth
    folder ``gt`` (``TRA/`` and, for SEG, ``SEG/``). Each TIFF is read once, one frame at a time."""
    gt, res = Path(gt), Path(res)
    unknown = sorted(set(metrics) - set(METRICS))
    if unknown:
        raise ValueError(f"unknown metric(s) {', '.join(unknown)}: choose from {', '.join(METRICS)}")
    tracking = "DET" in metrics or "TRA" in metrics
    result_lineage = Lineage.read(res / RESULT_TRACK_FILE)
    result_paths = mask_paths(res, RESULT_MASK_PREFIX)
    reference_paths: list[Path] = []
    reference_lineage = Lineage()
    if tracking:
        reference_lineage = Lineage.read(gt / "TRA" / GROUND_TRUTH_TRACK_FILE)
        reference_paths = mask_paths(gt / "TRA", TRACKING_MASK_PREFIX)
        if len(reference_paths) != len(result_paths):
            raise CtcFormatError(
                f"{res}: {len(result_paths)} result masks but {gt / 'TRA'} has {len(reference_paths)} frames; "
                "a result holds one mask per frame of the sequence"
            )
    segmentation = segmentation_paths(gt / "SEG") if "SEG" in metrics else {}
    if "SEG" in metrics and not segmentation:
        raise CtcFormatError(f"{gt / 'SEG'}: no man_segTTT.tif ground truth for SEG; leave SEG out of the metrics")
    beyond = [frame for frame in segmentation if frame >= len(result_paths)]
    if beyond:
        raise CtcFormatError(
            f"{gt / 'SEG'}: ground truth for frame {beyond[0]} but {res} has {len(result_paths)} result masks"
        )
    tracking_matches: list[FrameMatch] = []
    segmentation_matches: list[FrameMatch] = []
    result_labels: list[np.ndarray] = []
    frames = range(len(result_paths))
    for frame in progress(frames, len(result_paths)) if progress else frames:
        result = read_label_image(result_paths[frame])
        if tracking:
            match = _match_files(
                reference_paths[frame], result_paths[frame], read_label_image(reference_paths[frame]), result
            )
            tracking_matches.append(match)
            result_labels.append(match.result)
        else:
            result_labels.append(np.unique(result[result != 0]))
        if frame in segmentation:
            reference, depths = segmentation[frame].read()
            scored = result
            if depths is not None:  # 3D ground truth given as slices: those slices of the result
                if result.ndim != 3 or depths[-1] >= len(result):
                    raise CtcFormatError(
                        f"{segmentation[frame].name}: a slice {depths[-1]} of 3D ground truth, but "
                        f"{result_paths[frame]} has shape {result.shape}"
                    )
                scored = result[depths]
            match = _match_files(segmentation[frame].name, result_paths[frame], reference, scored)
            # py-ctcmetrics lists a frame once per slice file and scores the stacked slices each time: count as it does
            segmentation_matches.extend([match] * (1 if depths is None else len(depths)))
    check_present_labels(result_labels, result_lineage, source=str(res))
    named = re.fullmatch(r"([0-9]+)_GT", gt.name)
    scores = TrackingScores(sequence=named.group(1) if named else res.name, seg_frames=sorted(segmentation))
    if "SEG" in metrics:
        scores.seg = seg_score(segmentation_matches)
    if tracking:
        if not any(len(match.reference) for match in tracking_matches):
            raise CtcFormatError(f"{gt / 'TRA'}: no cell on any frame; DET and TRA need ground-truth cells")
        scores.counts = aogm_counts(tracking_matches, reference_lineage, result_lineage)
        scores.det = det_score(scores.counts) if "DET" in metrics else None
        scores.tra = tra_score(scores.counts) if "TRA" in metrics else None
    return scores


def _match_files(reference_path: Path, result_path: Path, reference: np.ndarray, result: np.ndarray) -> FrameMatch:
    if reference.shape != result.shape:
        raise CtcFormatError(
            f"{result_path}: shape {result.shape} but the ground truth {reference_path} has shape {reference.shape}"
        )
    return match_frame(reference, result)
