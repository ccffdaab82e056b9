"""The dock widget in a real napari viewer (run under xvfb-run) with a random-weight SAM 2.1 tiny at 128 px.

Every test drives the widget as a user does: it presses its buttons, clicks and drags on the canvas, types keys,
and checks what the user sees (status line, notifications, label pixels, enabled controls).
"""

from pathlib import Path

import huggingface_hub.constants
import numpy as np
import pytest
import tifffile
from napari.utils.notifications import NotificationSeverity
from napari_ui import (  # noqa: F401  (checkpoint, docked, notifications: fixtures)
    WAIT_MS,
    canvas,
    checkpoint,
    click_canvas,
    click_frame,
    docked,
    drag_canvas,
    image_to_world,
    notifications,
    object_frames,
    press,
    start_session,
    wait_idle,
)
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QDockWidget
from random_checkpoint import CONFIG, IMAGE_SIZE

from sam2_plugins.frames import open_frames
from sam2_plugins.masks import read_binary_mask_png
from sam2_plugins.model import Sam2VideoPredictor
from sam2_plugins.napari_plugin import widget as widget_module
from sam2_plugins.napari_plugin.prompts import create_prompt_layers
from sam2_plugins.napari_plugin.tracking import Direction, paint_masks
from sam2_plugins.napari_plugin.widget import CHECKPOINT_FILE, ExportLayout, Sam2Widget
from sam2_plugins.sample_data import synthetic_cells

pytestmark = pytest.mark.napari

SCREENSHOT = Path(__file__).resolve().parent / "artifacts" / "napari_widget.png"
"""Kept after the run; the README's docs/napari_widget.png is a copy of one."""


def dock_of(widget: Sam2Widget) -> QDockWidget:
    parent = widget.parent()
    while not isinstance(parent, QDockWidget):
        parent = parent.parent()
    return parent


def set_propagation(widget: Sam2Widget, **options) -> None:
    for name, value in options.items():
        getattr(widget.propagate_form, name).value = value


def propagate(widget: Sam2Widget, qtbot, **options) -> None:
    """Set the Propagation form, press Propagate and wait for the last frame."""
    set_propagation(widget, **options)
    press(widget.propagate_form.call_button)
    wait_idle(widget, qtbot)


class DirectTwin:
    """The same prompts sent straight to a predictor session, painted into an expected label stack."""

    def __init__(self, checkpoint: Path, data: np.ndarray, sequence_axis: int = 0):
        predictor = Sam2VideoPredictor.from_checkpoint(
            str(checkpoint), config=CONFIG, image_size=IMAGE_SIZE, device="cpu"
        )
        self.session = predictor.init_video(open_frames(data, axis=sequence_axis))
        self.labels = np.zeros(
            (self.session.num_frames, self.session.video_height, self.session.video_width), dtype=np.uint16
        )

    def add_points(self, frame: int, obj_id: int, clicks: list[tuple[float, float]], labels: list[int]) -> None:
        """Clicks given as the layer records them, (y, x)."""
        points = np.array([(x, y) for y, x in clicks], dtype=np.float32)
        obj_ids, masks = self.session.add_points(frame, obj_id, points, np.array(labels))
        paint_masks(self.labels[frame], obj_ids, masks.numpy())

    def propagate(self, start_frame: int, reverse: bool, obj_ids=None) -> None:
        for frame, tracked, masks in self.session.propagate(start_frame=start_frame, reverse=reverse, obj_ids=obj_ids):
            paint_masks(self.labels[frame], tracked, masks.numpy())


def test_widget_docks_and_start_waits_for_an_image(docked):
    viewer, widget = docked
    assert isinstance(widget, Sam2Widget)
    assert not widget.session_form.call_button.enabled, "no image layer: nothing to start on"
    assert not widget.object_form.enabled and not widget.propagate_form.enabled and not widget.export_form.enabled
    assert not widget.cancel_button.enabled
    viewer.open_sample("sam2-plugins", "fluorescent_cells")
    assert [layer.name for layer in viewer.layers] == ["cells (16-bit)", "cells ground truth"]
    assert widget.session_form.image.value is viewer.layers["cells (16-bit)"]
    assert widget.session_form.sequence_axis.native.currentText() == "t (24 frames)"
    assert widget.session_form.call_button.enabled
    assert not widget.session_form.checkpoint_file.enabled, "the file picker waits for 'checkpoint file…'"
    widget.session_form.checkpoint.value = CHECKPOINT_FILE
    assert widget.session_form.checkpoint_file.enabled
    assert widget.session_form.checkpoint.choices[:2] == ("sam2.1_hiera_tiny", "sam2.1_hiera_small")


