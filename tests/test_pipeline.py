"""The DVC pipeline end to end at the smoke profile, in a fresh copy of the repository.

Builds ``$FLATLIB_SMOKE_DIR`` (default ``.smoke``): a copy of the tracked files with profiles/smoke.yaml
applied, on which ``dvc repro`` runs every stage; then checks that a second repro has nothing to do, that
changing one parameter invalidates only the stages that read it, and that an experiment (``dvc exp run --temp
-S``) reruns only those in a temporary clone and compares with the baseline. The Makefile's test target afterwards
validates the stored notebook outputs (tests/nbval/*.ipynb) with nbval inside this workspace.
"""
import itertools
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

import pytest
import yaml

from flatlib import layout
from flatlib.config import ConfigError
from flatlib.schema import load_params
from flatlib.profiles import apply_profile
from flatlib.stages import summary
from tests.test_pages import needs_chromium, probe_all, too_wide, unmatched
from tests.workspace import ROOT, copy_repository
from tests.workspace import run as run_in

SMOKE = Path(os.environ.get("FLATLIB_SMOKE_DIR", ROOT / ".smoke")).resolve()
PARALLEL = SMOKE.with_name(SMOKE.name + "-parallel")  # the same pipeline run by flatlib.stages.parallel


def run(cmd, cwd=SMOKE):
    return run_in(cmd, cwd)


@pytest.fixture(scope="module")
def workspace():
    copy_repository(SMOKE)
    apply_profile("smoke", SMOKE / "params.yaml")
    run(["dvc", "repro"])
    expected = SMOKE / "expected"  # stored notebook outputs, validated by nbval next to reports/
    expected.mkdir()
    for notebook in (ROOT / "tests" / "nbval").glob("*.ipynb"):
        shutil.copy2(notebook, expected / notebook.name)
    return SMOKE


def test_every_stage_ran_and_wrote_its_artifacts(workspace):
    params = load_params(workspace / "params.yaml")
    seed = params.seeds[0]
    for variant in ("adm", "ip", "sam"):
        fid = json.loads((workspace / layout.variant_metrics("fid", variant, seed)).read_text())
        assert set(fid["rows"]) == {"raw", "ema", "swa"}
        assert all(set(row) == {"T20", "T100"} for row in fid["rows"].values())
        assert all(len(t["fid"]) == params.sample.sets for row in fid["rows"].values() for t in row.values())
        assert all(isinstance(t["fid_all"], float) for row in fid["rows"].values() for t in row.values())
        plateau = json.loads((workspace / layout.run_dir(variant, seed) / layout.RUN_METRICS).read_text())["plateau"]
        assert set(plateau) >= {"rel_change", "per_doubling", "slope_p", "status"}  # recorded (4 smoke steps)
    for kind in layout.PER_VARIANT_METRICS:
        assert sorted(p.parent.name for p in (workspace / layout.METRICS / kind).glob("*/*.json")) == ["adm", "ip", "sam"]
    length = json.loads((workspace / layout.length_metrics("adm", seed)).read_text())  # 4 steps saved every 2
    assert length["fractions"] == {"0.5": 2, "0.75": 2} and set(length["rows"]) == {"2"} and "equal_progress" in length
    assert {"fid20_adm", "sharp_sam", "gap_sam", "dfid8_sam", "reproduced"} <= set(
        json.loads((workspace / layout.SUMMARY).read_text()))
    assert all((workspace / layout.plot_file(name)).is_file() for name in layout.PLOT_NAMES)
    floor = json.loads((workspace / layout.FID_FLOOR).read_text())
    assert floor["counts"] == {"set": params.sample.num, "all": params.sample.num * params.sample.sets}
    assert len(floor["all"]["fid"]) == params.fid.floor_draws
    assert (workspace / layout.CLAIM_PARTS).is_file() and (workspace / layout.CLAIM_SEEDS).is_file()
    notebooks = sorted(p.stem for p in (workspace / "reports").glob("*.ipynb"))
    assert notebooks == sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))
    assert (workspace / layout.run_dir("sam", seed, "swa") / layout.weights_file("swa", 4, 0.999)).is_file()


def test_second_repro_has_nothing_to_do(workspace):
    # preflight runs on every repro (always_changed) and writes the same bytes, so nothing after it reruns
    assert json.loads(run(["dvc", "status", "--json"])) == {"preflight": ["always changed"]}


