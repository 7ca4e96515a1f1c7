"""Bad input never reaches a traceback (issue 22): every numeric field of every params.yaml section out of its
declared range, and parameter files that are not YAML files, end the preflight with one line and exit 2."""
import dataclasses
import math
import re
import subprocess
import sys
import typing
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flatlib.stages import preflight
from flatlib.config import StrictConfig, field_range
from flatlib.schema import Params

ROOT = Path(__file__).resolve().parent.parent
BASE = yaml.safe_load((ROOT / "params.yaml").read_text())


def ranged_fields() -> list[tuple[tuple[str, ...], type, typing.Any]]:
    """(key path, numeric type, Range) of every field of Params and its sections that declares a range."""
    found = []

    def walk(cls, path):
        hints = typing.get_type_hints(cls)
        for field in dataclasses.fields(cls):
            kind = hints[field.name]
            if isinstance(kind, type) and issubclass(kind, StrictConfig):
                walk(kind, (*path, field.name))
            elif field_range(field) is not None:
                found.append(((*path, field.name), kind, field_range(field)))

    walk(Params, ())
    return found


FIELDS = ranged_fields()


def out_of_range(kind, bounds) -> st.SearchStrategy:
    """Numbers outside ``bounds`` (a field's Range; its ``also`` values are valid), NaN for a float, and values
    of another type."""
    whole = kind is int
    options = [st.sampled_from(["many", True, [], {}])]
    if not whole:
        options.append(st.just(math.nan))
    if bounds.low is not None:
        if whole:
            options.append(st.integers(max_value=math.ceil(bounds.low) - (0 if bounds.low_open else 1)))
        else:
            options.append(st.floats(max_value=bounds.low, exclude_max=not bounds.low_open, allow_nan=False))
    if bounds.high is not None:
        if whole:
            options.append(st.integers(min_value=math.floor(bounds.high) + (0 if bounds.high_open else 1)))
        else:
            options.append(st.floats(min_value=bounds.high, exclude_min=not bounds.high_open, allow_nan=False))
    return st.one_of(options).filter(lambda value: value not in bounds.also or isinstance(value, bool))


@st.composite
def invalid_params(draw) -> tuple[str, dict]:
    """params.yaml with one numeric field of one section out of range (a list field: a list of one bad item)."""
    path, kind, bounds = draw(st.sampled_from(FIELDS))
    value = draw(out_of_range(float if kind is list else kind, bounds))
    value = [value] if kind is list else value
    params = yaml.safe_load(yaml.safe_dump(BASE))
    node = params
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    return ".".join(path), params


def test_every_numeric_field_declares_its_range():
    keys = {".".join(path) for path, _, _ in FIELDS}
    assert {"fid.reference_size", "flatness.draws", "flatness.sigmas", "quant.bits", "exposure.num",
            "featurenet.epochs", "train.ema_rate", "flatness.hessian_iters", "flatness.curve_points",
            "fid.batch_size", "sample.batch_size", "launch.nproc_per_node", "data.holdout", "model.num_channels",
            "optim.rho", "rho_sweep.rhos", "flatness.t_min", "flatness.t_max"} <= keys
    assert len(keys) >= 60  # every numeric field of every section


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=invalid_params())
def test_any_out_of_range_value_is_one_line_and_exit_2(tmp_path, capsys, case):
    key, params = case
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        preflight.main(["--params", str(path), "--workspace", str(tmp_path)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err
    assert err.startswith("flatlib.stages.preflight: error: ") and len(err.splitlines()) == 1, err
    assert key in err, err


def test_a_bad_value_from_the_command_line_is_one_line(tmp_path):
    params = yaml.safe_load(yaml.safe_dump(BASE))
    params["model"]["num_channels"] = 0  # was a traceback deep in torch
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    result = subprocess.run([sys.executable, "-m", "flatlib.stages.preflight", "--params", str(path), "--workspace",
                             str(tmp_path)], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 2 and result.stderr == (
        f"flatlib.stages.preflight: error: {path}: params.model.num_channels must be >= 1, got 0\n")


@pytest.mark.parametrize("override, message", [
    (("data", "holdout", 5000), "data.holdout 5000 must be below the 1797 images of digits"),
    (("fid", "reference_size", 1501), "fid.reference_size 1501 must be at most the 1500 training images of digits"),
    (("launch", "nproc_per_node", 4096), "launch.nproc_per_node is 4096 but there are"),
])
def test_relations_with_the_data_and_the_machine(tmp_path, override, message):
    params = yaml.safe_load(yaml.safe_dump(BASE))
    section, key, value = override
    params[section][key] = value
    assert any(message in problem for problem in preflight.problems(params, tmp_path))


def test_the_disk_check_counts_the_dvc_cache_copy(tmp_path, monkeypatch):
    """In a DVC repository whose cache stores copies, the profile needs its outputs twice on that disk."""
    params = yaml.safe_load(yaml.safe_dump(BASE))
    needed, _ = preflight.disk_needed(Params.from_dict(params), tmp_path)
    usage = type("Usage", (), {"free": needed + needed // 2})()
    monkeypatch.setattr(preflight.shutil, "disk_usage", lambda path: usage)
    assert preflight.problems(params, tmp_path) == []  # no DVC repository: the outputs once
    subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=tmp_path, check=True)
    assert preflight.dvc_cache(tmp_path) == tmp_path / ".dvc" / "cache" / "files" / "md5"
    found = preflight.problems(params, tmp_path)
    assert len(found) == 1 and "and DVC's cache copy of them" in found[0] and str(tmp_path) in found[0]


# ------------------------------------------------------------------------------------------- files
@pytest.mark.parametrize("content, message", [
    (b"train:\n  steps: 10\n  batch_size: [1,\n", r"params.yaml, line 4, column 1: expected the node content, but found '<stream end>'"),
    (b"train:\n  steps: 10\n steps: 20\n", r"params.yaml, line 3, column 2: expected <block end>"),
    (b"seed: 0\ntrain:\n  steps: 10\n  steps: 20\n", r'params.yaml, line 4, column 3: found duplicate key "steps"'),
    (b"seed: 0\n# caf\xe9\n", r"params.yaml, line 2: not UTF-8 \(byte 0xe9 at offset 13\)"),
    (b"- a list\n", r"params.yaml must be a mapping of sections, got list"),
    (None, r"params.yaml is a folder, not a file"),
])
def test_a_parameter_file_that_is_not_yaml_is_one_line(tmp_path, capsys, content, message):
    path = tmp_path / "params.yaml"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    with pytest.raises(SystemExit) as exit_info:
        preflight.main(["--params", str(path), "--workspace", str(tmp_path)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.startswith(f"flatlib.stages.preflight: error: {'parameter file ' if content is None else ''}{path}")
    assert re.search(message, err), err
