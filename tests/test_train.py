"""Training entry point: strict config, exact resume, SAM pass reuse, checkpoints, SWA phase, torchrun DDP."""
import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from flatlib.config import ConfigError, apply_overrides, load_yaml
from flatlib.schema import Params, RunConfig
from flatlib.training import train
from flatlib.training.trainer import Trainer, plateau

ROOT = Path(__file__).resolve().parent.parent

#: the tiny training sections, over params.yaml's other sections (a whole, checked Params)
TINY_SECTIONS = {
    "seeds": [0],
    "data": {"name": "digits", "root": "data", "image_size": 8, "holdout": 0, "hflip": False},
    "model": {"image_size": 8, "in_channels": 1, "num_channels": 32, "num_res_blocks": 1, "channel_mult": "1,2",
              "attention_resolutions": "4", "num_head_channels": 32, "dropout": 0.3, "learn_sigma": True},
    "diffusion": {"steps": 100, "noise_schedule": "cosine"},
    "optim": {"optimizer": "adam", "lr": 1e-3},
    "variants": {"adm": {}, "sam_ip": {"optimizer": "adam-sam", "rho": 0.05, "ip_gamma": 0.15},
                 "sam0": {"optimizer": "adam-sam", "rho": 0.0}},
    "train": {"steps": 6, "batch_size": 8, "ema_rate": 0.9, "ema_warmup": False, "log_every": 2, "save_every": 3,
              "device": "cpu"},
    "swa": {"start_step": 3, "steps": 4, "window": 2, "lr_min": 1e-5},
}
TINY = {**load_yaml(ROOT / "params.yaml"), **TINY_SECTIONS}
TINY["flatness"] = {**TINY["flatness"], "surface_variants": ["adm"], "t_max": 100}  # t_max <= diffusion.steps
TINY["rho_sweep"] = {**TINY["rho_sweep"], "rhos": []}


def resolve(params: dict, variant: str, seed: int | None = None) -> RunConfig:
    """The run config of ``variant`` in ``params`` (a whole params.yaml as a dict), as the train CLI builds it."""
    return Params.from_dict(copy.deepcopy(params), "params").run_config(variant, seed)


def write_params(tmp_path, params=TINY, **overrides):
    params = copy.deepcopy(params)
    apply_overrides(params, [f"{k.replace('__', '.')}={v}" for k, v in overrides.items()])
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def run(tmp_path, variant, out, *extra, **overrides):
    return train.main(["--params", str(write_params(tmp_path, **overrides)), "--variant", variant, "--out",
                       str(out), "--no-progress", *extra])


def load(path):
    return torch.load(path, weights_only=True)


@pytest.mark.parametrize("bad, message", [
    ({"optim": {"optimizer": "adam", "lr": 1e-3, "momentum": 0.9}}, "unknown key in .*'momentum'"),
    ({"train": {**TINY["train"], "steps": "many"}}, "params.train.steps must be"),
    ({"variants": {"adm": {"rho": -0.1}}}, r"variants.adm.rho must be >= 0, got -0.1"),
    ({"optim": {"optimizer": "sgd", "lr": 1e-3}}, "optim.optimizer must be one of"),
])
def test_bad_config_fails_before_any_work(tmp_path, bad, message):
    params = {**copy.deepcopy(TINY), **bad}
    if "sgd" not in str(bad):  # a plug-in name is checked where its registry lives (train_run, preflight)
        with pytest.raises(ConfigError, match=message):
            resolve(params, "adm")
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(params))
    result = subprocess.run([sys.executable, "-m", "flatlib.training.train", "--params", str(path), "--variant", "adm",
                             "--out", str(tmp_path / "run")], capture_output=True, text=True)
    assert result.returncode == 2 and result.stderr.startswith("flatlib.training.train: error: ")
    assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_unknown_variant_and_override_key_are_rejected():
    with pytest.raises(ConfigError, match="unknown variant 'swa'"):
        resolve(copy.deepcopy(TINY), "swa")
    with pytest.raises(ConfigError, match="unknown key 'stpes'"):
        apply_overrides(copy.deepcopy(TINY), ["train.stpes=3"])


def test_dry_run_prints_resolved_config(tmp_path, capsys):
    run(tmp_path, "sam_ip", tmp_path / "run", "--dry-run")
    resolved = yaml.safe_load(capsys.readouterr().out)
    assert resolved["optim"]["optimizer"] == "adam-sam" and resolved["optim"]["ip_gamma"] == 0.15
    assert resolved["model"]["use_scale_shift_norm"] is True  # defaults filled in
    assert not (tmp_path / "run").exists()


