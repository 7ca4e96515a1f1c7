"""Imported variants before the evaluation stages: flatlib.stages.runs (the DVC train and swa stages) imports instead of
training, and flatlib.stages.preflight checks the imported files and records their SHA-256."""
import json
import os

import pytest

from flatlib import layout
from flatlib.schema import load_params
from flatlib.stages import preflight, runs
from flatlib.training.checkpoints import is_swa_phase, load_model
from flatlib.config import load_yaml
from flatlib.layout import IMPORT_RECORD
from flatlib.measure.metrics import sha256_file
from tests.imported_workspace import FLAGS, save_gd_weights, write_cifar10_batches, write_imported_params

IMPORTS = {"adm": {"ema": "data/imported/ADM-baseline.pt", "flags": FLAGS, "step": 1},
           "ip": {"ema": "data/imported/ip_ema.pt", "swa": "data/imported/ip_swa.pt", "flags": FLAGS, "step": 1}}


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """A workspace (the working directory) with adm imported (EMA weights), ip imported (EMA and SWA weights),
    sam trained, stand-in CIFAR-10."""
    for seed, path in enumerate(("ADM-baseline.pt", "ip_ema.pt", "ip_swa.pt")):
        save_gd_weights(tmp_path / "data/imported" / path, seed)
    write_cifar10_batches(tmp_path / "data")
    write_imported_params(tmp_path / "params.yaml", IMPORTS)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_train_and_swa_stages_import_an_imported_variant(workspace):
    for variant in ("adm", "ip"):
        for phase in ("train", "swa"):
            runs.main([phase, "--variant", variant, "--seed", "0"])
    model, run, step = load_model(layout.run_dir("adm", 0), "ema")
    assert step == 1 and run.model.num_channels == 32 and run.seed == 0
    record = json.loads((layout.run_dir("adm", 0) / IMPORT_RECORD).read_text())
    assert record["weights"]["ema"]["sha256"] == sha256_file("data/imported/ADM-baseline.pt")
    no_swa = json.loads((layout.run_dir("adm", 0, "swa") / IMPORT_RECORD).read_text())
    assert no_swa["weights"] == {} and "gives ema weights, none of swa" in no_swa["note"]
    assert sorted(p.name for p in layout.run_dir("adm", 0, "swa").iterdir()) == [".lock", IMPORT_RECORD]
    assert is_swa_phase(layout.run_dir("ip", 0, "swa")) and load_model(layout.run_dir("ip", 0, "swa"), "swa")[2] == 1
    assert not is_swa_phase(layout.run_dir("ip", 0))
    for folder in (layout.run_dir("adm", 0), layout.run_dir("adm", 0, "swa")):  # the report reads the copies
        assert sorted(p.name for p in layout.run_record(folder).iterdir()) == [IMPORT_RECORD]
        assert (layout.run_record(folder) / IMPORT_RECORD).read_bytes() == (folder / IMPORT_RECORD).read_bytes()


def test_an_import_replaces_what_the_folder_held_and_a_rerun_writes_nothing(workspace):
    folder = layout.run_dir("adm", 0)
    folder.mkdir(parents=True)
    (folder / layout.RUN_LOG).write_text("step,loss\n")  # the folder of a run trained before adm was imported
    runs.main(["train", "--variant", "adm", "--seed", "0"])
    assert not (folder / layout.RUN_LOG).exists() and (folder / IMPORT_RECORD).is_file()
    stamps = {p: p.stat().st_mtime_ns for p in folder.iterdir()}
    runs.main(["train", "--variant", "adm", "--seed", "0"])
    assert {p: p.stat().st_mtime_ns for p in folder.iterdir()} == stamps
    save_gd_weights(workspace / "data/imported/ADM-baseline.pt", seed=9)  # another file under the same name
    runs.main(["train", "--variant", "adm", "--seed", "0"])
    assert json.loads((folder / IMPORT_RECORD).read_text())["weights"]["ema"]["sha256"] == sha256_file(
        "data/imported/ADM-baseline.pt")


