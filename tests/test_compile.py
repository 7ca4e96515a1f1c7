"""Compiled training and sampling on CPU (issue 13): a compiled step matches eager within tolerance and never
recompiles, the UNet traces without graph breaks, resume stays bitwise and per-image seeds still hold."""
import copy

import pytest
import torch
import yaml

from flatlib.measure import sample
from flatlib.training import train
from flatlib.training.trainer import Trainer
from flatlib.training.checkpoints import load_model
from flatlib.config import ConfigError
from flatlib.model.diffusion import diffusion_from_config
from flatlib.model.unet import create_unet
from flatlib.schema import SampleConfig, UNetConfig
from tests.test_train import TINY, resolve, load, run, write_params

COMPILED = {**TINY, "train": {**TINY["train"], "compile": "default"}}


def run_compiled(tmp_path, variant, out, **overrides):
    return train.main(["--params", str(write_params(tmp_path, COMPILED, **overrides)), "--variant", variant,
                       "--out", str(out), "--no-progress"])


def tiny_trainer(tmp_path, variant, compile_mode):
    """A Trainer of TINY without dropout (inductor draws its own dropout masks, so only dropout-free steps
    can match eager)."""
    params = copy.deepcopy(TINY)
    params["model"]["dropout"] = 0.0
    params["train"]["compile"] = compile_mode
    return Trainer(resolve(params, variant), tmp_path / compile_mode)


def test_invalid_compile_value_is_rejected():
    with pytest.raises(ConfigError, match="train.compile must be one of"):
        resolve({**copy.deepcopy(TINY), "train": {**TINY["train"], "compile": "fast"}}, "adm")
    with pytest.raises(ConfigError, match="sample.compile must be one of"):
        SampleConfig(num=1, sets=1, respacings=[20], compile="on")


def test_unet_has_no_graph_breaks():
    model = create_unet(UNetConfig.from_dict(TINY["model"]))
    explanation = torch._dynamo.explain(model)(torch.randn(2, 1, 8, 8), torch.tensor([3, 70]))
    assert explanation.graph_break_count == 0 and explanation.graph_count == 1


def test_compiled_step_matches_eager_and_does_not_recompile(tmp_path):
    """SAM with IP noise: both passes go through the compiled forward and backward."""
    eager, fast = tiny_trainer(tmp_path, "sam_ip", "off"), tiny_trainer(tmp_path, "sam_ip", "default")
    x0 = torch.rand(8, 1, 8, 8) * 2 - 1
    t, noise, ip_noise = torch.tensor([0, 5, 20, 40, 60, 80, 95, 99]), torch.randn_like(x0), torch.randn_like(x0)
    for trainer in (eager, fast):
        trainer._backward(x0, t, noise, ip_noise, torch.ones(8))
    for (name, p), q in zip(eager.model.named_parameters(), fast.model.parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-3, atol=1e-6, msg=lambda m, name=name: f"{name}: {m}")
        p.grad = q.grad = None
    for step in range(3):
        with torch._dynamo.config.patch(error_on_recompile=step > 0):
            a, b = eager.training_step(x0), fast.training_step(x0)
        torch.testing.assert_close(b["loss"], a["loss"], rtol=1e-4, atol=1e-5)
    bound = 2 * 3 * TINY["optim"]["lr"]  # an Adam step moves an element by ~lr at most: a flipped sign of a
    for (name, p), q in zip(eager.model.named_parameters(), fast.model.parameters()):  # near-zero gradient
        torch.testing.assert_close(q, p, rtol=0, atol=bound, msg=lambda m, name=name: f"{name}: {m}")
    assert fast.model.state_dict().keys() == eager.model.state_dict().keys()  # checkpoints stay unprefixed


def test_compiled_resume_is_bitwise_identical(tmp_path):
    """Compiled vs compiled, dropout 0.3 and SAM with IP noise: 6 straight steps equal 3 + resumed 3."""
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    run_compiled(tmp_path, "sam_ip", straight)
    run_compiled(tmp_path, "sam_ip", resumed, train__steps=3)
    run_compiled(tmp_path, "sam_ip", resumed)
    for name in ["model000006.pt", "ema_0.9_000006.pt"]:
        a, b = load(straight / name), load(resumed / name)
        assert all(torch.equal(a[k], b[k]) for k in a), name
    assert yaml.safe_load((straight / "config.yaml").read_text())["train"]["compile"] == "default"


def test_compiled_samples_keep_per_image_seeds_and_do_not_recompile(tmp_path):
    out = tmp_path / "run"
    run(tmp_path, "adm", out, train__steps=2, train__save_every=2)
    model, cfg, _ = load_model(out, "ema")
    torch.manual_seed(0)
    with torch.no_grad():  # give the zero-initialised output layer weights so samples are not trivial
        model.out[-1].weight.normal_(0, 0.1)
    diffusion = diffusion_from_config(cfg.diffusion, cfg.model.learn_sigma, 5)
    shape, seeds = cfg.model.image_shape, list(range(6))
    eager = sample.generate(model, diffusion, seeds, shape, batch_size=3, progress=False)
    sample.generate(model, diffusion, seeds[:3], shape, batch_size=3, progress=False, compile="default")
    with torch._dynamo.config.patch(error_on_recompile=True):  # 5 steps x 2 batches, one shape: compiled once
        fast = sample.generate(model, diffusion, seeds, shape, batch_size=3, progress=False, compile="default")
    shifted = sample.generate(model, diffusion, seeds[1:], shape, batch_size=5, progress=False, compile="default")
    assert torch.equal(fast[1:], shifted)
    assert (fast.int() - eager.int()).abs().max() <= 1  # uint8 truncation may flip an ulp-close pixel
