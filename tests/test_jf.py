"""The J&F evaluator against the official SA-V evaluator's golden results, through the API and the CLI."""

import json
import shutil

import pytest

from sam2_plugins.cli import main
from sam2_plugins.evaluate import evaluate_folders


@pytest.fixture(scope="module")
def golden(shared_fixtures):
    return shared_fixtures / "sav_jf_golden"


@pytest.fixture
def pred_copy(golden, tmp_path):
    """The golden predictions in a writable folder (results.csv is written beside them)."""
    return shutil.copytree(golden / "pred", tmp_path / "pred")


def assert_matches(result_json: dict, expected: dict) -> None:
    assert set(result_json["objects"]) == set(expected["objects"])
    for key, scores in expected["objects"].items():
        for metric in ("J", "F"):
            assert result_json["objects"][key][metric] == pytest.approx(scores[metric], abs=1e-9, rel=0), key
    for metric in ("J&F", "J", "F"):
        assert result_json["global"][metric] == pytest.approx(expected["global"][metric], abs=1e-9, rel=0)


@pytest.mark.parametrize(("skip", "expected_file"), [(True, "expected.json"), (False, "expected_noskip.json")])
def test_api_matches_official_per_object(golden, skip, expected_file):
    result = evaluate_folders(golden / "gt", golden / "pred", skip_first_and_last=skip)
    assert_matches(result.to_json(), json.loads((golden / expected_file).read_text()))
    assert not result.unscored


@pytest.mark.parametrize(
    ("flags", "expected_file"),
    [([], "expected.json"), (["--do_not_skip_first_and_last_frame"], "expected_noskip.json")],
)
def test_cli_json_and_results_csv(golden, pred_copy, tmp_path, capsys, flags, expected_file):
    out = tmp_path / "scores.json"
    args = ["evaluate", "--gt_root", str(golden / "gt"), "--pred_root", str(pred_copy), "--json", str(out), *flags]
    assert main(args) == 0
    assert_matches(json.loads(out.read_text()), json.loads((golden / expected_file).read_text()))
    printed = capsys.readouterr().out
    assert "Global score: J&F:" in printed
    if not flags:
        assert (pred_copy / "results.csv").read_text() == (golden / "official_results.csv").read_text()


def test_cli_per_frame_json_and_parallel_processes_agree(golden, pred_copy, tmp_path):
    single, parallel = tmp_path / "one.json", tmp_path / "two.json"
    base = ["evaluate", "--gt_root", str(golden / "gt"), "--pred_root", str(pred_copy), "-q", "--per_frame"]
    assert main([*base, "--json", str(single)]) == 0
    assert main([*base, "-n", "2", "--json", str(parallel)]) == 0
    one, two = json.loads(single.read_text()), json.loads(parallel.read_text())
    assert one == two
    frames = one["objects"]["sav_007000/000"]["frames"]
    annotated = sorted(p.stem for p in (golden / "gt" / "sav_007000" / "000").glob("*.png"))
    assert list(frames) == annotated[1:-1]  # the GT's frames minus first and last; pred's extra 00001 ignored
    mean_j = sum(frame["J"] for frame in frames.values()) / len(frames) * 100
    assert mean_j == pytest.approx(one["objects"]["sav_007000/000"]["J"], abs=1e-9)


def test_cli_missing_prediction_is_an_error_naming_it(golden, pred_copy, capsys):
    (pred_copy / "sav_007001" / "001" / "00016.png").unlink()
    args = ["evaluate", "--gt_root", str(golden / "gt"), "--pred_root", str(pred_copy), "-q"]
    assert main(args) == 1
    error = capsys.readouterr().err
    assert "sav_007001/001/00016.png" in error and "--allow-missing" in error
    assert not (pred_copy / "results.csv").exists()
    assert main([*args, "--allow-missing"]) == 0


def test_cli_help_documents_differences_from_official(capsys):
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    text = capsys.readouterr().out
    for documented in (
        "Differences from the official tool",
        "--allow-missing",
        "silently drops missing videos",
        "unscored",
        "--do_not_skip_first_and_last_frame",
        "--per_frame",
        "-n NUM_PROCESSES",
        "Thumbs.db",
        "counts them as frames",
    ):
        assert documented in text
