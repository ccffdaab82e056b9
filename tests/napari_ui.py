"""Driving the SAM 2 dock widget as a user does: its buttons, and mouse and key events on the viewer's canvas, on a
1366x768 laptop screen."""

from pathlib import Path

import numpy as np
import pytest
from napari.utils.notifications import notification_manager
from qtpy.QtCore import QEvent, QPoint, QPointF, QRect, Qt
from qtpy.QtGui import QMouseEvent
from qtpy.QtWidgets import QApplication, QWidget
from random_checkpoint import write_random_checkpoint
from superqt import QCollapsible

from sam2_plugins.napari_plugin.widget import CHECKPOINT_FILE, Sam2Widget

WAIT_MS = 120_000
DRAG_STEPS = 6


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """Seeded random weights in the official checkpoint format (plumbing only: the masks mean nothing)."""
    return write_random_checkpoint(tmp_path_factory.mktemp("checkpoint"))


@pytest.fixture
def notifications():
    """``notifications(severity)``: what the user was notified of (errors reach napari's notification manager as
    they do in the app)."""
    notification_manager.install_hooks()
    start = len(notification_manager.records)
    yield lambda severity: [n for n in notification_manager.records[start:] if n.severity == severity]
    notification_manager.restore_hooks()


@pytest.fixture
def docked(make_napari_viewer, qtbot):
    """A shown viewer with the plugin's widget docked from its npe2 manifest; closed once its worker is idle."""
    viewer = make_napari_viewer(show=True)
    viewer.window.resize(1200, 900)
    _, widget = viewer.window.add_plugin_dock_widget("sam2-plugins", "SAM 2 video segmentation")
    yield viewer, widget
    wait_idle(widget, qtbot)


def canvas(viewer):
    """The Qt widget of the viewer's vispy canvas."""
    return viewer.window._qt_viewer.canvas.native


def canvas_position(viewer, y: float, x: float) -> QPoint:
    """Where world point (y, x) of the 2D view lies on the canvas, in widget pixels."""
    camera = viewer.scene.camera
    center_y, center_x = camera.center[-2:]
    native = canvas(viewer)
    return QPoint(
        round((x - center_x) * camera.zoom + native.width() / 2),
        round((y - center_y) * camera.zoom + native.height() / 2),
    )


def click_canvas(viewer, qtbot, y: float, x: float) -> None:
    """A left click on the canvas at world point (y, x) of the 2D view."""
    qtbot.mouseClick(canvas(viewer), Qt.MouseButton.LeftButton, pos=canvas_position(viewer, y, x))


def drag_canvas(viewer, qtbot, start: tuple[float, float], end: tuple[float, float]) -> None:
    """Press at world point ``start``, move with the button held and release at ``end`` (a rectangle drawn)."""
    native = canvas(viewer)
    p0, p1 = canvas_position(viewer, *start), canvas_position(viewer, *end)
    qtbot.mousePress(native, Qt.MouseButton.LeftButton, pos=p0)
    for k in range(1, DRAG_STEPS + 1):
        point = QPointF(p0 + (p1 - p0) * (k / DRAG_STEPS))
        move = QMouseEvent(
            QEvent.Type.MouseMove,
            point,
            QPointF(native.mapToGlobal(point)),
            Qt.MouseButton.NoButton,
            Qt.MouseButton.LeftButton,
            Qt.KeyboardModifier.NoModifier,
        )
        QApplication.sendEvent(native, move)
        qtbot.wait(30)  # napari reads drags from the event loop
    qtbot.mouseRelease(native, Qt.MouseButton.LeftButton, pos=p1)


def press(button) -> None:
    """Click a magicgui button or a form's call button as the user does."""
    button.native.click()


def wait_idle(widget: Sam2Widget, qtbot) -> None:
    """Wait until the widget's worker has nothing queued or running and its results are shown."""
    qtbot.waitUntil(lambda: not widget.controller.busy, timeout=WAIT_MS)


def start_session(widget: Sam2Widget, image, checkpoint, qtbot, sequence_axis: int = 0, **options) -> None:
    """Fill the Session form with ``checkpoint`` (a .pt file) and press Start session; wait until ready."""
    from random_checkpoint import CONFIG, IMAGE_SIZE

    widget.reset_choices()
    form = widget.session_form
    form.image.value, form.sequence_axis.value = image, sequence_axis
    form.checkpoint.value, form.checkpoint_file.value = CHECKPOINT_FILE, checkpoint
    form.config.value, form.device.value, form.image_size.value = CONFIG, "cpu", IMAGE_SIZE
    for name, value in options.items():
        getattr(form, name).value = value
    press(form.call_button)
    qtbot.waitUntil(lambda: widget.controller.tracking is not None, timeout=WAIT_MS)
    wait_idle(widget, qtbot)


