"""The lineage record and CTC folders, checked against py-ctcmetrics' own reader and validator."""

from pathlib import Path

import numpy as np
import pytest
import tifffile

from sam2_plugins.ctc import CtcFormatError, lineage_from_labels, read_ctc, write_ctc, write_ctc_result
from sam2_plugins.lineage import Lineage, LineageError, Track


def _dividing_frames() -> tuple[list[np.ndarray], Lineage]:
    """Cell 1 on frames 0-2 divides into 2 and 3 on frame 3; cell 4 is lost on frame 2 and found again as 5."""
    frames = [np.zeros((32, 40), np.uint16) for _ in range(5)]
    for index in range(3):
        frames[index][4:12, 4:14] = 1
    for index in range(3, 5):
        frames[index][4:8, 4:14] = 2
        frames[index][8:12, 4:14] = 3
    for index in (0, 1):
        frames[index][20:28, 20:30] = 4
    for index in (3, 4):
        frames[index][20:28, 22:32] = 5
    lineage = Lineage([Track(1, 0, 2), Track(2, 3, 4, 1), Track(3, 3, 4, 1), Track(4, 0, 1), Track(5, 3, 4, 4)])
    return frames, lineage


def _official_validator(folder: Path) -> int:
    from ctc_metrics.scripts.validate import validate_sequence

    return validate_sequence(str(folder), threads=1)["Valid"]


def test_written_result_passes_the_official_validator_and_reads_back(tmp_path):
    from ctc_metrics.utils.filesystem import read_tracking_file

    frames, lineage = _dividing_frames()
    folder = write_ctc(tmp_path / "01_RES", frames, lineage)
    assert sorted(path.name for path in folder.iterdir()) == [f"mask{index:03d}.tif" for index in range(5)] + [
        "res_track.txt"
    ]
    assert _official_validator(folder) == 1
    official = read_tracking_file(str(folder / "res_track.txt"))
    assert official.tolist() == [[1, 0, 2, 0], [2, 3, 4, 1], [3, 3, 4, 1], [4, 0, 1, 0], [5, 3, 4, 4]]
    assert tifffile.imread(folder / "mask003.tif").dtype == np.uint16
    read_frames, read_lineage = read_ctc(folder)
    assert read_lineage == lineage
    assert read_lineage.children(1) == [2, 3]
    assert all(np.array_equal(read, written) for read, written in zip(read_frames, frames))


def test_ground_truth_folder_reads_from_its_tra_folder(tmp_path):
    frames, lineage = _dividing_frames()
    write_ctc(tmp_path / "01_GT" / "TRA", frames, lineage, ground_truth=True)
    assert (tmp_path / "01_GT" / "TRA" / "man_track000.tif").is_file()
    assert (tmp_path / "01_GT" / "TRA" / "man_track.txt").read_text().splitlines()[1] == "2 3 4 1"
    assert read_ctc(tmp_path / "01_GT")[1] == lineage


def test_lineage_from_labels_matches_the_written_ranges():
    frames, lineage = _dividing_frames()
    assert lineage_from_labels(frames, parents={2: 1, 3: 1, 5: 4}) == lineage
    frames[1][frames[1] == 1] = 0
    with pytest.raises(CtcFormatError, match="label 1 is on frame 0, missing after it and back on frame 2"):
        lineage_from_labels(frames)


def test_labels_that_disagree_with_the_lineage_are_refused_and_nothing_is_written(tmp_path):
    frames, lineage = _dividing_frames()
    frames[4][frames[4] == 3] = 0  # daughter 3 vanishes on its last frame
    with pytest.raises(CtcFormatError, match="track 3 runs from frame 3 to 4 but its label is not on frame 4"):
        write_ctc(tmp_path / "out", frames, lineage)
    assert not (tmp_path / "out").exists()
    frames, lineage = _dividing_frames()
    frames[0][0:2, 0:2] = 9
    with pytest.raises(CtcFormatError, match="frame 0 holds label 9.*no line in the track file"):
        write_ctc(tmp_path / "out", frames, lineage)


def test_stale_masks_of_a_longer_sequence_are_an_error(tmp_path):
    frames, lineage = _dividing_frames()
    (tmp_path / "01_RES").mkdir()
    (tmp_path / "01_RES" / "mask007.tif").write_bytes(b"")
    with pytest.raises(CtcFormatError, match=r"mask007\.tif from another sequence"):
        write_ctc(tmp_path / "01_RES", frames, lineage)
    assert (tmp_path / "01_RES" / "mask007.tif").exists()


def test_lineage_operations_keep_the_ctc_rules():
    lineage = Lineage()
    lineage.add(1, 0, 5)
    lineage.end(1, 2)
    lineage.add(2, 3, parent=1)
    lineage.add(3, 3, parent=1)
    lineage.extend(2, 9)
    assert lineage[2] == Track(2, 3, 9, 1)
    assert lineage.children(1) == [2, 3]
    assert lineage.on_frame(3) == [2, 3]
    assert lineage.next_id() == 4
    with pytest.raises(LineageError, match="track 1: cannot end on frame 4: its child 2 starts on frame 3"):
        lineage.end(1, 4)
    with pytest.raises(LineageError, match="track 4: starts on frame 2 but its parent 1 ends on frame 2"):
        lineage.add(4, 2, parent=1)
    with pytest.raises(LineageError, match="track 2: already in the lineage; pick a new id such as 4"):
        lineage.add(2, 0)
    assert lineage.to_ctc_text() == "1 0 2 0\n2 3 9 1\n3 3 3 1\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1 0 2\n", "line 1: '1 0 2' is not 'L B E P'"),
        ("1 0 2 0\n2 1 3 1\n", "track 2: starts on frame 1 but its parent 1 ends on frame 2"),
        ("1 0 2 0\n1 3 4 0\n", "track 1: listed twice"),
        ("1 3 2 0\n", "line 1: track 1: ends on frame 2, before its first frame 3"),
        ("70000 0 1 0\n", "line 1: track 70000: ids are 1..65535"),
        ("2 0 1 7\n", "track 2: parent 7 is not a track"),
    ],
)
def test_bad_track_files_name_the_file_line_and_track(tmp_path, text, message):
    path = tmp_path / "res_track.txt"
    path.write_text(text)
    with pytest.raises(LineageError, match=f"{path}.*{message}".replace("(", r"\(").replace(")", r"\)")):
        Lineage.read(path)


def test_tab_separated_official_files_read(tmp_path):
    path = tmp_path / "man_track.txt"
    path.write_text("1\t0\t4\t0\n2\t5\t9\t1\n\n")
    assert Lineage.read(path) == Lineage([Track(1, 0, 4), Track(2, 5, 9, 1)])


def test_a_label_lost_for_some_frames_is_written_as_a_child_track(tmp_path):
    """Cell 1 is missing on frame 1 and divides into 2 and 3 on frame 3: the part after the gap is a new track, the
    daughters' parent; a parent link naming a label on no frame is dropped."""
    frames, _ = _dividing_frames()
    frames[1][frames[1] == 1] = 0
    folder = write_ctc_result(tmp_path / "01_RES", frames, parents={2: 1, 3: 1, 5: 4, 7: 9})
    assert _official_validator(folder) == 1
    read_frames, lineage = read_ctc(folder)
    assert lineage == Lineage(
        [Track(1, 0, 0), Track(2, 3, 4, 6), Track(3, 3, 4, 6), Track(4, 0, 1), Track(5, 3, 4, 4), Track(6, 2, 2, 1)]
    )
    assert np.array_equal(read_frames[2] == 6, frames[2] == 1)
