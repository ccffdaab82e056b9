"""`sam2-plugins demo` (what `make demo` runs) and the synthetic SA-V sample it builds."""

import fiftyone_helpers  # noqa: F401  (configures FiftyOne before it is imported)
from fiftyone_helpers import TEST_IMAGE_SIZE, mongod, random_checkpoint  # noqa: F401

import json

import fiftyone as fo
import numpy as np
import pytest

from sam2_plugins.cli import main
from sam2_plugins.sample_data import synthetic_video, write_sav_val

pytestmark = pytest.mark.fiftyone


def test_sample_data_is_deterministic_and_has_the_hard_cases(tmp_path):
    first, second = synthetic_video("v", seed=3), synthetic_video("v", seed=3)
    assert np.array_equal(first.frames, second.frames) and np.array_equal(first.masks, second.masks)
    assert not np.array_equal(first.frames, synthetic_video("v", seed=4).frames)
    person, hand, entering, hidden = first.masks
    assert (person & hand).any()  # overlapping objects
    assert not entering[0].any() and entering[-1].any()  # first appears after frame 0
    assert not hidden[8].any() and hidden[0].any()  # absent on an annotated frame
    write_sav_val(tmp_path / "a", num_videos=1)
    write_sav_val(tmp_path / "b", num_videos=1)
    for path in (tmp_path / "a").rglob("*.png"):
        assert path.read_bytes() == (tmp_path / "b" / path.relative_to(tmp_path / "a")).read_bytes()


def test_demo_runs_end_to_end_and_its_table_matches_the_cli(mongod, random_checkpoint, tmp_path, capsys):
    assert (
        main(
            [
                "demo",
                "--checkpoint",
                random_checkpoint,
                "--config",
                "sam2.1_hiera_t",
                "--image-size",
                str(TEST_IMAGE_SIZE),
                "--device",
                "cpu",
                "--num-videos",
                "1",
                "--output-dir",
                str(tmp_path),
                "--dataset-name",
                "demo-test",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    dataset = fo.load_dataset("demo-test")
    cli = json.loads((tmp_path / "jf.json").read_text())
    assert dataset.load_evaluation_results("demo_jf").metrics()["J&F"] == pytest.approx(cli["global"]["J&F"], abs=1e-9)
    video_id = dataset.first().video_id
    row = next(line for line in printed.splitlines() if line.startswith(video_id))
    assert row.split()[2] == f"{dataset.first().demo_jf_JF:.1f}"
    assert "equal to the stored evaluation" in printed
    assert "app launch demo-test" in printed and (tmp_path / "fiftyone_plugins" / "sam2-plugins").is_symlink()


def test_demo_without_a_checkpoint_explains_and_scores_the_ground_truth(mongod, tmp_path, capsys):
    assert (
        main(
            [
                "demo",
                "--checkpoint",
                str(tmp_path / "missing.pt"),
                "--num-videos",
                "1",
                "--output-dir",
                str(tmp_path),
                "--dataset-name",
                "demo-offline",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "No SAM 2 checkpoint" in printed and "CHECKPOINT=" in printed
    assert fo.load_dataset("demo-offline").load_evaluation_results("demo_jf").metrics()["J&F"] == 100.0
