"""Operator ``finetune_sam2``: fine-tune SAM 2 on the ground-truth masklets of a view's videos, or on the instance
masks of a view's images (the data engine's retraining step), with ``sam2_plugins.training``.

The view's videos (or images) are split into training and held-out ones (``held_out_fraction``, seeded); the model
is trained with Meta's recipe (:class:`sam2_plugins.training.trainer.Finetuner`) and scored on the held-out ones
before and after: videos by J&F (each object prompted with its first mask and tracked), images by the mean IoU of one
click at each object's interior center (``held_out_iou``). Images train as Meta trains SA-1B: each image a clip of
one frame (``frames_per_clip`` is 1) with up to ``objects_per_clip`` of its instances. The checkpoint
(``{"model": state_dict}``, loading strictly in Meta's ``sam2`` and here) and its JSON sidecar are written to
``out``; the run is registered on the dataset under ``run_key`` (config, loss curve, ``jf_before`` / ``jf_after``
or ``iou_before`` / ``iou_after``: ``dataset.get_run_info(run_key)``, ``dataset.load_run_results(run_key)``; the
J&F panel shows it) and the checkpoint is then offered in ``apply_sam2``'s checkpoint input. A delegated run whose
worker died continues from the training state left beside ``out`` when it is run again with the same settings.
Grouped datasets mixing images and videos, clips, frames and patches views are refused. torch loads only when a run
starts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import fiftyone as fo
import fiftyone.core.media as fom
import fiftyone.operators as foo
import fiftyone.operators.types as types
import numpy as np

from sam2_plugins.model.official import DEFAULT_CHECKPOINT, DEVICE_CHOICES

from .forms import (
    FINETUNE_METHOD,
    _choices,
    checkpoint_input,
    delegation_notice,
    frame_field_input,
    image_size_input,
    mark_invalid,
    mark_out_of_range,
)
from .parameters import from_params
from .sample_images import image_gt_error, image_mask_fields, sample_images
from .sample_videos import sample_videos
from .views import videos_error, view_kind

DEFAULT_RUN_KEY = "finetune_sam2"


@dataclass
class FinetuneSam2Params:
    """What ``finetune_sam2`` trains; the operator's form and the SDK share these defaults."""

    gt_field: str = "ground_truth"
    checkpoint: str = DEFAULT_CHECKPOINT
    config: str | None = None
    image_size: int = 1024
    device: str = "auto"
    steps: int = 100
    frames_per_clip: int = 8
    objects_per_clip: int = 3
    lr: float = 5e-6
    freeze_image_encoder: bool = True
    """Meta's small-data choice: only the memory, prompt and mask modules learn."""
    held_out_fraction: float = 0.2
    """Share of the videos (at least one when there are two or more) kept out of training to measure J&F on."""
    seed: int = 0
    out: str | None = None
    """The checkpoint to write (.pt); None: ``<FiftyOne dataset dir>/sam2_tuned/<dataset>_<run_key>.pt``."""
    run_key: str = DEFAULT_RUN_KEY
    overwrite: bool = False


def default_out(dataset: fo.Dataset, run_key: str) -> Path:
    return Path(fo.config.default_dataset_dir) / "sam2_tuned" / f"{dataset.name}_{run_key}.pt"


def split_held_out(items: list, fraction: float, seed: int) -> tuple[list, list]:
    """``(train, held_out)`` videos or images: a seeded ``fraction`` of them (rounded) held out, at least one when
    there are two and never all."""
    if not 0 <= fraction < 1:
        raise ValueError(f"held_out_fraction must be in [0, 1), got {fraction}")
    count = min(len(items) - 1, max(1, round(fraction * len(items)))) if fraction > 0 else 0
    held = set(np.random.default_rng(seed).permutation(len(items))[:count].tolist())
    return [v for i, v in enumerate(items) if i not in held], [v for i, v in enumerate(items) if i in held]


def target_error(samples: fo.core.collections.SampleCollection) -> str | None:
    """Why ``finetune_sam2`` cannot train on ``samples``: it takes whole videos or whole images, one kind at a time."""
    root = samples._root_dataset
    kind = view_kind(samples)
    if samples.media_type in (fom.GROUP, fom.MIXED):
        what = kind or "view mixing images and videos"
        return (
            f"finetune_sam2 trains on images or on videos, one kind at a time; this is a {what} of dataset "
            f"'{root.name}': target the slices of one media type: dataset.select_group_slices(media_type='image') "
            "(or 'video') in Python, or a SelectGroupSlices stage in the App's view bar"
        )
    if samples.media_type == fom.IMAGE and kind is None:
        return None
    if root.media_type == fom.IMAGE:
        return (
            f"finetune_sam2 trains on whole images or whole videos; this is a {kind} of dataset '{root.name}': "
            "target the image dataset, or a view of its images (match, select, filter_labels)"
        )
    return videos_error(samples, "finetune_sam2", clips=False)