def test_click_propagate_correct_on_the_sample_and_screenshot(docked, checkpoint, qtbot):
    viewer, widget = docked
    viewer.window._qt_window.resizeDocks([dock_of(widget)], [420], Qt.Orientation.Horizontal)
    image = viewer.open_sample("sam2-plugins", "fluorescent_cells")[0]
    truth = viewer.layers["cells ground truth"].data
    n_frames = len(truth)
    start_session(widget, image, checkpoint, qtbot)
    twin = DirectTwin(checkpoint, image.data)
    assert widget.labels_layer.data.shape == image.data.shape
    assert not widget.propagate_form.call_button.enabled and not widget.export_form.enabled

    k = n_frames // 2
    first = click_frame(viewer, widget, qtbot, k, *np.argwhere(truth[k] == 1).mean(axis=0))
    twin.add_points(k, 1, [first], [1])
    assert object_frames(widget, 1) == [k], "the clicked frame's mask appears at once, on that frame only"
    np.testing.assert_array_equal(widget.labels_layer.data, twin.labels)
    assert widget.status.toPlainText().startswith(f"Masks updated on frame {k}")
    assert widget.propagate_form.call_button.enabled and widget.export_form.enabled

    propagate(widget, qtbot, direction=Direction.BOTH, all_frames=True)
    twin.propagate(k, reverse=False)
    twin.propagate(k, reverse=True)
    assert object_frames(widget, 1) == list(range(n_frames))
    assert widget.progress_bar.value == widget.progress_bar.max == n_frames + 1
    assert widget.status.toPlainText() == "Propagation done. Correct any frame and propagate again."
    np.testing.assert_array_equal(widget.labels_layer.data, twin.labels)

    press(widget.new_object_button)
    assert widget.object_id.value == 2 and widget.points.feature_defaults["obj_id"].iloc[0] == 2
    second = click_frame(viewer, widget, qtbot, 0, *np.argwhere(truth[0] == 2).mean(axis=0))
    twin.add_points(0, 2, [second], [1])
    propagate(widget, qtbot, direction=Direction.BOTH)
    twin.propagate(0, reverse=False)
    assert widget.progress_bar.value == widget.progress_bar.max == n_frames, "from frame 0 both ways = forward"
    np.testing.assert_array_equal(widget.labels_layer.data, twin.labels)

    before = widget.labels_layer.data.copy()
    later = n_frames - 3
    widget.object_id.value = 1
    on_object = np.argwhere(before[later] == 1)
    correction = click_frame(viewer, widget, qtbot, later, *on_object[len(on_object) // 2], positive=False)
    twin.add_points(later, 1, [correction], [0])
    np.testing.assert_array_equal(widget.labels_layer.data, twin.labels)
    assert not np.array_equal(widget.labels_layer.data[later], before[later]), "a correction shows at once"

    propagate(widget, qtbot, direction=Direction.BOTH)
    twin.propagate(later, reverse=False)
    twin.propagate(later, reverse=True)
    np.testing.assert_array_equal(widget.labels_layer.data, twin.labels)
    assert not np.array_equal(widget.labels_layer.data == 1, before == 1), "re-propagation follows the correction"
    assert object_frames(widget, 2) == list(range(n_frames)), "the other object is still tracked"

    viewer.dims.set_current_step(0, k)
    SCREENSHOT.parent.mkdir(exist_ok=True)
    screenshot = viewer.screenshot(str(SCREENSHOT), canvas_only=False)
    assert screenshot.shape[0] > 400 and SCREENSHOT.stat().st_size > 10_000


def test_propagate_selected_objects_only_leaves_the_other_objects_labels(docked, checkpoint, qtbot):
    viewer, widget = docked
    image = viewer.add_image(synthetic_cells(n_frames=6, size=64, n_cells=2, seed=5)[0], name="cells")
    start_session(widget, image, checkpoint, qtbot)
    twin = DirectTwin(checkpoint, image.data)
    one = click_frame(viewer, widget, qtbot, 0, 20, 20)
    press(widget.new_object_button)
    two = click_frame(viewer, widget, qtbot, 0, 44, 40)
    twin.add_points(0, 1, [one], [1])
    twin.add_points(0, 2, [two], [1])
    propagate(widget, qtbot, direction=Direction.FORWARD)
    twin.propagate(0, reverse=False)
    widget.object_id.value = 1
    correction = click_frame(viewer, widget, qtbot, 3, 24, 24, positive=False)
    twin.add_points(3, 1, [correction], [0])
    before = widget.labels_layer.data.copy()
    propagate(widget, qtbot, direction=Direction.BOTH, selected_only=True)
    assert widget.status.toPlainText() == "Propagation done. Correct any frame and propagate again."
    twin.propagate(3, reverse=False, obj_ids=[1])
    twin.propagate(3, reverse=True, obj_ids=[1])
    np.testing.assert_array_equal(widget.labels_layer.data == 2, before == 2, "object 2 was not re-tracked")
    np.testing.assert_array_equal(widget.labels_layer.data, twin.labels)


def test_propagate_right_after_a_click_waits_for_it_and_cancel_stops_the_worker(docked, checkpoint, qtbot):
    viewer, widget = docked
    image = viewer.add_image(synthetic_cells(n_frames=30, size=96, n_cells=2)[0], name="long")
    start_session(widget, image, checkpoint, qtbot)
    viewer.dims.set_current_step(0, 0)
    viewer.layers.selection.active = widget.points
    click_canvas(viewer, qtbot, 24, 24)
    set_propagation(widget, direction=Direction.FORWARD)
    press(widget.propagate_form.call_button)
    assert widget.status.toPlainText().startswith("Propagating every object forward over frames 0..29")
    qtbot.waitUntil(lambda: widget.progress_bar.value >= 2, timeout=WAIT_MS)
    assert not widget.labels_layer.editable, "no hand edits while the worker paints copies of frames"
    assert not widget.propagate_form.call_button.enabled and not widget.session_form.call_button.enabled
    press(widget.cancel_button)
    wait_idle(widget, qtbot)
    painted = object_frames(widget, 1)
    assert painted == list(range(len(painted))) and 2 <= len(painted) < 30
    assert widget.progress_bar.value < widget.progress_bar.max
    assert widget.status.toPlainText() == "Propagation cancelled."
    assert widget.propagate_form.call_button.enabled and not widget.cancel_button.enabled
    assert widget.labels_layer.editable


@pytest.mark.parametrize(("kind", "sequence_axis"), [("uint16", 0), ("float32 z-stack", 2), ("uint8 rgb", 0)])
def test_widget_labels_equal_direct_predictor_calls(docked, checkpoint, qtbot, tmp_path, kind, sequence_axis):
    viewer, widget = docked
    cells, _ = synthetic_cells(n_frames=5, size=64, n_cells=2, seed=1)
    data = {
        "uint16": cells,
        "float32 z-stack": np.moveaxis(cells.astype(np.float32) / 4095.0, 0, 2),
        "uint8 rgb": np.stack([(cells // 16).astype(np.uint8)] * 3, axis=-1),
    }[kind]
    image = viewer.add_image(data, name=kind, rgb=kind == "uint8 rgb")
    start_session(widget, image, checkpoint, qtbot, sequence_axis=sequence_axis)
    positive = click_frame(viewer, widget, qtbot, 2, 20, 30)
    negative = click_frame(viewer, widget, qtbot, 2, 40, 12, positive=False)
    press(widget.new_object_button)
    viewer.dims.set_current_step(sequence_axis, 4)
    press(widget.box_button)
    assert viewer.layers.selection.active is widget.boxes and widget.boxes.mode == "add_rectangle"
    drag_canvas(viewer, qtbot, image_to_world(widget, 10, 8), image_to_world(widget, 50, 40))
    wait_idle(widget, qtbot)
    [corners] = widget.boxes.data
    plane = np.delete(corners, sequence_axis, axis=1)
    (y0, x0), (y1, x1) = plane.min(axis=0), plane.max(axis=0)
    viewer.dims.set_current_step(sequence_axis, 2)
    propagate(widget, qtbot, direction=Direction.BOTH, all_frames=True)

    twin = DirectTwin(checkpoint, data, sequence_axis)
    twin.add_points(2, 1, [positive], [1])
    twin.add_points(2, 1, [positive, negative], [1, 0])
    obj_ids, masks = twin.session.add_box(4, 2, (x0, y0, x1, y1), np.zeros((0, 2)), np.zeros(0))
    paint_masks(twin.labels[4], obj_ids, masks.numpy())
    twin.propagate(2, reverse=False)
    twin.propagate(2, reverse=True)
    np.testing.assert_array_equal(widget.controller.tracking.labels, twin.labels)
    assert object_frames(widget, 2), "the box prompt segments object 2"

    assert widget.labels_layer.data.shape == data.shape[:3]
    widget.export_form.path.value, widget.export_form["layout"].value = tmp_path / "labels.tif", ExportLayout.TIFF
    press(widget.export_form.call_button)
    assert widget.status.toPlainText().startswith("Saved TIFF stack to")
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "labels.tif"), twin.labels)
    widget.export_form.path.value, widget.export_form["layout"].value = tmp_path / "sav", ExportLayout.SAV
    press(widget.export_form.call_button)
    written = read_binary_mask_png(tmp_path / "sav" / kind / "002" / "00004.png")
    np.testing.assert_array_equal(written, twin.labels[4] == 2)


def test_click_points_and_boxes_take_their_objects_label_colour(docked, checkpoint, qtbot):
    viewer, widget = docked
    image = viewer.add_image(synthetic_cells(n_frames=3, size=64, n_cells=2)[0], name="cells")
    start_session(widget, image, checkpoint, qtbot)
    click_frame(viewer, widget, qtbot, 1, 20, 20)
    press(widget.new_object_button)
    click_frame(viewer, widget, qtbot, 1, 40, 40, positive=False)
    colormap = widget.labels_layer.colormap
    np.testing.assert_allclose(widget.points.face_color, colormap.map(np.array([1, 2])), atol=1e-6)
    assert not np.allclose(*widget.points.face_color), "two objects, two colours"
    np.testing.assert_array_equal(widget.points.border_color[:, :3], [[0, 1, 0], [1, 0, 0]])  # polarity
    press(widget.box_button)
    drag_canvas(viewer, qtbot, (10, 10), (30, 30))
    np.testing.assert_allclose(widget.boxes.edge_color, colormap.map(np.array([2])), atol=1e-6)
    wait_idle(widget, qtbot)


def test_box_brings_back_a_deleted_boxes_layer_and_its_box_prompts(docked, checkpoint, qtbot, notifications):
    viewer, widget = docked
    image = viewer.add_image(synthetic_cells(n_frames=3, size=64, n_cells=1)[0], name="cells")
    start_session(widget, image, checkpoint, qtbot)
    viewer.layers.remove(widget.boxes)
    viewer.dims.set_current_step(0, 1)
    press(widget.box_button)
    assert widget.boxes in viewer.layers and viewer.layers.selection.active is widget.boxes
    assert widget.boxes.mode == "add_rectangle" and notifications(NotificationSeverity.ERROR) == []
    drag_canvas(viewer, qtbot, (12, 12), (40, 44))
    wait_idle(widget, qtbot)
    assert widget.controller.tracking.prompts[(1, 1)].box is not None
    assert object_frames(widget, 1) == [1]


def test_errors_reach_the_user_as_one_readable_line(docked, checkpoint, qtbot, tmp_path, notifications, monkeypatch):
    viewer, widget = docked
    levels = [np.zeros((3, 32, 32), dtype=np.uint16), np.zeros((3, 16, 16), dtype=np.uint16)]
    pyramid = viewer.add_image(levels, multiscale=True, name="pyramid")
    widget.reset_choices()
    widget.session_form.image.value = pyramid
    press(widget.session_form.call_button)
    [error] = notifications(NotificationSeverity.ERROR)
    assert error.severity == NotificationSeverity.ERROR
    first_line = error.message.splitlines()[0]
    assert first_line.startswith("Start session failed: ") and "pyramid" in first_line
    assert widget.status.toPlainText() == first_line
    assert error.exception.__traceback__ is not None, "details behind View Traceback"

    stack = viewer.add_image(np.zeros((3, 16, 16), dtype=np.uint16), name="stack")
    missing = tmp_path / "nowhere.pt"
    widget.reset_choices()
    form = widget.session_form
    form.image.value, form.checkpoint.value, form.checkpoint_file.value = stack, CHECKPOINT_FILE, missing
    press(form.call_button)
    assert (
        notifications(NotificationSeverity.ERROR)[-1].message
        == f"Start session failed: {missing}: no such checkpoint file; pick a .pt file"
    )

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    dock_width = dock_of(widget).width()
    form.checkpoint.value, form.device.value = "sam2.1_hiera_large", "cpu"
    press(form.call_button)
    wait_idle(widget, qtbot)
    message = notifications(NotificationSeverity.ERROR)[-1].message
    assert message.startswith("Start session failed: sam2.1_hiera_large.pt is not in the Hugging Face cache")
    assert widget.status.toPlainText() == message.splitlines()[0], "no invisible characters"
    assert "https://huggingface.co/facebook/sam2.1-hiera-large" in widget.status.toPlainText()
    qtbot.wait(50)
    assert dock_of(widget).width() == dock_width, "the long URL wraps inside the dock"
    assert widget.status.width() <= dock_width
    assert widget.status.document().firstBlock().layout().lineCount() > 2, "wrapped over lines"
    assert widget.controller.tracking is None and form.call_button.enabled


def test_start_without_a_picked_checkpoint_file_says_so(docked, notifications):
    viewer, widget = docked
    stack = viewer.add_image(np.zeros((3, 16, 16), dtype=np.uint16), name="stack")
    widget.reset_choices()
    form = widget.session_form
    form.image.value, form.checkpoint.value = stack, CHECKPOINT_FILE
    press(form.call_button)
    expected = f"Start session failed: No checkpoint file picked: choose a .pt file beside '{CHECKPOINT_FILE}'"
    assert [n.message for n in notifications(NotificationSeverity.ERROR)] == [expected]
    assert widget.status.toPlainText() == expected and widget.controller.tracking is None


def test_clicks_in_the_3d_view_are_refused_with_a_message(docked, checkpoint, qtbot, notifications):
    viewer, widget = docked
    image = viewer.add_image(synthetic_cells(n_frames=4, size=48, n_cells=1)[0], name="cells")
    start_session(widget, image, checkpoint, qtbot)
    viewer.dims.ndisplay = 3
    viewer.layers.selection.active = widget.points
    widget.points.mode = "add"
    qtbot.mouseClick(canvas(viewer), Qt.MouseButton.LeftButton, pos=canvas(viewer).rect().center())
    wait_idle(widget, qtbot)
    assert len(widget.points.data) == 0 and not widget.labels_layer.data.any()
    assert widget.controller.tracking.prompts == {}
    [warning] = notifications(NotificationSeverity.WARNING)
    assert "switch to the 2D view" in warning.message and "switch to the 2D view" in widget.status.toPlainText()
    viewer.dims.ndisplay = 2
    click_frame(viewer, widget, qtbot, 1, 24, 24)
    assert object_frames(widget, 1) == [1]


def test_clicks_and_boxes_off_the_image_are_refused_with_a_message(docked, checkpoint, qtbot, notifications):
    viewer, widget = docked
    image = viewer.add_image(synthetic_cells(n_frames=3, size=48, n_cells=1)[0], name="cells", scale=(1, 2, 2))
    start_session(widget, image, checkpoint, qtbot)
    widget.points.add([1, -6, 20])  # above the image
    widget.boxes.add_rectangles(np.array([[1, 60, 60], [1, 60, 70], [1, 70, 70], [1, 70, 60]]))  # below and right
    wait_idle(widget, qtbot)
    message = "Prompts go on the image (48 x 48 pixels): click or draw inside it."
    assert [w.message for w in notifications(NotificationSeverity.WARNING)] == [message] * 2
    assert widget.status.toPlainText() == message
    assert len(widget.points.data) == len(widget.boxes.data) == 0 and widget.controller.tracking.prompts == {}
    widget.boxes.add_rectangles(np.array([[1, -5, -5], [1, -5, 10], [1, 10, 10], [1, 10, -5]]))  # overlaps a corner
    click_frame(viewer, widget, qtbot, 1, 24, 24)
    assert sorted(widget.controller.tracking.prompts) == [(1, 1)] and len(widget.boxes.data) == 1
    assert object_frames(widget, 1) == [1]


def test_closing_the_dock_during_propagation_stops_and_joins_the_worker(make_napari_viewer, checkpoint, qtbot):
    viewer = make_napari_viewer(show=True)
    _, widget = viewer.window.add_plugin_dock_widget("sam2-plugins", "SAM 2 video segmentation")
    image = viewer.add_image(synthetic_cells(n_frames=30, size=96, n_cells=1)[0], name="long")
    start_session(widget, image, checkpoint, qtbot)
    click_frame(viewer, widget, qtbot, 0, 30, 30)
    set_propagation(widget, direction=Direction.FORWARD)
    press(widget.propagate_form.call_button)
    qtbot.waitUntil(lambda: widget.progress_bar.value >= 1, timeout=WAIT_MS)
    with qtbot.capture_exceptions() as exceptions:
        viewer.window.remove_dock_widget(widget)
        assert not widget.controller.alive, "the worker was joined when the dock closed"
        painted = object_frames(widget, 1)
        qtbot.wait(300)
        assert object_frames(widget, 1) == painted, "nothing arrives after the dock closed"
    assert exceptions == []
    assert widget.progress_bar.value < 30


def test_t_key_on_the_canvas_toggles_the_next_clicks_polarity(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    image = viewer.add_image(np.zeros((3, 32, 32), dtype=np.uint16))
    points, _ = create_prompt_layers(image)
    viewer.add_layer(points)
    viewer.layers.selection.active = points
    points.mode = "add"
    canvas(viewer).setFocus()
    qtbot.keyClick(canvas(viewer), Qt.Key.Key_T)
    points.add([1, 5, 5])
    qtbot.keyClick(canvas(viewer), Qt.Key.Key_T)
    points.add([1, 9, 9])
    assert points.features["positive"].tolist() == [False, True]


def test_large_label_stacks_are_memory_mapped(docked, checkpoint, qtbot, monkeypatch):
    monkeypatch.setattr(widget_module, "LABELS_IN_MEMORY_BYTES", 1000)
    viewer, widget = docked
    image = viewer.add_image(synthetic_cells(n_frames=3, size=64, n_cells=1)[0], name="big")
    start_session(widget, image, checkpoint, qtbot)
    assert isinstance(widget.labels_layer.data, np.memmap) and not widget.labels_layer.data.any()
    click_frame(viewer, widget, qtbot, 1, 32, 32)
    assert object_frames(widget, 1) == [1] and (widget.labels_layer.data[1] == 1).any()


def test_propagation_over_a_range_only_touches_it(docked, checkpoint, qtbot, notifications):
    viewer, widget = docked
    image = viewer.add_image(synthetic_cells(n_frames=6, size=64, n_cells=1)[0], name="range")
    start_session(widget, image, checkpoint, qtbot)
    click_frame(viewer, widget, qtbot, 2, 32, 32)
    assert not widget.propagate_form.first_frame.enabled
    set_propagation(widget, all_frames=False)
    assert widget.propagate_form.first_frame.enabled
    propagate(widget, qtbot, direction=Direction.BOTH, first_frame=1, last_frame=3)
    assert object_frames(widget, 1) == [1, 2, 3]
    assert widget.progress_bar.value == widget.progress_bar.max == 4
    propagate(widget, qtbot, direction=Direction.FORWARD, first_frame=3, last_frame=5)
    assert notifications(NotificationSeverity.ERROR)[-1].message == (
        "Propagate failed: the current frame 2 is outside the frame range 3..5; widen the range"
    )
    assert widget.status.toPlainText() == notifications(NotificationSeverity.ERROR)[-1].message


@pytest.mark.parametrize("removed", ["labels_layer", "points"])
def test_removing_the_session_labels_or_clicks_layer_stops_it_and_says_so(
    docked, checkpoint, qtbot, notifications, removed
):
    viewer, widget = docked
    image = viewer.add_image(synthetic_cells(n_frames=12, size=64, n_cells=1)[0], name="cells")
    start_session(widget, image, checkpoint, qtbot)
    click_frame(viewer, widget, qtbot, 0, 20, 20)
    press(widget.propagate_form.call_button)
    layer = getattr(widget, removed)
    viewer.layers.remove(layer)
    wait_idle(widget, qtbot)

    [warning] = notifications(NotificationSeverity.WARNING)
    assert (
        warning.message.startswith(f"{layer.name} was removed from the viewer") and "Start session" in warning.message
    )
    assert widget.status.toPlainText().startswith(f"{layer.name} was removed"), "the propagation's end does not hide it"
    assert widget.progress_bar.value < widget.progress_bar.max, "the propagation was cancelled"
    assert not widget.propagate_form.enabled and not widget.object_form.enabled and not widget.export_form.enabled
    assert widget.session_form.call_button.enabled and notifications(NotificationSeverity.ERROR) == []
