"""Splitting a view into delegated operations, one per worker, that share one MongoDB.

The dispatching run fixes the shards when it queues them: ``num_shards`` copies of the operation, copy ``i`` holding
``shard_sample_ids``, every ``num_shards``-th sample id of the view from the ``i``-th on (for a clips view, whose
ids FiftyOne remakes, each clip's video id and frame range). A shard predicts exactly those samples, as the target
view holds them when its worker starts (its label filters, the frames of its clips).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import fiftyone.operators.types as types
from fiftyone.core.collections import SampleCollection
from fiftyone.operators.delegated import DelegatedOperationService
from fiftyone.operators.executor import ExecutionContext

from .views import samples_of_keys, shard_keys


class ShardedParams(Protocol):
    """What sharding reads of an operator's parameters."""

    num_shards: int
    shard_sample_ids: list[str] | None


def split_ids(sample_ids: list[str], num_shards: int) -> list[list[str]]:
    """``num_shards`` disjoint lists covering ``sample_ids``, interleaved so the shards get similar videos."""
    return [sample_ids[shard_index::num_shards] for shard_index in range(num_shards)]


def queue_shards(ctx, operator_uri: str, sample_ids: list[str], num_shards: int) -> list[str]:
    """Queue one delegated operation per shard of ``sample_ids``; returns their operation ids."""
    service = DelegatedOperationService()
    queued = []
    for shard_index, shard_ids in enumerate(split_ids(sample_ids, num_shards)):
        params = {**ctx.params, "num_shards": num_shards, "shard_sample_ids": shard_ids}
        request = {**ctx.request_params, "params": params, "delegated": True}
        operation = service.queue_operation(
            operator=operator_uri,
            label=f"{operator_uri} shard {shard_index + 1}/{num_shards} ({len(shard_ids)} videos)",
            context=ExecutionContext(request_params=request).serialize(),
        )
        queued.append(str(operation.id))
    return queued


def num_shards_input(inputs: types.Object, default: int) -> None:
    """How many delegated operations to split the run into."""
    inputs.int(
        "num_shards",
        label="Shards",
        default=default,
        min=1,
        description="split the videos into this many scheduled runs, one per GPU worker",
    )


def execute_sharded(
    ctx, operator_uri: str, params: ShardedParams, check: Callable[[SampleCollection], None], run: Callable
) -> dict:
    """An operator's execution: ``run(view)`` on a queued shard's samples or on the App's target view; or, when
    ``params.num_shards`` > 1 asks to split the target, ``check(view)`` then ``{"queued": operation ids}``."""
    if params.shard_sample_ids is not None:
        return run(samples_of_keys(ctx, params.shard_sample_ids))
    view = ctx.target_view()
    if params.num_shards > 1:
        check(view)
        return {"queued": queue_shards(ctx, operator_uri, shard_keys(view), params.num_shards)}
    return run(view)
