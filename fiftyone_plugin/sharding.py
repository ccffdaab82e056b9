"""Splitting a view into delegated operations, one per worker, that share one MongoDB.

The dispatching run fixes the shards when it queues them: ``num_shards`` copies of the operation, copy ``i`` holding
``shard_sample_ids``, every ``num_shards``-th sample id of the view from the ``i``-th on (for a clips view, whose
ids FiftyOne remakes, each clip's video id and frame range). A shard predicts exactly those samples, as the target
view holds them when its worker starts (its label filters, the frames of its clips).

A delegated run sends a heartbeat while it works: FiftyOne's own ``ping`` of the operation's ``updated_at``, every
``fo.config.delegated_operation_monitor_interval`` seconds, from a thread that dies with the worker. A run still
"running" whose heartbeat stopped lost its worker (see :mod:`.dead_runs`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

import fiftyone as fo
import fiftyone.operators.types as types
from fiftyone.core.collections import SampleCollection
from fiftyone.factory.repo_factory import RepositoryFactory
from fiftyone.operators.delegated import DelegatedOperationService
from fiftyone.operators.executor import ExecutionContext
from pymongo.errors import PyMongoError

from .views import samples_of_keys, shard_keys

logger = logging.getLogger(__name__)


class ShardedParams(Protocol):
    """What sharding reads of an operator's parameters."""

    num_shards: int
    shard_sample_ids: list[str] | None


def split_ids(sample_ids: list[str], num_shards: int) -> list[list[str]]:
    """``num_shards`` disjoint lists covering ``sample_ids``, interleaved so the shards get similar videos."""
    return [sample_ids[shard_index::num_shards] for shard_index in range(num_shards)]


def queue_shard(operator_uri: str, request_params: dict, shard_ids: list[str], label: str) -> str:
    """Queue one delegated operation of ``operator_uri`` with ``request_params`` on the samples ``shard_ids``;
    returns its operation id."""
    params = {**request_params["params"], "shard_sample_ids": shard_ids}
    request = {**request_params, "params": params, "delegated": True}
    operation = DelegatedOperationService().queue_operation(
        operator=operator_uri, label=label, context=ExecutionContext(request_params=request).serialize()
    )
    return str(operation.id)


def queue_shards(ctx, operator_uri: str, sample_ids: list[str], num_shards: int) -> list[str]:
    """Queue one delegated operation per shard of ``sample_ids``; returns their operation ids."""
    request = {**ctx.request_params, "params": {**ctx.params, "num_shards": num_shards}}
    return [
        queue_shard(
            operator_uri,
            request,
            shard_ids,
            f"{operator_uri} shard {shard_index + 1}/{num_shards} ({len(shard_ids)} videos)",
        )
        for shard_index, shard_ids in enumerate(split_ids(sample_ids, num_shards))
    ]


def num_shards_input(inputs: types.Object, default: int) -> None:
    """How many delegated operations to split the run into."""
    inputs.int(
        "num_shards",
        label="Shards",
        default=default,
        min=1,
        description="split the videos into this many scheduled runs, one per GPU worker",
    )


def run_samples(ctx, params: ShardedParams) -> SampleCollection:
    """The samples a run acts on: a queued shard's (as its target view holds them), else the App's target view."""
    if params.shard_sample_ids is not None:
        return samples_of_keys(ctx, params.shard_sample_ids)
    return ctx.target_view()


def heartbeat_seconds() -> int:
    """How often a delegated run pings its operation: FiftyOne's monitor interval."""
    return fo.config.delegated_operation_monitor_interval


@contextmanager
def heartbeat(ctx) -> Iterator[None]:
    """While the block runs, ping the delegated operation that runs it (nothing for an immediate run)."""
    operation_id = ctx.request_params.get("run_doc")
    if operation_id is None:
        yield
        return
    repo = RepositoryFactory.delegated_operation_repo()
    finished = threading.Event()

    def beat() -> None:
        while not finished.wait(heartbeat_seconds()):
            try:
                repo.ping(operation_id)
            except PyMongoError as error:  # a database hiccup: the next beat may get through
                logger.warning("heartbeat of delegated operation %s not saved: %s", operation_id, error)

    thread = threading.Thread(target=beat, name=f"heartbeat {operation_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        finished.set()
        thread.join()


def execute_sharded(
    ctx, operator_uri: str, params: ShardedParams, check: Callable[[SampleCollection], None], run: Callable
) -> dict:
    """An operator's execution: ``run(view)`` on a queued shard's samples or on the App's target view; or, when
    ``params.num_shards`` > 1 asks to split the target, ``check(view)`` then ``{"queued": operation ids}``."""
    view = run_samples(ctx, params)
    if params.shard_sample_ids is None and params.num_shards > 1:
        check(view)
        return {"queued": queue_shards(ctx, operator_uri, shard_keys(view), params.num_shards)}
    with heartbeat(ctx):
        return run(view)
