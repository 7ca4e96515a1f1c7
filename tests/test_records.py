"""flatlib.measure.records: every metrics file of the default run fits its schema and is rewritten to the same
bytes, a misspelt, missing or mistyped key is one line naming the file and the key, and reading loads no torch."""
import copy
import subprocess
import sys
from pathlib import Path

import pytest

from flatlib import atomic, layout
from flatlib.errors import CorruptFileError
from flatlib.measure import records
from flatlib.stages import summary
from tests.test_report import make_workspace

ROOT = Path(__file__).resolve().parent.parent

#: how each writer called atomic.write_json before flatlib.measure.records (the bytes every kind must keep)
FORMAT = {"train": dict(indent=2), "preflight": dict(indent=1), "summary": dict(indent=1)}

SCORES = {"fid": [30.1, 29.9], "fid_all": 30.0, "kid_mean": [0.1, 0.1], "kid_mean_all": 0.1}
LPF = {"lpf": 0.904, "std_err": 1e-4, "base_loss": 0.9, "mc_sharpness": 0.004}
#: kind -> (a record as its writer writes it, the key path of a required key in it)
RECORDS = {
    "fid": ({"extractor": "featurenet", "num_samples": 16, "sets": 2, "rows": {"raw": {"T20": SCORES}}},
            ("rows", "raw", "T20", "fid")),
    "quant": ({"respacing": 20, "rows": {"raw": {"32": dict(SCORES, weight_rel_error=0.0)}}},
              ("rows", "raw", "32", "weight_rel_error")),
    "flatness": ({"raw": {"lpf": {"0.01": LPF}, "curve": {"alphas": [-1.0, 0.0, 1.0], "losses": [[0.95, 0.9, 0.96]],
                                                         "base_loss": 0.9},
                          "hessian_top_eigenvalue": {"eigenvalue": 0.4, "iterations": 2, "converged": False}}},
                 ("raw", "curve", "base_loss")),
    "exposure": ({"ema": {"t": [999, 0], "sampling_norm": [17.0, 15.0], "training_norm": [16.0, 14.0],
                          "gap": [1.0, 1.0], "aggregate": "mean", "gap_aggregate": 1.0, "gap_mean": 1.0,
                          "gap_max": 1.0, "num_images": 8, "unit_noise_norm": 16.0}}, ("ema", "gap_mean")),
    "rho_sweep": ({"fid": [40.0, 40.2], **LPF}, ("mc_sharpness",)),
    "length": ({"final_step": 4, "fractions": {"0.5": 2}, "last_k": [3, 4], "num_samples": 16, "sets": 2,
                "equal_progress": {"step": 3, "target": 0.2, "eval_mse": 0.21},
                "rows": {"2": {"raw": {"fid": {"T20": SCORES}, "lpf": {"0.01": LPF}}}}},
               ("rows", "2", "raw", "lpf", "0.01", "std_err")),
    "fid_floor": ({"extractor": "featurenet", "source": "held-out images", "counts": {"set": 16, "all": 32},
                   "set": {"fid": [1.0, 1.2]}, "all": {"fid": [0.5, 0.7]}}, ("counts", "all")),
    "featurenet": ({"train_acc": 0.95, "val_acc": 0.9}, ("val_acc",)),
    "train": ({"phase": "swa", "step": 4, "final_loss": 0.8, "final_mse": 0.7, "swa_snapshots": 2}, ("final_mse",)),
    "preflight": ({"checks": ["params", "data"], "imports": {"adm": {"ema": "ab12"}}}, ("checks",)),
}


def _committed() -> list[tuple[str, Path]]:
    """(kind, path) of every metrics file in the repository (the default run's; run records' import.json and
    log.csv are copies, not records of a kind) and of results/summary.json."""
    found = [("summary", layout.SUMMARY)]
    for path in sorted((ROOT / layout.METRICS).rglob("*.json")):
        relpath = path.relative_to(ROOT)
        if relpath.parts[:2] == layout.TRAIN_RECORDS.parts:
            if relpath.name == layout.RUN_METRICS:
                found.append(("train", relpath))
        else:
            found.append((relpath.parts[1] if len(relpath.parts) > 2 else relpath.stem, relpath))
    return found


@pytest.mark.parametrize("kind, relpath", _committed(), ids=lambda x: str(x))
def test_every_committed_metrics_file_fits_its_schema_and_is_rewritten_to_its_bytes(kind, relpath, tmp_path):
    record = records.read(kind, ROOT / relpath)
    records.write(kind, tmp_path / "again.json", record)
    assert (tmp_path / "again.json").read_bytes() == (ROOT / relpath).read_bytes()


def test_every_kind_is_tested():
    assert set(RECORDS) | {"summary"} == set(records.KINDS)
    assert {kind for kind, _ in _committed()} <= set(records.KINDS)


