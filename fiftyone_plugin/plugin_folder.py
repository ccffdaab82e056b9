"""``sam2-plugins fiftyone-plugin install|uninstall|path``: the plugin folder FiftyOne loads from a pip install.

FiftyOne finds a plugin as a folder holding a ``fiftyone.yml`` under its plugins directory (``fo.config.plugins_dir``,
``FIFTYONE_PLUGINS_DIR``). The wheel carries the repository's ``fiftyone.yml`` as package data; ``install`` writes it
and an ``__init__.py`` delegating to this package into ``<plugins dir>/@sam2-plugins/sam2`` (where FiftyOne itself
puts a plugin of that name) with a marker listing what it wrote, so ``uninstall`` removes exactly that.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from sam2_plugins.atomic import atomic_write

MARKER = ".sam2-plugins-install.json"
"""Written into the plugin folder by ``install``: the files it wrote; ``uninstall`` touches nothing else."""
INSTALL_COMMAND = "sam2-plugins fiftyone-plugin install"

PLUGIN_INIT = f'''"""FiftyOne plugin written by `{INSTALL_COMMAND}`: it lives in the installed sam2_plugins package.

`sam2-plugins fiftyone-plugin uninstall` removes this folder; rerun install after upgrading sam2-plugins.
"""

from sam2_plugins.fiftyone_plugin import register  # noqa: F401
'''


class PluginFolderError(RuntimeError):
    """The plugin folder cannot be written, removed or found; the message names the folder and the fix."""


@dataclass(frozen=True)
class PluginFolder:
    """Where the plugin goes inside a FiftyOne plugins directory, and the files ``install`` writes there."""

    plugins_dir: Path

    @property
    def name(self) -> str:
        return plugin_name()

    @property
    def path(self) -> Path:
        return self.plugins_dir.joinpath(*self.name.split("/"))

    def contents(self) -> dict[str, str]:
        """``{file name: text}`` of the folder as this version of the package writes it."""
        return {"fiftyone.yml": plugin_card(), "__init__.py": PLUGIN_INIT}

    def is_installed(self) -> bool:
        return (self.path / MARKER).is_file()

    def is_vacant(self) -> bool:
        """Nothing there, or an empty folder: install may write, uninstall has nothing to remove."""
        if self.path.is_symlink():
            return False
        return not self.path.exists() or (self.path.is_dir() and not any(self.path.iterdir()))

    def is_current(self) -> bool:
        """Installed, and its files are those this version of the package writes."""
        return self.is_installed() and all(
            (self.path / name).is_file() and (self.path / name).read_text(encoding="utf-8") == text
            for name, text in self.contents().items()
        )


def plugin_card() -> str:
    """The text of the plugin's ``fiftyone.yml`` (the repository's top-level file, shipped as package data)."""
    return files(__package__).joinpath("fiftyone.yml").read_text(encoding="utf-8")


def plugin_name() -> str:
    """The plugin's name in its ``fiftyone.yml``: where FiftyOne installs it, and the prefix of our operators' URIs."""
    import yaml

    return yaml.safe_load(plugin_card())["name"]


def fiftyone_plugins_dir() -> Path:
    """FiftyOne's plugins directory (``FIFTYONE_PLUGINS_DIR`` or ``plugins_dir`` of its config)."""
    import fiftyone as fo

    if not fo.config.plugins_dir:
        raise PluginFolderError(
            "FiftyOne has no plugins directory configured: set FIFTYONE_PLUGINS_DIR (or plugins_dir in "
            "~/.fiftyone/config.json) to a folder, or pass --plugins-dir"
        )
    return Path(fo.config.plugins_dir).expanduser()


def folders_fiftyone_loads() -> list[Path]:
    """The folders FiftyOne, as configured, finds this plugin in (enabled; the first one is the one it loads)."""
    import fiftyone.plugins as fop

    name = plugin_name()
    return [Path(plugin.directory) for plugin in fop.list_plugins(shadowed="all") if plugin.name == name]


def install_plugin(plugins_dir: Path) -> PluginFolder:
    """Write (or bring up to date) the plugin folder inside ``plugins_dir``; a folder this command did not write is
    refused, never overwritten."""
    folder = PluginFolder(plugins_dir)
    target = folder.path
    if not (folder.is_vacant() or folder.is_installed()):
        raise PluginFolderError(
            f"{target} already exists and was not written by `{INSTALL_COMMAND}` (it has no {MARKER}), so it is "
            "left as it is. If it is another copy of this plugin FiftyOne already finds it; else remove it or "
            "pass --plugins-dir another folder"
        )
    contents = folder.contents()
    try:
        target.mkdir(parents=True, exist_ok=True)
        _write(target / MARKER, json.dumps({"written_by": INSTALL_COMMAND, "files": sorted(contents)}, indent=1))
        for name, text in contents.items():
            _write(target / name, text)
    except OSError as error:
        raise PluginFolderError(
            f"cannot write the plugin folder {target}: {error.strerror or error}; pass --plugins-dir a folder you "
            "can write to and set FIFTYONE_PLUGINS_DIR to it"
        ) from error
    return folder


def _write(path: Path, text: str) -> None:
    with atomic_write(path) as partial:
        partial.write_text(text, encoding="utf-8")


