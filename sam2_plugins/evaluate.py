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
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from multiprocessing import Pool
from pathlib import Path

import numpy as np

from .datasets.sav_eval import EVAL_ANNOTATIONS_FOLDER
from .frame_names import frame_name, object_name
from .masks import MaskFormatError, check_one_object_mask, read_mask_png
from .metrics import active_window, tolerance_radius, window_scores
from .safe_names import safe_component

MaskPair = tuple[np.ndarray, np.ndarray]


class MissingPredictionError(FileNotFoundError):
    """A predicted mask, object or video that the ground truth needs is missing."""


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


@dataclass
class EvaluationResult:
    """Scores of every object; global means over the scored ones."""

    objects: list[ObjectScore]
    skip_first_and_last: bool = True
    ignored_files: list[Path] = field(default_factory=list)
    """Ground-truth files that are not PNG masks (``Thumbs.db``, ``.DS_Store``, a stray JPEG), not scored."""

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

    def _require_scored(self) -> list[ObjectScore]:
        scored = self.scored
        if not scored:
            raise ValueError("no object could be scored: every object lacks ground truth in the scored frames")
        return scored

    def to_json(self, per_frame: bool = False) -> dict:
        """``{"global": {"J&F", "J", "F"}, "objects": {"<video>/<obj>": {"J", "F"}}, ...}`` at full precision."""
        objects = {}
        for score in self.scored:
            entry = {"J": score.j, "F": score.f}
            if per_frame:
                entry["frames"] = {frame.frame: {"J": frame.j, "F": frame.f} for frame in score.frames}
            objects[score.key] = entry
        return {
            "global": {"J&F": self.jf, "J": self.j, "F": self.f},
            "objects": objects,
            "unscored": {score.key: score.problem for score in self.unscored},
            "ignored_files": [str(path) for path in self.ignored_files],
            "skip_first_and_last": self.skip_first_and_last,
        }

    def results_csv(self) -> str:
        """The table the official tool writes to ``results.csv`` (one decimal)."""
        width = max([len("Global score")] + [len(score.video) for score in self.objects])
        lines = [
            f"{'sequence':<{width}},{'obj':>3}, {'J&F':>4}, {'J':>4}, {'F':>4}",
            f"{'Global score':<{width}},{'':>3}, {self.jf:.1f}, {self.j:.1f}, {self.f:.1f}",
        ]
        for score in self.scored:
            lines.append(f"{score.video:<{width}},{score.obj:0>3}, {score.jf:>4.1f}, {score.j:>4.1f}, {score.f:>4.1f}")
        return "\n".join(lines) + "\n"


class _ObjectScorer:
    """Accumulates one object's frame scores, starting at its first appearance in ground truth or prediction."""

    def __init__(self, video: str, obj: str):
        self.score = ObjectScore(video, obj)
        self.appeared = False
        self.in_ground_truth = False

    def add(self, frame: str, gt: np.ndarray, pred: np.ndarray) -> None:
        """Score a frame's masks (equal shapes, non-zero pixels foreground), cropped to where either has any."""
        window = active_window(gt, pred)
        if window is None:
            if self.appeared:
                self.score.frames.append(FrameScore(frame, 1.0, 1.0))
            return
        self.appeared = True
        gt_crop, pred_crop = gt[window], pred[window]
        self.in_ground_truth = self.in_ground_truth or bool(gt_crop.any())
        self.score.frames.append(FrameScore(frame, *window_scores(gt_crop, pred_crop, tolerance_radius(gt.shape))))

    def result(self, frame_count: int, skip_first_and_last: bool) -> ObjectScore:
        if not self.in_ground_truth:
            skipped = " after skipping the first and last" if skip_first_and_last else ""
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
) -> ObjectScore:
    """Score one object. ``frame_names``: its annotated frames in order; ``load_pair(name)``: the (gt, pred)
    masks of that frame, equal shapes, non-zero pixels foreground. Only the scored frames are loaded."""
    scorer = _ObjectScorer(video, obj)
    frames = scored_frames(frame_names, skip_first_and_last)
    for name in frames:
        scorer.add(name, *load_pair(name))
    return scorer.result(len(frame_names), skip_first_and_last)


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

    def __call__(self, video: str) -> tuple[list[ObjectScore], list[Path]]:
        """The video's object scores, and the files skipped as not masks (``Thumbs.db``, a stray JPEG)."""
        folder = self.gt_root / video
        entries = _folder_entries(folder)
        if entries.folders and entries.masks:
            raise MaskFormatError(
                f"{folder}: holds both object folders and PNG masks; use one layout: <video>/<obj>/<frame>.png "
                "(SA-V) or <video>/<frame>.png (DAVIS)"
            )
        if not entries.folders:
            return self._score_davis_video(video, entries.masks), entries.ignored
        scores, ignored = [], list(entries.ignored)
        for obj in entries.folders:
            safe_component(obj, f"{folder}: object folder")
            obj_entries = _folder_entries(folder / obj)
            ignored += obj_entries.ignored + [folder / obj / name for name in obj_entries.folders]
            scores.append(self._score_sav_object(video, obj, obj_entries.masks))
        return scores, ignored

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


def evaluate_folders(
    gt_root: str | os.PathLike,
    pred_root: str | os.PathLike,
    *,
    num_processes: int = 1,
    skip_first_and_last: bool = True,
    allow_missing: bool = False,
    strict: bool = False,
    progress: Callable[[Iterable, int], Iterable] | None = None,
) -> EvaluationResult:
    """Evaluate every video of ``gt_root`` (SA-V or DAVIS layout) against ``pred_root``.

    Missing prediction videos, objects or frames are errors naming them, unless ``allow_missing`` scores them
    as empty masks. ``strict`` also rejects prediction videos that have no ground truth. ``num_processes`` > 1
    scores videos in parallel; ``progress(iterable, total)`` may wrap the per-video iterator (e.g. tqdm).
    """
    gt_root, pred_root = Path(gt_root), Path(pred_root)
    if (gt_root / EVAL_ANNOTATIONS_FOLDER).is_dir():
        raise ValueError(
            f"{gt_root}: an SA-V split folder; pass {gt_root / EVAL_ANNOTATIONS_FOLDER} as the ground truth"
        )
    videos = [safe_component(video, f"{gt_root}: video folder") for video in list_videos(gt_root)]
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
    evaluator = _FolderEvaluator(gt_root, pred_root, skip_first_and_last, allow_missing)
    if num_processes > 1 and len(videos) > 1:
        with Pool(min(num_processes, len(videos))) as pool:
            per_video = list(_with_progress(pool.imap(evaluator, videos), len(videos), progress))
    else:
        per_video = list(_with_progress(map(evaluator, videos), len(videos), progress))
    beside_videos = sorted(
        gt_root / entry.name for entry in os.scandir(gt_root) if not entry.is_dir() or _is_hidden(entry.name)
    )
    return EvaluationResult(
        [score for scores, _ in per_video for score in scores],
        skip_first_and_last,
        ignored_files=beside_videos + [path for _, ignored in per_video for path in ignored],
    )


def _with_progress(items: Iterable, total: int, progress: Callable | None) -> Iterable:
    return items if progress is None else progress(items, total)
