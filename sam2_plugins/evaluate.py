"""J&F evaluation with the official SA-V evaluator's rules, for folders on disk and for masks in memory.

Rules (those of ``sav_dataset/sav_evaluator.py``): the scored frames are the ground truth's annotated frames
(sorted file names; extra predicted frames are ignored), minus the first and last when ``skip_first_and_last``.
Only PNG files are annotated frames: other files (``Thumbs.db``, a stray JPEG) are skipped and listed in
``EvaluationResult.ignored_files``, where the official tool would count them as frames.
Frames before the object first shows up in the ground truth or the prediction are not scored; from then on every
frame is (empty/empty scores J = F = 1). An object's J and F are the means over its scored frames x 100; the
global J and F are means over all objects of all videos, J&F their mean. Objects that never appear in the ground
truth of the scored frames get no score: the official tool crashes on them, here they are listed as unscored.
Video and object folder names must be plain names (no control characters), as they become rows of results.csv.

Other benchmarks score by their own rules, each a :class:`Protocol` in :data:`PROTOCOLS` (see there): DAVIS 2017
(and MOSE, and DAVIS 2016 on the union of the objects) as the official DAVIS 2017 evaluator does, LVOS as its
official evaluator does. :func:`score_video` scores one video's masks in memory under any of them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from multiprocessing import Pool
from pathlib import Path

import numpy as np

from .datasets import LAYOUTS, VosVideo
from .datasets.davis import RESOLUTIONS
from .datasets.layout import read_meta_videos
from .datasets.palette_video import VOID_LABEL
from .datasets.sav_eval import EVAL_ANNOTATIONS_FOLDER
from .frame_names import frame_name, is_number_name, object_name
from .masks import MaskFormatError, check_one_object_mask, read_mask_png
from .metrics import active_window, tolerance_radius, window_scores
from .safe_names import safe_component

MaskPair = tuple[np.ndarray, np.ndarray]
LvosRange = tuple[int, int, int]
"""An LVOS object's meta ``frame_range``: ``(start, end, frame_nums)`` as numbers."""


class MissingPredictionError(FileNotFoundError):
    """A predicted mask, object or video that the ground truth needs is missing."""


@dataclass(frozen=True)
class Protocol:
    """A benchmark's scoring rules: which objects and frames are scored, and which statistics are reported."""

    name: str
    title: str
    objects: str
    """``"own"``: each object on its own annotated frames (SA-V); ``"first-frame"``: objects 1..N, N the largest
    label on the video's first annotated frame, on every annotated frame (DAVIS 2017); ``"union"``: all objects
    as one object ``1`` on every annotated frame (DAVIS 2016); ``"range"``: each object on the annotated frames
    of its valid range (LVOS)."""
    skip_first_and_last: bool
    from_first_appearance: bool
    """Frames before the object first shows in the ground truth or the prediction are not scored (SA-V); else
    every scored frame counts, empty/empty scoring J = F = 1."""
    recall: bool = False
    decay: bool = False
    stability: bool = False


_DAVIS_2017 = Protocol(
    "davis",
    "DAVIS 2017 semi-supervised (davis2017-evaluation)",
    "first-frame",
    skip_first_and_last=True,
    from_first_appearance=False,
    recall=True,
    decay=True,
)
PROTOCOLS: dict[str, Protocol] = {
    protocol.name: protocol
    for protocol in (
        Protocol("sav", "SA-V (sav_evaluator.py)", "own", skip_first_and_last=True, from_first_appearance=True),
        _DAVIS_2017,
        replace(
            _DAVIS_2017,
            name="davis-2016",
            title="DAVIS 2016 (the DAVIS 2017 rules on the union of the objects)",
            objects="union",
        ),
        replace(_DAVIS_2017, name="mose", title="MOSE (the DAVIS 2017 rules)"),
        Protocol(
            "lvos",
            "LVOS semi-supervised (lvos-evaluation)",
            "range",
            skip_first_and_last=True,
            from_first_appearance=False,
            recall=True,
            stability=True,
        ),
    )
}
"""The scoring protocols by name. DAVIS 2017, MOSE and DAVIS 2016 follow the official DAVIS 2017 evaluator: J and
F Mean, Recall (the share of frames scoring above 0.5) and Decay (the mean of the first quarter of the scored
frames minus that of the last, in the official tool's overlapping quarters). The official tool indexes those
quarters as uint8, which wraps past 256 scored frames; here they are exact (no DAVIS sequence is that long).
LVOS follows its official evaluator (lvos-evaluation, v2 code): each object on the frames of its meta
``frame_range`` but the first and last (:func:`lvos_frame_numbers`), J and F Mean and Recall, and V, the
standard deviation of the per-frame J&F (its variance rounded to 4 decimals first, as the official tool does).
LVOS v2's seen/unseen split needs the evaluator's own list of unseen videos and is not reported.
The official LVOS tool also prints a Decay that is always 0 (it measures a 1 x N array's length) and a global V
that is the last object's: here Decay is not reported for LVOS and the global V is the objects' mean.
All statistics are x 100, like J and F."""


