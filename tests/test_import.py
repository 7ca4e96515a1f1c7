"""Importing guided-diffusion / DDPM-IP / ADM-ES checkpoints: flatlib.gd.flags, flatlib.gd.weights, flatlib.gd.importer.

Fixtures in guided-diffusion's layout: tests/data/gd_unet_*.pt.xz, state_dicts and outputs made by guided-diffusion
itself for both attention orders (see tests/test_unet.py), and state_dicts of flatlib's own UNet, whose keys and
shapes tests/test_unet.py proves equal to guided-diffusion's, saved as guided-diffusion saves them
(``torch.save(model.state_dict(), path)``) with DDPM-IP's CIFAR-10 flags at width 32.
"""
import dataclasses
import io
import json
import lzma
from pathlib import Path

import pytest
import torch

from flatlib import layout
from flatlib.training.checkpoints import is_swa_phase, load_model
from flatlib.config import ConfigError
from flatlib.errors import CorruptFileError, MissingInputError, RunFolderError
from flatlib.gd.flags import parse_flags
from flatlib.gd.importer import (DDPM_IP_README, PUBLISHED, CheckpointSource, check_evaluated_on, default_swa_out,
                                 differences_from, import_checkpoint, import_source, main)
from flatlib.gd.weights import (SHAPELESS_FLAGS, WeightsMismatchError, check_reference, check_state_dict,
                                model_from_state_dict, read_reference, read_state_dict, relative_error)
from flatlib.measure.metrics import sha256_file
from flatlib.model.unet import count_parameters, create_unet
from flatlib.schema import DataConfig, DiffusionConfig, ImportConfig, UNetConfig

DATA = Path(__file__).parent / "data"
CIFAR10 = DataConfig(name="cifar10", image_size=32, holdout=0)
# DDPM-IP's CIFAR-10 flags (its README) at width 32 instead of 128
TINY_CIFAR10_FLAGS = PUBLISHED["cifar10/ADM-IP.pt"].flags.replace("--num_channels 128", "--num_channels 32")
# the flags of tests/data/gd_unet_updown_neworder (attention rates 1, 2 at 16x16 are resolutions 16, 8)
UPDOWN_NEWORDER_FLAGS = ("--image_size 16 --num_channels 32 --num_res_blocks 1 --channel_mult 1,1 "
                         "--attention_resolutions 16,8 --num_head_channels 16 --learn_sigma True --dropout 0.3 "
                         "--use_scale_shift_norm True --resblock_updown True --use_new_attention_order True")
# tests/data/gd_unet_legacy_conv has 1 input channel, which no guided-diffusion flag gives: a UNetConfig
LEGACY_CONV_CONFIG = UNetConfig(image_size=16, in_channels=1, num_channels=32, num_res_blocks=1, channel_mult="1,2",
                                attention_resolutions="16,8", num_heads=2, num_heads_upsample=4,
                                num_head_channels=-1, use_scale_shift_norm=False, dropout=0.3, learn_sigma=False)


def gd_fixture(name):
    return torch.load(io.BytesIO(lzma.decompress((DATA / f"{name}.pt.xz").read_bytes())), weights_only=True)


def randomised_state_dict(cfg, seed):
    """A state_dict of the UNet of ``cfg`` away from its zero init: N(0, 0.05^2), GroupNorm scales around 1."""
    torch.manual_seed(seed)
    model = create_unet(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.05)
        for m in model.modules():
            if isinstance(m, torch.nn.GroupNorm):
                m.weight.add_(1)
    return model.state_dict()


@pytest.fixture(scope="module")
def cifar_files(tmp_path_factory):
    """Raw, EMA and SWA weights of the tiny DDPM-IP CIFAR-10 model at step 100, and the EMA weights' output."""
    folder = tmp_path_factory.mktemp("gd_run")
    cfg = parse_flags(TINY_CIFAR10_FLAGS).unet_config()
    files = {"raw": folder / "model000100.pt", "ema": folder / "ema_0.9999_000100.pt", "swa": folder / "swa000100.pt"}
    for seed, path in enumerate(files.values()):
        torch.save(randomised_state_dict(cfg, seed), path)
    generator = torch.Generator().manual_seed(7)
    x, t = torch.randn(2, 3, 32, 32, generator=generator), torch.tensor([10, 900])
    with torch.no_grad():
        out = model_from_state_dict(cfg, torch.load(files["ema"], weights_only=True))(x, t)
    torch.save(dict(x=x, t=t, out=out), folder / "reference.pt")
    return dict(files, reference=folder / "reference.pt")


