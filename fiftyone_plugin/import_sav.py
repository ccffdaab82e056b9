"""Operator ``import_sav``: an SA-V train, val or test download as a FiftyOne video dataset.

One video sample per SA-V video; frame field ``ground_truth`` holds one Detection per visible masklet on each
annotated frame (pixel-exact masks, ``index`` = track id unique in the video, ``masklet_id``, ``masklet_type``,
``stability_score`` for automatic ones) and an empty Detections on annotated frames with no visible object.
FiftyOne frame number = SA-V frame index + 1. val/test JPEG sequences get an H.264 mp4 for the App; each frame
keeps its JPEG in ``filepath``, the frames predictions are made on. A video with a missing or corrupt file is
reported and skipped; a video is added whole or not at all, and a rerun skips the videos already imported. An
overwrite replaces a video's sample only once its new sample is fully added: a failed one keeps the previous.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import fiftyone as fo
import fiftyone.operators as foo
import fiftyone.operators.types as types
from fiftyone import ViewField as F

from sam2_plugins.frames import FrameSource
from sam2_plugins.masks import MaskFormatError
from sam2_plugins.sav import EvalVideo, TrainVideo, list_train_videos, read_eval_split
from sam2_plugins.video_writer import FPS, write_mp4

from .completion import mark_finished, unfinished
from .forms import progress_reporter
from .masks import mask_to_detection
from .tracks import MASKLETS_FIELD, sav_object_name

STEP = "import_sav"
GT_FIELD = "ground_truth"


@dataclass
class ImportReport:
    """What an import did: videos added, skipped as already there, and failed (with the reason)."""

    imported: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


class _VideoError(ValueError):
    """One video cannot be imported; the message says which file and why."""


def _check_shape(mask, frame_size: tuple[int, int], where: str) -> None:
    if mask.shape != (frame_size[1], frame_size[0]):
        raise _VideoError(
            f"{where}: mask is {mask.shape[1]}x{mask.shape[0]} but the video is "
            f"{frame_size[0]}x{frame_size[1]}; the annotation does not belong to this video"
        )


def _add_detection(frames: dict[int, fo.Detections], number: int, mask, **attributes) -> bool:
    """Add the mask's Detection to frame ``number`` (an empty Detections marks an annotated frame); True if visible."""
    detections = frames.setdefault(number, fo.Detections())
    detection = mask_to_detection(mask, **attributes)
    if detection is not None:
        detections.detections.append(detection)
    return detection is not None


def _train_sample(video: TrainVideo, include_auto: bool) -> fo.Sample:
    metadata = fo.VideoMetadata.build_for(str(video.video_path))
    size = (metadata.frame_width, metadata.frame_height)
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
                _check_shape(mask, size, f"{masklet.source}: masklet[{k}] of {masklet.key}")
                extra = {} if masklet.stability_scores is None else {"stability_score": masklet.stability_scores[k]}
                _add_detection(
                    frames,
                    number,
                    mask,
                    label=name,
                    index=index,
                    masklet_id=masklet.masklet_id,
                    masklet_type=masklet.masklet_type,
                    **extra,
                )
            masklets.append(
                {
                    "index": index,
                    "masklet_id": masklet.masklet_id,
                    "masklet_type": masklet.masklet_type,
                    "size_rel": masklet.size_rel,
                    "size_abs": masklet.size_abs,
                    "size_bucket": masklet.size_bucket,
                    "visibility_changes": masklet.visibility_changes,
                    "first_appeared_frame": masklet.first_appeared_frame,
                    "frame_count": masklet.frame_count,
                    "edited_frame_count": masklet.edited_frame_count,
                    "annotated_frames": numbers,
                }
            )
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


def _eval_sample(video: EvalVideo, split: str, mp4_dir: Path) -> fo.Sample:
    source = video.frames()
    size = (source.width, source.height)
    frames: dict[int, fo.Detections] = {}
    masklets = []
    for index, obj in enumerate(video.object_ids):
        masklet_id = int(obj) if obj.isdigit() else index
        numbers = [int(frame) + 1 for frame in video.annotated_frames(obj)]
        visible = []
        for number in numbers:
            mask = video.mask(obj, f"{number - 1:05d}")
            _check_shape(mask, size, str(video.annotations_folder / obj / f"{number - 1:05d}.png"))
            if _add_detection(
                frames, number, mask, label=obj, index=index, masklet_id=masklet_id, masklet_type="manual"
            ):
                visible.append(number)
        masklets.append(
            {
                "index": index,
                "masklet_id": masklet_id,
                "masklet_type": "manual",
                "first_appeared_frame": visible[0] - 1 if visible else None,
                "frame_count": len(numbers),
                "annotated_frames": numbers,
            }
        )
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
    partial = mp4.with_name(f".{mp4.stem}.partial.mp4")
    try:
        write_mp4(iter(source), partial)
        partial.replace(mp4)
    finally:
        partial.unlink(missing_ok=True)


