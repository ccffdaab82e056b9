"""The architecture the design card draws: front-ends -> library -> model, and no import cycle anywhere."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = {  # import name -> folder, as pyproject.toml maps them
    "sam2_plugins": REPO / "sam2_plugins",
    "sam2_plugins.model": REPO / "model",
    "sam2_plugins.fiftyone_plugin": REPO / "fiftyone_plugin",
    "sam2_plugins.napari_plugin": REPO / "napari_plugin",
}
FRONT_ENDS = ("sam2_plugins.fiftyone_plugin", "sam2_plugins.napari_plugin")
LIBRARY_SUBPACKAGES = {  # modules of the library's layer (sam2_plugins) in folders of their own
    "sam2_plugins.datasets": REPO / "sam2_plugins" / "datasets",
    "sam2_plugins.training": REPO / "sam2_plugins" / "training",
}


def _modules() -> dict[str, Path]:
    modules = {}
    for package, folder in {**PACKAGES, **LIBRARY_SUBPACKAGES}.items():
        for path in folder.glob("*.py"):
            modules[package if path.stem == "__init__" else f"{package}.{path.stem}"] = path
    return modules


def _layer(module: str) -> str:
    return next(p for p in sorted(PACKAGES, key=len, reverse=True) if module == p or module.startswith(p + "."))


def _imports(module: str, path: Path, known: set[str]) -> set[str]:
    """Project modules that `module` imports anywhere in its file (top level or inside functions), except under
    ``if TYPE_CHECKING:`` (names for type hints only, never imported when the code runs)."""
    package = module if path.stem == "__init__" else module.rpartition(".")[0]
    found = set()
    tree = ast.parse(path.read_text())
    type_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"
        for inner in ast.walk(node)
    }
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {name for name in names if name in known and name != module}
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, set(modules)) for name, path in modules.items()}


def test_layers_point_one_way():
    wrong = []
    for module, imported in _graph().items():
        layer = _layer(module)
        for target in imported:
            target_layer = _layer(target)
            if layer == "sam2_plugins.model" and target_layer != layer:
                wrong.append(f"{module} (model) imports {target}")
            if layer == "sam2_plugins" and target_layer in FRONT_ENDS:
                wrong.append(f"{module} (library) imports front-end {target}")
            if layer in FRONT_ENDS and target_layer in FRONT_ENDS and target_layer != layer:
                wrong.append(f"{module} imports the other front-end's {target}")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles():
    graph = _graph()
    state: dict[str, str] = {}

    def visit(module: str, trail: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                cycle = trail[trail.index(target) :] + [target] if target in trail else [module, target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target, trail + [target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def _loaded_after(code: str) -> set[str]:
    script = f"import sys\n{code}\nimport json\nprint(json.dumps(sorted(sys.modules)))"
    output = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=REPO)
    return {name.split(".")[0] if not name.startswith("sam2_plugins") else name for name in json.loads(output.stdout)}


def test_the_model_core_loads_no_file_formats_or_front_ends():
    loaded = _loaded_after("import sam2_plugins.model as m; m.Sam2VideoPredictor; m.VideoSession; m.build_model")
    assert "torch" in loaded
    assert not loaded & {"av", "tifffile", "fiftyone", "napari", "qtpy", "sam2_plugins.frames"}


def test_checkpoint_names_load_without_torch():
    loaded = _loaded_after("from sam2_plugins.model.official import DEFAULT_CHECKPOINT, OFFICIAL_CHECKPOINTS")
    assert "torch" not in loaded


def test_the_library_loads_neither_front_end():
    library = [name for name in _modules() if _layer(name) == "sam2_plugins"]
    loaded = _loaded_after("\n".join(f"import {name}" for name in library))
    assert {"sam2_plugins.frames", "sam2_plugins.datasets", "sam2_plugins.evaluate"} <= loaded
    assert not loaded & {"fiftyone", "napari", *FRONT_ENDS}