def click_frame(viewer, widget: Sam2Widget, qtbot, frame: int, y: float, x: float, positive: bool = True):
    """Go to ``frame``, set the click's polarity with the T key if needed, click (y, x) on the canvas and wait for
    its mask; returns the click's (y, x) as the layer recorded it."""
    viewer.dims.set_current_step(widget.sequence_axis, frame)
    viewer.layers.selection.active = widget.points
    widget.points.mode = "add"
    if bool(widget.points.feature_defaults["positive"].iloc[0]) != positive:
        canvas(viewer).setFocus()
        qtbot.keyClick(canvas(viewer), Qt.Key.Key_T)
    count = len(widget.points.data)
    click_canvas(viewer, qtbot, *image_to_world(widget, y, x))
    assert len(widget.points.data) == count + 1, "the click landed on the canvas"
    wait_idle(widget, qtbot)
    return tuple(np.delete(widget.points.data[-1], widget.sequence_axis)[-2:])


def image_to_world(widget: Sam2Widget, y: float, x: float) -> tuple[float, float]:
    """World (y, x) of the 2D view of pixel (y, x) in a frame of the widget's image."""
    scale = np.delete(np.asarray(widget.image_layer.scale), widget.sequence_axis)[-2:]
    translate = np.delete(np.asarray(widget.image_layer.translate), widget.sequence_axis)[-2:]
    return tuple(np.array([y, x]) * scale + translate)


def object_frames(widget: Sam2Widget, obj_id: int) -> list[int]:
    return [t for t, frame in enumerate(widget.controller.tracking.labels) if (frame == obj_id).any()]


LAPTOP_WIDTH, LAPTOP_HEIGHT = 1366, 768


@pytest.fixture
def laptop(make_napari_viewer, qtbot):
    """A shown viewer with the dock open, its main window resized to a 1366x768 laptop screen."""
    viewer = make_napari_viewer(show=True)
    _, widget = viewer.window.add_plugin_dock_widget("sam2-plugins", "SAM 2 video segmentation")
    viewer.window._qt_window.resize(LAPTOP_WIDTH, LAPTOP_HEIGHT)
    qtbot.waitUntil(lambda: window_frame(viewer).height() <= LAPTOP_HEIGHT)
    yield viewer, widget
    wait_idle(widget, qtbot)


def window_frame(viewer) -> QRect:
    """The main window's frame on the screen (tests keep no reference to the window: an error's traceback keeps the
    test's frame, and with it the window, alive past the viewer's close)."""
    return viewer.window._qt_window.frameGeometry()


def on_screen(control: QWidget) -> bool:
    """All of ``control`` is shown: unclipped by the dock's scroll area, inside the main window and the screen."""
    window = control.window()
    rect = QRect(control.mapToGlobal(QPoint(0, 0)), control.size())
    return (
        control.isVisible()
        and control.visibleRegion().boundingRect() == control.rect()
        and window.frameGeometry().contains(rect)
        and window.screen().geometry().contains(rect)
    )


def reach(widget: Sam2Widget, control: QWidget, qtbot) -> None:
    """Bring ``control`` into view as a user does: click the header of each collapsed section holding it, scroll the
    dock to it; all of it must then be on screen."""
    sections = []
    parent = control.parentWidget()
    while parent is not None and parent is not widget:
        if isinstance(parent, QCollapsible):
            sections.append(parent)
        parent = parent.parentWidget()
    for section in reversed(sections):
        if not section.isExpanded():
            widget.scroll_area.ensureWidgetVisible(section.toggleButton())
            qtbot.mouseClick(section.toggleButton(), Qt.MouseButton.LeftButton)

    def shown() -> bool:
        widget.scroll_area.ensureWidgetVisible(control)
        return on_screen(control)

    qtbot.waitUntil(shown, timeout=5000)


def click(widget: Sam2Widget, magic_or_qt, qtbot) -> None:
    """Scroll to a button (a magicgui button, a form's call button or a Qt button) and click it with the mouse."""
    button = getattr(magic_or_qt, "native", magic_or_qt)
    reach(widget, button, qtbot)
    assert button.isEnabled(), button.text()
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
