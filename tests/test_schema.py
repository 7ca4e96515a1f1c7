"""flatlib.schema: torch-free, its defaults are params.yaml's, and the names it checks are the registries'."""
import dataclasses
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from flatlib import schema
from flatlib.config import load_yaml

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("module", ["flatlib.schema", "flatlib.vocabulary", "flatlib.layout", "flatlib.config"])
def test_reading_params_imports_no_torch(module):
    """The report, the notebooks and every stage read params.yaml without loading torch or torch-fidelity."""
    code = (f"import sys, {module}; from flatlib.schema import load_params; "
            f"load_params({str(ROOT / 'params.yaml')!r}); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torch_fidelity', 'yaml')))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


def _sections(cls, values: dict, where: str):
    """(where, dataclass, params.yaml's values) of every section, nested sections included."""
    yield where, cls, values
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        kind = hints[field.name]
        if isinstance(kind, type) and issubclass(kind, schema.StrictConfig) and field.name in values:
            yield from _sections(kind, values[field.name], f"{where}.{field.name}")


def test_every_default_is_the_value_params_yaml_gives():
    """A dataclass default either equals params.yaml's value or does not exist (no second, silent default)."""
    differ = []
    for where, cls, values in _sections(schema.Params, load_yaml(ROOT / "params.yaml"), "params"):
        for field in dataclasses.fields(cls):
            if field.default is not dataclasses.MISSING:
                default = field.default
            elif field.default_factory is not dataclasses.MISSING:
                default = field.default_factory()
            else:
                continue
            if isinstance(default, schema.StrictConfig):
                continue
            if field.name not in values or values[field.name] != default:
                differ.append(f"{where}.{field.name}: default {default!r}, params.yaml {values.get(field.name)!r}")
    assert not differ


def test_the_check_catches_a_disagreeing_default(monkeypatch):
    monkeypatch.setattr(schema.FlatnessConfig.__dataclass_fields__["t_max"], "default", 999)
    with pytest.raises(AssertionError, match="params.flatness.t_max: default 999"):
        test_every_default_is_the_value_params_yaml_gives()


def test_the_names_schema_checks_are_the_implementations():
    """The torch-free schema names what torch-side dicts implement: one spelling of each, checked here."""
    from flatlib.measure.exposure import AGGREGATES
    from flatlib.measure.quant import LAYER_TYPES

    assert tuple(AGGREGATES) == schema.EXPOSURE_AGGREGATES
    assert tuple(LAYER_TYPES) == schema.QUANT_LAYER_TYPES


def test_run_folder_configs_read_through_the_schema(tmp_path):
    """A run folder's config.yaml is written and read by the one YAML library (ruamel, YAML 1.2)."""
    from flatlib.config import dump_yaml

    run = schema.load_params(ROOT / "params.yaml").run_config("sam", seed=1)
    (tmp_path / "config.yaml").write_text(dump_yaml(run.to_dict()))
    assert schema.load_run_config(tmp_path / "config.yaml") == run
    assert "compile: off" in (tmp_path / "config.yaml").read_text()  # YAML 1.2: a string, not false
