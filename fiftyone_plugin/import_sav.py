"""Operator ``import_sav``: an SA-V train, val or test download as a FiftyOne video dataset.

One video sample per SA-V video; frame field ``ground_truth`` holds one Detection per visible masklet on each
annotated frame (pixel-exact masks, ``index`` = track id unique in the video, ``masklet_id``, ``masklet_type``,
and for automatic masklets their ``stability_score`` on that frame) and an empty Detections on annotated frames with
no visible object. FiftyOne frame number = SA-V frame index + 1. val/test JPEG sequences get an H.264 mp4 for the
App; each frame keeps its JPEG in ``filepath``, the frames predictions are made on.

Nothing fails silently: a video with a missing, corrupt or mismatched file is reported as failed with the reason
while the others import, as is a video id that is not a plain folder name or names two videos (in two train shards,
on two lines of ``sav_val.txt``) and a val video whose JPEGs skip a frame number (masks are placed by number); an
import that imports nothing because every video failed raises, naming each. A video is added whole or not at all,
and a rerun skips the videos already imported. An overwrite replaces a video's sample only once its new sample is
fully added (a failed one keeps the previous), and so drops what later steps stored on it: :func:`overwrite_losses`
says which prediction fields and finished marks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import fiftyone as fo
import fiftyone.operators as foo
import fiftyone.operators.types as types
from eta.core.utils import ExecutableRuntimeError
from fiftyone import ViewField as F

from sam2_plugins.atomic import atomic_write
from sam2_plugins.datasets.sav_eval import EvalVideo, read_eval_split
from sam2_plugins.datasets.sav_train import ANNOTATION_STRIDE, TrainVideo, list_train_videos
from sam2_plugins.frame_names import is_number_name
from sam2_plugins.frames import FrameSource, FrameSourceError
from sam2_plugins.masks import MaskFormatError
from sam2_plugins.video_writer import FPS, write_mp4

from .completion import COMPLETED_FIELD, mark_finished, unfinished
from .forms import delegation_notice, folder_error, folder_input, mark_out_of_range, progress_reporter
from .masks import mask_to_detection
from .parameters import from_params
from .tracks import (
    MASKLET_ATTRIBUTES,
    MASKLETS_FIELD,
    MaskletSummary,
    declare_detection_attributes,
    sav_object_name,
)

STEP = "import_sav"
GT_FIELD = "ground_truth"
IMPORTED_SAMPLE_FIELDS = ("video_id", "video_environment", "video_split", "masklet_num", MASKLETS_FIELD)
IMPORTED_FRAME_FIELDS = (GT_FIELD, "filepath")
SAV_SPLIT_FOLDER = (
    "an SA-V split folder: a train root (with sav_NNN shards) or a val/test root (with sav_val.txt or sav_test.txt)"
)
"""What ``dataset_dir`` must be, as its errors name it."""


@dataclass
class ImportSavParams:
    """What ``import_sav`` imports, and how; the operator's form and the SDK share these defaults."""

    dataset_dir: str
    dataset_name: str = "sa-v"
    include_auto: bool = True
    max_videos: int | None = None
    overwrite: bool = False


@dataclass
class ImportReport:
    """What an import did: videos added, skipped as already there, and failed (video id -> file and reason)."""

    imported: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    replaced: list[str] = field(default_factory=list)
    """Videos re-imported over a previous sample, which took with it the fields and marks of ``deleted``."""
    deleted: tuple[list[str], list[str]] = ([], [])
    """``(fields, finished marks)`` the replaced samples held besides the import's own (:func:`overwrite_losses`)."""

    def failures(self) -> list[str]:
        return [f"{video_id}: {reason}" for video_id, reason in self.failed.items()]


class SavImportError(RuntimeError):
    """No video could be imported; the message names each failed video and why."""


class _VideoError(Exception):
    """One video cannot be imported; the message says which file and why."""


VIDEO_ERRORS = (_VideoError, MaskFormatError, FrameSourceError, FileNotFoundError)
"""What makes one video fail while the others import: its files are missing, corrupt or do not match."""


def _add_detection(frames: dict[int, fo.Detections], number: int, mask, **attributes) -> bool:
    """Add the mask's Detection to frame ``number`` (an empty Detections marks an annotated frame); True if visible."""
    detections = frames.setdefault(number, fo.Detections())
    detection = mask_to_detection(mask, **attributes)
    if detection is not None:
        detections.detections.append(detection)
    return detection is not None


