"""Cell lineage in a real viewer on a 1366x768 screen: divisions made with the dock's buttons, the Tracks layer and
the daughters' colours, undo, proposals reviewed, and the CTC result exported, checked by py-ctcmetrics' validator
and opened again with File > Open. The dividing-cells sample is opened from File > Open Sample; the model has random
weights (tests/random_checkpoint.py), so the masks mean nothing but the lineage must be exact."""

import colorsys
from pathlib import Path

import numpy as np
import pytest
from napari_ui import (  # noqa: F401  (checkpoint, laptop: fixtures)
    checkpoint,
    click,
    click_frame,
    laptop,
    object_frames,
    start_session,
    wait_idle,
)
from qtpy.QtCore import Qt
from random_checkpoint import CONFIG, IMAGE_SIZE
from scipy import ndimage

from sam2_plugins.ctc import read_ctc
from sam2_plugins.division import Division, Proposal, split_mask
from sam2_plugins.frames import open_frames
from sam2_plugins.model import Sam2VideoPredictor
from sam2_plugins.napari_plugin.tracking import paint_masks
from sam2_plugins.sample_cells import dividing_cells
from sam2_plugins.sample_data import ellipse

pytestmark = pytest.mark.napari

SAMPLE = "dividing cells (16-bit)"
TRUTH = "dividing cells ground truth"


def open_sample(viewer):
    """File > Open Sample > Dividing cells: the image, and the ground truth's cell 1 with its division frame and
    daughters."""
    viewer.open_sample("sam2-plugins", "dividing_cells")
    lineage = dividing_cells().lineage
    daughters = lineage.children(1)
    return viewer.layers[SAMPLE], viewer.layers[TRUTH].data, lineage[daughters[0]].first, daughters


def centre(frame_labels: np.ndarray, label: int) -> tuple[float, float]:
    return tuple(np.argwhere(frame_labels == label).mean(axis=0))


def track_frames(tracks_layer, track_id: int) -> list[int]:
    """The frames a track of a Tracks layer has a point on."""
    return sorted(int(t) for t in tracks_layer.data[tracks_layer.data[:, 0] == track_id, 1])


def hue(widget, label: int) -> float:
    red, green, blue, _ = widget.labels_layer.colormap.map(np.array([label]))[0]
    return colorsys.rgb_to_hsv(red, green, blue)[0]


def official_tracks(folder: Path) -> dict[int, list[int]]:
    """res_track.txt as py-ctcmetrics reads it: ``{label: [label, begin, end, parent]}``."""
    from ctc_metrics.utils.filesystem import read_tracking_file

    return {row[0]: row for row in read_tracking_file(str(folder / "res_track.txt")).tolist()}


def officially_valid(folder: Path) -> int:
    from ctc_metrics.scripts.validate import validate_sequence

    return validate_sequence(str(folder), threads=1)["Valid"]


def export_ctc(widget, qtbot, folder: Path) -> None:
    widget.ctc_export_form.folder.value = folder
    click(widget, widget.ctc_export_form.call_button, qtbot)
    assert widget.status.toPlainText() == f"Saved the CTC result (mask000.tif… + res_track.txt) to {folder}"


def test_sample_opens_with_its_lineage_as_a_tracks_layer(laptop):
    viewer, _ = laptop
    image, truth, division_frame, daughters = open_sample(viewer)
    tracks = viewer.layers[f"{TRUTH} tracks"]
    lineage = dividing_cells().lineage
    assert tracks.graph == {track.track_id: [track.parent] for track in lineage if track.parent}
    assert set(np.unique(tracks.data[:, 0]).astype(int)) == {track.track_id for track in lineage}
    first = tracks.data[tracks.data[:, 0] == daughters[0]]
    assert first[0, 1] == division_frame
    np.testing.assert_allclose(first[0, 2:], centre(truth[division_frame], daughters[0]))
    assert image.data.dtype == np.uint16 and truth.shape == image.data.shape


