"""The package's layers: every import points down (or sideways within a layer), never up. From the bottom:
flatlib/*.py (schema, config, vocabulary, layout and small utilities), model, training, measure, gd (published
checkpoints), report, stages (the DVC stages' commands)."""
from pathlib import Path

from flatlib.sources import ROOT, flatlib_imports

LAYERS = ("flatlib", "flatlib.model", "flatlib.training", "flatlib.measure", "flatlib.gd", "flatlib.report",
          "flatlib.stages")


def layer_of(module: str) -> int:
    """The layer of a dotted module name (a module directly in flatlib/ is the bottom layer)."""
    package = module.rsplit(".", 1)[0] if module.count(".") > 1 or module in LAYERS[1:] else "flatlib"
    return LAYERS.index(module if module in LAYERS else package)


def upward_imports() -> list[str]:
    found = []
    for file in sorted((ROOT / "flatlib").rglob("*.py")):
        module = ".".join(file.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for imported in flatlib_imports(file):
            if layer_of(imported) > layer_of(module):
                found.append(f"{module} -> {imported}")
    return found


def test_every_package_is_a_layer():
    packages = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "flatlib").rglob("__init__.py")}
    assert packages == set(LAYERS)


def test_no_import_runs_back_up():
    assert upward_imports() == []


def test_the_check_sees_an_upward_import(tmp_path, monkeypatch):
    assert layer_of("flatlib.schema") == 0 and layer_of("flatlib.stages.runs") == 6
    assert layer_of("flatlib.model") == 1 and layer_of("flatlib.measure.stats") == 3
    bad = tmp_path / "bad.py"
    bad.write_text("from flatlib.stages import runs\n")
    assert layer_of(next(iter(flatlib_imports(bad)))) > layer_of("flatlib.training.trainer")
