"""flatlib.report on a hand-made workspace: tables, verdicts, missing-artifact errors, deterministic figures,
and the stored notebooks' format (no outputs, python3 kernel, a papermill parameters cell)."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from flatlib import report
from flatlib.profiles import apply_profile
from flatlib.report import artifacts, figures
from flatlib.report.paper import PAPER_EXPOSURE_GAP, PAPER_QUANT_8BIT, PAPER_TABLE1
from flatlib.report.claims import CLAIM_GROUPS

ROOT = Path(__file__).resolve().parent.parent
VARIANTS, WEIGHTS, RESPACINGS = ("adm", "ip", "sam"), ("raw", "ema", "swa"), (20, 100)


def write_params(root: Path) -> None:
    """The repository's params.yaml with the smoke profile applied (typed and checked like any workspace)."""
    shutil.copy2(ROOT / "params.yaml", root / "params.yaml")
    apply_profile("smoke", root / "params.yaml")


def write_json(path: Path, payload) -> None:  # as flatlib.pipeline._write_json
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1, sort_keys=True) + "\n")


def base_fid(variant, weights, respacing):
    """Paper-like ordering: SAM < IP < ADM, EMA/SWA better than raw, T'=100 better than T'=20."""
    return ({"adm": 30.0, "ip": 20.0, "sam": 10.0}[variant] - {"raw": 0.0, "ema": 3.0, "swa": 2.0}[weights]
            - (5.0 if respacing == 100 else 0.0))


def make_workspace(root: Path, fid=None, quant8=None, sharpness=None, gap=None, rho_sharpness=None,
                   rho_loss=None) -> Path:
    """A workspace whose artifacts make every claim reproduce, unless the overrides say otherwise.

    fid: {("sam", "raw", 20): value}; quant8: {variant: 8-bit FID of raw weights}; sharpness: {(variant,
    weights): MC sharpness}; gap: {variant: exposure gap}; rho_sharpness: {rho: MC sharpness}; rho_loss: {rho:
    base loss} (default 0.05: every rho run has learned)."""
    fid, quant8, sharpness, gap = fid or {}, quant8 or {}, sharpness or {}, gap or {}
    write_params(root)
    value = lambda v, w, t: fid.get((v, w, t), base_fid(v, w, t))  # noqa: E731
    for v in VARIANTS:
        rows = {w: {f"T{t}": {"fid": value(v, w, t), "kid_mean": 0.1, "kid_std": 0.01} for t in RESPACINGS}
                for w in WEIGHTS}
        write_json(root / f"metrics/fid/{v}.json", {"extractor": "featurenet", "num_samples": 16, "rows": rows})
    write_json(root / "metrics/featurenet.json", {"train_acc": 0.9, "val_acc": 0.85})
    alphas = [-1.0, -0.5, 0.0, 0.5, 1.0]
    for v in VARIANTS:
        q = {}
        for w in WEIGHTS:
            f32 = value(v, w, 20)
            f8 = quant8.get(v, f32 + (0.0 if v == "sam" else 5.0)) if w == "raw" else f32 + 1.0
            q[w] = {"32": {"fid": f32, "weight_rel_error": 0.0}, "8": {"fid": f8, "weight_rel_error": 0.004},
                    "4": {"fid": f32 + 20.0, "weight_rel_error": 0.07}}
        write_json(root / f"metrics/quant/{v}.json", {"respacing": 20, "rows": q})
        flat, expo = {}, {}
        for w in WEIGHTS:
            sharp = sharpness.get((v, w), 0.001 if v == "sam" else 0.004 - 0.001 * (w != "raw"))
            base = 0.9
            flat[w] = {"lpf": {s: {"lpf": base + sharp * k, "std_err": 1e-4, "base_loss": base,
                                   "mc_sharpness": sharp * k} for s, k in (("0.005", 0.5), ("0.01", 1.0))},
                       "curve": {"alphas": alphas, "base_loss": base,
                                 "losses": [[base + 10 * sharp * a * a for a in alphas]]},
                       "hessian_top_eigenvalue": {"eigenvalue": 100 * sharp, "iterations": 2, "converged": False},
                       "hessian_trace": {"trace": 1000 * sharp, "std_err": 10 * sharp}}
            if w == "raw" and v in ("adm", "sam"):
                axis = [-1.0, 0.0, 1.0]
                flat[w]["surface"] = {"alphas": axis, "betas": axis, "base_loss": base,
                                      "losses": [[base + 10 * sharp * (a * a + b * b) for b in axis] for a in axis]}
            t = [999, 500, 0]
            g = gap.get(v, 1.0 if v == "sam" else 5.0) if w == "raw" else 2.0
            training = [16.0, 15.0, 14.0]
            expo[w] = {"t": t, "sampling_norm": [x + g for x in training], "training_norm": training,
                       "gap": [g, g, g], "aggregate": "mean", "gap_aggregate": g, "gap_mean": g, "gap_max": g,
                       "num_images": 8, "unit_noise_norm": 16.0}
        write_json(root / f"metrics/flatness/{v}.json", flat)
        write_json(root / f"metrics/exposure/{v}.json", expo)
        for w in WEIGHTS:
            for t in RESPACINGS:
                grid = (np.arange(32 * 64).reshape(32, 64) * (3 + VARIANTS.index(v)) % 256).astype(np.uint8)
                path = root / f"samples/{v}/{w}_T{t}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(grid).save(path)
            for bits in (8, 4):
                path = root / f"samples/quant/{v}/{w}_T20_{bits}bit.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(np.full((32, 64), 10 * bits, np.uint8)).save(path)
        for folder in (f"runs/{v}", f"runs/{v}_swa"):
            (root / folder).mkdir(parents=True, exist_ok=True)
            (root / folder / "log.csv").write_text("step,loss,mse,vb,lr\n2,1.0,0.9,0.1,0.0002\n4,0.8,0.7,0.1,0.0002\n")
    rho_sharpness = rho_sharpness or {0.0: 0.003, 0.1: 0.002, 0.5: 0.001}
    write_json(root / "metrics/rho_sweep.json", {
        "steps": 2, "sigma": 0.01, "respacing": 20,
        "rows": {str(float(r)): {"fid": 40.0 - r, "mc_sharpness": s, "base_loss": (rho_loss or {}).get(r, 0.05),
                                 "lpf": (rho_loss or {}).get(r, 0.05) + s, "run": "runs/x"}
                 for r, s in rho_sharpness.items()}})
    return root