def _video_metadata(path: Path) -> fo.VideoMetadata:
    try:
        return fo.VideoMetadata.build_for(str(path))
    except ExecutableRuntimeError as error:
        raise _VideoError(
            f"{path}: not a readable video (ffprobe cannot read its streams: cut off or corrupt); "
            "re-download this shard"
        ) from error


def _train_sample(video: TrainVideo, include_auto: bool) -> fo.Sample:
    metadata = _video_metadata(video.video_path)
    files = video.annotations(include_auto)
    frames: dict[int, fo.Detections] = {}
    masklets = []
    for masklet_file in files:
        for masklet in masklet_file.masklets:
            index = len(masklets)
            name = sav_object_name(masklet.masklet_id, masklet.masklet_type)
            numbers = [t + 1 for t in masklet.annotated_frames]
            for k, number in enumerate(numbers):
                mask = masklet.mask(k)
                if mask is None:
                    frames.setdefault(number, fo.Detections())
                    continue
                score = None if masklet.stability_scores is None else masklet.stability_scores[k]
                _add_detection(
                    frames,
                    number,
                    mask,
                    label=name,
                    index=index,
                    masklet_id=masklet.masklet_id,
                    masklet_type=masklet.masklet_type,
                    **({} if score is None else {"stability_score": score}),
                )
            summary = MaskletSummary(
                index=index,
                masklet_id=masklet.masklet_id,
                masklet_type=masklet.masklet_type,
                annotated_frames=numbers,
                first_appeared_frame=ANNOTATION_STRIDE * masklet.first_appeared_frame + 1,
                frame_count=masklet.frame_count,
                size_rel=masklet.size_rel,
                size_abs=masklet.size_abs,
                size_bucket=masklet.size_bucket,
                visibility_changes=masklet.visibility_changes,
                edited_frame_count=masklet.edited_frame_count,
            )
            masklets.append(summary.to_dict())
    manual = files[0]
    sample = fo.Sample(
        filepath=str(video.video_path),
        metadata=metadata,
        video_id=video.video_id,
        video_environment=manual.video_environment,
        video_split=manual.video_split,
        masklet_num=sum(f.masklet_num for f in files),
        **{MASKLETS_FIELD: masklets},
    )
    for number, detections in frames.items():
        sample.frames[number] = fo.Frame(**{GT_FIELD: detections})
    return sample


def _masklet_ids(video: EvalVideo) -> dict[str, int]:
    """Each object folder's masklet id: its number (SA-V names objects 000, 001, ...), else its position. Two folders
    of one id (``1`` and ``001``) are refused naming both: exported, they would be merged into one object's folder."""
    ids: dict[str, int] = {}
    for index, obj in enumerate(video.object_ids):
        masklet_id = int(obj) if is_number_name(obj) else index
        same = [other for other, taken in ids.items() if taken == masklet_id]
        if same:
            raise MaskFormatError(
                f"{video.annotations_folder}: object folders {same[0]!r} and {obj!r} both give masklet id "
                f"{masklet_id}, so they would be exported as one object; rename one of them"
            )
        ids[obj] = masklet_id
    return ids


def _eval_sample(video: EvalVideo, split: str, mp4_dir: Path) -> fo.Sample:
    source = video.frames()
    video.check_fits(source)  # frames named 0, 1, 2, ...: frame number = index + 1 = position in the video + 1
    size = (source.width, source.height)
    frames: dict[int, fo.Detections] = {}
    masklets = []
    for index, (obj, masklet_id) in enumerate(_masklet_ids(video).items()):
        annotated = video.annotated_frames(obj)
        numbers = [frame + 1 for frame in annotated]
        visible = []
        for frame, number in zip(annotated, numbers):
            mask = video.masks(frame, [obj])[obj]
            if _add_detection(
                frames, number, mask, label=obj, index=index, masklet_id=masklet_id, masklet_type="manual"
            ):
                visible.append(number)
        summary = MaskletSummary(
            index=index,
            masklet_id=masklet_id,
            masklet_type="manual",
            annotated_frames=numbers,
            first_appeared_frame=visible[0] if visible else None,
            frame_count=len(numbers),
        )
        masklets.append(summary.to_dict())
    mp4 = mp4_dir / f"{video.video_id}.mp4"
    _write_mp4_whole(source, mp4)
    metadata = fo.VideoMetadata(
        frame_width=size[0],
        frame_height=size[1],
        frame_rate=FPS,
        total_frame_count=len(source),
        duration=len(source) / FPS,
        mime_type="video/mp4",
        size_bytes=mp4.stat().st_size,
    )
    sample = fo.Sample(
        filepath=str(mp4),
        metadata=metadata,
        video_id=video.video_id,
        video_split=split,
        masklet_num=len(masklets),
        **{MASKLETS_FIELD: masklets},
    )
    for number, path in enumerate(source.paths, start=1):  # the frames, in the order of the mp4 and the predictor
        frame = fo.Frame(filepath=str(path))
        if number in frames:
            frame[GT_FIELD] = frames[number]
        sample.frames[number] = frame
    return sample


