"""flatlib.report on a hand-made workspace: tables, verdicts, missing-artifact errors, deterministic figures,
the rich views (HTML with a text twin, the verdict table, Figures returned), and the stored notebooks' format
(no outputs, the flatlib kernel, a papermill parameters cell)."""
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from flatlib import report
from flatlib.profiles import apply_profile
from flatlib.report import artifacts, display, figures
from flatlib.report.paper import PAPER_EXPOSURE_GAP, PAPER_QUANT_8BIT, PAPER_TABLE1
from flatlib.report.claims import CLAIM_GROUPS
from flatlib.report.tables import NO_RHO_SWEEP
from flatlib.measure.stats import base_outcome

ROOT = Path(__file__).resolve().parent.parent
VARIANTS, WEIGHTS, RESPACINGS = ("adm", "ip", "sam"), ("raw", "ema", "swa"), (20, 100)


SEEDS = (0, 1, 2)
#: the rho sweep's extra runs (rho_sweep.rhos): the usual 0.05 below the sam variant's 0.1, and a larger 0.5
RHOS = (0.05, 0.5)
#: seed-to-seed variation of every measurement: small against the paper-like effects below, so that a clear
#: difference is decided and a difference of the size of this noise is not
JITTER = {0: -1.0, 1: 0.0, 2: 1.0}


def write_params(root: Path, seeds=SEEDS, respacings=RESPACINGS) -> None:
    """The repository's params.yaml with the smoke profile applied, ``seeds`` training seeds and ``respacings``
    (sample.respacings), 2 sample sets (typed and checked like any workspace)."""
    shutil.copy2(ROOT / "params.yaml", root / "params.yaml")
    apply_profile("smoke", root / "params.yaml")
    text = (root / "params.yaml").read_text().replace("seeds: [0]", f"seeds: {list(seeds)}").replace(
        "respacings: [20, 100]", f"respacings: {list(respacings)}").replace("rhos: [0.5]", f"rhos: {list(RHOS)}")
    (root / "params.yaml").write_text(text)


def write_json(path: Path, payload) -> None:  # as flatlib.measure.records.write writes metrics
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1, sort_keys=True) + "\n")


def base_fid(variant, weights, respacing):
    """Paper-like ordering: SAM < IP < ADM, EMA/SWA better than raw, T'=100 better than T'=20."""
    return ({"adm": 30.0, "ip": 20.0, "sam": 10.0}[variant] - {"raw": 0.0, "ema": 3.0, "swa": 2.0}[weights]
            - (5.0 if respacing == 100 else 0.0))