def source(flags, files, **kwargs):
    return CheckpointSource(parse_flags(flags), files, **kwargs)


def output(model, reference):
    with torch.no_grad():
        return model(reference["x"], reference["t"])


# ------------------------------------------------------------------------------------------------ flags
def test_flags_read_as_the_scripts_read_them():
    flags = parse_flags("--image_size=32 --num_channels 64 \\\n --learn_sigma true --resblock_updown 1 "
                        "--use_scale_shift_norm F --use_new_attention_order YES --dropout 0.1 --lr 2e-4")
    assert flags.given == dict(image_size=32, num_channels=64, learn_sigma=True, resblock_updown=True,
                               use_scale_shift_norm=False, use_new_attention_order=True, dropout=0.1, lr=2e-4)
    cfg = flags.unet_config()  # guided-diffusion's defaults: 2 ResBlocks per level, 4 heads, attention at 16 and 8
    assert (cfg.channel_mult_tuple, cfg.attention_rates, cfg.num_res_blocks, cfg.num_heads) == (
        (1, 2, 2, 2), (2, 4), 2, 4)
    assert flags.diffusion_config().to_dict() == dict(steps=1000, noise_schedule="linear", rescale_learned_sigmas=False)
    assert parse_flags({"--image_size": 32, "learn_sigma": "0", "attention_resolutions": 16}).given == dict(
        image_size=32, learn_sigma=False, attention_resolutions="16")
    # a resolution the UNet never reaches adds no attention in guided-diffusion either
    assert parse_flags("--image_size 32 --channel_mult 1,2 --attention_resolutions 16,8").unet_config(
        ).attention_resolutions == "16"


@pytest.mark.parametrize("flags, message", [
    ("--num_channel 64", r"unknown guided-diffusion flag --num_channel \(did you mean 'num_channels'\?\)"),
    ("--learn_sigma maybe", "--learn_sigma must be a boolean"),
    ("--num_res_blocks 2.5", "--num_res_blocks must be a int"),
    ("--learn_sigma --dropout 0.1", "--learn_sigma has no value"),
    ("--lr 1e-4 --lr 2e-4", "--lr is given twice"),
    ("python scripts/image_train.py --lr 1e-4", "expected guided-diffusion flags"),
    ("--class_cond True", "unconditional"),
    ("--predict_xstart True", "predicts the noise"),
    ("--use_kl True", "hybrid"),
    ("--rescale_timesteps True --diffusion_steps 4000", "--rescale_timesteps True is supported only"),
    ("--noise_schedule sqrt", "linear or cosine"),
    ("--image_size 32 --num_head_channels 48", "num_head_channels 48 must divide num_channels 128"),
    ("--ema_rate 0.9999,0.999", "lists several rates"),
    ("--image_size 16", "no default channel_mult for --image_size 16"),
])
def test_flag_errors(flags, message):
    with pytest.raises(ConfigError, match=message):
        parse_flags(flags)


def test_published_flags_build_the_published_models():
    with torch.device("meta"):
        cifar = create_unet(parse_flags(PUBLISHED["cifar10/ADM-IP.pt"].flags).unet_config())
        lsun = create_unet(parse_flags(PUBLISHED["lsun_tower/ADM-IP.pt"].flags).unet_config())
    assert round(count_parameters(cifar) / 1e6, 1) == 57.1  # DDPM-IP's CIFAR-10 model: 57.1M parameters
    assert count_parameters(lsun) == 295_136_454  # guided-diffusion's count for these flags (tests/test_unet.py)


# ---------------------------------------------------------------------------------- strict load and diagnosis
def test_legacy_conv_fixture_loads_strictly_and_matches():
    fx = gd_fixture("gd_unet_legacy_conv")
    check_state_dict(fx["state_dict"], LEGACY_CONV_CONFIG, "legacy")
    torch.testing.assert_close(output(model_from_state_dict(LEGACY_CONV_CONFIG, fx["state_dict"]), fx), fx["out"],
                               atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["gd_unet_updown_neworder", "gd_unet_legacy_conv"])
