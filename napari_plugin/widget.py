"""The SAM 2 dock widget: layout and wiring of its controls; the session's work runs in `SessionController`."""

import functools
import tempfile
from collections.abc import Callable
from enum import Enum
from pathlib import Path

import numpy as np
from magicgui import magicgui
from magicgui.widgets import ComboBox, Container, Label, ProgressBar, PushButton, SpinBox
from napari.layers import Image, Labels, Points, Shapes
from napari.utils.notifications import ErrorNotification, notification_manager, show_warning
from napari.viewer import Viewer
from qtpy.QtCore import QEvent, QObject, QSize, Qt, Signal
from qtpy.QtGui import QTextOption
from qtpy.QtWidgets import QFrame, QListWidget, QPlainTextEdit, QScrollArea, QSizePolicy, QVBoxLayout, QWidget
from superqt import QCollapsible

from sam2_plugins.auto_masklets import auto_masklets
from sam2_plugins.ctc import write_ctc_result
from sam2_plugins.division import Division, Proposal, propose_divisions
from sam2_plugins.feature_store import DiskFeatureStore, checkpoint_key
from sam2_plugins.model import (
    CONFIGS,
    Sam2AutomaticMaskGenerator,
    Sam2VideoPredictor,
    VideoSession,
    default_image_size,
)
from sam2_plugins.model.official import DEFAULT_CHECKPOINT, DEVICE_CHOICES, OFFICIAL_CHECKPOINTS
from sam2_plugins.model_loading import ModelSpec, load_mask_generator, load_video_predictor
from sam2_plugins.safe_names import safe_component

from .controller import JobKind, SessionController
from .export import LabelsGeometry, default_export_path, export_labels_sav, save_labels_tiff
from .finetune_section import FinetuneSection
from .frame_axes import FrameAxes, axis_names
from .io import TIFF_SUFFIXES
from .lineage_layers import LineageLayers
from .painted_prompts import frame_masks, painted_mask
from .prompts import (
    TOGGLE_POLARITY_KEY,
    collect_prompts,
    color_by_object,
    create_prompt_layers,
    image_grid,
    set_prompt_object,
)
from .segment_all import painted_masklets, segment_all
from .tracking import Direction, FrameLabels, TrackingSession, frames_visited, propagation_runs

PROMPT_EDITS = ("added", "removed", "changed")
"""`events.data` actions of the prompt layers that change prompts (napari's ActionType values)."""
LABELS_IN_MEMORY_BYTES = 2**30
"""Larger label stacks live in a temporary memory-mapped file instead of RAM."""
CHECKPOINT_FILE = "checkpoint file…"
"""The checkpoint choice that reads the file picker instead of an official name."""
STATUS_LINES = 3
"""Lines of text the status shows; a longer message scrolls inside it instead of pushing the controls."""
DEFAULT_EXPORT_PATH = default_export_path(None, "labels", ".tif")
"""Where labels go before a session names them after its image (beside the image's file, else in the home folder)."""
CTC_RESULT_SUFFIX = "_RES"
DEFAULT_CTC_PATH = default_export_path(None, "labels", CTC_RESULT_SUFFIX)
"""Where a CTC result folder goes before a session names it after its image."""


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


class StatusText(QPlainTextEdit):
    """The dock's status: plain text the user can select and copy (a URL), wrapped inside the dock's width (a long
    word breaks anywhere), ``STATUS_LINES`` lines high whatever it holds, scrolling beyond."""

    def __init__(self, text: str):
        super().__init__(text)
        self.setReadOnly(True)
        self.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextSelectableByMouse | Qt.TextInteractionFlag.TextSelectableByKeyboard
        )
        self.setWordWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)

    def sizeHint(self) -> QSize:
        margins = self.contentsMargins()
        text_height = STATUS_LINES * self.fontMetrics().lineSpacing() + 2 * self.document().documentMargin()
        return QSize(super().sizeHint().width(), round(text_height) + margins.top() + margins.bottom())

    def minimumSizeHint(self) -> QSize:
        return QSize(super().minimumSizeHint().width(), self.sizeHint().height())