def test_a_trained_variant_trains_through_a_typed_config(workspace, monkeypatch):
    """No argv round trip: the stage calls train_run with the run config of Params.run_config."""
    called = []
    monkeypatch.setattr(runs, "train_run", lambda *args, **kwargs: called.append((args, kwargs)))
    runs.main(["swa", "--variant", "sam", "--seed", "0"])
    params = load_params("params.yaml")
    assert called == [((params.run_config("sam", 0), layout.run_dir("sam", 0, "swa"), "swa", layout.run_dir("sam", 0)),
                       dict(restart=True, progress=True))]
    monkeypatch.setenv("RANK", "1")
    runs.main(["train", "--variant", "adm", "--seed", "0"])  # rank 1 of torchrun: rank 0 imports
    assert not layout.run_dir("adm", 0).exists()


def test_unknown_variant_or_seed_is_one_line(workspace, capsys):
    with pytest.raises(SystemExit) as exit_info:
        runs.main(["train", "--variant", "adm", "--seed", "3"])
    assert exit_info.value.code == 2 and "--seed 3: choose a seed of [0]" in capsys.readouterr().err


def test_preflight_checks_every_imported_file_and_records_its_digest(workspace, capsys):
    params = load_yaml("params.yaml")
    assert preflight.problems(params, workspace) == []
    preflight.main(["--out", "data/preflight.json"])
    digests = json.loads((workspace / "data/preflight.json").read_text())["imports"]
    assert digests == {"adm": {"ema": sha256_file("data/imported/ADM-baseline.pt")},
                       "ip": {kind: sha256_file(f"data/imported/ip_{kind}.pt") for kind in ("ema", "swa")}}
    os.remove("data/imported/ADM-baseline.pt")
    save_gd_weights(workspace / "data/imported/ip_swa.pt", 0, FLAGS.replace("--num_channels 32", "--num_channels 64"))
    found = preflight.problems(params, workspace)
    assert len(found) == 2
    assert found[0].startswith("imports.adm: ")
    assert f"{workspace / 'data/imported/ADM-baseline.pt'} not found" in found[0]
    assert "DDPM-IP publishes ADM-baseline.pt for cifar10 at https://drive.google.com/" in found[0]
    assert found[1].startswith("imports.ip.swa: ") and "most likely flag: --num_channels 64 (given 32" in found[1]


def test_several_ranks_go_through_torchrun_and_end_with_their_status(workspace, monkeypatch):
    """launch.nproc_per_node > 1: torchrun's launcher runs in-process; its SignalException (Ctrl-C, passed once to
    every rank) and ChildFailedError (a rank's expected failure, which the rank printed) become the ranks' exit
    status, without torchrun's traceback."""
    import signal

    import torch.distributed.run as torchrun
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, ProcessFailure

    launched = []
    monkeypatch.setattr(runs, "launch_ranks", lambda argv, nproc: launched.append((argv, nproc)))
    write_imported_params(workspace / "params.yaml", IMPORTS, launch={"nproc_per_node": 2})
    runs.main(["train", "--variant", "sam", "--seed", "0"])
    runs.main(["train", "--variant", "adm", "--seed", "0"])  # imported: no ranks to launch
    write_imported_params(workspace / "params.yaml", {}, launch={"nproc_per_node": 2}, rho_sweep={"rhos": [0.05]})
    runs.main(["rho", "--seed", "0", "--rho", "0.05"])  # the rho sweep's runs start through the launcher too
    with pytest.raises(SystemExit):
        runs.main(["rho", "--seed", "0", "--rho", "0.2"])  # not a rho of the sweep: one line, nothing launched
    assert launched == [(["train", "--variant", "sam", "--seed", "0"], 2),
                        (["rho", "--seed", "0", "--rho", "0.05"], 2)]
    monkeypatch.undo()

    def stopped(config):
        raise SignalException("Process 1 got signal: 2", signal.SIGINT)

    def failed(config):
        raise ChildFailedError("flatlib.runs", {1: ProcessFailure(1, 11, -9, ""), 0: ProcessFailure(0, 10, 2, "")})

    for fake, status in ((stopped, 130), (failed, 2)):
        monkeypatch.setattr(torchrun, "run", fake)
        with pytest.raises(SystemExit) as exit_info:
            runs.launch_ranks(["train", "--variant", "sam", "--seed", "0"], 2)
        assert exit_info.value.code == status
