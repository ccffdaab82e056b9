"""`sam2-plugins demo` (what `make demo` runs) and the synthetic SA-V sample it builds."""

import fiftyone_helpers  # noqa: F401  (configures FiftyOne before it is imported)
from fiftyone_helpers import TEST_IMAGE_SIZE, mongod, random_checkpoint  # noqa: F401

import json
from pathlib import Path

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
    # FiftyOne finds the plugin (the test plugins folder links this checkout): the App command needs no more
    assert printed.rstrip().splitlines()[-1].endswith("/fiftyone app launch demo-test")
    assert "FIFTYONE_PLUGINS_DIR" not in printed and not (tmp_path / "fiftyone_plugins").exists()


def test_demo_offline_from_a_pip_install_says_why_it_skips_sam2_and_prints_an_app_command_that_works(
    mongod, tmp_path, capsys, monkeypatch
):
    """What a user sees after `pip install "sam2-plugins[fiftyone]"` with no weights cached, offline, before
    `sam2-plugins fiftyone-plugin install`: FiftyOne's plugins folder does not hold the plugin."""
    import fiftyone.operators as foo
    import fiftyone.plugins as fop
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf_cache"))
    monkeypatch.setattr(fo.config, "plugins_dir", str(tmp_path / "user_plugins"))
    output_dir = tmp_path / "demo"
    args = ["demo", "--num-videos", "1", "--output-dir", str(output_dir), "--dataset-name", "demo-offline"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    step = next(line for line in printed.splitlines() if line.startswith("3/5"))
    assert step.startswith("3/5 SAM 2 skipped: no checkpoint: sam2.1_hiera_tiny.pt is not in the Hugging Face cache")
    assert "HF_HUB_OFFLINE is set" in step and "sam2-plugins demo --checkpoint FILE.pt" in printed
    assert "make demo" not in printed
    assert fo.load_dataset("demo-offline").load_evaluation_results("demo_jf").metrics()["J&F"] == 100.0
    command = printed.split("Open it in the FiftyOne App:\n")[1].splitlines()[0].split()
    plugins_dir = output_dir / "fiftyone_plugins"
    assert command[0] == f"FIFTYONE_PLUGINS_DIR={plugins_dir}" and command[-3:] == ["app", "launch", "demo-offline"]
    monkeypatch.setattr(fo.config, "plugins_dir", str(plugins_dir))  # the App that command starts
    plugin = fop.get_plugin("@sam2-plugins/sam2")
    assert Path(plugin.directory) == plugins_dir / "@sam2-plugins" / "sam2"
    assert {"import_sav", "apply_sam2", "evaluate_jf", "export_sav_predictions"} <= set(plugin.operators)
    operators = {operator.uri for operator in foo.list_operators()}  # loads the plugin folder as the App does
    assert {f"@sam2-plugins/sam2/{name}" for name in plugin.operators} <= operators
