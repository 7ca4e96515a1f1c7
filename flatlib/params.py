"""params.yaml parsed once into typed, strict sections: the one way every stage, CLI and the report read it.

Each section's dataclass lives beside the code that consumes it (``UNetConfig`` in unet, ``TrainConfig`` in
train, ``SampleConfig`` in sample, ...); :class:`Params` assembles them, merges a variant into ``optim`` (the
only place that does) and checks what spans sections before any work starts: every T' at most
``diffusion.steps``, the SWA phase inside the run at a saved step, the rho sweep at a saved step, an imported
variant's flags against the data, model and diffusion sections, ...

    params = load_params("params.yaml", overrides=["train.steps=8"])
    run = params.run_config("sam", seed=1)    # flatlib.train.RunConfig of one variant and training seed
    params.weights_of("adm")                  # the weights kinds measured for a variant (an import may lack some)
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from flatlib.config import ConfigError, StrictConfig, ranged, apply_overrides, load_yaml
from flatlib.data import DataConfig
from flatlib.diffusion import DiffusionConfig
from flatlib.exposure import ExposureConfig
from flatlib.flatness import FlatnessConfig
from flatlib.gd_import import ImportConfig, differences_from
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
    nproc_per_node: int = ranged(1, ge=1)  # training processes (GPUs) per run; the global batch is split


@dataclasses.dataclass(frozen=True, kw_only=True)
class RhoSweepConfig(StrictConfig):
    """params.yaml ``rho_sweep``: extra SAM runs, as long as the main runs, compared with ADM (rho = 0) and the
    SAM variant's run at their last step, per training seed of ``seeds``: the training seeds, or none (no
    sweep, e.g. where adm or sam is imported). DVC's foreach over the sweep's stages reads that list."""
    seeds: list
    rhos: list = ranged(default_factory=lambda: [0.02, 0.5], gt=0)  # > 0: rho 0 is the adm run, optim.rho sam's
    sigma: float = ranged(0.01, ge=0)
    respacing: int = ranged(20, ge=1)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Params(StrictConfig):
    """Every section of params.yaml. ``seed`` seeds what every run shares (reference subset, FeatureNet, the
    fixed (x0, t, eps) set, perturbation directions); ``seeds`` are the training seeds, one run per variant
    each, paired across variants (same initial weights and data order). ``imports`` maps a variant to the
    weights it is evaluated from instead of being trained (:class:`flatlib.gd_import.ImportConfig`)."""
    seed: int = ranged(ge=0)
    seeds: list = ranged(ge=0)            # integers, distinct: checked below
    launch: LaunchConfig = LaunchConfig()
    data: DataConfig
    model: UNetConfig
    diffusion: DiffusionConfig
    optim: OptimConfig
    variants: dict
    imports: dict = dataclasses.field(default_factory=dict)
    train: TrainConfig
    swa: SWAConfig
    featurenet: FeatureNetConfig = FeatureNetConfig()
    sample: SampleConfig
    fid: FIDConfig = FIDConfig()
    quant: QuantConfig = QuantConfig()
    flatness: FlatnessConfig = FlatnessConfig()
    exposure: ExposureConfig = ExposureConfig()
    rho_sweep: RhoSweepConfig
    verdict: VerdictConfig = VerdictConfig()

    def __post_init__(self):
        super().__post_init__()
        if not self.seeds or len(set(self.seeds)) != len(self.seeds) or not all(
                isinstance(s, int) and s >= 0 for s in self.seeds):
            raise ConfigError(f"seeds {self.seeds}: need a list of distinct integers >= 0 (training seeds)")
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
        if self.quant.respacing not in self.sample.respacings:
            raise ConfigError(f"quant.respacing {self.quant.respacing} must be one of sample.respacings "
                              f"{self.sample.respacings}: the full-precision FID is taken from those samples")
        unknown = sorted(set(self.sample.weights) - set(WEIGHT_KINDS))
        if unknown:
            raise ConfigError(f"sample.weights {unknown} unknown; choose from {list(WEIGHT_KINDS)}")
        if self.data.image_size != self.model.image_size:
            raise ConfigError(f"data.image_size {self.data.image_size} != model.image_size {self.model.image_size}")
        train, swa = self.train, self.swa
        if self.sample.num < 2:
            raise ConfigError(f"sample.num {self.sample.num} must be >= 2 (the FID of a set needs two samples)")
        if swa.steps < 1:
            raise ConfigError(f"swa.steps {swa.steps} must be >= 1 (the SWA phase of every trained variant)")
        if not 0 < swa.start_step < train.steps or swa.start_step % train.save_every:
            raise ConfigError(f"swa.start_step {swa.start_step} must be a saved step (a multiple of train.save_every "
                              f"{train.save_every}) below train.steps {train.steps}")
        missing = sorted(set(self.flatness.surface_variants) - set(self.variants))
        if missing:
            raise ConfigError(f"flatness.surface_variants {missing} are not variants {sorted(self.variants)}")
        for variant in self.flatness.surface_variants:
            if not set(self.flatness.surface_weights) & set(self.weights_of(variant)):
                raise ConfigError(f"flatness.surface_weights {self.flatness.surface_weights} are none of the weights "
                                  f"measured for {variant} {self.weights_of(variant)}")
        sweep = self.rho_sweep.seeds
        if sweep and sweep != self.seeds:
            raise ConfigError(f"rho_sweep.seeds {sweep} must be the training seeds {self.seeds} (each sweep run is "
                              "paired with the adm and sam runs of its seed) or [] (no rho sweep)")
        not_trained = [v for v in ("adm", "sam") if v not in self.variants or v in self.imports]
        if sweep and not_trained:
            raise ConfigError(f"the rho sweep extends the adm (rho 0) and sam (optim.rho) runs trained here, but "
                              f"these are not (imported, or no such variant): {', '.join(not_trained)}; set "
                              "rho_sweep.seeds: [] (no rho sweep)")

    def _check_imports(self) -> None:
        """Each import names a variant that overrides nothing, fits the data set and is the UNet and diffusion of
        the model and diffusion sections (one model per profile: the flatness loss set, the samplers and the
        variants trained here use those sections); an import is one set of weights, so one training seed."""
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
            try:
                imported.check_evaluated_on(self.data)
                imported.source().resolved_step()
            except ConfigError as err:
                raise ConfigError(f"{where}: {err}") from None
            differences = differences_from(imported.gd_flags, self.model, self.diffusion)
            if differences:
                raise ConfigError(f"{where}: the flags build another UNet or diffusion than the model and diffusion "
                                  f"sections ({'; '.join(differences)}); every row of a profile is one UNet and "
                                  "diffusion: set those sections to the flags' values")
            if not self.weights_of(variant):
                raise ConfigError(f"{where} gives {list(imported.files)} weights, none of sample.weights "
                                  f"{self.sample.weights}")


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
