"""`sam2-plugins fiftyone-plugin install|uninstall|path`: idempotent, FiftyOne's own plugins folder by default, and
never touching a folder or file it did not write."""

import fiftyone_helpers  # noqa: F401  (configures FiftyOne before it is imported)
from fiftyone_helpers import REPO_ROOT

import json
import py_compile

import fiftyone as fo
import fiftyone.operators as foo
import fiftyone.plugins as fop
import pytest

from sam2_plugins.cli import main
from sam2_plugins.fiftyone_plugin.plugin_folder import MARKER

pytestmark = pytest.mark.fiftyone


def plugin_command(capsys, *args: str) -> tuple[int, str, str]:
    """Run `sam2-plugins fiftyone-plugin ARGS`: (exit code, stdout, stderr)."""
    code = main(["fiftyone-plugin", *args])
    printed = capsys.readouterr()
    return code, printed.out, printed.err


@pytest.fixture
def fiftyone_plugins_dir(tmp_path, monkeypatch):
    """An empty plugins directory that FiftyOne is configured with (FIFTYONE_PLUGINS_DIR)."""
    plugins_dir = tmp_path / "plugins"
    plugins_dir.mkdir()
    monkeypatch.setattr(fo.config, "plugins_dir", str(plugins_dir))
    return plugins_dir


def test_install_into_fiftyones_plugins_dir_is_idempotent_and_fiftyone_loads_it(fiftyone_plugins_dir, capsys):
    folder = fiftyone_plugins_dir / "@sam2-plugins" / "sam2"
    code, out, err = plugin_command(capsys, "install")
    assert code == 0 and err == ""
    assert out == (
        f"Installed the FiftyOne plugin @sam2-plugins/sam2 in {folder}\n"
        "Restart a running FiftyOne App to see its operators\n"
    )
    assert (folder / "fiftyone.yml").read_bytes() == (REPO_ROOT / "fiftyone.yml").read_bytes()
    assert json.loads((folder / MARKER).read_text())["files"] == ["__init__.py", "fiftyone.yml"]
    written = {path.name: path.stat().st_mtime_ns for path in folder.iterdir()}
    assert plugin_command(capsys, "install") == (
        0,
        f"The FiftyOne plugin @sam2-plugins/sam2 is installed and up to date in {folder}\n",
        "",
    )
    assert {path.name for path in folder.iterdir()} == set(written)
    assert plugin_command(capsys, "path") == (0, f"{folder}\n", "")
    plugin = fop.get_plugin("@sam2-plugins/sam2")
    assert plugin.directory == str(folder)
    assert {f"@sam2-plugins/sam2/{name}" for name in plugin.operators} <= {op.uri for op in foo.list_operators()}


def test_install_warns_when_fiftyone_also_finds_another_copy(fiftyone_plugins_dir, capsys):
    (fiftyone_plugins_dir / "sam2-plugins").symlink_to(REPO_ROOT, target_is_directory=True)  # a checkout linked
    code, out, err = plugin_command(capsys, "install")
    assert code == 0 and out.startswith("Installed the FiftyOne plugin")
    assert err == (
        f"warning: FiftyOne also finds @sam2-plugins/sam2 in {fiftyone_plugins_dir / 'sam2-plugins'} and loads only "
        "one of them: remove the copies you do not want\n"
    )


def test_another_plugins_dir_says_how_fiftyone_finds_it(fiftyone_plugins_dir, tmp_path, capsys):
    elsewhere = tmp_path / "my plugins"
    code, out, _ = plugin_command(capsys, "install", "--plugins-dir", str(elsewhere))
    assert code == 0 and (elsewhere / "@sam2-plugins" / "sam2" / "__init__.py").is_file()
    assert f"set FIFTYONE_PLUGINS_DIR={elsewhere} for it to find this one" in out
    assert list(fiftyone_plugins_dir.iterdir()) == []


def test_a_folder_install_did_not_write_is_refused_and_left_alone(fiftyone_plugins_dir, capsys):
    folder = fiftyone_plugins_dir / "@sam2-plugins" / "sam2"
    folder.mkdir(parents=True)
    (folder / "fiftyone.yml").write_text("name: '@sam2-plugins/sam2'\n# my own copy\n")
    for action in ("install", "uninstall", "path"):
        code, out, err = plugin_command(capsys, action)
        assert code == 1 and out == ""
        assert err.startswith(f"sam2-plugins fiftyone-plugin {action}: error: ")
    assert (
        f"{folder} already exists and was not written by `sam2-plugins fiftyone-plugin install`"
        in (plugin_command(capsys, "install")[2])
    )
    assert (
        f"{folder} was not written by `sam2-plugins fiftyone-plugin install` (it has no {MARKER}): nothing "
        in (plugin_command(capsys, "uninstall")[2])
    )
    assert (folder / "fiftyone.yml").read_text().endswith("# my own copy\n")
    assert [path.name for path in folder.iterdir()] == ["fiftyone.yml"]


