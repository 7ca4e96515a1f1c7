"""Fault injection (issue 14): no stale result, fail fast, never lose a run. Tiny CPU runs only.

Guarantee -> test: stale FID reference -> test_changed_reference_gives_a_new_fid; code change -> retrain ->
test_code_change_is_refused_or_restarts; no-op rerun writes nothing -> test_noop_rerun_writes_nothing;
shorter train.steps -> test_shorter_steps_is_refused_and_load_model_uses_the_configured_step; SWA --init
check -> test_swa_init_from_another_variant_is_refused; lock -> test_second_trainer_on_a_folder_fails_at_once;
preflight -> test_preflight_lists_every_problem_before_any_work; truncated checkpoint ->
test_truncated_newest_checkpoint_resumes_from_the_previous_bitwise (atomic writes:
test_atomic_writes_leave_the_old_file_or_the_new_one); SIGTERM ->
test_sigterm_stops_with_a_checkpoint_and_rerun_resumes; corrupt image -> test_corrupt_image_is_one_error_naming_it;
one-line errors, --debug -> test_expected_failures_are_one_line_bugs_and_debug_keep_the_traceback.
"""
import copy
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from flatlib import atomic
from flatlib.measure import metrics
from flatlib.stages import preflight
from flatlib.training import train
from flatlib.training.checkpoints import load_model
from flatlib.config import ConfigError
from flatlib.errors import CorruptFileError, MissingInputError, cli_errors
from tests.test_metrics import make_patterns, shift
from tests.test_train import TINY, resolve, load, run, write_params

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def files_state(folder):
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(folder.iterdir())}


def assert_same_weights(a, b):
    a, b = load(a), load(b)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def expect_exit(capsys, *args, **overrides) -> str:
    """Run flatlib.training.train expecting an expected failure: exit status 2 and one line on stderr."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        run(*args, **overrides)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith("flatlib.training.train: error: ") and "Traceback" not in err
    return err


# ------------------------------------------------------------------------------------ no stale result
def test_changed_reference_gives_a_new_fid(tmp_path):
    """The issue's repro: data/reference.npz changes under the same cache name; FID must change with it."""
    torch.manual_seed(0)
    weights = tmp_path / "featurenet.pt"
    metrics.save_feature_net(weights, metrics.FeatureNet(in_channels=1, num_classes=4))
    reference = tmp_path / "reference.npz"
    samples = make_patterns(96, seed=2)[0]
    common = dict(extractor="featurenet", weights_path=weights, kid=False, batch_size=96)
    np.savez_compressed(reference, samples=make_patterns(96, seed=1)[0].numpy())
    first = metrics.compute_metrics(samples, reference, cache_root=tmp_path / "cache",
                                    reference_cache_name="reference-featurenet", **common)["fid"]
    np.savez_compressed(reference, samples=shift(make_patterns(64, seed=3)[0], 40).numpy())  # reference_size 96 -> 64
    second = metrics.compute_metrics(samples, reference, cache_root=tmp_path / "cache",
                                     reference_cache_name="reference-featurenet", **common)["fid"]
    fresh = metrics.compute_metrics(samples, reference, cache_root=tmp_path / "nocache", **common)["fid"]
    assert second != first and second == fresh