class VerticalScrollArea(QScrollArea):
    """Scrolls its widget up and down only: as wide as the widget needs, as short as the screen needs."""

    def __init__(self, widget: QWidget):
        super().__init__()
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setWidget(widget)

    def minimumSizeHint(self) -> QSize:
        width = self.widget().minimumSizeHint().width() + self.verticalScrollBar().sizeHint().width()
        return QSize(width, super().minimumSizeHint().height())


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
        self.frame_axes: FrameAxes | None = None
        self.model_spec: ModelSpec | None = None
        """What the session's model was loaded from (checkpoint, config, image size, device)."""
        self._predictor: Sam2VideoPredictor | None = None
        self.lineage: LineageLayers | None = None
        self.proposals: list[Proposal] = []
        self._suggested_path = DEFAULT_EXPORT_PATH
        self._suggested_ctc_folder = DEFAULT_CTC_PATH
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
            sequence_axis={
                "label": "frame axis",
                "widget_type": ComboBox,
                "choices": self._frame_axis_choices,
                "tooltip": "the axis the frames run along (time, or z of a z-stack), by the layer's axis labels; "
                "in 4D+ images the other axes stay at their current index",
            },
            checkpoint={
                "choices": (*OFFICIAL_CHECKPOINTS, CHECKPOINT_FILE),
                "tooltip": f"official checkpoint (downloaded once), or '{CHECKPOINT_FILE}' to pick a .pt file",
            },
            checkpoint_file={"label": "file", "mode": "r", "filter": "*.pt", "tooltip": "a SAM 2 / 2.1 .pt file"},
            config={"choices": ("auto", *CONFIGS), "tooltip": "auto: implied by the checkpoint's name or weights"},
            device={"choices": DEVICE_CHOICES},
            image_size={
                "min": 128,
                "max": 4096,
                "step": 32,
                "tooltip": "model input side: 512 on CPU keeps click-to-mask interactive, 1024 (as trained) on a "
                "GPU; lower is faster and coarser",
            },
            flat_memory={
                "tooltip": "keep only the memories later frames can attend to, so memory stays flat on "
                "long stacks; re-propagation after a correction may then differ slightly from exact mode"
            },
            cache_features={
                "tooltip": "keep image features on disk (~/.cache/sam2-plugins, bounded) so reopening this file "
                "skips encoding; for images opened from a file"
            },
        )
        self._default_image_size = self.session_form.image_size.value = default_image_size(
            self.session_form.device.value
        )
        self.object_id = SpinBox(
            label="object", min=1, max=65535, value=1, tooltip="label of the object that new clicks and boxes prompt"
        )
        self.new_object_button = PushButton(text="New object")
        self.box_button = PushButton(text="Box", tooltip="draw a box around the current object")
        self.painted_mask_button = PushButton(
            text="Use painted mask", tooltip="the current label's painted pixels on this frame prompt its object"
        )
        hint = Label(
            value=f"Click in the clicks layer ({TOGGLE_POLARITY_KEY.upper()}: positive/negative), or press Box and "
            "draw a rectangle."
        )
        hint.native.setWordWrap(True)
        self.object_form = Container(
            widgets=[self.object_id, self.new_object_button, self.box_button, self.painted_mask_button, hint]
        )
        self.seed_form = magicgui(
            self.seed_from_labels,
            call_button="Seed from Labels layer",
            layer={"tooltip": "any Labels layer drawn on this image (micro-sam's output, a previous session)"},
            frame={"min": 0, "max": 0, "tooltip": "every label of this frame becomes an object"},
        )
        self.segment_form = magicgui(
            self.segment_all,
            call_button="Segment all",
            points_per_side={"min": 1, "max": 128, "tooltip": "clicks per side of the grid the generator tries"},
            pred_iou_thresh={"min": 0.0, "max": 1.0, "step": 0.05, "tooltip": "minimum predicted mask quality"},
            stability_score_thresh={"min": 0.0, "max": 1.0, "step": 0.05, "tooltip": "minimum mask stability"},
            min_mask_region_area={"min": 0, "max": 10**6, "tooltip": "remove specks and holes up to this area"},
        )
        self.track_all_form = magicgui(
            self.track_all,
            call_button="Track all",
            reseed_every={
                "min": 0,
                "max": 10**5,
                "tooltip": "0: track the objects of the shown frame; K: segment again every K frames, objects that "
                "enter (cells entering the field, after a division) become new labels",
            },
        )
        self.segment_section = QCollapsible("Segment all (automatic masks on the shown frame)")
        self.segment_section.addWidget(self.segment_form.native)
        self.segment_section.addWidget(self.track_all_form.native)
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
        self._create_lineage_controls()
        self.finetune = FinetuneSection(self)
        self.status = StatusText("Pick an image layer and start a session.")

        self.session_form.image.changed.connect(self._refresh_controls)
        self.session_form.image.changed.connect(self.session_form.sequence_axis.reset_choices)
        self.viewer.dims.events.axis_labels.connect(self.session_form.sequence_axis.reset_choices)
        self.session_form.device.changed.connect(self._on_device_changed)
        self.session_form.checkpoint.changed.connect(self._refresh_controls)
        self.object_id.changed.connect(self._on_object_id_changed)
        self.new_object_button.changed.connect(self.new_object)
        self.box_button.changed.connect(self.draw_box)
        self.painted_mask_button.changed.connect(self.use_painted_mask)
        self.export_form["layout"].changed.connect(self._suggest_export_path)
        self.cancel_button.changed.connect(self.cancel_propagation)
        self.propagate_form.all_frames.changed.connect(self._refresh_controls)

        self.sections = {}
        """The dock's collapsible sections by title, all expanded at first."""
        content = QWidget()
        content_layout = QVBoxLayout(content)
        for title, widgets in (
            ("Session", [self.session_form]),
            ("Objects", [self.object_form, self.seed_form, self.segment_section]),
            ("Propagation", [self.propagate_form, self.cancel_button, self.progress_bar]),
            ("Export", [self.export_form]),
            ("Lineage", self.lineage_controls),
            ("Fine-tune", self.finetune.controls),
        ):
            section = self.sections[title] = QCollapsible(title)
            for widget in widgets:
                section.addWidget(getattr(widget, "native", widget))
            section.expand(animate=False)
            content_layout.addWidget(section)
        content_layout.addStretch()
        self.scroll_area = VerticalScrollArea(content)
        """Holds the sections: on a short screen (1366x768) the dock scrolls instead of growing the window."""
        layout = QVBoxLayout(self)
        layout.addWidget(self.status)
        layout.addWidget(self.scroll_area)
        self._refresh_controls()

    # ---------------------------------------------------------------- controls
    def reset_choices(self) -> None:
        """Refresh the layer pickers (napari calls this when layers change)."""
        self.session_form.reset_choices()
        self.seed_form.reset_choices()
        self._refresh_controls()

    def _frame_axis_choices(self, _widget=None) -> list[tuple[str, int]]:
        """The picked image's axes by name (T, Z... from its axis labels or the viewer's), with their lengths."""
        form = getattr(self, "session_form", None)  # None while magicgui builds the form
        image = form.image.value if form is not None else None
        if image is None:
            return [("pick an image", 0)]
        if image.ndim == 2:
            return [("none: a 2D image is one frame", 0)]
        names = axis_names(image.axis_labels, self.viewer.dims.axis_labels)
        shape = image.level_shapes[0]
        return [(f"{name} ({_count(int(shape[axis]), 'frame')})", axis) for axis, name in enumerate(names)]

    def _on_device_changed(self, device: str) -> None:
        """An image size the user left at its default follows the device (512 on CPU, 1024 on a GPU)."""
        if self.session_form.image_size.value == self._default_image_size:
            self._default_image_size = self.session_form.image_size.value = default_image_size(device)

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
        cache_features: bool = False,
    ) -> None:
        """Load the model and open ``image`` as a video along ``sequence_axis`` (in the worker); a 4D+ image is read
        at the current index of its other non-spatial axes."""
        if image is None:
            raise ValueError("No image layer: open an image (File > Open, or File > Open Sample) and pick it.")
        if checkpoint == CHECKPOINT_FILE:
            if checkpoint_file == Path():
                raise ValueError(f"No checkpoint file picked: choose a .pt file beside '{CHECKPOINT_FILE}'")
            if not checkpoint_file.is_file():
                raise FileNotFoundError(f"{checkpoint_file}: no such checkpoint file; pick a .pt file")
            checkpoint = str(checkpoint_file)
        data = _image_array(image)
        frame_axes = FrameAxes.at(data.shape[: image.ndim], sequence_axis, self._image_position(image))
        spec = ModelSpec(checkpoint, config, image_size, device)
        frames = frame_axes.open_frames(data)
        store = _feature_store(image, frame_axes, spec) if cache_features else None
        self.show_status(f"Loading {checkpoint} and opening {_count(len(frames), 'frame')}…")
        self.controller.open_session(
            lambda: _open_session(spec, frames, flat_memory, store),
            on_opened=lambda opened: self._bind(image, frame_axes, spec, *opened),
        )

    @_reports_errors("New object")
    def new_object(self) -> None:
        """Make the next unused label the current object."""
        if self.labels_layer is not None:
            self.labels_layer.selected_label = self._next_free_label()
            self.show_status(f"Object {self.object_id.value}: click it or draw its box on any frame.")

    @_reports_errors("Box")
    def draw_box(self) -> None:
        """Select the boxes layer in rectangle mode, so the next drag draws the current object's box (a boxes layer
        the user deleted comes back)."""
        if self.boxes is not None:
            if self.boxes not in self.viewer.layers:
                self.viewer.add_layer(self.boxes)
            self.viewer.layers.selection.active = self.boxes
            self.boxes.mode = "add_rectangle"
            self.show_status(f"Drag a rectangle around object {self.object_id.value}.")

    @_reports_errors("Use painted mask")
    def use_painted_mask(self) -> None:
        """Prompt the current object with its label's painted pixels on the frame on screen."""
        tracking = self._tracking()
        frame = self.current_frame()
        masks = painted_mask(tracking.labels, frame, int(self.labels_layer.selected_label))
        self.controller.add_masks(frame, lambda: masks, on_applied=self._on_prompts_applied)
        self.show_status(f"Object {next(iter(masks))}: its painted mask on frame {frame} is the prompt.")

    @_reports_errors("Seed from Labels layer")
    def seed_from_labels(self, layer: Labels, frame: int = 0) -> None:
        """Every label of ``frame`` of the Labels layer ``layer`` becomes the object of the same number."""
        if layer is None:
            raise ValueError("No Labels layer to seed from: open one (File > Open) or paint one.")
        self._tracking()
        masks = frame_masks(layer.data, self.frame_axes, frame, name=layer.name)
        self.controller.add_masks(frame, lambda: masks, on_applied=self._on_prompts_applied)
        self.show_status(f"Seeding {len(masks)} objects from {layer.name} on frame {frame}…")

    @_reports_errors("Segment all")
    def segment_all(
        self,
        points_per_side: int = 32,
        pred_iou_thresh: float = 0.8,
        stability_score_thresh: float = 0.95,
        min_mask_region_area: int = 0,
    ) -> None:
        """Every mask the automatic mask generator finds on the shown frame becomes a new object (on the session's
        network, run in the worker)."""
        tracking = self._tracking()
        frame = self.current_frame()
        generator = self._mask_generator(points_per_side, pred_iou_thresh, stability_score_thresh, min_mask_region_area)
        first_id = self._next_free_label()
        frames = tracking.session.frames
        self.controller.add_masks(
            frame,
            lambda: segment_all(generator, frames[frame], first_id),
            on_applied=functools.partial(self._on_segmented, frame),
        )
        self.show_status(f"Segmenting everything on frame {frame}…")

    @_reports_errors("Track all")
    def track_all(self, reseed_every: int = 0) -> None:
        """Segment everything on the shown frame (the Segment all parameters) and track every object to the last
        frame, labels arriving live; with ``reseed_every`` K > 0 objects that appear later become new labels."""
        tracking = self._tracking()
        frame = self.current_frame()
        form = self.segment_form
        generator = self._mask_generator(
            form.points_per_side.value,
            form.pred_iou_thresh.value,
            form.stability_score_thresh.value,
            form.min_mask_region_area.value,
        )
        masklets = auto_masklets(
            self._predictor, generator, tracking.session.frames, start_frame=frame, reseed_every=reseed_every or None
        )
        first_id = self._next_free_label()
        self.controller.stream_frames(
            lambda: painted_masklets(masklets, tracking.labels, first_id),
            on_frame=self._on_frame_propagated,
            on_finished=self._on_track_all_finished,
        )
        self.progress_bar.max, self.progress_bar.value = len(tracking.labels) - frame, 0
        self.show_status(f"Tracking everything from frame {frame} on…")

    def _mask_generator(
        self, points_per_side: int, pred_iou_thresh: float, stability_score_thresh: float, min_mask_region_area: int
    ) -> Sam2AutomaticMaskGenerator:
        """The automatic mask generator on the session's network (no second copy of the weights)."""
        return load_mask_generator(
            self._predictor,
            points_per_side=points_per_side,
            pred_iou_thresh=pred_iou_thresh,
            stability_score_thresh=stability_score_thresh,
            min_mask_region_area=min_mask_region_area,
        )

    def _next_free_label(self) -> int:
        return int(max(self.labels_layer.data.max(), self._max_prompted_object())) + 1

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
        prompts = collect_prompts(self.points, self.boxes, self.frame_axes)
        if not prompts and not self.controller.tracking.masks:
            raise RuntimeError("Add a click, a box or a painted mask on some frame before propagating.")
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
    def export_labels(self, path: Path = DEFAULT_EXPORT_PATH, layout: ExportLayout = ExportLayout.TIFF) -> None:
        """Write the Labels layer as a TIFF hyperstack or as SA-V per-object PNG folders under ``path``, with the
        image's axis order and scale (File > Open with sam2-plugins re-opens them aligned with the image)."""
        if self.controller.tracking is None:
            raise RuntimeError("Nothing to export yet: start a session and segment some objects.")
        labels = self.labels_layer.data
        geometry = LabelsGeometry.of_layer(labels, self.labels_layer.as_layer_data_tuple()[1])
        if layout is ExportLayout.TIFF:
            if path.suffix.lower() not in TIFF_SUFFIXES and not path.is_dir():
                path = path.with_name(path.name + ".tif")  # File > Open finds our reader by the suffix
            save_labels_tiff(labels, path, geometry)
        else:
            export_labels_sav(labels, path, safe_component(self.image_layer.name, "image layer name"), geometry)
        self.show_status(f"Saved {layout.value} to {path}")

    def current_frame(self) -> int:
        """The frame shown in the viewer."""
        if self.frame_axes.sequence is None:
            return 0
        return int(np.rint(self._image_position(self.image_layer)[self.frame_axes.sequence]))

    def _image_position(self, image: Image) -> tuple[float, ...]:
        """The viewer's position in ``image``'s data coordinates."""
        return tuple(image.world_to_data(self.viewer.dims.point))

    # ---------------------------------------------------------------- what the user sees
    def show_status(self, text: str) -> None:
        """Show ``text`` in the status, wrapped inside the dock's width."""
        self.status.setPlainText(text)

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
        bound = self._session_layers_shown()
        propagating = self.controller.propagating
        prompted = bound and (
            len(self.points.data) > 0 or len(self.boxes.data) > 0 or bool(self.controller.tracking.masks)
        )
        self.session_form.call_button.enabled = (
            self.session_form.image.value is not None and not self.controller.opening and not propagating
        )
        self.session_form.checkpoint_file.enabled = self.session_form.checkpoint.value == CHECKPOINT_FILE
        self.object_form.enabled = bound and not propagating
        self.seed_form.enabled = self.segment_form.enabled = self.track_all_form.enabled = bound and not propagating
        self.propagate_form.enabled = bound and not propagating
        self.propagate_form.call_button.enabled = prompted and not propagating
        self.propagate_form.first_frame.enabled = (
            self.propagate_form.last_frame.enabled
        ) = not self.propagate_form.all_frames.value
        self.cancel_button.enabled = propagating
        self.export_form.enabled = bound and self._has_labels and not propagating
        for control in self.lineage_controls:
            getattr(control, "native", control).setEnabled(bound and not propagating)
        picked = self.proposal_list.currentRow() >= 0
        self.accept_button.enabled = self.reject_button.enabled = bound and not propagating and picked
        self.finetune.refresh(bound, propagating)
        if self.labels_layer is not None:
            self.labels_layer.editable = not propagating  # the worker paints copies of frames: hand edits would be lost

    # ---------------------------------------------------------------- session binding
    def _bind(
        self,
        image: Image,
        frame_axes: FrameAxes,
        spec: ModelSpec,
        predictor: Sam2VideoPredictor,
        session: VideoSession,
    ) -> None:
        """Attach a fresh session of the model ``spec`` loaded: new Labels (of the image's full shape), clicks and
        boxes layers on ``image``'s grid."""
        self._release_layers()
        self.image_layer, self.frame_axes, self.model_spec, self._predictor = image, frame_axes, spec, predictor
        self.sequence_axis = frame_axes.sequence if frame_axes.sequence is not None else 0
        self.labels_layer = Labels(  # the layer itself, not the viewer's proxy of it: layer events carry the layer
            _empty_labels(frame_axes.shape),
            name=f"{image.name} SAM 2",
            **image_grid(image),
            axis_labels=image.axis_labels,
            metadata=frame_axes.to_metadata(),
            opacity=0.6,
        )
        self.viewer.add_layer(self.labels_layer)
        tracking = TrackingSession(session, frame_axes.frame_view(self.labels_layer.data))
        self.lineage = LineageLayers(self.viewer, self.labels_layer, tracking, frame_axes, image_grid(image))
        self._show_proposals([])
        self._suggest_ctc_folder()
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
        self.labels_layer.events.data.connect(self._on_labels_data_set)
        if self.viewer.dims.ndim == image.ndim and frame_axes.sequence is not None:
            fixed = [axis for axis, _ in frame_axes.fixed]
            self.viewer.dims.order = (*fixed, frame_axes.sequence, *frame_axes.plane)
        self.viewer.layers.selection.active = self.points
        self.points.mode = "add"
        n_frames = len(tracking.labels)
        self.propagate_form.first_frame.max = self.propagate_form.last_frame.max = n_frames - 1
        self.propagate_form.last_frame.value = n_frames - 1
        self.seed_form.frame.max = n_frames - 1
        self._suggest_export_path()
        self._has_labels = False
        self.controller.bind(tracking)
        self.viewer.dims.events.current_step.connect(self._on_step_changed)
        self.viewer.layers.events.removed.connect(self._on_layer_removed)
        self._refresh_controls()
        self.show_status(f"Ready: {_count(n_frames, 'frame')} of {image.name}. Click an object on any frame.")
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
        self.labels_layer.events.data.disconnect(self._on_labels_data_set)
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
        if event.action == "added":
            added = sorted(i % len(event.source.data) for i in event.data_indices)
            if self.viewer.dims.ndisplay != 2:
                self._refuse_prompts(
                    event.source,
                    added,
                    "SAM 2 prompts are 2D: switch to the 2D view (the 2D/3D button) and click again.",
                )
                return
            if any(self.frame_axes.frame_of(np.asarray(event.source.data[i])) is None for i in added):
                names = axis_names(self.image_layer.axis_labels, self.viewer.dims.axis_labels)
                where = ", ".join(f"{names[axis]} at {index}" for axis, index in self.frame_axes.fixed)
                self._refuse_prompts(
                    event.source,
                    added,
                    f"This session tracks the frames with {where}: go back there to prompt, or start a session here.",
                )
                return
            if not all(self._on_image(np.asarray(event.source.data[i])) for i in added):
                height, width = (self.frame_axes.shape[axis] for axis in self.frame_axes.plane)
                self._refuse_prompts(
                    event.source,
                    added,
                    f"Prompts go on the image ({width} x {height} pixels): click or draw inside it.",
                )
                return
        if event.action in PROMPT_EDITS:
            self._on_prompts_edited()

    def _on_image(self, coords: np.ndarray) -> bool:
        """A click, or a box's vertices, in data coordinates lies on a frame of the session (a box overlaps it)."""
        frame, plane = self.frame_axes.frame_of(coords)
        plane = plane.reshape(-1, 2)
        size = np.array([self.frame_axes.shape[axis] for axis in self.frame_axes.plane])
        on_plane = np.all(plane.max(axis=0) >= -0.5) and np.all(plane.min(axis=0) <= size - 0.5)
        return bool(on_plane) and 0 <= frame < self.frame_axes.num_frames

    def _refuse_prompts(self, layer: Points | Shapes, indices: list[int], message: str) -> None:
        layer.remove(indices)
        self.show_status(message)
        show_warning(message)

    @_reports_errors("Apply prompts")
    def _on_prompts_edited(self, event=None) -> None:
        """Send the prompt layers' content to the predictor (edits made while it is busy follow together)."""
        self._color_prompts()
        self.controller.update_prompts(
            collect_prompts(self.points, self.boxes, self.frame_axes), on_applied=self._on_prompts_applied
        )
        self._refresh_controls()

    def _on_prompts_applied(self, frames: set[int]) -> None:
        if frames:
            self._has_labels = True
            self._redraw_if_shown(frames)
            self.lineage.refresh(frames)
            self.show_status(f"Masks updated on frame {', '.join(map(str, sorted(frames)))}. Propagate when ready.")
        self._refresh_controls()

    def _on_segmented(self, frame: int, frames: set[int]) -> None:
        """Segment all's masks are prompts; when it kept none, the user hears why instead of 'Segmenting…' staying."""
        if not frames:
            message = (
                f"Segment all kept no mask on frame {frame}: lower pred_iou_thresh or stability_score_thresh, or "
                "raise points_per_side."
            )
            self.show_status(message)
            show_warning(message)
        self._on_prompts_applied(frames)

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
        self.lineage.refresh([frame_idx])
        self._has_labels = True
        self._advance_progress()

    def _advance_progress(self) -> None:
        """Count one more frame done; the bar repaints with the window's next paint (QProgressBar repaints at once,
        and a window holding an OpenGL canvas then composites all of itself: 10-30 ms under software rendering)."""
        bar = self.progress_bar.native
        bar.setUpdatesEnabled(False)
        self.progress_bar.value += 1
        bar.setUpdatesEnabled(True)  # schedules the repaint

    def _session_layers_shown(self) -> bool:
        """A session is bound and its Labels and clicks layers are still in the viewer."""
        return (
            self.controller.tracking is not None
            and self.labels_layer in self.viewer.layers
            and self.points in self.viewer.layers
        )

    def _on_propagation_finished(self, cancelled: bool) -> None:
        if not self._session_layers_shown():
            return  # the status says which layer went
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
        elif event.value is self.labels_layer or event.value is self.points:
            self.controller.cancel()
            message = (
                f"{event.value.name} was removed from the viewer, so this session's results and clicks have nowhere "
                "to go: press Start session to begin again."
            )
            self.show_status(message)
            show_warning(message)
            self._refresh_controls()

    def _on_painted(self, event=None) -> None:
        self._has_labels = True
        self.lineage.refresh([self.current_frame()])
        self._refresh_controls()

    @_reports_errors("Replace the labels")
    def _on_labels_data_set(self, event=None) -> None:
        """The Labels layer's data was set (``layer.data = array``): the session reads and paints the new array."""
        data = self.labels_layer.data
        if tuple(data.shape) != self.frame_axes.shape:
            raise ValueError(
                f"{self.labels_layer.name}: new data of shape {tuple(data.shape)} does not fit the image "
                f"{self.frame_axes.shape}; set labels of the image's shape, or start a new session"
            )
        self.controller.tracking.labels = self.frame_axes.frame_view(data)
        self.lineage.refresh()
        self._on_painted()

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
        return max((obj_id for _, obj_id in [*tracking.prompts, *tracking.masks]), default=0) if tracking else 0

    def _tracking(self) -> TrackingSession:
        if self.controller.tracking is None:
            raise RuntimeError("Start a session first (Session: Start session).")
        return self.controller.tracking

    def _suggest_export_path(self, event=None) -> None:
        """Default the export path to a file (TIFF) or folder (SA-V) named after the image, beside its source; a
        path the user typed stays."""
        if self.image_layer is None or self.export_form.path.value not in (DEFAULT_EXPORT_PATH, self._suggested_path):
            return
        suffix = "_labels.tif" if self.export_form["layout"].value is ExportLayout.TIFF else "_sav"
        self._suggested_path = default_export_path(self.image_layer.source.path, self.image_layer.name, suffix)
        self.export_form.path.value = self._suggested_path

    # ---------------------------------------------------------------- lineage: divisions, proposals, CTC export
    def _create_lineage_controls(self) -> None:
        """The Lineage section: Divide, Undo division, the division proposals to review, Export CTC."""
        daughter = {
            "min": 0,
            "max": 65535,
            "tooltip": "an object clicked (or boxed) on this frame; leave both at 0 to split the current object's "
            "mask into its two largest parts as two new labels",
        }
        self.divide_form = magicgui(
            self.divide, call_button="Divide", first_daughter=daughter, second_daughter=daughter
        )
        self.divide_form.call_button.tooltip = (
            "the current object ends on the frame before the shown one; its two daughters start here and are "
            "tracked to the last frame"
        )
        self.undo_division_button = PushButton(text="Undo division", tooltip="take back the last division")
        self.find_divisions_form = magicgui(
            self.find_divisions,
            call_button="Find divisions",
            for_frames={
                "min": 1,
                "max": 1000,
                "tooltip": "frames a mask must stay in two parts (or new objects appear after a cell is lost) to be "
                "proposed as a division",
            },
        )
        self.proposal_list = QListWidget()
        self.proposal_list.setToolTip("divisions the labels suggest: pick one, then Accept or Reject")
        self.proposal_list.setMaximumHeight(6 * self.proposal_list.fontMetrics().lineSpacing())
        self.accept_button = PushButton(text="Accept", tooltip="make the picked proposal a division")
        self.reject_button = PushButton(text="Reject", tooltip="drop the picked proposal")
        self.ctc_export_form = magicgui(
            self.export_ctc,
            call_button="Export CTC",
            folder={"mode": "w", "tooltip": "a new or empty folder: mask000.tif... and res_track.txt go in it"},
        )
        self.undo_division_button.changed.connect(self.undo_division)
        self.accept_button.changed.connect(self.accept_proposal)
        self.reject_button.changed.connect(self.reject_proposal)
        self.proposal_list.currentRowChanged.connect(self._refresh_controls)
        self.lineage_controls = [
            self.divide_form,
            self.undo_division_button,
            self.find_divisions_form,
            self.proposal_list,
            Container(widgets=[self.accept_button, self.reject_button], layout="horizontal", labels=False),
            self.ctc_export_form,
        ]

    def _suggest_ctc_folder(self) -> None:
        """Default the CTC folder to ``<image>_RES`` beside the image's source; a folder the user typed stays."""
        if self.ctc_export_form.folder.value in (DEFAULT_CTC_PATH, self._suggested_ctc_folder):
            source, name = self.image_layer.source.path, self.image_layer.name
            self._suggested_ctc_folder = default_export_path(source, name, CTC_RESULT_SUFFIX)
            self.ctc_export_form.folder.value = self._suggested_ctc_folder

    @_reports_errors("Divide")
    def divide(self, first_daughter: int = 0, second_daughter: int = 0) -> None:
        """Divide the current object on the shown frame into two daughters: the objects given (clicked or boxed
        on this frame) or, both 0, two new labels from the two largest parts of its mask there; the daughters are
        then tracked to the last frame."""
        self._tracking()
        if (first_daughter == 0) != (second_daughter == 0):
            raise ValueError(
                "give both daughters (objects clicked on this frame), or leave both at 0 to split the mother's mask"
            )
        mother = self.object_id.value
        if first_daughter:
            daughters = (first_daughter, second_daughter)
            prompts = collect_prompts(self.points, self.boxes, self.frame_axes)
            self.controller.update_prompts(prompts, on_applied=self._on_prompts_applied)
        else:
            first = self._next_free_label()
            daughters = (first, first + 1)
        self._divide(self.current_frame(), mother, daughters, prompted=bool(first_daughter))

    def _divide(self, frame: int, mother: int, daughters: tuple[int, int], prompted: bool = False) -> None:
        self.controller.edit(
            JobKind.DIVIDE,
            lambda tracking: tracking.divide(frame, mother, daughters, prompted),
            on_done=functools.partial(self._on_divided, Division(frame, mother, daughters)),
        )
        self.show_status(f"Dividing object {mother} on frame {frame}…")

    def _on_divided(self, division: Division, repainted: set[int]) -> None:
        """Show the division and track the daughters from its frame to the last one."""
        self._lineage_changed(repainted)
        first, second = division.daughters
        last = len(self.controller.tracking.labels) - 1
        if division.frame < last:
            runs = [(division.frame, False, last - division.frame)]
            self.controller.propagate(
                runs,
                on_frame=self._on_frame_propagated,
                on_finished=self._on_propagation_finished,
                obj_ids=division.daughters,
            )
            self.progress_bar.max, self.progress_bar.value = frames_visited(runs), 0
        self.show_status(
            f"Object {division.mother} divided on frame {division.frame} into {first} and {second}; tracking the "
            "daughters to the last frame…"
        )

    @_reports_errors("Undo division")
    def undo_division(self) -> None:
        """Take back the last division (its daughters made from the split go; the mother's labels come back)."""
        self._tracking()
        self.controller.edit(
            JobKind.UNDO_DIVISION, lambda tracking: tracking.undo_division(), on_done=self._on_division_undone
        )

    def _on_division_undone(self, undone: tuple[Division, set[int]]) -> None:
        division, repainted = undone
        self._lineage_changed(repainted)
        self.show_status(
            f"Division of object {division.mother} on frame {division.frame} undone; propagate to carry object "
            f"{division.mother} on."
        )

    def _lineage_changed(self, repainted: set[int]) -> None:
        self._has_labels = True
        self._redraw_if_shown(repainted)
        self.lineage.refresh(repainted)
        self._refresh_controls()

    @_reports_errors("Find divisions")
    def find_divisions(self, for_frames: int = 3) -> None:
        """List the divisions the labels suggest for review: a mask in two parts on ``for_frames`` frames in a row,
        or two new objects inside a cell lost within ``for_frames`` frames."""
        found = self._list_proposals(for_frames)
        if found:
            self.show_status(f"{_count(found, 'division')} to review: pick one, then Accept or Reject.")
        else:
            within = _count(for_frames, "frame")
            self.show_status(f"No division found (masks in two parts or new cells within {within}).")

    def _list_proposals(self, for_frames: int) -> int:
        """Show the divisions the labels suggest (`propose_divisions`) in the list; returns how many."""
        tracking = self._tracking()
        self._show_proposals(propose_divisions(tracking.labels, for_frames, tracking.divisions))
        return len(self.proposals)

    def _show_proposals(self, proposals: list[Proposal]) -> None:
        self.proposals = list(proposals)
        self.proposal_list.clear()
        self.proposal_list.addItems([proposal.describe() for proposal in self.proposals])
        self._refresh_controls()

    @_reports_errors("Find divisions")
    def _on_track_all_finished(self, cancelled: bool) -> None:
        """Track all's objects done: the divisions they suggest are listed for review."""
        self._on_propagation_finished(cancelled)
        if cancelled or not self._session_layers_shown():
            return
        found = self._list_proposals(self.find_divisions_form.for_frames.value)
        if found:
            self.show_status(
                f"Propagation done. {_count(found, 'division')} to review under Lineage: pick one, then Accept or "
                "Reject."
            )

    def _take_proposal(self) -> Proposal:
        row = self.proposal_list.currentRow()
        if row < 0:
            raise ValueError("pick a proposal in the list first")
        self.proposal_list.takeItem(row)
        return self.proposals.pop(row)

    @_reports_errors("Accept division")
    def accept_proposal(self) -> None:
        """Make the picked proposal a division: a mask in two parts is split into two new daughters, new objects
        found inside a lost cell become its daughters."""
        self._tracking()
        proposal = self._take_proposal()
        self.viewer.dims.set_current_step(self.sequence_axis, proposal.frame)
        if proposal.daughters is None:
            first = self._next_free_label()
            self._divide(proposal.frame, proposal.mother, (first, first + 1))
            return
        division = Division(proposal.frame, proposal.mother, proposal.daughters)
        self.controller.edit(
            JobKind.DIVIDE,
            lambda tracking: tracking.link(division.frame, division.mother, division.daughters),
            on_done=self._lineage_changed,
        )
        self.show_status(f"Division accepted: {proposal.describe()}.")

    @_reports_errors("Reject division")
    def reject_proposal(self) -> None:
        proposal = self._take_proposal()
        self.show_status(f"Proposal dropped: {proposal.describe()}.")
        self._refresh_controls()

    @_reports_errors("Export CTC")
    def export_ctc(self, folder: Path = DEFAULT_CTC_PATH) -> None:
        """Write the labels and their lineage as a Cell Tracking Challenge result folder (``mask000.tif``... and
        ``res_track.txt``; a label lost for some frames goes on as a new track with it as parent)."""
        tracking = self._tracking()
        written = write_ctc_result(folder, tracking.labels, tracking.divisions.parents())
        self.show_status(f"Saved the CTC result (mask000.tif… + res_track.txt) to {written}")