def verdict(ws, claim_id):
    return report.claims(ws).loc[claim_id, "verdict"]


def test_every_claim_reproduces_on_paper_like_numbers(tmp_path):
    df = report.claims(make_workspace(tmp_path))
    assert list(df.columns) == ["group", "claim", "paper", "measured", "rule", "verdict"]
    assert (df["verdict"] == "reproduced").all(), df[df["verdict"] != "reproduced"]
    assert set(df["group"]) == set(CLAIM_GROUPS)


@pytest.mark.parametrize("sam_fid, expected", [(29.0, "reproduced"), (31.0, "not reproduced"),
                                               (30.0002, "not reproduced")])  # a printed tie fails
def test_sam_vs_adm_fid_verdict_flips(tmp_path, sam_fid, expected):
    ws = make_workspace(tmp_path, fid={("sam", "raw", 20): sam_fid})
    assert verdict(ws, "sam_T20") == expected
    assert verdict(ws, "sam_T100") == "reproduced"  # T'=100 untouched


def test_combined_and_indirect_fid_claims_flip(tmp_path):
    ws = make_workspace(tmp_path, fid={("sam", "ema", 100): 99.0, ("adm", "swa", 20): 31.0})
    df = report.claims(ws)
    assert df.loc["sam_ema", "verdict"] == "not reproduced"  # must hold at both T'
    assert df.loc["swa", "verdict"] == "not reproduced"
    assert df.loc["ema", "verdict"] == "reproduced"


