"""Sampling CLI: per-image seeds make samples batch-size independent; files and quantized sampling."""
import json

import numpy as np
import torch

from flatlib.measure import sample
from flatlib.model.diffusion import diffusion_from_config
from flatlib.training.checkpoints import load_model
from tests.test_train import run as train_run


def trained_run(tmp_path):
    out = tmp_path / "run"
    train_run(tmp_path, "adm", out, train__steps=2, train__save_every=2)
    return out


def test_samples_do_not_depend_on_batch_size(tmp_path):
    model, run, _ = load_model(trained_run(tmp_path), "ema")
    diffusion = diffusion_from_config(run.diffusion, run.model.learn_sigma, 5)
    torch.manual_seed(0)
    with torch.no_grad():  # give the zero-initialised output layer weights so samples are not trivial
        model.out[-1].weight.normal_(0, 0.1)
    a = sample.generate(model, diffusion, list(range(6)), run.model.image_shape, batch_size=6, progress=False)
    b = sample.generate(model, diffusion, list(range(6)), run.model.image_shape, batch_size=4, progress=False)
    c = sample.generate(model, diffusion, list(range(1, 7)), run.model.image_shape, batch_size=6, progress=False)
    assert a.dtype == torch.uint8 and a.shape == (6, 1, 8, 8)
    assert torch.equal(a, b)
    assert torch.equal(a[1:], c[:5]) and not torch.equal(a[0], a[1])


def test_cli_writes_npz_grid_and_sidecar(tmp_path):
    out = tmp_path / "s" / "ema.npz"
    info = sample.main(["--run", str(trained_run(tmp_path)), "--weights", "raw", "--respacing", "4", "--num", "3",
                        "--quant-bits", "8", "--out", str(out), "--no-progress", "--device", "cpu"])
    samples = np.load(out)["samples"]
    assert samples.shape == (3, 1, 8, 8) and samples.dtype == np.uint8
    assert out.with_suffix(".png").is_file()
    assert json.loads(out.with_suffix(".json").read_text()) == info
    assert info["step"] == 2 and 0 < info["quant_relative_error"] < 0.01