def test_two_jobs_at_once_give_the_serial_results_and_a_final_repro_reruns_nothing(workspace):
    """flatlib.stages.parallel --jobs 2 (two stages at a time, each `dvc repro --single-item` in one workspace): training
    stages overlap, a plain `dvc repro` afterwards runs nothing but the always-changed preflight, and every metric
    is bitwise the serial run's (the `workspace` fixture's)."""
    copy_repository(PARALLEL)
    apply_profile("smoke", PARALLEL / "params.yaml")
    start = time.time()
    log = run([sys.executable, "-m", "flatlib.stages.parallel", "--jobs", "2"], cwd=PARALLEL)
    print(f"flatlib.stages.parallel --jobs 2: {time.time() - start:.0f} s\n{log}")
    jobs = json.loads((PARALLEL / ".dvc/tmp/parallel/runs.json").read_text())
    training = [job for job in jobs if job["stage"].split("@")[0] in ("train", "swa", "rho_train")]
    assert any(a["start"] < b["end"] and b["start"] < a["end"] for a, b in itertools.combinations(training, 2))
    assert set(re.findall(r"Running stage '([^']+)'", run(["dvc", "repro"], cwd=PARALLEL))) == {"preflight"}
    assert json.loads(run(["dvc", "status", "--json"], cwd=PARALLEL)) == {"preflight": ["always changed"]}
    measured = sorted(p.relative_to(PARALLEL) for folder in (layout.METRICS, layout.RESULTS)
                      for p in (PARALLEL / folder).rglob("*") if p.is_file())
    assert measured == sorted(p.relative_to(workspace) for folder in (layout.METRICS, layout.RESULTS)
                              for p in (workspace / folder).rglob("*") if p.is_file())
    assert [p for p in measured if (PARALLEL / p).read_bytes() != (workspace / p).read_bytes()] == []
    # the SLURM code path (submitit), here with submitit's local executor: it runs only what is out of date
    run([sys.executable, "-m", "flatlib.stages.parallel", "--executor", "submitit-local"], cwd=PARALLEL)
    jobs = json.loads((PARALLEL / ".dvc/tmp/parallel/runs.json").read_text())
    assert [(job["stage"], job["returncode"]) for job in jobs] == [("preflight", 0)]


def test_editing_the_cli_or_the_report_retrains_nothing(workspace):
    """Training stages depend on the training code only (flatlib.sources.TRAINING_CODE): a help text or a claim
    edited leaves every run folder up to date; a trainer edit does not."""
    edited = {workspace / "flatlib" / "cli.py": b"\n# a help text edited\n",
              workspace / "flatlib" / "report" / "claims.py": b"\n# a claim edited\n"}
    originals = {path: path.read_bytes() for path in edited}
    training = ("train@", "swa@", "rho_train@")
    try:
        for path, extra in edited.items():
            path.write_bytes(originals[path] + extra)
        status = json.loads(run(["dvc", "status", "--json"]))
        assert not [name for name in status if name.startswith(training)]
        assert "summary" in status  # the report's readers do rerun
        trainer = workspace / "flatlib" / "training" / "trainer.py"
        originals[trainer] = trainer.read_bytes()
        trainer.write_bytes(originals[trainer] + b"\n# the loop edited\n")
        status = json.loads(run(["dvc", "status", "--json"]))
        seeds = load_params(workspace / "params.yaml").seeds
        assert {f"train@{v}-{s}" for v in ("adm", "ip", "sam") for s in seeds} <= set(status)
    finally:
        for path, data in originals.items():
            path.write_bytes(data)


def test_one_param_change_invalidates_only_its_readers(workspace):
    params = workspace / "params.yaml"
    original = params.read_text()
    try:
        params.write_text(original.replace("aggregate: mean_before_last", "aggregate: max"))
        status = json.loads(run(["dvc", "status", "--json"]))
        seeds = load_params(params).seeds
        readers = [f"exposure@{v}-{s}" for v in ("adm", "ip", "sam") for s in seeds] + ["preflight"]
        assert sorted(status) == sorted(readers + ["notebooks"])  # the notebooks print the params (choices)
    finally:
        params.write_text(original)


def commit_the_baseline():
    """Commit the smoke workspace as it is (experiments are git commits over a baseline), once."""
    for key, value in (("user.name", "flatlib tests"), ("user.email", "tests@flatlib.invalid")):
        run(["git", "config", key, value])
    if run(["git", "status", "--porcelain"]):
        run(["git", "add", "-A"])
        run(["git", "commit", "-q", "-m", "smoke baseline"])