def make_workspace(root: Path, fid=None, quant8=None, sharpness=None, gap=None, rho_sharpness=None,
                   seeds=SEEDS, noise: float = 0.01, unconverged=(), respacings=RESPACINGS) -> Path:
    """A workspace whose artifacts make every claim reproduce (IP between ADM and SAM), unless the overrides say
    otherwise.

    Every value of seed s is its base value plus ``noise`` * JITTER[s] * scale (paired across rows), FID of
    sample set k additionally +-0.05. fid: {("sam", "raw", 20): value}; quant8: {variant: 8-bit FID of raw
    weights}; sharpness: {(variant, weights): MC sharpness}; gap: {variant: exposure gap}; rho_sharpness:
    {rho of RHOS: MC sharpness} (rho 0 and 0.1 are the adm and sam raw rows); unconverged: {(run, seed)} whose
    plateau criterion failed."""
    fid, quant8, sharpness, gap = fid or {}, quant8 or {}, sharpness or {}, gap or {}
    write_params(root, seeds, respacings)
    value = lambda v, w, t: fid.get((v, w, t), base_fid(v, w, t))  # noqa: E731
    sets = (-0.05, 0.05)
    for s in seeds:
        j = noise * JITTER[s]
        for v in VARIANTS:
            rows = {w: {f"T{t}": {"fid": [value(v, w, t) + 10 * j + d for d in sets], "kid_mean": [0.1, 0.1]}
                        for t in respacings} for w in WEIGHTS}
            write_json(root / f"metrics/fid/{v}/seed{s}.json",
                       {"extractor": "featurenet", "num_samples": 16, "sets": 2, "rows": rows})
        alphas = [-1.0, -0.5, 0.0, 0.5, 1.0]
        for v in VARIANTS:
            q = {}
            for w in WEIGHTS:
                f32 = value(v, w, 20) + 10 * j
                f8 = (quant8.get(v, f32 - 10 * j + {"adm": 5.0, "ip": 3.0, "sam": 0.0}[v]) + 10 * j if w == "raw"
                      else f32 + {"adm": 1.0, "ip": 0.5, "sam": 1.0}[v])
                q[w] = {"32": {"fid": [f32 + d for d in sets], "weight_rel_error": 0.0},
                        "8": {"fid": [f8 + d for d in sets], "weight_rel_error": 0.004},
                        "4": {"fid": [f32 + 20.0 + d for d in sets], "weight_rel_error": 0.07}}
            write_json(root / f"metrics/quant/{v}/seed{s}.json", {"respacing": 20, "rows": q})
            flat, expo = {}, {}
            for w in WEIGHTS:
                sharp = sharpness.get((v, w), {"adm": 0.004, "ip": 0.0035, "sam": 0.001}[v]
                                      - 0.001 * (w != "raw" and v != "sam")) * (1 + j)
                base = 0.9
                flat[w] = {"lpf": {sig: {"lpf": base + sharp * k, "std_err": 1e-4, "base_loss": base,
                                         "mc_sharpness": sharp * k} for sig, k in (("0.005", 0.5), ("0.01", 1.0))},
                           "curve": {"alphas": alphas, "base_loss": base,
                                     "losses": [[base + 10 * sharp * a * a for a in alphas]]},
                           "hessian_top_eigenvalue": {"eigenvalue": 100 * sharp, "iterations": 2, "converged": False},
                           "hessian_trace": {"trace": 1000 * sharp, "std_err": 10 * sharp}}
                if w == "raw" and v in ("adm", "sam"):
                    axis = [-1.0, 0.0, 1.0]
                    flat[w]["surface"] = {"alphas": axis, "betas": axis, "base_loss": base,
                                          "losses": [[base + 10 * sharp * (a * a + b * b) for b in axis] for a in axis]}
                t = [999, 500, 0]
                g = (gap.get(v, {"adm": 5.0, "ip": 4.0, "sam": 1.0}[v]) if w == "raw"
                     else {"adm": 2.0, "ip": 1.5, "sam": 2.0}[v]) + 10 * j
                training = [16.0, 15.0, 14.0]
                expo[w] = {"t": t, "sampling_norm": [x + g for x in training], "training_norm": training,
                           "gap": [g, g, g + 3.0], "aggregate": "mean_before_last", "gap_aggregate": g,
                           "gap_mean": g + 1.0, "gap_max": g + 3.0, "num_images": 8, "unit_noise_norm": 16.0}
            write_json(root / f"metrics/flatness/{v}/seed{s}.json", flat)
            write_json(root / f"metrics/exposure/{v}/seed{s}.json", expo)
            for w in WEIGHTS:
                for t in RESPACINGS:
                    grid = (np.arange(32 * 64).reshape(32, 64) * (3 + VARIANTS.index(v)) % 256).astype(np.uint8)
                    path = root / f"samples/{v}/seed{s}/{w}_T{t}.png"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(grid).save(path)
                for bits in (8, 4):
                    path = root / f"samples/quant/{v}/seed{s}/{w}_T20_{bits}bit.png"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(np.full((32, 64), 10 * bits, np.uint8)).save(path)
            for folder in (f"metrics/train/{v}/seed{s}", f"metrics/train/{v}_swa/seed{s}"):
                (root / folder).mkdir(parents=True, exist_ok=True)
                (root / folder / "log.csv").write_text("step,loss,mse,vb,lr,eval_mse\n2,1.0,0.9,0.1,0.0002,0.95\n"
                                                       "4,0.8,0.7,0.1,0.0002,0.75\n")
            write_plateau(root / f"metrics/train/{v}/seed{s}", (v, s) not in unconverged)
        sweep = rho_sharpness or {0.05: 0.0039, 0.5: 0.0009}  # adm 0.004: 0.05 barely flattens, sam (0.1) does
        for rho, x in sweep.items():
            write_plateau(root / f"metrics/train/rho_sweep/seed{s}/rho_{rho}", (f"sam rho={rho:g}", s) not in unconverged)
            write_json(root / f"metrics/rho_sweep/seed{s}/rho_{rho}.json", {
                "fid": [40.0 - rho + 10 * j + d for d in sets], "mc_sharpness": x * (1 + j), "std_err": 1e-4,
                "base_loss": 0.05, "lpf": 0.05 + x})
    return root


