"""Issue 21 items 3-5: the checkpoints stage length measures (flatlib.stages.length) and the equal-progress
picker on synthetic training logs."""
import json

import pytest

from flatlib.config import ConfigError
from flatlib.stages.length import equal_progress_step, held_out_losses, nearest_step


def write_log(path, losses: dict) -> None:
    """A log.csv as the trainer writes it: eval_mse only where it was measured (blank elsewhere)."""
    lines = ["step,loss,mse,vb,lr,eval_mse"] + [f"{s},1.0,0.9,0.1,0.002,{'' if v is None else v}"
                                                 for s, v in losses.items()]
    path.write_text("\n".join(lines) + "\n")


def test_the_picker_takes_the_checkpoint_whose_held_out_loss_is_closest_to_sams_final(tmp_path):
    write_log(tmp_path / "log.csv", {25: 0.40, 50: None, 100: 0.30, 150: 0.24, 200: 0.21, 250: 0.20})
    losses = held_out_losses(tmp_path / "log.csv")
    assert 50 not in losses and losses[150] == 0.24
    checkpoints = [100, 200, 250]                       # 150 is logged but no checkpoint: not a candidate
    assert equal_progress_step(losses, checkpoints, 0.235) == 200
    assert equal_progress_step(losses, checkpoints, 0.10) == 250   # SAM further along: ADM's final
    assert equal_progress_step(losses, checkpoints, 0.90) == 100
    assert equal_progress_step({100: 0.3, 200: 0.2}, [100, 200], 0.25) == 200  # a tie: the later checkpoint
    with pytest.raises(ConfigError, match="log_every"):
        equal_progress_step(losses, [50], 0.2)


def test_a_fraction_of_training_is_the_nearest_saved_checkpoint():
    steps = [250, 500, 750, 1000, 1250, 1500, 1750, 2000]
    assert [nearest_step(steps, f * 2000) for f in (0.5, 0.75, 0.6)] == [1000, 1500, 1250]
    assert nearest_step([2, 4], 3) == 2                 # a tie: the earlier checkpoint


# ------------------------------------------------------------------------- the report on a synthetic workspace
from tests.test_report import JITTER, SEEDS, VARIANTS, base_fid, make_workspace  # noqa: E402

from flatlib.profiles import apply_profile  # noqa: E402
from flatlib.report import length  # noqa: E402

FINAL, FRACTIONS, LAST_K, ADM_EQUAL = 4, {"0.5": 2, "0.75": 3}, [2, 3, 4], 3


def write_length(root, fid_at, fractions=FRACTIONS) -> None:
    """metrics/length/V/seedS.json as stage length writes them: raw and EMA at steps 2 and 3 (fractions 0.5 and
    0.75 of 4), the last three checkpoints, adm's equal-progress checkpoint 3; ``fid_at(variant, weights, T',
    step)`` -> FID (plus the seed's jitter; sample sets +-0.05); MC sharpness as the final (make_workspace)."""
    for s in SEEDS:
        j = 0.01 * JITTER[s]
        for v in VARIANTS:
            sharp = {"adm": 0.004, "ip": 0.0035, "sam": 0.001}[v] * (1 + j)
            lpf = {sig: {"lpf": 0.9 + sharp * k, "std_err": 1e-4, "base_loss": 0.9, "mc_sharpness": sharp * k}
                   for sig, k in (("0.005", .5), ("0.01", 1.))}
            scores = lambda w, t, step: {"fid": [fid_at(v, w, t, step) + 10 * j + d for d in (-.05, .05)],  # noqa: E731
                                         "kid_mean": [0.1, 0.1], "fid_all": fid_at(v, w, t, step) + 10 * j}
            rows = {str(step): {w: {"fid": {f"T{t}": scores(w, t, step) for t in (20, 100)}, "lpf": lpf}
                                for w in ("raw", "ema")} for step in (2, 3)}
            record = dict(final_step=FINAL, fractions=fractions, last_k=LAST_K, num_samples=16, sets=2, rows=rows)
            if v == "adm":
                record["equal_progress"] = dict(step=ADM_EQUAL, target=0.2, eval_mse=0.21)
            path = root / f"metrics/length/{v}/seed{s}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(record))