def test_uninstall_removes_only_what_install_wrote(fiftyone_plugins_dir, tmp_path, capsys):
    folder = fiftyone_plugins_dir / "@sam2-plugins" / "sam2"
    assert plugin_command(capsys, "install")[0] == 0
    py_compile.compile(str(folder / "__init__.py"), doraise=True)  # what Python writes when FiftyOne imports it
    assert list((folder / "__pycache__").glob("__init__.*.pyc"))
    (folder / "notes.txt").write_text("mine")
    victim = tmp_path / "victim.txt"
    victim.write_text("not the plugin's")
    marker = json.loads((folder / MARKER).read_text())
    (folder / MARKER).write_text(json.dumps({**marker, "files": [*marker["files"], "../../../victim.txt"]}))
    code, out, err = plugin_command(capsys, "uninstall")
    assert (code, err) == (0, "")
    assert out == (
        f"Removed what `sam2-plugins fiftyone-plugin install` wrote in {folder}; left the folder with what it did "
        "not: notes.txt\n"
    )
    assert [path.name for path in folder.iterdir()] == ["notes.txt"] and victim.read_text() == "not the plugin's"
    (folder / "notes.txt").unlink()
    assert plugin_command(capsys, "install")[0] == 0  # the empty folder left behind is taken
    assert plugin_command(capsys, "uninstall") == (
        0,
        f"Removed the FiftyOne plugin @sam2-plugins/sam2 from {folder}\n",
        "",
    )
    assert list(fiftyone_plugins_dir.iterdir()) == []
    plugin_command(capsys, "install")
    (folder / MARKER).write_text("{not json")
    code, out, err = plugin_command(capsys, "uninstall")
    assert (code, out) == (1, "") and f"{folder / MARKER} is not the list of files" in err
    assert sorted(path.name for path in folder.iterdir()) == [MARKER, "__init__.py", "fiftyone.yml"]
    (folder / MARKER).unlink()
    for path in folder.iterdir():
        path.unlink()
    assert plugin_command(capsys, "uninstall") == (
        0,
        f"The FiftyOne plugin @sam2-plugins/sam2 is not installed in {fiftyone_plugins_dir}: nothing to remove\n",
        "",
    )


def test_path_names_a_missing_or_outdated_install(fiftyone_plugins_dir, capsys):
    code, out, err = plugin_command(capsys, "path")
    assert (code, out) == (1, "")
    assert err == (
        f"sam2-plugins fiftyone-plugin path: error: the plugin is not installed in {fiftyone_plugins_dir}: run "
        "`sam2-plugins fiftyone-plugin install`\n"
    )
    plugin_command(capsys, "install")
    folder = fiftyone_plugins_dir / "@sam2-plugins" / "sam2"
    (folder / "fiftyone.yml").write_text((folder / "fiftyone.yml").read_text().replace("version: 0.1.0", "version: 0"))
    code, out, err = plugin_command(capsys, "path")
    assert (code, out) == (0, f"{folder}\n")
    assert err.startswith(f"warning: {folder} was written by another version of sam2-plugins: run `sam2-plugins")


def test_unwritable_or_unconfigured_plugins_dirs_are_clear_errors(tmp_path, monkeypatch, capsys):
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    code, out, err = plugin_command(capsys, "install", "--plugins-dir", str(a_file / "plugins"))
    assert (code, out) == (1, "")
    assert err.startswith(
        f"sam2-plugins fiftyone-plugin install: error: cannot write the plugin folder "
        f"{a_file / 'plugins' / '@sam2-plugins' / 'sam2'}: Not a directory; pass --plugins-dir a folder you can "
        "write to"
    )
    monkeypatch.setattr(fo.config, "plugins_dir", None)
    code, out, err = plugin_command(capsys, "install")
    assert (code, out) == (1, "")
    assert "FiftyOne has no plugins directory configured: set FIFTYONE_PLUGINS_DIR" in err
