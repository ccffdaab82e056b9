"""The dock's Fine-tune section: train SAM 2 on the labels accepted in this session, then track again with the
tuned weights.

The training set is the session's Labels layer as it stands: every frame holding a label is an annotated frame,
every label an object (what the user propagated and corrected, minus what they erased). Training runs the library's
`Finetuner` (`sam2_plugins.training`) on a copy of the session's network in a napari thread worker, with the image
encoder frozen (the small-data default, and the session's cached image features stay valid); Cancel stops it
between steps. The tuned weights are written as an official checkpoint beside the image, offered in the Session
form's checkpoint list, loaded into the session's network, and every object is tracked again from its prompts.
"""

import copy
import threading
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from magicgui import magicgui
from magicgui.widgets import ProgressBar, PushButton
from napari.qt.threading import create_worker
from qtpy.QtCore import QObject, Signal

from sam2_plugins.datasets.layout import VosVideo
from sam2_plugins.frames import ArraySource, FrameSource
from sam2_plugins.prompts import ObjectPrompt, apply_prompts

from .controller import JobKind
from .export import default_export_path
from .tracking import Direction, TrackingSession, frames_visited, propagation_runs

if TYPE_CHECKING:
    from sam2_plugins.model import Sam2Model
    from sam2_plugins.training.trainer import StepReport

    from .widget import Sam2Widget

TUNED_SUFFIX = "_sam2_tuned.pt"
"""The tuned checkpoint's default name: ``<image file stem>_sam2_tuned.pt`` beside the image."""
DEFAULT_TUNED_PATH = default_export_path(None, "image", TUNED_SUFFIX)
"""Where the tuned checkpoint goes before a session names it after its image."""


class TrainingCancelled(Exception):
    """The user pressed Cancel: training stops after the step in progress."""