def test_a_wrong_attention_order_loads_and_the_reference_names_it(name):
    fx = gd_fixture(name)
    right = parse_flags(UPDOWN_NEWORDER_FLAGS).unet_config() if "updown" in name else LEGACY_CONV_CONFIG
    wrong = dataclasses.replace(right, use_new_attention_order=not right.use_new_attention_order)
    check_state_dict(fx["state_dict"], wrong, name)  # same keys and shapes: the weights alone cannot tell
    assert relative_error(right, fx["state_dict"], fx) < 1e-5
    with pytest.raises(WeightsMismatchError, match=f"most likely flag: --use_new_attention_order "
                                                   f"{right.use_new_attention_order} "):
        check_reference(wrong, fx["state_dict"], fx, name)


@pytest.mark.parametrize("change, named", [
    ("--num_res_blocks 2", "--num_res_blocks 3 (given 2)"),
    ("--use_scale_shift_norm False", "--use_scale_shift_norm True (given False"),
    ("--learn_sigma False", "--learn_sigma True (given False; the file outputs 6 channels for 3 input channels)"),
    ("--resblock_updown False", "--resblock_updown True (given False"),
    ("--num_channels 64", "--num_channels 32 (given 64"),
    ("--channel_mult 1,2,2", "--channel_mult 1,2,2,2 (given 1,2,2;"),
    ("--image_size 64", "--image_size 32 (given 64; at 32 the given --attention_resolutions are the file's attention "
                        "levels and its channel_mult is the default)"),
    ("--attention_resolutions 16", "--attention_resolutions 16,8 (given 16"),
])
def test_a_wrong_flag_fails_naming_it(cifar_files, tmp_path, change, named):
    wrong = parse_flags(TINY_CIFAR10_FLAGS).given | parse_flags(change).given
    with pytest.raises(WeightsMismatchError) as error:
        import_checkpoint(CheckpointSource(parse_flags(wrong), {"ema": cifar_files["ema"]}), tmp_path / "run",
                          DataConfig(name="cifar10", image_size=wrong["image_size"], holdout=0))
    first_line = str(error.value).splitlines()[0]
    assert str(cifar_files["ema"]) in first_line and f"most likely flag: {named}" in first_line
    assert not (tmp_path / "run").exists()  # checked before anything is written


def test_the_head_split_is_checked_only_with_a_reference(cifar_files, tmp_path):
    wrong = parse_flags(TINY_CIFAR10_FLAGS).given | dict(num_head_channels=16)
    records = import_checkpoint(CheckpointSource(parse_flags(wrong), {"ema": cifar_files["ema"]}, step=100),
                                tmp_path / "unchecked", CIFAR10)
    assert records[tmp_path / "unchecked"]["unverified_flags"] == list(SHAPELESS_FLAGS)  # a documented limitation
    with pytest.raises(WeightsMismatchError, match=r"most likely flag: --num_head_channels 32 \(given "
                                                   r"--num_head_channels 16\), which reproduces it"):
        import_checkpoint(CheckpointSource(parse_flags(wrong), {"ema": cifar_files["ema"]},
                                           reference=cifar_files["reference"]), tmp_path / "checked", CIFAR10)


def test_unusable_weights_and_reference_files(tmp_path):
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(CorruptFileError, match="holds a list that is not a state_dict"):
        read_state_dict(tmp_path / "list.pt")
    with pytest.raises(WeightsMismatchError, match=r"flag: none: the file's keys are not those of guided-"
                                                   r"diffusion's UNet(.|\n)*unexpected keys \(1\): fc.weight"):
        check_state_dict({"fc.weight": torch.zeros(2, 2)}, parse_flags(TINY_CIFAR10_FLAGS).unet_config(), "fc.pt")
    torch.save(dict(x=torch.zeros(1)), tmp_path / "ref.pt")
    with pytest.raises(CorruptFileError, match="no reference output"):
        read_reference(tmp_path / "ref.pt")
    one_channel = gd_fixture("gd_unet_legacy_conv")
    with pytest.raises(WeightsMismatchError, match=r"x \[3, 1, 16, 16\] and out \[3, 1, 16, 16\], where the UNet "
                                                   r"maps \[N, 3, H, W\] to \[N, 6, H, W\]"):
        check_reference(parse_flags(UPDOWN_NEWORDER_FLAGS).unet_config(),
                        gd_fixture("gd_unet_updown_neworder")["state_dict"], one_channel, "updown")


