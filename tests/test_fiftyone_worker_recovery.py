"""A delegated worker SIGKILLed mid-shard: its run is found dead by its stopped heartbeat, reported with its
unfinished videos, re-queued through the ``recover_runs`` operator and finished by a new worker, every video
predicted exactly once."""

import fiftyone_helpers  # noqa: F401  (configures FiftyOne before it is imported)
from fiftyone_helpers import (  # noqa: F401
    PLUGIN_NAME,
    TEST_GENERATOR,
    TEST_MODEL,
    assert_same_predictions,
    execute,
    form_errors,
    fresh_dataset_name,
    import_synthetic_val,
    launch_workers,
    mongod,
    queued_operations,
    random_checkpoint,
    resolve_form,
    run_as_worker,
)

import itertools
import signal
import time
from datetime import datetime, timedelta, timezone

import fiftyone as fo
import fiftyone.operators as foo
import pytest
from bson import ObjectId
from fiftyone import ViewField as F
from fiftyone.operators.delegated import DelegatedOperationService
from fiftyone.operators.executor import ExecutionRunState

from sam2_plugins.fiftyone_plugin.completion import COMPLETED_FIELD
from sam2_plugins.fiftyone_plugin.dead_runs import find_dead_runs, recover_dead_runs

pytestmark = pytest.mark.fiftyone

HEARTBEAT_SECONDS = 1
"""FiftyOne's monitor interval in the workers and here: how often a running shard pings its operation."""
STALE_AFTER = 3
"""Seconds without a heartbeat after which the test calls a run dead."""
STEP = "apply_sam2/recovered"


def _utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _finished(dataset, sample_ids: list[str]) -> list[str]:
    """Those of ``sample_ids`` whose completion mark of ``STEP`` is in the database."""
    marked = set(dataset.match(F(COMPLETED_FIELD).contains(STEP)).values("id")) if len(dataset) else set()
    return [sample_id for sample_id in sample_ids if sample_id in marked]


def _wait_until(condition, what: str, timeout: float, worker_log=None):
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        tail = worker_log.read_text()[-3000:] if worker_log is not None else ""
        assert time.monotonic() < deadline, f"waited {timeout} s for {what}\n{tail}"
        time.sleep(0.05)
    return value


def test_a_killed_workers_shard_is_found_requeued_and_every_video_predicted_once(
    fresh_dataset_name, random_checkpoint, tmp_path, monkeypatch
):
    monkeypatch.setattr(fo.config, "delegated_operation_monitor_interval", HEARTBEAT_SECONDS)
    worker_settings = {"FIFTYONE_DELEGATED_OPERATION_MONITOR_INTERVAL": str(HEARTBEAT_SECONDS)}
    dataset = import_synthetic_val(tmp_path / "sav_val", fresh_dataset_name, num_videos=4, num_frames=5, seed=300)
    names = dict(zip(dataset.values("id"), dataset.values("video_id")))
    execute("apply_sam2", dataset=dataset, checkpoint=random_checkpoint, pred_field="reference", **TEST_MODEL)

    queued = execute(
        "apply_sam2", dataset=dataset, checkpoint=random_checkpoint, pred_field="recovered", num_shards=2, **TEST_MODEL
    )
    shards = {str(op.id): op.context.params["shard_sample_ids"] for op in queued_operations(queued)}
    service = DelegatedOperationService()
    log = tmp_path / "killed_worker.log"
    [worker] = launch_workers([log], **worker_settings)
    try:
        # the shard the worker took, once it finished a video; never found dead while its worker lives
        def killable() -> str | None:
            assert find_dead_runs(dataset, STALE_AFTER) == []
            for op_id, sample_ids in shards.items():
                if service.get(ObjectId(op_id)).run_state != ExecutionRunState.RUNNING:
                    continue
                done = _finished(dataset, sample_ids)
                assert len(done) < len(sample_ids), "the shard finished before the test could kill its worker"
                if done:
                    return op_id
            return None

        killed = _wait_until(killable, "a running shard with a finished video", 600, log)
        running_for = _utcnow() - service.get(ObjectId(killed)).started_at
        assert running_for > timedelta(seconds=STALE_AFTER), "the run was too short to show its heartbeat works"
        worker.send_signal(signal.SIGKILL)
        assert worker.wait(timeout=30) == -signal.SIGKILL
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()

    dataset.reload()  # the worker added the prediction field
    other = next(op_id for op_id in shards if op_id != killed)
    finished_before = _finished(dataset, shards[killed])
    left = [sample_id for sample_id in shards[killed] if sample_id not in finished_before]
    assert finished_before and left  # killed mid-shard
    stamps = dataset.select(finished_before).values("frames.recovered.detections.id")
    assert service.get(ObjectId(killed)).run_state == ExecutionRunState.RUNNING  # FiftyOne alone never notices

    [dead] = _wait_until(lambda: find_dead_runs(dataset, STALE_AFTER), "the killed shard to go stale", 60)
    assert dead.operation_id == killed and dead.unfinished_ids == left
    form = resolve_form("recover_runs", dataset, stale_after=STALE_AFTER)
    for sample_id in left:  # the App lists the unfinished videos before anything is done
        assert names[sample_id] in form["found"].view.label

    result = execute("recover_runs", dataset=dataset, stale_after=STALE_AFTER)
    [recovered] = result["recovered"]
    assert recovered["operation_id"] == killed
    assert recovered["unfinished_videos"] == [names[sample_id] for sample_id in left]
    assert all(names[sample_id] in result["summary"] for sample_id in left)
    killed_run = service.get(ObjectId(killed))
    assert killed_run.run_state == ExecutionRunState.FAILED
    assert all(names[sample_id] in killed_run.result.error for sample_id in left)
    assert [name for name in names.values() if name in killed_run.result.error] == recovered["unfinished_videos"]
    assert service.get(ObjectId(other)).run_state == ExecutionRunState.QUEUED  # a shard not started is not dead
    assert execute("recover_runs", dataset=dataset, stale_after=STALE_AFTER)["recovered"] == []  # claimed once

    requeued = recovered["requeued_as"]
    [worker] = launch_workers([tmp_path / "new_worker.log"], **worker_settings)
    try:
        runs = [requeued, other]
        _wait_until(
            lambda: all(service.get(ObjectId(i)).run_state in ExecutionRunState.TERMINAL_STATES for i in runs),
            "the re-queued run and the other shard",
            600,
            tmp_path / "new_worker.log",
        )
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    outcomes = {op_id: service.get(ObjectId(op_id)) for op_id in runs}
    assert [outcomes[i].run_state for i in runs] == [ExecutionRunState.COMPLETED] * 2, [
        outcomes[i].result.error for i in runs
    ]
    # each video predicted by exactly one run: the killed shard's finished ones, the re-queued run, the other shard
    predicted_by = [
        [names[i] for i in finished_before],
        outcomes[requeued].result.result["predicted"],
        outcomes[other].result.result["predicted"],
    ]
    assert sorted(itertools.chain(*predicted_by)) == sorted(names.values())
    assert predicted_by[1] == [names[sample_id] for sample_id in left]
    dataset.reload()
    assert dataset.select(finished_before).values("frames.recovered.detections.id") == stamps  # not predicted again
    assert len(_finished(dataset, list(names))) == len(names)
    assert_same_predictions(dataset, "recovered", reference="reference")