def test_divide_with_clicked_daughters_exports_a_valid_ctc_result_that_reopens_with_its_lineage(
    laptop, checkpoint, qtbot, tmp_path
):
    viewer, widget = laptop
    image, truth, division_frame, (first, second) = open_sample(viewer)
    n_frames = len(truth)
    start_session(widget, image, checkpoint, qtbot)
    click_frame(viewer, widget, qtbot, 0, *centre(truth[0], 1))
    click(widget, widget.propagate_form.call_button, qtbot)
    wait_idle(widget, qtbot)
    assert object_frames(widget, 1) == list(range(n_frames))
    tracks_layer = widget.lineage.tracks_layer
    assert tracks_layer.name == f"{SAMPLE} SAM 2 tracks" and not tracks_layer.graph
    assert track_frames(tracks_layer, 1) == list(range(n_frames)), "the Tracks layer followed the propagation"
    layers = viewer.layers
    assert layers.index(tracks_layer) == layers.index(widget.labels_layer) + 1 < layers.index(widget.points)
    assert layers.selection.active is widget.points, "the clicks layer stays selected when the tracks appear"

    for daughter, obj_id in ((first, 2), (second, 3)):
        click(widget, widget.new_object_button, qtbot)
        assert widget.object_id.value == obj_id
        click_frame(viewer, widget, qtbot, division_frame, *centre(truth[division_frame], daughter))
    widget.object_id.value = 1
    widget.divide_form.first_daughter.value, widget.divide_form.second_daughter.value = 2, 3
    click(widget, widget.divide_form.call_button, qtbot)
    wait_idle(widget, qtbot)

    assert object_frames(widget, 1) == list(range(division_frame)), "the mother ends the frame before"
    for daughter in (2, 3):
        assert object_frames(widget, daughter) == list(range(division_frame, n_frames)), "tracked to the end"
    assert tracks_layer.graph == {2: [1], 3: [1]}
    assert track_frames(tracks_layer, 1) == list(range(division_frame))
    assert track_frames(tracks_layer, 2) == track_frames(tracks_layer, 3) == list(range(division_frame, n_frames))
    assert widget.status.toPlainText() == "Propagation done. Correct any frame and propagate again."

    folder = tmp_path / "01_RES"
    export_ctc(widget, qtbot, folder)
    tracks = official_tracks(folder)
    assert tracks[1] == [1, 0, division_frame - 1, 0]
    assert tracks[2] == [2, division_frame, n_frames - 1, 1] and tracks[3] == [3, division_frame, n_frames - 1, 1]
    assert officially_valid(folder) == 1

    labels_layer, tracks_layer = viewer.open(str(folder), plugin="sam2-plugins")
    assert labels_layer.name == "01_RES" and tracks_layer.name == "01_RES tracks"
    np.testing.assert_array_equal(labels_layer.data, widget.labels_layer.data)
    assert tracks_layer.graph == {2: [1], 3: [1]}
    assert read_ctc(folder)[1].children(1) == [2, 3]


def test_divide_by_splitting_the_mask_colours_the_daughters_and_undo_restores(laptop, checkpoint, qtbot):
    viewer, widget = laptop
    image, truth, division_frame, (first, second) = open_sample(viewer)
    n_frames = len(truth)
    painted = np.zeros_like(truth)  # the mother painted as two round parts, apart, where the daughters appear
    centres = np.array([centre(truth[division_frame], daughter) for daughter in (first, second)])
    apart = (centres[0] - centres[1]) / np.linalg.norm(centres[0] - centres[1])
    for middle, away, radius in ((centres[0], apart, 7), (centres[1], -apart, 5)):
        painted[division_frame][ellipse(*painted.shape[1:], middle + 4 * away, (radius, radius))] = 1
    painted_layer = viewer.add_labels(painted, name="painted")
    start_session(widget, image, checkpoint, qtbot)
    widget.seed_form.layer.value, widget.seed_form.frame.value = painted_layer, division_frame
    click(widget, widget.seed_form.call_button, qtbot)
    wait_idle(widget, qtbot)
    viewer.dims.set_current_step(0, division_frame)
    click(widget, widget.propagate_form.call_button, qtbot)
    wait_idle(widget, qtbot)
    before = widget.labels_layer.data.copy()
    mother_mask = before[division_frame] == 1
    larger, smaller = split_mask(mother_mask)

    widget.object_id.value = 1
    form = widget.divide_form
    for daughters, error in (
        ((5, 0), "give both daughters (objects clicked on this frame), or leave both at 0 to split the mother's mask"),
        ((5, 6), f"daughter 5 has no prompt on frame {division_frame}: click it or draw its box there"),
    ):
        form.first_daughter.value, form.second_daughter.value = daughters
        click(widget, form.call_button, qtbot)
        wait_idle(widget, qtbot)
        assert widget.status.toPlainText() == f"Divide failed: {error}"
    form.first_daughter.value, form.second_daughter.value = 0, 0
    viewer.dims.set_current_step(0, division_frame - 1)
    if ndimage.label(before[division_frame - 1] == 1, structure=np.ones((3, 3)))[1] < 2:
        click(widget, form.call_button, qtbot)
        wait_idle(widget, qtbot)
        assert widget.status.toPlainText().startswith(f"Divide failed: object 1 on frame {division_frame - 1}: the")
    np.testing.assert_array_equal(widget.labels_layer.data, before)
    assert not len(widget.controller.tracking.divisions), "nothing recorded by a refused division"

    viewer.dims.set_current_step(0, division_frame)
    click(widget, form.call_button, qtbot)
    wait_idle(widget, qtbot)
    labels = widget.labels_layer.data
    assert object_frames(widget, 1) == list(range(division_frame))
    assert object_frames(widget, 2)[0] == object_frames(widget, 3)[0] == division_frame
    twin = Sam2VideoPredictor.from_checkpoint(str(checkpoint), config=CONFIG, image_size=IMAGE_SIZE, device="cpu")
    session = twin.init_video(open_frames(image.data))
    session.add_mask(division_frame, 2, larger)
    obj_ids, logits = session.add_mask(division_frame, 3, smaller)
    expected = np.zeros_like(labels[division_frame])
    paint_masks(expected, obj_ids, logits.numpy())
    daughters_shown = np.where(np.isin(labels[division_frame], (2, 3)), labels[division_frame], 0)
    np.testing.assert_array_equal(daughters_shown, expected)  # the daughters are prompted with the mother's parts
    assert widget.lineage.tracks_layer.graph == {2: [1], 3: [1]}
    mother_hue = hue(widget, 1)
    assert hue(widget, 2) == pytest.approx((mother_hue - 0.06) % 1, abs=0.01)
    assert hue(widget, 3) == pytest.approx((mother_hue + 0.06) % 1, abs=0.01)

    click(widget, widget.undo_division_button, qtbot)
    wait_idle(widget, qtbot)
    np.testing.assert_array_equal(widget.labels_layer.data, before)
    assert widget.controller.tracking.session.obj_ids == [1]
    assert not widget.lineage.tracks_layer.graph
    assert type(widget.labels_layer.colormap).__name__ == "CyclicLabelColormap"
    assert widget.status.toPlainText().startswith(f"Division of object 1 on frame {division_frame} undone")
    assert len(object_frames(widget, 1)) == n_frames


