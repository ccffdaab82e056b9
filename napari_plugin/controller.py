"""The napari widget's work queue: one worker thread runs a SAM 2 session's jobs in order, without Qt.

Jobs run one at a time in the order they were asked for (open a session, apply prompt edits, propagate); prompt
edits made while a sync waits join that sync; encoding the frame on screen runs only when nothing else waits.
Every callback reaches the UI through ``deliver`` (the widget posts it to its Qt event loop), so the state the UI
reads (``busy``, ``propagating``) changes on the UI thread only.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import Enum

import numpy as np

from sam2_plugins.model import VideoSession

from .prompts import FramePrompts, PromptKey
from .tracking import FrameLabels, TrackingSession

Deliver = Callable[[Callable[[], None]], None]
"""Hands a callback to the UI thread (which runs it later, in the order handed over)."""
WORKER_NICENESS = 10
"""How much lower than the UI's the worker's CPU priority is (Linux): with few cores the event loop and the display
server then run as soon as they have work, and the worker takes every cycle they leave."""


class JobKind(Enum):
    OPEN = "Start session"
    PROMPTS = "Apply prompts"
    MASKS = "Add mask prompts"
    PROPAGATE = "Propagate"
    ENCODE = "Encode the shown frame"
    DIVIDE = "Divide"
    UNDO_DIVISION = "Undo division"
    CLOSE = "Close session"


@dataclass(eq=False)
class Job:
    """One piece of work: ``run`` returns a result, or an iterator whose items are handed over one by one."""

    kind: JobKind
    run: Callable[[], object]
    on_item: Callable[[object], None] | None = None
    on_done: Callable[[object], None] | None = None


class SessionController:
    """Runs a `TrackingSession`'s jobs on one worker thread and hands results to the UI through ``deliver``.

    ``on_error(action, error)`` receives any job's exception (``action`` names what the user asked for);
    ``on_jobs_changed()`` follows every change of `busy`, `propagating` or `opening`. Call every public method from
    the UI thread.
    """

    def __init__(
        self,
        deliver: Deliver,
        on_error: Callable[[str, Exception], None],
        on_jobs_changed: Callable[[], None] | None = None,
    ):
        self.tracking: TrackingSession | None = None
        self._deliver = deliver
        self._on_error = on_error
        self._on_jobs_changed = on_jobs_changed
        self._lock = threading.Condition()
        self._queue: deque[Job] = deque()  # shared with the worker, under _lock
        self._idle_job: Job | None = None  # runs when the queue is empty, under _lock
        self._running: Job | None = None  # under _lock
        self._cancel = threading.Event()
        self._closed = False
        self._open_jobs: list[Job] = []  # submitted and not yet reported done: UI thread only
        self._newest_prompts: dict[PromptKey, FramePrompts] | None = None  # under _lock
        self._prompt_sync_queued = False  # under _lock
        self._encoded_frame: int | None = None
        self._thread = threading.Thread(target=self._work, name="sam2-session-worker", daemon=True)
        self._thread.start()

    # ---------------------------------------------------------------- state the UI reads
    @property
    def busy(self) -> bool:
        """A job is queued or running, or its results are still on their way to the UI."""
        return bool(self._open_jobs)

    @property
    def propagating(self) -> bool:
        return any(job.kind is JobKind.PROPAGATE for job in self._open_jobs)

    @property
    def opening(self) -> bool:
        return any(job.kind is JobKind.OPEN for job in self._open_jobs)

    @property
    def alive(self) -> bool:
        """The worker thread still runs (false once `close` returns)."""
        return self._thread.is_alive()

    # ---------------------------------------------------------------- jobs
    def open_session(self, open_video: Callable[[], VideoSession], on_opened: Callable[[VideoSession], None]) -> None:
        """Load a model and open a video in the worker; ``on_opened(session)`` then runs on the UI thread."""
        self._submit(Job(JobKind.OPEN, open_video, on_done=on_opened))

    def bind(self, tracking: TrackingSession) -> None:
        """Make ``tracking`` the session later jobs act on; the previous one's queued work is dropped and it is
        closed in the worker."""
        previous, self.tracking = self.tracking, tracking
        self._encoded_frame = None
        with self._lock:
            self._drop_queued(lambda job: job.kind is not JobKind.OPEN)
            self._newest_prompts, self._prompt_sync_queued = None, False
        if previous is not None:
            self._submit(Job(JobKind.CLOSE, previous.session.close))

    def update_prompts(
        self, prompts: dict[PromptKey, FramePrompts], on_applied: Callable[[set[int]], None] | None = None
    ) -> None:
        """Send the prompt layers' content to the predictor; ``on_applied(frames repainted)`` follows. Edits made
        before the worker takes them are sent together."""
        tracking = self._bound()
        with self._lock:
            self._newest_prompts = prompts
            if self._prompt_sync_queued:
                return
            self._prompt_sync_queued = True
        self._submit(
            Job(JobKind.PROMPTS, lambda: tracking.sync_prompts(self._take_prompts(tracking)), on_done=on_applied)
        )

    def add_masks(
        self,
        frame_idx: int,
        find_masks: Callable[[], dict[int, np.ndarray]],
        on_applied: Callable[[set[int]], None] | None = None,
    ) -> None:
        """Prompt objects with the ``{obj_id: mask}`` that ``find_masks()`` returns in the worker (painted labels,
        the automatic mask generator) on ``frame_idx`` (`TrackingSession.add_masks`), after the jobs queued before;
        ``on_applied(frames repainted)`` follows."""
        tracking = self._bound()
        self._submit(Job(JobKind.MASKS, lambda: tracking.add_masks(frame_idx, find_masks()), on_done=on_applied))

    def propagate(
        self,
        runs: Iterable[tuple[int, bool, int]],
        on_frame: Callable[[FrameLabels], None],
        on_finished: Callable[[bool], None],
        obj_ids: Iterable[int] | None = None,
    ) -> None:
        """Propagate ``runs`` after the jobs queued before; each frame's labels go to ``on_frame``, then
        ``on_finished(cancelled)``. With ``obj_ids`` only those objects are tracked and painted."""
        tracking = self._bound()
        runs, obj_ids = list(runs), None if obj_ids is None else sorted(obj_ids)
        self.stream_frames(lambda: tracking.propagate_runs(runs, obj_ids=obj_ids), on_frame, on_finished)

    def stream_frames(
        self,
        frames: Callable[[], Iterator[FrameLabels]],
        on_frame: Callable[[FrameLabels], None],
        on_finished: Callable[[bool], None],
    ) -> None:
        """Run ``frames()`` in the worker as a propagation (after the jobs queued before, cancellable): each frame's
        labels go to ``on_frame``, then ``on_finished(cancelled)``."""
        self._bound()
        self._submit(Job(JobKind.PROPAGATE, frames, on_item=on_frame, on_done=on_finished))

    def edit(self, kind: JobKind, edit: Callable[[TrackingSession], object], on_done: Callable[[object], None]) -> None:
        """Run ``edit(tracking)`` (a division, its undo) after the jobs queued before; ``on_done(result)`` follows."""
        tracking = self._bound()
        self._submit(Job(kind, lambda: edit(tracking), on_done=on_done))

    def show_frame(self, frame_idx: int) -> None:
        """Encode the frame on screen once the worker has nothing else to do, so a first click there only decodes.

        A newer frame replaces one still waiting; a frame already encoded is not encoded again."""
        tracking = self._bound()
        if frame_idx == self._encoded_frame or not 0 <= frame_idx < len(tracking.labels):
            return
        self._encoded_frame = frame_idx
        job = Job(JobKind.ENCODE, lambda: tracking.session.encode_frame(frame_idx))
        with self._lock:
            if self._idle_job is not None:
                self._open_jobs.remove(self._idle_job)
            self._idle_job = job
            self._open_jobs.append(job)
            self._lock.notify_all()
        self._jobs_changed()

    def cancel(self) -> None:
        """Stop a running propagation after the frame in progress and drop the propagations queued."""
        with self._lock:
            self._drop_queued(lambda job: job.kind is JobKind.PROPAGATE)
            if self._running is not None and self._running.kind is JobKind.PROPAGATE:
                self._cancel.set()
        self._jobs_changed()

    def close(self, timeout: float | None = None) -> None:
        """Cancel what runs, drop what waits, stop and join the worker, then release the session's features."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._cancel.set()
            self._queue.clear()
            self._idle_job = None
            self._lock.notify_all()
        self._thread.join(timeout)
        self._open_jobs.clear()
        if self.tracking is not None:
            self.tracking.session.close()

    # ---------------------------------------------------------------- internals
    def _bound(self) -> TrackingSession:
        if self.tracking is None:
            raise RuntimeError("Start a session first (Session: Start session).")
        return self.tracking

    def _submit(self, job: Job) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("The SAM 2 widget was closed; open it again from the Plugins menu.")
            self._queue.append(job)
            self._open_jobs.append(job)
            self._lock.notify_all()
        self._jobs_changed()

    def _take_prompts(self, tracking: TrackingSession) -> dict[PromptKey, FramePrompts]:
        """The newest prompt edits (what ``tracking`` has when an earlier sync already took them)."""
        with self._lock:
            prompts, self._newest_prompts, self._prompt_sync_queued = self._newest_prompts, None, False
        return tracking.prompts if prompts is None else prompts

    def _drop_queued(self, matches: Callable[[Job], bool]) -> None:
        """Remove queued jobs that ``matches`` (called under the lock, on the UI thread)."""
        for job in [job for job in self._queue if matches(job)]:
            self._queue.remove(job)
            self._open_jobs.remove(job)
            if job.kind is JobKind.PROMPTS:
                self._prompt_sync_queued = False
        if self._idle_job is not None and matches(self._idle_job):
            self._open_jobs.remove(self._idle_job)
            self._idle_job = None

    def _work(self) -> None:
        _lower_thread_priority(WORKER_NICENESS)
        while True:
            with self._lock:
                while not self._queue and self._idle_job is None and not self._closed:
                    self._lock.wait()
                if self._closed:
                    return
                if self._queue:
                    job = self._queue.popleft()
                else:
                    job, self._idle_job = self._idle_job, None
                self._running = job
                self._cancel.clear()
            try:
                self._run(job)
            except Exception as error:  # reported to the user, who can retry
                self._post(self._on_error, job.kind.value, error)
            finally:
                with self._lock:
                    self._running = None
                self._post(self._job_ended, job)

    def _run(self, job: Job) -> None:
        result = job.run()
        if isinstance(result, Iterator):
            items, result = result, True  # cancelled unless the iterator runs out
            try:
                while not self._cancel.is_set():
                    try:
                        item = next(items)
                    except StopIteration:
                        result = False
                        break
                    self._post(job.on_item, item)
            finally:
                items.close()
        self._post(job.on_done, result)

    def _job_ended(self, job: Job) -> None:
        self._open_jobs.remove(job)
        self._jobs_changed()

    def _jobs_changed(self) -> None:
        if self._on_jobs_changed is not None:
            self._on_jobs_changed()

    def _post(self, callback: Callable | None, *args) -> None:
        """Hand ``callback(*args)`` to the UI thread, unless the controller was closed meanwhile."""
        if callback is None or self._closed:
            return

        def call() -> None:
            if not self._closed:
                callback(*args)

        self._deliver(call)


def _lower_thread_priority(niceness: int) -> None:
    """Raise the calling thread's nice value by ``niceness`` on Linux, where it is per thread and inherited by the
    threads it starts (torch's compute threads for this worker); elsewhere leave it."""
    if not sys.platform.startswith("linux"):
        return
    thread = threading.get_native_id()
    with contextlib.suppress(OSError):  # a sandbox that forbids it: the worker keeps the UI's priority
        os.setpriority(os.PRIO_PROCESS, thread, os.getpriority(os.PRIO_PROCESS, thread) + niceness)
