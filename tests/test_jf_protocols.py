"""Each benchmark's own scores against its official evaluator: DAVIS 2017 (the official davis2017-evaluation in
../shared/reference, run here as the yardstick) on real DAVIS-format masks from ../shared/fixtures/davis_real.

Ground truth: the OSVOS masks, one sequence edited so that its object 1 appears only after the first frames (the
DAVIS rule scores every frame, empty/empty = 1; SA-V's rule starts at the first appearance). Predictions: the RVOS
masks with labels above the ground truth's object count set to 0 (the official tool stops on them), and an edited
OSVOS copy (shifted, one object dropped on some frames).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sam2_plugins.cli import main
from sam2_plugins.evaluate import PROTOCOLS, EvaluationResult, detect_protocol, evaluate_folders, score_video
from sam2_plugins.masks import read_mask_png
from sam2_plugins.metrics import frame_scores
from sam2_plugins.sample_data import write_lvos, write_sav_val, write_youtube_vos

OFFICIAL_DAVIS = Path(__file__).resolve().parents[2] / "shared" / "reference" / "davis2017_evaluation"
LATE_SEQUENCE, LATE_FRAMES = "bike-packing", 12
"""bike-packing's object 1 is removed from its first 12 frames: it appears later, object 2 keeps N = 2."""


def _save_like(source: Path, labels: np.ndarray, target: Path) -> None:
    """``labels`` as a palette PNG with ``source``'s palette, as DAVIS results are written."""
    image = Image.fromarray(labels.astype(np.uint8), mode="P")
    image.putpalette(Image.open(source).getpalette())
    target.parent.mkdir(parents=True, exist_ok=True)
    image.save(target)


def _edit(fixtures: Path, root: Path) -> dict[str, Path]:
    """Ground truth and two prediction folders (DAVIS layout) from the real masks; returns their roots."""
    gt, rvos, edited = root / "Annotations" / "480p", root / "rvos", root / "edited"
    sequences = sorted(path.name for path in (fixtures / "osvos").iterdir())
    (root / "ImageSets" / "2017").mkdir(parents=True)
    (root / "ImageSets" / "2017" / "val.txt").write_text("\n".join(sequences) + "\n")
    rng = np.random.default_rng(0)
    for sequence in sequences:
        files = sorted((fixtures / "osvos" / sequence).glob("*.png"))
        count = int(read_mask_png(files[0]).max())
        for t, path in enumerate(files):
            labels = read_mask_png(path)
            if sequence == LATE_SEQUENCE and t < LATE_FRAMES:
                labels = np.where(labels == 1, 0, labels)
            _save_like(path, labels, gt / sequence / path.name)
            moved = np.roll(labels, (int(rng.integers(-6, 7)), int(rng.integers(-6, 7))), axis=(0, 1))
            if count > 1 and t % 7 == 3:
                moved[moved == 2] = 0  # object 2 missed on some frames
            _save_like(path, moved, edited / sequence / path.name)
            proposals = read_mask_png(fixtures / "rvos" / sequence / path.name)
            _save_like(path, np.where(proposals > count, 0, proposals), rvos / sequence / path.name)
    return {"gt": gt, "rvos": rvos, "edited": edited}