class SessionLabelsVideo(VosVideo):
    """The frames of a session that hold labels, and those labels, as a training video; both are copied when it is
    made (on the UI thread), so edits and the session's reads during training do not meet it. Frame ``i`` is the
    ``i``-th labelled frame of the session (``session_frames[i]``)."""

    layout = "napari session"
    split = None

    def __init__(self, video_id: str, frames: FrameSource, labels: np.ndarray):
        self.video_id = video_id
        self.session_frames = [t for t in range(len(labels)) if labels[t].any()]
        self.labels = np.array([np.asarray(labels[t]) for t in self.session_frames])
        self.pictures = np.array([frames[t] for t in self.session_frames])
        self._object_ids = [str(label) for label in np.unique(self.labels).tolist() if label != 0]

    def frames(self) -> FrameSource:
        return ArraySource(self.pictures, name=self.video_id)

    @property
    def object_ids(self) -> list[str]:
        return self._object_ids

    def annotated_frames(self, obj: str | None = None) -> list[int]:
        if obj is None:
            return list(range(len(self.session_frames)))
        return [i for i in range(len(self.session_frames)) if (self.labels[i] == int(obj)).any()]

    def masks(self, frame: int, objects: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        wanted = self._object_ids if objects is None else objects
        return {obj: self.labels[frame] == int(obj) for obj in wanted if (self.labels[frame] == int(obj)).any()}

    def first_frame(self, obj: str) -> int:
        return self.annotated_frames(obj)[0]


class _StepSignal(QObject):
    """Carries the worker's step reports to the UI thread."""

    step = Signal(object)


class FinetuneSection:
    """The Fine-tune controls of ``widget`` (`controls` go in its Fine-tune section)."""

    def __init__(self, widget: "Sam2Widget"):
        self.widget = widget
        self.tuned: list[Path] = []
        self.worker = None
        self._cancel = threading.Event()
        self._steps = _StepSignal()
        self._steps.step.connect(self._on_step)
        cancel = self._cancel  # not self: the slot runs while Qt deletes the widget
        widget.destroyed.connect(lambda _: cancel.set())  # closing the dock stops training after the step
        self._suggested = DEFAULT_TUNED_PATH
        self.form = magicgui(
            self.finetune,
            call_button="Fine-tune",
            steps={"min": 1, "max": 100_000, "tooltip": "optimizer steps (one clip each)"},
            frames_per_clip={"min": 1, "max": 64, "tooltip": "labelled frames per training clip (Meta: 8)"},
            objects_per_clip={"min": 1, "max": 64, "tooltip": "objects per training clip at most (Meta: 3)"},
            learning_rate={"min": 1e-8, "max": 1.0, "step": 1e-6, "tooltip": "AdamW learning rate (Meta: 5e-6)"},
            out={"label": "save to", "mode": "w", "filter": "*.pt", "tooltip": "the tuned checkpoint (.pt)"},
            propagate_after={"text": "propagate with the tuned weights when done"},
        )
        self.form.learning_rate.native.setDecimals(8)
        self.form.call_button.tooltip = (
            "train on every frame of the Labels layer that holds labels (what you propagated and corrected), the "
            "image encoder frozen"
        )
        self.cancel_button = PushButton(text="Cancel training", tooltip="stop after the step in progress")
        self.progress_bar = ProgressBar(value=0, max=1, label="training")
        self.cancel_button.changed.connect(self.cancel)
        self.controls = [self.form, self.cancel_button, self.progress_bar]
        checkpoint = widget.session_form.checkpoint
        named = [(name, name) for name in checkpoint.choices]
        checkpoint.choices = lambda _widget: [*named, *((f"tuned: {path.name}", str(path)) for path in self.tuned)]

    @property
    def training(self) -> bool:
        return self.worker is not None

    def refresh(self, bound: bool, propagating: bool) -> None:
        """Enable the controls that can act now (the widget's `_refresh_controls`)."""
        self.form.enabled = bound and not propagating and not self.training
        self.cancel_button.enabled = self.training
        if bound and self.form.out.value in (DEFAULT_TUNED_PATH, self._suggested):
            image = self.widget.image_layer
            self._suggested = default_export_path(image.source.path, image.name, TUNED_SUFFIX)
            self.form.out.value = self._suggested

    def finetune(
        self,
        steps: int = 100,
        frames_per_clip: int = 8,
        objects_per_clip: int = 3,
        learning_rate: float = 5e-6,
        out: Path = DEFAULT_TUNED_PATH,
        propagate_after: bool = True,
    ) -> None:
        """Train on the session's labelled frames in a thread worker, write ``out``, then (``propagate_after``)
        track every object again with the tuned weights."""
        try:
            self._start(steps, frames_per_clip, objects_per_clip, learning_rate, Path(out), propagate_after)
        except Exception as error:  # shown to the user, who can fix the input and retry
            self.widget.report_error("Fine-tune", error)

    def _start(
        self, steps: int, frames_per_clip: int, objects_per_clip: int, lr: float, out: Path, propagate_after: bool
    ) -> None:
        from sam2_plugins.training.checkpoints import checked_output_path
        from sam2_plugins.training.optimizer import OptimizerRecipe
        from sam2_plugins.training.trainer import FinetuneSettings

        widget = self.widget
        tracking = widget._tracking()
        out = checked_output_path(out)
        video = SessionLabelsVideo(widget.image_layer.name, tracking.session.frames, tracking.labels)
        if len(video.session_frames) < frames_per_clip:
            raise ValueError(
                f"{widget.labels_layer.name} holds labels on {len(video.session_frames)} frames, fewer than the "
                f"{frames_per_clip} frames per clip: propagate and correct more frames, or lower frames per clip"
            )
        settings = FinetuneSettings(
            steps=steps,
            frames_per_clip=frames_per_clip,
            objects_per_clip=objects_per_clip,
            checkpoint_every=steps,  # a cancelled run leaves no training state beside the image
            optimizer=replace(OptimizerRecipe(), lr=lr),
        )
        model = copy.deepcopy(widget._predictor.model).float()
        sidecar = {
            "source_checkpoint": str(widget.model_spec.checkpoint),
            "image": str(widget.image_layer.source.path or widget.image_layer.name),
            "session_frames": video.session_frames,
            "objects": video.object_ids,
            "image_size": model.image_size,
        }
        self._cancel.clear()
        self.progress_bar.max, self.progress_bar.value = steps, 0
        self.worker = create_worker(_train, model, video, settings, out, sidecar, self._report_step)
        session = tracking  # the tuned weights go to this session only
        self.worker.returned.connect(lambda tuned: self._on_trained(out, tuned, session, propagate_after))
        self.worker.errored.connect(self._on_failed)
        self.worker.start()
        widget.show_status(
            f"Fine-tuning on {len(video.session_frames)} labelled frames, {len(video.object_ids)} objects, "
            f"{steps} steps…"
        )
        widget._refresh_controls()

    def cancel(self) -> None:
        """Stop training after the step in progress (nothing is written)."""
        self._cancel.set()

    def _report_step(self, report: "StepReport") -> None:
        """In the worker, after each step: hand the report to the UI, stop here if the user cancelled."""
        self._steps.step.emit(report)
        if self._cancel.is_set() and report.step < report.steps:
            raise TrainingCancelled

    def _on_step(self, report: "StepReport") -> None:
        self.progress_bar.value = report.step
        self.widget.show_status(
            f"Fine-tuning: step {report.step}/{report.steps}, loss {report.losses['loss']:.4f}, "
            f"{report.steps_per_second:.2f} steps/s"
        )

    def _on_trained(self, out: Path, tuned: dict | None, session: TrackingSession, propagate_after: bool) -> None:
        self.worker = None
        widget = self.widget
        if tuned is None:
            widget.show_status("Fine-tuning cancelled; nothing was written.")
            widget._refresh_controls()
            return
        if out not in self.tuned:
            self.tuned.append(out)
        widget.session_form.checkpoint.reset_choices()
        if widget.controller.tracking is not session or not widget._session_layers_shown():
            widget.show_status(
                f"Fine-tuned weights saved to {out} (offered as 'tuned: {out.name}' in the checkpoint list); the "
                "session they were trained on has ended: start a session with them to use them."
            )
            widget._refresh_controls()
            return
        widget.controller.edit(
            JobKind.PROMPTS,
            lambda tracking: _use_weights(widget._predictor.model, tracking, tuned),
            on_done=lambda frames: self._on_weights_used(out, frames, propagate_after),
        )
        widget._refresh_controls()

    def _on_weights_used(self, out: Path, frames: set[int], propagate_after: bool) -> None:
        widget = self.widget
        widget._on_prompts_applied(frames)
        saved = f"Fine-tuned weights saved to {out} (offered as 'tuned: {out.name}' in the checkpoint list)"
        if propagate_after and widget._session_layers_shown() and frames:
            runs = propagation_runs(min(frames), Direction.BOTH, 0, len(widget.controller.tracking.labels) - 1)
            widget.controller.propagate(
                runs,
                on_frame=widget._on_frame_propagated,
                on_finished=lambda cancelled: self._on_propagated(saved, cancelled),
            )
            widget.progress_bar.max, widget.progress_bar.value = frames_visited(runs), 0
            widget.show_status(f"{saved}; propagating every object again with them…")
        else:
            widget.show_status(f"{saved} and in use: propagate to track with them.")

    def _on_propagated(self, saved: str, cancelled: bool) -> None:
        self.widget._on_propagation_finished(cancelled)
        if self.widget._session_layers_shown():
            done = "propagation with them cancelled" if cancelled else "every object propagated again with them"
            self.widget.show_status(f"{saved}; {done}.")

    def _on_failed(self, error: Exception) -> None:
        self.worker = None
        self.widget.report_error("Fine-tune", error)


def _train(model: "Sam2Model", video, settings, out: Path, sidecar: dict, progress) -> dict | None:
    """Train ``model`` on ``video`` (in the thread worker) and write ``out``; the tuned state dict, None if
    cancelled."""
    from sam2_plugins.model.checkpoint import guess_config
    from sam2_plugins.training.trainer import Finetuner

    finetuner = Finetuner(
        model, [video], settings, out, {"config": guess_config(model.state_dict()), **sidecar}, model.device
    )
    try:
        finetuner.run(progress=progress)
    except TrainingCancelled:
        return None
    finetuner.finish({})
    return {key: value.detach().cpu() for key, value in model.state_dict().items()}


def _use_weights(model: "Sam2Model", tracking: TrackingSession, state: dict) -> set[int]:
    """Load ``state`` into the session's network (in the session's worker) and give every object its prompts again,
    so its masks come from the tuned weights; returns the frames repainted."""
    model.load_state_dict(state, strict=True)
    tracking.session.reset()
    prompts = [prompt.object_prompt(key) for key, prompt in tracking.prompts.items()]
    prompts += [ObjectPrompt(frame, obj_id, mask=mask) for (frame, obj_id), mask in tracking.masks.items()]
    return set(apply_prompts(tracking.session, sorted(prompts, key=lambda p: (p.frame, p.obj_id))))
