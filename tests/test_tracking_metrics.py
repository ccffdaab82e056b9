"""SEG, DET and TRA against py-ctcmetrics, the CTC's reference implementation, on synthetic sequences of dividing
cells with every kind of error its AOGM counts."""

from pathlib import Path

import numpy as np
import pytest
from ctc_results import ERRORS, write_result

from sam2_plugins.ctc import CtcFormatError, read_ctc, write_ctc, write_ctc_result
from sam2_plugins.sample_cells import dividing_cells, write_dividing_cells
from sam2_plugins.tracking_metrics import evaluate_sequence


def _official(gt: Path, res: Path) -> dict:
    from ctc_metrics.scripts.evaluate import evaluate_sequence as official_evaluate

    return official_evaluate(str(res), str(gt), metrics=["Valid", "SEG", "DET", "TRA"], threads=1)


CASES = {
    "perfect": (),
    "missed": ("missed", "missed"),
    "false_and_shifted": ("false", "shifted", "false"),
    "split_and_merged": ("split", "merged"),
    "wrong_parents": ("wrong_parent", "lost_division", "shortened"),
    "wrong_edge_kinds": ("renamed", "mother_continues"),
    "everything": ERRORS + ERRORS,
}


@pytest.fixture(scope="module")
def sequence(tmp_path_factory):
    cells = dividing_cells(num_frames=24, size=96, num_cells=3, seed=3)
    root = tmp_path_factory.mktemp("ctc")
    return cells, write_dividing_cells(root, cells, segmentation_stride=4)


@pytest.mark.parametrize("case", CASES)
def test_scores_equal_py_ctcmetrics(sequence, tmp_path, case):
    cells, gt = sequence
    res = write_result(tmp_path / "01_RES", cells, CASES[case], seed=len(case))
    official = _official(gt, res)
    assert official["Valid"] == 1
    ours = evaluate_sequence(gt, res)
    assert ours.seg == pytest.approx(official["SEG"], abs=1e-6)
    assert ours.det == pytest.approx(official["DET"], abs=1e-6)
    assert ours.tra == pytest.approx(official["TRA"], abs=1e-6)
    for name in ("NS", "FN", "FP", "ED", "EA", "EC"):
        assert ours.counts[name] == official[f"AOGM_{name}"], name
    assert ours.counts["AOGM"] == pytest.approx(official["AOGM"])
    if case == "perfect":
        assert (ours.seg, ours.det, ours.tra) == (1.0, 1.0, 1.0)
    else:
        assert ours.tra < 1.0


@pytest.mark.parametrize("seed", [11, 12])
def test_scores_equal_py_ctcmetrics_on_other_sequences(tmp_path, seed):
    cells = dividing_cells(num_frames=18, size=80, num_cells=2, cycle=(4, 7), seed=seed)
    gt = write_dividing_cells(tmp_path, cells, segmentation_stride=3)
    res = write_result(tmp_path / "01_RES", cells, ERRORS, seed=seed)
    official = _official(gt, res)
    ours = evaluate_sequence(gt, res).to_json()
    for name in ("SEG", "DET", "TRA", "OP_CSB", "OP_CTB", "AOGM", "AOGM_0"):
        assert ours[name] == pytest.approx(official[name], abs=1e-6), name


def test_the_generator_writes_a_valid_ctc_ground_truth(tmp_path):
    cells = dividing_cells(num_frames=20, size=96, num_cells=3, seed=5)
    gt = write_dividing_cells(tmp_path, cells)
    assert sorted(path.name for path in (tmp_path / "01").iterdir())[:2] == ["t000.tif", "t001.tif"]
    assert sorted(path.name for path in (gt / "SEG").iterdir()) == [f"man_seg{t:03d}.tif" for t in (0, 5, 10, 15)]
    frames, lineage = read_ctc(gt)
    assert lineage == cells.lineage
    divided = [track for track in lineage if len(lineage.children(track.track_id)) == 2]
    assert divided, "the sample must hold divisions"
    for mother in divided:
        for child in lineage.children(mother.track_id):
            assert lineage[child].first == mother.last + 1
            assert np.count_nonzero(frames[lineage[child].first] == child) > 0
    # the same ground truth written as a result passes the official validator
    from ctc_metrics.scripts.validate import validate_sequence

    write_ctc(tmp_path / "01_RES", frames, lineage)
    assert validate_sequence(str(tmp_path / "01_RES"), threads=1)["Valid"] == 1


def test_the_generator_is_deterministic_and_names_bad_arguments():
    first = dividing_cells(num_frames=6, size=48, num_cells=2, seed=4)
    again = dividing_cells(num_frames=6, size=48, num_cells=2, seed=4)
    assert np.array_equal(first.images, again.images) and np.array_equal(first.labels, again.labels)
    assert first.lineage == again.lineage
    assert first.images.dtype == np.uint16 and first.images.max() <= 4095
    assert not np.array_equal(first.labels, dividing_cells(num_frames=6, size=48, num_cells=2, seed=5).labels)
    with pytest.raises(ValueError, match="need num_frames >= 1, 1 <= num_cells <= max_cells.*max_cells=1"):
        dividing_cells(num_cells=2, max_cells=1)
    with pytest.raises(ValueError, match="400 cells do not fit a 64 x 64 field; make it larger"):
        dividing_cells(size=64, num_cells=100, max_cells=400)