def write_plateau(folder: Path, plateaued: bool) -> None:
    write_json(folder / "metrics.json", {"phase": "train", "step": 4, "final_loss": 0.8, "final_mse": 0.7,
                                         "swa_snapshots": None, "plateau": {
        "rel_change": -0.002 if plateaued else -0.02, "slope": -1e-7 if plateaued else -1e-5,
        "slope_p": 0.4 if plateaued else 0.001, "per_doubling": -0.005 if plateaued else -0.05, "window": 0.25,
        "tol": 0.02, "level": 0.05, "points": 9, "final_eval_mse": 0.16, "learned": True,
        "status": "plateaued" if plateaued else "still descending", "plateaued": plateaued}})


def verdict(ws, claim_id):
    """The outcome word of a claim ("reproduced, 22x smaller" -> "reproduced")."""
    return base_outcome(report.claims(ws).loc[claim_id, "verdict"])


def test_every_claim_reproduces_on_paper_like_numbers(tmp_path):
    df = report.claims(make_workspace(tmp_path))
    assert list(df.columns) == ["group", "claim", "source", "family", "paper", "provenance", "rule", "seeds", "runs",
                                "measured", "effect", "decisive part", "paper effect", "p", "p adjusted", "verdict", "plain t",
                                "fragile", "KID", "FID vs KID"]
    assert df["verdict"].map(lambda v: v.split(",")[0] == "reproduced").all(), df[df["verdict"] != "reproduced"]
    assert set(df["group"]) == set(CLAIM_GROUPS) and (df["seeds"] == 3).all()
    # KID is constant in this workspace: every FID claim's KID outcome is inconclusive, and says it differs
    assert (df.loc["sam_T20", "KID"], df.loc["sam_T20", "FID vs KID"]) == ("inconclusive", "differ")
    assert (df.loc["mc_sharpness", "KID"], df.loc["quant_8bit", "KID"]) == ("", "")  # no KID: none in quant here
    assert df.loc["quant_8bit", "provenance"].startswith("secondary summary")
    assert df.loc["ip_quant", "source"] == "added: DDPM-IP claim" and df.loc["ip_quant", "family"] == "added"
    assert (df["runs"].str.startswith("all ")).all()


@pytest.mark.parametrize("sam_fid, noise, expected", [
    (29.0, 0.01, "reproduced"),       # 1.0 below ADM, seed noise +-0.1
    (31.0, 0.01, "contradicted"),     # 1.0 above
    (30.0, 0.01, "weaker than the paper"),  # no difference: the data rule out the paper's -74%
    (29.0, 0.3, "reproduced"),        # paired: the shared seed noise cancels in the difference
])
def test_sam_vs_adm_fid_verdict_outcomes(tmp_path, sam_fid, noise, expected):
    ws = make_workspace(tmp_path, fid={("sam", "raw", 20): sam_fid}, noise=noise)
    assert verdict(ws, "sam_T20") == expected
    assert verdict(ws, "sam_T100") == "reproduced"  # T'=100 untouched


def test_an_unpaired_overlap_is_inconclusive(tmp_path):
    ws = make_workspace(tmp_path, fid={("sam", "raw", 20): 29.0}, noise=0.01)
    for s, shift in zip(SEEDS, (-3.0, 2.5, -1.0)):  # SAM's seeds scatter more than the 1.0 effect
        path = ws / f"metrics/fid/sam/seed{s}.json"
        data = json.loads(path.read_text())
        data["rows"]["raw"]["T20"]["fid"] = [x + shift for x in data["rows"]["raw"]["T20"]["fid"]]
        write_json(path, data)
    df = report.claims(ws)
    assert df.loc["sam_T20", "verdict"] == "weaker than the paper"  # contains 0, excludes the paper's -74%
    assert "difference -" in df.loc["sam_T20", "measured"] and " ± " in df.loc["sam_T20", "measured"]


