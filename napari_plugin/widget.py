"""The SAM 2 dock widget: layout and wiring of its controls; the session's work runs in `SessionController`."""

import functools
import tempfile
from collections.abc import Callable
from enum import Enum
from pathlib import Path

import numpy as np
from magicgui import magicgui
from magicgui.widgets import Container, Label, ProgressBar, PushButton, SpinBox
from napari.layers import Image, Labels, Points, Shapes
from napari.utils.notifications import ErrorNotification, notification_manager, show_warning
from napari.viewer import Viewer
from qtpy.QtCore import QEvent, QObject, Signal
from qtpy.QtWidgets import QGroupBox, QSizePolicy, QVBoxLayout, QWidget

from sam2_plugins.frames import open_frames
from sam2_plugins.model import CONFIGS, Sam2VideoPredictor, VideoSession
from sam2_plugins.model.official import DEFAULT_CHECKPOINT, DEVICE_CHOICES, OFFICIAL_CHECKPOINTS

from .controller import SessionController
from .export import save_labels_sav, save_labels_tiff
from .prompts import TOGGLE_POLARITY_KEY, collect_prompts, color_by_object, create_prompt_layers, set_prompt_object
from .tracking import Direction, FrameLabels, TrackingSession, frames_visited, propagation_runs

PROMPT_EDITS = ("added", "removed", "changed")
"""`events.data` actions of the prompt layers that change prompts (napari's ActionType values)."""
LABELS_IN_MEMORY_BYTES = 2**30
"""Larger label stacks live in a temporary memory-mapped file instead of RAM."""
CHECKPOINT_FILE = "checkpoint file…"
"""The checkpoint choice that reads the file picker instead of an official name."""
ZERO_WIDTH_SPACE = "\u200b"


class ExportLayout(Enum):
    """How the Labels layer is written to disk."""

    TIFF = "TIFF stack"
    SAV = "SA-V PNG folders"


def _reports_errors(action: str) -> Callable:
    """Decorate a control's handler so that any error reaches the user as one line (`Sam2Widget.report_error`)."""

    def decorate(handler: Callable) -> Callable:
        @functools.wraps(handler)
        def reporting(self, *args, **kwargs):
            try:
                return handler(self, *args, **kwargs)
            except Exception as error:  # shown to the user, who can fix the input and retry
                self.report_error(action, error)

        return reporting

    return decorate


class _UiThread(QObject):
    """Runs callbacks posted from any thread on the Qt event loop (the controller's ``deliver``)."""

    posted = Signal(object)

    def __init__(self, parent: QObject):
        super().__init__(parent)
        self.posted.connect(self._call)  # queued when emitted from another thread

    def _call(self, callback: Callable[[], None]) -> None:
        callback()