def get_protocol(protocol: str | Protocol) -> Protocol:
    """The protocol named ``protocol`` (or ``protocol`` itself); an unknown name is an error listing the known."""
    if isinstance(protocol, Protocol):
        return protocol
    try:
        return PROTOCOLS[protocol]
    except KeyError:
        raise ValueError(f"unknown scoring protocol {protocol!r}; choose one of: {', '.join(PROTOCOLS)}") from None


def _recall(values: np.ndarray) -> float:
    return float(np.mean(values > 0.5))


def _decay(values: np.ndarray) -> float:
    """Mean of the first quarter minus mean of the last, the quarters split at ``round(linspace(0, n - 1, 5))``
    and each running up to and including the next split."""
    splits = (np.round(np.linspace(1, len(values), 5) + 1e-10) - 1).astype(np.int64)
    return float(np.mean(values[splits[0] : splits[1] + 1]) - np.mean(values[splits[3] : splits[4] + 1]))


def _stability(j: np.ndarray, f: np.ndarray) -> float:
    """LVOS's V: the population standard deviation of the per-frame J&F, its variance rounded to 4 decimals."""
    jf = (j + f) / 2
    return math.sqrt(round(float(np.sum((np.mean(jf) - jf) ** 2) / len(jf)), 4))


@dataclass(frozen=True)
class FrameScore:
    """J and F (0..1) of one scored frame."""

    frame: str
    j: float
    f: float


@dataclass
class ObjectScore:
    """One object's scored frames; ``problem`` says why an object has no score."""

    video: str
    obj: str
    frames: list[FrameScore] = field(default_factory=list)
    problem: str | None = None
    protocol: str = "sav"
    """The name of the :class:`Protocol` it was scored by: it says which statistics are reported."""

    @property
    def key(self) -> str:
        return f"{self.video}/{self.obj}"

    @property
    def scored(self) -> bool:
        return self.problem is None

    @property
    def j(self) -> float:
        """Mean J over the scored frames x 100."""
        return float(np.mean([frame.j for frame in self.frames])) * 100

    @property
    def f(self) -> float:
        """Mean boundary F over the scored frames x 100."""
        return float(np.mean([frame.f for frame in self.frames])) * 100

    @property
    def jf(self) -> float:
        return (self.j + self.f) / 2

    def statistics(self) -> dict[str, float]:
        """The scores its protocol reports, x 100: ``J``, ``F``, then ``J-Recall``, ``F-Recall``, ``J-Decay``,
        ``F-Decay`` and ``V`` where the protocol reports them."""
        rules = get_protocol(self.protocol)
        scores = {"J": self.j, "F": self.f}
        j = np.array([frame.j for frame in self.frames])
        f = np.array([frame.f for frame in self.frames])
        if rules.recall:
            scores |= {"J-Recall": _recall(j) * 100, "F-Recall": _recall(f) * 100}
        if rules.decay:
            scores |= {"J-Decay": _decay(j) * 100, "F-Decay": _decay(f) * 100}
        if rules.stability:
            scores["V"] = _stability(j, f) * 100
        return scores


@dataclass
class EvaluationResult:
    """Scores of every object; global means over the scored ones."""

    objects: list[ObjectScore]
    skip_first_and_last: bool = True
    ignored_files: list[Path] = field(default_factory=list)
    """Ground-truth files that are not PNG masks (``Thumbs.db``, ``.DS_Store``, a stray JPEG), not scored."""
    protocol: str | None = None
    """The name of the :class:`Protocol` the objects were scored by (by default the objects' own, else SA-V's)."""
    warnings: list[str] = field(default_factory=list)
    """What the scores leave out that the user should know (predicted labels that are no object of a video)."""
    protocol_origin: str = ""
    """How the protocol was picked (:attr:`GroundTruthSource.origin`)."""

    def __post_init__(self) -> None:
        if self.protocol is None:
            self.protocol = self.objects[0].protocol if self.objects else "sav"

    @property
    def scored(self) -> list[ObjectScore]:
        return [score for score in self.objects if score.scored]

    @property
    def unscored(self) -> list[ObjectScore]:
        return [score for score in self.objects if not score.scored]

    @property
    def j(self) -> float:
        return float(np.mean([score.j for score in self._require_scored()]))

    @property
    def f(self) -> float:
        return float(np.mean([score.f for score in self._require_scored()]))

    @property
    def jf(self) -> float:
        return (self.j + self.f) / 2

    def statistics(self) -> dict[str, float]:
        """The global scores the protocol reports: ``J&F``, ``J``, ``F`` and the means over the scored objects of
        their other statistics (:meth:`ObjectScore.statistics`)."""
        return _mean_statistics(self._require_scored())

    def video_statistics(self) -> dict[str, dict[str, float]]:
        """:meth:`statistics` of each video's scored objects, by video."""
        by_video: dict[str, list[ObjectScore]] = {}
        for score in self.scored:
            by_video.setdefault(score.video, []).append(score)
        return {video: _mean_statistics(scores) for video, scores in by_video.items()}

    def _require_scored(self) -> list[ObjectScore]:
        scored = self.scored
        if not scored:
            raise ValueError("no object could be scored: every object lacks ground truth in the scored frames")
        return scored

    def to_json(self, per_frame: bool = False) -> dict:
        """``{"protocol", "global": {"J&F", "J", "F", ...}, "videos": {"<video>": {...}}, "objects":
        {"<video>/<obj>": {"J", "F", ...}}, ...}`` at full precision (``...``: the protocol's other statistics)."""
        objects = {}
        for score in self.scored:
            entry = score.statistics()
            if per_frame:
                entry["frames"] = {frame.frame: {"J": frame.j, "F": frame.f} for frame in score.frames}
            objects[score.key] = entry
        return {
            "protocol": self.protocol,
            "global": self.statistics(),
            "videos": self.video_statistics(),
            "objects": objects,
            "unscored": {score.key: score.problem for score in self.unscored},
            "ignored_files": [str(path) for path in self.ignored_files],
            "warnings": self.warnings,
            "skip_first_and_last": self.skip_first_and_last,
        }

    def results_csv(self) -> str:
        """The table the SA-V evaluator writes to ``results.csv`` (one decimal); other protocols add the
        statistics they report (J-Recall, F-Recall, J-Decay, F-Decay, V) as columns."""
        width = max([len("Global score")] + [len(score.video) for score in self.objects])
        extra = [name for name in self.statistics() if name not in ("J&F", "J", "F")]

        def cells(scores: dict[str, float]) -> str:
            return "".join(f", {scores[name]:>{max(len(name), 5)}.1f}" for name in extra)

        lines = [
            f"{'sequence':<{width}},{'obj':>3}, {'J&F':>4}, {'J':>4}, {'F':>4}" + "".join(f", {n:>5}" for n in extra),
            f"{'Global score':<{width}},{'':>3}, {self.jf:.1f}, {self.j:.1f}, {self.f:.1f}" + cells(self.statistics()),
        ]
        for score in self.scored:
            lines.append(
                f"{score.video:<{width}},{score.obj:0>3}, {score.jf:>4.1f}, {score.j:>4.1f}, {score.f:>4.1f}"
                + cells(score.statistics())
            )
        return "\n".join(lines) + "\n"