@pytest.mark.parametrize("kind", [*RECORDS, "summary"])
def test_write_is_the_writers_atomic_write_json_and_read_gives_the_record_back(kind, tmp_path):
    record = RECORDS[kind][0] if kind in RECORDS else {"fid20_adm": 30.0, "reproduced": 3}
    records.write(kind, tmp_path / "record.json", record)
    atomic.write_json(tmp_path / "before.json", record, **FORMAT.get(kind, dict(indent=1, sort_keys=True)))
    assert (tmp_path / "record.json").read_bytes() == (tmp_path / "before.json").read_bytes()
    assert records.read(kind, tmp_path / "record.json") == record


def _edited(record: dict, keys: tuple, rename: str | None) -> dict:
    """``record`` with the key at path ``keys`` renamed to ``rename`` (deleted when None)."""
    out = copy.deepcopy(record)
    inner = out
    for key in keys[:-1]:
        inner = inner[key]
    value = inner.pop(keys[-1])
    if rename is not None:
        inner[rename] = value
    return out


def _one_line_error(kind: str, record, path: Path) -> str:
    with pytest.raises(CorruptFileError) as err:
        records.write(kind, path, record)
    assert not path.exists(), "nothing is written"
    assert "\n" not in str(err.value) and str(err.value).startswith(f"{path} is not a valid {kind} record: ")
    return str(err.value)


@pytest.mark.parametrize("kind", RECORDS)
def test_a_misspelt_key_is_named(kind, tmp_path):
    record, keys = RECORDS[kind]
    misspelt = keys[-1][:-1] + "x"
    message = _one_line_error(kind, _edited(record, keys, misspelt), tmp_path / "m.json")
    assert f"unexpected key {'.'.join(keys[:-1] + (misspelt,))!r} (and 1 more)" in message


@pytest.mark.parametrize("kind", RECORDS)
def test_a_missing_key_is_named(kind, tmp_path):
    record, keys = RECORDS[kind]
    assert _one_line_error(kind, _edited(record, keys, None), tmp_path / "m.json").endswith(
        f"key {'.'.join(keys)!r} is missing")


def test_a_mistyped_value_is_named(tmp_path):
    record = copy.deepcopy(RECORDS["fid"][0])
    record["rows"]["raw"]["T20"]["fid"][1] = "29.9"
    assert _one_line_error("fid", record, tmp_path / "m.json").endswith(
        "key 'rows.raw.T20.fid.1': input should be a valid number, got str")
    assert _one_line_error("train", dict(RECORDS["train"][0], step=4.0), tmp_path / "m.json").endswith(
        "key 'step': input should be a valid integer, got float")
    assert _one_line_error("summary", {"fid20_adm": "30.0"}, tmp_path / "m.json").endswith(
        "key 'fid20_adm': input should be a valid number, got str")
    assert _one_line_error("summary", {"reproduced": True}, tmp_path / "m.json").endswith(
        "key 'reproduced': input should be a valid number, got bool")


def test_an_imported_variants_length_file_has_its_own_shape(tmp_path):
    records.check("length", {"imported": True, "rows": {}}, "x.json")
    assert _one_line_error("length", {"imported": True, "rows": {}, "final_step": 4}, tmp_path / "m.json").endswith(
        "unexpected key 'final_step'")
    assert _one_line_error("length", {"rows": {}}, tmp_path / "m.json").endswith(
        "key 'final_step' is missing (and 4 more)")


def test_a_file_that_is_not_json_is_one_line(tmp_path):
    (tmp_path / "m.json").write_text('{"train_acc": 0.9,')
    with pytest.raises(CorruptFileError, match=r"m\.json is not JSON \(.*\): rerun the stage that writes it"):
        records.read("featurenet", tmp_path / "m.json")


def test_the_report_reads_through_the_schema(tmp_path, capsys):
    """A misspelt key in a measurement is the summary stage's one-line error naming the file and the key."""
    ws = make_workspace(tmp_path, seeds=(0,))
    path = ws / layout.variant_metrics("flatness", "sam", 0)
    path.write_text(path.read_text().replace('"mc_sharpness"', '"mc_sharpnes"'))
    with pytest.raises(SystemExit) as exit_:
        summary.main(["--workspace", str(ws)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"flatlib.stages.summary: error: {path} is not a valid flatness "
                                                   "record: unexpected key 'ema.lpf.0.005.mc_sharpnes'")


def test_reading_a_record_imports_no_torch():
    """The report reads every metrics file through this module without loading torch, torch-fidelity or numpy."""
    path = ROOT / "metrics/featurenet.json"
    code = (f"import sys; from flatlib.measure import records; records.read('featurenet', {str(path)!r}); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torch_fidelity', 'numpy')))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert loaded.strip() == "[]"