def finetune_sam2(
    samples: fo.core.collections.SampleCollection,
    progress: Callable[[float, str], None] | None = None,
    **options,
) -> dict:
    """Fine-tune on the videos or images of ``samples`` (``options``: :class:`FinetuneSam2Params` fields), write the
    checkpoint and register the run; returns the run's summary (checkpoint, train and held-out names, held-out
    J&F or IoU before and after)."""
    from sam2_plugins.model.checkpoint import guess_config
    from sam2_plugins.model.predictor import load_model, pick_device
    from sam2_plugins.training.checkpoints import checked_output_path, resume_path
    from sam2_plugins.training.evaluation import held_out_jf
    from sam2_plugins.training.held_out_iou import held_out_iou
    from sam2_plugins.training.optimizer import OptimizerRecipe
    from sam2_plugins.training.trainer import Finetuner, FinetuneSettings

    params = FinetuneSam2Params(**options)
    dataset = samples._root_dataset
    error = target_error(samples)
    if error:
        raise ValueError(error)
    if params.run_key in dataset.list_runs() and not params.overwrite:
        raise ValueError(
            f"dataset '{dataset.name}' has a run '{params.run_key}': pick another run_key, or pass overwrite=True"
        )
    if samples.media_type == fom.IMAGE:
        error = image_gt_error(samples, params.gt_field)
        params = replace(params, frames_per_clip=1)  # an image is a clip of one frame, as in Meta's SA-1B training
        noun, score_name, metric, score = "image", "IoU", "iou", held_out_iou
    else:
        error = None
        if not samples.has_frame_field(params.gt_field):
            error = (
                f"'{params.gt_field}' is not a frame field of dataset '{dataset.name}': pass the frame-level "
                "Detections field holding the ground-truth masklets (e.g. the one import_sav wrote)"
            )
        noun, score_name, metric, score = "video", "J&F", "jf", held_out_jf
    if error:
        raise ValueError(error)
    out = Path(params.out).expanduser() if params.out else default_out(dataset, params.run_key)
    if params.out is None:
        out.parent.mkdir(parents=True, exist_ok=True)
    out = checked_output_path(out)
    items = sample_images(samples, params.gt_field) if noun == "image" else sample_videos(samples, params.gt_field)
    if len(items) < 2 and params.held_out_fraction > 0:
        what = "instance masks" if noun == "image" else "masklets"
        raise ValueError(
            f"the target of dataset '{dataset.name}' holds {len(items)} {noun}(s) with {what} in "
            f"'{params.gt_field}': a held-out split needs at least 2 (or held_out_fraction=0)"
        )
    train, held_out = split_held_out(items, params.held_out_fraction, params.seed)
    settings = FinetuneSettings(
        steps=params.steps,
        frames_per_clip=params.frames_per_clip,
        objects_per_clip=params.objects_per_clip,
        freeze=("image_encoder",) if params.freeze_image_encoder else (),
        seed=params.seed,
        checkpoint_every=max(1, min(50, params.steps)),
        optimizer=replace(OptimizerRecipe(), lr=params.lr),
    )
    device = pick_device(params.device)
    model = load_model(params.checkpoint, params.config, image_size=params.image_size, apply_postprocessing=False)
    say = progress or (lambda fraction, label: None)
    say(0.0, f"held-out {score_name} before training ({len(held_out)} {noun}s)")
    before = score(model, held_out, device=device) if held_out else None
    names = {f"train_{noun}s": [v.video_id for v in train], f"held_out_{noun}s": [v.video_id for v in held_out]}
    sidecar = {
        "config": params.config or guess_config(model.state_dict()),
        "source_checkpoint": str(params.checkpoint),
        "image_size": params.image_size,
        "dataset": dataset.name,
        "media_type": samples.media_type,
        "gt_field": params.gt_field,
        "run_key": params.run_key,
        **names,
    }
    finetuner = Finetuner(model, train, settings, out, sidecar, device)
    resumed = resume_path(out).is_file() and finetuner.resume()

    def on_step(report) -> None:
        label = f"step {report.step}/{report.steps}, loss {report.losses['loss']:.4f}"
        say(report.step / report.steps, f"{label}, {report.steps_per_second:.2f} steps/s")

    history = finetuner.run(progress=on_step)
    say(1.0, f"held-out {score_name} after training")
    after = score(model, held_out, device=device) if held_out else None
    metrics = {}
    if before is not None:
        metrics = {f"{metric}_before": before, f"{metric}_after": after, f"{metric}_gain": after - before}
    finetuner.finish(metrics)
    recorded = {key: value for key, value in asdict(params).items() if key not in ("checkpoint", "out", "overwrite")}
    config = dataset.init_run(
        method=FINETUNE_METHOD,
        checkpoint=str(out),
        source_checkpoint=str(params.checkpoint),
        media_type=samples.media_type,
        **recorded,
        **names,
    )
    dataset.register_run(params.run_key, config, overwrite=params.overwrite)
    results = dataset.init_run_results(params.run_key, loss=history, **metrics)
    dataset.save_run_results(params.run_key, results)
    return {"checkpoint": str(out), "resumed": resumed, **names, **metrics}