def test_an_experiment_reruns_its_readers_in_a_clone_and_leaves_the_baseline(workspace):
    """The README's experiment workflow: `dvc exp run --temp -S flatness.draws=3 summary` commits the experiment
    without touching the workspace; `dvc params diff`, `dvc metrics diff` and `dvc plots diff` compare it with
    the baseline commit."""
    commit_the_baseline()
    baseline = {p: (workspace / p).read_bytes() for p in ("params.yaml", "dvc.lock", layout.SUMMARY)}
    draws = load_params(workspace / "params.yaml").flatness.draws + 1
    log = run(["dvc", "exp", "run", "--temp", "--name", "draws", "--set-param", f"flatness.draws={draws}", "summary"])
    params = load_params(workspace / "params.yaml")
    readers = ({f"{stage}@{v}-{s}" for stage in ("flatness", "length") for v in ("adm", "ip", "sam")
                for s in params.seeds}
               | {f"rho_sweep@{s}-{rho}" for s in params.seeds for rho in params.rho_sweep.rhos}
               | {"preflight", "summary"})
    assert set(re.findall(r"Running stage '([^']+)'", log)) == readers
    assert json.loads(run(["dvc", "params", "diff", "HEAD", "draws", "--json"])) == {
        "params.yaml": {"flatness.draws": {"old": draws - 1, "new": draws, "diff": 1}}}
    changed = json.loads(run(["dvc", "metrics", "diff", "HEAD", "draws", "--json"]))[layout.SUMMARY.as_posix()]
    assert set(changed) == {"sharp_adm", "sharp_sam"}  # MC sharpness: more draws; nothing else the summary holds
    plots = json.loads(run(["dvc", "plots", "diff", "HEAD", "draws", "--json"]))["data"]
    assert len(plots) == len(yaml.safe_load((workspace / "dvc.yaml").read_text())["plots"])
    assert all(p[0]["revisions"] == ["HEAD", "draws"] for p in plots.values())
    assert {p: (workspace / p).read_bytes() for p in baseline} == baseline  # the workspace is the baseline still
    assert run(["git", "status", "--porcelain"]) == ""
    assert json.loads(run(["dvc", "status", "--json"])) == {"preflight": ["always changed"]}


def test_other_respacings_and_two_seeds_run_end_to_end_with_a_coherent_summary(workspace):
    """Issue 19: T' and the seeds come from params.yaml alone. With ``sample.respacings: [20, 50]`` and ``seeds: [0,
    1]`` (an experiment in a temporary clone) every stage runs, the notebooks and publish included; the summary has
    T'=50 keys where it had T'=100 ones, the claims on T'=100 are "not evaluated", the report has a T'=50 grid."""
    commit_the_baseline()
    run(["dvc", "exp", "run", "--temp", "--name", "t50", "--set-param", "sample.respacings=[20, 50]",
         "--set-param", "seeds=[0, 1]"])
    changed = json.loads(run(["dvc", "metrics", "diff", "HEAD", "t50", "--json"]))[layout.SUMMARY.as_posix()]
    rows = summary.FID_ROWS  # the summary's headline FID rows, one key fid{T'}_{row} each
    assert {f"fid100_{row}" for row in rows} <= {key for key, diff in changed.items() if diff["new"] is None}
    assert {f"fid50_{row}" for row in rows} <= {key for key, diff in changed.items() if diff["old"] is None}
    assert changed["not_evaluated"]["old"] == 0 < changed["not_evaluated"]["new"]
    experiment = run(["git", "for-each-ref", "--format=%(refname)", "refs/exps"]).split()
    experiment = next(ref for ref in experiment if ref.endswith("/t50"))
    figures = run(["git", "ls-tree", "--name-only", experiment, f"{layout.DOCS_FIGURES.as_posix()}/"]).split()
    assert {Path(path).name for path in figures} >= {"samples_T20.png", "samples_T50.png"}
    assert "samples_T100.png" not in {Path(path).name for path in figures}
    records = run(["git", "ls-tree", "-r", "--name-only", experiment, layout.TRAIN_RECORDS.as_posix()]).split()
    assert {Path(path).relative_to(layout.TRAIN_RECORDS).parts[1] for path in records} == {"seed0", "seed1"}
    assert json.loads(run(["dvc", "status", "--json"])) == {"preflight": ["always changed"]}


@pytest.mark.parametrize("profile", sorted(p.stem for p in (ROOT / "profiles").glob("*.yaml")))
def test_every_profile_yields_a_valid_config(tmp_path, profile):
    copy = tmp_path / "params.yaml"
    shutil.copy2(ROOT / "params.yaml", copy)
    apply_profile(profile, copy)
    params = load_params(copy)  # typed sections and every check across them
    for variant in params.variants:
        cfg = params.run_config(variant)
        assert cfg.swa.start_step + cfg.swa.steps == cfg.train.steps  # SWA replaces the end of the run


def test_profile_with_unknown_key_is_rejected(tmp_path, monkeypatch):
    from flatlib import profiles

    monkeypatch.setattr(profiles, "PROFILES", tmp_path)
    (tmp_path / "typo.yaml").write_text("train: {stpes: 3}\n")
    shutil.copy2(ROOT / "params.yaml", tmp_path / "params.yaml")
    with pytest.raises(ConfigError, match="train.stpes"):
        apply_profile("typo", tmp_path / "params.yaml")


@needs_chromium
def test_the_published_pages_fit_a_laptop_and_a_phone(workspace):
    probes = probe_all(sorted((workspace / layout.DOCS).glob("*.html")))
    assert len(probes) == 2 * (len(layout.NOTEBOOK_NAMES) + 1) and not too_wide(probes) and not unmatched(probes)