def _write_mp4_whole(source: FrameSource, mp4: Path) -> None:
    """Encode the frames to ``mp4`` through a temporary file: a failed encode leaves a previous ``mp4`` untouched."""
    mp4.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(mp4) as partial:
        write_mp4(iter(source), partial)


def _list_videos(dataset_dir: Path, failures: dict[str, str]) -> tuple[str, list]:
    """``(split, videos)`` of an SA-V train root (shards) or a val/test root (``sav_*.txt``).

    Videos with a missing file are left out and recorded in ``failures``.
    """
    if not dataset_dir.is_dir():
        raise FileNotFoundError(folder_error(str(dataset_dir), SAV_SPLIT_FOLDER))
    lists = sorted(dataset_dir.glob("sav_*.txt"))
    if lists:
        split = lists[0].stem[len("sav_") :]
        return split, read_eval_split(dataset_dir, split, on_skip=failures.__setitem__)
    return "train", list_train_videos(dataset_dir, on_skip=failures.__setitem__)


def overwrite_losses(dataset: fo.Dataset) -> tuple[list[str], list[str]]:
    """What re-importing a video deletes from its sample: ``(frame and sample fields, finished marks)``.

    The fields are those later steps added (predictions, evaluation scores); the marks their finished steps.
    """
    frame_fields = [f"frames.{name}" for name in dataset.get_frame_field_schema() or {}]
    sample_fields = list(dataset.get_field_schema())
    ours = {*IMPORTED_SAMPLE_FIELDS, COMPLETED_FIELD, *(f"frames.{name}" for name in IMPORTED_FRAME_FIELDS)}
    defaults = {*dataset._get_default_sample_fields(), *(f"frames.{n}" for n in dataset._get_default_frame_fields())}
    lost_fields = [name for name in sample_fields + frame_fields if name not in ours | defaults and name != "frames"]
    marks = dataset.distinct(COMPLETED_FIELD) if dataset.has_sample_field(COMPLETED_FIELD) else []
    return lost_fields, [mark for mark in marks if mark != STEP]


def describe_losses(lost_fields: list[str], marks: list[str]) -> str:
    """What :func:`overwrite_losses` found, in words."""
    return f"fields: {', '.join(lost_fields) or 'none'}; finished marks: {', '.join(marks) or 'none'}"