class FinetuneSam2(foo.Operator):
    @property
    def config(self) -> foo.OperatorConfig:
        return foo.OperatorConfig(
            name="finetune_sam2",
            label="SAM 2: fine-tune on these masks",
            description=(
                "Fine-tune SAM 2 on the ground-truth masklets of the target videos or the instance masks of the "
                "target images (Meta's training recipe), with held-out videos scored by J&F (images by one-click IoU) "
                "before and after; writes the checkpoint, registers the run (shown in the J&F panel) and offers the "
                "tuned checkpoint to apply_sam2"
            ),
            dynamic=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
            default_choice_to_delegated=True,
        )

    def resolve_input(self, ctx) -> types.Property:
        defaults = FinetuneSam2Params()
        inputs = types.Object()
        title = types.View(label="Fine-tune SAM 2")
        target = None if ctx.dataset is None else ctx.target_view()
        view_error = None if target is None else target_error(target)
        if view_error:
            inputs.view("view_error", types.Error(label=view_error))
            return types.Property(inputs, view=title)
        images = target is not None and target.media_type == fom.IMAGE
        noun = "image" if images else "video"
        if images:
            inputs.str(
                "gt_field",
                label="Ground-truth instance masks",
                default=defaults.gt_field,
                view=_choices(image_mask_fields(target)),
                description="Detections with instance masks, or a Segmentation",
            )
            error = image_gt_error(target, ctx.params.get("gt_field") or defaults.gt_field)
            if error:
                mark_invalid(inputs, "gt_field", error)
        else:
            frame_field_input(inputs, ctx, "gt_field", "Ground-truth masklets", defaults.gt_field)
        checkpoint_input(inputs, ctx, defaults.checkpoint)
        inputs.str("config", label="Config", description="e.g. sam2.1_hiera_t; empty: inferred from the checkpoint")
        image_size_input(inputs, ctx, defaults.image_size)
        inputs.enum("device", list(DEVICE_CHOICES), label="Device", default=defaults.device)
        inputs.int("steps", label="Steps", default=defaults.steps, min=1, description="optimizer steps, one clip each")
        if not images:  # an image is a clip of one frame
            inputs.int("frames_per_clip", label="Frames per clip", default=defaults.frames_per_clip, min=1)
        inputs.int("objects_per_clip", label="Objects per clip", default=defaults.objects_per_clip, min=1)
        inputs.float("lr", label="Learning rate", default=defaults.lr, min=0, description="AdamW (Meta: 5e-6)")
        inputs.bool("freeze_image_encoder", label="Freeze the image encoder", default=defaults.freeze_image_encoder)
        inputs.float(
            "held_out_fraction",
            label=f"Held-out share of {noun}s",
            default=defaults.held_out_fraction,
            min=0,
            max=0.9,
            description=f"{noun}s kept out of training, scored before and after by "
            + ("the mean IoU of one click per object" if images else "J&F"),
        )
        inputs.str("out", label="Checkpoint file (.pt)", description="empty: under FiftyOne's dataset folder")
        out = ctx.params.get("out")
        if out and not str(out).endswith(".pt"):
            mark_invalid(inputs, "out", f"{out}: the tuned checkpoint must be a .pt file")
        inputs.str("run_key", label="Run key", default=defaults.run_key)
        key = ctx.params.get("run_key") or defaults.run_key
        if ctx.dataset is not None and key in ctx.dataset.list_runs():
            inputs.bool("overwrite", label=f"Replace the existing run '{key}'", default=False)
            if not ctx.params.get("overwrite"):
                mark_invalid(inputs, "run_key", f"run '{key}' exists: pick another key, or tick the box to replace it")
        mark_out_of_range(inputs, ctx)
        delegation_notice(inputs)
        return types.Property(inputs, view=title)

    def execute(self, ctx) -> dict:
        params = from_params(FinetuneSam2Params, ctx.params)
        progress = lambda fraction, label: ctx.set_progress(progress=fraction, label=label)
        result = finetune_sam2(ctx.target_view(), progress, **asdict(params))
        summary = f"wrote {result['checkpoint']}" + (" (resumed)" if result["resumed"] else "")
        for metric, name in (("jf", "J&F"), ("iou", "IoU")):
            if f"{metric}_before" in result:
                summary += f"; held-out {name} {result[f'{metric}_before']:.1f} -> {result[f'{metric}_after']:.1f}"
        return {**result, "summary": summary}

    def resolve_output(self, ctx) -> types.Property:
        outputs = types.Object()
        outputs.str("summary", label="Result")
        return types.Property(outputs)