def test_a_single_seed_decides_nothing(tmp_path):
    df = report.claims(make_workspace(tmp_path, seeds=(0,)))
    assert (df["verdict"] == "inconclusive").all() and (df["seeds"] == 1).all()


def test_combined_and_indirect_fid_claims(tmp_path):
    ws = make_workspace(tmp_path, fid={("sam", "ema", 100): 99.0, ("adm", "swa", 20): 31.0,
                                       ("adm", "ema", 100): 25.0})
    df = report.claims(ws)
    assert df.loc["sam_ema", "verdict"] == "contradicted"  # must hold at both T'
    assert df.loc["swa", "verdict"] == "contradicted"
    assert df.loc["ema", "verdict"] == "weaker than the paper"  # T'=20 reproduced, T'=100 a tie (paper: -54%)


def test_flatness_quant_exposure_rho_verdicts(tmp_path):
    ws = make_workspace(tmp_path, sharpness={("adm", "swa"): 0.0005}, quant8={"sam": 20.0},
                        gap={"sam": 9.0}, rho_sharpness={0.05: 0.001, 0.5: 0.001})
    df = report.claims(ws)
    assert df.loc["mc_sharpness", "verdict"] == "contradicted"
    assert "sigma=0.01" in df.loc["mc_sharpness", "measured"] and "sigma=0.005" in df.loc["mc_sharpness", "measured"]
    assert df.loc["quant_8bit", "verdict"] == "contradicted"
    assert df.loc["exposure", "verdict"] == "contradicted"
    assert df.loc["rho", "verdict"] == "contradicted"


def test_a_claim_on_a_run_still_descending_says_so(tmp_path, capsys):
    ws = make_workspace(tmp_path, unconverged={("sam", 1), ("sam rho=0.5", 2)})
    df = report.claims(ws)
    sam_note = ("5 of 6 plateaued (change per doubling -5.0% to -0.5%); NOT plateaued: sam seed 1 (still "
                "descending)")
    assert df.loc["sam_T20", "runs"] == sam_note
    assert df.loc["ema", "runs"] == "all 3 plateaued (change per doubling -0.5% to -0.5%)"
    assert df.loc["rho", "runs"] == ("10 of 12 plateaued (change per doubling -5.0% to -0.5%); NOT plateaued: sam seed 1 "
                                     "(still descending), sam rho=0.5 seed 2 (still descending)")
    assert df.loc["sam_vs_indirect", "runs"].endswith("NOT plateaued: sam seed 1 (still descending)")
    assert "converged" not in " ".join(df["runs"])
    report.show_verdicts(df, ws)
    out = capsys.readouterr().out
    assert "Judged on runs not shown to have plateaued (see the runs column): sam_T20," in out
    assert f"runs:           {sam_note}\n" in out and "\n3 training seeds\n" in out  # seeds: caption
    assert "The paper's claims (17): 17 reproduced, 0 contradicted." in out
    assert "Added claims (not the paper's) (3): 3 reproduced, 0 contradicted." in out
    assert "Procedure: per training seed the paired difference A - B" in out
    plateau = report.plateau_table(ws)
    assert plateau.loc[("sam", 1), "status"] == "still descending" and plateau.loc[("adm", 0), "status"] == "plateaued"
    assert plateau.loc[("sam", 1), "change per doubling"] == -0.05 and plateau.loc[("sam", 1), "slope p"] == 0.001


