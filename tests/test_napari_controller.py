"""The napari widget's work queue without Qt or a viewer: one worker thread, a real session (random weights).

Callbacks are handed to this test's thread through a queue, as the widget hands them to the Qt event loop.
"""

import ast
import os
import queue
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from random_checkpoint import CONFIG, IMAGE_SIZE, write_random_checkpoint

from sam2_plugins.frames import open_frames
from sam2_plugins.model import Sam2VideoPredictor
from sam2_plugins.napari_plugin import controller as controller_module
from sam2_plugins.napari_plugin.controller import SessionController
from sam2_plugins.napari_plugin.prompts import FramePrompts
from sam2_plugins.napari_plugin.tracking import Direction, TrackingSession, frames_visited, propagation_runs
from sam2_plugins.sample_data import synthetic_cells

WAIT_S = 120
CLICK = FramePrompts(points=((20.0, 30.0),), labels=(1,))
OTHER = FramePrompts(points=((44.0, 40.0),), labels=(1,))


@pytest.fixture(scope="module")
def predictor(tmp_path_factory) -> Sam2VideoPredictor:
    path = write_random_checkpoint(tmp_path_factory.mktemp("checkpoint"), seed=1)
    return Sam2VideoPredictor.from_checkpoint(path, config=CONFIG, image_size=IMAGE_SIZE, device="cpu")


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    return synthetic_cells(n_frames=8, size=64, n_cells=2, seed=4)[0]


class RecordingSession:
    """A real session that also records which frames it was asked to encode (its public `encode_frame`)."""

    def __init__(self, session):
        self._session = session
        self.encoded: list[int] = []

    def encode_frame(self, frame_idx: int) -> None:
        self.encoded.append(frame_idx)
        self._session.encode_frame(frame_idx)

    def __getattr__(self, name):
        return getattr(self._session, name)


class Ui:
    """The test's thread standing in for the UI thread: runs the callbacks the controller hands over."""

    def __init__(self):
        self.callbacks: queue.Queue = queue.Queue()
        self.errors: list[tuple[str, Exception]] = []
        self.threads: set[threading.Thread] = set()
        self.controller = SessionController(self.callbacks.put, on_error=self._on_error)

    def _on_error(self, action: str, error: Exception) -> None:
        self.errors.append((action, error))

    def record(self, callback):
        """``callback`` that also notes the thread it ran on."""

        def recording(*args):
            self.threads.add(threading.current_thread())
            return callback(*args)

        return recording

    def run_until_idle(self) -> None:
        while self.controller.busy:
            self.callbacks.get(timeout=WAIT_S)()


@pytest.fixture
def ui(predictor, frames):
    ui = Ui()
    session = RecordingSession(predictor.init_video(open_frames(frames)))
    ui.controller.bind(TrackingSession(session, np.zeros(frames.shape, dtype=np.uint16)))
    yield ui
    ui.controller.close()


def hold_worker(ui: Ui) -> threading.Event:
    """Occupy the worker with a job that waits for the returned event (the job stands in for a slow model load)."""
    release = threading.Event()
    ui.controller.open_session(lambda: release.wait(WAIT_S), on_opened=lambda _: None)
    return release


def test_a_propagation_asked_right_after_a_click_waits_for_it_and_callbacks_run_on_the_ui_thread(ui):
    frames_done, finished, applied = [], [], []
    tracking = ui.controller.tracking
    ui.controller.update_prompts({(0, 1): CLICK}, on_applied=ui.record(applied.append))
    runs = propagation_runs(0, Direction.BOTH, 0, 7)
    ui.controller.propagate(runs, on_frame=ui.record(frames_done.append), on_finished=ui.record(finished.append))
    assert ui.controller.propagating and ui.controller.busy
    ui.run_until_idle()

    assert applied == [{0}] and finished == [False] and not ui.errors
    assert [frame for frame, _ in frames_done] == list(range(8))
    assert len(frames_done) == frames_visited(runs), "from frame 0 both ways, progress counts only frames visited"
    assert ui.threads == {threading.current_thread()}
    for frame, labels in frames_done:
        assert not (tracking.labels[frame] == 1).any() or frame == 0, "the UI thread assigns propagated frames"
        tracking.labels[frame] = labels
    assert not ui.controller.propagating


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")
def test_the_worker_and_the_compute_threads_it_starts_run_below_the_ui_priority(ui):
    def niceness(thread_id: int) -> int:
        return os.getpriority(os.PRIO_PROCESS, thread_id)

    def started_thread_niceness() -> int:
        seen = []
        thread = threading.Thread(target=lambda: seen.append(niceness(threading.get_native_id())))
        thread.start()
        thread.join()
        return seen[0]

    measured = []
    job = lambda: measured.extend([niceness(threading.get_native_id()), started_thread_niceness()])
    ui.controller.open_session(job, on_opened=lambda _: None)
    ui.run_until_idle()
    lowered = min(niceness(threading.get_native_id()) + controller_module.WORKER_NICENESS, 19)  # 19: the lowest
    assert measured == [lowered] * 2 and not ui.errors