@pytest.fixture(scope="module")
def davis_case(shared_fixtures, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("davis_real")
    return {"root": root, **_edit(shared_fixtures / "davis_real", root)}


@pytest.fixture(scope="module")
def official_davis(davis_case) -> dict[str, dict]:
    """The official DAVIS 2017 evaluator's semi-supervised metrics for each prediction folder."""
    sys.path.insert(0, str(OFFICIAL_DAVIS))
    try:
        from davis2017.evaluation import DAVISEvaluation

        return {
            name: DAVISEvaluation(str(davis_case["root"]), "semi-supervised", "val", codalab=True).evaluate(
                str(davis_case[name])
            )
            for name in ("rvos", "edited")
        }
    finally:
        sys.path.remove(str(OFFICIAL_DAVIS))


def _in_memory_scores(protocol: str, gt_root: Path, pred_root: Path) -> list:
    """``score_video`` on every sequence, fed with per-object masks as a front-end (FiftyOne) holds them."""
    scores = []
    for sequence in sorted(path.name for path in gt_root.iterdir()):
        files = sorted((gt_root / sequence).glob("*.png"))
        gt_labels = {t: read_mask_png(path) for t, path in enumerate(files)}
        pred_labels = {t: read_mask_png(pred_root / sequence / path.name) for t, path in enumerate(files)}
        present = sorted(set(np.unique(np.stack(list(gt_labels.values())))) - {0, 255})
        gt = {str(label): {t: labels == label for t, labels in gt_labels.items()} for label in present}
        scores += score_video(
            protocol, sequence, gt, lambda obj, t, labels=pred_labels: labels[t] == int(obj), annotated=list(gt_labels)
        )
    return scores


def _official_table(metrics: dict) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """Per object (``"<seq>/<n>"``) and global scores x 100 from the official evaluator's metrics."""
    j, f = metrics["J"], metrics["F"]
    objects = {}
    for index, key in enumerate(j["M_per_object"]):
        sequence, number = key.rsplit("_", 1)
        objects[f"{sequence}/{number}"] = {
            "J": j["M"][index] * 100,
            "F": f["M"][index] * 100,
            "J-Recall": j["R"][index] * 100,
            "F-Recall": f["R"][index] * 100,
            "J-Decay": j["D"][index] * 100,
            "F-Decay": f["D"][index] * 100,
        }
    means = {
        name: float(np.mean([scores[name] for scores in objects.values()])) for name in objects[next(iter(objects))]
    }
    return objects, {"J&F": (np.mean(j["M"]) + np.mean(f["M"])) / 2 * 100} | means


@pytest.mark.parametrize("prediction", ["rvos", "edited"])
def test_in_memory_davis_scores_equal_the_official_evaluator(davis_case, official_davis, prediction):
    scores = _in_memory_scores("davis", davis_case["gt"], davis_case[prediction])
    objects, global_scores = _official_table(official_davis[prediction])
    assert [score.key for score in scores] == list(objects)
    for score in scores:
        assert score.statistics() == pytest.approx(objects[score.key], abs=1e-6, rel=0), score.key
    result = EvaluationResult(scores)  # the protocol is the objects'
    assert result.statistics() == pytest.approx(global_scores, abs=1e-6, rel=0)
    assert result.protocol == "davis"
    assert set(result.to_json()["global"]) == {"J&F", "J", "F", "J-Recall", "F-Recall", "J-Decay", "F-Decay"}


@pytest.mark.parametrize("prediction", ["rvos", "edited"])
def test_davis_folders_equal_the_official_evaluator(davis_case, official_davis, prediction):
    result = evaluate_folders(davis_case["gt"], davis_case[prediction])  # the protocol comes from the layout
    assert result.protocol == "davis" and not result.warnings
    objects, global_scores = _official_table(official_davis[prediction])
    scored = {score.key.replace("/00", "/"): score.statistics() for score in result.objects}
    assert scored.keys() == objects.keys()
    for key, expected in objects.items():
        assert scored[key] == pytest.approx(expected, abs=1e-6, rel=0), key
    assert result.statistics() == pytest.approx(global_scores, abs=1e-6, rel=0)


def test_raw_rvos_labels_above_the_object_count_are_left_out_with_a_warning(davis_case, shared_fixtures):
    """The official tool stops on them (status 0); here they are not scored, and the warning names them."""
    raw = evaluate_folders(davis_case["gt"], shared_fixtures / "davis_real" / "rvos", protocol="davis")
    zeroed = evaluate_folders(davis_case["gt"], davis_case["rvos"], protocol="davis")
    assert raw.to_json() | {"warnings": None} == zeroed.to_json() | {"warnings": None}
    assert len(raw.warnings) == 3 and "blackswan: predicted labels [2, 3," in raw.warnings[1]


def test_a_davis_folder_without_frames_scores_its_val_list_as_the_official_codalab_mode(davis_case, official_davis):
    result = evaluate_folders(davis_case["root"], davis_case["rvos"])  # Annotations/480p and ImageSets, no JPEGs
    assert result.protocol == "davis" and result.protocol_origin.endswith("Annotations/480p")
    assert result.statistics() == pytest.approx(_official_table(official_davis["rvos"])[1], abs=1e-6, rel=0)
    videos = result.to_json()["videos"]
    assert list(videos) == ["bike-packing", "blackswan", "bmx-trees"]
    assert videos["blackswan"] == result.objects[2].statistics() | {"J&F": result.objects[2].jf}


def test_object_appearing_later_is_scored_on_every_frame_under_davis(davis_case, official_davis):
    davis = {s.key: s for s in _in_memory_scores("davis", davis_case["gt"], davis_case["edited"])}
    sav = {s.key: s for s in _in_memory_scores("sav", davis_case["gt"], davis_case["edited"])}
    late = f"{LATE_SEQUENCE}/1"
    official_j = official_davis["edited"]["J"]["M_per_object"][f"{LATE_SEQUENCE}_1"] * 100
    assert davis[late].j == pytest.approx(official_j, abs=1e-6)
    frames = len(list((davis_case["gt"] / LATE_SEQUENCE).glob("*.png")))
    assert len(davis[late].frames) == frames - 2  # every frame but the first and last
    assert len(sav[late].frames) < frames - 2  # SA-V starts at its first appearance: a different score
    assert abs(sav[late].j - official_j) > 1
    assert "J-Recall" not in sav[late].statistics()


def test_davis2016_scores_the_union_of_the_objects_as_one(davis_case, official_davis):
    """DAVIS 2016 is the DAVIS 2017 rules on binary masks: scoring merged masks under "davis" gives the same."""
    union = {s.key: s for s in _in_memory_scores("davis-2016", davis_case["gt"], davis_case["edited"])}
    assert set(union) == {f"{sequence}/001" for sequence in ("bike-packing", "blackswan", "bmx-trees")}
    gt_root, pred_root = davis_case["gt"], davis_case["edited"]
    for sequence in ("bike-packing", "bmx-trees"):
        files = sorted((gt_root / sequence).glob("*.png"))
        gt = {"1": {t: read_mask_png(path) > 0 for t, path in enumerate(files)}}
        merged = {t: read_mask_png(pred_root / sequence / path.name) > 0 for t, path in enumerate(files)}
        (expected,) = score_video("davis", sequence, gt, lambda obj, t, masks=merged: masks[t])
        assert union[f"{sequence}/001"].statistics() == expected.statistics()


def test_binary_davis2016_folders_are_detected_and_scored_as_one_object(davis_case, tmp_path):
    """DAVIS 2016's 0/255 ground truth (255 is the object, not DAVIS 2017's void) picks the DAVIS 2016 rules."""
    gt = tmp_path / "gt"
    for path in sorted(davis_case["gt"].glob("*/*.png")):
        (gt / path.parent.name).mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.where(read_mask_png(path) > 0, 255, 0).astype(np.uint8)).save(
            gt / path.parent.name / path.name
        )
    assert detect_protocol(gt) == "davis-2016" and detect_protocol(davis_case["gt"]) == "davis"
    result = evaluate_folders(gt, davis_case["edited"])
    expected = _in_memory_scores("davis-2016", davis_case["gt"], davis_case["edited"])
    assert result.protocol == "davis-2016"
    assert [score.statistics() for score in result.objects] == [score.statistics() for score in expected]