def import_sav(
    dataset_dir: str | Path,
    *,
    progress: Callable[[int, int, str], None] | None = None,
    **options,
) -> tuple[fo.Dataset, ImportReport]:
    """Import (or resume importing) an SA-V root into a persistent dataset; ``options`` are :class:`ImportSavParams`.

    Raises :class:`SavImportError` naming each failed video when none could be imported.
    """
    params = ImportSavParams(dataset_dir=str(dataset_dir), **options)
    report = ImportReport()
    split, videos = _list_videos(Path(params.dataset_dir), report.failed)
    videos = videos[: params.max_videos] if params.max_videos else videos
    existed = fo.dataset_exists(params.dataset_name)
    dataset = fo.load_dataset(params.dataset_name) if existed else fo.Dataset(params.dataset_name)
    dataset.persistent = True
    if not dataset.has_sample_field("video_id"):
        dataset.add_sample_field("video_id", fo.StringField)
    dataset.create_index("video_id")  # one lookup per video on reruns
    mp4_dir = Path(fo.config.default_dataset_dir) / "sam2-plugins" / dataset.slug  # a dataset name may hold '/'
    if params.overwrite and existed:
        report.deleted = overwrite_losses(dataset)
    for position, video in enumerate(videos):
        previous_ids = dataset.match(F("video_id") == video.video_id).values("id")
        if previous_ids and not params.overwrite and not len(unfinished(dataset.select(previous_ids), STEP)):
            report.skipped.append(video.video_id)
            continue
        try:
            sample = (
                _train_sample(video, params.include_auto) if split == "train" else _eval_sample(video, split, mp4_dir)
            )
        except VIDEO_ERRORS as error:
            report.failed[video.video_id] = str(error)
            continue
        # the previous samples (and their frames) go only once the new one is in; it is marked finished last, so a
        # job cut off in between leaves an unfinished sample that a rerun replaces
        dataset.add_sample(sample)
        if previous_ids:
            dataset.delete_samples(previous_ids)
            report.replaced.append(video.video_id)
        mark_finished(sample, STEP)
        report.imported.append(video.video_id)
        if progress is not None:
            progress(position + 1, len(videos), video.video_id)
    if report.failed and not report.imported and not report.skipped:
        if not existed and not len(dataset):
            dataset.delete()
        raise SavImportError(
            f"{params.dataset_dir}: no video imported, all {len(report.failed)} failed:\n"
            + "\n".join(report.failures())
        )
    if dataset.media_type == "video":
        declare_detection_attributes(dataset, GT_FIELD, MASKLET_ATTRIBUTES)
    return dataset, report


class ImportSav(foo.Operator):
    @property
    def config(self) -> foo.OperatorConfig:
        return foo.OperatorConfig(
            name="import_sav",
            label="SAM 2: import SA-V",
            description="Import SA-V train/val/test as videos",
            dynamic=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
            default_choice_to_delegated=True,
        )

    def resolve_input(self, ctx) -> types.Property:
        defaults = ImportSavParams(dataset_dir="")
        inputs = types.Object()
        folder_input(
            inputs,
            ctx,
            "dataset_dir",
            "SA-V folder",
            "a train root (sav_NNN shards) or a val/test root (sav_val.txt / sav_test.txt)",
            SAV_SPLIT_FOLDER,
        )
        inputs.str("dataset_name", label="Dataset name", default=defaults.dataset_name)
        inputs.bool("include_auto", label="Include automatic masklets", default=defaults.include_auto)
        inputs.int("max_videos", label="Maximum videos", min=1, description="leave empty for all")
        inputs.bool("overwrite", label="Re-import videos already imported", default=defaults.overwrite)
        name = ctx.params.get("dataset_name") or defaults.dataset_name
        if ctx.params.get("overwrite") and fo.dataset_exists(name):
            lost_fields, marks = overwrite_losses(fo.load_dataset(name))
            if lost_fields or marks:
                inputs.view(
                    "overwrite_warning",
                    types.Warning(
                        label="Re-importing a video deletes what later steps stored on it",
                        description=describe_losses(lost_fields, marks),
                    ),
                )
        mark_out_of_range(inputs, ctx)
        delegation_notice(inputs)
        return types.Property(inputs, view=types.View(label="Import SA-V"))

    def execute(self, ctx) -> dict:
        params = from_params(ImportSavParams, ctx.params)
        options = {name: value for name, value in vars(params).items() if name != "dataset_dir"}
        dataset, report = import_sav(params.dataset_dir, progress=progress_reporter(ctx, "imported"), **options)
        return {
            "dataset": dataset.name,
            "imported": report.imported,
            "skipped": report.skipped,
            "failed": report.failed,
            "failures": report.failures(),
            "summary": f"{len(report.imported)} imported, {len(report.skipped)} skipped, {len(report.failed)} failed",
            "replaced": report.replaced,
            "deleted": describe_losses(*report.deleted) if report.replaced else "nothing",
        }

    def resolve_output(self, ctx) -> types.Property:
        outputs = types.Object()
        outputs.str("dataset", label="Dataset")
        outputs.str("summary", label="Result")
        outputs.list("imported", types.String(), label="Imported videos")
        outputs.list("skipped", types.String(), label="Skipped: already imported")
        outputs.list("replaced", types.String(), label="Re-imported over their previous sample")
        outputs.str("deleted", label="Deleted with the previous samples")
        outputs.list("failures", types.String(), label="Failed videos (file and reason)")
        return types.Property(outputs)