def _first_line(error: Exception) -> str:
    """The first non-empty line of ``error``'s message, or its type's name when it has none."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def _count(number: int, noun: str) -> str:
    """``number`` and ``noun``, plural unless one: "1 frame", "8 frames"."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _image_array(image: Image):
    """The image layer's data as one array; multiscale layers are refused."""
    if image.multiscale:
        raise ValueError(f"{image.name}: multiscale images are not supported; add the full-resolution level alone.")
    return image.data


def _empty_labels(shape: tuple[int, ...]) -> np.ndarray:
    """A zeroed uint16 label stack: in RAM, or memory-mapped from a temporary file when larger than
    ``LABELS_IN_MEMORY_BYTES`` (the file is deleted when the array is released)."""
    if np.prod(shape, dtype=np.int64) * 2 <= LABELS_IN_MEMORY_BYTES:
        return np.zeros(shape, dtype=np.uint16)
    return np.memmap(tempfile.TemporaryFile(prefix="sam2-labels-"), dtype=np.uint16, mode="w+", shape=shape)


def _open_session(
    spec: ModelSpec, frames, flat_memory: bool, store: DiskFeatureStore | None
) -> tuple[Sam2VideoPredictor, VideoSession]:
    """Load the predictor and open the frames as a video (runs in the worker)."""
    predictor = load_video_predictor(spec)
    return predictor, predictor.init_video(frames, prune_memories=flat_memory, feature_store=store)


def _feature_store(image: Image, frame_axes: FrameAxes, spec: ModelSpec) -> DiskFeatureStore:
    """The disk cache of ``image``'s features read along ``frame_axes`` by this model."""
    source = image.source.path
    if not source:
        raise ValueError(
            f"{image.name}: features are cached for images opened from a file (File > Open); this layer has no "
            "source file: untick 'cache features'"
        )
    reading = f"sequence={frame_axes.sequence} fixed={list(frame_axes.fixed)}"
    return DiskFeatureStore(
        source, checkpoint_key(spec.checkpoint, spec.config, spec.precision), spec.model_image_size(), reading=reading
    )