def test_resume_is_bitwise_identical(tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    run(tmp_path, "sam_ip", straight)
    run(tmp_path, "sam_ip", resumed, train__steps=3)
    assert (resumed / "opt000003.pt").is_file() and not (resumed / "model000006.pt").exists()
    metrics = run(tmp_path, "sam_ip", resumed)
    assert metrics["steps_run"] == 3
    for name in ["model000006.pt", "ema_0.9_000006.pt"]:
        a, b = load(straight / name), load(resumed / name)
        assert all(torch.equal(a[k], b[k]) for k in a), name
    # the model moved, so equality is not trivial
    first = load(straight / "model000003.pt")
    assert not all(torch.equal(first[k], a[k]) for k in a)
    config = yaml.safe_load((straight / "config.yaml").read_text())
    assert config["optim"]["rho"] == 0.05
    rows = (straight / "log.csv").read_text().splitlines()
    assert rows[0].startswith("step,loss,mse,vb,loss_q1,loss_q2,loss_q3,loss_q4,lr") and len(rows) == 4


def test_checkpoint_keeps_adam_moments(tmp_path):
    out = tmp_path / "run"
    run(tmp_path, "sam_ip", out, train__steps=3)
    cfg = resolve(yaml.safe_load((tmp_path / "params.yaml").read_text()), "sam_ip")
    trainer = Trainer(cfg, out)  # resumes from opt000003.pt
    state = load(out / "opt000003.pt")["optimizer"]["state"]
    first_param = next(trainer.model.parameters())
    moments = trainer.optimizer.base_optimizer.state[first_param]
    assert trainer.step == 3 and float(moments["step"]) == 3
    assert torch.equal(moments["exp_avg"], state[0]["exp_avg"]) and moments["exp_avg"].abs().sum() > 0


def test_sam_second_pass_reuses_noise_and_dropout(tmp_path):
    """With rho = 0 the SAM step must equal the Adam step exactly: only possible if the second forward sees
    the same timesteps, noise and dropout masks as the first (dropout is 0.3 here)."""
    adam, sam = tmp_path / "adam", tmp_path / "sam"
    run(tmp_path, "adm", adam, train__steps=2, train__save_every=2)
    run(tmp_path, "sam0", sam, train__steps=2, train__save_every=2)
    a, b = load(adam / "model000002.pt"), load(sam / "model000002.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_swa_phase_averages_window_ends(tmp_path):
    base, swa = tmp_path / "base", tmp_path / "swa"
    run(tmp_path, "adm", base)
    metrics = run(tmp_path, "adm", swa, "--phase", "swa", "--init", str(base))
    assert metrics["swa_snapshots"] == 2 and metrics["step"] == 7  # start 3 + 4 steps, window 2
    averaged = load(swa / "swa000007.pt")
    live = load(swa / "model000007.pt")
    assert averaged.keys() == live.keys() and not all(torch.equal(averaged[k], live[k]) for k in live)
    lrs = [float(line.split(",")[8]) for line in (swa / "log.csv").read_text().splitlines()[1:]]
    assert min(lrs) == pytest.approx(1e-5)  # the LR reached swa.lr_min at the end of a window


def test_swa_phase_without_init_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="--init"):
        run(tmp_path, "adm", tmp_path / "swa", "--phase", "swa", "--debug")


def test_torchrun_two_nodes_by_rendezvous_train_the_weights_of_one_node_with_two_processes(tmp_path, unused_tcp_port):
    """DDP (gloo) on one node with two processes, and on two "nodes" (two torchrun agents on localhost, one process
    each) that meet at a c10d rendezvous endpoint, as on a cluster: the same weights, bitwise."""
    params = write_params(tmp_path, train__steps=2, train__save_every=2)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def torchrun(out, *launch):
        return subprocess.Popen([sys.executable, "-m", "torch.distributed.run", *launch, "-m", "flatlib.training.train",
                                 "--params", str(params), "--variant", "sam_ip", "--out", str(out), "--no-progress"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)

    def finish(*agents):
        for agent in agents:
            output = agent.communicate(timeout=300)[0]
            assert agent.returncode == 0, output[-3000:]

    finish(torchrun(tmp_path / "node", "--nproc_per_node", "2", "--master_port", str(unused_tcp_port)))
    rendezvous = ["--nnodes", "2", "--nproc_per_node", "1", "--rdzv-backend", "c10d", "--rdzv-id", "two-nodes",
                  "--rdzv-endpoint", f"127.0.0.1:{unused_tcp_port}"]
    finish(*[torchrun(tmp_path / "nodes", *rendezvous) for _ in range(2)])
    assert json.loads((tmp_path / "nodes" / "metrics.json").read_text())["step"] == 2
    one, two = load(tmp_path / "node" / "model000002.pt"), load(tmp_path / "nodes" / "model000002.pt")
    assert one.keys() == two.keys() and all(torch.equal(one[k], two[k]) for k in one)


def test_changed_config_is_refused_unless_restart(tmp_path):
    out = tmp_path / "run"
    run(tmp_path, "adm", out, train__steps=2, train__save_every=2)
    with pytest.raises(SystemExit) as exit_info:  # lr changed: resuming would mix two configs
        run(tmp_path, "adm", out, train__steps=2, train__save_every=2, optim__lr=0.5)
    assert exit_info.value.code == 2
    assert run(tmp_path, "adm", out, train__steps=4, train__save_every=2)["steps_run"] == 2  # longer run resumes
    metrics = run(tmp_path, "adm", out, "--restart-if-changed", train__steps=2, train__save_every=2, optim__lr=0.5)
    assert metrics["steps_run"] == 2 and not (out / "model000004.pt").exists()


def test_seed_plumbing_pairs_variants_and_separates_seeds(tmp_path, monkeypatch):
    """The same training seed gives every variant the same initial weights and the same batches (a paired
    design); another seed gives other weights and other batches."""
    seen = {}

    def record(self, x0):
        seen.setdefault(self._key, []).append(x0.clone())
        return original(self, x0)

    original = Trainer.training_step
    monkeypatch.setattr(Trainer, "training_step", record)
    initial = {}
    for variant, seed in (("adm", 0), ("sam_ip", 0), ("adm", 1)):
        cfg = resolve(copy.deepcopy(TINY), variant, seed)
        assert cfg.seed == seed
        trainer = Trainer(cfg, tmp_path / f"{variant}{seed}")
        trainer._key = (variant, seed)
        initial[(variant, seed)] = {k: v.clone() for k, v in trainer.model.state_dict().items()}
        trainer.run(progress=False)
    same = lambda a, b: all(torch.equal(a[k], b[k]) for k in a)  # noqa: E731
    assert same(initial[("adm", 0)], initial[("sam_ip", 0)])
    assert not same(initial[("adm", 0)], initial[("adm", 1)])
    assert all(torch.equal(a, b) for a, b in zip(seen[("adm", 0)], seen[("sam_ip", 0)]))
    assert not all(torch.equal(a, b) for a, b in zip(seen[("adm", 0)], seen[("adm", 1)]))


def test_plateau_measures_on_synthetic_curves():
    """Issue 21: "plateaued" needs an OLS slope over the last quarter not distinguishable from zero AND a change per
    doubling of steps under the tolerance; a curve that still creeps down is "still descending"."""
    import numpy as np

    steps = np.arange(50, 2001, 50)
    noise = 0.0005 * np.random.default_rng(0).standard_normal(len(steps))  # +-0.3% checkpoint noise
    flat = plateau(steps, np.full(len(steps), 0.15), 0.25, 0.02, 0.05)
    assert flat["status"] == "plateaued" and flat["plateaued"] and flat["per_doubling"] == pytest.approx(0.0)
    noisy = plateau(steps, 0.15 + noise, 0.25, 0.02, 0.05)
    assert noisy["plateaued"] and noisy["slope_p"] >= 0.05 and abs(noisy["per_doubling"]) < 0.02
    # four times the noise: the slope is not significant, but a quarter cannot bound the change per doubling
    assert plateau(steps, 0.15 + 4 * noise, 0.25, 0.02, 0.05)["status"] == "not shown flat (noisy)"
    creeping = 0.2 - 0.004 * np.log2(steps)  # a slow log decrease: -2.6% per doubling of steps
    for curve in (creeping, creeping + noise):
        result = plateau(steps, curve, 0.25, 0.02, 0.05)
        assert result["status"] == "still descending" and not result["plateaued"] and result["per_doubling"] < 0
    exact = plateau(steps, creeping, 0.25, 0.02, 0.05)
    assert exact["per_doubling"] == pytest.approx(-0.004 / exact["final_eval_mse"], rel=0.01)
    assert plateau(steps, creeping, 0.25, 0.05, 0.05)["slope_p"] < 1e-6  # significant though under a 5% tolerance
    assert plateau(steps, creeping, 0.25, 0.05, 0.05)["status"] == "still descending"
    falling = 0.2 - 0.00002 * steps  # -6% over the last 500 steps
    result = plateau(steps, falling, 0.25, 0.02, 0.05)
    assert result["status"] == "still descending" and result["rel_change"] == pytest.approx(-0.01 / 0.16)
    assert result["points"] == 11 and result["slope"] == pytest.approx(-0.00002)
    assert plateau(steps, 0.15 + 0.00001 * steps, 0.25, 0.02, 0.05)["status"] == "rising"
    untrained = plateau(steps, np.full(len(steps), 1.0), 0.25, 0.02, 0.05)  # flat at "predict zero noise"
    assert untrained["status"] == "not learned" and not untrained["plateaued"]
    too_few = plateau(steps[-2:], falling[-2:], 0.25, 0.02, 0.05)  # no trend can be fitted: not shown
    assert too_few["status"] == "too few points" and not too_few["plateaued"] and too_few["points"] == 2


def test_every_run_records_its_plateau(tmp_path):
    out = tmp_path / "run"
    run(tmp_path, "adm", out, train__log_every=1)
    plateau = json.loads((out / "metrics.json").read_text())["plateau"]
    assert set(plateau) == {"rel_change", "slope", "slope_p", "per_doubling", "window", "tol", "level", "points",
                            "final_eval_mse", "learned", "status", "plateaued"}
    assert "eval_mse" in (out / "log.csv").read_text().splitlines()[0]