def _mean_statistics(scores: Sequence[ObjectScore]) -> dict[str, float]:
    """J&F and the means over ``scores`` of each statistic they report (J&F from the mean J and F)."""
    per_object = [score.statistics() for score in scores]
    means = {name: float(np.mean([values[name] for values in per_object])) for name in per_object[0]}
    return {"J&F": (means["J"] + means["F"]) / 2} | means


class _ObjectScorer:
    """Accumulates one object's frame scores; under SA-V's rule, from its first appearance in ground truth or
    prediction."""

    def __init__(self, video: str, obj: str, protocol: Protocol = PROTOCOLS["sav"]):
        self.score = ObjectScore(video, obj, protocol=protocol.name)
        self.every_frame = not protocol.from_first_appearance
        self.appeared = False
        self.in_ground_truth = False

    def add(self, frame: str, gt: np.ndarray, pred: np.ndarray) -> None:
        """Score a frame's masks (equal shapes, non-zero pixels foreground), cropped to where either has any."""
        window = active_window(gt, pred)
        if window is None:
            if self.appeared or self.every_frame:
                self.score.frames.append(FrameScore(frame, 1.0, 1.0))
            return
        self.appeared = True
        gt_crop, pred_crop = gt[window], pred[window]
        self.in_ground_truth = self.in_ground_truth or bool(gt_crop.any())
        self.score.frames.append(FrameScore(frame, *window_scores(gt_crop, pred_crop, tolerance_radius(gt.shape))))

    def result(self, frame_count: int, skip_first_and_last: bool) -> ObjectScore:
        skipped = " after skipping the first and last" if skip_first_and_last else ""
        if self.every_frame and not self.score.frames:
            self.score.problem = f"no scored frame among its {frame_count} annotated frames{skipped}"
        elif not self.every_frame and not self.in_ground_truth:
            self.score.frames.clear()
            self.score.problem = f"no ground-truth mask in its {frame_count} annotated frames{skipped}"
        return self.score


def scored_frames(frame_names: Sequence[str], skip_first_and_last: bool) -> Sequence[str]:
    """The annotated frames that are scored: all, or all but the first and last."""
    return frame_names[1:-1] if skip_first_and_last else frame_names


def score_object(
    frame_names: Sequence[str],
    load_pair: Callable[[str], MaskPair],
    *,
    video: str = "",
    obj: str = "",
    skip_first_and_last: bool = True,
    protocol: str | Protocol = "sav",
) -> ObjectScore:
    """Score one object. ``frame_names``: its scored frames' candidates in order (its annotated frames);
    ``load_pair(name)``: the (gt, pred) masks of that frame, equal shapes, non-zero pixels foreground. Only the
    scored frames are loaded. ``protocol`` gives the rule for frames before the object appears."""
    scorer = _ObjectScorer(video, obj, get_protocol(protocol))
    frames = scored_frames(frame_names, skip_first_and_last)
    for name in frames:
        scorer.add(name, *load_pair(name))
    return scorer.result(len(frame_names), skip_first_and_last)


GroundTruth = Mapping[str, Mapping[int, "np.ndarray | None"]]
PredictionLoader = Callable[[str, int], "np.ndarray | None"]


