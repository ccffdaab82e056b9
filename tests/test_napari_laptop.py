"""The dock on a laptop: a 1366x768 main window (`make test` runs Xvfb on a 1366x768 screen) in which every control
of the dock is scrolled into view and pressed where it lives; long status messages; frame axes by name; the CPU
image size; hostile layer names on export. A real viewer, a random-weight SAM 2.1 tiny (128 px unless said)."""

import numpy as np
import pytest
import torch
from napari.utils.notifications import NotificationSeverity
from napari_ui import (  # noqa: F401  (checkpoint, laptop, notifications: fixtures)
    LAPTOP_HEIGHT,
    LAPTOP_WIDTH,
    WAIT_MS,
    checkpoint,
    click,
    click_canvas,
    click_frame,
    laptop,
    notifications,
    object_frames,
    on_screen,
    reach,
    start_session,
    wait_idle,
    window_frame,
)
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QAbstractButton, QApplication
from random_checkpoint import CONFIG, write_random_checkpoint

from sam2_plugins.napari_plugin.widget import CHECKPOINT_FILE, ExportLayout, Sam2Widget
from sam2_plugins.sample_data import synthetic_cells

pytestmark = pytest.mark.napari


def test_the_window_fits_1366x768_and_every_button_is_reached_and_pressed(laptop, checkpoint, qtbot, tmp_path):
    viewer, widget = laptop
    assert window_frame(viewer).height() <= LAPTOP_HEIGHT and window_frame(viewer).width() <= LAPTOP_WIDTH
    cells, truth = synthetic_cells(n_frames=6, size=64, n_cells=2, seed=3)
    image = viewer.add_image(cells, name="cells")
    ground_truth = viewer.add_labels(truth, name="ground truth")

    buttons = [button for button in widget.findChildren(QAbstractButton) if button.isVisibleTo(widget)]
    assert len(buttons) >= 15, [button.text() for button in buttons]
    for button in buttons:  # each push button, check box, file picker and section header
        reach(widget, button, qtbot)

    form = widget.session_form
    form.image.value, form.checkpoint.value, form.checkpoint_file.value = image, CHECKPOINT_FILE, checkpoint
    form.config.value, form.device.value, form.image_size.value = CONFIG, "cpu", 128
    click(widget, form.call_button, qtbot)
    qtbot.waitUntil(lambda: widget.controller.tracking is not None, timeout=WAIT_MS)
    wait_idle(widget, qtbot)
    click_frame(viewer, widget, qtbot, 0, *np.argwhere(truth[0] == 1).mean(axis=0))

    click(widget, widget.new_object_button, qtbot)
    assert widget.object_id.value == 2
    click(widget, widget.box_button, qtbot)
    assert viewer.layers.selection.active is widget.boxes and widget.boxes.mode == "add_rectangle"
    widget.object_id.value = 1
    click(widget, widget.painted_mask_button, qtbot)
    wait_idle(widget, qtbot)
    assert (0, 1) in widget.controller.tracking.masks
    widget.seed_form.layer.value, widget.seed_form.frame.value = ground_truth, 0
    click(widget, widget.seed_form.call_button, qtbot)
    wait_idle(widget, qtbot)
    assert {(0, 1), (0, 2)} <= set(widget.controller.tracking.masks)

    widget.segment_section.collapse(animate=False)
    widget.segment_form.points_per_side.value = 2
    click(widget, widget.segment_form.call_button, qtbot)  # expands "Segment all" by its header first
    assert widget.segment_section.isExpanded()
    wait_idle(widget, qtbot)
    click(widget, widget.track_all_form.call_button, qtbot)
    wait_idle(widget, qtbot)
    assert widget.status.toPlainText().startswith(("Propagation done", "Segment all kept no mask"))

    click(widget, widget.propagate_form.call_button, qtbot)
    qtbot.waitUntil(lambda: widget.progress_bar.value >= 1, timeout=WAIT_MS)
    click(widget, widget.cancel_button, qtbot)
    wait_idle(widget, qtbot)
    assert widget.status.toPlainText() == "Propagation cancelled."
    click(widget, widget.propagate_form.call_button, qtbot)
    wait_idle(widget, qtbot)
    assert widget.status.toPlainText() == "Propagation done. Correct any frame and propagate again."
    assert object_frames(widget, 1) == list(range(6))

    widget.export_form.path.value, widget.export_form["layout"].value = tmp_path / "labels.tif", ExportLayout.TIFF
    click(widget, widget.export_form.call_button, qtbot)
    assert widget.status.toPlainText() == f"Saved TIFF stack to {tmp_path / 'labels.tif'}"
    assert (tmp_path / "labels.tif").is_file()
    assert window_frame(viewer).height() <= LAPTOP_HEIGHT, "nothing grew the window"


