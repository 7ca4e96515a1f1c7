"""The command-line flags of guided-diffusion's scripts (and of DDPM-IP's and ADM-ES's, which add
``--input_pertub``), turned into flatlib's :class:`~flatlib.model.unet.UNetConfig` and
:class:`~flatlib.model.diffusion.DiffusionConfig` exactly as guided-diffusion's ``script_util`` builds its model.

    flags = parse_flags("--image_size 32 --num_channels 128 --num_res_blocks 3 --learn_sigma True")
    flags.unet_config(), flags.diffusion_config()

A flag that is absent takes the scripts' default (``model_and_diffusion_defaults``: linear schedule, no
learned sigmas, scale-shift norm, ...), not flatlib's. Booleans read as the scripts read them: true/false,
yes/no, t/f, y/n, 1/0, any case. Unknown flags, flags given twice and values flatlib cannot represent
(class-conditional models, x0 prediction, the KL loss) raise :class:`~flatlib.config.ConfigError`.
"""
from __future__ import annotations

import contextlib
import dataclasses
import shlex
from collections.abc import Mapping

import torch

from flatlib.config import ConfigError, _nearest
from flatlib.model.unet import create_unet
from flatlib.schema import DEFAULT_CHANNEL_MULT, DiffusionConfig, UNetConfig

#: ``model_and_diffusion_defaults()`` of guided-diffusion (unconditional), plus DDPM-IP's ``input_pertub``
MODEL_AND_DIFFUSION_DEFAULTS = dict(
    image_size=64, num_channels=128, num_res_blocks=2, num_heads=4, num_heads_upsample=-1, num_head_channels=-1,
    attention_resolutions="16,8", channel_mult="", dropout=0.0, class_cond=False, use_checkpoint=False,
    use_scale_shift_norm=True, resblock_updown=False, use_fp16=False, use_new_attention_order=False,
    learn_sigma=False, diffusion_steps=1000, noise_schedule="linear", timestep_respacing="", use_kl=False,
    predict_xstart=False, rescale_timesteps=False, rescale_learned_sigmas=False, input_pertub=0.0)
#: flags of ``image_train.py`` and ``image_sample.py`` that build nothing: accepted and recorded
SCRIPT_DEFAULTS = dict(
    data_dir="", schedule_sampler="uniform", lr=1e-4, weight_decay=0.0, lr_anneal_steps=0, batch_size=1,
    microbatch=-1, ema_rate="0.9999", log_interval=100, save_interval=10000, resume_checkpoint="",
    fp16_scale_growth=1e-3, clip_denoised=True, num_samples=10000, use_ddim=False, model_path="")
DEFAULTS = {**MODEL_AND_DIFFUSION_DEFAULTS, **SCRIPT_DEFAULTS}
#: the image sizes script_util.create_model has a channel_mult for (``--channel_mult ""``; 32x32: DDPM-IP's and
#: ADM-ES's addition): flatlib.schema.DEFAULT_CHANNEL_MULT holds the values
GUIDED_DIFFUSION_SIZES = (256, 128, 64, 32)
#: flag values flatlib cannot represent, and why
UNSUPPORTED = {("class_cond", True): "flatlib's UNet is unconditional",
               ("predict_xstart", True): "flatlib's diffusion predicts the noise (eps)",
               ("use_kl", True): "flatlib's loss is the hybrid L_simple + L_vlb, not the KL bound alone"}
TRUE_WORDS, FALSE_WORDS = ("yes", "true", "t", "y", "1"), ("no", "false", "f", "n", "0")
#: what a mapping may give for each flag type (numbers for str flags: YAML reads ``ema_rate: 0.9999`` as one)
ACCEPTED_INPUTS = {int: (int, str), float: (int, float, str), str: (str, int, float)}


def _typed(name: str, value):
    """``value`` as the type of the flag's default; a string is read as the scripts' argparse reads it."""
    kind = type(DEFAULTS[name])
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in TRUE_WORDS + FALSE_WORDS:
            return value.lower() in TRUE_WORDS
    elif not isinstance(value, bool) and isinstance(value, ACCEPTED_INPUTS[kind]):
        with contextlib.suppress(ValueError):
            return kind(value)
    expected = "a boolean (True/False, 1/0, yes/no)" if kind is bool else f"a {kind.__name__}"
    raise ConfigError(f"flag --{name} must be {expected}, got {value!r}")


def _single_rate(ema_rate: str) -> float:
    """The one EMA rate of ``--ema_rate`` (the scripts accept a comma-separated list)."""
    rates = str(ema_rate).split(",")
    if len(rates) > 1:
        raise ConfigError(f"--ema_rate {ema_rate} lists several rates: give the rate of the EMA file you import")
    try:
        return float(rates[0])
    except ValueError:
        raise ConfigError(f"--ema_rate must be a number, got {ema_rate!r}") from None


