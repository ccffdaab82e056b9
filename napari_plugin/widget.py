"""The SAM 2 dock widget: start a session on an image layer, prompt objects, propagate, export."""

import tempfile
from collections.abc import Callable
from enum import Enum
from functools import partial
from pathlib import Path

import numpy as np
from magicgui import magicgui
from magicgui.widgets import Container, Label, ProgressBar, PushButton, SpinBox
from napari.layers import Image, Labels, Points, Shapes
from napari.layers.base._base_constants import ActionType
from napari.qt.threading import create_worker
from napari.viewer import Viewer
from qtpy.QtWidgets import QGroupBox, QVBoxLayout, QWidget

from sam2_plugins.frames import open_frames
from sam2_plugins.model import CONFIGS, Sam2VideoPredictor, VideoSession
from sam2_plugins.model.official import DEFAULT_CHECKPOINT, DEVICE_CHOICES

from .export import save_labels_sav, save_labels_tiff
from .prompts import TOGGLE_POLARITY_KEY, collect_prompts, create_prompt_layers, set_prompt_object
from .tracking import Direction, FrameLabels, TrackingSession, propagation_runs

PROMPT_EVENTS = (ActionType.ADDED, ActionType.REMOVED, ActionType.CHANGED)
LABELS_IN_MEMORY_BYTES = 2**30
"""Larger label stacks live in a temporary memory-mapped file instead of RAM."""


class ExportLayout(Enum):
    """How the Labels layer is written to disk."""

    TIFF = "TIFF stack"
    SAV = "SA-V PNG folders"


