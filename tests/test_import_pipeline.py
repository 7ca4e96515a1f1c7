"""Imported variants through the real DVC pipeline, next to a trained one, in a fresh copy of the repository.

Builds ``$FLATLIB_SMOKE_IMPORT_DIR`` (default ``.smoke_import``): the smoke profile's sizes on stand-in CIFAR-10
(RGB 32x32, as guided-diffusion's UNet needs), adm imported from EMA weights only, ip from EMA and SWA weights (files
saved in guided-diffusion's layout by tests/imported_workspace.py), sam trained; no rho sweep (adm is imported).
``dvc repro`` runs every stage and notebook; then a second repro has nothing to do, and an imported file replaced
under its name invalidates the train and swa stages through the preflight's digests.
"""
import json
import os
import re
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from flatlib import layout
from flatlib.layout import IMPORT_RECORD
from flatlib.measure.metrics import sha256_file
from flatlib.report.display import verdict_mark
from flatlib.report.tables import NO_RHO_SWEEP
from flatlib.vocabulary import NOT_EVALUATED, OUTCOMES
from tests.imported_workspace import FLAGS, save_gd_weights, write_cifar10_batches, write_imported_params
from tests.workspace import ROOT, copy_repository, run

WORKSPACE = Path(os.environ.get("FLATLIB_SMOKE_IMPORT_DIR", ROOT / ".smoke_import")).resolve()
IMPORTS = {"adm": {"ema": "data/imported/ADM-baseline.pt", "flags": FLAGS, "step": 1},
           "ip": {"ema": "data/imported/ip_ema.pt", "swa": "data/imported/ip_swa.pt", "flags": FLAGS, "step": 1}}
FILES = {("adm", "ema"): "data/imported/ADM-baseline.pt", ("ip", "ema"): "data/imported/ip_ema.pt",
         ("ip", "swa"): "data/imported/ip_swa.pt"}


@pytest.fixture(scope="module")
def workspace():
    copy_repository(WORKSPACE)
    for seed, path in enumerate(FILES.values()):
        save_gd_weights(WORKSPACE / path, seed)
    write_cifar10_batches(WORKSPACE / "data")
    # half the smoke profile's samples and loss set: at 32x32 a UNet evaluation costs 16 times one at 8x8
    write_imported_params(WORKSPACE / "params.yaml", IMPORTS, sample={"num": 8}, flatness={"num_triples": 16})
    run(["dvc", "repro"], WORKSPACE)
    return WORKSPACE


def printed(workspace, notebook: str) -> str:
    """Every stream and text/plain output of an executed report notebook."""
    nb = nbformat.read(workspace / layout.report_notebook(notebook), as_version=4)
    return "".join(out.get("text", "") + out.get("data", {}).get("text/plain", "")
                   for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs)


def test_imports_are_evaluated_like_trained_runs_with_the_weights_they_have(workspace):
    for (variant, kind), path in FILES.items():
        record = json.loads((workspace / layout.weights_run_dir(variant, 0, kind) / IMPORT_RECORD).read_text())
        assert record["weights"][kind]["sha256"] == sha256_file(workspace / path)
    assert json.loads((workspace / layout.run_dir("adm", 0, "swa") / IMPORT_RECORD).read_text())["weights"] == {}
    assert (workspace / layout.run_dir("sam", 0) / layout.RUN_LOG).is_file()  # trained, next to the imports
    measured = {"adm": {"ema"}, "ip": {"ema", "swa"}, "sam": {"raw", "ema", "swa"}}
    for kind in layout.PER_VARIANT_METRICS:
        for variant, weights in measured.items():
            metrics = json.loads((workspace / layout.variant_metrics(kind, variant, 0)).read_text())
            assert set(metrics.get("rows", metrics)) == weights, (kind, variant)
    summary = json.loads((workspace / layout.SUMMARY).read_text())  # the rows these imports lack are left out
    counted = [w.replace(" ", "_") for w in OUTCOMES + (NOT_EVALUATED,)]  # verdict counts, paper's and added
    assert set(summary) == ({f"fid{t}_{r}" for t in (20, 100) for r in ("ema", "sam", "sam_ema")}
                            | {"sharp_sam", "dfid8_sam", "gap_sam", "fragile"} | set(counted)
                            | {f"added_{w}" for w in counted})
    assert set(pd.read_csv(workspace / layout.plot_file("training_loss"))["row"]) == {"+SAM"}  # the one trained
    flatness = json.loads((workspace / layout.variant_metrics("flatness", "adm", 0)).read_text())
    assert "surface" in flatness["ema"]
    assert not (workspace / layout.RHO_RUNS).exists() and not (workspace / layout.RHO_SWEEP_METRICS).exists()


def test_every_notebook_reports_what_the_imports_can_and_cannot_test(workspace):
    assert sorted(p.stem for p in (workspace / layout.REPORTS).glob("*.ipynb")) == sorted(layout.NOTEBOOK_NAMES)
    summary = printed(workspace, "summary")
    sha = sha256_file(workspace / FILES["adm", "ema"])[:12]
    assert "Imported, not trained here (one set of weights each, so one training seed" in summary
    assert f"+EMA = data/imported/ADM-baseline.pt (sha256 {sha})" in summary
    assert "Rows not evaluable with these weights: ADM (adm is imported with ema weights only)" in summary
    assert f"{verdict_mark('not evaluated')}: +SAM improves FID over ADM at T'=20" in summary
    assert f"{verdict_mark('inconclusive')}: +IP is flatter than ADM" in summary  # one seed decides nothing
    assert f"{verdict_mark('inconclusive')}: SAM adds to EMA: +SAM+EMA beats +EMA" in summary  # imported vs trained
    assert re.search(r"runs: +imported \(not trained here\): adm seed 0, ip seed 0\n", summary)
    assert re.search(r"runs: +[^\n]*NOT plateaued: sam seed 0 \([^\n]*; imported \(not trained here\): adm seed 0, "
                     r"ip seed 0\n", summary) and "converged" not in summary
    assert NO_RHO_SWEEP in printed(workspace, "rho_sweep")
    assert "imported: not trained here" in printed(workspace, "table1_fid")


def test_second_repro_has_nothing_to_do_until_an_import_changes(workspace):
    assert json.loads(run(["dvc", "status", "--json"], workspace)) == {"preflight": ["always changed"]}
    original = (workspace / FILES["ip", "swa"]).read_bytes()
    try:
        save_gd_weights(workspace / FILES["ip", "swa"], seed=7)  # another file under the same name
        run(["dvc", "repro", "--single-item", "preflight"], workspace)
        assert {"train@ip-0", "swa@ip-0"} <= set(json.loads(run(["dvc", "status", "--json"], workspace)))
    finally:
        (workspace / FILES["ip", "swa"]).write_bytes(original)
        run(["dvc", "repro", "--single-item", "preflight"], workspace)
    assert json.loads(run(["dvc", "status", "--json"], workspace)) == {"preflight": ["always changed"]}
