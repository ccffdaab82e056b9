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


def dependencies_view(destination: Path, leave_out: tuple[str, ...] = ()) -> Path:
    """A folder of links to every package of the test venv except this project's editable install (and the
    packages whose names start with one of ``leave_out``)."""
    site_packages = Path(sysconfig.get_paths()["purelib"])
    destination.mkdir()
    for entry in site_packages.iterdir():
        if entry.name.startswith(("__editable__", "sam2_plugins-", *leave_out)) or entry.suffix == ".pth":
            continue
        (destination / entry.name).symlink_to(entry)
    return destination


def user_venv_with(wheel: Path, root: Path, leave_out: tuple[str, ...] = ()) -> Path:
    """The python of a fresh venv at ``root`` holding ``wheel``, whose dependencies are the test venv's."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", root / "venv"], check=True)
    python = root / "venv" / "bin" / "python"
    site_packages = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(site_packages) / "dependencies.pth").write_text(f"{dependencies_view(root / 'dependencies', leave_out)}\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", "--no-index", wheel],
        check=True,
        capture_output=True,
    )
    return python


def run(command: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    result = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel `pip wheel` builds from a copy of the checkout's files."""
    root = tmp_path_factory.mktemp("wheel")
    copy_source_tree(root / "src")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", root / "wheels"]
        + [root / "src"],
        check=True,
        capture_output=True,
    )
    (built,) = (root / "wheels").glob("sam2_plugins-*.whl")
    return built


def user_environment(python: Path, plugins_dir: Path) -> dict[str, str]:
    """The test database's FiftyOne settings, ``plugins_dir`` as FiftyOne's plugins folder, the venv first on PATH,
    no PYTHONPATH."""
    env = {key: value for key, value in worker_environment().items() if key != "PYTHONPATH"}
    env.update(FIFTYONE_PLUGINS_DIR=str(plugins_dir), PATH=f"{python.parent}{os.pathsep}{env['PATH']}")
    return env


@pytest.fixture(scope="module")
def user_venv(mongod, wheel, tmp_path_factory):
    """(python, environment, working folder outside the checkout, FiftyOne plugins dir) of a fresh venv with the
    wheel installed."""
    root = tmp_path_factory.mktemp("user_install")
    python = user_venv_with(wheel, root)
    (root / "fiftyone_plugins").mkdir()
    (root / "work").mkdir()
    return python, user_environment(python, root / "fiftyone_plugins"), root / "work", root / "fiftyone_plugins"


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


def test_without_fiftyone_the_cli_works_and_names_the_extra_to_install(wheel, tmp_path):
    """`pip install "sam2-plugins[napari]"`: FiftyOne is not there; its commands say how to get it."""
    python = user_venv_with(wheel, tmp_path, leave_out=("fiftyone",))
    env = user_environment(python, tmp_path / "plugins")
    assert run([python, "-c", "import importlib.util as u; print(u.find_spec('fiftyone'))"], env, tmp_path).stdout == (
        "None\n"
    )
    usage = run(["sam2-plugins", "--help"], {**env, "COLUMNS": "200"}, tmp_path).stdout
    for command in ("demo", "fiftyone-plugin"):
        assert f"{command} ".ljust(20) + '(unavailable: needs fiftyone; pip install "sam2-plugins[fiftyone]")' in usage
    for command in (["demo"], ["fiftyone-plugin", "install", "--plugins-dir", "x"]):
        failed = subprocess.run(["sam2-plugins", *command], env=env, cwd=tmp_path, capture_output=True, text=True)
        assert failed.returncode == 1 and failed.stdout == ""
        assert failed.stderr.startswith(f"sam2-plugins {command[0]}: needs fiftyone, which is not installed (")
        assert failed.stderr.endswith('): pip install "sam2-plugins[fiftyone]"\n')
    sample = "from sam2_plugins.sample_data import write_sav_val; write_sav_val('sav_val', num_videos=1)"
    run([python, "-c", sample], env, tmp_path)
    annotations = tmp_path / "sav_val" / "Annotations_6fps"
    shutil.copytree(annotations, tmp_path / "predictions")
    evaluate = ["sam2-plugins", "evaluate", "--gt_root", str(annotations), "--pred_root", str(tmp_path / "predictions")]
    scored = run(evaluate, env, tmp_path)
    assert "Global score: J&F: 100.0 J: 100.0 F: 100.0" in scored.stdout
    listed = run([python, "-m", "npe2", "list", "--format", "compact"], {**env, "COLUMNS": "200"}, tmp_path).stdout
    assert "  - sam2-plugins: 0.1.0 (" in listed


def test_a_missing_module_of_our_own_is_a_broken_install_not_a_missing_extra(monkeypatch):
    """Only a third-party module missing makes a front-end command 'unavailable'; a module of ours missing (a broken
    or half-upgraded install) surfaces as the error it is, not as advice to install an extra."""
    import importlib.metadata

    from sam2_plugins import cli

    class BrokenEntryPoint:
        name = "demo"

        def __init__(self, missing: str) -> None:
            self.missing = missing

        def load(self):
            raise ModuleNotFoundError(f"No module named {self.missing!r}", name=self.missing)

    for missing, raises in (("fiftyone", False), ("sam2_plugins.fiftyone_plugin.demo", True)):
        monkeypatch.setattr(
            importlib.metadata, "entry_points", lambda group, missing=missing: [BrokenEntryPoint(missing)]
        )
        if raises:
            with pytest.raises(ModuleNotFoundError, match="sam2_plugins.fiftyone_plugin.demo"):
                cli.build_parser()
        else:
            assert "needs fiftyone" in cli.build_parser().format_help()