def score_video(
    protocol: str | Protocol,
    video: str,
    gt: GroundTruth,
    pred: PredictionLoader,
    *,
    annotated: Sequence[int] | None = None,
    object_ranges: Mapping[str, LvosRange | tuple[int, int]] | None = None,
    frame_names: Callable[[int], str] = frame_name,
    skip_first_and_last: bool | None = None,
) -> list[ObjectScore]:
    """Score one video's objects in memory under ``protocol`` (a name of :data:`PROTOCOLS` or a :class:`Protocol`).

    ``gt``: object id -> {annotated frame index -> its ground-truth mask (non-zero pixels are the object; ``None``
    or a missing frame is empty)}; it may be a lazy mapping: only the scored frames are indexed.
    ``pred(obj, frame)``: the predicted mask of that object on that frame, ``None`` for empty; called once per
    scored frame and object, in frame order.
    ``annotated``: the video's annotated frames (every frame with a ground-truth file; DAVIS and LVOS score
    objects on them); defaults to the frames of all objects in ``gt``.
    ``object_ranges`` (LVOS): each object's range, either its meta ``frame_range`` ``(start, end, frame_nums)``
    (:func:`lvos_ranges`: scored on the annotated frames whose number, read from ``frame_names``, is among
    :func:`lvos_frame_numbers`) or ``(first, stop)`` frame indices (scored on the annotated frames in
    ``[first, stop)``, the first and last skipped); an object without a range is scored on all annotated frames.
    ``frame_names(index)``: the name a frame score carries (``00042``).
    ``skip_first_and_last``: defaults to the protocol's rule.

    Objects are scored in the order of ``gt`` (DAVIS: by label). Under the DAVIS rules, object ids are labels
    (``"1"``, ``"002"``); the objects are 1..N, N the largest label on the first annotated frame, and an object
    of those missing from ``gt`` is scored as empty.
    """
    rules = get_protocol(protocol)
    skip = rules.skip_first_and_last if skip_first_and_last is None else skip_first_and_last
    frames = sorted(set(annotated) if annotated is not None else {n for masks in gt.values() for n in masks})

    def ground_truth(obj: str | None, frame: int) -> np.ndarray | None:
        if obj is None:  # the union of the objects
            masks = [mask for masks in gt.values() if (mask := masks.get(frame)) is not None]
            return np.logical_or.reduce([np.asarray(mask) > 0 for mask in masks]) if masks else None
        mask = gt.get(obj, {}).get(frame)
        return None if mask is None else np.asarray(mask) > 0

    def prediction(obj: str | None, frame: int) -> np.ndarray | None:
        if obj is None:
            masks = [mask for other in gt if (mask := pred(other, frame)) is not None]
            return np.logical_or.reduce([np.asarray(mask) > 0 for mask in masks]) if masks else None
        mask = pred(obj, frame)
        return None if mask is None else np.asarray(mask) > 0

    def frame_shape(frame: int) -> tuple[int, ...]:
        """The shape of the video's masks, from any ground-truth mask (that frame's first)."""
        for masks in (masks for masks in gt.values() if masks.get(frame) is not None):
            return np.shape(masks[frame])
        for mask in (mask for masks in gt.values() for mask in masks.values() if mask is not None):
            return np.shape(mask)
        raise ValueError(f"{video}: no ground-truth mask to take the frame size from")

    def load_pair(obj: str | None, name: str, frame: int) -> MaskPair:
        gt_mask, pred_mask = ground_truth(obj, frame), prediction(obj, frame)
        shape = next((m.shape for m in (gt_mask, pred_mask) if m is not None), None) or frame_shape(frame)
        gt_mask = np.zeros(shape, bool) if gt_mask is None else gt_mask
        pred_mask = np.zeros(shape, bool) if pred_mask is None else pred_mask
        if gt_mask.shape != pred_mask.shape:
            raise ValueError(
                f"{video}/{obj} frame {name}: ground truth {gt_mask.shape} and prediction {pred_mask.shape} differ"
            )
        return gt_mask, pred_mask

    def score(obj: str | None, name: str, object_frames: Sequence[int], skipping: bool = skip) -> ObjectScore:
        names = {frame_names(n): n for n in object_frames}
        return score_object(
            list(names),
            lambda frame: load_pair(obj, frame, names[frame]),
            video=video,
            obj=name,
            skip_first_and_last=skipping,
            protocol=rules,
        )

    if rules.objects == "own":
        return [score(obj, obj, sorted(masks)) for obj, masks in gt.items()]
    if rules.objects == "union":
        return [score(None, object_name(1), frames)] if frames else []
    if rules.objects == "range":
        ranges = object_ranges or {}

        def scored_in_range(obj: str) -> ObjectScore:
            if obj not in ranges:
                return score(obj, obj, frames)
            if len(ranges[obj]) == 2:  # frame indices [first, stop)
                first, stop = ranges[obj]
                return score(obj, obj, [n for n in frames if first <= n < stop])
            numbers = set(lvos_frame_numbers(ranges[obj], skip))
            in_range = [n for n in frames if is_number_name(name := frame_names(n)) and int(name) in numbers]
            return score(obj, obj, in_range, False)

        return [scored_in_range(obj) for obj in gt]
    labels = {_label(obj, video): obj for obj in gt}
    on_first = [ground_truth(obj, frames[0]) if frames else None for obj in labels.values()]
    count = max((label for label, mask in zip(labels, on_first) if mask is not None and mask.any()), default=0)
    objects = [labels.get(label, object_name(label)) for label in range(1, count + 1)]
    return [score(obj, obj, frames) for obj in objects]