class Sam2Widget(QWidget):
    """Dock widget driving a SAM 2 video session on one image layer of ``napari_viewer``."""

    def __init__(self, napari_viewer: Viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.image_layer: Image | None = None
        self.labels_layer: Labels | None = None
        self.points: Points | None = None
        self.boxes: Shapes | None = None
        self.sequence_axis = 0
        self._has_labels = False
        self._ui_thread = _UiThread(self)
        self.controller = SessionController(
            self._ui_thread.posted.emit, on_error=self.report_error, on_jobs_changed=self._refresh_controls
        )
        controller = self.controller  # not self: the slot runs while Qt deletes the widget
        self.destroyed.connect(lambda _: controller.close())

        self.session_form = magicgui(
            self.start_session,
            call_button="Start session",
            sequence_axis={"min": 0, "max": 2, "tooltip": "axis of the frames (time, or z of a z-stack)"},
            checkpoint={
                "choices": (*OFFICIAL_CHECKPOINTS, CHECKPOINT_FILE),
                "tooltip": f"official checkpoint (downloaded once), or '{CHECKPOINT_FILE}' to pick a .pt file",
            },
            checkpoint_file={"label": "file", "mode": "r", "filter": "*.pt", "tooltip": "a SAM 2 / 2.1 .pt file"},
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
        self.box_button = PushButton(text="Box", tooltip="draw a box around the current object")
        hint = Label(
            value=f"Click in the clicks layer ({TOGGLE_POLARITY_KEY.upper()}: positive/negative), or press Box and "
            "draw a rectangle."
        )
        hint.native.setWordWrap(True)
        self.object_form = Container(widgets=[self.object_id, self.new_object_button, self.box_button, hint])
        self.propagate_form = magicgui(
            self.propagate,
            call_button="Propagate",
            selected_only={
                "text": "Propagate selected objects only",
                "tooltip": "re-track only the objects of the selected clicks and boxes (else the current object); "
                "the other objects' labels stay",
            },
        )
        self.cancel_button = PushButton(text="Cancel")
        self.progress_bar = ProgressBar(value=0, max=1, label="progress")
        self.export_form = magicgui(self.export_labels, call_button="Export", path={"mode": "w"})
        self.status = Label(value="Pick an image layer and start a session.")
        self.status.native.setWordWrap(True)
        # a long word (a URL) wraps at the zero-width spaces `show_status` inserts instead of widening the dock
        self.status.native.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)

        self.session_form.image.changed.connect(self._refresh_controls)
        self.session_form.checkpoint.changed.connect(self._refresh_controls)
        self.object_id.changed.connect(self._on_object_id_changed)
        self.new_object_button.changed.connect(self.new_object)
        self.box_button.changed.connect(self.draw_box)
        self.cancel_button.changed.connect(self.cancel_propagation)
        self.propagate_form.all_frames.changed.connect(self._refresh_controls)

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
        self._refresh_controls()

    # ---------------------------------------------------------------- controls
    def reset_choices(self) -> None:
        """Refresh the layer pickers (napari calls this when layers change)."""
        self.session_form.reset_choices()
        self._refresh_controls()

    @_reports_errors("Start session")
    def start_session(
        self,
        image: Image,
        sequence_axis: int = 0,
        checkpoint: str = DEFAULT_CHECKPOINT,
        checkpoint_file: Path = Path(),
        config: str = "auto",
        device: str = "auto",
        image_size: int = 1024,
        flat_memory: bool = False,
    ) -> None:
        """Load the model and open ``image`` as a video along ``sequence_axis`` (in the worker)."""
        if image is None:
            raise ValueError("No image layer: open an image (File > Open, or File > Open Sample) and pick it.")
        if checkpoint == CHECKPOINT_FILE:
            if not checkpoint_file.is_file():
                raise FileNotFoundError(f"{checkpoint_file}: no such checkpoint file; pick a .pt file")
            checkpoint = str(checkpoint_file)
        frames = open_frames(_image_array(image), axis=sequence_axis)
        config = None if config == "auto" else config
        self.show_status(f"Loading {checkpoint} and opening {len(frames)} frames…")
        self.controller.open_session(
            lambda: _open_session(checkpoint, config, device, image_size, frames, flat_memory),
            on_opened=lambda session: self._bind(image, sequence_axis, session),
        )

    def new_object(self) -> None:
        """Make the next unused label the current object."""
        if self.labels_layer is not None:
            self.labels_layer.selected_label = int(max(self.labels_layer.data.max(), self._max_prompted_object())) + 1
            self.show_status(f"Object {self.object_id.value}: click it or draw its box on any frame.")

    def draw_box(self) -> None:
        """Select the boxes layer in rectangle mode, so the next drag draws the current object's box."""
        if self.boxes is not None:
            self.viewer.layers.selection.active = self.boxes
            self.boxes.mode = "add_rectangle"
            self.show_status(f"Drag a rectangle around object {self.object_id.value}.")

    @_reports_errors("Propagate")
    def propagate(
        self,
        direction: Direction = Direction.BOTH,
        all_frames: bool = True,
        first_frame: int = 0,
        last_frame: int = 0,
        selected_only: bool = False,
    ) -> None:
        """Track the prompted objects from the current frame, writing each frame into the Labels as it arrives."""
        if self.controller.tracking is None:
            raise RuntimeError("Start a session first (Session: Start session).")
        prompts = collect_prompts(self.points, self.boxes, self.sequence_axis)
        if not prompts:
            raise RuntimeError("Add a click or a box on some frame before propagating.")
        n_frames = len(self.controller.tracking.labels)
        first, last = (0, n_frames - 1) if all_frames else (first_frame, last_frame)
        if not 0 <= first <= last < n_frames:
            raise ValueError(f"Frame range {first}..{last} must lie within 0..{n_frames - 1}.")
        runs = propagation_runs(self.current_frame(), direction, first, last)
        obj_ids = self._selected_objects() if selected_only else None
        self.controller.update_prompts(prompts, on_applied=self._on_prompts_applied)
        self.controller.propagate(
            runs, on_frame=self._on_frame_propagated, on_finished=self._on_propagation_finished, obj_ids=obj_ids
        )
        self.progress_bar.max, self.progress_bar.value = frames_visited(runs), 0
        which = "every object" if obj_ids is None else "object " + ", ".join(map(str, obj_ids))
        self.show_status(f"Propagating {which} {direction.value} over frames {first}..{last}…")

    def cancel_propagation(self) -> None:
        """Stop the running propagation after the frame in progress."""
        self.controller.cancel()

    @_reports_errors("Export")
    def export_labels(self, path: Path = Path("labels.tif"), layout: ExportLayout = ExportLayout.TIFF) -> None:
        """Write the Labels layer as a TIFF stack or as SA-V per-object PNG folders under ``path``."""
        if self.controller.tracking is None:
            raise RuntimeError("Nothing to export yet: start a session and segment some objects.")
        labels = self.controller.tracking.labels
        if layout is ExportLayout.TIFF:
            save_labels_tiff(labels, path)
        else:
            save_labels_sav(labels, path, video_name=self.image_layer.name)
        self.show_status(f"Saved {layout.value} to {path}")

    def current_frame(self) -> int:
        """The frame shown in the viewer."""
        position = self.image_layer.world_to_data(self.viewer.dims.point)
        return int(np.rint(position[self.sequence_axis]))

    # ---------------------------------------------------------------- what the user sees
    def show_status(self, text: str) -> None:
        """Show ``text`` in the status line, wrapped inside the dock's width."""
        self.status.value = _wrappable(text)

    def report_error(self, action: str, error: Exception) -> None:
        """Show ``error`` as one line in the status and as a notification whose "View Traceback" has the details."""
        line = f"{action} failed: {_first_line(error)}"
        self.show_status(line)
        notification = ErrorNotification(error)
        notification.message = line
        notification_manager.dispatch(notification)
        self._refresh_controls()

    def _refresh_controls(self) -> None:
        """Enable each control only when it can act now."""
        bound = self.controller.tracking is not None
        propagating = self.controller.propagating
        prompted = bound and (len(self.points.data) > 0 or len(self.boxes.data) > 0)
        self.session_form.call_button.enabled = (
            self.session_form.image.value is not None and not self.controller.opening and not propagating
        )
        self.session_form.checkpoint_file.enabled = self.session_form.checkpoint.value == CHECKPOINT_FILE
        self.object_form.enabled = bound
        self.propagate_form.enabled = bound and not propagating
        self.propagate_form.call_button.enabled = prompted and not propagating
        self.propagate_form.first_frame.enabled = (
            self.propagate_form.last_frame.enabled
        ) = not self.propagate_form.all_frames.value
        self.cancel_button.enabled = propagating
        self.export_form.enabled = bound and self._has_labels and not propagating
        if self.labels_layer is not None:
            self.labels_layer.editable = not propagating  # the worker paints copies of frames: hand edits would be lost

    # ---------------------------------------------------------------- session binding
    def _bind(self, image: Image, sequence_axis: int, session: VideoSession) -> None:
        """Attach a fresh session: new Labels, clicks and boxes layers on ``image``'s grid."""
        self._release_layers()
        self.image_layer, self.sequence_axis = image, sequence_axis
        labels = _empty_labels(_image_array(image).shape[: image.ndim])
        self.labels_layer = self.viewer.add_labels(
            labels, name=f"{image.name} SAM 2", scale=image.scale, translate=image.translate, opacity=0.6
        )
        tracking = TrackingSession(session, np.moveaxis(self.labels_layer.data, sequence_axis, 0))
        self.points, self.boxes = create_prompt_layers(image, obj_id=self.object_id.value)
        self.viewer.add_layer(self.boxes)
        self.viewer.add_layer(self.points)
        self.labels_layer.selected_label = self.object_id.value
        for layer in (self.points, self.boxes):
            layer.events.data.connect(self._on_prompt_layer_changed)
        self.points.events.features.connect(self._on_prompts_edited)
        self.labels_layer.events.selected_label.connect(self._on_selected_label_changed)
        self.labels_layer.events.colormap.connect(self._color_prompts)
        self.labels_layer.events.paint.connect(self._on_painted)
        if self.viewer.dims.ndim == image.ndim:
            self.viewer.dims.order = (sequence_axis, *(a for a in range(image.ndim) if a != sequence_axis))
        self.viewer.layers.selection.active = self.points
        self.points.mode = "add"
        n_frames = len(tracking.labels)
        self.propagate_form.first_frame.max = self.propagate_form.last_frame.max = n_frames - 1
        self.propagate_form.last_frame.value = n_frames - 1
        self._has_labels = False
        self.controller.bind(tracking)
        self.viewer.dims.events.current_step.connect(self._on_step_changed)
        self.viewer.layers.events.removed.connect(self._on_layer_removed)
        self._refresh_controls()
        self.show_status(f"Ready: {n_frames} frames of {image.name}. Click an object on any frame.")
        self._on_step_changed()

    def _release_layers(self) -> None:
        """Detach the previous session's layers (they stay in the viewer)."""
        if self.points is None:
            return
        for layer in (self.points, self.boxes):
            layer.events.data.disconnect(self._on_prompt_layer_changed)
        self.points.events.features.disconnect(self._on_prompts_edited)
        self.labels_layer.events.selected_label.disconnect(self._on_selected_label_changed)
        self.labels_layer.events.colormap.disconnect(self._color_prompts)
        self.labels_layer.events.paint.disconnect(self._on_painted)
        self.viewer.dims.events.current_step.disconnect(self._on_step_changed)
        self.viewer.layers.events.removed.disconnect(self._on_layer_removed)

    def event(self, event: QEvent) -> bool:
        """Closing the dock (napari takes the widget out of it) stops and joins the worker."""
        if event.type() == QEvent.Type.ParentChange and self.parent() is None and self.controller.alive:
            self._close()
        return super().event(event)

    def _close(self) -> None:
        self._release_layers()
        self.controller.close()

    # ---------------------------------------------------------------- layer events
    @_reports_errors("Apply prompts")
    def _on_prompt_layer_changed(self, event) -> None:
        if event.action == "added" and self.viewer.dims.ndisplay != 2:
            event.source.remove(sorted(i % len(event.source.data) for i in event.data_indices))
            message = "SAM 2 prompts are 2D: switch to the 2D view (the 2D/3D button) and click again."
            self.show_status(message)
            show_warning(message)
            return
        if event.action in PROMPT_EDITS:
            self._on_prompts_edited()

    @_reports_errors("Apply prompts")
    def _on_prompts_edited(self, event=None) -> None:
        """Send the prompt layers' content to the predictor (edits made while it is busy follow together)."""
        self._color_prompts()
        self.controller.update_prompts(
            collect_prompts(self.points, self.boxes, self.sequence_axis), on_applied=self._on_prompts_applied
        )
        self._refresh_controls()

    def _on_prompts_applied(self, frames: set[int]) -> None:
        if frames:
            self._has_labels = True
            self._redraw_if_shown(frames)
            self.show_status(f"Masks updated on frame {', '.join(map(str, sorted(frames)))}. Propagate when ready.")
        self._refresh_controls()

    def _on_frame_propagated(self, frame_labels: FrameLabels) -> None:
        """Copy in a frame the worker has already painted: the UI thread does no mask work, and redraws only a
        frame on screen that changed (the prompted frame a propagation starts from usually does not)."""
        frame_idx, labels = frame_labels
        frames = self.controller.tracking.labels
        shown = frame_idx == self.current_frame()
        if not (shown and np.array_equal(frames[frame_idx], labels)):
            frames[frame_idx] = labels
            if shown:
                self.labels_layer.refresh(extent=False, highlight=False)
        self._has_labels = True
        self.progress_bar.value += 1

    def _on_propagation_finished(self, cancelled: bool) -> None:
        self.show_status(
            "Propagation cancelled." if cancelled else "Propagation done. Correct any frame and propagate again."
        )

    def _on_step_changed(self, event=None) -> None:
        """Have the worker encode the frame on screen while it is idle, so a first click there only decodes."""
        if self.image_layer in self.viewer.layers:
            self.controller.show_frame(self.current_frame())

    def _on_layer_removed(self, event) -> None:
        if event.value is self.image_layer:
            self.show_status(f"{self.image_layer.name} left the viewer: start a session on another image.")

    def _on_painted(self, event=None) -> None:
        self._has_labels = True
        self._refresh_controls()

    def _on_object_id_changed(self, obj_id: int) -> None:
        if self.labels_layer is not None:
            self.labels_layer.selected_label = obj_id

    def _on_selected_label_changed(self) -> None:
        obj_id = int(self.labels_layer.selected_label)
        if obj_id >= 1:
            set_prompt_object(self.points, self.boxes, obj_id)
            self.object_id.value = obj_id

    def _color_prompts(self, event=None) -> None:
        color_by_object(self.points, self.boxes, self.labels_layer.colormap.map)

    def _redraw_if_shown(self, frames: set[int]) -> None:
        """Redraw the Labels layer when one of ``frames`` is on screen (others are read when scrolled to)."""
        if self.current_frame() in frames:
            self.labels_layer.refresh(extent=False, highlight=False)

    def _selected_objects(self) -> set[int]:
        """Objects of the selected clicks and boxes, else the current object."""
        selected = {
            int(layer.features["obj_id"].iloc[index])
            for layer in (self.points, self.boxes)
            for index in layer.selected_data
        }
        return selected or {self.object_id.value}

    def _max_prompted_object(self) -> int:
        tracking = self.controller.tracking
        return max((obj_id for _, obj_id in tracking.prompts), default=0) if tracking else 0


def _first_line(error: Exception) -> str:
    """The first non-empty line of ``error``'s message, or its type's name when it has none."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def _wrappable(text: str) -> str:
    """``text`` with a zero-width space after each ``/`` and ``_`` of long words, where Qt may then break a line."""
    words = text.split(" ")
    return " ".join(
        word.replace("/", "/" + ZERO_WIDTH_SPACE).replace("_", "_" + ZERO_WIDTH_SPACE) if len(word) > 30 else word
        for word in words
    )


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
    """Load the predictor and open the frames as a video (runs in the worker)."""
    predictor = Sam2VideoPredictor.from_checkpoint(checkpoint, config=config, image_size=image_size, device=device)
    return predictor.init_video(frames, prune_memories=flat_memory)
