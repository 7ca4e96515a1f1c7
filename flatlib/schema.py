"""params.yaml as typed, strict sections: every section's dataclass, :class:`Params`, and the one parse path of
params.yaml, profiles, ``--set`` overrides and run folders' ``config.yaml`` (:func:`load_params`,
:func:`load_run_config`). Imports neither torch nor torch-fidelity: the report, the notebooks and every stage
read params.yaml through here cheaply (tests/test_schema.py checks it).

A dataclass default exists only where it equals params.yaml's value (tests/test_schema.py compares them): a
section that params.yaml gives whole has no defaults to disagree with. Names of registered plug-ins
(``optim.optimizer``, ``data.name``, ``fid.extractor``) are checked where the registries live, by preflight
(flatlib.stages.preflight) and when a plug-in is built; everything else is checked here, before any work starts:
types, each number's range (declared on its field with flatlib.config.ranged, checked by StrictConfig), and what
spans sections (every T' at most ``diffusion.steps``, ``flatness.t_min < t_max``, ...; the SWA phase inside the
run at a saved step: :func:`check_swa_phase`). Relations with the data set and the machine (``data.holdout``,
``fid.reference_size``, ``launch.nproc_per_node``) are the preflight's. An import's weights and flags are checked by flatlib.gd.importer.check_imports.

    params = load_params("params.yaml", overrides=["train.steps=8"])
    run = params.run_config("sam", seed=1)    # RunConfig of one variant and training seed
    params.weights_of("adm")                  # the weights kinds measured for a variant (an import may lack some)
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from flatlib.config import ConfigError, StrictConfig, apply_overrides, load_yaml, ranged
from flatlib.vocabulary import MULTIPLICITY, PAPER_DATASETS, WEIGHT_KINDS

#: ``train.compile`` / ``sample.compile``: "off" runs eagerly, any other value is a torch.compile (inductor) mode
#: (flatlib.model.device.compiled); "reduce-overhead" (CUDA graphs) only for sampling.
TRAIN_COMPILE_MODES = ("off", "default", "max-autotune")
SAMPLE_COMPILE_MODES = TRAIN_COMPILE_MODES + ("reduce-overhead",)
PRECISIONS = ("fp32", "bf16")
TIMESTEP_SAMPLERS = ("uniform", "loss-second-moment")
#: how exposure's per-step gap becomes one number (flatlib.measure.exposure.AGGREGATES implements each)
EXPOSURE_AGGREGATES = ("mean", "sum", "max", "mean_before_last")
#: the layers quantization touches (flatlib.measure.quant.LAYER_TYPES: their torch classes)
QUANT_LAYER_TYPES = ("conv", "linear")
#: channel_mult "" at an image size: guided-diffusion's script_util (256, 128, 64), DDPM-IP's and ADM-ES's
#: addition (32), and ours (16, the CPU profiles)
DEFAULT_CHANNEL_MULT = {256: "1,1,2,2,4,4", 128: "1,1,2,3,4", 64: "1,2,3,4", 32: "1,2,2,2", 16: "1,2,2"}
#: groups of every GroupNorm of the UNet (flatlib.model.unet.GroupNorm32): its widths are multiples of it
GROUPS = 32


def check_choice(key: str, value, choices) -> None:
    """Raise a ConfigError naming ``key`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ConfigError(f"{key} must be one of {tuple(choices)}, got {value!r}")


def _parse_ints(name: str, text: str) -> tuple[int, ...]:
    """Comma-separated integers ("16,8") as a tuple; the empty string gives ()."""
    try:
        return tuple(int(v) for v in text.split(",")) if text else ()
    except ValueError:
        raise ConfigError(f"UNetConfig.{name} must be comma-separated integers, got {text!r}") from None


# ------------------------------------------------------------------------------------------ training sections
@dataclasses.dataclass(frozen=True, kw_only=True)
class DataConfig(StrictConfig):
    """params.yaml ``data``: which data set (a name of flatlib.training.data.DATASETS) and how it is fed."""
    name: str
    root: str = "data"
    image_size: int = ranged(ge=1)
    path: str | None = None  # image_folder only: folder under root
    hflip: bool = False
    num_workers: int = ranged(0, ge=0)
    holdout: int = ranged(ge=0)  # images held out of training (the plateau criterion's set), spread evenly;
                                 # below the data set's size (flatlib.stages.preflight)


@dataclasses.dataclass(frozen=True, kw_only=True)
class UNetConfig(StrictConfig):
    """The model flags of guided-diffusion's scripts (model_and_diffusion_defaults, unconditional) plus
    in_channels. channel_mult "" means :data:`DEFAULT_CHANNEL_MULT` of the image size. attention_resolutions are
    resolutions ("16,8"), turned into the downsample rates image_size // r that UNetModel takes. learn_sigma
    doubles the output channels."""
    image_size: int = ranged(ge=1)        # divisible by 2 per level of channel_mult but the last: checked below
    num_channels: int = ranged(ge=1)      # a multiple of GROUPS (GroupNorm32): checked below
    num_res_blocks: int = ranged(ge=1)
    in_channels: int = ranged(ge=1)
    channel_mult: str
    attention_resolutions: str
    num_heads: int = ranged(4, ge=1)
    num_head_channels: int = ranged(ge=1, also=(-1,))       # -1: num_heads heads; else divides num_channels
    num_heads_upsample: int = ranged(-1, ge=1, also=(-1,))  # -1: num_heads
    use_scale_shift_norm: bool = True
    resblock_updown: bool = False
    use_new_attention_order: bool = False
    dropout: float = ranged(ge=0, lt=1)
    learn_sigma: bool = True
    use_checkpoint: bool = False

    def __post_init__(self):
        super().__post_init__()
        if not self.channel_mult and self.image_size not in DEFAULT_CHANNEL_MULT:
            raise ConfigError(f"no default channel_mult for image_size {self.image_size}: set channel_mult")
        if min(self.channel_mult_tuple) <= 0:
            raise ConfigError(f"channel_mult must be positive, got {self.channel_mult!r}")
        if self.num_channels % GROUPS:
            raise ConfigError(f"num_channels {self.num_channels} must be a multiple of {GROUPS} (GroupNorm32)")
        downsamples = len(self.channel_mult_tuple) - 1
        if self.image_size % 2 ** downsamples:
            raise ConfigError(f"image_size {self.image_size} must be divisible by 2^{downsamples} (one halving per "
                              f"level of channel_mult {self.channel_mult_tuple} but the last)")
        if self.num_head_channels > 0 and self.num_channels % self.num_head_channels:
            raise ConfigError(f"num_head_channels {self.num_head_channels} must divide num_channels "
                              f"{self.num_channels}")
        levels = {self.image_size >> level for level in range(len(self.channel_mult_tuple))}
        if not set(_parse_ints("attention_resolutions", self.attention_resolutions)) <= levels:
            raise ConfigError(f"attention_resolutions {self.attention_resolutions!r} must be among the "
                              f"UNet's resolutions {sorted(levels)}")

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the images this model denoises."""
        return self.in_channels, self.image_size, self.image_size

    @property
    def channel_mult_tuple(self) -> tuple[int, ...]:
        return _parse_ints("channel_mult", self.channel_mult or DEFAULT_CHANNEL_MULT[self.image_size])

    @property
    def attention_rates(self) -> tuple[int, ...]:
        """Downsample rates of attention_resolutions (guided-diffusion's create_model: image_size // r)."""
        return tuple(self.image_size // r for r in _parse_ints("attention_resolutions", self.attention_resolutions))

    @property
    def out_channels(self) -> int:
        return self.in_channels * (2 if self.learn_sigma else 1)


@dataclasses.dataclass(frozen=True, kw_only=True)
class DiffusionConfig(StrictConfig):
    """params.yaml ``diffusion``: create_diffusion arguments; learn_sigma comes from ``model.learn_sigma``
    (flatlib.model.diffusion.diffusion_from_config builds it)."""
    steps: int = ranged(1000, ge=1)
    noise_schedule: str = "cosine"
    rescale_learned_sigmas: bool = True

    def __post_init__(self):
        super().__post_init__()
        check_choice("diffusion.noise_schedule", self.noise_schedule, ("linear", "cosine"))


@dataclasses.dataclass(frozen=True, kw_only=True)
class OptimConfig(StrictConfig):
    """params.yaml ``optim`` (a variant overrides some keys): the optimizer (a name of
    flatlib.training.optimizers.OPTIMIZERS) and the perturbation methods."""
    optimizer: str = "adam"           # "adam" (ADM) or "adam-sam" (SAM around Adam, official --optimizer)
    lr: float = ranged(gt=0)
    weight_decay: float = ranged(0.0, ge=0)  # AdamW with 0 = Adam, as in the lineage
    rho: float = ranged(0.1, ge=0)    # SAM radius (official README: 0.1)
    adaptive: bool = False            # ASAM; reproduction choice: plain SAM
    sam_sync_first_backward: bool = False  # DDP: all-reduce the ascent gradient too (SAM paper: per replica)
    grad_clip: float = ranged(0.0, ge=0)  # 0 = off; applied after SAM's second backward
    ip_gamma: float = ranged(0.0, ge=0)   # Input Perturbation gamma (DDPM-IP: 0.15 CIFAR-10, 0.1 elsewhere)


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainConfig(StrictConfig):
    """params.yaml ``train``: the loop."""
    steps: int = ranged(ge=1)
    batch_size: int = ranged(ge=1)    # global batch, split over DDP ranks (divisible by launch.nproc_per_node)
    ema_rate: float = ranged(ge=0, lt=1)
    ema_warmup: bool                  # reproduction choice for short runs (see flatlib.training.averaging)
    timestep_sampler: str = "uniform"  # or "loss-second-moment"
    precision: str = "fp32"           # "bf16" autocast on GPU (never an fp16 scaler: SAM would do nothing)
    channels_last: bool = False
    compile: str = "off"              # torch.compile mode of forward/backward (flatlib.model.device.compiled)
    log_every: int = ranged(ge=1)
    save_every: int = ranged(ge=1)
    device: str = "auto"              # "auto": cuda:LOCAL_RANK when available, else cpu
    plateau_triples: int = ranged(256, ge=0)  # fixed (x0, t, eps) set (held-out images when data.holdout)
                                      # whose L_simple is logged as eval_mse; 0 = off
    plateau_window: float = ranged(0.25, gt=0, le=1)  # the last fraction of training the plateau criterion looks at
    plateau_tol: float = ranged(0.02, gt=0)  # plateaued needs |relative change of eval_mse per doubling of steps| < tol
    plateau_level: float = ranged(0.05, gt=0, lt=1)  # ... and the window's OLS slope not significant at this level

    def __post_init__(self):
        super().__post_init__()
        check_choice("train.precision", self.precision, PRECISIONS)
        check_choice("train.compile", self.compile, TRAIN_COMPILE_MODES)
        check_choice("train.timestep_sampler", self.timestep_sampler, TIMESTEP_SAMPLERS)


@dataclasses.dataclass(frozen=True, kw_only=True)
class SWAConfig(StrictConfig):
    """params.yaml ``swa``: the separate SWA phase (official README: window 100, lr_min 1e-6)."""
    start_step: int = ranged(ge=1)    # resume the run's checkpoint at this step (paper: 180000 of 200000)
    steps: int = ranged(ge=0)         # length of the SWA phase (0 in an import's run config; an SWA phase: >= 1)
    window: int = ranged(ge=1)
    lr_min: float = ranged(1e-6, ge=0)


def check_swa_phase(train: TrainConfig, swa: SWAConfig) -> None:
    """The SWA phase starts from a checkpoint the train phase saves, before its last step: checked where an SWA
    phase runs or is planned (flatlib.training.train.train_run, the preflight of the pipeline), so a train phase
    of any length can be trained on its own (``python -m flatlib.training.train --set train.steps=2``)."""
    if swa.steps < 1:
        raise ConfigError(f"swa.steps {swa.steps} must be >= 1 (the SWA phase of every trained variant)")
    if not 0 < swa.start_step < train.steps or swa.start_step % train.save_every:
        raise ConfigError(f"swa.start_step {swa.start_step} must be a saved step (a multiple of train.save_every "
                          f"{train.save_every}) below train.steps {train.steps}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunConfig(StrictConfig):
    """One training run: what flatlib.training.train.train_run takes and a run folder's ``config.yaml`` holds."""
    seed: int = ranged(ge=0)
    data: DataConfig
    model: UNetConfig
    diffusion: DiffusionConfig
    optim: OptimConfig
    train: TrainConfig
    swa: SWAConfig


# --------------------------------------------------------------------------------------- measurement sections
@dataclasses.dataclass(frozen=True, kw_only=True)
class FeatureNetConfig(StrictConfig):
    """params.yaml ``featurenet``: the CPU-profile FID feature extractor (flatlib.measure.metrics.FeatureNet)."""
    epochs: int = ranged(5, ge=1)
    batch_size: int = ranged(128, ge=1)
    lr: float = ranged(1e-3, gt=0)


@dataclasses.dataclass(frozen=True, kw_only=True)
class SampleConfig(StrictConfig):
    """params.yaml ``sample``: the Table 1 samples of every (variant, weights) row."""
    num: int = ranged(ge=1)               # samples per set, row and T' (paper: 50,000; params: >= 2, for FID)
    sets: int = ranged(ge=1)              # disjoint sample sets, image seeds [k num, (k+1) num), shared by
                                          # every model (paired); FID is reported as mean +- interval over them
    respacings: list = ranged(ge=1)       # T' values, each at most diffusion.steps (Params)
    weights: list = dataclasses.field(default_factory=lambda: list(WEIGHT_KINDS))
    batch_size: int = ranged(256, ge=1)
    eps_scale: float = ranged(1.0, gt=0)  # ADM-ES lambda; the paper samples with 1 (off)
    device: str = "auto"
    compile: str = "off"                  # torch.compile mode of the forward (flatlib.model.device.compiled)

    def __post_init__(self):
        super().__post_init__()
        check_choice("sample.compile", self.compile, SAMPLE_COMPILE_MODES)

    @property
    def seeds(self) -> list[int]:
        """The image seeds of every sample set, set after set."""
        return list(range(self.num * self.sets))

    def split(self, images):
        """The sample sets of ``images`` (generated from :attr:`seeds`): ``sets`` slices of ``num``."""
        return [images[k * self.num:(k + 1) * self.num] for k in range(self.sets)]


@dataclasses.dataclass(frozen=True, kw_only=True)
class FIDConfig(StrictConfig):
    """params.yaml ``fid``: the feature extractor (a name of flatlib.measure.metrics.EXTRACTORS) and reference
    set of FID/KID/precision-recall."""
    extractor: str                        # "featurenet" (CPU profiles), "inception" (paper profiles)
    inception_weights: str | None = None  # path of torch-fidelity's Inception weights file (placed by hand)
    reference_size: int = ranged(ge=2)    # training images in the reference set (paper: all of CIFAR-10); at
                                          # most the training images (flatlib.stages.preflight)
    kid: bool = True
    prc: bool = True
    batch_size: int = ranged(256, ge=1)
    floor_draws: int = ranged(ge=1)       # real-vs-real floor: draws of two real sets at the sample counts


@dataclasses.dataclass(frozen=True, kw_only=True)
class QuantConfig(StrictConfig):
    """params.yaml ``quant``: the quantized-sampling experiment."""
    bits: list = ranged(default_factory=lambda: [8, 4], ge=2, le=16)  # integers, checked below
    per_channel: bool = False             # reproduction choice: per-tensor scales
    layer_types: list = dataclasses.field(default_factory=lambda: list(QUANT_LAYER_TYPES))
    respacing: int = ranged(20, ge=1)     # the paper's quantization result is at T' = 20

    def __post_init__(self):
        super().__post_init__()
        if not all(isinstance(b, int) for b in self.bits):
            raise ConfigError(f"quant.bits must be integers in [2, 16], got {self.bits}")
        unknown = sorted(set(self.layer_types) - set(QUANT_LAYER_TYPES))
        if unknown:
            raise ConfigError(f"quant.layer_types {unknown} unknown; choose from {sorted(QUANT_LAYER_TYPES)}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class FlatnessConfig(StrictConfig):
    """params.yaml ``flatness``: the fixed loss set and every measure's settings."""
    num_triples: int = ranged(ge=1)       # fixed (x0, t, eps) set shared by every measure and model
    t_min: int = ranged(0, ge=0)          # t in [t_min, t_max), t_max <= diffusion.steps (Params)
    t_max: int = ranged(1000, ge=1)       # official README: t_range 1000
    hybrid_loss: bool = False             # reproduction choice: L_simple (eps MSE)
    sigmas: list = ranged(default_factory=lambda: [0.005, 0.01], ge=0)
    draws: int = ranged(ge=1)             # LPF Monte Carlo draws (Bisla et al.: 100)
    filter_relative: bool = False
    curve_span: float = ranged(1.0, gt=0)  # 1-D curves over alpha in [-span, span], filter-normalised d
    curve_points: int = ranged(21, ge=2)
    curve_directions: int = ranged(1, ge=1)
    surface_variants: list = dataclasses.field(default_factory=lambda: ["adm", "sam"])  # 2-D surfaces: ADM vs SAM
    surface_weights: list = dataclasses.field(default_factory=lambda: ["raw"])
    surface_points: int = ranged(ge=2)
    hessian_iters: int = ranged(ge=1)     # power iteration: at most this many iterations, stops at hessian_tol
    hessian_tol: float = ranged(gt=0, lt=1)  # relative change of the eigenvalue estimate that counts as converged
    hessian_samples: int = ranged(ge=1)   # Hutchinson draws (the report draws the trace from 32)
    batch_size: int = ranged(256, ge=1)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ExposureConfig(StrictConfig):
    """params.yaml ``exposure``: chains per model, T' and how the per-step gap is reduced to one number."""
    num: int = ranged(64, ge=1)           # chains and real images
    respacing: int = ranged(20, ge=2)     # T' (at least 2: the aggregate drops the last step)
    aggregate: str = "mean_before_last"   # reproduction choice: mean gap over sampling steps but t = 0

    def __post_init__(self):
        super().__post_init__()
        check_choice("exposure.aggregate", self.aggregate, EXPOSURE_AGGREGATES)


@dataclasses.dataclass(frozen=True, kw_only=True)
class VerdictConfig(StrictConfig):
    """params.yaml ``verdict``: the confidence level of every interval and verdict, and the multiplicity
    correction over the family of claims (flatlib.measure.stats)."""
    confidence: float = ranged(0.95, ge=0.5, lt=1)
    multiplicity: str                     # a statsmodels multipletests method of vocabulary.MULTIPLICITY
    barely: float = ranged(gt=0, lt=1)    # the rho claim's "barely flattens": a relative change below this

    def __post_init__(self):
        super().__post_init__()
        if self.multiplicity not in MULTIPLICITY:
            raise ConfigError(f"verdict.multiplicity must be one of {MULTIPLICITY}, got {self.multiplicity!r}")

    @property
    def alpha(self) -> float:
        return 1 - self.confidence


@dataclasses.dataclass(frozen=True, kw_only=True)
class ImportConfig(StrictConfig):
    """params.yaml ``imports.VARIANT``: weights trained elsewhere that the pipeline evaluates as VARIANT instead of
    training it (flatlib.stages.runs imports them into the variant's run folders). ``raw``, ``ema``, ``swa``: one
    file per weights kind, any non-empty subset (paths from the workspace, placed by hand). The guided-diffusion
    flags that built them: ``flags`` (a command line, or name -> value) or ``published``, a DDPM-IP checkpoint of
    flatlib.gd.importer.PUBLISHED whose README flags are taken. ``step``, ``reference`` and
    ``reference_weights`` as in flatlib.gd.importer.CheckpointSource (flatlib.gd.importer checks them all)."""
    raw: str | None = None
    ema: str | None = None
    swa: str | None = None
    flags: str | dict | None = None
    published: str | None = None
    step: int | None = ranged(None, ge=1)
    reference: str | None = None
    reference_weights: str | None = None

    def __post_init__(self):
        super().__post_init__()
        if (self.flags is None) == (self.published is None):
            raise ConfigError("give the guided-diffusion flags that built the weights: either flags (a command "
                              "line) or published (a DDPM-IP checkpoint's name)")
        if not self.files:
            raise ConfigError(f"give the weights: a file for at least one of {list(WEIGHT_KINDS)}")

    @property
    def files(self) -> dict[str, str]:
        """Weights kind -> file, in WEIGHT_KINDS order."""
        return {kind: getattr(self, kind) for kind in WEIGHT_KINDS if getattr(self, kind) is not None}


@dataclasses.dataclass(frozen=True, kw_only=True)
class LaunchConfig(StrictConfig):
    """params.yaml ``launch``: how the DVC training stages start (flatlib.stages.runs: in this process for 1,
    torchrun's launcher and DDP above)."""
    nproc_per_node: int = ranged(1, ge=1)  # training processes (GPUs) per run; the global batch is split


@dataclasses.dataclass(frozen=True, kw_only=True)
class RhoSweepConfig(StrictConfig):
    """params.yaml ``rho_sweep``: extra SAM runs, as long as the main runs, one per rho of ``rhos`` and training
    seed, compared with ADM (rho = 0) and the SAM variant's run at their last step. ``rhos: []`` is no sweep
    (DVC's matrix over the sweep's stages then has no instance). The ADM and SAM rows reuse the Table 1
    measurements: FID of the raw weights at T' = ``respacing`` (one of sample.respacings) and MC sharpness at
    ``sigma`` (one of flatness.sigmas); the extra runs are measured alike (Params checks it)."""
    rhos: list = ranged(gt=0)             # > 0: rho 0 is the adm run, optim.rho sam's (they reuse those runs)
    sigma: float = ranged(0.01, ge=0)
    respacing: int = ranged(20, ge=1)


@dataclasses.dataclass(frozen=True, kw_only=True)
class LengthConfig(StrictConfig):
    """params.yaml ``length`` (issue 21 items 3-5; stage length, flatlib.stages.length): the saved checkpoints of a
    training run measured besides its final step, each as Table 1 measures the final one (FID of every sample set
    at the paper's T' of sample.respacings, MC sharpness at flatness.sigmas): the raw and EMA weights at the
    checkpoint nearest each of ``fractions`` of train.steps (verdicts against training length), the raw weights of
    the last ``last_k`` checkpoints (the final iterate's noise), and for adm the raw and EMA weights at the
    checkpoint whose held-out loss is closest to SAM's final one (the equal-progress control). Sampling is at the
    T' of ``respacings`` only (a subset of sample.respacings): a claim at another T' has no outcome at a
    checkpoint."""
    fractions: list = ranged(gt=0, lt=1)  # 1.0 is Table 1's final measurement, never measured twice; []: none
    last_k: int = ranged(4, ge=1)         # 1: the final iterate only (no iterate noise measured)
    respacings: list = ranged(ge=1)       # the T' measured, each one of sample.respacings (Params checks it)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Params(StrictConfig):
    """Every section of params.yaml. ``seed`` seeds what every run shares (reference subset, FeatureNet, the
    fixed (x0, t, eps) set, perturbation directions); ``seeds`` are the training seeds, one run per variant
    each, paired across variants (same initial weights and data order). ``paper_dataset``: the paper's column
    (flatlib.vocabulary.PAPER_DATASETS) the results are compared with, or None (no paper column). ``imports``
    maps a variant to the weights it is evaluated from instead of being trained (:class:`ImportConfig`)."""
    seed: int = ranged(ge=0)
    seeds: list = ranged(ge=0)            # integers, distinct: checked below
    paper_dataset: str | None
    launch: LaunchConfig = LaunchConfig()
    data: DataConfig
    model: UNetConfig
    diffusion: DiffusionConfig
    optim: OptimConfig
    variants: dict
    imports: dict = dataclasses.field(default_factory=dict)
    train: TrainConfig
    swa: SWAConfig
    featurenet: FeatureNetConfig
    sample: SampleConfig
    fid: FIDConfig
    quant: QuantConfig
    flatness: FlatnessConfig
    exposure: ExposureConfig
    rho_sweep: RhoSweepConfig
    length: LengthConfig
    verdict: VerdictConfig

    def __post_init__(self):
        super().__post_init__()
        if not self.seeds or len(set(self.seeds)) != len(self.seeds) or not all(
                isinstance(s, int) and s >= 0 for s in self.seeds):
            raise ConfigError(f"seeds {self.seeds}: need a list of distinct integers >= 0 (training seeds)")
        if self.paper_dataset is not None:
            check_choice("paper_dataset", self.paper_dataset, PAPER_DATASETS)
        for variant in self.variants:  # a variant may only override optim keys, with valid values
            self.run_config(variant)
        object.__setattr__(self, "imports", {variant: ImportConfig.from_dict(entry or {}, f"imports.{variant}")
                                             for variant, entry in self.imports.items()})
        self._check_across_sections()
        self._check_imports()

    def run_config(self, variant: str, seed: int | None = None, **optim) -> RunConfig:
        """The training config of ``variant`` and training seed ``seed`` (default: the first of ``seeds``):
        ``variants[variant]`` (then ``optim``) merged into ``optim``."""
        seed = self.seeds[0] if seed is None else seed
        merged = OptimConfig.from_dict({**variant_optim(dataclasses.asdict(self.optim), self.variants, variant),
                                        **optim}, f"variants.{variant}")
        return RunConfig(seed=seed, data=self.data, model=self.model, diffusion=self.diffusion, optim=merged,
                         train=self.train, swa=self.swa)

    def variant_rho(self, variant: str = "sam") -> float:
        return self.run_config(variant).optim.rho

    def weights_of(self, variant: str) -> list[str]:
        """The weights kinds measured for ``variant``: ``sample.weights``, less those an imported variant lacks."""
        imported = self.imports.get(variant)
        return [w for w in self.sample.weights if imported is None or w in imported.files]

    def _check_across_sections(self) -> None:
        steps = self.diffusion.steps
        respacings = {"sample.respacings": self.sample.respacings, "quant.respacing": [self.quant.respacing],
                      "exposure.respacing": [self.exposure.respacing], "rho_sweep.respacing": [self.rho_sweep.respacing]}
        for key, values in respacings.items():
            bad = [t for t in values if not isinstance(t, int) or not 1 <= t <= steps]
            if bad:
                raise ConfigError(f"{key} {bad}: every T' must be an integer in [1, diffusion.steps = {steps}]")
        flat = self.flatness
        if not flat.t_min < flat.t_max <= steps:
            raise ConfigError(f"flatness.t_min {flat.t_min} and t_max {flat.t_max}: need t_min < t_max <= "
                              f"diffusion.steps = {steps} (t is drawn from [t_min, t_max))")
        not_sampled = sorted(set(self.length.respacings) - set(self.sample.respacings))
        if not_sampled:
            raise ConfigError(f"length.respacings {not_sampled} are not among sample.respacings "
                              f"{self.sample.respacings}: a checkpoint is measured as the final weights are")
        if self.quant.respacing not in self.sample.respacings:
            raise ConfigError(f"quant.respacing {self.quant.respacing} must be one of sample.respacings "
                              f"{self.sample.respacings}: the full-precision FID is taken from those samples")
        unknown = sorted(set(self.sample.weights) - set(WEIGHT_KINDS))
        if unknown:
            raise ConfigError(f"sample.weights {unknown} unknown; choose from {list(WEIGHT_KINDS)}")
        if self.data.image_size != self.model.image_size:
            raise ConfigError(f"data.image_size {self.data.image_size} != model.image_size {self.model.image_size}")
        if self.sample.num < 2:
            raise ConfigError(f"sample.num {self.sample.num} must be >= 2 (the FID of a set needs two samples)")
        missing = sorted(set(self.flatness.surface_variants) - set(self.variants))
        if missing:
            raise ConfigError(f"flatness.surface_variants {missing} are not variants {sorted(self.variants)}")
        for variant in self.flatness.surface_variants:
            if not set(self.flatness.surface_weights) & set(self.weights_of(variant)):
                raise ConfigError(f"flatness.surface_weights {self.flatness.surface_weights} are none of the weights "
                                  f"measured for {variant} {self.weights_of(variant)}")
        sweep = self.rho_sweep
        if not sweep.rhos:
            return
        not_trained = [v for v in ("adm", "sam") if v not in self.variants or v in self.imports]
        if not_trained:
            raise ConfigError(f"the rho sweep extends the adm (rho 0) and sam (optim.rho) runs trained here, but "
                              f"these are not (imported, or no such variant): {', '.join(not_trained)}; set "
                              "rho_sweep.rhos: [] (no rho sweep)")
        if self.variant_rho("sam") in sweep.rhos:
            raise ConfigError(f"rho_sweep.rhos {sweep.rhos} holds the sam variant's rho {self.variant_rho('sam')}: "
                              "the sweep reuses that run; list only other radii")
        reused = {"rho_sweep.respacing": (sweep.respacing, "sample.respacings", self.sample.respacings),
                  "rho_sweep.sigma": (sweep.sigma, "flatness.sigmas", self.flatness.sigmas)}
        for key, (value, where, values) in reused.items():
            if value not in values:
                raise ConfigError(f"{key} {value} must be one of {where} {values}: the sweep's adm and sam rows "
                                  "reuse those measurements")
        if "raw" not in self.sample.weights:
            raise ConfigError(f"sample.weights {self.sample.weights} must include raw: the rho sweep compares the "
                              "raw weights of its runs with those of adm and sam")

    def _check_imports(self) -> None:
        """Each import names a variant that overrides nothing, fits the data set and is the UNet and diffusion of
        the model and diffusion sections (one model per profile: the flatness loss set, the samplers and the
        variants trained here use those sections; flatlib.gd.importer.check_imports checks the flags and files);
        an import is one set of weights, so one training seed."""
        if self.imports and len(self.seeds) != 1:
            raise ConfigError(f"imports {sorted(self.imports)} are one set of weights each: seeds must be one "
                              f"training seed, e.g. [0], not {self.seeds} (verdicts then are inconclusive)")
        for variant, imported in self.imports.items():
            where = f"imports.{variant}"
            if variant not in self.variants:
                raise ConfigError(f"{where}: {variant!r} is not a variant: add `{variant}: {{}}` to variants (every "
                                  "stage runs per variant)")
            if self.variants[variant]:
                raise ConfigError(f"variants.{variant} sets {sorted(self.variants[variant])}, but {variant} is "
                                  f"imported ({where}), which trains nothing: give `{variant}: {{}}`")
            if not self.weights_of(variant):
                raise ConfigError(f"{where} gives {list(imported.files)} weights, none of sample.weights "
                                  f"{self.sample.weights}")


def variant_optim(optim: dict, variants: dict, variant: str) -> dict:
    """``optim`` with ``variants[variant]`` merged in: the one place a variant meets the base optimizer."""
    if variant not in variants:
        raise ConfigError(f"unknown variant {variant!r}; params.yaml defines {sorted(variants)}")
    return {**optim, **(variants[variant] or {})}


def load_params(path: str | Path = "params.yaml", overrides: list[str] | tuple = ()) -> Params:
    """params.yaml (with ``section.key=value`` overrides) as typed, checked :class:`Params`."""
    return Params.from_dict(apply_overrides(load_yaml(path), list(overrides)), "params")


def load_run_config(path: str | Path) -> RunConfig:
    """A run folder's ``config.yaml`` (flatlib.training.train.record_run writes it) as a typed :class:`RunConfig`."""
    return RunConfig.from_dict(load_yaml(path), str(path))


def params_comments(path: str | Path = "params.yaml") -> dict[str, str]:
    """``"section.key"`` (and ``"section"``) -> the comment on that line of params.yaml (the documented
    reproduction choices), read with ruamel's round-trip parser."""
    from ruamel.yaml import YAML

    tree = YAML().load(Path(path).read_text())

    def comment_of(node, key) -> str:
        tokens = node.ca.items.get(key) or []
        text = "".join(t.value for t in tokens if t is not None and hasattr(t, "value"))
        return text.split("\n")[0].lstrip("# ").strip()

    out = {}
    for section, value in tree.items():
        out[section] = comment_of(tree, section)
        if hasattr(value, "ca"):
            for key in value:
                out[f"{section}.{key}"] = comment_of(value, key)
    return out