def _label(obj: str, video: str) -> int:
    """A DAVIS object id's label (``"2"``, ``"002"``)."""
    if not is_number_name(obj):
        raise ValueError(
            f"{video}: object id {obj!r} is not a label; the DAVIS rules number objects 1..N as in the palette PNGs"
        )
    return int(obj)


def evaluate_object(
    gt_masks: Sequence[np.ndarray],
    pred_masks: Sequence[np.ndarray | None],
    *,
    frame_names: Sequence[str] | None = None,
    video: str = "",
    obj: str = "",
    skip_first_and_last: bool = True,
) -> ObjectScore:
    """Score one object from in-memory (or lazy) mask sequences aligned with its annotated frames.

    Masks are read as ``mask > 0``; a ``None`` prediction counts as empty. Sequences are only indexed at the
    scored frames, so lazy sequences decode nothing else.
    """
    if len(pred_masks) != len(gt_masks):
        raise ValueError(f"{video}/{obj}: {len(gt_masks)} ground-truth masks but {len(pred_masks)} predictions")
    names = list(frame_names) if frame_names is not None else [frame_name(i) for i in range(len(gt_masks))]
    index_of = {name: i for i, name in enumerate(names)}

    def load_pair(name: str) -> MaskPair:
        gt = np.asarray(gt_masks[index_of[name]]) > 0
        pred = pred_masks[index_of[name]]
        pred = np.zeros_like(gt) if pred is None else np.asarray(pred) > 0
        if gt.shape != pred.shape:
            raise ValueError(f"{video}/{obj} frame {name}: ground truth {gt.shape} and prediction {pred.shape} differ")
        return gt, pred

    return score_object(names, load_pair, video=video, obj=obj, skip_first_and_last=skip_first_and_last)


