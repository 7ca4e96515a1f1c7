"""flatlib.schema: one typed parse of params.yaml, the variant merge, and the checks across sections that
fail in seconds instead of after hours of training."""
import shutil
from pathlib import Path

import pytest

from flatlib.config import ConfigError
from flatlib.gd.importer import check_imports, import_flags
from flatlib.schema import check_swa_phase, load_params, params_comments

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
    assert [params.run_config("adm", s).seed for s in params.seeds] == params.seeds and len(params.seeds) >= 5  # issue 21: five seeds
    with pytest.raises(ConfigError, match="unknown variant 'swa'"):
        params.run_config("swa")


@pytest.mark.parametrize("override, message", [
    ("sample.respacings=[20, 2000]", r"sample.respacings \[2000\].*diffusion.steps = 1000"),
    ("quant.bits=[8, 1]", r"quant.bits must be a list of numbers in \[2, 16\], got \[8, 1\]"),
    ("quant.bits=[8.5]", r"quant.bits must be integers in \[2, 16\]"),
    ("swa.window=0", "swa.window must be >= 1, got 0"),
    ("rho_sweep.rhos=[0.0, 0.5]", r"rho_sweep.rhos must be a list of numbers > 0, got \[0.0, 0.5\]"),
    ("seeds=[0, 0]", "seeds .* distinct integers"),
    ("seeds=[]", "seeds .* distinct integers"),
    ("optim.lr=0.0", "optim.lr must be > 0"),
    ("variants={adm: {}, sam: {lr: -1e-4}}", r"variants.sam.lr must be > 0, got -0.0001"),
    ("quant.respacing=50", "quant.respacing 50 must be one of sample.respacings"),
    ("length.respacings=[50]", r"length.respacings \[50\] are not among sample.respacings \[20, 100\]"),
    ("exposure.aggregate=median", "exposure.aggregate must be one of"),
    ("variants={sam: {rhoo: 0.2}}", r"'rhoo' \(did you mean 'rho'\?\)"),
    ("flatness.surface_variants=[adm, swa]", r"flatness.surface_variants \['swa'\]"),
])
def test_cross_field_errors_before_any_work(params_file, override, message):
    with pytest.raises(ConfigError, match=message):
        load_params(params_file, [override])


# Issue 22: values that passed the preflight, then failed later or silently did the wrong thing.
@pytest.mark.parametrize("override, message", [
    ("fid.reference_size=-5", r"params.fid.reference_size must be >= 2, got -5"),
    ("fid.reference_size=0", r"params.fid.reference_size must be >= 2, got 0"),
    ("flatness.draws=-2", r"params.flatness.draws must be >= 1, got -2"),
    ("flatness.sigmas=[-0.01]", r"params.flatness.sigmas must be a list of numbers >= 0, got \[-0.01\]"),
    ("quant.bits=[33]", r"params.quant.bits must be a list of numbers in \[2, 16\], got \[33\]"),
    ("exposure.num=0", r"params.exposure.num must be >= 1, got 0"),
    ("featurenet.epochs=0", r"params.featurenet.epochs must be >= 1, got 0"),
    ("train.ema_rate=2.0", r"params.train.ema_rate must be in \[0, 1\), got 2.0"),
    ("flatness.hessian_iters=0", r"params.flatness.hessian_iters must be >= 1, got 0"),
    ("flatness.curve_points=1", r"params.flatness.curve_points must be >= 2, got 1"),
    ("flatness.t_min=900", r"flatness.t_min 900 and t_max 100: need t_min < t_max <= diffusion.steps = 1000"),
    ("fid.batch_size=0", r"params.fid.batch_size must be >= 1, got 0"),
    ("sample.batch_size=-1", r"params.sample.batch_size must be >= 1, got -1"),
    ("launch.nproc_per_node=0", r"params.launch.nproc_per_node must be >= 1, got 0"),
    ("model.num_channels=0", r"params.model.num_channels must be >= 1, got 0"),
    ("model.num_channels=48", r"num_channels 48 must be a multiple of 32 \(GroupNorm32\)"),
    ("model.dropout=1.0", r"params.model.dropout must be in \[0, 1\), got 1.0"),
    ("model.num_head_channels=0", r"params.model.num_head_channels must be >= 1 or -1, got 0"),
    ("optim.rho=-0.1", r"params.optim.rho must be >= 0, got -0.1"),
    ("verdict.confidence=1.0", r"params.verdict.confidence must be in \[0.5, 1\), got 1.0"),
])
def test_out_of_range_values_fail_before_any_work(params_file, override, message):
    overrides = [override] + (["flatness.t_max=100"] if override.startswith("flatness.t_min") else [])
    with pytest.raises(ConfigError, match=message):
        load_params(params_file, overrides)


def test_a_malformed_override_is_one_line(params_file):
    with pytest.raises(ConfigError, match=r"^override 'train.steps=\[1,', line 1, column 4: expected the node content"):
        load_params(params_file, ["train.steps=[1,"])
@pytest.mark.parametrize("override, message", [
    ("swa.steps=0", "swa.steps 0 must be >= 1"),
    ("swa.start_step=1700", "swa.start_step 1700 must be a saved step"),
    ("swa.start_step=2000", "swa.start_step 2000 must be a saved step"),
])
def test_the_swa_phase_must_start_from_a_saved_step_of_the_run(params_file, override, message):
    params = load_params(params_file, [override])  # a train phase of any length trains on its own
    with pytest.raises(ConfigError, match=message):
        check_swa_phase(params.train, params.swa)  # where an SWA phase runs or is planned (train_run, preflight)


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


