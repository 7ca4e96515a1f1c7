"""flatlib.measure.stats' verdict procedure on constructed data with known answers (issue 20): the pooled interval against a
textbook block-design computation, the within-seed floor, Holm/BH against statsmodels, the four outcomes, a fragile
verdict, and a compound claim whose one contradicted part does not survive the within-claim correction."""
import math

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from flatlib.measure.stats import (Part, VerdictConfig, adjust, base_outcome, claim_test, decide, intervals)

CFG = VerdictConfig(confidence=0.95, multiplicity="holm", barely=0.2)


def _part(name, diff, kind="k", b=10.0, sets=None, **kw):
    diff = np.asarray(diff, dtype=float)
    b_values = np.full_like(diff, b)
    a_sets = b_sets = None
    if sets is not None:
        b_sets = np.full_like(np.asarray(sets, dtype=float), b)
        a_sets = b_sets + np.asarray(sets, dtype=float)
    return Part(name, kind, b_values + diff, b_values, a_sets, b_sets, **kw)


def test_pooled_interval_is_the_textbook_block_design():
    """Two comparisons of one kind, 4 blocks (seeds) each: the randomised complete block analysis of each pair
    (a = 2 treatments, b = 4 blocks: SS_E = SS_T - SS_treatments - SS_blocks, MSE = SS_E / ((a-1)(b-1)), contrast
    variance 2 MSE / b), pooled over the two pairs (MSE averaged, df summed), as a textbook computes it by hand."""
    y1 = np.array([[9.3, 9.4, 9.6, 10.0], [9.4, 9.3, 9.8, 9.9]])    # treatments x blocks (Montgomery's tip data)
    y2 = np.array([[9.2, 9.4, 9.5, 9.7], [9.7, 9.6, 10.0, 10.2]])
    mses, dfs = [], []
    for y in (y1, y2):
        a, b = y.shape
        grand = y.mean()
        ss_t = ((y - grand) ** 2).sum()
        ss_treat = b * ((y.mean(axis=1) - grand) ** 2).sum()
        ss_block = a * ((y.mean(axis=0) - grand) ** 2).sum()
        mses.append((ss_t - ss_treat - ss_block) / ((a - 1) * (b - 1)))
        dfs.append((a - 1) * (b - 1))
    mse, df = np.mean(mses), sum(dfs)
    # the pooled MSE of the paired-difference model is the block design's MSE of the difference (2 * MSE_RCBD)
    parts = [Part("1", "k", y1[0], y1[1]), Part("2", "k", y2[0], y2[1])]
    ivs = intervals(parts, 0.95)
    for iv, y in zip(ivs, (y1, y2)):
        assert iv.df == df
        expected_hw = sps.t.ppf(0.975, df) * math.sqrt(2 * mse / 4)
        assert iv.mean == pytest.approx(y[0].mean() - y[1].mean())
        assert iv.half_width == pytest.approx(expected_hw, rel=1e-10)
        assert iv.p == pytest.approx(2 * sps.t.sf(abs(iv.mean) / math.sqrt(2 * mse / 4), df), rel=1e-10)


def test_raw_and_averaged_kinds_are_never_pooled():
    noisy, quiet = _part("raw", [-3, 1, 4], kind="raw"), _part("avg", [0.10, 0.11, 0.12], kind="averaged")
    iv_quiet = intervals([noisy, quiet], 0.95)[1]
    assert iv_quiet.half_width == pytest.approx(intervals([quiet], 0.95)[0].half_width)


def test_a_chance_narrow_seed_sd_is_floored_at_the_within_seed_noise():
    # seed means agree to 0.01, but the two sample sets of each seed differ by ~0.3: the seed value cannot be that
    # stable; the floor is the between-set variance / 2 sets
    sets = np.array([[0.1, 0.5], [0.52, 0.1], [0.08, 0.5]])
    part = _part("narrow", sets.mean(axis=1), sets=sets)
    floored, plain = intervals([part], 0.95)[0], intervals([part], 0.95, floor=False)[0]
    resid = sets - sets.mean(axis=1, keepdims=True)
    w2 = (resid ** 2).sum() / (3 * (2 - 1))
    assert floored.how.startswith("floored")
    assert floored.df == 3
    assert floored.se == pytest.approx(math.sqrt(w2 / 2 / 3))
    assert floored.half_width > 5 * plain.half_width


