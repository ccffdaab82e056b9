"""Hand-made cases, one per rule of the SA-V J&F definition and of our error handling."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage
from skimage.morphology import disk

from sam2_plugins.cli import main
from sam2_plugins.datasets.davis import write_davis_label_maps
from sam2_plugins.datasets.sav_eval import write_sav_object_masks
from sam2_plugins.evaluate import MissingPredictionError, evaluate_folders, evaluate_object
from sam2_plugins.frames import frame_name
from sam2_plugins.masks import MaskFormatError, write_binary_png
from sam2_plugins.metrics import boundary_f_measure, boundary_map, frame_scores, jaccard_index, tolerance_radius

SIZE = (100, 100)  # tolerance radius ceil(0.008 * 141.4) = 2


def box(top: int, left: int, height: int, width: int, size=SIZE) -> np.ndarray:
    mask = np.zeros(size, bool)
    mask[top : top + height, left : left + width] = True
    return mask


def pixel(y: int, x: int) -> np.ndarray:
    return box(y, x, 1, 1)


EMPTY = np.zeros(SIZE, bool)


def write_sav(root, objects: dict) -> None:
    """``objects``: {(video, obj): {frame: mask}}."""
    for (video, obj), masks in objects.items():
        write_sav_object_masks(root, video, obj, masks)


# ---------------------------------------------------------------- per-frame metrics


def test_jaccard_definition():
    gt, pred = box(0, 0, 10, 10), box(0, 5, 10, 10)
    assert jaccard_index(gt, pred) == 50 / 150
    assert jaccard_index(EMPTY, EMPTY) == 1.0
    assert jaccard_index(EMPTY, pred) == 0.0


def test_boundary_map_seg2bmap_rule():
    mask = np.array([[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 1], [0, 0, 1, 1]], bool)
    expected = np.array(
        [
            [1, 1, 1, 0],  # differs from a lower or lower-right neighbour
            [1, 0, 1, 1],
            [1, 1, 0, 0],  # (2, 3): last column compares only with the pixel below (1 == 1)
            [0, 1, 0, 0],
        ],
        bool,
    )  # last row compares only with the right neighbour; the last pixel is always 0
    np.testing.assert_array_equal(boundary_map(mask), expected)


def test_tolerance_radius():
    assert tolerance_radius((480, 854)) == 8.0  # ceil(0.008 * 979.6)
    assert tolerance_radius(SIZE) == 2.0


@pytest.mark.parametrize(("shift", "expected"), [(0, 1.0), (2, 1.0), (3, 0.5), (4, 0.0)])
def test_boundary_f_disk_tolerance(shift, expected):
    # A pixel's boundary is the 2x2 block up-left of it; shifting by d puts half the block at d-1 and half at d.
    assert boundary_f_measure(pixel(10, 10), pixel(10, 10 + shift), radius=2.0) == expected


def test_boundary_f_disk_is_round_not_square():
    # Boundary blocks shifted by (2, 2): only the nearest corners match (sqrt 2 apart); the pixels (1, 2) away are
    # sqrt(5) > 2 away although inside a 5x5 square. Precision = recall = 1/4.
    assert boundary_f_measure(pixel(10, 10), pixel(12, 12), radius=2.0) == 0.25


def test_boundary_f_empty_cases():
    assert boundary_f_measure(EMPTY, EMPTY, 2.0) == 1.0
    assert boundary_f_measure(EMPTY, box(5, 5, 3, 3), 2.0) == 0.0
    assert boundary_f_measure(box(5, 5, 3, 3), EMPTY, 2.0) == 0.0
    assert boundary_f_measure(box(0, 0, 5, 5), box(50, 50, 5, 5), 2.0) == 0.0  # P + R = 0


def test_frame_scores_at_image_border_equal_uncropped():
    # Objects touching the last row/column: cropping must keep the special last row/column rule.
    gt, pred = box(90, 90, 10, 10), box(88, 93, 12, 7)
    j, f = frame_scores(gt, pred)
    assert j == jaccard_index(gt, pred)
    assert f == boundary_f_measure(gt, pred, tolerance_radius(SIZE))


def test_shortcuts_equal_full_frame_disk_dilation():
    """Cropping and nearest-neighbour matching give exactly the definition: full-frame disk(r) dilation."""
    rng = np.random.default_rng(7)
    for trial in range(40):
        shape = (int(rng.integers(20, 70)), int(rng.integers(20, 70)))
        gt = ndimage.gaussian_filter(rng.random(shape), 3) > 0.5  # blobs, often touching the image border
        pred = ndimage.shift(gt, rng.integers(-4, 5, 2), order=0) ^ (rng.random(shape) < 0.01 * (trial % 3))
        radius = tolerance_radius(shape)
        gt_b, pred_b = boundary_map(gt), boundary_map(pred)
        footprint = disk(radius).astype(bool)
        precision = (pred_b & ndimage.binary_dilation(gt_b, footprint)).sum() / max(pred_b.sum(), 1)
        recall = (gt_b & ndimage.binary_dilation(pred_b, footprint)).sum() / max(gt_b.sum(), 1)
        if not gt_b.any() or not pred_b.any():
            expected_f = float(gt_b.any() == pred_b.any())
        else:
            expected_f = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
        assert frame_scores(gt, pred) == (jaccard_index(gt, pred), expected_f)


# ---------------------------------------------------------------- object and video rules


def test_frames_before_first_appearance_are_not_scored():
    gt = [EMPTY, EMPTY, box(10, 10, 20, 20), box(10, 10, 20, 20)]
    pred = [EMPTY, EMPTY, box(10, 10, 20, 20), box(10, 20, 20, 20)]
    score = evaluate_object(gt, pred, skip_first_and_last=False)
    assert [frame.frame for frame in score.frames] == ["00002", "00003"]
    assert score.j == pytest.approx((1 + 200 / 600) / 2 * 100)


def test_false_positive_before_gt_scores_zero_and_empty_pairs_score_one():
    gt = [EMPTY, EMPTY, EMPTY, box(10, 10, 20, 20), EMPTY]
    pred = [EMPTY, box(50, 50, 5, 5), EMPTY, box(10, 10, 20, 20), EMPTY]
    score = evaluate_object(gt, pred, skip_first_and_last=False)
    assert [(f.frame, f.j, f.f) for f in score.frames] == [
        ("00001", 0.0, 0.0),
        ("00002", 1.0, 1.0),
        ("00003", 1.0, 1.0),
        ("00004", 1.0, 1.0),
    ]
    assert score.j == score.f == 75.0


def test_first_and_last_annotated_frames_are_skipped():
    gt = [box(0, 0, 9, 9)] * 4
    pred = [EMPTY, box(0, 0, 9, 9), box(0, 0, 9, 9), EMPTY]
    assert evaluate_object(gt, pred).j == 100.0
    assert evaluate_object(gt, pred, skip_first_and_last=False).j == 50.0


def test_lazy_sequences_are_read_only_at_scored_frames():
    read = []

    class Recording:
        def __init__(self, masks):
            self.masks = masks

        def __len__(self):
            return len(self.masks)

        def __getitem__(self, index):
            read.append(index)
            return self.masks[index]

    masks = [box(5, 5, 9, 9)] * 5
    evaluate_object(Recording(masks), masks, frame_names=["a", "b", "c", "d", "e"])
    assert read == [1, 2, 3]


def test_object_without_gt_after_skipping_is_reported_not_a_crash(tmp_path):
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    objects = {
        ("v", "000"): {"00000": box(0, 0, 5, 5), "00004": EMPTY, "00008": box(0, 0, 5, 5)},
        ("v", "001"): {"00000": box(0, 0, 5, 5), "00004": box(0, 0, 5, 5), "00008": EMPTY},
        ("v", "002"): {"00000": box(0, 0, 5, 5), "00004": box(0, 0, 5, 5)},  # nothing left after skipping
    }
    write_sav(gt, objects)
    write_sav(pred, objects)
    result = evaluate_folders(gt, pred)
    assert [score.key for score in result.scored] == ["v/001"]
    assert {score.key for score in result.unscored} == {"v/000", "v/002"}
    assert "no ground-truth mask" in result.unscored[0].problem
    assert result.to_json()["unscored"].keys() == {"v/000", "v/002"}


def test_global_scores_average_objects_of_all_videos(tmp_path):
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    frames = ["00000", "00004", "00008"]
    target = box(10, 10, 20, 20)
    write_sav(gt, {(v, o): dict.fromkeys(frames, target) for v, o in [("a", "000"), ("a", "001"), ("b", "000")]})
    write_sav(
        pred,
        {
            ("a", "000"): dict.fromkeys(frames, target),
            ("a", "001"): dict.fromkeys(frames, box(10, 20, 20, 20)),
            ("b", "000"): dict.fromkeys(frames, box(60, 60, 20, 20)),
        },
    )
    result = evaluate_folders(gt, pred)
    per_object = [score.j for score in result.scored]
    assert per_object == pytest.approx([100.0, 100 / 3, 0.0])
    assert result.j == pytest.approx(np.mean(per_object))  # objects, not videos, are averaged
    assert result.jf == (result.j + result.f) / 2


def test_sav_masks_binarized_and_extra_prediction_frames_ignored(tmp_path):
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    target = box(10, 10, 20, 20)
    write_sav(gt, {("v", "000"): {"00000": target, "00004": target, "00008": target}})
    for name in ["00000", "00004", "00008"]:
        (pred / "v" / "000").mkdir(parents=True, exist_ok=True)
        Image.fromarray(target.astype(np.uint8)).save(pred / "v" / "000" / f"{name}.png")  # 0/1, not 0/255
    Image.fromarray(np.zeros(SIZE, np.uint8)).save(pred / "v" / "000" / "00002.png")  # not annotated: ignored
    result = evaluate_folders(gt, pred)
    assert (result.j, result.f) == (100.0, 100.0)
    assert [frame.frame for frame in result.scored[0].frames] == ["00004"]


def test_davis_layout_matches_sav_layout(tmp_path):
    first, second = box(10, 10, 30, 30), box(30, 30, 30, 30)  # overlap: DAVIS keeps one label per pixel
    gt_labels = {frame_name(t): np.where(second, 2, np.where(first, 1, 0)) for t in range(0, 20, 4)}
    shifted = {name: np.roll(labels, 3, axis=1) for name, labels in gt_labels.items()}
    shifted["00008"][80:85, 80:85] = 3  # an object only in the prediction is not an object of the video
    write_davis_label_maps(tmp_path / "gt_davis", "v", gt_labels)
    write_davis_label_maps(tmp_path / "pred_davis", "v", shifted)
    for root, maps in [("gt_sav", gt_labels), ("pred_sav", shifted)]:
        for label in (1, 2):
            write_sav_object_masks(tmp_path / root, "v", f"{label:03d}", {n: m == label for n, m in maps.items()})
    davis = evaluate_folders(tmp_path / "gt_davis", tmp_path / "pred_davis").to_json()
    sav = evaluate_folders(tmp_path / "gt_sav", tmp_path / "pred_sav").to_json()
    assert davis == sav and set(davis["objects"]) == {"v/001", "v/002"}
    assert 0 < davis["global"]["J"] < 100


# ---------------------------------------------------------------- bad input


@pytest.fixture
def one_object(tmp_path):
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    masks = {"00000": box(10, 10, 20, 20), "00004": box(10, 10, 20, 20), "00008": box(10, 10, 20, 20)}
    write_sav(gt, {("v", "000"): masks})
    write_sav(pred, {("v", "000"): masks})
    return gt, pred


def test_missing_video_is_an_error_unless_allowed(one_object):
    gt, pred = one_object
    write_sav(gt, {("w", "000"): {"00000": box(1, 1, 5, 5), "00004": box(1, 1, 5, 5), "00008": box(1, 1, 5, 5)}})
    with pytest.raises(MissingPredictionError, match="w"):
        evaluate_folders(gt, pred)
    result = evaluate_folders(gt, pred, allow_missing=True)  # scored as empty, not dropped
    assert result.to_json()["objects"]["w/000"] == {"J": 0.0, "F": 0.0}
    assert result.j == 50.0


def test_strict_rejects_prediction_videos_without_gt(one_object):
    gt, pred = one_object
    write_sav(pred, {("extra", "000"): {"00000": EMPTY}})
    assert evaluate_folders(gt, pred).j == 100.0
    with pytest.raises(ValueError, match="extra"):
        evaluate_folders(gt, pred, strict=True)


def test_shape_mismatch_names_both_files(one_object):
    gt, pred = one_object
    write_sav(pred, {("v", "000"): {"00004": np.zeros((50, 50), bool)}})
    with pytest.raises(MaskFormatError, match=r"gt/v/000/00004.png.*pred/v/000/00004.png"):
        evaluate_folders(gt, pred)


def test_rgb_prediction_png_is_rejected(one_object):
    gt, pred = one_object
    Image.fromarray(np.zeros((*SIZE, 3), np.uint8)).save(pred / "v" / "000" / "00004.png")
    with pytest.raises(MaskFormatError, match=r"00004.png: mask has shape \(100, 100, 3\)"):
        evaluate_folders(gt, pred)


def test_non_binary_png_in_sav_layout_is_rejected(one_object):
    gt, pred = one_object
    labels = np.where(box(0, 0, 10, 10), 1, np.where(box(50, 50, 5, 5), 2, 0)).astype(np.uint8)
    Image.fromarray(labels).save(pred / "v" / "000" / "00004.png")
    with pytest.raises(MaskFormatError, match=r"00004.png: values \[0, 1, 2\].*one object per PNG"):
        evaluate_folders(gt, pred)
    # Two values are one object, whatever they are (the official tool's rule): 1 and 255 are both foreground.
    Image.fromarray(np.where(box(10, 10, 20, 20), 255, 1).astype(np.uint8)).save(pred / "v" / "000" / "00004.png")
    assert evaluate_folders(gt, pred).scored[0].frames[0].j == 400 / SIZE[0] / SIZE[1]


def test_in_memory_shape_mismatch():
    with pytest.raises(ValueError, match="v/o frame 00001"):
        evaluate_object([EMPTY] * 3, [np.zeros((4, 4))] * 3, video="v", obj="o")


def test_split_folder_as_gt_root_points_to_annotations(tmp_path):
    (tmp_path / "sav_val" / "Annotations_6fps").mkdir(parents=True)
    with pytest.raises(ValueError, match="Annotations_6fps as the ground truth"):
        evaluate_folders(tmp_path / "sav_val", tmp_path)


def test_non_png_files_in_ground_truth_are_ignored_with_a_warning_naming_them(tmp_path, capsys):
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    masks = {frame_name(t): box(10 + t, 10, 20, 20) for t in range(0, 24, 4)}
    write_sav(gt, {("v", "000"): masks})
    write_sav(pred, {("v", "000"): masks})
    folder = gt / "v" / "000"
    junk = [folder / "Thumbs.db", folder / ".DS_Store", gt / "v" / ".DS_Store", folder / "00002.jpg"]
    for path in junk[:3]:
        path.write_bytes(b"\0" * 64)
    Image.fromarray(np.zeros((*SIZE, 3), np.uint8)).save(junk[3])  # a real JPEG among the masks
    hidden = [gt / ".ipynb_checkpoints", gt / "v" / ".ipynb_checkpoints", folder / "._00004.png"]  # Jupyter, macOS
    for path in hidden[:2]:
        path.mkdir()
    Image.fromarray(np.zeros(SIZE, np.uint8)).save(hidden[2])
    junk += hidden
    result = evaluate_folders(gt, pred)
    assert (result.j, result.f) == (100.0, 100.0)  # counted as frames, they would shift the skipped frames
    assert [frame.frame for frame in result.scored[0].frames] == sorted(masks)[1:-1]
    assert sorted(result.ignored_files) == sorted(junk)
    assert main(["evaluate", "--gt_root", str(gt), "--pred_root", str(pred)]) == 0
    warning = capsys.readouterr().err
    assert "warning: ignored 7 entries that are not PNG masks" in warning
    assert all(str(path) in warning for path in junk)
    assert (pred / "results.csv").read_text().splitlines()[1].endswith("100.0, 100.0, 100.0")


def test_empty_ground_truth_root_says_it_holds_no_videos(tmp_path, capsys):
    (tmp_path / "gt").mkdir()
    (tmp_path / "gt" / ".DS_Store").write_bytes(b"")
    (tmp_path / "pred").mkdir()
    assert main(["evaluate", "--gt_root", str(tmp_path / "gt"), "--pred_root", str(tmp_path / "pred")]) == 1
    assert f"{tmp_path / 'gt'}: holds no videos" in capsys.readouterr().err
    assert not (tmp_path / "pred" / "results.csv").exists()


def test_video_folder_mixing_object_folders_and_masks_is_an_error(one_object):
    gt, pred = one_object
    write_binary_png(gt / "v" / "00000.png", box(1, 1, 5, 5))
    with pytest.raises(MaskFormatError, match=r"gt/v: holds both object folders and PNG masks"):
        evaluate_folders(gt, pred)


def test_files_beside_the_videos_in_the_ground_truth_root_are_named_as_ignored(tmp_path, capsys):
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    masks = {frame_name(t): box(10 + t, 10, 20, 20) for t in range(0, 12, 4)}
    write_sav(gt, {("v", "000"): masks})
    write_sav(pred, {("v", "000"): masks})
    (gt / ".DS_Store").write_bytes(b"\0" * 64)
    assert evaluate_folders(gt, pred).ignored_files == [gt / ".DS_Store"]
    assert main(["evaluate", "--gt_root", str(gt), "--pred_root", str(pred)]) == 0
    assert f"warning: ignored 1 entries that are not PNG masks: {gt / '.DS_Store'}" in capsys.readouterr().err


def test_quiet_console_script_prints_nothing_but_still_writes_the_results(tmp_path):
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    masks = {frame_name(t): box(10 + t, 10, 20, 20) for t in range(0, 12, 4)}
    write_sav(gt, {("v", "000"): masks, ("v", "001"): dict.fromkeys(masks, EMPTY)})
    write_sav(pred, {("v", "000"): masks, ("v", "001"): dict.fromkeys(masks, EMPTY)})
    (gt / ".DS_Store").write_bytes(b"\0" * 64)
    console_script = Path(sys.executable).parent / "sam2-plugins"
    command = [str(console_script), "evaluate", "--gt_root", str(gt), "--pred_root", str(pred)]
    loud = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert loud.returncode == 0 and "Global score: J&F: 100.0" in loud.stdout
    assert "warning: ignored 1 entries" in loud.stderr and "warning: v/001 not scored" in loud.stderr
    (pred / "results.csv").unlink()
    quiet = subprocess.run([*command, "-q", "--json", str(tmp_path / "scores.json")], capture_output=True, text=True)
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "", "")
    assert (pred / "results.csv").read_text().splitlines()[1].endswith("100.0, 100.0, 100.0")
    assert "v/001" in json.loads((tmp_path / "scores.json").read_text())["unscored"]
    failing = subprocess.run([*command[:-1], str(tmp_path / "nowhere"), "-q"], capture_output=True, text=True)
    assert failing.returncode == 1 and failing.stdout == "" and "error:" in failing.stderr


@pytest.mark.parametrize("bad", [["-n", "0"], ["-n", "-3"], ["-n", "two"], ["--per_frame"]])
def test_bad_evaluate_options_are_usage_errors(tmp_path, capsys, bad):
    (tmp_path / "gt" / "v").mkdir(parents=True)
    try:
        code = main(["evaluate", "--gt_root", str(tmp_path / "gt"), "--pred_root", str(tmp_path), *bad])
    except SystemExit as exit_info:  # argparse's usage error
        code = exit_info.code
    assert code == 2
    error = capsys.readouterr().err
    assert "--per_frame needs --json" in error if bad == ["--per_frame"] else "argument -n/--num_processes: " in error
    assert not (tmp_path / "results.csv").exists()