def test_the_real_vs_real_floor_is_printed_and_drawn_beside_fid(tmp_path, capsys):
    ws = make_workspace(tmp_path)
    write_json(ws / "metrics/featurenet.json", {"val_acc": 0.9, "train_acc": 0.95})
    report.print_extractor_note(ws)
    assert "Real-vs-real floor: not measured in this run" in capsys.readouterr().out
    write_json(ws / "metrics/fid_floor.json", {"extractor": "featurenet", "source": "held-out images",
                                               "counts": {"set": 16, "all": 32},
                                               "all": {"fid": [0.5, 0.7]}, "set": {"fid": [1.0, 1.2]}})
    report.print_extractor_note(ws)
    out = capsys.readouterr().out
    assert "FD, FeatureNet features (featurenet features): per row, T' and training seed on all 32 samples" in out
    assert ("Real-vs-real floor of the FD, FeatureNet features (held-out images): 32 images 0.600 (draws "
            "0.500-0.700); 16 images 1.100") in out
    fig = report.plot_fid_vs_paper(ws)
    assert any("real-vs-real floor" in t.get_text() for legend in fig.legends for t in legend.get_texts())


def test_sample_respacings_are_the_measured_t(tmp_path):
    """T' comes from sample.respacings: with [20, 50] the table, the summary and the sample grids show T'=50
    (the paper column there is empty) and the claims about the paper's T'=100 are not evaluated."""
    from flatlib.stages import summary

    ws = make_workspace(tmp_path, respacings=(20, 50))
    table = report.table1(ws)
    assert {"measured T'=20", "measured T'=50"} <= set(table) and "measured T'=100" not in table
    assert table["paper T'=50"].isna().all() and table.loc["ADM", "paper T'=20"] == 34.47
    assert report.respacings(ws) == (20, 50)
    headline = summary.headline(ws)
    assert {"fid20_adm", "fid50_adm"} <= set(headline) and not [k for k in headline if k.startswith("fid100")]
    verdicts = report.claims(ws)["verdict"]
    assert (verdicts == "not evaluated").any() and (verdicts == "reproduced").any()


def test_table1_has_nine_rows_with_the_papers_numbers(tmp_path):
    ws = make_workspace(tmp_path)
    table = report.table1(ws)
    assert list(table.index) == list(PAPER_TABLE1)
    assert table.loc["ADM", "paper T'=20"] == 34.47 and table.loc["+SAM+SWA", "paper T'=100"] == 2.96
    assert table.loc["+SAM", "measured T'=20"] == pytest.approx(10.0)
    assert table.loc["+SAM", "measured T'=20 ±"] == pytest.approx(4.302653 * 0.1 / np.sqrt(3), rel=1e-5)
    assert table.loc["+SAM+EMA", "measured rank T'=20"] == 1.0
    paper = report.paper_table1()
    assert paper.shape == (9, 6) and paper.loc["+IP", "FFHQ T'=100"] == 13.55
    assert PAPER_QUANT_8BIT["ADM"] == {32: 34.47, 8: 48.02}
    assert PAPER_EXPOSURE_GAP == {"ADM": 11.39, "+SAM": 3.32}


def test_other_tables_and_printed_text(tmp_path, capsys):
    ws = make_workspace(tmp_path)
    quant, flat = report.quant_table(ws), report.flatness_table(ws)
    assert len(quant) == 9 and quant.loc["ADM", "paper FID 8-bit"] == 48.02
    assert quant.loc["ADM", "dFID 8-bit"] == pytest.approx(5.0)
    assert "MC sharp s=0.005" in flat and "MC sharp s=0.01" in flat and len(flat) == 9
    assert flat.loc["ADM", "power iteration converged"] == "0/3"
    exposure = report.exposure_table(ws)
    assert exposure.loc["+SAM", "paper gap"] == 3.32
    assert exposure.loc["ADM", "gap (mean_before_last)"] == pytest.approx(5.0)
    assert exposure.loc["ADM", "gap at t=0"] == pytest.approx(8.0)
    rho = report.rho_table(ws)
    assert list(rho.index) == [0.0, 0.05, 0.1, 0.5] and rho.loc[0.5, "plateaued"] == "3/3"
    report.show_table(report.table1(ws), ws, "table1_fid", title="T1")
    report.show_verdicts(report.claims(ws), ws)
    report.show_choices(ws, "quantization")
    out = capsys.readouterr().out
    assert "34.47" in out and "10.00 ± 0.25" in out  # the half-width to 2 significant figures, the mean to its place
    assert "± = half-width of the 95% t-interval over 3 training seeds." in out
    assert "✔ reproduced, 1.1x smaller: +SAM improves FID over ADM at T'=20  (sam_T20; Table 1)" in out
    assert "[paper table (Table 1, project page)]" in out and "[secondary summary of the paper" in out
    assert re.search(r"quant.per_channel +False +reproduction choice: symmetric per-tensor", out)
    assert "reproduction choice: symmetric per-tensor round-to-nearest" in out
    assert str(tmp_path) not in out  # nothing absolute in compared text
    assert (tmp_path / "reports/tables/table1_fid.csv").is_file() and (tmp_path / "reports/tables/claims.csv").is_file()


