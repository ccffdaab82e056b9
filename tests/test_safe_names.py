"""Names from data checked before they become file or folder names: one plain component, never a path."""

import re

import numpy as np
import pytest

from sam2_plugins.cli import main
from sam2_plugins.masks import write_binary_png
from sam2_plugins.safe_names import path_inside, safe_component


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "is empty"),
        (".", "names a folder itself"),
        ("..", "names the parent folder"),
        ("../../x", "holds a path separator"),
        ("/etc", "holds a path separator"),
        ("a\\b", "holds a path separator"),
        ("sav_1\x00.png", r"holds the control character '\\x00'"),
        ("sav_1\n", r"holds the control character '\\n'"),
        ("sav\x7f", r"holds the control character '\\x7f'"),
        ("sav_\udcff", "holds bytes that are not UTF-8"),
        ("sav\u200b1", r"holds the invisible character '\\u200b'"),
        (" sav_1", r"starts or ends with a space \(kept by some file systems, dropped by others\)"),
        (".sav_1.partial", r"starts with '\.' \(a hidden name, like the temporary files written beside videos\)"),
        ("...", r"starts with '\.' \(a hidden name, like the temporary files written beside videos\)"),
        ("sav_1\t", r"holds the control character '\\t'"),
        ("v" * 256, "is longer than 255 bytes"),
        ("é" * 128, "is longer than 255 bytes"),  # 128 characters, 256 bytes
        (7, "is of type int, not text"),
    ],
)
def test_a_name_that_is_not_one_plain_component_is_refused_naming_it_and_the_fix(name, problem):
    with pytest.raises(ValueError) as raised:
        safe_component(name, "video id on line 3 of sav_val.txt")
    assert re.fullmatch(
        f"video id on line 3 of sav_val.txt {re.escape(repr(name))} {problem}, so it cannot name a file or folder; "
        "rename it to a plain name such as 'sav_000001' or '001'",
        str(raised.value),
    )


@pytest.mark.parametrize("name", ["sav_000001", "001", "auto_003", "my video", "vidéo", "v.1", "v" * 255])
def test_plain_names_pass_unchanged(name, tmp_path):
    assert safe_component(name, "video id") == name
    (tmp_path / name).mkdir()  # and the file system takes them as one folder
    assert [p.name for p in tmp_path.iterdir()] == [name]


def test_path_inside_follows_links_and_refuses_what_leads_outside(tmp_path):
    root = tmp_path / "out"
    (root / "v").mkdir(parents=True)
    (root / "inner").symlink_to(root / "v", target_is_directory=True)
    (root / "outer").symlink_to(tmp_path, target_is_directory=True)
    assert path_inside(root, root / "v" / "001") == root / "v" / "001"
    assert path_inside(root, root / "inner" / "001") == root / "inner" / "001"
    with pytest.raises(ValueError, match=rf"{root / 'outer' / '001'}: leads to {tmp_path / '001'}, outside {root}"):
        path_inside(root, root / "outer" / "001")


@pytest.mark.parametrize(
    ("video", "obj", "named"),
    [("sav\n1", "001", r"gt: video folder 'sav\\n1'"), ("sav_1", "0\x1b1", r"gt/sav_1: object folder '0\\x1b1'")],
)
def test_the_cli_evaluator_refuses_folder_names_that_would_break_results_csv(tmp_path, capsys, video, obj, named):
    mask = np.zeros((4, 4), bool)
    for root in ("gt", "pred"):
        (tmp_path / root / video / obj).mkdir(parents=True)
        for frame in ("00000", "00001"):
            write_binary_png(tmp_path / root / video / obj / f"{frame}.png", mask)
    argv = ["evaluate", "--gt_root", str(tmp_path / "gt"), "--pred_root", str(tmp_path / "pred"), "-q"]
    assert main(argv) == 1
    assert re.fullmatch(
        f"sam2-plugins evaluate: error: {re.escape(str(tmp_path))}/{named} holds the control character .*, so it "
        "cannot name a file or folder; rename it to a plain name such as 'sav_000001' or '001'\n",
        capsys.readouterr().err,
    )
    assert not (tmp_path / "pred" / "results.csv").exists()