def test_flatness_quant_exposure_rho_verdicts_flip(tmp_path):
    ws = make_workspace(tmp_path, sharpness={("adm", "swa"): 0.0005}, quant8={"sam": 20.0},
                        gap={"sam": 9.0}, rho_sharpness={0.0: 0.003, 0.1: 0.004, 0.5: 0.001})
    df = report.claims(ws)
    assert df.loc["mc_sharpness", "verdict"] == "not reproduced"
    assert "sigma=0.01" in df.loc["mc_sharpness", "measured"] and "sigma=0.005" in df.loc["mc_sharpness", "measured"]
    assert df.loc["quant_8bit", "verdict"] == "not reproduced"
    assert df.loc["exposure", "verdict"] == "not reproduced"
    assert df.loc["rho", "verdict"] == "not reproduced"


def test_table1_has_nine_rows_with_the_papers_numbers(tmp_path):
    ws = make_workspace(tmp_path)
    table = report.table1(ws)
    assert list(table.index) == list(PAPER_TABLE1)
    assert table.loc["ADM", "paper T'=20"] == 34.47 and table.loc["+SAM+SWA", "paper T'=100"] == 2.96
    assert table.loc["+SAM", "measured T'=20"] == 10.0
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
    assert report.exposure_table(ws).loc["+SAM", "paper gap"] == 3.32
    assert list(report.rho_table(ws).index) == [0.0, 0.1, 0.5]
    report.show_table(report.table1(ws), ws, "table1_fid", title="T1")
    report.print_claims(report.claims(ws), ws)
    report.print_choices(ws, "quantization")
    out = capsys.readouterr().out
    assert "34.47" in out and "10.000" in out
    assert "quant.per_channel = False  # reproduction choice: symmetric per-tensor round-to-nearest" in out
    assert str(tmp_path) not in out  # nothing absolute in compared text
    assert (tmp_path / "reports/tables/table1_fid.csv").is_file() and (tmp_path / "reports/tables/claims.csv").is_file()


@pytest.mark.parametrize("relpath, stage, call", [
    ("metrics/quant/sam.json", "quant@sam", report.quant_table),
    ("metrics/fid/adm.json", "fid@adm", report.table1),
    ("metrics/rho_sweep.json", "rho_sweep", report.rho_table),
    ("metrics/exposure/sam.json", "exposure@sam", report.claims),
    ("metrics/flatness/ip.json", "flatness@ip", report.claims),
    ("runs/sam_swa/log.csv", "swa@sam", lambda ws: artifacts.load_training_log(ws, "sam", "swa")),
    ("samples/adm/ema_T100.png", "sample@adm", lambda ws: report.plot_samples(ws, 100, show=False)),
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
             report.plot_fid_vs_paper, lambda w, show: report.plot_quant_samples(w, show=show)]
    names = ["loss_curves_1d", "loss_surfaces_2d", "noise_norms", "rho_sweep", "fid_vs_paper", "quant_samples_raw"]
    first = {}
    for plot, name in zip(plots, names):
        plot(ws, show=False)
        first[name] = figures.figure_path(ws, name).read_bytes()
        assert first[name][:8] == b"\x89PNG\r\n\x1a\n"
    for plot, name in zip(plots, names):
        plot(ws, show=False)
        assert figures.figure_path(ws, name).read_bytes() == first[name], name
    assert b"Software" not in first["loss_curves_1d"]


def test_stored_notebooks_are_clean_and_parameterized():
    nbformat = pytest.importorskip("nbformat")
    names = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))
    assert names == sorted(["table1_fid", "quantization", "flatness", "exposure", "rho_sweep", "summary"])
    for name in names:
        nb = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
        assert nb.metadata.kernelspec.name == "python3" and nb.metadata.kernelspec.language == "python"
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(c.outputs == [] and c.execution_count is None for c in code), name
        params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
        assert len(params) == 1 and params[0].source.startswith('workspace = ".."'), name
        assert len(nb.cells) <= 12 and nb.cells[0].cell_type == "markdown"
        assert any(c.cell_type == "markdown" and "Reproduction choices" in c.source for c in nb.cells)


def test_rho_verdict_fails_when_a_run_has_not_learned(tmp_path):
    ws = make_workspace(tmp_path, rho_loss={0.5: 1.01})  # sharpness still falls with rho, but rho 0.5 is untrained
    assert verdict(ws, "rho") == "not reproduced"
    assert "rho=0.5 did not learn (base loss 1.01000)" in report.claims(ws).loc["rho", "measured"]