def uninstall_plugin(plugins_dir: Path) -> list[Path]:
    """Remove the files ``install`` wrote into the plugin folder (and the folder when that empties it); returns the
    entries left because they are not ``install``'s."""
    folder = PluginFolder(plugins_dir)
    target = folder.path
    if not folder.is_installed():
        raise PluginFolderError(
            f"{target} was not written by `{INSTALL_COMMAND}` (it has no {MARKER}): nothing removed"
            if target.exists()
            else f"the plugin is not installed in {plugins_dir} ({target} does not exist): nothing removed"
        )
    try:
        written = json.loads((target / MARKER).read_text(encoding="utf-8"))["files"]
    except (ValueError, KeyError, TypeError) as error:
        raise PluginFolderError(
            f"{target / MARKER} is not the list of files `{INSTALL_COMMAND}` writes ({error!r}): nothing removed"
        ) from error
    try:
        for name in written:
            if name not in folder.contents():  # the marker may name only files install writes: never a path elsewhere
                continue
            (target / name).unlink(missing_ok=True)
            if name.endswith(".py"):  # Python's compiled copies of it, made when FiftyOne imported it
                for compiled in (target / "__pycache__").glob(f"{name.removesuffix('.py')}.*.pyc"):
                    compiled.unlink()
        _remove_if_empty(target / "__pycache__")
        (target / MARKER).unlink()
        left = sorted(target.iterdir())
        if not left:
            target.rmdir()
            for parent in target.relative_to(plugins_dir).parents[:-1]:  # "@sam2-plugins" when nothing else is in it
                _remove_if_empty(plugins_dir / parent)
    except OSError as error:
        raise PluginFolderError(
            f"cannot remove the plugin folder {target}: {error.strerror or error} ({error.filename})"
        ) from error
    return left


def _remove_if_empty(folder: Path) -> None:
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()


def add_fiftyone_plugin_command(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "fiftyone-plugin",
        help="install, uninstall or locate the FiftyOne plugin folder of this installation",
        description="FiftyOne loads plugins from folders in its plugins directory (FIFTYONE_PLUGINS_DIR, default "
        "~/fiftyone/__plugins__). `install` writes the @sam2-plugins/sam2 plugin there (its fiftyone.yml and an "
        "__init__.py that imports this package; no network), `uninstall` removes what install wrote, `path` "
        "prints the folder. Rerun install after upgrading sam2-plugins.",
    )
    parser.add_argument("action", choices=("install", "uninstall", "path"))
    parser.add_argument(
        "--plugins-dir", type=Path, help="FiftyOne plugins directory to use (default: FiftyOne's, as configured)"
    )
    parser.set_defaults(run=run_fiftyone_plugin_command)


def run_fiftyone_plugin_command(args: argparse.Namespace) -> int:
    try:
        plugins_dir = (args.plugins_dir or fiftyone_plugins_dir()).absolute()
        if args.action == "install":
            _report_install(plugins_dir)
        elif args.action == "uninstall":
            _report_uninstall(plugins_dir)
        else:
            _report_path(plugins_dir)
    except PluginFolderError as error:
        print(f"sam2-plugins fiftyone-plugin {args.action}: error: {error}", file=sys.stderr)
        return 1
    return 0


def _report_install(plugins_dir: Path) -> None:
    was_current = PluginFolder(plugins_dir).is_current()
    folder = install_plugin(plugins_dir)
    if was_current:
        print(f"The FiftyOne plugin {folder.name} is installed and up to date in {folder.path}")
    else:
        print(f"Installed the FiftyOne plugin {folder.name} in {folder.path}")
    if not _is_fiftyones(plugins_dir):
        print(
            f"FiftyOne looks for plugins elsewhere: set FIFTYONE_PLUGINS_DIR={plugins_dir} for it to find this one "
            f"(e.g. `FIFTYONE_PLUGINS_DIR={plugins_dir} fiftyone app launch`)"
        )
        return
    others = [path for path in folders_fiftyone_loads() if path.resolve() != folder.path.resolve()]
    if others:
        print(
            f"warning: FiftyOne also finds {folder.name} in {', '.join(map(str, others))} and loads only one of "
            "them: remove the copies you do not want",
            file=sys.stderr,
        )
    if not was_current:
        print("Restart a running FiftyOne App to see its operators")


def _is_fiftyones(plugins_dir: Path) -> bool:
    """Whether ``plugins_dir`` is the plugins directory FiftyOne is configured with."""
    try:
        return fiftyone_plugins_dir().resolve() == plugins_dir.resolve()
    except PluginFolderError:
        return False


def _report_uninstall(plugins_dir: Path) -> None:
    folder = PluginFolder(plugins_dir)
    if folder.is_vacant():
        print(f"The FiftyOne plugin {folder.name} is not installed in {plugins_dir}: nothing to remove")
        return
    left = uninstall_plugin(plugins_dir)
    if left:
        names = ", ".join(path.name for path in left)
        print(f"Removed what `{INSTALL_COMMAND}` wrote in {folder.path}; left the folder with what it did not: {names}")
    else:
        print(f"Removed the FiftyOne plugin {folder.name} from {folder.path}")


def _report_path(plugins_dir: Path) -> None:
    folder = PluginFolder(plugins_dir)
    if not folder.is_installed():
        raise PluginFolderError(f"the plugin is not installed in {plugins_dir}: run `{INSTALL_COMMAND}`")
    print(folder.path)
    if not folder.is_current():
        print(
            f"warning: {folder.path} was written by another version of sam2-plugins: run `{INSTALL_COMMAND}` again",
            file=sys.stderr,
        )