def test_verdicts_against_training_length_mark_a_change_before_the_end(tmp_path):
    """At 75% of training +SAM is much worse than ADM (contradicted), at the end better (reproduced): marked. A
    claim with an SWA row has no outcome before the SWA phase; ADM at SAM's held-out loss (step 3) beats SAM."""
    ws = make_workspace(tmp_path)
    write_length(ws, lambda v, w, t, step: base_fid(v, w, t) * (0.2 if (v, step) == ("adm", ADM_EQUAL) else 1.0)
                 + (40.0 if (v, step) == ("sam", 3) else 0.0))
    table = length.length_verdicts(ws)
    assert list(table.columns) == ["50% (step 2)", "75% (step 3)", "100% (step 4)", "changes 75% -> 100%"]
    assert table.loc["sam_T20", "75% (step 3)"].startswith("contradicted")
    assert table.loc["sam_T20", "100% (step 4)"].startswith("reproduced")
    assert table.loc["sam_T20", "changes 75% -> 100%"] == "CHANGES"
    assert table.loc["ema", "changes 75% -> 100%"] == ""
    assert table.loc["sam_swa", "50% (step 2)"] == table.loc["mc_sharpness", "50% (step 2)"] == "not evaluated"
    assert table.loc["ip_flatness", "50% (step 2)"].startswith("reproduced")
    effects = length.length_effects(ws)
    assert sorted(effects.loc[effects["part"] == "T'=20: +SAM vs ADM", "step"]) == [2, 3, 4]
    assert length.show_training_length(ws) is not None and (ws / "reports/figures/length_effects.png").is_file()

    control = length.equal_progress(ws)
    assert control.loc["sam_T20", "survives"] == "NO" and control.loc["sam_swa", "survives"] == "-"
    assert list(length.equal_progress_steps(ws)["ADM checkpoint"]) == [ADM_EQUAL] * len(SEEDS)


def test_iterate_noise_sets_the_spread_over_the_last_checkpoints_beside_the_seeds(tmp_path):
    """Raw FID at the last three checkpoints final - 1, final + 1, final: sd 1 between iterates against 0.1
    between seeds (make_workspace's jitter), and the mean over them equal to the final."""
    ws = make_workspace(tmp_path)
    write_length(ws, lambda v, w, t, step: base_fid(v, w, t) + {2: -1.0, 3: 1.0}[step])
    df = length.iterate_noise(ws)
    row = df.loc[("ADM", 20)]
    assert row["sd between iterates"] == pytest.approx(1.0) and row["sd between seeds"] == pytest.approx(0.1)
    assert row["iterate share"] == pytest.approx(100.0) and row["mean of last 3"] == pytest.approx(row["final"])


def test_the_stage_measures_each_checkpoint_once_and_never_the_final_step(tmp_path, monkeypatch):
    """Fractions 0.5 and 0.75 of 8 steps saved every 2 (raw and EMA), the last 4 raw iterates, adm's equal-progress
    checkpoint: each step once, with the union of its weights; the final step is Table 1's."""
    from flatlib.schema import load_params
    from flatlib.stages.length import plan
    from tests.test_report import write_params

    write_params(tmp_path, seeds=(0,))
    monkeypatch.chdir(tmp_path)
    params = load_params("params.yaml", ["train.steps=8", "train.save_every=2", "train.log_every=1",
                                         "length.fractions=[0.5, 0.75]", "length.last_k=4"])
    for step in (2, 4, 6, 8, 10):                       # a step past train.steps is never measured
        (tmp_path / "runs/adm/seed0").mkdir(parents=True, exist_ok=True)
        (tmp_path / f"runs/adm/seed0/opt{step:06d}.pt").write_bytes(b"")
    for variant, losses in (("adm", {2: .5, 4: .3, 6: .25, 8: .2}), ("sam", {2: .6, 4: .45, 6: .34, 8: .31})):
        (tmp_path / f"metrics/train/{variant}/seed0").mkdir(parents=True)
        write_log(tmp_path / f"metrics/train/{variant}/seed0/log.csv", losses)
    todo = plan(params, "adm", 0)
    assert todo["fractions"] == {"0.5": 4, "0.75": 6} and todo["last_k"] == [2, 4, 6, 8]
    assert todo["equal_progress"] == {"step": 4, "target": .31, "eval_mse": .3}
    assert todo["measure"] == {2: ["raw"], 4: ["raw", "ema"], 6: ["raw", "ema"]}


def test_a_fraction_whose_checkpoint_is_the_final_step_reads_table_1(tmp_path):
    """Few saved steps: 75% of training is the final checkpoint, whose raw and EMA rows are Table 1's (measured
    once), so its verdicts are the final ones wherever no SWA row is needed."""
    ws = make_workspace(tmp_path)
    write_length(ws, lambda v, w, t, step: base_fid(v, w, t) + 40.0 * (v == "sam"), {"0.5": 2, "0.75": FINAL})
    table = length.length_verdicts(ws)
    assert table.loc["sam_T20", "50% (step 2)"].startswith("contradicted")
    assert table.loc["sam_T20", "75% (step 4)"] == table.loc["sam_T20", "100% (step 4)"]
    assert table.loc["sam_swa", "75% (step 4)"] == "not evaluated" and table["changes 75% -> 100%"].eq("").all()


def test_nothing_trained_here_has_no_length_checks(tmp_path, capsys):
    """An import is one set of weights, no checkpoints: the notebook's cell says so and draws nothing."""
    ws = make_workspace(tmp_path, seeds=(0,))
    apply_profile("ddpmip_cifar10", ws / "params.yaml")
    assert length.show_training_length(ws) is None
    out = capsys.readouterr().out
    assert "No training-length measurements" in out and "No equal-progress control" in out
