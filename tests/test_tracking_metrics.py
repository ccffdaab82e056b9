"""SEG, DET and TRA against py-ctcmetrics, the CTC's reference implementation, on synthetic sequences of dividing
cells with every kind of error its AOGM counts."""

from pathlib import Path

import numpy as np
import pytest
from ctc_results import ERRORS, write_result

from sam2_plugins.ctc import CtcFormatError, read_ctc, write_ctc
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
    assert f"01_RES       {official['SEG']:9.6f} {official['DET']:9.6f} {official['TRA']:9.6f}" in printed
    (scores,) = json.loads((tmp_path / "s.json").read_text())
    for name in ("SEG", "DET", "TRA", "OP_CSB", "OP_CTB", "AOGM"):
        assert scores[name] == pytest.approx(official[name], abs=1e-6), name
    assert scores["SEG_frames"] == [0, 4, 8, 12, 16, 20]


def test_evaluate_tracking_command_names_a_missing_result(sequence, tmp_path, capsys):
    from sam2_plugins.cli import main

    _, gt = sequence
    assert main(["evaluate-tracking", "--gt", str(gt.parent), "--res", str(tmp_path), "-q"]) == 1
    assert f"{tmp_path / '01_RES'}: no result for the ground truth {gt}" in capsys.readouterr().err
