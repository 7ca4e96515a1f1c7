"""Uncertainty and the verdict rule: every reported number is a mean with an interval, and a paper claim is
decided by one stated procedure on paired differences.

The unit of replication is the training seed (params.yaml ``seeds``: blocks; the same seed gives every variant
the same initial weights and data order). A measurement of one row is an array ``values[seed]`` or, for FID,
``values[seed, sample_set]`` (disjoint sample sets, the same image seeds for every model: replicates within a
seed). :func:`estimate` gives the plain t-interval over seeds used by the tables.

**Variance model of the verdicts** (:func:`intervals`). A claim has one or more *parts*, each a paired comparison
"A lower than B" (:class:`Part`): per seed the difference d_s = A_s - B_s. Parts of the same *kind* (one
quantity, one class of weights on each side: raw-weight rows, whose final iterate is noisy, are never pooled with
averaged EMA/SWA rows) share one residual variance: an OLS with one mean per part (statsmodels ``OLS``,
d_{j,s} = mu_j + e_{j,s}), whose residual mean square is the seed-level variance pooled over the comparisons
of that kind, with sum_j (n_j - 1) degrees of freedom (the randomised-complete-block analysis of the
paired design: for one comparison it is the two-treatment RCBD / paired t; Montgomery, *Design and Analysis of
Experiments*, ch. 4). Where sample sets exist, the between-set residual within a seed (OLS with one mean per
part and seed) estimates the sampling noise sigma_w^2 of one set; a seed value made from m sets cannot vary
less than sigma_w^2 / m, so the seed-level variance is floored there (with the floor's degrees of freedom).
Interval: mu_j +- t_{df} * sqrt(s^2 / n_j), two-sided p against the claim's null. :func:`intervals` with
``pool=False, floor=False`` is the plain per-comparison paired t-interval, the sensitivity check.

**Outcomes** (:func:`decide`). With c = direction * (d - threshold * scale) (c > 0: the paper's direction):
*reproduced*: every part's interval has c > 0 (intersection-union test: the claim's p is the largest part p)
and that p survives the family's multiplicity correction; *contradicted*: a part has c < 0 with a p that
survives Bonferroni over the claim's parts and then the family correction; *weaker than the paper*: neither,
and some part's interval excludes the paper's effect on the zero side (the data rule out an effect as large as
the paper's); *inconclusive* otherwise. A reproduced claim whose every paper-numbered part excludes the paper's
size is "reproduced, N x smaller". The family correction (``verdict.multiplicity``: Holm or Benjamini-Hochberg
through statsmodels ``multipletests``) runs over the paper's claims as one family and over the suite's added
claims as another. A claim whose outcome differs under the plain per-comparison intervals is *fragile*.
"""
from __future__ import annotations

import dataclasses
import math
from collections import defaultdict

import numpy as np
from scipy import stats as _scipy_stats

from flatlib.schema import VerdictConfig


class _Bounds:
    """``low`` and ``high`` of an interval given by ``mean`` and ``half_width``."""
    mean: float
    half_width: float

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width


@dataclasses.dataclass(frozen=True)
class Estimate(_Bounds):
    """A mean with the half-width of its interval over ``n`` units ("seeds" or "sample sets")."""
    mean: float
    half_width: float
    n: int
    unit: str


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


def t_quantile(confidence: float, df: float) -> float:
    return float(_scipy_stats.t.ppf(0.5 + confidence / 2, df))


def estimate(values, confidence: float = 0.95) -> Estimate:
    """Mean and t-interval half-width of ``values[seed]`` or ``values[seed, set]`` (see :func:`replicates`);
    the half-width is NaN for a single replicate."""
    units, unit = replicates(values)
    n, mean = len(units), float(units.mean())
    if n < 2:
        return Estimate(mean, float("nan"), n, unit)
    sd = float(units.std(ddof=1))
    return Estimate(mean, t_quantile(confidence, n - 1) * sd / math.sqrt(n), n, unit)


# ------------------------------------------------------------------------------------------ claim parts
def weights_class(row: str) -> str:
    """"averaged" for EMA/SWA rows, "raw" otherwise: the two classes whose seed noise is never pooled."""
    return "averaged" if ("EMA" in row or "SWA" in row) else "raw"


def kind_of(quantity: str, row_a: str, row_b: str) -> str:
    """The pooling kind of a comparison: its quantity and the weights classes of its two rows (unordered)."""
    return f"{quantity}: " + " vs ".join(sorted((weights_class(row_a), weights_class(row_b))))


