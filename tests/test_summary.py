"""flatlib.stages.summary on the hand-made workspaces of tests/test_report.py: the flat headline numbers, the plot data,
a profile whose rows are partly absent (DDPM-IP imports), and a missing measurement."""
import json
import shutil

import numpy as np
import pandas as pd
import pytest

from flatlib import layout, vocabulary
from flatlib.stages import summary
from flatlib.profiles import apply_profile
from tests.test_report import ROOT, make_workspace, write_json

OUTCOME_KEYS = ("reproduced", "contradicted", "weaker_than_the_paper", "inconclusive", "not_evaluated")
COUNT_KEYS = set(OUTCOME_KEYS) | {f"added_{k}" for k in OUTCOME_KEYS} | {"fragile"}
HEADLINE_KEYS = ({f"fid{t}_{r}" for t in (20, 100) for r in ("adm", "ema", "sam", "sam_ema")}
                 | {f"{m}_{r}" for m in ("sharp", "dfid8", "gap") for r in ("adm", "sam")}
                 | COUNT_KEYS)


def plot(ws, name: str) -> pd.DataFrame:
    return pd.read_csv(ws / layout.plot_file(name))


def test_headline_numbers_are_means_over_seeds_and_the_verdict_counts(tmp_path):
    ws = make_workspace(tmp_path)  # seeds jitter symmetrically around the base values: means are the base values
    out = summary.write(ws)
    assert json.loads((ws / layout.SUMMARY).read_text()) == out
    assert set(out) == HEADLINE_KEYS
    assert all(not isinstance(v, (dict, list)) for v in out.values())  # flat: one column each in `dvc exp show`
    expected = {"fid20_adm": 30.0, "fid100_adm": 25.0, "fid20_ema": 27.0, "fid20_sam": 10.0, "fid100_sam_ema": 2.0,
                "sharp_adm": 0.004, "sharp_sam": 0.001,  # the largest sigma (0.01), not 0.005 (half of it)
                "dfid8_adm": 5.0, "dfid8_sam": 0.0, "gap_adm": 5.0, "gap_sam": 1.0}
    assert {k: out[k] for k in expected} == pytest.approx(expected, abs=1e-9)
    assert [out[k] for k in OUTCOME_KEYS] == [17, 0, 0, 0, 0]  # the paper's claims
    assert [out[f"added_{k}"] for k in OUTCOME_KEYS] == [3, 0, 0, 0, 0] and out["fragile"] == 0
    parts = pd.read_csv(ws / layout.CLAIM_PARTS)
    assert {"claim", "part", "relative", "relative low", "relative high", "paper relative", "p", "outcome"} <= set(parts)
    sam = parts.set_index(["claim", "part"]).loc[("sam_T20", "T'=20: +SAM vs ADM")]
    assert sam["difference"] == pytest.approx(-20.0) and sam["paper relative"] == pytest.approx(9.01 / 34.47 - 1)
    per_seed = pd.read_csv(ws / layout.CLAIM_SEEDS)
    assert len(per_seed[per_seed["claim"] == "sam_T20"]) == 3 and np.allclose(per_seed["A - B"], per_seed["A"] - per_seed["B"], rtol=1e-5)


def test_plot_data_has_one_row_label_per_line(tmp_path):
    ws = make_workspace(tmp_path)
    summary.write(ws)
    rows = [vocabulary.label(v, w) for v, w in vocabulary.PAPER_ROWS]
    fid = plot(ws, "fid")
    assert list(fid["row"].unique()) == rows and sorted(fid["T"].unique()) == [20, 100]
    assert fid.set_index(["row", "T"]).loc[("+SAM", 20), "fid"] == pytest.approx(10.0)
    curve = plot(ws, "loss_curve").set_index(["row", "alpha"])
    assert curve.loc[("+SAM", 1.0), "rise"] == pytest.approx(0.01)  # 10 * sharpness * alpha^2
    assert curve.loc[("ADM", 0.0), "loss"] == pytest.approx(0.9)
    gap = plot(ws, "exposure_gap")
    assert list(gap["row"].unique()) == rows and sorted(gap["t"].unique()) == [0, 500, 999]
    assert gap.set_index(["row", "t"]).loc[("ADM", 0), "gap"] == pytest.approx(8.0)  # the last step's gap
    loss = plot(ws, "training_loss")
    assert sorted(loss.groupby(["row", "seed"]).size().items()) == [((r, s), 2) for r in ("+IP", "+SAM", "ADM")
                                                                     for s in (0, 1, 2)]


def test_absent_rows_are_left_out_never_an_error(tmp_path):
    ws = make_workspace(tmp_path, seeds=(0,))
    shutil.copy2(ROOT / "params.yaml", ws / "params.yaml")
    apply_profile("ddpmip_cifar10", ws / "params.yaml")  # adm and ip imported from EMA weights, no sam, no sweep
    for v in ("adm", "ip"):
        write_json(ws / f"runs/{v}/seed0/import.json", {"weights": {"ema": {"sha256": f"{v}0123456789abcdef"}}})
        for kind in layout.PER_VARIANT_METRICS:  # as the pipeline measures imports: their EMA weights only
            path = ws / layout.variant_metrics(kind, v, 0)
            data = json.loads(path.read_text())
            rows = data.get("rows", data)
            for weights in ("raw", "swa"):
                del rows[weights]
            write_json(path, data)
    out = summary.write(ws)
    assert set(out) == {"fid20_ema", "fid100_ema"} | COUNT_KEYS
    assert out["inconclusive"] == 1 and out["not_evaluated"] == 16  # what two imports can test, on one seed: ip_ema
    assert out["added_inconclusive"] == 3 and out["added_not_evaluated"] == 0
    assert plot(ws, "training_loss").empty  # nothing trained here
    assert set(plot(ws, "fid")["row"]) == {"+EMA", "+IP+EMA"}


def test_a_missing_measurement_is_one_line_naming_its_stage(tmp_path, capsys):
    ws = make_workspace(tmp_path, seeds=(0,))
    (ws / layout.variant_metrics("flatness", "sam", 0)).unlink()
    with pytest.raises(SystemExit) as exit_:
        summary.main(["--workspace", str(ws)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("flatlib.stages.summary: error: metrics/flatness/sam/seed0.json is missing")
    assert "dvc repro flatness@sam-0" in err
    assert not (ws / layout.SUMMARY).exists()