@pytest.mark.parametrize("relpath, stage, call", [
    ("metrics/quant/sam/seed1.json", "quant@sam-1", report.quant_table),
    ("metrics/fid/adm/seed0.json", "fid@adm-0", report.table1),
    ("metrics/rho_sweep/seed2/rho_0.5.json", "rho_sweep@2-0.5", report.rho_table),
    ("metrics/exposure/sam/seed0.json", "exposure@sam-0", report.claims),
    ("metrics/flatness/ip/seed2.json", "flatness@ip-2", report.claims),
    ("metrics/train/sam_swa/seed1/log.csv", "swa@sam-1", lambda ws: artifacts.load_training_log(ws, "sam", 1, "swa")),
    ("metrics/train/sam/seed2/metrics.json", "train@sam-2", report.plateau_table),
    ("metrics/train/rho_sweep/seed1/rho_0.5/metrics.json", "rho_train@1-0.5", report.plateau_table),
    ("samples/adm/seed0/ema_T100.png", "sample@adm-0", lambda ws: report.plot_samples(ws, 100)),
])
def test_missing_artifact_names_file_and_stage(tmp_path, relpath, stage, call):
    ws = make_workspace(tmp_path)
    (ws / relpath).unlink()
    with pytest.raises(FileNotFoundError, match=f"{relpath}.*'{stage}'") as err:
        call(ws)
    assert isinstance(err.value, artifacts.ArtifactMissing) and err.value.stage == stage


def test_figures_have_deterministic_bytes(tmp_path):
    ws = make_workspace(tmp_path)
    plots = [report.plot_loss_curves, report.plot_loss_surfaces, report.plot_noise_norms, report.plot_rho_sweep,
             report.plot_fid_vs_paper, report.plot_quant_samples,
             report.plot_exposure_gap, report.plot_hessian, report.plot_training_loss, report.plot_quant_fid]
    names = ["loss_curves_1d", "loss_surfaces_2d", "noise_norms", "rho_sweep", "fid_vs_paper", "quant_samples_raw",
             "exposure_gap", "hessian", "training_loss", "quant_fid"]
    first = {}
    for plot, name in zip(plots, names):
        fig = plot(ws)
        first[name] = figures.figure_path(ws, name).read_bytes()
        assert first[name][:8] == b"\x89PNG\r\n\x1a\n"
        assert figures.figure_bytes(fig) == first[name], name  # the returned Figure is the saved one
    for plot, name in zip(plots, names):
        plot(ws)
        assert figures.figure_path(ws, name).read_bytes() == first[name], name
    assert b"Software" not in first["loss_curves_1d"]


def test_stored_notebooks_are_clean_and_parameterized():
    nbformat = pytest.importorskip("nbformat")
    names = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))
    assert names == sorted(["table1_fid", "quantization", "flatness", "exposure", "rho_sweep", "summary"])
    for name in names:
        nb = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
        assert nb.metadata.kernelspec.name == "flatlib" and nb.metadata.kernelspec.language == "python"
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(c.outputs == [] and c.execution_count is None for c in code), name
        params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
        assert len(params) == 1 and params[0].source.startswith('workspace = ".."'), name
        assert len(nb.cells) <= 12 and nb.cells[0].cell_type == "markdown"
        assert any(c.cell_type == "markdown" and "Reproduction choices" in c.source for c in nb.cells)