# ------------------------------------------------------------------------------------------- imports
@pytest.fixture
def ddpmip_file(tmp_path) -> Path:
    """params.yaml with profiles/ddpmip_cifar10.yaml applied: adm and ip imported from DDPM-IP's files."""
    from flatlib.profiles import apply_profile

    shutil.copy2(ROOT / "params.yaml", tmp_path / "params.yaml")
    return apply_profile("ddpmip_cifar10", tmp_path / "params.yaml")


def test_imported_variants_measure_the_weights_they_have(ddpmip_file):
    params = load_params(ddpmip_file)
    assert params.imports["adm"].files == {"ema": "data/ddpm_ip/cifar10/ADM-baseline.pt"}
    assert import_flags(params.imports["ip"])["input_pertub"] == 0.15 and params.weights_of("ip") == ["ema"]
    mixed = load_params(ddpmip_file, ["sample.weights=[raw, ema, swa]", "variants={adm: {}, ip: {}, sam: {}}"])
    assert mixed.weights_of("adm") == ["ema"] and mixed.weights_of("sam") == ["raw", "ema", "swa"]


@pytest.mark.parametrize("overrides, message", [
    (["seeds=[0, 1]"], r"imports \['adm', 'ip'\] are one set of weights each: seeds must be one training seed"),
    (["variants={adm: {}}", "flatness.surface_variants=[adm]"],
     r"imports.ip: 'ip' is not a variant: add `ip: {}` to variants"),
    (["variants={adm: {}, ip: {ip_gamma: 0.15}}"], r"variants.ip sets \['ip_gamma'\], but ip is imported"),
    (["imports={adm: {ema: a.pt}}"], "give the guided-diffusion flags that built the weights: either flags"),
    (["imports={adm: {ema: a.pt, published: cifar10/ADM-IPP.pt}}"], r"did you mean 'cifar10/ADM-IP.pt'"),
    (["imports={adm: {published: cifar10/ADM-IP.pt}}"], "give the weights: a file for at least one of"),
    (["imports={adm: {ema: a.pt, flags: --image_size 32 --num_chanels 128}}"], "unknown guided-diffusion flag"),
    (["imports={adm: {ema: a.pt, published: cifar10/ADM-IP.pt}}"], r"imports.adm: no step in the file names"),
    (["model.num_channels=64"], r"imports.adm: the flags build another UNet(.|\n)*model.num_channels: 128 in the "
                                r"flags, 64 here"),
    (["model.num_head_channels=-1"], r"model.num_heads/num_head_channels/num_heads_upsample/use_new_attention_order: "
                                     r"4/32/-1/True in the flags, 4/-1/-1/True here"),
    (["diffusion.noise_schedule=linear"], "diffusion.noise_schedule: cosine in the flags, linear here"),
    (["data.image_size=64", "model.image_size=64"], "data.image_size 64 differs from --image_size 32"),
    (["data.name=digits"], "data.name 'digits' is not an RGB data set"),
    (["data.name=image_folder", "data.path=towers"], "cifar10/ADM-baseline.pt was trained on cifar10"),
    (["sample.weights=[raw]", "flatness.surface_variants=[]"], r"imports.adm gives \['ema'\] weights, none of "
                                                                r"sample.weights \['raw'\]"),
    (["flatness.surface_weights=[raw]"], r"flatness.surface_weights \['raw'\] are none of the weights measured for "
                                         r"adm \['ema'\]"),
    (["rho_sweep.rhos=[0.05]"], r"the rho sweep extends the adm .* and sam .* runs trained here, but these are not "
                              r"\(imported, or no such variant\): adm, sam;"),
])
def test_an_import_that_does_not_fit_the_profile_fails_before_any_work(ddpmip_file, overrides, message):
    """flatlib.schema checks what needs no flags; flatlib.gd.importer.check_imports (preflight, the train stage)
    the flags, files and step."""
    with pytest.raises(ConfigError, match=message):
        check_imports(load_params(ddpmip_file, overrides))


def test_rho_sweep_is_switched_off_by_no_rhos_and_reuses_measured_rows(params_file):
    assert load_params(params_file, ["rho_sweep.rhos=[]"]).rho_sweep.rhos == []
    with pytest.raises(ConfigError, match=r"rho_sweep.respacing 50 must be one of sample.respacings \[20, 100\]"):
        load_params(params_file, ["rho_sweep.respacing=50"])
    with pytest.raises(ConfigError, match=r"rho_sweep.sigma 0.02 must be one of flatness.sigmas"):
        load_params(params_file, ["rho_sweep.sigma=0.02"])
    with pytest.raises(ConfigError, match=r"sample.weights \['ema'\] must include raw"):
        load_params(params_file, ["sample.weights=[ema]", "flatness.surface_weights=[ema]"])
    with pytest.raises(ConfigError, match=r"holds the sam variant's rho 0.1"):
        load_params(params_file, ["rho_sweep.rhos=[0.05, 0.1]"])
    assert load_params(params_file, ["rho_sweep.rhos=[]", "rho_sweep.sigma=0.02"]).rho_sweep.sigma == 0.02


def test_params_rewritten_by_dvc_exp_run_set_read_the_same(params_file):
    """`dvc exp run -S flatness.draws=3` rewrites params.yaml through ruamel (YAML 1.2), unquoting "off": it must
    read as the string "off", not YAML 1.1's false."""
    from dvc.utils.serialize import modify_yaml

    with modify_yaml(params_file) as params:
        params["flatness"]["draws"] = 3
    assert 'compile: "off"' not in params_file.read_text()  # DVC dropped the quotes
    assert load_params(params_file) == load_params(ROOT / "params.yaml", ["flatness.draws=3"])
    assert load_params(ROOT / "params.yaml", ["train.compile=off"]).train.compile == "off"  # --set alike