def test_an_invalid_result_is_an_error_naming_the_track(sequence, tmp_path):
    cells, gt = sequence
    res = write_result(tmp_path / "01_RES", cells, (), seed=0)
    lines = (res / "res_track.txt").read_text().splitlines()
    label, first, last, parent = lines[0].split()
    lines[0] = f"{label} {first} {int(last) + 1 if int(last) < 23 else int(last) - 1} {parent}"
    (res / "res_track.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(CtcFormatError, match=f"{res}: (frame .* holds label {label}|track {label} runs)"):
        evaluate_sequence(gt, res)


def test_a_result_with_fewer_frames_is_an_error(sequence, tmp_path):
    cells, gt = sequence
    res = write_result(tmp_path / "01_RES", cells, (), seed=0)
    (res / "mask023.tif").unlink()
    with pytest.raises(CtcFormatError, match="23 result masks but .*TRA has 24 frames"):
        evaluate_sequence(gt, res)


def test_evaluate_tracking_command_prints_and_writes_the_official_numbers(sequence, tmp_path, capsys):
    import json

    from sam2_plugins.cli import main

    cells, gt = sequence
    results = tmp_path / "results"
    write_result(results / "01_RES", cells, ("missed", "split", "wrong_parent"), seed=4)
    official = _official(gt, results / "01_RES")
    capsys.readouterr()
    # the dataset form: --gt holds 01_GT, --res holds 01_RES
    assert (
        main(["evaluate-tracking", "--gt", str(gt.parent), "--res", str(results), "--json", str(tmp_path / "s.json")])
        == 0
    )
    printed = capsys.readouterr().out
    assert f"01           {official['SEG']:9.6f} {official['DET']:9.6f} {official['TRA']:9.6f}" in printed
    written = json.loads((tmp_path / "s.json").read_text())
    assert [written[name] for name in ("SEG", "DET", "TRA")] == [
        written["sequences"]["01"][name] for name in ("SEG", "DET", "TRA")
    ]
    scores = written["sequences"]["01"]
    for name in ("SEG", "DET", "TRA", "OP_CSB", "OP_CTB", "AOGM"):
        assert scores[name] == pytest.approx(official[name], abs=1e-6), name
    assert scores["SEG_frames"] == [0, 4, 8, 12, 16, 20]


def test_evaluate_tracking_command_names_a_missing_result(sequence, tmp_path, capsys):
    from sam2_plugins.cli import main

    _, gt = sequence
    assert main(["evaluate-tracking", "--gt", str(gt.parent), "--res", str(tmp_path), "-q"]) == 1
    assert f"{tmp_path / '01_RES'}: no result for the ground truth {gt}" in capsys.readouterr().err


def test_3d_sequences_with_slice_segmentation_equal_py_ctcmetrics(tmp_path):
    """3D label volumes, and SEG ground truth given as z-slices (man_seg_TTT_ZZZ.tif) as some CTC 3D datasets do."""
    import tifffile
    from ctc_results import tracking_result

    cells = dividing_cells(num_frames=12, size=64, num_cells=2, cycle=(6, 9), seed=9)
    result_frames, result_lineage = tracking_result(cells, ("missed", "split", "shifted"), seed=9)

    def volume(labels: np.ndarray) -> np.ndarray:  # outer slices hold every other row of the cells
        edge = labels.copy()
        edge[::2] = 0
        return np.stack([edge, labels, labels, edge])

    gt = tmp_path / "01_GT"
    write_ctc(gt / "TRA", [volume(frame) for frame in cells.labels], cells.lineage, ground_truth=True)
    (gt / "SEG").mkdir()
    for frame, depth in ((0, 1), (4, 0), (4, 2), (9, 3)):
        labels = volume(cells.labels[frame])[depth]
        tifffile.imwrite(gt / "SEG" / f"man_seg_{frame:03d}_{depth:03d}.tif", labels)
    res = write_ctc(tmp_path / "01_RES", [volume(frame) for frame in result_frames], result_lineage)
    official = _official(gt, res)
    ours = evaluate_sequence(gt, res)
    assert ours.seg_frames == [0, 4, 9]
    assert (ours.seg, ours.det, ours.tra) == pytest.approx(
        (official["SEG"], official["DET"], official["TRA"]), abs=1e-6
    )
    assert ours.seg < 1.0 and ours.tra < 1.0


def test_marker_ground_truth_and_empty_result_frames_equal_py_ctcmetrics(tmp_path):
    """TRA ground truth as markers inside the cells (as most CTC datasets have it), full masks in SEG, and a result
    with no cell at all on two frames."""
    from ctc_results import tracking_result
    from scipy import ndimage

    cells = dividing_cells(num_frames=16, size=96, num_cells=3, cycle=(5, 8), seed=21)
    markers = []
    for labels in cells.labels:
        marker = np.zeros_like(labels)
        for track_id in np.unique(labels[labels != 0]):
            core = ndimage.binary_erosion(labels == track_id, iterations=3)
            marker[core if core.any() else labels == track_id] = track_id
        markers.append(marker)
    gt = tmp_path / "01_GT"
    write_ctc(gt / "TRA", markers, cells.lineage, ground_truth=True)
    write_dividing_cells(tmp_path / "full", cells, segmentation_stride=5)
    (tmp_path / "full" / "01_GT" / "SEG").rename(gt / "SEG")
    frames, lineage = tracking_result(cells, ("split", "false", "wrong_parent"), seed=21)
    for frame in (6, 7):
        frames[frame] = np.zeros_like(frames[frame])
    parents = {track.track_id: track.parent for track in lineage if track.parent}
    res = write_ctc_result(tmp_path / "01_RES", frames, parents)
    official = _official(gt, res)
    assert official["Valid"] == 1
    ours = evaluate_sequence(gt, res)
    assert (ours.seg, ours.det, ours.tra) == pytest.approx(
        (official["SEG"], official["DET"], official["TRA"]), abs=1e-6
    )
    assert ours.counts["FN"] == official["AOGM_FN"] > 0