def test_a_long_status_neither_squashes_the_objects_section_nor_hides_what_it_says(
    laptop, tmp_path, qtbot, notifications
):
    viewer, widget = laptop
    viewer.add_image(np.zeros((3, 32, 32), dtype=np.uint16), name="stack")
    widget.reset_choices()
    status_height, dock_width = widget.status.height(), widget.width()
    missing = tmp_path.joinpath(*["a_long_folder_name_without_spaces"] * 6, "https_huggingface.co_weights.pt")
    form = widget.session_form
    form.checkpoint.value, form.checkpoint_file.value = CHECKPOINT_FILE, missing
    click(widget, form.call_button, qtbot)
    expected = f"Start session failed: {missing}: no such checkpoint file; pick a .pt file"
    assert widget.status.toPlainText() == expected, "the whole message, no invisible characters"
    assert [n.message for n in notifications(NotificationSeverity.ERROR)] == [expected]
    qtbot.wait(50)
    assert widget.status.height() == status_height and widget.width() == dock_width
    assert widget.status.document().firstBlock().layout().lineCount() > 3, "the path wraps inside the dock"
    assert window_frame(viewer).height() <= LAPTOP_HEIGHT

    for button in (widget.new_object_button, widget.box_button, widget.painted_mask_button):
        reach(widget, button.native, qtbot)
        assert button.native.height() >= button.native.sizeHint().height(), button.text
    hint = widget.object_form[-1].native
    assert hint.height() >= hint.heightForWidth(hint.width()), "the click hint is not cut"

    widget.status.setFocus()
    qtbot.keyClick(widget.status, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClick(widget.status, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    assert QApplication.clipboard().text() == expected, "the status is selected and copied"
    assert widget.status.textInteractionFlags() & Qt.TextInteractionFlag.TextSelectableByMouse


def test_the_frame_axis_is_offered_by_the_axis_names(laptop, checkpoint, qtbot):
    viewer, widget = laptop
    cells, _ = synthetic_cells(n_frames=6, size=48, n_cells=1, seed=7)
    labelled = viewer.add_image(cells.reshape(3, 2, 48, 48), name="tzyx", axis_labels=("t", "z", "y", "x"))
    widget.reset_choices()
    form = widget.session_form
    form.image.value = labelled
    combo = form.sequence_axis.native
    assert form.sequence_axis.label == "frame axis"
    assert [combo.itemText(i) for i in range(combo.count())] == [
        "t (3 frames)",
        "z (2 frames)",
        "y (48 frames)",
        "x (48 frames)",
    ]
    viewer.layers.remove(labelled)
    plain = viewer.add_image(np.zeros((4, 16, 16), dtype=np.uint16), name="plain")
    form.image.value = plain
    assert [combo.itemText(i) for i in range(combo.count())] == [
        "axis 0 (4 frames)",
        "y (16 frames)",
        "x (16 frames)",
    ], "unlabelled: the viewer's sliders' names, else the axis number"
    viewer.dims.axis_labels = ("T", "Y", "X")  # the user renames the sliders
    assert combo.itemText(0) == "T (4 frames)"
    viewer.layers.remove(plain)

    image = viewer.add_image(cells.reshape(3, 2, 48, 48), name="tzyx", axis_labels=("t", "z", "y", "x"))
    widget.reset_choices()
    form.image.value = image
    viewer.dims.set_current_step(0, 0)
    combo.setCurrentText("z (2 frames)")  # as the user picks it
    start_session(widget, image, checkpoint, qtbot, sequence_axis=form.sequence_axis.value)
    assert widget.frame_axes.sequence == 1 and widget.frame_axes.num_frames == 2
    viewer.dims.set_current_step(0, 2)  # the session tracks t = 0
    viewer.layers.selection.active = widget.points
    widget.points.mode = "add"
    click_canvas(viewer, qtbot, 20, 20)
    assert widget.status.toPlainText().startswith("This session tracks the frames with t at 0")


def test_the_default_image_size_keeps_clicks_interactive_on_cpu(laptop, qtbot, tmp_path):
    viewer, widget = laptop
    form = widget.session_form
    expected = 1024 if torch.cuda.is_available() else 512
    assert form.image_size.value == expected
    assert "512 on CPU" in form.image_size.tooltip and "1024" in form.image_size.tooltip
    form.device.value = "cuda"
    assert form.image_size.value == 1024
    form.device.value = "cpu"
    assert form.image_size.value == 512
    form.image_size.value = 640
    form.device.value = "auto"
    assert form.image_size.value == 640, "a size the user typed stays"
    form.image_size.value = 512

    checkpoint_512 = write_random_checkpoint(tmp_path, image_size=512)
    image = viewer.add_image(synthetic_cells(n_frames=2, size=48, n_cells=1)[0], name="cells")
    widget.reset_choices()
    form.image.value, form.checkpoint.value, form.checkpoint_file.value = image, CHECKPOINT_FILE, checkpoint_512
    form.config.value, form.device.value = CONFIG, "cpu"
    click(widget, form.call_button, qtbot)
    qtbot.waitUntil(lambda: widget.controller.tracking is not None, timeout=WAIT_MS)
    assert widget._predictor.model.image_size == 512
    click_frame(viewer, widget, qtbot, 1, 24, 24)
    assert widget.status.toPlainText().startswith("Masks updated on frame 1")


def session_with_a_mask(laptop, checkpoint, qtbot) -> Sam2Widget:
    """The dock with a session on a 2-frame image layer named "cells", one object clicked on frame 0."""
    viewer, widget = laptop
    image = viewer.add_image(synthetic_cells(n_frames=2, size=48, n_cells=1)[0], name="cells")
    start_session(widget, image, checkpoint, qtbot)
    click_frame(viewer, widget, qtbot, 0, 24, 24)
    return widget


def test_sav_export_refuses_hostile_layer_names_and_writes_nothing(laptop, checkpoint, qtbot, tmp_path, notifications):
    widget = session_with_a_mask(laptop, checkpoint, qtbot)
    output = tmp_path / "exports"
    output.mkdir()
    (output / "keep.txt").write_text("the user's")
    before = sorted(tmp_path.rglob("*"))
    widget.export_form.path.value, widget.export_form["layout"].value = output, ExportLayout.SAV
    for name in (".", "..", "../escape", "a/b", "tab\tname", "zero\u200bwidth", " padded"):
        widget.image_layer.name = name
        click(widget, widget.export_form.call_button, qtbot)
        error = notifications(NotificationSeverity.ERROR)[-1].message
        assert error.startswith(f"Export failed: image layer name {name!r} ") and "rename it" in error
        assert widget.status.toPlainText() == error
        assert sorted(tmp_path.rglob("*")) == before and (output / "keep.txt").read_text() == "the user's"
    assert len(notifications(NotificationSeverity.ERROR)) == 7
    widget.image_layer.name = "cells"
    click(widget, widget.export_form.call_button, qtbot)
    assert sorted(p.name for p in output.iterdir()) == ["cells", "keep.txt"]


def test_sav_export_again_keeps_the_files_it_did_not_write(laptop, checkpoint, qtbot, tmp_path):
    widget = session_with_a_mask(laptop, checkpoint, qtbot)
    video = tmp_path / "cells"
    video.mkdir()
    (video / "notes.txt").write_text("the user's")
    widget.export_form.path.value, widget.export_form["layout"].value = tmp_path, ExportLayout.SAV
    for _ in range(2):  # the second export replaces the first one's PNGs
        click(widget, widget.export_form.call_button, qtbot)
        assert widget.status.toPlainText() == f"Saved SA-V PNG folders to {tmp_path}"
        assert sorted(p.name for p in video.iterdir()) == ["001", "napari_layer.json", "notes.txt"]
        assert (video / "notes.txt").read_text() == "the user's"
