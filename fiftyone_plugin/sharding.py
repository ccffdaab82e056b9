"""Splitting a view into delegated operations, one per worker, that share one MongoDB.

The dispatching run queues ``num_shards`` copies of the operation with ``shard_index`` 0..n-1 and the same view;
each worker's copy keeps every n-th sample of that view (in view order), so the shards are disjoint and cover it.
"""

from __future__ import annotations

from fiftyone.operators.delegated import DelegatedOperationService
from fiftyone.operators.executor import ExecutionContext


def shard_view(view, shard_index: int, num_shards: int):
    """Every ``num_shards``-th sample of ``view``, starting at ``shard_index``."""
    if not 0 <= shard_index < num_shards:
        raise ValueError(f"shard_index {shard_index} is outside 0..{num_shards - 1}")
    return view.select(view.values("id")[shard_index::num_shards], ordered=True)


def queue_shards(ctx, operator_uri: str, num_shards: int) -> list[str]:
    """Queue one delegated operation per shard of ``ctx.view``; returns their ids."""
    service = DelegatedOperationService()
    queued = []
    for shard_index in range(num_shards):
        params = {**ctx.params, "num_shards": num_shards, "shard_index": shard_index}
        request = {**ctx.request_params, "params": params, "delegated": True}
        operation = service.queue_operation(
            operator=operator_uri,
            label=f"{operator_uri} shard {shard_index + 1}/{num_shards}",
            context=ExecutionContext(request_params=request).serialize(),
        )
        queued.append(str(operation.id))
    return queued
