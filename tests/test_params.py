"""flatlib.params: one typed parse of params.yaml, the variant merge, and the checks across sections that
fail in seconds instead of after hours of training."""
import shutil
from pathlib import Path

import pytest

from flatlib.config import ConfigError
from flatlib.params import load_params, params_comments

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def params_file(tmp_path) -> Path:
    shutil.copy2(ROOT / "params.yaml", tmp_path / "params.yaml")
    return tmp_path / "params.yaml"


def test_variant_merges_into_optim_once(params_file):
    params = load_params(params_file)
    assert params.run_config("sam").optim.optimizer == "adam-sam"
    assert params.run_config("ip").optim.ip_gamma == 0.15 and params.run_config("adm").optim.ip_gamma == 0.0
    assert params.run_config("sam", rho=0.5).optim.rho == 0.5 and params.variant_rho("sam") == params.optim.rho
    assert [params.run_config("adm", s).seed for s in params.seeds] == params.seeds == [0, 1, 2]
    with pytest.raises(ConfigError, match="unknown variant 'swa'"):
        params.run_config("swa")


@pytest.mark.parametrize("override, message", [
    ("sample.respacings=[20, 2000]", r"sample.respacings \[2000\].*diffusion.steps = 1000"),
    ("quant.bits=[8, 1]", "quant.bits must be integers >= 2"),
    ("quant.bits=[8.5]", "quant.bits must be integers >= 2"),
    ("swa.window=0", "swa.window"),
    ("swa.start_step=1700", "swa.start_step 1700 must be a saved step"),
    ("swa.start_step=2000", "swa.start_step 2000 must be a saved step"),
    ("rho_sweep.rhos=[0.0, 0.5]", r"rho_sweep.rhos \[0.0, 0.5\] must be > 0"),
    ("seeds=[0, 0]", "seeds .* distinct integers"),
    ("seeds=[]", "seeds .* distinct integers"),
    ("optim.lr=0.0", "optim.lr must be > 0"),
    ("quant.respacing=50", "quant.respacing 50 must be one of sample.respacings"),
    ("exposure.aggregate=median", "exposure.aggregate must be one of"),
    ("variants={sam: {rhoo: 0.2}}", r"'rhoo' \(did you mean 'rho'\?\)"),
    ("flatness.surface_variants=[adm, swa]", r"flatness.surface_variants \['swa'\]"),
])
def test_cross_field_errors_before_any_work(params_file, override, message):
    with pytest.raises(ConfigError, match=message):
        load_params(params_file, [override])


def test_typo_names_the_key_and_the_nearest_valid_one(params_file):
    params_file.write_text(params_file.read_text().replace("  steps: 2000", "  stpes: 2000"))
    with pytest.raises(ConfigError, match=r"unknown key in params.train: 'stpes' \(did you mean 'steps'\?\)"):
        load_params(params_file)
    params_file.write_text(params_file.read_text().replace("quant:", "qaunt:"))
    with pytest.raises(ConfigError, match=r"'qaunt' \(did you mean 'quant'\?\)"):
        load_params(params_file)
    with pytest.raises(ConfigError, match=r"unknown key 'stesp' \(did you mean 'steps'\?\)"):
        load_params(ROOT / "params.yaml", ["train.stesp=3"])


def test_comments_document_the_reproduction_choices():
    comments = params_comments(ROOT / "params.yaml")
    assert comments["quant.per_channel"].startswith("reproduction choice")
    assert comments["optim.rho"] == "official README --rho 0.1"