@dataclass(frozen=True)
class _FolderEvaluator:
    """Scores one video of a ground-truth folder against the prediction folder (picklable for a pool)."""

    gt_root: Path
    pred_root: Path
    skip_first_and_last: bool
    allow_missing: bool
    protocol: Protocol = PROTOCOLS["sav"]
    object_ranges: Mapping[str, Mapping[str, LvosRange]] | None = None

    def __call__(self, video: str) -> tuple[list[ObjectScore], list[Path], list[str]]:
        """The video's object scores, the files skipped as not masks (``Thumbs.db``, a stray JPEG) and warnings."""
        folder = self.gt_root / video
        entries = _folder_entries(folder)
        if entries.folders and entries.masks:
            raise MaskFormatError(
                f"{folder}: holds both object folders and PNG masks; use one layout: <video>/<obj>/<frame>.png "
                "(SA-V) or <video>/<frame>.png (DAVIS)"
            )
        if not entries.folders:
            if self.protocol.objects == "own":
                return self._score_davis_video(video, entries.masks), entries.ignored, []
            scores, warnings = self._score_label_maps(video, entries.masks)
            return scores, entries.ignored, warnings
        if self.protocol.objects != "own":
            raise MaskFormatError(
                f"{folder}: an SA-V layout (one folder per object) but the {self.protocol.title} protocol scores "
                "palette label maps <video>/<frame>.png; pass --protocol sav, or DAVIS-layout folders"
            )
        scores, ignored = [], list(entries.ignored)
        for obj in entries.folders:
            safe_component(obj, f"{folder}: object folder")
            obj_entries = _folder_entries(folder / obj)
            ignored += obj_entries.ignored + [folder / obj / name for name in obj_entries.folders]
            scores.append(self._score_sav_object(video, obj, obj_entries.masks))
        return scores, ignored, []

    def _score_sav_object(self, video: str, obj: str, masks: list[str]) -> ObjectScore:
        gt_folder = self.gt_root / video / obj
        pred_folder = self.pred_root / video / obj
        file_of = _files_by_frame(masks)

        def load_pair(frame: str) -> MaskPair:
            gt_path, pred_path = gt_folder / file_of[frame], pred_folder / file_of[frame]
            gt = read_mask_png(gt_path)
            check_one_object_mask(gt, gt_path)
            pred = self._read_prediction(pred_path, gt_path, gt.shape)
            if pred is None:
                return gt, np.zeros_like(gt)
            check_one_object_mask(pred, pred_path)
            return gt, pred

        return score_object(
            list(file_of), load_pair, video=video, obj=obj, skip_first_and_last=self.skip_first_and_last
        )

    def _score_davis_video(self, video: str, masks: list[str]) -> list[ObjectScore]:
        file_of = _files_by_frame(masks)
        scorers: dict[int, _ObjectScorer] = {}
        for frame in scored_frames(list(file_of), self.skip_first_and_last):
            gt_path = self.gt_root / video / file_of[frame]
            gt = read_mask_png(gt_path)
            pred = self._read_prediction(self.pred_root / video / file_of[frame], gt_path, gt.shape)
            if pred is None:
                pred = np.zeros_like(gt)
            for label in (set(np.unique(gt).tolist()) | set(np.unique(pred).tolist())) - {0} - scorers.keys():
                scorers[label] = _ObjectScorer(video, object_name(label))
            for label, scorer in scorers.items():
                scorer.add(frame, gt == label, pred == label)
        results = [scorer.result(len(file_of), self.skip_first_and_last) for _, scorer in sorted(scorers.items())]
        # Like the official tool, objects that appear only in the prediction are not objects of the video.
        return [score for score in results if score.scored]

    def _score_label_maps(self, video: str, masks: list[str]) -> tuple[list[ObjectScore], list[str]]:
        """A DAVIS-layout video under the DAVIS, DAVIS 2016 or LVOS rules, each frame's PNGs decoded once; the
        warnings name predicted labels that are no object of the video."""
        file_of = _files_by_frame(masks)
        names = list(file_of)
        rules, skip = self.protocol, self.skip_first_and_last
        first = read_mask_png(self.gt_root / video / file_of[names[0]]) if names else np.zeros(0, np.uint8)
        # DAVIS 2016's binary masks mark the object 255; in label maps 255 is void (background when scoring)
        binary = not np.any((first > 0) & (first != VOID_LABEL))
        if rules.objects == "union":
            labels = {1: names}
        elif rules.objects == "range":
            labels = self._objects_in_range(video, names)
        else:  # "first-frame": labels 1..N of the first annotated frame
            labels = {label: names for label in range(1, int(first[first != VOID_LABEL].max(initial=0)) + 1)}
        scored = {  # LVOS ranges come skipped already
            label: set(frames if rules.objects == "range" else scored_frames(frames, skip))
            for label, frames in labels.items()
        }
        scorers = {label: _ObjectScorer(video, object_name(label), rules) for label in labels}
        extra: set[int] = set()
        top = max(labels, default=0)
        for frame in names:
            here = [label for label in labels if frame in scored[label]]
            if not here:
                continue
            gt_path = self.gt_root / video / file_of[frame]
            gt = read_mask_png(gt_path)
            pred = self._read_prediction(self.pred_root / video / file_of[frame], gt_path, gt.shape)
            pred = np.zeros_like(gt) if pred is None else pred
            if rules.objects == "union":
                scorers[1].add(frame, (gt > 0) if binary else (gt > 0) & (gt != VOID_LABEL), pred > 0)
                continue
            if pred.max(initial=0) > top:
                extra.update(np.unique(pred[pred > top]).tolist())
            for label in here:
                scorers[label].add(frame, gt == label, pred == label)
        extra -= set(labels)
        warnings = (
            [
                f"{self.pred_root / video}: predicted labels {sorted(extra)} are no objects of the ground truth "
                f"(objects {min(labels, default=0)}..{max(labels, default=0)}); not scored"
            ]
            if extra
            else []
        )
        results = [scorers[label].result(len(labels[label]), skip) for label in sorted(labels)]
        if not labels:
            warnings.append(f"{self.gt_root / video}: no object on its first annotated frame; nothing scored")
        return results, warnings

    def _objects_in_range(self, video: str, names: list[str]) -> dict[int, list[str]]:
        """LVOS: each object's annotated frames within its valid range ``[start, end)`` (frame numbers)."""
        ranges = (self.object_ranges or {}).get(video)
        if ranges is None:
            raise ValueError(
                f"{self.gt_root / video}: the LVOS protocol needs each object's valid frame range (LVOS's meta.json)"
            )
        numbers = {int(name): name for name in names if is_number_name(name)}
        return {
            _label(obj, video): [
                numbers[n] for n in lvos_frame_numbers(bounds, self.skip_first_and_last) if n in numbers
            ]
            for obj, bounds in ranges.items()
        }

    def _read_prediction(self, path: Path, gt_path: Path, shape: tuple[int, ...]) -> np.ndarray | None:
        """The stored predicted mask, or None when it is missing and missing masks count as empty."""
        if not path.exists():
            if self.allow_missing:
                return None
            raise MissingPredictionError(
                f"{path}: predicted mask missing for ground truth {gt_path}; write it, or pass --allow-missing to "
                "score missing masks as empty"
            )
        pred = read_mask_png(path)
        if pred.shape != shape:
            raise MaskFormatError(
                f"shape mismatch: ground truth {gt_path} is {shape}, prediction {path} is {pred.shape}"
            )
        return pred


@dataclass(frozen=True)
class _FolderEntries:
    """A ground-truth folder's sub-folders, PNG masks and other files (sorted names; ``ignored`` as paths)."""

    folders: list[str]
    masks: list[str]
    ignored: list[Path]


def _is_hidden(name: str) -> bool:
    """A hidden entry (``.ipynb_checkpoints``, macOS's ``._00000.png``): never a video, object or mask."""
    return name.startswith(".")


def _folder_entries(folder: Path) -> _FolderEntries:
    folders, masks, ignored = [], [], []
    for entry in sorted(os.scandir(folder), key=lambda entry: entry.name):
        if _is_hidden(entry.name):
            ignored.append(folder / entry.name)
        elif entry.is_dir():
            folders.append(entry.name)
        elif entry.name.lower().endswith(".png"):
            masks.append(entry.name)
        else:
            ignored.append(folder / entry.name)
    return _FolderEntries(folders, masks, ignored)