def test_prompt_edits_made_while_the_worker_is_busy_are_sent_together(ui):
    release = hold_worker(ui)
    applied = []
    for prompts in ({(2, 1): CLICK}, {(2, 1): CLICK, (2, 2): OTHER}, {(2, 2): OTHER}):
        ui.controller.update_prompts(prompts, on_applied=applied.append)
    release.set()
    ui.run_until_idle()
    assert applied == [{2}], "one sync, with the newest edits"
    assert ui.controller.tracking.prompts == {(2, 2): OTHER}
    assert ui.controller.tracking.session.obj_ids == [2]


def test_the_shown_frame_is_encoded_once_the_worker_is_idle_and_only_the_newest(ui):
    session = ui.controller.tracking.session
    release = hold_worker(ui)
    for frame in (1, 5, 6):
        ui.controller.show_frame(frame)
    assert session.encoded == []
    release.set()
    ui.run_until_idle()
    assert session.encoded == [6]
    ui.controller.show_frame(6)
    assert not ui.controller.busy, "a frame already encoded is not encoded again"
    ui.controller.show_frame(99)
    assert not ui.controller.busy, "a frame outside the video is ignored"


def test_cancel_stops_after_the_frame_in_progress_and_drops_queued_propagations(ui):
    ui.controller.update_prompts({(0, 1): CLICK})
    frames_done, finished = [], []

    def cancel_after_two(frame_labels):
        frames_done.append(frame_labels[0])
        if len(frames_done) == 2:
            ui.controller.cancel()

    ui.controller.propagate([(0, False, 7)], on_frame=cancel_after_two, on_finished=finished.append)
    ui.controller.propagate([(7, True, 7)], on_frame=frames_done.append, on_finished=finished.append)
    ui.run_until_idle()
    assert finished == [True], "the running propagation reports it was cancelled; the queued one never runs"
    assert frames_done[:2] == [0, 1] and len(frames_done) < 8


def test_a_failing_job_reports_its_action_and_the_queue_goes_on(ui):
    frames_done, finished = [], []
    ui.controller.update_prompts({(3, 1): CLICK})
    ui.controller.propagate([(20, False, 3)], on_frame=frames_done.append, on_finished=finished.append)
    ui.controller.propagate([(3, False, 2)], on_frame=frames_done.append, on_finished=finished.append)
    ui.run_until_idle()
    [(action, error)] = ui.errors
    assert action == "Propagate" and isinstance(error, IndexError) and "outside the video's 8 frames" in str(error)
    assert finished == [False] and [frame for frame, _ in frames_done] == [3, 4, 5]
    assert not ui.controller.propagating


def test_only_the_chosen_objects_are_painted(ui):
    tracking = ui.controller.tracking
    ui.controller.update_prompts({(0, 1): CLICK, (0, 2): OTHER})

    def assign(frame_labels):
        frame, labels = frame_labels
        tracking.labels[frame] = labels

    ui.controller.propagate([(0, False, 7)], on_frame=assign, on_finished=lambda _: None)
    ui.run_until_idle()
    assert (tracking.labels == 2).any()
    corrected = FramePrompts(points=((20.0, 30.0), (26.0, 34.0)), labels=(1, 0))
    ui.controller.update_prompts({(0, 1): corrected, (0, 2): OTHER})
    ui.run_until_idle()
    before = tracking.labels.copy()
    masks_before = [tracking.session.masks(frame)[1][1].clone() for frame in range(8)]
    painted = []
    ui.controller.propagate([(0, False, 7)], on_frame=painted.append, on_finished=lambda _: None, obj_ids=[1])
    ui.run_until_idle()
    assert [frame for frame, _ in painted] == list(range(8))
    for frame, labels in painted:
        np.testing.assert_array_equal(labels == 2, before[frame] == 2, err_msg=f"object 2 moved on frame {frame}")
        assert tracking.session.masks(frame)[1][1].equal(masks_before[frame]), f"object 2 re-tracked on {frame}"


def test_close_during_a_propagation_joins_the_worker_and_delivers_nothing_after(ui):
    ui.controller.update_prompts({(0, 1): CLICK})
    delivered = []
    ui.controller.propagate([(0, False, 7)], on_frame=delivered.append, on_finished=delivered.append)
    ui.callbacks.get(timeout=WAIT_S)()  # the prompt sync
    ui.controller.close()
    assert not ui.controller.alive and not ui.controller.busy
    while not ui.callbacks.empty():
        ui.callbacks.get()()
    assert delivered == [], "callbacks handed over after close are not run"
    with pytest.raises(RuntimeError, match="widget was closed"):
        ui.controller.open_session(lambda: None, on_opened=lambda _: None)


def test_the_napari_plugin_uses_public_napari_only_and_the_widget_schedules_nothing():
    plugin = Path(controller_module.__file__).parent
    for path in plugin.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("napari"):
                assert not any(part.startswith("_") for part in node.module.split(".")), f"{path.name}: {node.module}"
    widget_imports = {
        alias.name.split(".")[0] if isinstance(node, ast.Import) else node.module
        for node in ast.walk(ast.parse((plugin / "widget.py").read_text()))
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert not widget_imports & {"threading", "concurrent.futures", "napari.qt.threading", "superqt.utils"}
