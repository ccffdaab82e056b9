"""Delegated runs whose worker died: found by their stopped heartbeat, marked failed and re-queued.

A worker killed mid-run (SIGKILL, out of memory, a lost machine) leaves its delegated operation "running" for good.
Our runs ping their operation while they work (:func:`.sharding.heartbeat`), so a "running" ``apply_sam2`` or
``auto_masklets`` whose last ping is older than ``stale_after`` seconds lost its worker. Recovering it marks it
failed, naming the videos it left unfinished, and queues one new run of the same operator and parameters on
exactly those videos: the videos it finished keep their predictions and are not predicted again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import fiftyone as fo
from bson import ObjectId
from fiftyone.operators.delegated import DelegatedOperationService
from fiftyone.operators.executor import ExecutionResult, ExecutionRunState

from .auto_masklets import AutoMaskletsParams
from .completion import unfinished
from .parameters import ApplySam2Params, from_params
from .plugin_folder import plugin_name
from .sharding import heartbeat_seconds, queue_shard, run_samples
from .views import held_span, shard_keys

RECOVERABLE_OPERATORS = {"apply_sam2": ApplySam2Params, "auto_masklets": AutoMaskletsParams}
"""The operators whose runs send heartbeats and mark finished videos, with their parameters."""
MISSED_HEARTBEATS = 5
"""A run is dead, by default, after this many heartbeat intervals without one."""


@dataclass
class DeadRun:
    """A delegated run still marked running whose worker stopped sending heartbeats."""

    operation_id: str
    label: str
    last_heartbeat: datetime
    """UTC, as FiftyOne stores ``updated_at``."""
    unfinished_ids: list[str]
    """The unfinished samples as shards name them: sample ids, or for clips ``<video id>:<first>:<last>``."""
    unfinished_videos: list[str]
    """The names of ``unfinished_ids`` (SA-V video ids; for a clip, its video and frame range)."""
    requeued_as: str | None = None
    """The operation id of the run queued on the unfinished videos, once recovered."""

    def describe(self) -> str:
        """One line for the App: the run, its last heartbeat, its unfinished videos and what became of them."""
        text = f"'{self.label}' ({self.operation_id}), {self.silence()}: {self.unfinished_text()}"
        if self.requeued_as is not None:
            text += f", re-queued as {self.requeued_as}"
        return text

    def silence(self) -> str:
        return f"no heartbeat since {self.last_heartbeat:%Y-%m-%d %H:%M:%S} UTC"

    def unfinished_text(self) -> str:
        if not self.unfinished_videos:
            return "no unfinished video"
        return f"{len(self.unfinished_videos)} unfinished videos ({', '.join(self.unfinished_videos)})"


def default_stale_after() -> int:
    """Seconds without a heartbeat after which a run is dead, unless told otherwise."""
    return MISSED_HEARTBEATS * heartbeat_seconds()


def stale_after_error(stale_after: float) -> str | None:
    """Why ``stale_after`` would call live runs dead, or None."""
    minimum = 2 * heartbeat_seconds()
    if stale_after >= minimum:
        return None
    return (
        f"stale_after={stale_after} s: live runs ping every {heartbeat_seconds()} s "
        "(fo.config.delegated_operation_monitor_interval), so a shorter silence proves nothing; "
        f"give at least {minimum} s"
    )


def _unfinished_samples(operation):
    name = operation.operator.rsplit("/", 1)[1]
    params = from_params(RECOVERABLE_OPERATORS[name], operation.context.params)
    return unfinished(run_samples(operation.context, params), params.step)


def find_dead_runs(dataset: fo.Dataset, stale_after: float | None = None) -> list[DeadRun]:
    """The running ``apply_sam2`` / ``auto_masklets`` runs on ``dataset`` without a heartbeat for ``stale_after``
    seconds (default :func:`default_stale_after`), with the videos each left unfinished."""
    stale_after = default_stale_after() if stale_after is None else stale_after
    error = stale_after_error(stale_after)
    if error:
        raise ValueError(error)
    silent_since = datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(seconds=stale_after)
    running = DelegatedOperationService().list_operations(
        dataset_id=dataset._doc.id, run_state=ExecutionRunState.RUNNING
    )
    dead = []
    our_plugin = plugin_name()
    for operation in running:
        plugin, _, name = operation.operator.rpartition("/")
        if plugin != our_plugin or name not in RECOVERABLE_OPERATORS or operation.updated_at >= silent_since:
            continue
        samples = _unfinished_samples(operation)
        dead.append(
            DeadRun(
                operation_id=str(operation.id),
                label=operation.label or operation.operator,
                last_heartbeat=operation.updated_at,
                unfinished_ids=shard_keys(samples),
                unfinished_videos=[held_span(samples, sample).name for sample in samples],
            )
        )
    return dead


def recover_dead_runs(dataset: fo.Dataset, stale_after: float | None = None) -> list[DeadRun]:
    """Mark each of :func:`find_dead_runs` failed, its error naming its unfinished videos, and queue a run of the
    same operator and parameters on those videos; returns the runs recovered.

    A run is claimed by marking it failed only while it is still running, so a run that finished meanwhile, or
    that a simultaneous recovery claimed, is left alone.
    """
    service = DelegatedOperationService()
    recovered = []
    for run in find_dead_runs(dataset, stale_after):
        requeue_label = f"{run.label} (recovery: {len(run.unfinished_ids)} unfinished)"
        outcome = f"re-queued as '{requeue_label}'" if run.unfinished_ids else "nothing to re-queue"
        error = f"worker died ({run.silence()}): {run.unfinished_text()}, {outcome}"
        claimed = service.set_failed(
            ObjectId(run.operation_id),
            result=ExecutionResult(error=error),
            required_state=ExecutionRunState.RUNNING,
        )
        if claimed is None:
            continue
        if run.unfinished_ids:
            request = dict(claimed.context.request_params)
            request["params"] = {**request["params"], "overwrite": False}  # its finished videos stay as they are
            run.requeued_as = queue_shard(claimed.operator, request, run.unfinished_ids, requeue_label)
        recovered.append(run)
    return recovered
