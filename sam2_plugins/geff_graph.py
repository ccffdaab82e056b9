"""A tracking result as a GEFF graph (Graph Exchange File Format, a zarr store; the ``geff`` package on PyPI).

One node per cell per frame with its time ``t``, centroid (``y``, ``x``; ``z`` too for volumes), ``track_id`` (the
CTC label) and ``area``; a directed edge joins a cell to itself on the next frame and a parent's last node to each
child's first node (``kind``: ``track`` or ``division``; a one-child link, a cell found again after a gap, is
``gap``). Needs the ``geff`` extra: ``pip install "sam2-plugins[geff]"``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .ctc import check_labels
from .lineage import Lineage


def lineage_graph(label_frames: Sequence[np.ndarray], lineage: Lineage):
    """The networkx DiGraph of a tracking result (see the module docstring); labels must agree with ``lineage``."""
    import networkx as nx

    check_labels(label_frames, lineage, source="the tracking result")
    graph = nx.DiGraph()
    node_of: dict[tuple[int, int], int] = {}
    axes = ("z", "y", "x")[-label_frames[0].ndim :] if len(label_frames) else ()
    for frame, labels in enumerate(label_frames):
        flat = labels.ravel()
        area = np.bincount(flat)
        present = np.flatnonzero(area)
        present = present[present != 0]
        coordinates = np.unravel_index(np.arange(flat.size), labels.shape)
        centroids = [np.bincount(flat, weights=axis)[present] / area[present] for axis in coordinates]
        for position, label in enumerate(present.tolist()):
            node = len(node_of)
            node_of[(frame, label)] = node
            place = {name: float(values[position]) for name, values in zip(axes, centroids)}
            graph.add_node(node, t=float(frame), **place, track_id=label, area=int(area[label]))
            if (frame - 1, label) in node_of:
                graph.add_edge(node_of[(frame - 1, label)], node, kind="track")
    for track in lineage:
        if track.parent:
            parent = lineage[track.parent]
            kind = "division" if len(lineage.children(parent.track_id)) > 1 else "gap"
            graph.add_edge(node_of[(parent.last, parent.track_id)], node_of[(track.first, track.track_id)], kind=kind)
    return graph, list(axes)


def write_geff(
    path: str | os.PathLike, label_frames: Sequence[np.ndarray], lineage: Lineage, overwrite: bool = False
) -> Path:
    """Write a tracking result as a GEFF zarr store at ``path``; an existing one there is an error unless
    ``overwrite``."""
    try:
        import geff
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError(
            f'writing GEFF needs the geff package ({error}): pip install "sam2-plugins[geff]"', name=error.name
        ) from None
    path = Path(path)
    graph, axes = lineage_graph(label_frames, lineage)
    if overwrite and path.exists():
        import shutil

        shutil.rmtree(path)
    elif path.exists():
        raise FileExistsError(f"{path}: already exists; pass overwrite=True to replace it, or write elsewhere")
    geff.write(
        graph,
        str(path),
        axis_names=["t", *axes],
        axis_types=["time", *(["space"] * len(axes))],
    )
    return path
