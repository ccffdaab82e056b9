"""Tracking results as GEFF graphs, read back and validated by the reference ``geff`` package."""

import geff
import numpy as np
import pytest
from scipy import ndimage

from sam2_plugins.ctc import lineage_from_labels, split_gaps
from sam2_plugins.geff_graph import write_geff
from sam2_plugins.sample_cells import dividing_cells


def test_a_dividing_sequence_reads_back_with_its_cells_links_and_divisions(tmp_path):
    cells = dividing_cells(num_frames=12, size=64, num_cells=2, cycle=(4, 6), seed=2)
    path = write_geff(tmp_path / "cells.geff", cells.labels, cells.lineage)
    graph, metadata = geff.read(str(path))  # the reference reader validates the structure
    assert [axis.name for axis in metadata.axes] == ["t", "y", "x"]
    assert graph.is_directed()
    nodes = {(int(data["t"]), data["track_id"]): (node, data) for node, data in graph.nodes(data=True)}
    assert len(nodes) == sum(len(np.unique(labels)) - 1 for labels in cells.labels)
    for (frame, label), (_, data) in nodes.items():
        cell = cells.labels[frame] == label
        assert data["area"] == np.count_nonzero(cell)
        assert (data["y"], data["x"]) == pytest.approx(ndimage.center_of_mass(cell))
    divisions = {
        (graph.nodes[start]["track_id"], graph.nodes[end]["track_id"])
        for start, end, kind in graph.edges(data="kind")
        if kind == "division"
    }
    assert divisions == {(track.parent, track.track_id) for track in cells.lineage if track.parent}
    assert divisions, "the sample must hold divisions"
    links = [edge for edge in graph.edges(data="kind") if edge[2] == "track"]
    assert len(links) == sum(track.last - track.first for track in cells.lineage)


def test_a_cell_found_again_after_a_gap_is_a_gap_link_and_an_existing_store_is_kept(tmp_path):
    cells = dividing_cells(num_frames=10, size=64, num_cells=1, cycle=(20, 20), seed=1)
    labels = cells.labels.copy()
    labels[4][labels[4] == 1] = 0
    frames, parents = split_gaps(list(labels))
    lineage = lineage_from_labels(frames, parents)
    path = write_geff(tmp_path / "gap.geff", frames, lineage)
    graph, _ = geff.read(str(path))
    (gap,) = [(start, end) for start, end, kind in graph.edges(data="kind") if kind == "gap"]
    assert (graph.nodes[gap[0]]["t"], graph.nodes[gap[1]]["t"]) == (3.0, 5.0)
    with pytest.raises(FileExistsError, match="gap.geff: already exists; pass overwrite=True"):
        write_geff(path, frames, lineage)
    assert geff.read(str(path))[0].number_of_nodes() == graph.number_of_nodes()
    write_geff(path, cells.labels, cells.lineage, overwrite=True)
    assert geff.read(str(path))[0].number_of_nodes() == 10