def _list_videos(dataset_dir: Path):
    """``(split, videos, failures)`` of an SA-V train root (shards) or a val/test root (``sav_*.txt``)."""
    if not dataset_dir.is_dir():
        raise FileNotFoundError(
            f"{dataset_dir}: no such folder; pass an SA-V train root (with sav_NNN shards) "
            "or a val/test root (with sav_val.txt or sav_test.txt)"
        )
    lists = sorted(dataset_dir.glob("sav_*.txt"))
    if lists:
        split = lists[0].stem[len("sav_") :]
        return split, read_eval_split(dataset_dir, split), {}
    failures: dict[str, str] = {}
    return "train", list_train_videos(dataset_dir, on_skip=failures.__setitem__), failures


def import_sav(
    dataset_dir: str | Path,
    dataset_name: str,
    include_auto: bool = True,
    max_videos: int | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int, str], None] | None = None,
) -> tuple[fo.Dataset, ImportReport]:
    """Import (or resume importing) an SA-V root into the persistent dataset ``dataset_name``."""
    dataset_dir = Path(dataset_dir)
    split, videos, failures = _list_videos(dataset_dir)
    videos = videos[:max_videos] if max_videos else videos
    dataset = fo.load_dataset(dataset_name) if fo.dataset_exists(dataset_name) else fo.Dataset(dataset_name)
    dataset.persistent = True
    if not dataset.has_sample_field("video_id"):
        dataset.add_sample_field("video_id", fo.StringField)
    dataset.create_index("video_id")  # one lookup per video on reruns
    report = ImportReport(failed=dict(failures))
    mp4_dir = Path(fo.config.default_dataset_dir) / "sam2-plugins" / dataset_name
    for position, video in enumerate(videos):
        previous_ids = dataset.match(F("video_id") == video.video_id).values("id")
        if previous_ids and not overwrite and not len(unfinished(dataset.select(previous_ids), STEP)):
            report.skipped.append(video.video_id)
            continue
        try:
            if split == "train":
                sample = _train_sample(video, include_auto)
            else:
                sample = _eval_sample(video, split, mp4_dir)
        except (_VideoError, MaskFormatError, OSError, ValueError) as error:
            report.failed[video.video_id] = str(error)
            continue
        # the previous samples (and their frames) go only once the new one is in; it is marked finished last, so a
        # job cut off in between leaves an unfinished sample that a rerun replaces
        dataset.add_sample(sample)
        if previous_ids:
            dataset.delete_samples(previous_ids)
        mark_finished(sample, STEP)
        report.imported.append(video.video_id)
        if progress is not None:
            progress(position + 1, len(videos), video.video_id)
    if dataset.media_type == "video":
        _declare_attributes(dataset)
    return dataset, report


def _declare_attributes(dataset: fo.Dataset) -> None:
    """Put the Detections' SA-V attributes in the schema (filterable in the App) without scanning every frame."""
    attributes = {"masklet_id": fo.IntField, "masklet_type": fo.StringField, "stability_score": fo.FloatField}
    for name, field_type in attributes.items():
        path = f"{GT_FIELD}.detections.{name}"
        if not dataset.has_frame_field(path):
            dataset.add_frame_field(path, field_type)


class ImportSav(foo.Operator):
    @property
    def config(self) -> foo.OperatorConfig:
        return foo.OperatorConfig(
            name="import_sav",
            label="SAM 2: import SA-V",
            description="Import SA-V train/val/test as videos",
            allow_immediate_execution=True,
            allow_delegated_execution=True,
            default_choice_to_delegated=True,
        )

    def resolve_input(self, ctx) -> types.Property:
        inputs = types.Object()
        inputs.str(
            "dataset_dir",
            label="SA-V folder",
            required=True,
            description="a train root (sav_NNN shards) or a val/test root (sav_val.txt / sav_test.txt)",
        )
        inputs.str("dataset_name", label="Dataset name", default="sa-v")
        inputs.bool("include_auto", label="Include automatic masklets", default=True)
        inputs.int("max_videos", label="Maximum videos", min=1, description="leave empty for all")
        inputs.bool("overwrite", label="Re-import videos already imported", default=False)
        return types.Property(inputs, view=types.View(label="Import SA-V"))

    def execute(self, ctx) -> dict:
        dataset, report = import_sav(
            ctx.params["dataset_dir"],
            ctx.params.get("dataset_name") or "sa-v",
            include_auto=ctx.params.get("include_auto", True),
            max_videos=ctx.params.get("max_videos"),
            overwrite=ctx.params.get("overwrite", False),
            progress=progress_reporter(ctx, "imported"),
        )
        return {
            "dataset": dataset.name,
            "imported": report.imported,
            "skipped": report.skipped,
            "failed": report.failed,
        }

    def resolve_output(self, ctx) -> types.Property:
        outputs = types.Object()
        outputs.str("dataset", label="Dataset")
        outputs.list("imported", types.String(), label="Imported videos")
        outputs.list("skipped", types.String(), label="Already imported")
        outputs.obj("failed", label="Failed videos (file and reason)")
        return types.Property(outputs)