def test_lvos_scores_each_object_in_its_range_with_stability():
    """LVOS in memory: each object on its frame_range's frames (step 5, first and frame_nums-th skipped),
    V = the standard deviation of J&F."""
    shape = (40, 60)
    square = np.zeros(shape, bool)
    square[10:20, 10:20] = True
    gt = {"1": {t: square for t in range(0, 50, 5)}, "2": {t: square for t in range(20, 50, 5)}}
    misses = {5, 30}

    def pred(obj: str, t: int) -> np.ndarray | None:
        return None if t in misses else square

    scores = score_video("lvos", "v", gt, pred, object_ranges={"1": (0, 50, 10), "2": (20, 40, 4)})
    first, second = scores
    assert [frame.frame for frame in first.frames] == [f"{t:05d}" for t in range(5, 45, 5)]
    assert [frame.frame for frame in second.frames] == ["00025", "00030"]
    assert first.j == pytest.approx(75.0) and second.j == pytest.approx(50.0)
    statistics = first.statistics()
    assert set(statistics) == {"J", "F", "J-Recall", "F-Recall", "V"}
    assert statistics["J-Recall"] == pytest.approx(75.0)
    assert statistics["V"] == pytest.approx(np.sqrt(round(np.var([1.0] * 6 + [0.0] * 2), 4)) * 100)
    # a range of frame indices [first, stop), as a front-end holds a track's valid frames: its first and last skipped
    (by_index,) = score_video("lvos", "v", {"1": gt["1"]}, pred, object_ranges={"1": (5, 45)})
    assert [frame.frame for frame in by_index.frames] == [f"{t:05d}" for t in range(10, 40, 5)]
    assert by_index.j == pytest.approx(100 * 5 / 6)


