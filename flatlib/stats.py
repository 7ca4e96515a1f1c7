"""Uncertainty and the three-valued verdict rule: every reported number is a mean with a 95% interval, and a
paper claim is decided by one stated rule on paired differences.

The unit of replication is the training seed (params.yaml ``seeds``). A measurement of one row is an array
``values[seed]`` or, for FID, ``values[seed, sample_set]`` (disjoint sample sets, the same image seeds for
every model). The sample sets of one seed are averaged first (they are nested in the seed), so the interval
is over seeds: mean +- t_{n-1} * sd / sqrt(n), Student's t with n - 1 degrees of freedom. With a single
training seed and several sample sets, the interval is over the sample sets and covers only sampling noise
(the report shows it, labelled so); with one value there is no interval. A verdict needs >= 2 seeds.

Verdict rule (:func:`verdict`): for a claim "A is lower than B" take the paired difference d = A - B of each
seed (same seed = same initial weights and data order); if the 95% interval of mean(d) lies entirely below
zero the claim is *reproduced*, entirely above zero *contradicted*, otherwise (it contains zero, or fewer than
two training seeds) *inconclusive*. A compound claim ("at T'=20 and at T'=100", "than each of EMA, SWA and IP") is reproduced
when every part is, contradicted when any part is, and inconclusive otherwise.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy import stats as _scipy_stats

from flatlib.config import StrictConfig, ranged

VERDICTS = ("reproduced", "contradicted", "inconclusive")


@dataclasses.dataclass(frozen=True, kw_only=True)
class VerdictConfig(StrictConfig):
    """params.yaml ``verdict``: the confidence level of every interval and verdict."""
    confidence: float = ranged(0.95, ge=0.5, lt=1)


@dataclasses.dataclass(frozen=True)
class Estimate:
    """A mean with the half-width of its interval over ``n`` units ("seeds" or "sample sets")."""
    mean: float
    half_width: float
    n: int
    unit: str

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width


def replicates(values) -> tuple[np.ndarray, str]:
    """The independent replicates of a measurement: per-seed means over sample sets when there are >= 2
    seeds, else the sample sets of the one seed, else the single value."""
    values = np.asarray(values, dtype=float)
    if values.ndim == 1:
        values = values[:, None]
    if values.ndim != 2 or values.size == 0:
        raise ValueError(f"expected values[seed] or values[seed, set], got shape {values.shape}")
    if values.shape[0] >= 2 or values.shape[1] == 1:
        return values.mean(axis=1), "seeds"
    return values[0], "sample sets"


def estimate(values, confidence: float = 0.95) -> Estimate:
    """Mean and t-interval half-width of ``values[seed]`` or ``values[seed, set]`` (see :func:`replicates`);
    the half-width is NaN for a single replicate."""
    units, unit = replicates(values)
    n, mean = len(units), float(units.mean())
    if n < 2:
        return Estimate(mean, float("nan"), n, unit)
    sd = float(units.std(ddof=1))
    return Estimate(mean, float(_scipy_stats.t.ppf(0.5 + confidence / 2, n - 1) * sd / math.sqrt(n)), n, unit)


def verdict(difference: Estimate) -> str:
    """The rule on a paired difference A - B for the claim "A is lower than B" (module docstring)."""
    if difference.unit != "seeds" or difference.n < 2 or not math.isfinite(difference.half_width):
        return "inconclusive"
    if difference.high < 0:
        return "reproduced"
    if difference.low > 0:
        return "contradicted"
    return "inconclusive"


def combine(verdicts) -> str:
    """A compound claim: reproduced if every part is, contradicted if any part is, else inconclusive."""
    verdicts = list(verdicts)
    if not verdicts:
        raise ValueError("no verdicts to combine")
    if "contradicted" in verdicts:
        return "contradicted"
    return "reproduced" if all(v == "reproduced" for v in verdicts) else "inconclusive"


def rule_text(confidence: float) -> str:
    """The verdict rule in one sentence, printed beside every verdict."""
    pct = f"{confidence:.0%}"
    return (f"paired difference over training seeds (sample sets averaged within a seed): {pct} t-interval "
            f"entirely in the paper's direction = reproduced, entirely against it = contradicted, containing "
            "0 (or a single seed) = inconclusive")