def test_a_run_queued_on_a_view_whose_worker_died_before_any_video_is_requeued_on_that_view(
    fresh_dataset_name, random_checkpoint, tmp_path, monkeypatch
):
    """auto_masklets scheduled from the App on a view (not sharded), taken by a worker that died before its first
    heartbeat (while loading the model, say): recovered from the SDK, the new run tracks the view's videos only."""
    monkeypatch.setattr(fo.config, "delegated_operation_monitor_interval", HEARTBEAT_SECONDS)
    dataset = import_synthetic_val(tmp_path / "sav_val", fresh_dataset_name, num_videos=3, num_frames=5, seed=400)
    view = dataset.skip(1)
    params = {"checkpoint": random_checkpoint, "pred_field": "auto", "masklets_field": "auto_masklets"}
    params.update(reseed_every=2, **TEST_GENERATOR, **TEST_MODEL)
    foo.execute_operator(f"{PLUGIN_NAME}/auto_masklets", {"view": view, "params": params}, request_delegation=True)
    service = DelegatedOperationService()
    [queued] = service.list_operations(dataset_id=dataset._doc.id, run_state=ExecutionRunState.QUEUED)
    assert service.set_running(queued.id, required_state=ExecutionRunState.QUEUED)  # what a worker does first
    with pytest.raises(ValueError, match="give at least 2 s"):
        find_dead_runs(dataset, stale_after=1)
    assert "give at least 2 s" in form_errors("recover_runs", dataset, stale_after=1)["stale_after"]

    [dead] = _wait_until(lambda: find_dead_runs(dataset, 2 * HEARTBEAT_SECONDS), "the run to go stale", 60)
    assert dead.operation_id == str(queued.id) and dead.unfinished_videos == view.values("video_id")
    [recovered] = recover_dead_runs(dataset, 2 * HEARTBEAT_SECONDS)
    form = resolve_form("recover_runs", dataset, stale_after=2 * HEARTBEAT_SECONDS)
    assert form["found"].view.label.startswith("No running SAM 2 run of this dataset")
    failed = service.get(queued.id)
    assert failed.run_state == ExecutionRunState.FAILED
    assert all(name in failed.result.error for name in view.values("video_id"))

    requeued = service.get(ObjectId(recovered.requeued_as))
    assert run_as_worker([requeued]) == [ExecutionRunState.COMPLETED]
    assert sorted(service.get(requeued.id).result.result["tracked"]) == sorted(view.values("video_id"))
    dataset.reload()
    assert dataset.first().frames.first()["auto"] is None  # outside the view: not tracked
    assert view.count("frames.auto") == len(view) * 5