def _tokens_to_dict(text: str) -> dict:
    """``--name value`` / ``--name=value`` pairs of a command line (quotes and backslash-newlines allowed)."""
    tokens, given = shlex.split(text.replace("\\\n", " ")), {}
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if not token.startswith("--"):
            raise ConfigError(f"expected guided-diffusion flags (--name value ...), got {token!r} in {text!r}")
        name, sep, value = token[2:].partition("=")
        if not sep:
            if i + 1 == len(tokens) or tokens[i + 1].startswith("--"):
                raise ConfigError(f"flag --{name} has no value: guided-diffusion flags take one, booleans too "
                                  "(--learn_sigma True)")
            value, i = tokens[i + 1], i + 1
        if name in given:
            raise ConfigError(f"flag --{name} is given twice")
        given[name] = value
        i += 1
    return given


@dataclasses.dataclass(frozen=True)
class GuidedDiffusionFlags:
    """Flags of guided-diffusion's scripts: ``given`` (typed) as passed; ``flags[name]`` falls back to the
    scripts' default. Build with :func:`parse_flags`, which checks them."""
    given: dict

    def __getitem__(self, name: str):
        return self.given.get(name, DEFAULTS[name])

    def command_line(self) -> str:
        return " ".join(f"--{name} {value}" for name, value in self.given.items())

    def unet_config(self) -> UNetConfig:
        """script_util.create_model: channel_mult from the image size when empty; attention at the downsample
        rates ``image_size // r`` that the UNet reaches (others add no attention there either)."""
        size = self["image_size"]
        channel_mult = self["channel_mult"] or (DEFAULT_CHANNEL_MULT[size] if size in GUIDED_DIFFUSION_SIZES else None)
        if channel_mult is None:
            raise ConfigError(f"guided-diffusion has no default channel_mult for --image_size {size} "
                              f"(it has one for {sorted(GUIDED_DIFFUSION_SIZES)}): pass --channel_mult")
        try:
            rates = {size // int(r) for r in self["attention_resolutions"].split(",")}
        except ValueError:
            raise ConfigError(f"--attention_resolutions must be comma-separated integers, "
                              f"got {self['attention_resolutions']!r}") from None
        reached = {2 ** level for level in range(len(channel_mult.split(",")))}
        return UNetConfig(
            image_size=size, num_channels=self["num_channels"], num_res_blocks=self["num_res_blocks"], in_channels=3,
            channel_mult=channel_mult, attention_resolutions=",".join(str(size // r) for r in sorted(rates & reached)),
            num_heads=self["num_heads"], num_head_channels=self["num_head_channels"],
            num_heads_upsample=self["num_heads_upsample"], use_scale_shift_norm=self["use_scale_shift_norm"],
            resblock_updown=self["resblock_updown"], use_new_attention_order=self["use_new_attention_order"],
            dropout=self["dropout"], learn_sigma=self["learn_sigma"], use_checkpoint=self["use_checkpoint"])

    def diffusion_config(self) -> DiffusionConfig:
        return DiffusionConfig(steps=self["diffusion_steps"], noise_schedule=self["noise_schedule"],
                               rescale_learned_sigmas=self["rescale_learned_sigmas"])

    @property
    def ema_rate(self) -> float:
        return _single_rate(self["ema_rate"])


def parse_flags(flags: str | Mapping) -> GuidedDiffusionFlags:
    """Check and type guided-diffusion flags given as a command line or a mapping (name -> value, with or
    without the leading ``--``); the UNet they describe is built on the meta device to check it exists."""
    raw = _tokens_to_dict(flags) if isinstance(flags, str) else {str(k).removeprefix("--"): v for k, v in flags.items()}
    unknown = [name for name in raw if name not in DEFAULTS]
    if unknown:
        raise ConfigError("unknown guided-diffusion flag" + ("s " if len(unknown) > 1 else " ")
                          + ", ".join(f"--{name}{_nearest(name, DEFAULTS)}" for name in unknown)
                          + f"; known: {', '.join(sorted(DEFAULTS))}")
    parsed = GuidedDiffusionFlags({name: _typed(name, value) for name, value in raw.items()})
    for (name, value), why in UNSUPPORTED.items():
        if parsed[name] == value:
            raise ConfigError(f"--{name} {value} is not supported: {why}")
    if parsed["rescale_timesteps"] and parsed["diffusion_steps"] != 1000:
        raise ConfigError("--rescale_timesteps True is supported only with --diffusion_steps 1000 (where it feeds "
                          "the model the same timesteps): flatlib feeds the original integer timestep")
    if parsed["noise_schedule"] not in ("linear", "cosine"):
        raise ConfigError(f"--noise_schedule must be linear or cosine, got {parsed['noise_schedule']!r}")
    cfg = parsed.unet_config()
    try:
        with torch.device("meta"):
            create_unet(cfg)
    except ValueError as err:
        raise ConfigError(f"the flags build no UNet (--num_heads / --num_head_channels): {err}") from None
    _single_rate(parsed["ema_rate"])
    return parsed