@dataclasses.dataclass(frozen=True)
class Part:
    """One paired comparison of a claim, A against B, per training seed.

    ``a``, ``b``: the seed-level values (array[seed]); ``a_sets``, ``b_sets``: the per-sample-set values
    (array[seed, set]) where they exist, used only for the within-seed noise floor. ``scale``: the denominator
    of the relative effect (the mean of B unless given). The claim holds when
    ``direction * (A - B - threshold * scale) > 0`` (direction -1: "A lower than B"). ``paper_rel``: the paper's
    relative effect (A - B) / B, NaN where the paper gives no number."""
    name: str
    kind: str
    a: np.ndarray
    b: np.ndarray
    a_sets: np.ndarray | None = None
    b_sets: np.ndarray | None = None
    scale: float | None = None
    paper_rel: float = float("nan")
    direction: int = -1
    threshold: float = 0.0

    def __post_init__(self):
        for name in ("a", "b", "a_sets", "b_sets"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, np.asarray(getattr(self, name), dtype=float))
        if self.a.shape != self.b.shape or self.a.ndim != 1:
            raise ValueError(f"part {self.name!r}: a and b must be array[seed] of one shape")
        if self.scale is None:
            object.__setattr__(self, "scale", float(abs(np.mean(self.b))))
        if self.direction not in (-1, 1):
            raise ValueError("direction must be -1 (A lower) or +1 (A higher)")

    @property
    def diff(self) -> np.ndarray:
        return self.a - self.b

    @property
    def set_diff(self) -> np.ndarray | None:
        if self.a_sets is None or self.b_sets is None or self.a_sets.ndim != 2 or self.a_sets.shape[1] < 2:
            return None
        return self.a_sets - self.b_sets


@dataclasses.dataclass(frozen=True)
class Interval(_Bounds):
    """A part's mean difference A - B with its standard error, degrees of freedom and interval; ``p``: two-sided
    p-value of "no effect" (A - B = threshold * scale); ``how``: which variance decided the width."""
    mean: float
    se: float
    df: float
    half_width: float
    p: float
    how: str


def _ols_residual(y: np.ndarray, groups: list) -> tuple[float, float]:
    """(residual mean square, residual df) of y on one mean per group (statsmodels OLS)."""
    import statsmodels.api as sm
    labels = sorted(set(groups), key=str)
    design = np.asarray([[g == label for label in labels] for g in groups], dtype=float)
    fit = sm.OLS(np.asarray(y, dtype=float), design).fit()
    return float(fit.scale), float(fit.df_resid)


def intervals(parts: list[Part], confidence: float, pool: bool = True, floor: bool = True) -> list[Interval]:
    """The interval of every part (module docstring): the seed-level residual variance pooled over the parts of
    one kind (``pool``), floored at the within-seed sampling noise where sample sets exist (``floor``)."""
    groups = defaultdict(list)
    for j, part in enumerate(parts):
        groups[part.kind if pool else j].append(j)
    out: list[Interval | None] = [None] * len(parts)
    for members in groups.values():
        usable = [j for j in members if len(parts[j].diff) >= 2]
        s2 = df = None
        if usable:
            y = np.concatenate([parts[j].diff for j in usable])
            s2, df = _ols_residual(y, [j for j in usable for _ in parts[j].diff])
        within = [j for j in usable if parts[j].set_diff is not None]
        w2 = wdf = None
        if floor and within:
            y = np.concatenate([parts[j].set_diff.ravel() for j in within])
            cells = [(j, s) for j in within for s in range(parts[j].set_diff.shape[0])
                     for _ in range(parts[j].set_diff.shape[1])]
            w2, wdf = _ols_residual(y, cells)
        for j in members:
            part, d = parts[j], parts[j].diff
            n, mean = len(d), float(np.mean(d))
            if j not in usable or not df:
                out[j] = Interval(mean, float("nan"), 0.0, float("nan"), float("nan"), "one seed: no interval")
                continue
            var, dof = s2, df
            how = (f"seed-level variance pooled over {len(usable)} comparisons ({part.kind})" if pool and
                   len(usable) > 1 else "paired t over seeds")
            if w2 is not None and j in within and w2 / part.set_diff.shape[1] > s2:
                var, dof = w2 / part.set_diff.shape[1], wdf
                how = "floored at the within-seed sampling noise (between sample sets)"
            se = math.sqrt(var / n)
            effect = mean - part.threshold * part.scale
            if se > 0:
                p = float(2 * _scipy_stats.t.sf(abs(effect) / se, dof))
            else:  # every seed gives the same difference: decided unless it is exactly the null
                p = 1.0 if effect == 0 else 0.0
            out[j] = Interval(mean, se, dof, t_quantile(confidence, dof) * se, p, how)
    return out


# ---------------------------------------------------------------------------------------------- outcomes
def _support(part: Part, iv: Interval) -> tuple[float, float, float]:
    """(low, mean, high) of c = direction * (A - B - threshold * scale): c > 0 is the paper's direction."""
    ends = sorted(part.direction * (x - part.threshold * part.scale) for x in (iv.low, iv.high))
    return ends[0], part.direction * (iv.mean - part.threshold * part.scale), ends[1]


def paper_size(part: Part) -> float:
    """The paper's effect on the c scale (NaN without a paper number)."""
    return part.direction * (part.paper_rel - part.threshold) * part.scale


