"""Names from data checked before they become file or folder names: one plain component, never a path."""

import re

import pytest

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


@pytest.mark.parametrize("name", ["sav_000001", "001", "auto_003", "my video", "vidéo", "...", ".hidden", "v" * 255])
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