# --------------------------------------------------------------------------------------------- import
def test_guided_diffusion_fixture_imports_and_load_model_matches(tmp_path):
    fx = gd_fixture("gd_unet_updown_neworder")
    torch.save(fx["state_dict"], tmp_path / "ema_0.9999_000007.pt")
    torch.save(dict(x=fx["x"], t=fx["t"], out=fx["out"]), tmp_path / "reference.pt")
    src = source(UPDOWN_NEWORDER_FLAGS, {"ema": tmp_path / "ema_0.9999_000007.pt"}, reference=tmp_path / "reference.pt")
    data = DataConfig(name="image_folder", path="images", image_size=16, holdout=0)
    record = import_checkpoint(src, tmp_path / "run", data)[tmp_path / "run"]
    assert record["reference"]["relative_error"] < 1e-5 and record["unverified_flags"] == []
    model, run, step = load_model(tmp_path / "run", "ema")
    assert step == 7 and run.model == parse_flags(UPDOWN_NEWORDER_FLAGS).unet_config()
    torch.testing.assert_close(output(model, fx), fx["out"], atol=1e-5, rtol=0)


def test_load_model_reads_every_kind_of_an_import(cifar_files, tmp_path):
    files = {kind: cifar_files[kind] for kind in ("raw", "ema", "swa")}
    out = tmp_path / "adm"
    records = import_checkpoint(source(TINY_CIFAR10_FLAGS, files, reference=cifar_files["reference"]), out, CIFAR10)
    swa_out = default_swa_out(out)
    assert swa_out == tmp_path / "adm_swa" and set(records) == {out, swa_out}
    assert sorted(records[out]["weights"]) == ["ema", "raw"] and sorted(records[swa_out]["weights"]) == ["swa"]
    reference = read_reference(cifar_files["reference"])
    for folder, kind in ((out, "raw"), (out, "ema"), (swa_out, "swa")):
        model, run, step = load_model(folder, kind)
        assert step == 100 and run.train.ema_rate == 0.9999 and run.optim.ip_gamma == 0.15
        expected = model_from_state_dict(run.model, torch.load(files[kind], weights_only=True))
        assert torch.equal(output(model, reference), output(expected, reference))
        entry = records[folder]["weights"][kind]
        assert entry["sha256"] == sha256_file(files[kind]) == sha256_file(folder / entry["file"])  # byte copies
        assert json.loads((folder / "import.json").read_text()) == records[folder]
        assert not (folder / layout.CODE_RECORD).exists()  # flatlib.training.train resumes nothing from an import
    assert not is_swa_phase(out) and is_swa_phase(swa_out)
    assert run.data == CIFAR10 and run.diffusion.noise_schedule == "cosine" and run.model.learn_sigma


def test_rerun_writes_nothing_and_a_used_folder_is_refused(cifar_files, tmp_path):
    src = source(TINY_CIFAR10_FLAGS, {"ema": cifar_files["ema"]})
    import_checkpoint(src, tmp_path / "run", CIFAR10)
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "run").iterdir()}
    import_checkpoint(src, tmp_path / "run", CIFAR10)
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "run").iterdir()} == stamps
    with pytest.raises(RunFolderError, match="already holds config.yaml, ema_0.9999_000100.pt, import.json"):
        import_checkpoint(source(TINY_CIFAR10_FLAGS, {"raw": cifar_files["raw"]}), tmp_path / "run", CIFAR10)


def test_missing_files_are_one_error_naming_each_and_its_publisher(tmp_path):
    src = source(PUBLISHED["cifar10/ADM-IP.pt"].flags,
                 {"raw": tmp_path / "model200000.pt", "ema": tmp_path / "ADM-IP.pt"})
    with pytest.raises(MissingInputError) as error:
        import_checkpoint(src, tmp_path / "run", CIFAR10)
    message = str(error.value)
    assert f"{tmp_path / 'model200000.pt'} not found" in message and f"{tmp_path / 'ADM-IP.pt'} not found" in message
    assert "model{step:06d}.pt" in message and "nothing is downloaded" in message
    assert PUBLISHED["cifar10/ADM-IP.pt"].url in message and DDPM_IP_README in message
    assert PUBLISHED["lsun_tower/ADM-IP.pt"].url not in message  # the flags' image size picks the data set