class Sam2Widget(QWidget):
    """Dock widget driving a SAM 2 video session on one image layer of ``napari_viewer``."""

    def __init__(self, napari_viewer: Viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.tracking: TrackingSession | None = None
        self.image_layer: Image | None = None
        self.labels_layer: Labels | None = None
        self.points: Points | None = None
        self.boxes: Shapes | None = None
        self.sequence_axis = 0
        self.session_worker = None
        self.prompt_worker = None
        self.propagation_worker = None
        self._prompts_pending = False
        self._queued_propagation: Callable[[], None] | None = None
        self._encoded_frame: int | None = None  # the last frame sent for background encoding

        self.session_form = magicgui(
            self.start_session,
            call_button="Start session",
            sequence_axis={"min": 0, "max": 2, "tooltip": "axis of the frames (time, or z of a z-stack)"},
            checkpoint={"tooltip": "official checkpoint name (downloaded once) or path to a .pt file"},
            config={"choices": ("auto", *CONFIGS), "tooltip": "auto: implied by the checkpoint's name or weights"},
            device={"choices": DEVICE_CHOICES},
            image_size={"min": 128, "max": 4096, "step": 32, "tooltip": "lower is faster, less accurate"},
            flat_memory={
                "tooltip": "keep only the memories later frames can attend to, so memory stays flat on "
                "long stacks; re-propagation after a correction may then differ slightly from exact mode"
            },
        )
        self.object_id = SpinBox(
            label="object", min=1, max=65535, value=1, tooltip="label of the object that new clicks and boxes prompt"
        )
        self.new_object_button = PushButton(text="New object")
        self.object_form = Container(
            widgets=[
                self.object_id,
                self.new_object_button,
                Label(
                    value=f"Click in the clicks layer ({TOGGLE_POLARITY_KEY.upper()}: positive/negative),\n"
                    "draw rectangles in the boxes layer."
                ),
            ]
        )
        self.propagate_form = magicgui(self.propagate, call_button="Propagate")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.progress_bar = ProgressBar(value=0, max=1, label="progress")
        self.export_form = magicgui(self.export_labels, call_button="Export", path={"mode": "w"})
        self.status = Label(value="Pick an image layer and start a session.")
        self.status.native.setWordWrap(True)

        self.object_id.changed.connect(self._on_object_id_changed)
        self.new_object_button.changed.connect(self.new_object)
        self.cancel_button.changed.connect(self.cancel_propagation)
        self.propagate_form.all_frames.changed.connect(self._on_all_frames_changed)
        self._on_all_frames_changed(True)

        layout = QVBoxLayout(self)
        layout.addWidget(self.status.native)
        for title, widgets in (
            ("Session", [self.session_form]),
            ("Objects", [self.object_form]),
            ("Propagation", [self.propagate_form, self.cancel_button, self.progress_bar]),
            ("Export", [self.export_form]),
        ):
            box = QGroupBox(title)
            box_layout = QVBoxLayout(box)
            for widget in widgets:
                box_layout.addWidget(widget.native)
            layout.addWidget(box)
        layout.addStretch()
        self._set_session_controls(False)

    def reset_choices(self) -> None:
        """Refresh the layer pickers (napari calls this when layers change)."""
        self.session_form.reset_choices()

    def start_session(
        self,
        image: Image,
        sequence_axis: int = 0,
        checkpoint: str = DEFAULT_CHECKPOINT,
        config: str = "auto",
        device: str = "auto",
        image_size: int = 1024,
        flat_memory: bool = False,
    ) -> None:
        """Load the model and open ``image`` as a video along ``sequence_axis`` (in a worker thread)."""
        frames = open_frames(_image_array(image), axis=sequence_axis)
        self.status.value = f"Loading {checkpoint} and opening {len(frames)} frames…"
        self.session_form.call_button.enabled = False
        self.session_worker = create_worker(
            _open_session,
            checkpoint,
            None if config == "auto" else config,
            device,
            image_size,
            frames,
            flat_memory,
            _progress={"desc": "Loading SAM 2"},
        )
        self.session_worker.returned.connect(lambda session: self._bind(image, sequence_axis, session))
        self.session_worker.errored.connect(self._on_session_failed)
        self.session_worker.finished.connect(lambda: setattr(self.session_form.call_button, "enabled", True))
        self.session_worker.start()

    def new_object(self) -> None:
        """Make the next unused label the current object."""
        if self.labels_layer is not None:
            self.labels_layer.selected_label = int(max(self.labels_layer.data.max(), self._max_prompted_object())) + 1

    def propagate(
        self,
        direction: Direction = Direction.BOTH,
        all_frames: bool = True,
        first_frame: int = 0,
        last_frame: int = 0,
    ) -> None:
        """Track every prompted object from the current frame, writing each frame into the Labels as it arrives."""
        if self.tracking is None:
            raise RuntimeError("Start a session first (Session: Start session).")
        if self.prompt_worker is not None:
            self._queued_propagation = partial(self.propagate, direction, all_frames, first_frame, last_frame)
            self.status.value = "Propagation starts once the last prompt is applied…"
            return
        if not self.tracking.prompts:
            raise RuntimeError("Add a click or a box on some frame before propagating.")
        n_frames = len(self.tracking.labels)
        first, last = (0, n_frames - 1) if all_frames else (first_frame, last_frame)
        if not 0 <= first <= last < n_frames:
            raise ValueError(f"Frame range {first}..{last} must lie within 0..{n_frames - 1}.")
        runs = propagation_runs(self.current_frame(), direction, first, last)
        total = sum(max_frames + 1 for _, _, max_frames in runs)
        self.progress_bar.max, self.progress_bar.value = total, 0
        self.status.value = f"Propagating {direction.value} over frames {first}..{last}…"
        self.propagation_worker = create_worker(
            self.tracking.propagate_runs, runs, _progress={"total": total, "desc": "SAM 2 propagation"}
        )
        self.propagation_worker.yielded.connect(self._on_frame_propagated)
        self.propagation_worker.finished.connect(self._on_propagation_finished)
        self._set_running(True)
        self.propagation_worker.start()

    def cancel_propagation(self) -> None:
        """Stop the running propagation after the frame in progress."""
        if self.propagation_worker is not None:
            self.propagation_worker.quit()

    def export_labels(self, path: Path = Path("labels.tif"), layout: ExportLayout = ExportLayout.TIFF) -> None:
        """Write the Labels layer as a TIFF stack or as SA-V per-object PNG folders under ``path``."""
        if self.labels_layer is None:
            raise RuntimeError("Nothing to export yet: start a session and segment some objects.")
        labels = self.tracking.labels
        if layout is ExportLayout.TIFF:
            save_labels_tiff(labels, path)
        else:
            save_labels_sav(labels, path, video_name=self.image_layer.name)
        self.status.value = f"Saved {layout.value} to {path}"

    def current_frame(self) -> int:
        """The frame shown in the viewer."""
        position = self.image_layer.world_to_data(self.viewer.dims.point)
        return int(np.rint(position[self.sequence_axis]))

    def _bind(self, image: Image, sequence_axis: int, session: VideoSession) -> None:
        """Attach a fresh session: new Labels, clicks and boxes layers on ``image``'s grid."""
        self._release_session()
        self.image_layer, self.sequence_axis = image, sequence_axis
        labels = _empty_labels(_image_array(image).shape[: image.ndim])
        self.labels_layer = self.viewer.add_labels(
            labels, name=f"{image.name} SAM 2", scale=image.scale, translate=image.translate, opacity=0.6
        )
        self.tracking = TrackingSession(session, np.moveaxis(self.labels_layer.data, sequence_axis, 0))
        self.points, self.boxes = create_prompt_layers(image, obj_id=self.object_id.value)
        self.viewer.add_layer(self.boxes)
        self.viewer.add_layer(self.points)
        self.labels_layer.selected_label = self.object_id.value
        for layer in (self.points, self.boxes):
            layer.events.data.connect(self._on_prompt_layer_changed)
        self.points.events.features.connect(self._on_prompts_changed)
        self.labels_layer.events.selected_label.connect(self._on_selected_label_changed)
        if self.viewer.dims.ndim == image.ndim:
            self.viewer.dims.order = (sequence_axis, *(a for a in range(image.ndim) if a != sequence_axis))
        self.viewer.layers.selection.active = self.points
        self.points.mode = "add"
        n_frames = len(self.tracking.labels)
        self.propagate_form.first_frame.max = self.propagate_form.last_frame.max = n_frames - 1
        self.propagate_form.last_frame.value = n_frames - 1
        self._set_session_controls(True)
        self.status.value = f"Ready: {n_frames} frames of {image.name}. Click an object on any frame."
        self._encoded_frame = None
        self.viewer.dims.events.current_step.connect(self._encode_shown_frame)
        self._encode_shown_frame()

    def _release_session(self) -> None:
        """Detach the previous session's layers (they stay in the viewer) and free its cached features."""
        for layer in (self.points, self.boxes):
            if layer is not None:
                layer.events.data.disconnect(self._on_prompt_layer_changed)
        if self.points is not None:
            self.points.events.features.disconnect(self._on_prompts_changed)
        if self.labels_layer is not None:
            self.labels_layer.events.selected_label.disconnect(self._on_selected_label_changed)
        if self.tracking is not None:
            self.viewer.dims.events.current_step.disconnect(self._encode_shown_frame)
            self.tracking.session.close()

    def _on_session_failed(self, error: Exception) -> None:
        self.status.value = f"Could not start the session: {error}"

    def _on_prompt_layer_changed(self, event) -> None:
        if event.action in PROMPT_EVENTS:
            self._on_prompts_changed()

    def _on_prompts_changed(self) -> None:
        """Send prompt edits to the predictor in a worker thread; edits made meanwhile follow when it is free."""
        if self.prompt_worker is not None or self.propagation_worker is not None:
            self._prompts_pending = True
            return
        prompts = collect_prompts(self.points, self.boxes, self.sequence_axis)
        if prompts == self.tracking.prompts:
            return
        self.prompt_worker = create_worker(self.tracking.sync_prompts, prompts)
        self.prompt_worker.returned.connect(self._redraw_if_shown)
        self.prompt_worker.finished.connect(self._on_prompts_applied)
        self.prompt_worker.start()

    def _on_prompts_applied(self) -> None:
        self.prompt_worker = None
        self._start_waiting_work()

    def _encode_shown_frame(self, event=None) -> None:
        """While the predictor is idle, encode the frame on screen so a first click there runs only the decoder."""
        idle = self.prompt_worker is None and self.propagation_worker is None and self._queued_propagation is None
        if self.tracking is None or not idle or self.image_layer not in self.viewer.layers:
            return
        frame = self.current_frame()
        if frame == self._encoded_frame or not 0 <= frame < len(self.tracking.labels):
            return
        self._encoded_frame = frame
        self.prompt_worker = create_worker(self.tracking.session.encode_frame, frame)
        self.prompt_worker.finished.connect(self._on_prompts_applied)
        self.prompt_worker.start()

    def _start_waiting_work(self) -> None:
        """The predictor is free: send newer prompt edits first, then a requested propagation, else encode the
        frame on screen."""
        if self._prompts_pending:
            self._prompts_pending = False
            self._on_prompts_changed()
        if self.prompt_worker is None and self._queued_propagation is not None:
            start_propagation, self._queued_propagation = self._queued_propagation, None
            start_propagation()
        self._encode_shown_frame()

    def _on_frame_propagated(self, frame_labels: FrameLabels) -> None:
        """Copy in a frame the worker has already painted: the UI thread does no mask work."""
        frame_idx, labels = frame_labels
        self.tracking.labels[frame_idx] = labels
        self._redraw_if_shown({frame_idx})
        self.progress_bar.value += 1

    def _redraw_if_shown(self, frames: set[int]) -> None:
        """Redraw the Labels layer when one of ``frames`` is on screen (others are read when scrolled to)."""
        if self.current_frame() in frames:
            self.labels_layer.refresh(extent=False, highlight=False)

    def _on_propagation_finished(self) -> None:
        cancelled = self.propagation_worker.abort_requested
        self.propagation_worker = None
        self._set_running(False)
        self.status.value = (
            "Propagation cancelled." if cancelled else "Propagation done. Correct any frame and propagate again."
        )
        self._start_waiting_work()

    def _on_object_id_changed(self, obj_id: int) -> None:
        if self.labels_layer is not None:
            self.labels_layer.selected_label = obj_id

    def _on_selected_label_changed(self) -> None:
        obj_id = int(self.labels_layer.selected_label)
        if obj_id >= 1:
            set_prompt_object(self.points, self.boxes, obj_id)
            self.object_id.value = obj_id

    def _on_all_frames_changed(self, all_frames: bool) -> None:
        self.propagate_form.first_frame.enabled = self.propagate_form.last_frame.enabled = not all_frames

    def _max_prompted_object(self) -> int:
        return max((obj_id for _, obj_id in self.tracking.prompts), default=0) if self.tracking else 0

    def _set_session_controls(self, enabled: bool) -> None:
        for form in (self.object_form, self.propagate_form, self.export_form):
            form.enabled = enabled

    def _set_running(self, running: bool) -> None:
        self.propagate_form.call_button.enabled = not running
        self.session_form.call_button.enabled = not running
        self.cancel_button.enabled = running
        self.labels_layer.editable = not running  # the worker paints copies of frames: hand edits would be lost


def _image_array(image: Image):
    """The image layer's data as one array; multiscale layers are refused."""
    if image.multiscale:
        raise ValueError(f"{image.name}: multiscale images are not supported; add the full-resolution level alone.")
    if image.ndim != 3:
        raise ValueError(
            f"{image.name}: {image.ndim}D image; SAM 2 needs a sequence of 2D frames (T, Y, X), a z-stack (Z, Y, X) "
            "or their RGB form. Slice 4D+ data to 3D first (e.g. one channel or one time point)."
        )
    return image.data


def _empty_labels(shape: tuple[int, ...]) -> np.ndarray:
    """A zeroed uint16 label stack: in RAM, or memory-mapped from a temporary file when larger than
    ``LABELS_IN_MEMORY_BYTES`` (the file is deleted when the array is released)."""
    if np.prod(shape, dtype=np.int64) * 2 <= LABELS_IN_MEMORY_BYTES:
        return np.zeros(shape, dtype=np.uint16)
    return np.memmap(tempfile.TemporaryFile(prefix="sam2-labels-"), dtype=np.uint16, mode="w+", shape=shape)


def _open_session(
    checkpoint: str, config: str | None, device: str | None, image_size: int, frames, flat_memory: bool
) -> VideoSession:
    """Load the predictor and open the frames as a video (runs in a worker thread)."""
    predictor = Sam2VideoPredictor.from_checkpoint(checkpoint, config=config, image_size=image_size, device=device)
    return predictor.init_video(frames, prune_memories=flat_memory)