def test_unknown_protocol_and_non_label_ids_are_errors():
    with pytest.raises(ValueError, match="davis, davis-2016, mose, lvos"):
        score_video("ytvos", "v", {}, lambda obj, t: None)
    with pytest.raises(ValueError, match="'person'.*not a label"):
        score_video("davis", "v", {"person": {0: np.ones((4, 4), bool)}}, lambda obj, t: None)
    assert set(PROTOCOLS) == {"sav", "davis", "davis-2016", "mose", "lvos"}


def test_cli_picks_davis_from_the_layout_and_reports_recall_and_decay(davis_case, official_davis, tmp_path, capsys):
    pred = shutil.copytree(davis_case["edited"], tmp_path / "pred")
    out = tmp_path / "scores.json"
    assert main(["evaluate", "--gt_root", str(davis_case["gt"]), "--pred_root", str(pred), "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Protocol: davis, DAVIS 2017 semi-supervised (davis2017-evaluation) (from the folder shapes of" in printed
    scores = json.loads(out.read_text())
    objects, global_scores = _official_table(official_davis["edited"])
    assert scores["protocol"] == "davis" and scores["global"] == pytest.approx(global_scores, abs=1e-6, rel=0)
    assert scores["objects"]["bike-packing/001"] == pytest.approx(objects["bike-packing/1"], abs=1e-6, rel=0)
    header, global_row = (pred / "results.csv").read_text().splitlines()[:2]
    assert header.split(", ")[-4:] == ["J-Recall", "F-Recall", "J-Decay", "F-Decay"]
    assert f"{global_scores['F-Decay']:.1f}" == global_row.split(",")[-1].strip()

    assert main(["evaluate", "--gt_root", str(davis_case["gt"]), "--pred_root", str(pred), "--protocol", "sav"]) == 0
    printed = capsys.readouterr().out
    assert "Protocol: sav, SA-V (sav_evaluator.py) (from --protocol)" in printed and "J-Recall" not in printed
    late = f"{LATE_SEQUENCE} 001"
    sav_row = next(line for line in printed.splitlines() if line.startswith(late))
    assert float(sav_row.split()[3]) != pytest.approx(objects[f"{LATE_SEQUENCE}/1"]["J"], abs=0.1)


def test_a_davis_dataset_folder_scores_its_split_under_the_davis_layout(davis_case, official_davis, tmp_path):
    """``--gt_root DAVIS``: the layout (vos-datasets) gives the protocol and the split's sequences."""
    root = tmp_path / "DAVIS"
    shutil.copytree(davis_case["root"] / "Annotations", root / "Annotations")
    shutil.copytree(davis_case["root"] / "ImageSets", root / "ImageSets")
    (root / "ImageSets" / "2017" / "train.txt").write_text("blackswan\n")
    for sequence in davis_case["gt"].iterdir():
        (root / "JPEGImages" / "480p" / sequence.name).mkdir(parents=True)
    result = evaluate_folders(root, davis_case["edited"])
    assert result.protocol == "davis" and result.protocol_origin == f"the davis layout of {root}"
    assert result.statistics() == pytest.approx(_official_table(official_davis["edited"])[1], abs=1e-6, rel=0)
    blackswan = evaluate_folders(root, davis_case["edited"], split="train")
    assert [score.key for score in blackswan.objects] == ["blackswan/001"]
    inside = evaluate_folders(root / "Annotations" / "480p", davis_case["edited"], protocol="mose")
    assert inside.protocol == "mose" and inside.statistics() == result.statistics()


def test_lvos_dataset_scores_every_fifth_frame_of_each_object_range_with_v(tmp_path):
    """LVOS (vos-datasets' synthetic LVOS layout): each object on frames start, start + 5, ... < end of its
    meta frame_range but the first and the frame_nums-th, as the official loop does; V is the LVOS evaluator's
    (variance of J&F rounded to 4 decimals)."""
    write_lvos(tmp_path, num_videos=1, num_frames=17)
    split = tmp_path / "val"
    pred = tmp_path / "pred"
    shutil.copytree(split / "Annotations", pred)
    (video,) = [path.name for path in pred.iterdir()]
    for number in (6, 11):  # object 1 missed on two frames
        path = pred / video / f"{number:08d}.png"
        labels = read_mask_png(path)
        _save_like(path, np.where(labels == 1, 0, labels), path)
    result = evaluate_folders(split / "Annotations", pred)
    assert result.protocol == "lvos" and result.protocol_origin == f"the lvos layout of {split}"
    meta = json.loads((split / "val_meta.json").read_text())["videos"][video]["objects"]
    assert [score.obj for score in result.objects] == [f"{int(obj):03d}" for obj in meta]
    for score, (obj, fields) in zip(result.objects, meta.items()):
        start, end, count = (int(fields["frame_range"][key]) for key in ("start", "end", "frame_nums"))
        numbers = [n for k, n in enumerate(range(start, end, 5)) if 0 < k < count - 1]
        assert [frame.frame for frame in score.frames] == [f"{n:08d}" for n in numbers]
        pairs = []
        for n in numbers:
            gt = read_mask_png(split / "Annotations" / video / f"{n:08d}.png") == int(obj)
            pairs.append(frame_scores(gt, read_mask_png(pred / video / f"{n:08d}.png") == int(obj)))
        j, f = np.array(pairs).T
        jf = (j + f) / 2
        expected_v = np.sqrt(round(float(np.sum((jf.mean() - jf) ** 2) / len(jf)), 4)) * 100
        assert score.statistics() == pytest.approx(
            {
                "J": j.mean() * 100,
                "F": f.mean() * 100,
                "J-Recall": np.mean(j > 0.5) * 100,
                "F-Recall": np.mean(f > 0.5) * 100,
                "V": expected_v,
            },
            abs=1e-9,
        )
    assert result.objects[0].j < 100  # the missed frames are among the scored ones


def test_youtube_vos_ground_truth_is_scored_by_its_server(tmp_path):
    write_youtube_vos(tmp_path, num_videos=1)
    with pytest.raises(ValueError, match="youtube-vos dataset, scored by its evaluation server"):
        evaluate_folders(tmp_path / "valid", tmp_path / "valid" / "Annotations")


def test_an_sav_val_folder_scores_as_its_annotations_folder_does(tmp_path):
    write_sav_val(tmp_path / "sav_val", num_videos=2)
    pred = shutil.copytree(tmp_path / "sav_val" / "Annotations_6fps", tmp_path / "pred")
    through_layout = evaluate_folders(tmp_path / "sav_val", pred)
    direct = evaluate_folders(tmp_path / "sav_val" / "Annotations_6fps", pred)
    assert through_layout.protocol == direct.protocol == "sav"
    assert direct.protocol_origin == through_layout.protocol_origin == f"the sav-val layout of {tmp_path / 'sav_val'}"
    assert through_layout.to_json() == direct.to_json() and through_layout.jf == 100.0