def test_step_comes_from_the_names_or_is_given(cifar_files, tmp_path):
    assert source(TINY_CIFAR10_FLAGS, {"ema": cifar_files["ema"]}).resolved_step() == 100
    assert source(TINY_CIFAR10_FLAGS, {"ema": tmp_path / "ADM-IP.pt"}, step=5).resolved_step() == 5
    with pytest.raises(ConfigError, match="no step in the file names"):
        source(TINY_CIFAR10_FLAGS, {"ema": tmp_path / "ADM-IP.pt"}).resolved_step()
    with pytest.raises(ConfigError, match="different steps: raw 200000, ema 100"):
        source(TINY_CIFAR10_FLAGS, {"raw": tmp_path / "model200000.pt", "ema": cifar_files["ema"]}).resolved_step()
    with pytest.raises(ConfigError, match="give one weights file per kind"):
        source(TINY_CIFAR10_FLAGS, {})


# --------------------------------------------------------------------------------------- params.yaml imports
def test_an_import_entry_splits_its_files_by_folder_and_checks_its_data_set(cifar_files):
    entry = ImportConfig(**{kind: str(cifar_files[kind]) for kind in ("raw", "ema", "swa")},
                         flags=TINY_CIFAR10_FLAGS, reference=str(cifar_files["reference"]))
    train, swa = import_source(entry, ["raw", "ema"]), import_source(entry, ["swa"])
    assert set(train.files) == {"raw", "ema"} and train.reference == cifar_files["reference"]
    assert set(swa.files) == {"swa"} and swa.reference is None  # the reference was computed with the EMA weights
    check_evaluated_on(entry, CIFAR10)
    with pytest.raises(ConfigError, match="'digits' is not an RGB data set"):
        check_evaluated_on(entry, DataConfig(name="digits", image_size=32, holdout=0))
    published = ImportConfig(ema="ADM-IP.pt", published="lsun_tower/ADM-IP.pt")
    with pytest.raises(ConfigError, match="lsun_tower/ADM-IP.pt was trained on image_folder"):
        check_evaluated_on(published, DataConfig(name="cifar10", image_size=64, holdout=0))


def test_flags_and_sections_that_build_the_same_unet_do_not_differ():
    flags = parse_flags(PUBLISHED["cifar10/ADM-IP.pt"].flags)
    same = UNetConfig(image_size=32, num_channels=128, num_res_blocks=3, in_channels=3, channel_mult="", attention_resolutions="8,16",
                      num_heads=8, num_head_channels=32, resblock_updown=True, use_new_attention_order=True,
                      dropout=0.3, learn_sigma=True, use_checkpoint=True)  # num_heads: unused beside num_head_channels
    cosine = DiffusionConfig(steps=1000, noise_schedule="cosine", rescale_learned_sigmas=True)
    assert differences_from(flags, same, cosine) == []
    assert differences_from(flags, dataclasses.replace(same, dropout=0.1), cosine) == [
        "model.dropout: 0.3 in the flags, 0.1 here"]


# ------------------------------------------------------------------------------------------------- CLI
def test_cli_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    text = capsys.readouterr().out
    assert exit_info.value.code == 0 and text.startswith("usage: python -m flatlib.gd.importer")
    for option in ("--ema", "--swa", "--flags", "--published", "--out", "--swa-out", "--step", "--data",
                   "--seed", "--reference", "--reference-weights", "--tolerance", "--debug"):
        assert option in text
    assert "(default: 0.001)" in text and "cifar10/ADM-IP.pt" in text


def test_cli_import_and_its_errors(cifar_files, tmp_path, capsys):
    out = tmp_path / "run"
    records = main([str(cifar_files["raw"]), "--ema", str(cifar_files["ema"]), "--flags", TINY_CIFAR10_FLAGS,
                    "--data", "name=cifar10", "--out", str(out)])
    printed = capsys.readouterr().out
    assert f"ema: {cifar_files['ema']}" in printed and "pass --reference" in printed
    assert sorted(records[out]["weights"]) == ["ema", "raw"] and load_model(out, "raw")[2] == 100
    with pytest.raises(SystemExit) as exit_info:
        main(["--ema", str(tmp_path / "ADM-IP.pt"), "--published", "cifar10/ADM-IP.pt", "--step", "1",
              "--out", str(tmp_path / "published")])
    stderr = capsys.readouterr().err
    assert exit_info.value.code == 2 and stderr.startswith("flatlib.gd.importer: error: ")
    assert str(tmp_path / "ADM-IP.pt") in stderr and PUBLISHED["cifar10/ADM-IP.pt"].url in stderr
    with pytest.raises(ConfigError, match="--data name=... "):  # --debug: the error itself, with its traceback
        main(["--ema", str(cifar_files["ema"]), "--flags", TINY_CIFAR10_FLAGS, "--out", str(tmp_path / "x"),
              "--debug"])