@pytest.mark.parametrize("profile, evaluated, training", [
    ("ddpmip_cifar10", {"ip_ema", "ip_flatness", "ip_quant", "ip_exposure"}, "nothing trained here"),
    ("ddpmip_cifar10_sam", {"ip_ema", "ip_flatness", "ip_quant", "ip_exposure", "sam_ema"},
     "200000 training steps"),
])
def test_imported_rows_are_reported_and_what_they_cannot_test_is_not_evaluated(tmp_path, capsys, profile, evaluated,
                                                                               training):
    ws = make_workspace(tmp_path, seeds=(0,))
    shutil.copy2(ROOT / "params.yaml", ws / "params.yaml")
    apply_profile(profile, ws / "params.yaml")  # adm and ip imported from their EMA weights
    for v in ("adm", "ip"):
        write_json(ws / f"metrics/train/{v}/seed0/import.json", {"weights": {"ema": {"sha256": f"{v}0123456789abcdef"}}})
    df = report.claims(ws)
    assert set(df.index[df["verdict"] != "not evaluated"]) == evaluated
    assert (df.loc[sorted(evaluated), "verdict"] == "inconclusive").all()  # one training seed
    assert "no ADM (adm is imported with ema weights only)" in df.loc["sam_T20", "measured"]
    assert df.loc["rho", "measured"] == f"({NO_RHO_SWEEP})"
    assert df.loc["ip_flatness", "runs"] == "imported (not trained here): adm seed 0, ip seed 0"
    assert report.plateau_table(ws).loc[("adm", 0), "status"] == artifacts.IMPORTED
    report.print_profile_note(ws)
    report.show_table(report.rho_table(ws), ws, "rho_sweep")
    assert report.plot_rho_sweep(ws) is None
    report.plot_training_loss(ws)
    report.plot_quant_samples(ws)
    report.plot_samples(ws, 20)
    out = capsys.readouterr().out
    assert f"Profile: cifar10 32x32, {training}, training seeds [0]" in out
    assert ("+EMA = data/ddpm_ip/cifar10/ADM-baseline.pt (sha256 adm012345678); +IP+EMA = "
            "data/ddpm_ip/cifar10/ADM-IP.pt (sha256 ip0123456789)") in out
    assert "Rows not evaluable with these weights: ADM (adm is imported with ema weights only); +SWA" in out
    assert f"({NO_RHO_SWEEP})\nNo rho sweep figure" in out
    assert ("No training curves" in out) == (profile == "ddpmip_cifar10")
    assert figures.figure_path(ws, "quant_samples_ema" + ("" if profile == "ddpmip_cifar10" else "_raw")).is_file()
    assert list(report.table1(ws).index)[:2] == ["+EMA", "+IP+EMA"]


def test_tables_show_as_html_with_a_plain_text_twin(tmp_path):
    ws = make_workspace(tmp_path)
    view = display.table_view(report.table1(ws), "T1", report.interval_note(ws))
    again = display.table_view(report.table1(ws), "T1", report.interval_note(ws))
    assert view.html == again.html and "<style" not in view.html  # inline styles: kept in untrusted notebooks
    assert "10.00 ± 0.25" in view.html and "10.00 ± 0.25" in repr(view)
    assert "font-style: italic" in view.html and "white-space: nowrap" in view.html  # paper columns; no wrapping
    assert repr(view).startswith("T1\n") and repr(view).endswith("over 3 training seeds.")
    (tmp_path / "contra").mkdir()
    verdicts = report.claims(make_workspace(tmp_path / "contra", sharpness={("sam", "raw"): 0.01}))
    table = display.verdict_view(verdicts)
    assert table.html.count('<tr id="claim-') == len(verdicts)  # one row per claim, its anchor for the scoreboard
    assert table.html.count('<tr class="section">') == len(set(verdicts["group"]))  # grouped by the paper's sections
    assert table.html.count("<details>") == len(verdicts) and "3 training seeds" in table.html  # seeds: the caption
    assert "✔ reproduced" in table.html and "✘ contradicted" in table.html and display.VERDICT_COLORS["contradicted"] in table.html
    assert "✘ contradicted: SAM flattens more than ADM" in repr(table)