@dataclasses.dataclass(frozen=True)
class ClaimTest:
    """A claim's p-value and the side it speaks for ("for": the paper's direction; "against")."""
    p: float
    side: str


def claim_test(parts: list[Part], ivs: list[Interval]) -> ClaimTest:
    """The claim's p: "for" (every part in the paper's direction) is the largest part p (intersection-union);
    "against" is the smallest part p against it, Bonferroni-corrected over the claim's parts; the smaller wins."""
    ps = [iv.p if math.isfinite(iv.p) else 1.0 for iv in ivs]
    signs = [_support(part, iv)[1] for part, iv in zip(parts, ivs)]
    p_for = max(ps) if all(s > 0 for s in signs) else 1.0
    against = [p for p, s in zip(ps, signs) if s < 0]
    p_against = min(1.0, len(parts) * min(against)) if against else 1.0
    return ClaimTest(p_for, "for") if p_for <= p_against else ClaimTest(p_against, "against")


def adjust(pvalues, alpha: float, method: str) -> np.ndarray:
    """Family-adjusted p-values (statsmodels ``multipletests``: "holm" or "fdr_bh")."""
    from statsmodels.stats.multitest import multipletests
    pvalues = np.asarray(pvalues, dtype=float)
    if pvalues.size == 0:
        return pvalues
    return multipletests(pvalues, alpha=alpha, method=method)[1]


def outcome(parts: list[Part], ivs: list[Interval], test: ClaimTest, p_adjusted: float, alpha: float) -> str:
    """The four-valued outcome of a claim (module docstring), with "reproduced, N x smaller" where every part
    with a paper number excludes the paper's size."""
    supports = [_support(part, iv) for part, iv in zip(parts, ivs)]
    sizes = [paper_size(part) for part in parts]
    decided = p_adjusted < alpha
    if decided and test.side == "for":
        numbered = [(s, size) for s, size in zip(supports, sizes) if math.isfinite(size) and size > 0]
        if numbered and all(s[2] < size for s, size in numbered):
            factor = min(size / s[1] for s, size in numbered)
            return f"reproduced, {factor:.0f}x smaller" if factor >= 2 else f"reproduced, {factor:.1f}x smaller"
        return "reproduced"
    if decided and test.side == "against":
        return "contradicted"
    if any(math.isfinite(size) and size > 0 and math.isfinite(s[2]) and s[2] < size
           for s, size in zip(supports, sizes)):
        return "weaker than the paper"
    return "inconclusive"


def base_outcome(text: str) -> str:
    """The outcome word of an outcome text ("reproduced, 40x smaller" -> "reproduced")."""
    return text.split(",")[0]


@dataclasses.dataclass(frozen=True)
class Decision:
    outcome: str
    p: float
    p_adjusted: float
    side: str
    intervals: list


def decide(claims: dict[str, list[Part]], families: dict[str, str], cfg: VerdictConfig, pool: bool = True,
           floor: bool = True) -> dict[str, Decision]:
    """Every claim's outcome: the parts' intervals from one variance model over all claims' parts (:func:`intervals`),
    one p per claim (:func:`claim_test`), adjusted within its family (``families``: claim -> family name)."""
    order = [(cid, j) for cid, parts in claims.items() for j in range(len(parts))]
    flat = intervals([claims[cid][j] for cid, j in order], cfg.confidence, pool=pool, floor=floor)
    ivs = defaultdict(list)
    for (cid, _), iv in zip(order, flat):
        ivs[cid].append(iv)
    tests = {cid: claim_test(parts, ivs[cid]) for cid, parts in claims.items()}
    adjusted = {}
    for family in sorted(set(families.values())):
        members = [cid for cid in claims if families[cid] == family]
        adjusted.update(zip(members, adjust([tests[c].p for c in members], cfg.alpha, cfg.multiplicity)))
    return {cid: Decision(outcome(parts, ivs[cid], tests[cid], float(adjusted[cid]), cfg.alpha), tests[cid].p,
                          float(adjusted[cid]), tests[cid].side, ivs[cid]) for cid, parts in claims.items()}


def rule_text(cfg: VerdictConfig) -> str:
    """The verdict procedure in one paragraph, printed beside every verdict."""
    method = {"holm": "Holm (family-wise error)", "fdr_bh": "Benjamini-Hochberg (false-discovery rate)"}
    return (f"per training seed the paired difference A - B; {cfg.confidence:.0%} interval from the seed-level "
            "variance pooled over comparisons of the same kind (raw-weight rows never pooled with EMA/SWA rows), "
            "floored at the within-seed sampling noise; reproduced = every part in the paper's direction "
            f"(p = largest part p), contradicted = a part against it surviving Bonferroni over the parts; each "
            f"claim's p adjusted by {method[cfg.multiplicity]} over the paper's claims (added claims apart); "
            "weaker than the paper = undecided but the paper's effect lies outside the interval; fragile = the "
            "plain per-comparison paired t-interval gives another outcome")