def test_code_change_is_refused_or_restarts(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    run(tmp_path, "adm", out, train__steps=2, train__save_every=2)
    assert json.loads((out / "code.json").read_text()) == train.code_digest()
    files = train.code_digest()["files"]
    assert "flatlib/training/sam.py" in files and "flatlib/stages/pipeline.py" not in files  # what shapes training, only
    edited = {"sha256": "0" * 64, "files": ["flatlib/training/train.py"]}
    monkeypatch.setattr(train, "code_digest", lambda: edited)  # as if a training source had been edited
    err = expect_exit(capsys, tmp_path, "adm", out, train__steps=2, train__save_every=2)
    assert "different code" in err and "--restart-if-changed" in err
    metrics_ = run(tmp_path, "adm", out, "--restart-if-changed", train__steps=2, train__save_every=2)
    assert metrics_["steps_run"] == 2 and json.loads((out / "code.json").read_text()) == edited


def test_noop_rerun_writes_nothing(tmp_path):
    out = tmp_path / "run"
    first = run(tmp_path, "adm", out, train__steps=2, train__save_every=2)
    before = files_state(out)
    again = run(tmp_path, "adm", out, train__steps=2, train__save_every=2)
    assert files_state(out) == before
    assert again["steps_run"] == 0 and again["final_loss"] == first["final_loss"] is not None


def test_shorter_steps_is_refused_and_load_model_uses_the_configured_step(tmp_path, capsys):
    out = tmp_path / "run"
    run(tmp_path, "adm", out)  # 6 steps, checkpoints 3 and 6
    err = expect_exit(capsys, tmp_path, "adm", out, train__steps=3)
    assert "last step (3, below its checkpoint of step 6)" in err
    assert load_model(out, "raw")[2] == 6
    interrupted = tmp_path / "interrupted"
    run(tmp_path, "adm", interrupted, train__steps=3)
    config = yaml.safe_load((interrupted / "config.yaml").read_text())
    (interrupted / "config.yaml").write_text(yaml.safe_dump({**config, "train": {**config["train"], "steps": 6}}))
    with pytest.raises(MissingInputError, match="configured step 6 \\(saved: \\[3\\]\\)"):
        load_model(interrupted, "raw")  # never the newest (step 3) instead of the configured step


def test_swa_init_from_another_variant_is_refused(tmp_path):
    base = tmp_path / "adm"
    run(tmp_path, "adm", base, train__steps=3)
    with pytest.raises(ConfigError, match="--init .*optim.ip_gamma, optim.optimizer, optim.rho"):
        run(tmp_path, "sam_ip", tmp_path / "sam_ip_swa", "--phase", "swa", "--init", str(base), "--debug")
    with pytest.raises(ConfigError, match="--init .*model.dropout"):
        run(tmp_path, "adm", tmp_path / "adm_swa", "--phase", "swa", "--init", str(base), "--debug",
            model__dropout=0.0)


def test_second_trainer_on_a_folder_fails_at_once(tmp_path, capsys):
    out = tmp_path / "run"
    with train.hold_run_folder(out):  # another trainer (an orphaned torchrun) holds the folder
        err = expect_exit(capsys, tmp_path, "adm", out, train__steps=2)
    assert "being written by another trainer" in err and not list(out.glob("*.pt"))
    (out / ".model000002.pt.x1y2.tmp").write_bytes(b"left by a kill -9 during a write")
    assert run(tmp_path, "adm", out, train__steps=2)["steps_run"] == 2  # the lock died with its holder
    assert not list(out.glob(".*.tmp"))


# ------------------------------------------------------------------------------------------ fail fast
def test_preflight_lists_every_problem_before_any_work(tmp_path, capsys, monkeypatch):
    params = yaml.safe_load(open(os.path.join(REPO, "params.yaml")))
    assert preflight.problems(params, tmp_path) == []
    paper = copy.deepcopy(params)
    paper["data"].update(name="cifar10", image_size=32)
    paper["model"].update(image_size=32, in_channels=3, attention_resolutions="16")
    paper["fid"].update(extractor="inception", inception_weights=f"data/{metrics.INCEPTION_WEIGHTS_FILE}")
    found = preflight.problems(paper, tmp_path)
    assert len(found) == 2
    assert str(tmp_path / "data" / "cifar-10-batches-py") in found[0]
    assert str(tmp_path / "data" / metrics.INCEPTION_WEIGHTS_FILE) in found[1]
    assert metrics.INCEPTION_WEIGHTS_URL in found[1]
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / metrics.INCEPTION_WEIGHTS_FILE).write_bytes(b"not the weights")
    assert "is not torch-fidelity's Inception weights" in preflight.problems(paper, tmp_path)[1]
    monkeypatch.setattr(preflight.shutil, "disk_usage", lambda path: type("U", (), {"free": 10 * 2 ** 20})())
    assert any("not enough free disk" in p for p in preflight.problems(params, tmp_path))
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(paper))
    with pytest.raises(SystemExit) as exit_info:
        preflight.main(["--params", str(path), "--workspace", str(tmp_path)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith("flatlib.stages.preflight: error: 3 problems found before any work")
    assert not (tmp_path / "runs").exists()


def test_expected_failures_are_one_line_bugs_and_debug_keep_the_traceback(capsys, monkeypatch):
    with pytest.raises(SystemExit) as exit_info, cli_errors("demo"):
        raise MissingInputError("data/x.npz not found: run `dvc repro reference`")
    assert exit_info.value.code == 2 and capsys.readouterr().err == (
        "flatlib.demo: error: data/x.npz not found: run `dvc repro reference`\n")
    with pytest.raises(KeyError), cli_errors("demo"):  # a bug is not an expected failure
        raise KeyError("adaptive")
    with pytest.raises(MissingInputError), cli_errors("demo", debug=True):
        raise MissingInputError("shown with its traceback")
    monkeypatch.setenv("FLATLIB_DEBUG", "1")
    with pytest.raises(MissingInputError), cli_errors("demo"):
        raise MissingInputError("shown with its traceback")


def test_corrupt_image_is_one_error_naming_it(tmp_path, capsys):
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(7):
        Image.fromarray(np.full((12, 12, 3), 30 * i, np.uint8)).save(folder / f"{i}.png")
    (folder / "7.png").write_bytes(b"\x89PNG\r\n\x1a\n cut short")
    data = {"name": "image_folder", "root": str(tmp_path), "path": "images", "image_size": 8, "holdout": 0}
    params = {**copy.deepcopy(TINY), "data": data, "model": {**TINY["model"], "in_channels": 3}}
    err = expect_exit(capsys, tmp_path, "adm", tmp_path / "run", params=params)
    assert len(err.splitlines()) == 1 and str(folder / "7.png") in err


# ------------------------------------------------------------------------------------ never lose a run
def test_atomic_writes_leave_the_old_file_or_the_new_one(tmp_path):
    path = tmp_path / "model000002.pt"
    atomic.torch_save({"w": torch.ones(3)}, path)
    with pytest.raises(Exception):
        atomic.torch_save({"w": torch.zeros(3), "bad": lambda: 0}, path)  # fails half-way through pickling
    assert torch.equal(load(path)["w"], torch.ones(3)) and sorted(tmp_path.iterdir()) == [path]
    atomic.savez_compressed(tmp_path / "s.tmpnpz", samples=np.arange(3))
    assert np.load(tmp_path / "s.tmpnpz")["samples"].tolist() == [0, 1, 2]
    atomic.write_json(tmp_path / "m.json", {"fid": 1.5}, indent=1)
    assert json.loads((tmp_path / "m.json").read_text()) == {"fid": 1.5}


def test_truncated_newest_checkpoint_resumes_from_the_previous_bitwise(tmp_path, capsys):
    straight, crashed = tmp_path / "straight", tmp_path / "crashed"
    run(tmp_path, "sam_ip", straight)
    run(tmp_path, "sam_ip", crashed, train__steps=4, train__save_every=2)
    os.truncate(crashed / "model000004.pt", 100)  # a crash during a write, as `truncate -s 100` leaves it
    with pytest.raises(CorruptFileError, match=str(crashed / "model000004.pt")):
        load_model(crashed, "raw")
    capsys.readouterr()
    assert run(tmp_path, "sam_ip", crashed, train__save_every=2)["steps_run"] == 4  # from step 2 to 6
    warning = capsys.readouterr().err
    assert "skipping the checkpoint of step 4" in warning and str(crashed / "model000004.pt") in warning
    for name in ["model000006.pt", "ema_0.9_000006.pt"]:
        assert_same_weights(straight / name, crashed / name)
    assert load_model(crashed, "raw", step=4)[2] == 4  # written again, whole


def test_sigterm_stops_with_a_checkpoint_and_rerun_resumes(tmp_path):
    params = write_params(tmp_path, train__steps=1000, train__log_every=1, train__save_every=1000)
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    process = subprocess.Popen([sys.executable, "-m", "flatlib.training.train", "--params", str(params), "--variant", "adm",
                                "--out", str(out), "--no-progress"], stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    while not (out / "log.csv").is_file() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    _, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM and time.monotonic() - sent < 10, err
    assert err.startswith("flatlib.training.train: error: stopped by SIGTERM at step ") and "rerun" in err, err
    step = int(err.split("at step ")[1].split()[0])
    assert 1 <= step < 12 and (out / f"opt{step:06d}.pt").is_file() and not list(out.glob(".*.tmp"))
    resumed = run(tmp_path, "adm", out, train__steps=12, train__log_every=1, train__save_every=1000)
    assert resumed["steps_run"] == 12 - step
    straight = tmp_path / "straight"
    run(tmp_path, "adm", straight, train__steps=12, train__save_every=1000)
    assert_same_weights(straight / "model000012.pt", out / "model000012.pt")


# ------------------------------------------------------------------------------------- issue 22
def dvc_folder_hash(repo, folder) -> str:
    """The hash DVC records for ``folder`` as an output (its .dvcignore applied)."""
    from dvc_data.hashfile.build import build

    _, _, obj = build(repo.cache.local, str(folder), repo.fs, "md5", ignore=repo.dvcignore)
    return obj.hash_info.value


def test_identical_retrain_keeps_the_folder_hash(tmp_path):
    """Timings go to timings.json, which .dvcignore keeps out of the hash: a retrain from scratch with the same
    weights leaves the run folder's DVC hash, and so every downstream stage, unchanged."""
    from dvc.repo import Repo

    subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=tmp_path, check=True)
    (tmp_path / ".dvcignore").write_text(open(os.path.join(REPO, ".dvcignore")).read())
    repo = Repo(str(tmp_path))
    out = tmp_path / "runs" / "adm" / "seed0"
    first = run(tmp_path, "adm", out, train__log_every=1)
    before, timings = dvc_folder_hash(repo, out), json.loads((out / "timings.json").read_text())
    assert timings["steps_run"] == 6 and timings["seconds"] > 0 and "seconds" not in first.get("plateau", {})
    shutil.rmtree(out)
    run(tmp_path, "adm", out, train__log_every=1)
    assert dvc_folder_hash(repo, out) == before
    assert "steps_per_second" not in (out / "log.csv").read_text()


def test_resume_cuts_the_log_back_to_the_checkpoint(tmp_path):
    """A crash after step 6 was logged but before its checkpoint was complete (kill -9 between the log row and
    the training state): the resume from step 3 logs steps 4 to 6 once, as an uninterrupted run does."""
    straight, crashed = tmp_path / "straight", tmp_path / "crashed"
    run(tmp_path, "adm", straight, train__log_every=1)
    run(tmp_path, "adm", crashed, train__log_every=1)
    (crashed / "opt000006.pt").unlink()  # the training state is written last: step 6 never completed
    assert run(tmp_path, "adm", crashed, train__log_every=1)["steps_run"] == 3
    assert (crashed / "log.csv").read_text() == (straight / "log.csv").read_text()


def test_a_changed_checkpoint_is_skipped_like_a_truncated_one(tmp_path, capsys):
    straight, changed = tmp_path / "straight", tmp_path / "changed"
    run(tmp_path, "adm", straight)
    run(tmp_path, "adm", changed)
    ema = changed / "ema_0.9_000006.pt"
    data = bytearray(ema.read_bytes())
    data[len(data) // 2:len(data) // 2 + 4] = b"\xff\xff\xff\xff"  # same length, loads without error
    ema.write_bytes(bytes(data))
    with pytest.raises(CorruptFileError, match=f"{ema} changed after it was written"):
        load_model(changed, "ema")
    capsys.readouterr()
    assert run(tmp_path, "adm", changed)["steps_run"] == 3  # from step 3, not "done"
    assert "skipping the checkpoint of step 6" in capsys.readouterr().err
    for name in ["model000006.pt", "ema_0.9_000006.pt"]:
        assert_same_weights(straight / name, changed / name)


def test_files_get_the_mode_of_a_plain_open(tmp_path):
    previous = os.umask(0o002)  # a group-shared workspace
    try:
        run(tmp_path, "adm", tmp_path / "run", train__steps=2, train__save_every=2)
        (tmp_path / "plain").write_text("")
    finally:
        os.umask(previous)
    plain = (tmp_path / "plain").stat().st_mode & 0o777
    assert plain == 0o664
    assert {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "run").glob("*.*")} == {
        p.name: plain for p in (tmp_path / "run").glob("*.*")}


@pytest.fixture
def small_disk(tmp_path):
    """A tmpfs of 1 MiB at tmp_path/disk (grow it with ``mount -o remount,size=...``), or a skip."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root: the disk-full test runs as root (CI container) only")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], capture_output=True,
                             text=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip()}): the disk-full test needs one")
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_a_full_disk_mid_run_is_one_line_and_resumes(tmp_path, small_disk, capsys):
    straight = tmp_path / "straight"
    run(tmp_path, "adm", straight)
    checkpoint = sum(p.stat().st_size for p in straight.glob("*000003.pt"))
    size = int(1.5 * checkpoint) // 4096 * 4096  # room for the checkpoint of step 3, not for step 6's
    subprocess.run(["mount", "-o", f"remount,size={size}", str(small_disk)], check=True)
    out = small_disk / "run"
    err = expect_exit(capsys, tmp_path, "adm", out)
    assert len(err.splitlines()) == 1 and "no space left on the device writing " + str(out) in err, err
    assert "MiB free there): free some space and rerun the same command" in err
    assert not list(out.glob(".*.tmp")) and (out / "opt000003.pt").is_file()
    subprocess.run(["mount", "-o", f"remount,size={4 * size}", str(small_disk)], check=True)  # space freed
    assert run(tmp_path, "adm", out)["steps_run"] == 3  # resumed from step 3
    for name in ["model000006.pt", "ema_0.9_000006.pt"]:
        assert_same_weights(straight / name, out / name)


def stage_command(stage: str, **item) -> str:
    """The command dvc.yaml gives a matrix stage, as ``dvc repro`` runs it."""
    cmd = yaml.safe_load(open(os.path.join(REPO, "dvc.yaml")))["stages"][stage]["cmd"]
    for key, value in item.items():
        cmd = cmd.replace("${item.%s}" % key, str(value))
    return cmd.replace("${launch.nproc_per_node}", "1")


def test_ctrl_c_under_dvc_repro_is_the_trainer_line_and_exit_130(tmp_path):
    """Ctrl-C sends SIGINT to the foreground process group (DVC ignores it while a stage runs): the train stage's
    command ends with the trainer's line and status 130, no launcher traceback."""
    params = yaml.safe_load(open(os.path.join(REPO, "params.yaml")))
    params["train"].update(steps=1000, log_every=1, save_every=500)
    params["swa"].update(start_step=500)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    env = {**os.environ, "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}", "PYTHONPATH": REPO,
           "OMP_NUM_THREADS": str(torch.get_num_threads())}
    from dvc.stage.run import _make_cmd, get_executable  # the shell DVC runs a stage's command in ($SHELL)

    command = _make_cmd(get_executable(), stage_command("train", variant="adm", seed=0))
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    log = tmp_path / "runs" / "adm" / "seed0" / "log.csv"
    deadline = time.monotonic() + 120
    while not log.is_file() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.killpg(process.pid, signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "Traceback" not in err and err.splitlines()[-1].startswith("flatlib.stages.runs: error: stopped by SIGINT at "
                                                                     "step "), err