def _files_by_frame(masks: list[str]) -> dict[str, str]:
    """Frame name (file stem) -> file name of the annotated frames, in sorted file-name order."""
    return {Path(name).stem: name for name in masks}


def list_videos(root: Path) -> list[str]:
    """Sorted names of the video folders in ``root`` (hidden folders are not videos)."""
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder; pass the folder that holds one sub-folder per video")
    return sorted(entry.name for entry in root.iterdir() if entry.is_dir() and not _is_hidden(entry.name))


@dataclass(frozen=True)
class GroundTruthSource:
    """Where a ground truth's videos are and how they are scored (:func:`resolve_ground_truth`)."""

    folder: Path
    """The folder holding one folder per video."""
    videos: list[str] | None
    """The videos to score (a split's), or None for every video folder."""
    protocol: str
    origin: str
    """How the protocol was picked, for the user: ``"--protocol"``, ``"the lvos layout of /data/LVOS/valid"``."""
    object_ranges: dict[str, dict[str, LvosRange]] | None = None
    """LVOS: video -> object id -> its ``frame_range`` (:func:`lvos_ranges`), from the meta JSON."""


def resolve_ground_truth(
    gt_root: str | os.PathLike, protocol: str | None = None, split: str | None = None
) -> GroundTruthSource:
    """Find the ground truth of ``gt_root``: a dataset folder of a known layout (DAVIS/, LVOS/valid, sav_val/:
    its ``split``'s videos), an annotation folder inside one (DAVIS/Annotations/480p: its videos, the split's when
    ``split`` is given) or a bare folder of videos. The protocol is ``protocol`` when given, else the layout's,
    else :func:`detect_protocol`'s from the folder shapes."""
    gt_root = Path(gt_root)
    found = next(
        (
            (layout, root)
            for root in (gt_root, *gt_root.parents[:2])
            for layout in LAYOUTS.values()
            if layout.matches(root)
        ),
        None,
    )
    if found is None:
        if (gt_root / EVAL_ANNOTATIONS_FOLDER).is_dir():  # an SA-V split without its frames
            raise ValueError(
                f"{gt_root}: an SA-V split folder; pass {gt_root / EVAL_ANNOTATIONS_FOLDER} as the ground truth"
            )
        folder, videos = _frameless_davis(gt_root, split) or (gt_root, None)
        chosen = protocol or detect_protocol(folder)
        return GroundTruthSource(folder, videos, chosen, "--protocol" if protocol else f"the folder shapes of {folder}")
    layout, root = found
    chosen = protocol or (layout.name if layout.name in PROTOCOLS else layout.protocol)
    if chosen not in PROTOCOLS:
        raise ValueError(
            f"{root}: a {layout.name} dataset, scored by its evaluation server ({layout.protocol}; its val/test "
            "ground truth is hidden): write the server's zip with sam2-plugins predict and upload it, or pass "
            f"--protocol ({', '.join(PROTOCOLS)}) to score these masks by another benchmark's rules"
        )
    folder, videos = gt_root, None
    if root == gt_root or split is not None or chosen == "lvos":
        listed = layout.videos(root, split)
        if root == gt_root:
            folders = {video.annotations_folder.parent for video in listed if hasattr(video, "annotations_folder")}
            if len(folders) != 1:
                raise ValueError(
                    f"{root}: a {layout.name} dataset without one folder of PNG annotations for its videos; pass "
                    "the folder that holds one annotation folder per video"
                )
            folder = folders.pop()
        videos = [video.video_id for video in listed] if root == gt_root or split is not None else None
        ranges = {video.video_id: lvos_ranges(video) for video in listed} if chosen == "lvos" else None
    else:
        ranges = None
    origin = "--protocol" if protocol else f"the {layout.name} layout of {root}"
    return GroundTruthSource(folder, videos, chosen, origin, ranges)


LVOS_STEP = 5
"""LVOS numbers its frames at 30 fps and annotates every 5th."""


def _frameless_davis(root: Path, split: str | None) -> tuple[Path, list[str] | None] | None:
    """A DAVIS folder without its frames (as the official evaluator's CodaLab mode takes it): its
    ``Annotations/480p`` (or ``Full-Resolution``) and the sequences of ``ImageSets/2017/<split>.txt`` (default
    val; every sequence when there is no list)."""
    folder = next((root / "Annotations" / res for res in RESOLUTIONS if (root / "Annotations" / res).is_dir()), None)
    if folder is None:
        return None
    try:
        return folder, LAYOUTS["davis"]._listed(root, split or "val")[1]
    except FileNotFoundError:
        if split is not None:
            raise
        return folder, None


def lvos_frame_numbers(bounds: LvosRange, skip_first_and_last: bool = True) -> list[int]:
    """The frame numbers the official LVOS evaluator scores an object with ``frame_range`` ``bounds`` on:
    ``start, start + 5, ...`` before ``end``, at most ``frame_nums`` of them, without the first and the
    ``frame_nums``-th when skipping (the last, when ``end`` is past the last annotated frame)."""
    start, end, count = bounds
    numbers = list(range(start, end, LVOS_STEP))[:count]
    return numbers[1 : count - 1] if skip_first_and_last else numbers


