"""params.yaml parsed once into typed, strict sections: the one way every stage, CLI and the report read it.

Each section's dataclass lives beside the code that consumes it (``UNetConfig`` in unet, ``TrainConfig`` in
train, ``SampleConfig`` in sample, ...); :class:`Params` assembles them, merges a variant into ``optim`` (the
only place that does) and checks what spans sections before any work starts: every T' at most
``diffusion.steps``, the SWA phase inside the run at a saved step, the rho sweep at a saved step, ...

    params = load_params("params.yaml", overrides=["train.steps=8"])
    run = params.run_config("sam", seed=1)    # flatlib.train.RunConfig of one variant and training seed
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from flatlib.config import ConfigError, StrictConfig, apply_overrides, load_yaml
from flatlib.data import DataConfig
from flatlib.diffusion import DiffusionConfig
from flatlib.exposure import ExposureConfig
from flatlib.flatness import FlatnessConfig
from flatlib.layout import WEIGHT_KINDS
from flatlib.quant import QuantConfig
from flatlib.sample import SampleConfig
from flatlib.stats import VerdictConfig
from flatlib.metrics import FeatureNetConfig, FIDConfig
from flatlib.train import OptimConfig, RunConfig, SWAConfig, TrainConfig, variant_optim
from flatlib.unet import UNetConfig


@dataclasses.dataclass(frozen=True, kw_only=True)
class LaunchConfig(StrictConfig):
    """params.yaml ``launch``: how the DVC training stages start (torchrun + DDP)."""
    nproc_per_node: int = 1               # training processes (GPUs) per run; the global batch is split


@dataclasses.dataclass(frozen=True, kw_only=True)
class RhoSweepConfig(StrictConfig):
    """params.yaml ``rho_sweep``: extra SAM runs, as long as the main runs, compared with ADM (rho = 0) and the
    SAM variant's run at their last step, per training seed."""
    rhos: list = dataclasses.field(default_factory=lambda: [0.02, 0.5])  # 0 and optim.rho reuse adm/sam
    sigma: float = 0.01
    respacing: int = 20


@dataclasses.dataclass(frozen=True, kw_only=True)
class Params(StrictConfig):
    """Every section of params.yaml. ``seed`` seeds what every run shares (reference subset, FeatureNet, the
    fixed (x0, t, eps) set, perturbation directions); ``seeds`` are the training seeds, one run per variant
    each, paired across variants (same initial weights and data order)."""
    seed: int
    seeds: list
    launch: LaunchConfig = LaunchConfig()
    data: DataConfig
    model: UNetConfig
    diffusion: DiffusionConfig
    optim: OptimConfig
    variants: dict
    train: TrainConfig
    swa: SWAConfig
    featurenet: FeatureNetConfig = FeatureNetConfig()
    sample: SampleConfig
    fid: FIDConfig = FIDConfig()
    quant: QuantConfig = QuantConfig()
    flatness: FlatnessConfig = FlatnessConfig()
    exposure: ExposureConfig = ExposureConfig()
    rho_sweep: RhoSweepConfig = RhoSweepConfig()
    verdict: VerdictConfig = VerdictConfig()

    def __post_init__(self):
        super().__post_init__()
        if not self.seeds or len(set(self.seeds)) != len(self.seeds) or not all(
                isinstance(s, int) and s >= 0 for s in self.seeds):
            raise ConfigError(f"seeds {self.seeds}: need a list of distinct integers >= 0 (training seeds)")
        for variant in self.variants:  # a variant may only override optim keys, with valid values
            if self.run_config(variant).optim.lr <= 0:
                raise ConfigError(f"optim.lr must be > 0 (variant {variant!r})")
        self._check_across_sections()

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

    def _check_across_sections(self) -> None:
        steps = self.diffusion.steps
        respacings = {"sample.respacings": self.sample.respacings, "quant.respacing": [self.quant.respacing],
                      "exposure.respacing": [self.exposure.respacing], "rho_sweep.respacing": [self.rho_sweep.respacing]}
        for key, values in respacings.items():
            bad = [t for t in values if not isinstance(t, int) or not 1 <= t <= steps]
            if bad:
                raise ConfigError(f"{key} {bad}: every T' must be an integer in [1, diffusion.steps = {steps}]")
        if self.quant.respacing not in self.sample.respacings:
            raise ConfigError(f"quant.respacing {self.quant.respacing} must be one of sample.respacings "
                              f"{self.sample.respacings}: the full-precision FID is taken from those samples")
        unknown = sorted(set(self.sample.weights) - set(WEIGHT_KINDS))
        if unknown:
            raise ConfigError(f"sample.weights {unknown} unknown; choose from {list(WEIGHT_KINDS)}")
        if self.data.image_size != self.model.image_size:
            raise ConfigError(f"data.image_size {self.data.image_size} != model.image_size {self.model.image_size}")
        train, swa = self.train, self.swa
        if swa.window < 1 or swa.steps < 1:
            raise ConfigError(f"swa.window ({swa.window}) and swa.steps ({swa.steps}) must be >= 1")
        if not 0 < swa.start_step < train.steps or swa.start_step % train.save_every:
            raise ConfigError(f"swa.start_step {swa.start_step} must be a saved step (a multiple of train.save_every "
                              f"{train.save_every}) below train.steps {train.steps}")
        if not all(isinstance(r, (int, float)) and r > 0 for r in self.rho_sweep.rhos):
            raise ConfigError(f"rho_sweep.rhos {self.rho_sweep.rhos} must be > 0 (rho 0 is the adm run)")
        missing = sorted(set(self.flatness.surface_variants) - set(self.variants))
        if missing:
            raise ConfigError(f"flatness.surface_variants {missing} are not variants {sorted(self.variants)}")


def load_params(path: str | Path = "params.yaml", overrides: list[str] | tuple = ()) -> Params:
    """params.yaml (with ``section.key=value`` overrides) as typed, checked :class:`Params`."""
    return Params.from_dict(apply_overrides(load_yaml(path), list(overrides)), "params")


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