@pytest.mark.parametrize("method", ["holm", "fdr_bh"])
def test_family_adjustment_is_statsmodels(method):
    p = [0.001, 0.02, 0.03, 0.2, 0.04]
    assert np.allclose(adjust(p, 0.05, method), multipletests(p, alpha=0.05, method=method)[1])
    assert adjust(p, 0.05, "holm")[1] == pytest.approx(min(1, max(0.001 * 5, 0.02 * 4)))


@pytest.mark.parametrize("diff, paper_rel, expected", [
    ([-3.0, -3.2, -2.9], -0.3, "reproduced"),                 # interval below 0, contains the paper's -30%
    ([3.0, 3.2, 2.9], -0.3, "contradicted"),                  # above 0
    ([-0.1, 0.15, 0.02], -0.5, "weaker than the paper"),      # contains 0, excludes the paper's -50% (= -5.0)
    ([-3.0, 2.0, 0.5], -0.3, "inconclusive"),                 # contains 0 and -3.0
])
def test_four_outcomes(diff, paper_rel, expected):
    result = decide({"c": [_part("p", diff, paper_rel=paper_rel)]}, {"c": "paper"}, CFG)["c"]
    assert result.outcome == expected


def test_reproduced_n_times_smaller():
    result = decide({"c": [_part("p", [-0.30, -0.31, -0.29], paper_rel=-0.4)]}, {"c": "paper"}, CFG)["c"]
    assert result.outcome == "reproduced, 13x smaller"  # paper -4.0 on B = 10, measured -0.30
    assert base_outcome(result.outcome) == "reproduced"


def test_a_verdict_the_multiplicity_correction_undoes():
    alone = decide({"c": [_part("p", [-1.0, -1.3, -0.6])]}, {"c": "paper"}, CFG)["c"]
    assert alone.outcome == "reproduced" and 0.01 < alone.p < 0.05
    family = {f"n{i}": [_part("n", [-1.0, 1.1, 0.2], kind=f"other{i}")] for i in range(4)} | {"c": [_part("p", [-1.0, -1.3, -0.6])]}
    crowded = decide(family, {c: "paper" for c in family}, CFG)["c"]
    assert crowded.p_adjusted == pytest.approx(min(1, 5 * alone.p)) and crowded.outcome == "inconclusive"


def test_a_fragile_verdict():
    # four comparisons of one kind: one with a chance-tight spread, three noisy ones; pooled, it is undecided
    tight = _part("tight", [-1.00, -1.01, -0.99])
    noisy = [_part(f"n{i}", [-2.0, 1.0, 1.5]) for i in range(3)]
    claims = {"tight": [tight], **{f"n{i}": [p] for i, p in enumerate(noisy)}}
    families = {c: "paper" for c in claims}
    pooled, plain = decide(claims, families, CFG)["tight"], decide(claims, families, CFG, False, False)["tight"]
    assert plain.outcome == "reproduced" and pooled.outcome == "inconclusive"


def test_a_compound_claims_one_contradicted_part_must_survive_bonferroni_over_its_parts():
    k = 4
    against = _part("against", [0.4, 0.8, 0.6])  # alone: contradicted at 95%
    single = intervals([against], 0.95, pool=False)[0]
    assert single.low > 0 and single.p * k > 0.05
    others = [_part(f"o{i}", [-0.2, 0.3, 0.0]) for i in range(k - 1)]
    parts = [against] + others
    test = claim_test(parts, intervals(parts, 0.95, pool=False))
    assert test.side == "against" and test.p == pytest.approx(min(1, k * single.p))
    assert decide({"c": parts}, {"c": "paper"}, CFG, pool=False)["c"].outcome == "inconclusive"
    assert decide({"c": [against]}, {"c": "paper"}, CFG, pool=False)["c"].outcome == "contradicted"


def test_reproduced_needs_every_part():
    parts = [_part("a", [-3.0, -3.2, -2.9]), _part("b", [-0.5, 0.6, 0.1])]
    result = decide({"c": parts}, {"c": "paper"}, CFG, pool=False)["c"]
    assert result.outcome == "inconclusive" and result.side == "for"
