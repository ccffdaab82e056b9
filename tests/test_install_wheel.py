"""A user's install: the wheel built from this checkout, installed into a fresh venv that sees the already-installed
dependencies but not the source tree, then `sam2-plugins fiftyone-plugin install`, FiftyOne's and npe2's listings
and one operator run, all from outside the repository."""

import fiftyone_helpers  # noqa: F401  (configures FiftyOne before it is imported)
from fiftyone_helpers import REPO_ROOT, mongod, worker_environment  # noqa: F401

import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import fiftyone as fo
import pytest
import yaml

pytestmark = pytest.mark.fiftyone

PLUGIN = "@sam2-plugins/sam2"


def copy_source_tree(destination: Path) -> None:
    """What a fresh clone holds (tracked and untracked, not ignored, files of the checkout; links kept as links):
    the wheel is built from this copy, so no build output of the checkout can slip into it."""
    listed = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source, target = REPO_ROOT / name, destination / name
        if not (source.exists() or source.is_symlink()):  # deleted in the checkout, not yet committed
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            target.symlink_to(os.readlink(source))
        else:
            shutil.copy2(source, target)


def dependencies_view(destination: Path) -> Path:
    """A folder of links to every package of the test venv except this project's editable install."""
    site_packages = Path(sysconfig.get_paths()["purelib"])
    destination.mkdir()
    for entry in site_packages.iterdir():
        if entry.name.startswith(("__editable__", "sam2_plugins-")) or entry.suffix == ".pth":
            continue
        (destination / entry.name).symlink_to(entry)
    return destination


def run(command: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    result = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def user_venv(mongod, tmp_path_factory):
    """(python, environment, working folder, plugins dir) of a fresh venv with the wheel installed."""
    root = tmp_path_factory.mktemp("user_install")
    copy_source_tree(root / "src")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", root / "wheels"]
        + [root / "src"],
        check=True,
        capture_output=True,
    )
    (wheel,) = (root / "wheels").glob("sam2_plugins-*.whl")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", root / "venv"], check=True)
    python = root / "venv" / "bin" / "python"
    site_packages = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(site_packages) / "dependencies.pth").write_text(f"{dependencies_view(root / 'dependencies')}\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", "--no-index", wheel],
        check=True,
        capture_output=True,
    )
    plugins_dir = root / "fiftyone_plugins"
    plugins_dir.mkdir()
    env = {key: value for key, value in worker_environment().items() if key != "PYTHONPATH"}
    env.update(FIFTYONE_PLUGINS_DIR=str(plugins_dir), PATH=f"{python.parent}{os.pathsep}{env['PATH']}")
    (root / "work").mkdir()
    return python, env, root / "work", plugins_dir


def test_the_wheel_carries_the_plugin_card_and_imports_from_the_venv(user_venv):
    python, env, cwd, _ = user_venv
    printed = run([python, "-c", "import sam2_plugins; print(sam2_plugins.__file__)"], env, cwd).stdout
    package = Path(printed.strip())
    assert package.is_relative_to(python.parent.parent) and not package.is_relative_to(REPO_ROOT)
    shipped = package.parent / "fiftyone_plugin" / "fiftyone.yml"
    assert not shipped.is_symlink() and shipped.read_bytes() == (REPO_ROOT / "fiftyone.yml").read_bytes()


def test_fiftyone_plugin_install_lists_and_runs_our_operators(user_venv, tmp_path):
    python, env, cwd, plugins_dir = user_venv
    folder = plugins_dir / "@sam2-plugins" / "sam2"
    installed = run(["sam2-plugins", "fiftyone-plugin", "install"], env, cwd).stdout
    assert f"Installed the FiftyOne plugin {PLUGIN} in {folder}" in installed

    fiftyone_cli = [python, "-c", "import sys; from fiftyone.core.cli import main; sys.exit(main())"]
    listed = run([*fiftyone_cli, "operators", "list", "--no-builtins", "--include-unlisted"], env, cwd).stdout
    card = yaml.safe_load((REPO_ROOT / "fiftyone.yml").read_text())
    for name in card["operators"] + card["panels"]:
        assert f"{PLUGIN}/{name}" in listed

    script = textwrap.dedent(
        """
        import sys
        import fiftyone as fo
        import fiftyone.operators as foo
        import fiftyone.plugins as fop
        from sam2_plugins.sample_data import write_sav_val

        root, name = sys.argv[1:]
        (video,) = write_sav_val(root, num_videos=1, num_frames=5)
        result = foo.execute_operator(
            "@sam2-plugins/sam2/import_sav", {"params": {"dataset_dir": root, "dataset_name": name}}
        )
        if result.error:
            sys.exit(result.error)
        print(fop.find_plugin("@sam2-plugins/sam2"), sys.modules["sam2_plugins"].__file__, video.video_id, sep="\\n")
        """
    )
    ran = run([python, "-c", script, str(tmp_path / "sav_val"), "wheel-import"], env, cwd).stdout.splitlines()
    assert Path(ran[0]) == folder and not Path(ran[1]).is_relative_to(REPO_ROOT)
    dataset = fo.load_dataset("wheel-import")  # the same database: the dataset the operator made
    assert dataset.media_type == "video" and dataset.values("video_id") == [ran[2]]
    assert dataset.count("frames.ground_truth.detections") > 0
    fo.delete_dataset("wheel-import")


def test_napari_lists_the_plugin(user_venv):
    python, env, cwd, _ = user_venv
    listed = run([python, "-m", "npe2", "list", "--format", "compact"], {**env, "COLUMNS": "200"}, cwd).stdout
    assert "  - sam2-plugins: 0.1.0 (" in listed