def test_a_returned_figure_shows_as_its_saved_png_under_ipython(tmp_path):
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    figures._register_png_formatter()
    fig = report.plot_rho_sweep(make_workspace(tmp_path))
    data, metadata = shell.display_formatter.format(fig)
    assert data["image/png"] == figures.figure_path(tmp_path, "rho_sweep").read_bytes()
    assert data["text/plain"] == fig.flatlib_caption and "against SAM's radius rho" in data["text/plain"]  # nbval
    assert metadata["image/png"] == {"name": "rho_sweep", "alt": fig.flatlib_alt, "caption": fig.flatlib_caption}
    InteractiveShell.clear_instance()


def test_check_workspace_says_what_to_run(tmp_path):
    ws = make_workspace(tmp_path)
    report.check_workspace(ws, "summary")  # every run's record and every sample set present
    shutil.rmtree(ws / "samples")  # a fresh clone: the samples are in DVC's cache, not in git
    with pytest.raises(artifacts.ArtifactMissing, match=r"samples/adm/seed0 and \d+ more .*make repro.*"
                                                        r"docs/summary.html"):
        report.check_workspace(ws, "summary")


def test_the_display_formatter_rounds_to_the_interval():
    assert artifacts.fmt_interval(0.01001, 0.0009842, "sharpness") == "0.01001 ± 0.00098"  # 2 significant figures
    assert artifacts.fmt_interval(3.459, 2.330, "fid") == "3.5 ± 2.3"  # the mean to the half-width's place
    assert artifacts.fmt_interval(-1.916e-05, 0.001513, "sharpness", sign=True) == "0.0000 ± 0.0015"  # no "-0"
    assert artifacts.fmt_interval(0.2, 0.0996, "fid") == "0.20 ± 0.10"  # rounded up to the next decade
    assert artifacts.fmt_interval(-0.05, 0.612, "fid", sign=True, percent=True) == "-5% ± 61%"
    assert artifacts.fmt_interval(1.5, float("nan"), "fid") == "1.500"  # a single seed: the kind's precision
    assert artifacts.fmt(9.0, "rank") == "9" and artifacts.fmt(2.5, "rank") == "2.5"
    assert artifacts.fmt_interval(-2 / 3, 1e-17, "fid", percent=True) == "-66.667% ± 0.000%"  # negligible interval


def test_no_display_rounding_moves_a_verdict(tmp_path, monkeypatch):
    """Outcomes and p-values come from the unrounded numbers: display precision changes the text only."""
    ws = make_workspace(tmp_path, sharpness={("sam", "raw"): 0.01})
    before = report.claims(ws)
    monkeypatch.setattr(artifacts, "INTERVAL_DIGITS", 1)
    monkeypatch.setattr(artifacts, "DECIMALS", {k: 0 for k in artifacts.DECIMALS})
    monkeypatch.setattr(artifacts, "SIGNIFICANT", {k: 1 for k in artifacts.SIGNIFICANT})
    after = report.claims(ws)
    assert set(before["verdict"].map(base_outcome)) >= {"reproduced", "contradicted"}
    pd.testing.assert_series_equal(before["verdict"], after["verdict"])
    pd.testing.assert_series_equal(before["p"], after["p"])
    assert (before["effect"] != after["effect"]).any()  # the text did change


def test_the_scoreboard_answers_counts_and_links_every_claim_to_its_evidence(tmp_path):
    from flatlib.report.scoreboard import PAGES, scoreboard_view

    ws = make_workspace(tmp_path, sharpness={("sam", "raw"): 0.01})
    df = report.claims(ws)
    board = scoreboard_view(df, ws)
    assert board.text.startswith("Did the paper hold at smoke scale: digits 8x8? Partly: ")  # a 4-step workspace
    assert "of the paper's 17 claims reproduce" in board.text and "are contradicted (Flatness " in board.text
    for cid, r in df.iterrows():  # every claim links to the verdict row on its evidence page
        assert f'href="{PAGES[r["group"]]}.html#{display.claim_anchor(cid)}"' in board.html
        assert f"](docs/{PAGES[r['group']]}.html#{display.claim_anchor(cid)})" in board.markdown
    sections = [line for line in board.markdown.splitlines() if line.startswith("| **")]
    assert sections == [f"| **{display.SECTIONS[g]}** | | | |" for g in CLAIM_GROUPS]  # the paper's sections
    assert board.markdown.count("*(added)*") == (df["family"] == "added").sum()