def pick(widget, qtbot, proposal) -> None:
    """Click ``proposal``'s row in the Lineage section's list."""
    row = widget.proposals.index(proposal)
    item = widget.proposal_list.item(row)
    widget.proposal_list.scrollToItem(item)
    rect = widget.proposal_list.visualItemRect(item)
    qtbot.mouseClick(widget.proposal_list.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert widget.proposal_list.currentRow() == row


def test_proposals_are_listed_accepted_and_rejected_with_the_buttons(laptop, checkpoint, qtbot, tmp_path):
    viewer, widget = laptop
    image, truth, division_frame, (first, second) = open_sample(viewer)
    lineage = dividing_cells().lineage
    start_session(widget, image, checkpoint, qtbot)
    result = truth.copy()  # another tool's tracking: cell 1's daughters left as its mask in two parts
    for daughter in (first, second):
        track = lineage[daughter]
        for frame in range(track.first, track.last + 1):
            result[frame][result[frame] == daughter] = 0
            result[frame][ndimage.binary_erosion(truth[frame] == daughter)] = 1
    widget.labels_layer.data = result
    assert widget.lineage.tracks_layer.data[:, 0].max() == result.max()

    click(widget, widget.find_divisions_form.call_button, qtbot)
    split = Proposal(division_frame, 1)
    found = Proposal(2, 3, (4, 5))
    assert lineage[3].last == 1 and lineage.children(3) == [4, 5]
    assert split in widget.proposals and found in widget.proposals
    assert widget.proposal_list.count() == len(widget.proposals)
    assert (
        widget.status.toPlainText() == f"{len(widget.proposals)} divisions to review: pick one, then Accept or Reject."
    )
    assert not widget.accept_button.enabled, "nothing picked yet"

    new = int(result.max()) + 1
    pick(widget, qtbot, split)
    click(widget, widget.accept_button, qtbot)
    wait_idle(widget, qtbot)
    assert split not in widget.proposals
    assert list(widget.controller.tracking.divisions) == [Division(division_frame, 1, (new, new + 1))]
    assert object_frames(widget, 1) == list(range(division_frame))

    pick(widget, qtbot, found)
    click(widget, widget.accept_button, qtbot)
    wait_idle(widget, qtbot)
    rejected = widget.proposals[0]
    pick(widget, qtbot, rejected)
    click(widget, widget.reject_button, qtbot)
    assert rejected not in widget.proposals and widget.proposal_list.count() == len(widget.proposals)
    assert widget.status.toPlainText() == f"Proposal dropped: {rejected.describe()}."
    assert widget.lineage.tracks_layer.graph[4] == [3] and widget.lineage.tracks_layer.graph[new] == [1]

    folder = tmp_path / "01_RES"
    export_ctc(widget, qtbot, folder)
    tracks = official_tracks(folder)
    assert tracks[4][3] == tracks[5][3] == 3 and tracks[3][2] == 1
    assert tracks[new][1:] == [division_frame, tracks[new][2], 1] and tracks[1][2] == division_frame - 1
    assert officially_valid(folder) == 1


def test_save_selected_labels_and_tracks_as_a_ctc_folder_and_open_it_again(laptop, tmp_path):
    viewer, _ = laptop
    open_sample(viewer)
    labels, tracks = viewer.layers[TRUTH], viewer.layers[f"{TRUTH} tracks"]
    viewer.layers.selection = {labels, tracks}
    folder = tmp_path / "sample_RES"
    assert viewer.layers.save(str(folder), selected=True, plugin="sam2-plugins") == [str(folder)]
    assert officially_valid(folder) == 1
    frames, lineage = read_ctc(folder)
    assert lineage == dividing_cells().lineage
    np.testing.assert_array_equal(np.stack(frames), labels.data)

    reopened_labels, reopened_tracks = viewer.open(str(folder), plugin="sam2-plugins")
    assert reopened_tracks.graph == tracks.graph
    np.testing.assert_array_equal(reopened_tracks.data, tracks.data)
    np.testing.assert_array_equal(reopened_labels.data, labels.data)