def lvos_ranges(video: VosVideo) -> dict[str, LvosRange]:
    """Each object's ``frame_range`` from the meta JSON of an LVOS video (the layout's ``meta_path``)."""
    objects = read_meta_videos(video.meta_path)[video.video_id]["objects"]
    ranges = {}
    for obj, fields in objects.items():
        bounds = fields.get("frame_range", {}) if isinstance(fields, dict) else {}
        try:
            ranges[str(obj)] = (int(bounds["start"]), int(bounds["end"]), int(bounds["frame_nums"]))
        except (KeyError, TypeError, ValueError):
            raise MaskFormatError(
                f'{video.meta_path}: object {obj} of video {video.video_id} needs "frame_range": {{"start", "end", '
                '"frame_nums"}} numbers, as the LVOS evaluator reads them; re-download the meta file'
            ) from None
    return ranges


def detect_protocol(gt_root: str | os.PathLike) -> str:
    """The scoring protocol a ground-truth folder's layout calls for: ``"sav"`` for one folder per object,
    ``"davis-2016"`` for DAVIS-layout binary masks (first frames holding only 0 and 255), else ``"davis"``."""
    gt_root = Path(gt_root)
    binary = None
    for video in list_videos(gt_root):
        entries = _folder_entries(gt_root / video)
        if entries.folders:
            return "sav"
        if entries.masks:
            labels = set(np.unique(read_mask_png(gt_root / video / entries.masks[0])).tolist())
            binary = (binary is not False) and labels <= {0, VOID_LABEL} and VOID_LABEL in labels
    return "davis-2016" if binary else "davis"


def evaluate_folders(
    gt_root: str | os.PathLike,
    pred_root: str | os.PathLike,
    *,
    protocol: str | None = None,
    split: str | None = None,
    num_processes: int = 1,
    skip_first_and_last: bool | None = None,
    allow_missing: bool = False,
    strict: bool = False,
    progress: Callable[[Iterable, int], Iterable] | None = None,
    object_ranges: Mapping[str, Mapping[str, LvosRange]] | None = None,
) -> EvaluationResult:
    """Evaluate every video of ``gt_root`` (SA-V or DAVIS layout, or a dataset folder: see
    :func:`resolve_ground_truth`) against ``pred_root``.

    ``protocol``: the scoring rules (a :data:`PROTOCOLS` name), by default the layout's; ``split``: a dataset's
    split; ``skip_first_and_last`` defaults to the protocol's rule; ``object_ranges`` (LVOS, read from the
    dataset's meta JSON when not given): video -> object id -> its valid range ``[start, end)`` of frame numbers.
    Missing prediction videos, objects or frames are errors naming them, unless ``allow_missing`` scores them
    as empty masks. ``strict`` also rejects prediction videos that have no ground truth. ``num_processes`` > 1
    scores videos in parallel; ``progress(iterable, total)`` may wrap the per-video iterator (e.g. tqdm).
    """
    source = resolve_ground_truth(gt_root, protocol, split)
    gt_root, pred_root = source.folder, Path(pred_root)
    videos = source.videos if source.videos is not None else list_videos(gt_root)
    videos = [safe_component(video, f"{gt_root}: video folder") for video in videos]
    if not videos:
        raise ValueError(
            f"{gt_root}: holds no videos (no sub-folders); pass the folder with one sub-folder per video, "
            "e.g. sav_val/Annotations_6fps"
        )
    predicted = set(list_videos(pred_root))
    missing = [video for video in videos if video not in predicted]
    if missing and not allow_missing:
        raise MissingPredictionError(
            f"{pred_root}: no predictions for {len(missing)} ground-truth video(s): {', '.join(missing[:10])}; "
            "predict them, or pass --allow-missing to score them as empty (the official tool silently drops them)"
        )
    extra = sorted(predicted - set(videos))
    if extra and strict:
        raise ValueError(f"{pred_root}: videos without ground truth in {gt_root}: {', '.join(extra[:10])} (--strict)")
    rules = get_protocol(source.protocol)
    skip = rules.skip_first_and_last if skip_first_and_last is None else skip_first_and_last
    ranges = object_ranges if object_ranges is not None else source.object_ranges
    evaluator = _FolderEvaluator(gt_root, pred_root, skip, allow_missing, rules, ranges)
    if num_processes > 1 and len(videos) > 1:
        with Pool(min(num_processes, len(videos))) as pool:
            per_video = list(_with_progress(pool.imap(evaluator, videos), len(videos), progress))
    else:
        per_video = list(_with_progress(map(evaluator, videos), len(videos), progress))
    beside_videos = sorted(
        gt_root / entry.name for entry in os.scandir(gt_root) if not entry.is_dir() or _is_hidden(entry.name)
    )
    return EvaluationResult(
        [score for scores, _, _ in per_video for score in scores],
        skip,
        ignored_files=beside_videos + [path for _, ignored, _ in per_video for path in ignored],
        protocol=rules.name,
        protocol_origin=source.origin,
        warnings=[warning for _, _, warnings in per_video for warning in warnings],
    )


def _with_progress(items: Iterable, total: int, progress: Callable | None) -> Iterable:
    return items if progress is None else progress(items, total)
